// Up-sampling (and down-sampling) of planes x (P, H, W) -> y (P, OH, OW), nearest or bilinear, with
// the per-element rules the CPU kernel uses (csrc/pool/upsample.h: torch's source indices and
// arithmetic): each output reads at most 2 x 2 inputs, so the forward is a gather of one output per
// thread and the backward a scatter of each output's gradient to its taps with atomicAdd into a
// zeroed dx (the CPU kernel adds them output by output; here the order of the additions varies).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "check.h"
#include "conv_kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

constexpr int kThreads = 256;

// Output o of (P, OH, OW): its plane and its row and column taps.
template <typename T>
struct OutputTaps {
  int64_t plane;
  UpsampleTap<T> h, w;
};

template <typename T>
__host__ __device__ OutputTaps<T> output_taps(const UpsampleDims& g, int64_t o) {
  const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH;
  return {o / (g.OW * g.OH), upsample_tap<T>(oh, g.H, g.OH, g.scale_h, g.bilinear, g.align_corners),
          upsample_tap<T>(ow, g.W, g.OW, g.scale_w, g.bilinear, g.align_corners)};
}

template <typename T>
__host__ __device__ T upsample_output(const UpsampleDims& g, const T* x, int64_t o) {
  const OutputTaps<T> t = output_taps<T>(g, o);
  return upsample_value(x + t.plane * g.H * g.W, g.W, t.h, t.w, g.bilinear);
}

template <typename T>
__global__ void upsample_kernel(UpsampleDims g, const T* __restrict__ x, T* __restrict__ y, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) y[o] = upsample_output(g, x, o);
}

template <typename T>
__global__ void upsample_backward_kernel(UpsampleDims g, const T* __restrict__ dy, T* __restrict__ dx, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) {
    const OutputTaps<T> t = output_taps<T>(g, o);
    T* plane = dx + t.plane * g.H * g.W;
    upsample_scatter(g.W, t.h, t.w, g.bilinear, dy[o], [plane](int64_t i, T amount) { atomicAdd(plane + i, amount); });
  }
}

}  // namespace

template <typename T>
void upsample2d_forward_cuda(const UpsampleDims& g, const T* x, T* y, cudaStream_t stream) {
  const int64_t total = g.planes * g.OH * g.OW;
  if (total == 0) return;
  upsample_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(g, x, y, total);
  check_launch("upsample2d", "upsample_kernel");
}

template <typename T>
void upsample2d_backward_cuda(const UpsampleDims& g, const T* dy, T* dx, cudaStream_t stream) {
  const char* op = "upsample2d_backward";
  const int64_t inputs = g.planes * g.H * g.W, total = g.planes * g.OH * g.OW;
  if (inputs > 0) RB_CUDA_CHECK(op, cudaMemsetAsync(dx, 0, static_cast<size_t>(inputs) * sizeof(T), stream));
  if (total == 0) return;
  upsample_backward_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(g, dy, dx, total);
  check_launch(op, "upsample_backward_kernel");
}

template <typename T>
void upsample2d_simulated_on_host(const UpsampleDims& g, const T* x, T* y, const T* dy, T* dx) {
  const int64_t total = g.planes * g.OH * g.OW;
  for (int64_t o = 0; o < total; ++o) y[o] = upsample_output(g, x, o);
  std::fill(dx, dx + g.planes * g.H * g.W, T(0));
  for (int64_t o = 0; o < total; ++o) {  // the backward kernel's scatter, one output after another
    const OutputTaps<T> t = output_taps<T>(g, o);
    T* plane = dx + t.plane * g.H * g.W;
    upsample_scatter(g.W, t.h, t.w, g.bilinear, dy[o], [plane](int64_t i, T amount) { plane[i] += amount; });
  }
}

#define RB_UPSAMPLE_INSTANTIATE(T)                                                              \
  template void upsample2d_forward_cuda<T>(const UpsampleDims&, const T*, T*, cudaStream_t);    \
  template void upsample2d_backward_cuda<T>(const UpsampleDims&, const T*, T*, cudaStream_t);   \
  template void upsample2d_simulated_on_host<T>(const UpsampleDims&, const T*, T*, const T*, T*);
RB_UPSAMPLE_INSTANTIATE(float)
RB_UPSAMPLE_INSTANTIATE(double)
#undef RB_UPSAMPLE_INSTANTIATE

}  // namespace rb::cuda
