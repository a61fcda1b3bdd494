// Dropout with counter-based random numbers: the mask is a function of (seed, offset, index), so the
// backward pass regenerates it (the same kernel on the gradient) and nothing is stored.
#include "check.h"
#include "launch.cuh"
#include "philox.h"
#include "train_kernels.h"

namespace rb::cuda {
namespace {

// plane == 1: one thread per block of four values, all four words of one Philox call used (the
// mapping of dropout_element_keeps with plane 1, which the host tests check).
template <typename T>
__global__ void dropout_kernel(const T* x, T* out, int64_t n, uint32_t threshold, T scale, uint64_t seed,
                               uint64_t offset) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = global_thread_index(); b < blocks; b += grid_threads()) {
    const Philox4 bits = philox_block(seed, offset, static_cast<uint64_t>(b));
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const int64_t i = 4 * b + k;
      if (i < n) out[i] = x[i] * (dropout_keeps(bits.v[k], threshold) ? scale : T(0));
    }
  }
}

// plane > 1 (dropout2d): one thread per element; value j = i / plane is drawn again by each element
// of its plane (cheap next to the memory traffic, and keeps neighbouring threads on neighbouring elements).
template <typename T>
__global__ void dropout_planes_kernel(const T* x, T* out, int64_t n, int64_t plane, uint32_t threshold, T scale,
                                      uint64_t seed, uint64_t offset) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    out[i] = x[i] * (dropout_element_keeps(i, plane, threshold, seed, offset) ? scale : T(0));
  }
}

}  // namespace

template <typename T>
void dropout_apply(const T* x, T* out, int64_t n, int64_t plane, uint32_t threshold, T scale, uint64_t seed,
                   uint64_t offset, cudaStream_t stream) {
  if (n == 0) return;
  constexpr int threads = 256;
  if (plane == 1) {
    dropout_kernel<T><<<grid_stride_blocks((n + 3) / 4, threads), threads, 0, stream>>>(x, out, n, threshold, scale,
                                                                                        seed, offset);
    check_launch("dropout", "dropout_kernel");
  } else {
    dropout_planes_kernel<T><<<grid_stride_blocks(n, threads), threads, 0, stream>>>(x, out, n, plane, threshold,
                                                                                     scale, seed, offset);
    check_launch("dropout", "dropout_planes_kernel");
  }
}

template void dropout_apply<float>(const float*, float*, int64_t, int64_t, uint32_t, float, uint64_t, uint64_t,
                                   cudaStream_t);
template void dropout_apply<double>(const double*, double*, int64_t, int64_t, uint32_t, double, uint64_t, uint64_t,
                                    cudaStream_t);

}  // namespace rb::cuda
