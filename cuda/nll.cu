// The device pieces of nll_loss / cross_entropy: the gather of each position's target
// log-probability (and class weight), its backward scatter, and the max / arg-max over a row.
// The reductions and the arithmetic between them are element-wise ops and sums of the Python layer.
#include "block_reduce.cuh"
#include "check.h"
#include "index_flag.cuh"
#include "launch.cuh"
#include "train_kernels.h"
#include "train_math.h"

namespace rb::cuda {
namespace {

constexpr int kThreads = 256;

// One thread per position e = n * L + l.
template <typename T>
__global__ void nll_gather_kernel(const T* __restrict__ log_probs, const int64_t* __restrict__ target,
                                  const T* __restrict__ weight, T* __restrict__ picked, T* __restrict__ element_weight,
                                  int64_t N, int64_t C, int64_t L, int64_t ignore_index, unsigned long long* flag) {
  const int64_t total = N * L;
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) {
    const int64_t source = nll_source(e, target, C, L, ignore_index);
    if (source == -2) flag_bad_index(flag, target[e]);
    picked[e] = source >= 0 ? log_probs[source] : T(0);
    element_weight[e] = source < 0 ? T(0) : weight != nullptr ? weight[target[e]] : T(1);
  }
}

template <typename T>
__global__ void nll_scatter_kernel(const T* __restrict__ coef, const int64_t* __restrict__ target, T* __restrict__ out,
                                   int64_t N, int64_t C, int64_t L, int64_t ignore_index, unsigned long long* flag) {
  const int64_t total = N * L;
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) {
    const int64_t destination = nll_source(e, target, C, L, ignore_index);
    if (destination >= 0) out[destination] = coef[e];
    else if (destination == -2) flag_bad_index(flag, target[e]);
  }
}

// (value, index) pairs: a beats b when larger, or NaN (NumPy's argmax stops at the first NaN), or
// equal with a smaller index.
template <typename T>
__device__ inline bool beats(T a, int64_t ia, T b, int64_t ib) {
  const bool a_nan = a != a, b_nan = b != b;
  if (a_nan || b_nan) return a_nan && (!b_nan || ia < ib);
  return a > b || (a == b && ia < ib);
}

// One block per row; each thread keeps its best pair, then warps and the block combine pairs.
template <typename T>
__global__ void max_rows_kernel(const T* __restrict__ x, T* __restrict__ values, int64_t* __restrict__ indices,
                                int64_t rows, int64_t n) {
  __shared__ T warp_value[32];
  __shared__ int64_t warp_index[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * n;
    T best = row[0];  // n >= 1
    int64_t best_index = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      if (beats(row[j], j, best, best_index)) best = row[j], best_index = j;
    for (int lanes = 16; lanes > 0; lanes >>= 1) {
      const T other = __shfl_xor_sync(0xffffffffu, best, lanes);
      const int64_t other_index = __shfl_xor_sync(0xffffffffu, best_index, lanes);
      if (beats(other, other_index, best, best_index)) best = other, best_index = other_index;
    }
    if (lane == 0) warp_value[warp] = best, warp_index[warp] = best_index;
    __syncthreads();
    if (warp == 0) {
      best = lane < warps ? warp_value[lane] : warp_value[0];
      best_index = lane < warps ? warp_index[lane] : warp_index[0];
      for (int lanes = 16; lanes > 0; lanes >>= 1) {
        const T other = __shfl_xor_sync(0xffffffffu, best, lanes);
        const int64_t other_index = __shfl_xor_sync(0xffffffffu, best_index, lanes);
        if (beats(other, other_index, best, best_index)) best = other, best_index = other_index;
      }
      if (lane == 0) values[r] = best, indices[r] = best_index;
    }
    __syncthreads();  // warp_value is reused by the next row
  }
}

int row_threads(int64_t n) { return n <= 32 ? 32 : n <= 64 ? 64 : n <= 128 ? 128 : 256; }

}  // namespace

template <typename T>
void gather_targets(const T* log_probs, const int64_t* target, const T* weight, T* picked, T* element_weight, int64_t N,
                    int64_t C, int64_t L, int64_t ignore_index, unsigned long long* flag, cudaStream_t stream) {
  if (N * L == 0) return;
  nll_gather_kernel<T><<<grid_stride_blocks(N * L, kThreads), kThreads, 0, stream>>>(
      log_probs, target, weight, picked, element_weight, N, C, L, ignore_index, flag);
  check_launch("nll_gather", "nll_gather_kernel");
}

template <typename T>
void scatter_targets(const T* coef, const int64_t* target, T* out, int64_t N, int64_t C, int64_t L,
                     int64_t ignore_index, unsigned long long* flag, cudaStream_t stream) {
  if (N * L == 0) return;
  nll_scatter_kernel<T><<<grid_stride_blocks(N * L, kThreads), kThreads, 0, stream>>>(coef, target, out, N, C, L,
                                                                                      ignore_index, flag);
  check_launch("nll_scatter", "nll_scatter_kernel");
}

template <typename T>
void max_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t n, cudaStream_t stream) {
  if (rows == 0) return;
  max_rows_kernel<T><<<grid_stride_blocks(rows, 1), row_threads(n), 0, stream>>>(x, values, indices, rows, n);
  check_launch("max_last_axis", "max_rows_kernel");
}

#define RB_INSTANTIATE(T)                                                                                  \
  template void gather_targets<T>(const T*, const int64_t*, const T*, T*, T*, int64_t, int64_t, int64_t, int64_t, \
                                  unsigned long long*, cudaStream_t);                                             \
  template void scatter_targets<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, int64_t,              \
                                   unsigned long long*, cudaStream_t);                                            \
  template void max_rows<T>(const T*, T*, int64_t*, int64_t, int64_t, cudaStream_t);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
