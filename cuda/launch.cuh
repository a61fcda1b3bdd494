// Launch-configuration helpers shared by the kernels (device code: include only from .cu files).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels.h"

namespace rb::cuda {

// Blocks for a grid-stride loop over `items` work items of `per_block` each: one item per block up
// to a cap that fills any GPU many times over, well inside grid.x's 2^31 - 1 limit. 64-bit loops
// inside the kernels cover whatever the cap leaves.
inline unsigned int grid_stride_blocks(int64_t items, int64_t per_block) {
  const int64_t blocks = (items + per_block - 1) / per_block;
  return static_cast<unsigned int>(std::clamp<int64_t>(blocks, 1, int64_t{1} << 20));
}

// Index of this thread in a 1-D grid, and the grid's size, as 64-bit numbers.
__device__ inline int64_t global_thread_index() {
  return static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline int64_t grid_threads() { return static_cast<int64_t>(gridDim.x) * blockDim.x; }

// Overloads so that templates call the float or double version of each function.
__device__ inline float exp_of(float x) { return expf(x); }
__device__ inline double exp_of(double x) { return exp(x); }
__device__ inline float log_of(float x) { return logf(x); }
__device__ inline double log_of(double x) { return log(x); }
__device__ inline float tanh_of(float x) { return tanhf(x); }
__device__ inline double tanh_of(double x) { return tanh(x); }
__device__ inline float sqrt_of(float x) { return sqrtf(x); }
__device__ inline double sqrt_of(double x) { return sqrt(x); }
__device__ inline float log1p_of(float x) { return log1pf(x); }
__device__ inline double log1p_of(double x) { return log1p(x); }
__device__ inline float sin_of(float x) { return sinf(x); }
__device__ inline double sin_of(double x) { return sin(x); }
__device__ inline float cos_of(float x) { return cosf(x); }
__device__ inline double cos_of(double x) { return cos(x); }
__device__ inline float pow_of(float x, float y) { return powf(x, y); }
__device__ inline double pow_of(double x, double y) { return pow(x, y); }

// The one broadcasting index helper: element i of the C-contiguous output, decomposed over the
// dimensions (layout dimension 0 is the innermost), gives each of the first N inputs' offsets
// through its strides. The loop is unrolled over kMaxDims so the layout's arrays are indexed by
// constants. Host-callable too, for broadcast_offsets_on_host (tests without a GPU).
template <int N>
__host__ __device__ inline void broadcast_offsets(const BroadcastLayout& layout, int64_t i, int64_t (&offset)[kMaxInputs]) {
#pragma unroll
  for (int k = 0; k < N; ++k) offset[k] = 0;
#pragma unroll
  for (int d = 0; d < kMaxDims; ++d) {
    if (d < layout.ndim) {
      const int64_t index = i % layout.shape[d];
      i /= layout.shape[d];
#pragma unroll
      for (int k = 0; k < N; ++k) offset[k] += index * layout.strides[k][d];
    }
  }
}

}  // namespace rb::cuda
