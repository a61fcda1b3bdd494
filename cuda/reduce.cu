// Sums over one axis, and softmax / log_softmax over the last axis (forward and backward).
#include <cfloat>

#include "check.h"
#include "kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

template <typename T>
struct SumOp {
  static __device__ T identity() { return T(0); }
  __device__ T operator()(T a, T b) const { return a + b; }
};
template <typename T>
struct MaxOp {
  static __device__ T identity() { return -INFINITY; }
  __device__ T operator()(T a, T b) const { return a > b ? a : b; }
};

template <typename T, class Op>
__device__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int lanes = 16; lanes > 0; lanes >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, lanes));
  return v;
}

// Every thread of the block returns the reduction of all threads' v. blockDim.x must be a multiple
// of 32. The closing barrier lets the caller reduce again at once without racing on `partial`.
template <typename T, class Op>
__device__ T block_reduce(T v, Op op) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = warp_reduce(lane < warps ? partial[lane] : Op::identity(), op);
  __syncthreads();
  return v;
}

// One block per row (grid-stride over rows): x is (rows, n), out[r] = sum of row r.
template <typename T>
__global__ void sum_rows_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t n) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* row = x + r * n;
    T acc = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) acc += row[j];
    acc = block_reduce(acc, SumOp<T>{});
    if (threadIdx.x == 0) out[r] = acc;
  }
}

// One thread per output (o, j): x is (outer, n, inner), neighbouring threads read neighbouring j.
template <typename T>
__global__ void sum_columns_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t outer, int64_t n,
                                   int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t idx = global_thread_index(); idx < total; idx += grid_threads()) {
    const int64_t o = idx / inner, j = idx % inner;
    const T* p = x + o * n * inner + j;
    T acc = 0;
    for (int64_t r = 0; r < n; ++r) acc += p[r * inner];
    out[idx] = acc;
  }
}

// One block per row: max, then the sum of exp(x - max), then the output (three reads of the row).
template <typename T, bool LOG>
__global__ void softmax_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * n;
    T* yr = y + r * n;
    T m = MaxOp<T>::identity();
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) m = MaxOp<T>{}(m, xr[j]);
    m = block_reduce(m, MaxOp<T>{});
    T s = 0;
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += exp_of(xr[j] - m);
    s = block_reduce(s, SumOp<T>{});
    if (LOG) {
      const T shift = m + log_of(s);
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = xr[j] - shift;
    } else {
      const T inv = T(1) / s;
      for (int64_t j = threadIdx.x; j < n; j += blockDim.x) yr[j] = exp_of(xr[j] - m) * inv;
    }
  }
}

template <typename T, bool LOG>
__global__ void softmax_backward_kernel(const T* __restrict__ dy, const T* __restrict__ y, T* __restrict__ dx,
                                        int64_t rows, int64_t n) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* dyr = dy + r * n;
    const T* yr = y + r * n;
    T* dxr = dx + r * n;
    T s = 0;  // log_softmax: sum(dy); softmax: sum(dy * y)
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x) s += LOG ? dyr[j] : dyr[j] * yr[j];
    s = block_reduce(s, SumOp<T>{});
    for (int64_t j = threadIdx.x; j < n; j += blockDim.x)
      dxr[j] = LOG ? dyr[j] - exp_of(yr[j]) * s : yr[j] * (dyr[j] - s);
  }
}

// Threads for a block that works through one row of n: a multiple of 32, no more than n needs.
int row_threads(int64_t n) { return n <= 32 ? 32 : n <= 64 ? 64 : n <= 128 ? 128 : 256; }

unsigned int row_blocks(int64_t rows) { return grid_stride_blocks(rows, 1); }

}  // namespace

template <typename T>
void sum_axis(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t stream) {
  if (outer * inner == 0) return;
  if (inner == 1) {
    const int threads = row_threads(n);
    sum_rows_kernel<T><<<row_blocks(outer), threads, 0, stream>>>(x, out, outer, n);
    check_launch("sum", "sum_rows_kernel");
  } else {
    constexpr int threads = 256;
    sum_columns_kernel<T><<<grid_stride_blocks(outer * inner, threads), threads, 0, stream>>>(x, out, outer, n, inner);
    check_launch("sum", "sum_columns_kernel");
  }
}

template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n, bool log, cudaStream_t stream) {
  if (rows == 0 || n == 0) return;
  const int threads = row_threads(n);
  if (log) {
    softmax_kernel<T, true><<<row_blocks(rows), threads, 0, stream>>>(x, y, rows, n);
    check_launch("log_softmax", "softmax_kernel");
  } else {
    softmax_kernel<T, false><<<row_blocks(rows), threads, 0, stream>>>(x, y, rows, n);
    check_launch("softmax", "softmax_kernel");
  }
}

template <typename T>
void softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t n, bool log, cudaStream_t stream) {
  if (rows == 0 || n == 0) return;
  const int threads = row_threads(n);
  if (log) {
    softmax_backward_kernel<T, true><<<row_blocks(rows), threads, 0, stream>>>(dy, y, dx, rows, n);
    check_launch("log_softmax_backward", "softmax_backward_kernel");
  } else {
    softmax_backward_kernel<T, false><<<row_blocks(rows), threads, 0, stream>>>(dy, y, dx, rows, n);
    check_launch("softmax_backward", "softmax_backward_kernel");
  }
}

#define RB_INSTANTIATE(T)                                                                          \
  template void sum_axis<T>(const T*, T*, int64_t, int64_t, int64_t, cudaStream_t);                \
  template void softmax_rows<T>(const T*, T*, int64_t, int64_t, bool, cudaStream_t);               \
  template void softmax_rows_backward<T>(const T*, const T*, T*, int64_t, int64_t, bool, cudaStream_t);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
