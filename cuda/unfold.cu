// im2col / col2im of whole batches (F.unfold / F.fold): x (N, C, H, W) <-> cols (N, C*kH*kW, OH*OW),
// row (c, i, j), column (oh, ow), as the CPU module's im2col / col2im (csrc/conv/conv.cpp).
// The convolutions do not use these (their GEMMs gather in place); unfold, fold and the locally
// connected layer do. im2col: one thread per element of cols; col2im: one thread per element of x,
// summing the columns that hold it (in the order (i, j) ascending, as the CPU adds them): no atomics.
#include <cstdint>

#include "check.h"
#include "conv_kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

#define RB_HD __host__ __device__ __forceinline__

constexpr int kThreads = 256;

template <typename T>
RB_HD T im2col_element(const ConvDims& d, const T* x, int64_t e) {
  const int64_t L = int64_t(d.OH) * d.OW, taps = int64_t(d.kH) * d.kW, rows = d.C * taps;
  const int64_t l = e % L, r = (e / L) % rows, n = e / (L * rows);
  const int64_t c = r / taps, tap = r % taps, i = tap / d.kW, j = tap % d.kW;
  const int64_t ih = (l / d.OW) * d.sH - d.pH + i * d.dH, iw = (l % d.OW) * d.sW - d.pW + j * d.dW;
  if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) return T(0);
  return x[((n * d.C + c) * d.H + ih) * d.W + iw];
}

template <typename T>
RB_HD T col2im_element(const ConvDims& d, const T* cols, int64_t e) {
  const int64_t L = int64_t(d.OH) * d.OW, taps = int64_t(d.kH) * d.kW;
  const int64_t w = e % d.W, h = (e / d.W) % d.H, c = (e / (int64_t(d.W) * d.H)) % d.C;
  const int64_t n = e / (int64_t(d.W) * d.H * d.C);
  const T* block = cols + (n * d.C + c) * taps * L;  // rows (c, 0, 0) .. (c, kH-1, kW-1) of image n
  T sum = T(0);
  for (int64_t i = 0; i < d.kH; ++i) {
    const int64_t th = h + d.pH - i * d.dH;
    if (th < 0 || th % d.sH != 0 || th / d.sH >= d.OH) continue;
    for (int64_t j = 0; j < d.kW; ++j) {
      const int64_t tw = w + d.pW - j * d.dW;
      if (tw < 0 || tw % d.sW != 0 || tw / d.sW >= d.OW) continue;
      sum += block[(i * d.kW + j) * L + (th / d.sH) * d.OW + tw / d.sW];
    }
  }
  return sum;
}

template <typename T>
__global__ void im2col_kernel(ConvDims d, const T* __restrict__ x, T* __restrict__ cols, int64_t total) {
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) cols[e] = im2col_element(d, x, e);
}

template <typename T>
__global__ void col2im_kernel(ConvDims d, const T* __restrict__ cols, T* __restrict__ x, int64_t total) {
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) x[e] = col2im_element(d, cols, e);
}

}  // namespace

template <typename T>
void im2col_cuda(const ConvDims& d, const T* x, T* cols, cudaStream_t stream) {
  const int64_t total = int64_t(d.N) * d.C * d.kH * d.kW * d.OH * d.OW;
  if (total == 0) return;
  im2col_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(d, x, cols, total);
  check_launch("unfold", "im2col_kernel");
}

template <typename T>
void col2im_cuda(const ConvDims& d, const T* cols, T* x, cudaStream_t stream) {
  const int64_t total = int64_t(d.N) * d.C * d.H * d.W;
  if (total == 0) return;
  col2im_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(d, cols, x, total);
  check_launch("fold", "col2im_kernel");
}

template <typename T>
void unfold_simulated_on_host(const ConvDims& d, const T* x, T* cols, const T* cols_in, T* x_out) {
  for (int64_t e = 0; e < int64_t(d.N) * d.C * d.kH * d.kW * d.OH * d.OW; ++e) cols[e] = im2col_element(d, x, e);
  for (int64_t e = 0; e < int64_t(d.N) * d.C * d.H * d.W; ++e) x_out[e] = col2im_element(d, cols_in, e);
}

#define RB_UNFOLD_INSTANTIATE(T)                                                         \
  template void im2col_cuda<T>(const ConvDims&, const T*, T*, cudaStream_t);            \
  template void col2im_cuda<T>(const ConvDims&, const T*, T*, cudaStream_t);            \
  template void unfold_simulated_on_host<T>(const ConvDims&, const T*, T*, const T*, T*);
RB_UNFOLD_INSTANTIATE(float)
RB_UNFOLD_INSTANTIATE(double)
#undef RB_UNFOLD_INSTANTIATE

}  // namespace rb::cuda
