// Batch normalisation over (N, C, L) arrays: per-channel statistics, each channel's N * L elements
// split into chunks so that even a few channels fill the GPU (block sums in float64 as the CPU
// version, added in a fixed order), then element-wise passes. Same formulas as batch_norm in
// python/rosenblatt/nn/_conv_functional.py.
#include <algorithm>
#include <cmath>

#include "block_reduce.cuh"
#include "check.h"
#include "launch.cuh"
#include "train_kernels.h"
#include "train_math.h"

namespace rb::cuda {
namespace {

using blockwise::block_reduce;
using blockwise::Sum;

constexpr int kChannelThreads = 256;

enum class ChannelSum { values, squares, gradients };

// Block b (grid-stride) sums chunk j = b % chunks of channel c = b / chunks, the elements
// k in [j * per, min((j + 1) * per, count)) of the channel, into partial[b] (float64):
//   values:    sum x
//   squares:   sum (x - centre[c])^2, centre the float64 batch mean (a centred second pass)
//   gradients: sum g into partial[b], sum g * (x - mean[c]) * invstd[c] into partial[C * chunks + b]
template <typename T, ChannelSum WHAT>
__global__ void channel_partials_kernel(const T* __restrict__ x, const T* __restrict__ grad,
                                        const double* __restrict__ centre, const T* __restrict__ mean,
                                        const T* __restrict__ invstd, int64_t C, int64_t L, int64_t count,
                                        int64_t chunks, int64_t per, double* __restrict__ partial) {
  const int64_t blocks = C * chunks;
  for (int64_t b = blockIdx.x; b < blocks; b += gridDim.x) {
    const int64_t c = b / chunks, j = b - c * chunks;
    const int64_t begin = j * per, end = begin + per < count ? begin + per : count;
    double m = 0, s = 0;
    if constexpr (WHAT == ChannelSum::squares) m = centre[c];
    if constexpr (WHAT == ChannelSum::gradients) m = static_cast<double>(mean[c]), s = static_cast<double>(invstd[c]);
    double sum0 = 0, sum1 = 0;
    for (int64_t k = begin + threadIdx.x; k < end; k += blockDim.x) {
      const int64_t e = channel_element(k, c, C, L);
      const double v = static_cast<double>(x[e]);
      if constexpr (WHAT == ChannelSum::values) {
        sum0 += v;
      } else if constexpr (WHAT == ChannelSum::squares) {
        sum0 += (v - m) * (v - m);
      } else {
        const double g = static_cast<double>(grad[e]);
        sum0 += g;
        sum1 += g * (v - m) * s;
      }
    }
    sum0 = block_reduce(sum0, Sum{}, 0.0);
    if constexpr (WHAT == ChannelSum::gradients) sum1 = block_reduce(sum1, Sum{}, 0.0);
    if (threadIdx.x == 0) {
      partial[b] = sum0;
      if constexpr (WHAT == ChannelSum::gradients) partial[blocks + b] = sum1;
    }
  }
}

// The sum of channel c's chunk partials, in chunk order (the same every run).
__device__ inline double channel_total(const double* partial, int64_t c, int64_t chunks) {
  double sum = 0;
  for (int64_t j = 0; j < chunks; ++j) sum += partial[c * chunks + j];
  return sum;
}

// One thread per channel from here on.
__global__ void channel_mean_kernel(const double* __restrict__ partial, int64_t C, int64_t chunks, int64_t count,
                                    double* __restrict__ centre) {
  for (int64_t c = global_thread_index(); c < C; c += grid_threads())
    centre[c] = channel_total(partial, c, chunks) / static_cast<double>(count);
}

// Training: mean = centre, var = the squares' total / count (biased), and the running stats move
// towards mean and the unbiased var. Evaluation: mean and var are the running stats.
template <typename T>
__global__ void batch_norm_finish_stats_kernel(const double* __restrict__ partial, const double* __restrict__ centre,
                                               int64_t C, int64_t chunks, int64_t count, bool training,
                                               double momentum, double eps, T* running_mean, T* running_var,
                                               T* __restrict__ save_mean, T* __restrict__ save_invstd) {
  for (int64_t c = global_thread_index(); c < C; c += grid_threads()) {
    double mean, var;
    if (training) {
      mean = centre[c];
      var = channel_total(partial, c, chunks) / static_cast<double>(count);
    } else {
      mean = static_cast<double>(running_mean[c]);
      var = static_cast<double>(running_var[c]);
    }
    save_mean[c] = static_cast<T>(mean);
    save_invstd[c] = static_cast<T>(1.0 / sqrt(var + eps));
    if (training && running_mean != nullptr)
      running_mean[c] = running_mean[c] * static_cast<T>(1.0 - momentum) + static_cast<T>(momentum * mean);
    if (training && running_var != nullptr) {
      const double unbiased = var * static_cast<double>(count) / static_cast<double>(count - 1);
      running_var[c] = running_var[c] * static_cast<T>(1.0 - momentum) + static_cast<T>(momentum * unbiased);
    }
  }
}

// sums[c] = sum(g), sums[C + c] = sum(g * x_hat); dbias and dweight the same in T.
template <typename T>
__global__ void batch_norm_finish_grad_kernel(const double* __restrict__ partial, int64_t C, int64_t chunks,
                                              double* __restrict__ sums, T* __restrict__ dweight,
                                              T* __restrict__ dbias) {
  for (int64_t c = global_thread_index(); c < C; c += grid_threads()) {
    const double sum_g = channel_total(partial, c, chunks);
    const double sum_gx = channel_total(partial + C * chunks, c, chunks);
    sums[c] = sum_g;
    sums[C + c] = sum_gx;
    dbias[c] = static_cast<T>(sum_g);
    dweight[c] = static_cast<T>(sum_gx);
  }
}

template <typename T>
__global__ void batch_norm_normalize_kernel(const T* __restrict__ x, const T* __restrict__ mean,
                                            const T* __restrict__ invstd, const T* __restrict__ weight,
                                            const T* __restrict__ bias, T* __restrict__ y, int64_t C, int64_t L,
                                            int64_t total) {
  for (int64_t e = global_thread_index(); e < total; e += grid_threads())
    y[e] = batch_norm_normalize_element(e, x, mean, invstd, weight, bias, C, L);
}

template <typename T>
__global__ void batch_norm_dx_kernel(const T* __restrict__ grad, const T* __restrict__ x, const T* __restrict__ mean,
                                     const T* __restrict__ invstd, const T* __restrict__ weight, bool training,
                                     const double* __restrict__ sums, T* __restrict__ dx, int64_t N, int64_t C,
                                     int64_t L) {
  const int64_t total = N * C * L;
  const double count = static_cast<double>(N * L);
  for (int64_t e = global_thread_index(); e < total; e += grid_threads())
    dx[e] = batch_norm_dx_element(e, grad, x, mean, invstd, weight, training, sums, C, L, count);
}

unsigned int chunk_blocks(int64_t C, int64_t chunks) { return grid_stride_blocks(C * chunks, 1); }
unsigned int channel_thread_blocks(int64_t C) { return grid_stride_blocks(C, kChannelThreads); }

}  // namespace

int64_t batch_norm_chunks(int64_t C, int64_t count) {
  constexpr int64_t kTargetBlocks = 1024;  // a few waves of 256-thread blocks on any current GPU
  constexpr int64_t kMinChunk = 2048;      // elements per block, at least
  if (C <= 0 || count <= 0) return 1;
  const int64_t wanted = (kTargetBlocks + C - 1) / C;
  return std::max<int64_t>(1, std::min(wanted, count / kMinChunk));
}

int64_t batch_norm_scratch_size(int64_t C, int64_t count) { return 2 * C * batch_norm_chunks(C, count) + 2 * C; }

template <typename T>
void batch_norm_stats(const T* x, int64_t N, int64_t C, int64_t L, bool training, double momentum, double eps,
                      T* running_mean, T* running_var, T* save_mean, T* save_invstd, double* scratch,
                      cudaStream_t stream) {
  if (C == 0) return;
  const int64_t count = N * L, chunks = batch_norm_chunks(C, count), per = (count + chunks - 1) / chunks;
  double* partial = scratch;                    // C * chunks
  double* centre = scratch + 2 * C * chunks;    // C
  if (training) {
    channel_partials_kernel<T, ChannelSum::values><<<chunk_blocks(C, chunks), kChannelThreads, 0, stream>>>(
        x, nullptr, nullptr, nullptr, nullptr, C, L, count, chunks, per, partial);
    check_launch("batch_norm_forward", "channel_partials_kernel (values)");
    channel_mean_kernel<<<channel_thread_blocks(C), kChannelThreads, 0, stream>>>(partial, C, chunks, count, centre);
    check_launch("batch_norm_forward", "channel_mean_kernel");
    channel_partials_kernel<T, ChannelSum::squares><<<chunk_blocks(C, chunks), kChannelThreads, 0, stream>>>(
        x, nullptr, centre, nullptr, nullptr, C, L, count, chunks, per, partial);
    check_launch("batch_norm_forward", "channel_partials_kernel (squares)");
  }
  batch_norm_finish_stats_kernel<T><<<channel_thread_blocks(C), kChannelThreads, 0, stream>>>(
      partial, centre, C, chunks, count, training, momentum, eps, running_mean, running_var, save_mean, save_invstd);
  check_launch("batch_norm_forward", "batch_norm_finish_stats_kernel");
}

template <typename T>
void batch_norm_normalize(const T* x, const T* mean, const T* invstd, const T* weight, const T* bias, T* y,
                          int64_t N, int64_t C, int64_t L, cudaStream_t stream) {
  const int64_t total = N * C * L;
  if (total == 0) return;
  constexpr int threads = 256;
  batch_norm_normalize_kernel<T><<<grid_stride_blocks(total, threads), threads, 0, stream>>>(
      x, mean, invstd, weight, bias, y, C, L, total);
  check_launch("batch_norm_forward", "batch_norm_normalize_kernel");
}

template <typename T>
void batch_norm_grads(const T* grad, const T* x, const T* mean, const T* invstd, const T* weight, bool training,
                      T* dx, T* dweight, T* dbias, double* scratch, int64_t N, int64_t C, int64_t L,
                      cudaStream_t stream) {
  if (C == 0) return;
  const int64_t count = N * L, chunks = batch_norm_chunks(C, count), per = (count + chunks - 1) / chunks;
  double* partial = scratch;                 // 2 * C * chunks
  double* sums = scratch + 2 * C * chunks;   // 2 * C
  channel_partials_kernel<T, ChannelSum::gradients><<<chunk_blocks(C, chunks), kChannelThreads, 0, stream>>>(
      x, grad, nullptr, mean, invstd, C, L, count, chunks, per, partial);
  check_launch("batch_norm_backward", "channel_partials_kernel (gradients)");
  batch_norm_finish_grad_kernel<T><<<channel_thread_blocks(C), kChannelThreads, 0, stream>>>(partial, C, chunks, sums,
                                                                                            dweight, dbias);
  check_launch("batch_norm_backward", "batch_norm_finish_grad_kernel");
  const int64_t total = N * C * L;
  if (total == 0) return;
  constexpr int threads = 256;
  batch_norm_dx_kernel<T><<<grid_stride_blocks(total, threads), threads, 0, stream>>>(grad, x, mean, invstd, weight,
                                                                                      training, sums, dx, N, C, L);
  check_launch("batch_norm_backward", "batch_norm_dx_kernel");
}

#define RB_INSTANTIATE(T)                                                                                         \
  template void batch_norm_stats<T>(const T*, int64_t, int64_t, int64_t, bool, double, double, T*, T*, T*, T*,     \
                                    double*, cudaStream_t);                                                       \
  template void batch_norm_normalize<T>(const T*, const T*, const T*, const T*, const T*, T*, int64_t, int64_t,   \
                                        int64_t, cudaStream_t);                                                   \
  template void batch_norm_grads<T>(const T*, const T*, const T*, const T*, const T*, bool, T*, T*, T*, double*, \
                                    int64_t, int64_t, int64_t, cudaStream_t);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
