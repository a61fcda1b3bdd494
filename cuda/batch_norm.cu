// Batch normalisation over (N, C, L) arrays: per-channel statistics (one block per channel, sums in
// float64 as the CPU version), then element-wise passes. Same formulas as batch_norm in
// python/rosenblatt/nn/_conv_functional.py.
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

template <typename T>
__global__ void batch_norm_stats_kernel(const T* __restrict__ x, int64_t N, int64_t C, int64_t L, bool training,
                                        double momentum, double eps, T* running_mean, T* running_var,
                                        T* __restrict__ save_mean, T* __restrict__ save_invstd) {
  const int64_t count = N * L;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    double mean, var;
    if (training) {  // the same for the whole block, so every thread reaches the barriers
      double s = 0;
      for (int64_t k = threadIdx.x; k < count; k += blockDim.x) s += static_cast<double>(x[channel_element(k, c, C, L)]);
      mean = block_reduce(s, Sum{}, 0.0) / static_cast<double>(count);
      double q = 0;  // centred second pass: no cancellation
      for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
        const double d = static_cast<double>(x[channel_element(k, c, C, L)]) - mean;
        q += d * d;
      }
      var = block_reduce(q, Sum{}, 0.0) / static_cast<double>(count);
    } else {
      mean = static_cast<double>(running_mean[c]);
      var = static_cast<double>(running_var[c]);
    }
    if (threadIdx.x == 0) {
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
}

template <typename T>
__global__ void batch_norm_normalize_kernel(const T* __restrict__ x, const T* __restrict__ mean,
                                            const T* __restrict__ invstd, const T* __restrict__ weight,
                                            const T* __restrict__ bias, T* __restrict__ y, int64_t C, int64_t L,
                                            int64_t total) {
  for (int64_t e = global_thread_index(); e < total; e += grid_threads())
    y[e] = batch_norm_normalize_element(e, x, mean, invstd, weight, bias, C, L);
}

// Per channel: sums[c] = sum(g), sums[C + c] = sum(g * x_hat); dbias, dweight the same in T.
template <typename T>
__global__ void batch_norm_grad_sums_kernel(const T* __restrict__ grad, const T* __restrict__ x,
                                            const T* __restrict__ mean, const T* __restrict__ invstd, int64_t N,
                                            int64_t C, int64_t L, double* __restrict__ sums, T* __restrict__ dweight,
                                            T* __restrict__ dbias) {
  const int64_t count = N * L;
  for (int64_t c = blockIdx.x; c < C; c += gridDim.x) {
    const double m = static_cast<double>(mean[c]), s = static_cast<double>(invstd[c]);
    double sum_g = 0, sum_gx = 0;
    for (int64_t k = threadIdx.x; k < count; k += blockDim.x) {
      const int64_t e = channel_element(k, c, C, L);
      const double g = static_cast<double>(grad[e]);
      sum_g += g;
      sum_gx += g * (static_cast<double>(x[e]) - m) * s;
    }
    sum_g = block_reduce(sum_g, Sum{}, 0.0);
    sum_gx = block_reduce(sum_gx, Sum{}, 0.0);
    if (threadIdx.x == 0) {
      sums[c] = sum_g;
      sums[C + c] = sum_gx;
      dbias[c] = static_cast<T>(sum_g);
      dweight[c] = static_cast<T>(sum_gx);
    }
  }
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

unsigned int channel_blocks(int64_t C) { return grid_stride_blocks(C, 1); }

}  // namespace

template <typename T>
void batch_norm_stats(const T* x, int64_t N, int64_t C, int64_t L, bool training, double momentum, double eps,
                      T* running_mean, T* running_var, T* save_mean, T* save_invstd, cudaStream_t stream) {
  if (C == 0) return;
  batch_norm_stats_kernel<T><<<channel_blocks(C), kChannelThreads, 0, stream>>>(
      x, N, C, L, training, momentum, eps, running_mean, running_var, save_mean, save_invstd);
  check_launch("batch_norm_forward", "batch_norm_stats_kernel");
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
void batch_norm_backward(const T* grad, const T* x, const T* mean, const T* invstd, const T* weight, bool training,
                         T* dx, T* dweight, T* dbias, double* sums, int64_t N, int64_t C, int64_t L,
                         cudaStream_t stream) {
  if (C == 0) return;
  batch_norm_grad_sums_kernel<T><<<channel_blocks(C), kChannelThreads, 0, stream>>>(grad, x, mean, invstd, N, C, L,
                                                                                   sums, dweight, dbias);
  check_launch("batch_norm_backward", "batch_norm_grad_sums_kernel");
  const int64_t total = N * C * L;
  if (total == 0) return;
  constexpr int threads = 256;
  batch_norm_dx_kernel<T><<<grid_stride_blocks(total, threads), threads, 0, stream>>>(grad, x, mean, invstd, weight,
                                                                                      training, sums, dx, N, C, L);
  check_launch("batch_norm_backward", "batch_norm_dx_kernel");
}

#define RB_INSTANTIATE(T)                                                                                         \
  template void batch_norm_stats<T>(const T*, int64_t, int64_t, int64_t, bool, double, double, T*, T*, T*, T*,     \
                                    cudaStream_t);                                                                \
  template void batch_norm_normalize<T>(const T*, const T*, const T*, const T*, const T*, T*, int64_t, int64_t,   \
                                        int64_t, cudaStream_t);                                                   \
  template void batch_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, bool, T*, T*, T*, double*, \
                                       int64_t, int64_t, int64_t, cudaStream_t);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
