// Up-sampling (and down-sampling) of planes x (P, H, W) -> y (P, OH, OW), nearest or bilinear, with
// the source-index rules of the CPU path (_interpolation_matrix in nn/_conv_functional.py, torch's
// rules): each output reads at most 2 x 2 inputs, y = sum wh * ww * x, so the forward is a gather of
// one output per thread and the backward a scatter of each output's gradient to its (at most four)
// inputs with atomicAdd into a zeroed dx. Source positions are computed in double, as NumPy does.
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "check.h"
#include "conv_kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

#define RB_HD __host__ __device__ __forceinline__

constexpr int kThreads = 256;

struct Source {  // out = (1 - frac) in[low] + frac in[high] along one axis
  int64_t low, high;
  double frac;
};

// scale is torch's in / out ratio (1 / scale_factor when a factor was given).
RB_HD Source source_index(int64_t dst, int64_t in, int64_t out, double scale, bool bilinear, bool align_corners) {
  if (!bilinear) {
    const int64_t s = std::min(static_cast<int64_t>(floor(double(dst) * scale)), in - 1);
    return {s, s, 0.0};
  }
  double src;
  if (align_corners)
    src = out > 1 ? double(dst) * (double(in - 1) / double(out - 1)) : 0.0;
  else
    src = std::max((double(dst) + 0.5) * scale - 0.5, 0.0);
  const int64_t low = std::min(static_cast<int64_t>(floor(src)), in - 1);
  return {low, std::min(low + 1, in - 1), src - double(low)};
}

// The four taps of output o of (P, OH, OW) and their weights.
template <typename T>
struct Taps {
  int64_t plane, h[2], w[2];
  T weight[2][2];
};

template <typename T>
RB_HD Taps<T> output_taps(const UpsampleDims& g, int64_t o) {
  const int64_t ow = o % g.OW, oh = (o / g.OW) % g.OH;
  const Source sh = source_index(oh, g.H, g.OH, g.scale_h, g.bilinear, g.align_corners);
  const Source sw = source_index(ow, g.W, g.OW, g.scale_w, g.bilinear, g.align_corners);
  Taps<T> taps;
  taps.plane = o / (g.OW * g.OH);
  taps.h[0] = sh.low, taps.h[1] = sh.high, taps.w[0] = sw.low, taps.w[1] = sw.high;
  const T wh[2] = {T(1.0 - sh.frac), T(sh.frac)}, ww[2] = {T(1.0 - sw.frac), T(sw.frac)};
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) taps.weight[a][b] = wh[a] * ww[b];
  return taps;
}

template <typename T>
RB_HD T upsample_output(const UpsampleDims& g, const T* x, int64_t o) {
  const Taps<T> t = output_taps<T>(g, o);
  const T* plane = x + t.plane * g.H * g.W;
  T sum = T(0);
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 2; ++b) sum += t.weight[a][b] * plane[t.h[a] * g.W + t.w[b]];
  return sum;
}

template <typename T>
__global__ void upsample_kernel(UpsampleDims g, const T* __restrict__ x, T* __restrict__ y, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) y[o] = upsample_output(g, x, o);
}

template <typename T>
__global__ void upsample_backward_kernel(UpsampleDims g, const T* __restrict__ dy, T* __restrict__ dx, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) {
    const Taps<T> t = output_taps<T>(g, o);
    T* plane = dx + t.plane * g.H * g.W;
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        if (t.weight[a][b] != T(0)) atomicAdd(plane + t.h[a] * g.W + t.w[b], t.weight[a][b] * dy[o]);
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
    const Taps<T> t = output_taps<T>(g, o);
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b)
        if (t.weight[a][b] != T(0)) dx[t.plane * g.H * g.W + t.h[a] * g.W + t.w[b]] += t.weight[a][b] * dy[o];
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
