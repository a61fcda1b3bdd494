// Warp and block reductions for the training kernels (device code: include only from .cu files).
// reduce.cu has its own copy in an anonymous namespace; it can switch to this header.
#pragma once
#include <cuda_runtime.h>

namespace rb::cuda::blockwise {

struct Sum {
  template <typename T>
  __device__ T operator()(T a, T b) const { return a + b; }
};
// max in which NaN wins, as NumPy's max.
struct MaxNan {
  template <typename T>
  __device__ T operator()(T a, T b) const { return (a > b || a != a) ? a : b; }
};

template <typename T, class Op>
__device__ T warp_reduce(T v, Op op) {
#pragma unroll
  for (int lanes = 16; lanes > 0; lanes >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, lanes));
  return v;
}

// Every thread of the block returns the reduction of all threads' v; `identity` fills the missing
// warps. blockDim.x must be a multiple of 32 (at most 1024). The closing barrier lets the caller
// reduce again at once without racing on `partial`.
template <typename T, class Op>
__device__ T block_reduce(T v, Op op, T identity) {
  __shared__ T partial[32];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  v = warp_reduce(v, op);
  if (lane == 0) partial[warp] = v;
  __syncthreads();
  v = warp_reduce(lane < warps ? partial[lane] : identity, op);
  __syncthreads();
  return v;
}

}  // namespace rb::cuda::blockwise
