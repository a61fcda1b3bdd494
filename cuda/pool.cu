// Pooling on planes x (P, H, W) -> y (P, OH, OW), P = N * C; the rules are those of the CPU
// reference (csrc/pool/pool_ref.cpp), which is the spec: torch's windows, divisors and indices.
//
// Memory-bound: one thread per output in a grid-stride loop, consecutive threads along OW (the
// reads of a warp are then contiguous or strided by sW within a few cache lines). Index arithmetic
// is 32-bit when the arrays allow it. Backward passes gather where the windows are known (average
// pooling: each input sums the outputs whose windows hold it, in the reference's order, no atomics)
// and scatter with atomicAdd where only indices are (max and RoI pooling: windows may overlap).
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <stdexcept>

#include "check.h"
#include "conv_kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

constexpr int kThreads = 256;

#define RB_HD __host__ __device__ __forceinline__

// Each kernel's work for one element is a function of its flat index, callable on the host too:
// pool_simulated_on_host runs it for every index (tests without a GPU).

// Element o of a C-contiguous (P, rows, cols) array as (plane, row, col), in Index arithmetic.
template <typename Index>
struct PlanePosition {
  Index plane, row, col;
  RB_HD PlanePosition(int64_t o, int64_t rows, int64_t cols) {
    const Index i = static_cast<Index>(o), r = static_cast<Index>(rows), c = static_cast<Index>(cols);
    col = i % c;
    const Index rest = i / c;
    row = rest % r;
    plane = rest / r;
  }
};

RB_HD int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
RB_HD int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }

template <typename T>
RB_HD bool is_nan(T v) { return v != v; }

// The average-pooling window of output (oh, ow) clipped to the image, and its divisor
// (avg_pool2d_bounds in the reference).
struct AvgWindow {
  int64_t h0, h1, w0, w1, divisor;
};
RB_HD AvgWindow avg_window(const PoolDims& g, bool count_include_pad, int64_t divisor_override, int64_t oh,
                           int64_t ow) {
  int64_t hs = oh * g.sH - g.pH, ws = ow * g.sW - g.pW;
  int64_t he = std::min(hs + g.kH, g.H + g.pH), we = std::min(ws + g.kW, g.W + g.pW);
  const int64_t padded_count = (he - hs) * (we - ws);
  hs = std::max<int64_t>(hs, 0);
  ws = std::max<int64_t>(ws, 0);
  he = std::min(he, g.H);
  we = std::min(we, g.W);
  const int64_t divisor = divisor_override   ? divisor_override
                          : count_include_pad ? padded_count
                                              : std::max<int64_t>((he - hs) * (we - ws), 0);
  return {hs, he, ws, we, divisor};
}

// y[o], idx[o] (idx may be null): the window's first maximum, or its last NaN (NaN propagates).
template <typename T, typename Index>
RB_HD void max_pool_output(const PoolDims& g, bool adaptive, const T* x, T* y, int64_t* idx, int64_t o) {
  const PlanePosition<Index> at(o, g.OH, g.OW);
  const T* plane = x + static_cast<int64_t>(at.plane) * g.H * g.W;
  int64_t h0, h1, w0, w1, step_h = g.dH, step_w = g.dW;  // taps h0, h0 + step_h, ... < h1 (likewise w)
  if (adaptive) {
    h0 = adaptive_start(at.row, g.H, g.OH);
    h1 = adaptive_end(at.row, g.H, g.OH);
    w0 = adaptive_start(at.col, g.W, g.OW);
    w1 = adaptive_end(at.col, g.W, g.OW);
    step_h = step_w = 1;
  } else {
    h0 = static_cast<int64_t>(at.row) * g.sH - g.pH;
    h1 = h0 + g.kH * g.dH;
    w0 = static_cast<int64_t>(at.col) * g.sW - g.pW;
    w1 = w0 + g.kW * g.dW;
  }
  T best = T(-INFINITY);
  int64_t best_index = -1;
  for (int64_t ih = h0; ih < h1; ih += step_h) {
    if (ih < 0 || ih >= g.H) continue;
    for (int64_t iw = w0; iw < w1; iw += step_w) {
      if (iw < 0 || iw >= g.W) continue;
      const T v = plane[ih * g.W + iw];
      if (best_index < 0 || v > best || is_nan(v)) {
        best = v;
        best_index = ih * g.W + iw;
      }
    }
  }
  y[o] = best;
  if (idx) idx[o] = best_index;
}

template <typename T, typename Index>
RB_HD T avg_pool_output(const PoolDims& g, bool count_include_pad, int64_t divisor_override, const T* x, int64_t o) {
  const PlanePosition<Index> at(o, g.OH, g.OW);
  const T* plane = x + static_cast<int64_t>(at.plane) * g.H * g.W;
  const AvgWindow win = avg_window(g, count_include_pad, divisor_override, at.row, at.col);
  T sum = T(0);
  for (int64_t ih = win.h0; ih < win.h1; ++ih)
    for (int64_t iw = win.w0; iw < win.w1; ++iw) sum += plane[ih * g.W + iw];
  return win.divisor != 0 ? sum / T(win.divisor) : T(0);  // 0: a window with no taps
}

// dx[i]: the sum, in the reference's order (oh, then ow, ascending), of dy / divisor over the
// outputs whose clipped windows hold input i.
template <typename T, typename Index>
RB_HD T avg_pool_input_gradient(const PoolDims& g, bool count_include_pad, int64_t divisor_override, const T* dy,
                                int64_t i) {
  const PlanePosition<Index> at(i, g.H, g.W);
  const int64_t h = at.row, w = at.col;
  const T* grad = dy + static_cast<int64_t>(at.plane) * g.OH * g.OW;
  // Output oh's window starts at oh sH - pH and spans kH rows: it holds h when h + pH - kH < oh sH <= h + pH.
  const int64_t oh0 = h + g.pH - g.kH < 0 ? 0 : (h + g.pH - g.kH) / g.sH + 1;
  const int64_t oh1 = std::min((h + g.pH) / g.sH, g.OH - 1);
  const int64_t ow0 = w + g.pW - g.kW < 0 ? 0 : (w + g.pW - g.kW) / g.sW + 1;
  const int64_t ow1 = std::min((w + g.pW) / g.sW, g.OW - 1);
  T sum = T(0);
  for (int64_t oh = oh0; oh <= oh1; ++oh)
    for (int64_t ow = ow0; ow <= ow1; ++ow) {
      const AvgWindow win = avg_window(g, count_include_pad, divisor_override, oh, ow);
      if (win.divisor == 0 || h < win.h0 || h >= win.h1 || w < win.w0 || w >= win.w1) continue;
      sum += grad[oh * g.OW + ow] / T(win.divisor);
    }
  return sum;
}

template <typename T, typename Index>
RB_HD T adaptive_avg_output(const PoolDims& g, const T* x, int64_t o) {
  const PlanePosition<Index> at(o, g.OH, g.OW);
  const T* plane = x + static_cast<int64_t>(at.plane) * g.H * g.W;
  const int64_t h0 = adaptive_start(at.row, g.H, g.OH), h1 = adaptive_end(at.row, g.H, g.OH);
  const int64_t w0 = adaptive_start(at.col, g.W, g.OW), w1 = adaptive_end(at.col, g.W, g.OW);
  T sum = T(0);
  for (int64_t ih = h0; ih < h1; ++ih)
    for (int64_t iw = w0; iw < w1; ++iw) sum += plane[ih * g.W + iw];
  return sum / T((h1 - h0) * (w1 - w0));
}

// dx[i]: outputs o with start(o) <= h < end(o) are those with h OH / H - 1 < o < (h + 1) OH / H;
// each candidate is checked against its window exactly.
template <typename T, typename Index>
RB_HD T adaptive_avg_input_gradient(const PoolDims& g, const T* dy, int64_t i) {
  const PlanePosition<Index> at(i, g.H, g.W);
  const int64_t h = at.row, w = at.col;
  const T* grad = dy + static_cast<int64_t>(at.plane) * g.OH * g.OW;
  const int64_t oh0 = (h * g.OH) / g.H, oh1 = std::min(((h + 1) * g.OH + g.H - 1) / g.H, g.OH);
  const int64_t ow0 = (w * g.OW) / g.W, ow1 = std::min(((w + 1) * g.OW + g.W - 1) / g.W, g.OW);
  T sum = T(0);
  for (int64_t oh = oh0; oh < oh1; ++oh) {
    const int64_t h0 = adaptive_start(oh, g.H, g.OH), h1 = adaptive_end(oh, g.H, g.OH);
    if (h < h0 || h >= h1) continue;
    for (int64_t ow = ow0; ow < ow1; ++ow) {
      const int64_t w0 = adaptive_start(ow, g.W, g.OW), w1 = adaptive_end(ow, g.W, g.OW);
      if (w < w0 || w >= w1) continue;
      sum += grad[oh * g.OW + ow] / T((h1 - h0) * (w1 - w0));
    }
  }
  return sum;
}

// ---- RoI pooling: torchvision's rules, as roi_box / roi_bin in csrc/pool/pool.cpp ----
RB_HD float round_of(float v) { return roundf(v); }
RB_HD double round_of(double v) { return round(v); }
RB_HD float floor_of(float v) { return floorf(v); }
RB_HD double floor_of(double v) { return floor(v); }
RB_HD float ceil_of(float v) { return ceilf(v); }
RB_HD double ceil_of(double v) { return ceil(v); }

template <typename T>
RB_HD void roi_bin(int64_t bin, T bin_size, int64_t roi_start, int64_t limit, int64_t* start, int64_t* end) {
  const int64_t s = static_cast<int64_t>(floor_of(T(bin) * bin_size));
  const int64_t e = static_cast<int64_t>(ceil_of(T(bin + 1) * bin_size));
  *start = std::min(std::max<int64_t>(s + roi_start, 0), limit);
  *end = std::min(std::max<int64_t>(e + roi_start, 0), limit);
}

struct RoiShape {
  int64_t C, H, W, PH, PW;
};

// y[o], argmax[o] for output o of (K, C, PH, PW): the bin's maximum (0 and -1 for an empty bin); argmax may
// be null (no gradient wanted).
template <typename T>
RB_HD void roi_pool_output(const RoiShape& r, const T* x, const T* rois, double spatial_scale, T* y, int64_t* argmax,
                           int64_t o) {
  const int64_t pw = o % r.PW, ph = (o / r.PW) % r.PH, c = (o / (r.PW * r.PH)) % r.C, k = o / (r.PW * r.PH * r.C);
  const T* roi = rois + k * 5;
  const T s = T(spatial_scale);
  const int64_t x0 = static_cast<int64_t>(round_of(roi[1] * s)), y0 = static_cast<int64_t>(round_of(roi[2] * s));
  const int64_t x1 = static_cast<int64_t>(round_of(roi[3] * s)), y1 = static_cast<int64_t>(round_of(roi[4] * s));
  const int64_t width = std::max<int64_t>(x1 - x0 + 1, 1), height = std::max<int64_t>(y1 - y0 + 1, 1);
  const T bin_h = T(height) / T(r.PH), bin_w = T(width) / T(r.PW);
  int64_t h0, h1, w0, w1;
  roi_bin(ph, bin_h, y0, r.H, &h0, &h1);
  roi_bin(pw, bin_w, x0, r.W, &w0, &w1);
  const T* plane = x + (static_cast<int64_t>(roi[0]) * r.C + c) * r.H * r.W;
  const bool empty = h1 <= h0 || w1 <= w0;
  T best = empty ? T(0) : -std::numeric_limits<T>::max();
  int64_t best_index = -1;
  for (int64_t h = h0; h < h1; ++h)
    for (int64_t w = w0; w < w1; ++w)
      if (plane[h * r.W + w] > best) {
        best = plane[h * r.W + w];
        best_index = h * r.W + w;
      }
  y[o] = best;
  if (argmax) argmax[o] = best_index;
}

// ---- kernels: grid-stride loops over the elements above ----

template <typename T, typename Index>
__global__ void max_pool2d_kernel(PoolDims g, bool adaptive, const T* __restrict__ x, T* __restrict__ y,
                                  int64_t* __restrict__ idx, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) max_pool_output<T, Index>(g, adaptive, x, y, idx, o);
}

template <typename T>
__global__ void max_pool2d_backward_kernel(int64_t in_plane, int64_t out_plane, const T* __restrict__ dy,
                                           const int64_t* __restrict__ idx, T* __restrict__ dx, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) {
    const int64_t k = idx[o];
    if (k >= 0 && k < in_plane) atomicAdd(dx + (o / out_plane) * in_plane + k, dy[o]);
  }
}

template <typename T, typename Index>
__global__ void avg_pool2d_kernel(PoolDims g, bool count_include_pad, int64_t divisor_override,
                                  const T* __restrict__ x, T* __restrict__ y, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads())
    y[o] = avg_pool_output<T, Index>(g, count_include_pad, divisor_override, x, o);
}

template <typename T, typename Index>
__global__ void avg_pool2d_backward_kernel(PoolDims g, bool count_include_pad, int64_t divisor_override,
                                           const T* __restrict__ dy, T* __restrict__ dx, int64_t total) {
  for (int64_t i = global_thread_index(); i < total; i += grid_threads())
    dx[i] = avg_pool_input_gradient<T, Index>(g, count_include_pad, divisor_override, dy, i);
}

template <typename T, typename Index>
__global__ void adaptive_avg_pool2d_kernel(PoolDims g, const T* __restrict__ x, T* __restrict__ y, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) y[o] = adaptive_avg_output<T, Index>(g, x, o);
}

template <typename T, typename Index>
__global__ void adaptive_avg_pool2d_backward_kernel(PoolDims g, const T* __restrict__ dy, T* __restrict__ dx,
                                                    int64_t total) {
  for (int64_t i = global_thread_index(); i < total; i += grid_threads())
    dx[i] = adaptive_avg_input_gradient<T, Index>(g, dy, i);
}

template <typename T>
__global__ void roi_pool_kernel(RoiShape r, const T* __restrict__ x, const T* __restrict__ rois, double spatial_scale,
                                T* __restrict__ y, int64_t* __restrict__ argmax, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads())
    roi_pool_output(r, x, rois, spatial_scale, y, argmax, o);
}

template <typename T>
__global__ void roi_pool_backward_kernel(RoiShape r, const T* __restrict__ rois, const T* __restrict__ dy,
                                         const int64_t* __restrict__ argmax, T* __restrict__ dx, int64_t total) {
  for (int64_t o = global_thread_index(); o < total; o += grid_threads()) {
    const int64_t a = argmax[o];
    if (a < 0 || a >= r.H * r.W) continue;
    const int64_t c = (o / (r.PW * r.PH)) % r.C, k = o / (r.PW * r.PH * r.C);
    atomicAdd(dx + (static_cast<int64_t>(rois[k * 5]) * r.C + c) * r.H * r.W + a, dy[o]);
  }
}

// 32-bit decomposition of output (or input) positions when both arrays have fewer than 2^31 elements.
bool fits_int32(int64_t a, int64_t b) { return a < (int64_t(1) << 31) && b < (int64_t(1) << 31); }

void zero(void* p, int64_t bytes, cudaStream_t stream, const char* op) {
  if (bytes > 0) RB_CUDA_CHECK(op, cudaMemsetAsync(p, 0, static_cast<size_t>(bytes), stream));
}

}  // namespace

template <typename T>
void max_pool2d_forward_cuda(const PoolDims& g, bool adaptive, const T* x, T* y, int64_t* idx, cudaStream_t stream) {
  const char* op = adaptive ? "adaptive_max_pool2d" : "max_pool2d";
  const int64_t total = g.planes * g.OH * g.OW;
  if (total == 0) return;
  const unsigned blocks = grid_stride_blocks(total, kThreads);
  if (fits_int32(total, g.planes * g.H * g.W))
    max_pool2d_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, adaptive, x, y, idx, total);
  else
    max_pool2d_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(g, adaptive, x, y, idx, total);
  check_launch(op, "max_pool2d_kernel");
}

template <typename T>
void max_pool2d_backward_cuda(int64_t planes, int64_t in_plane, int64_t out_plane, const T* dy, const int64_t* idx,
                              T* dx, cudaStream_t stream) {
  const char* op = "max_pool2d_backward";
  zero(dx, planes * in_plane * int64_t(sizeof(T)), stream, op);
  const int64_t total = planes * out_plane;
  if (total == 0) return;
  max_pool2d_backward_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(in_plane, out_plane, dy,
                                                                                              idx, dx, total);
  check_launch(op, "max_pool2d_backward_kernel");
}

template <typename T>
void avg_pool2d_forward_cuda(const PoolDims& g, bool count_include_pad, int64_t divisor_override, const T* x, T* y,
                             cudaStream_t stream) {
  const int64_t total = g.planes * g.OH * g.OW;
  if (total == 0) return;
  const unsigned blocks = grid_stride_blocks(total, kThreads);
  if (fits_int32(total, g.planes * g.H * g.W))
    avg_pool2d_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, count_include_pad, divisor_override, x, y, total);
  else
    avg_pool2d_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(g, count_include_pad, divisor_override, x, y, total);
  check_launch("avg_pool2d", "avg_pool2d_kernel");
}

template <typename T>
void avg_pool2d_backward_cuda(const PoolDims& g, bool count_include_pad, int64_t divisor_override, const T* dy, T* dx,
                              cudaStream_t stream) {
  const int64_t total = g.planes * g.H * g.W;
  if (total == 0) return;
  const unsigned blocks = grid_stride_blocks(total, kThreads);
  if (fits_int32(total, g.planes * g.OH * g.OW))
    avg_pool2d_backward_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, count_include_pad, divisor_override, dy, dx,
                                                                         total);
  else
    avg_pool2d_backward_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(g, count_include_pad, divisor_override, dy,
                                                                             dx, total);
  check_launch("avg_pool2d_backward", "avg_pool2d_backward_kernel");
}

template <typename T>
void adaptive_avg_pool2d_forward_cuda(const PoolDims& g, const T* x, T* y, cudaStream_t stream) {
  const int64_t total = g.planes * g.OH * g.OW;
  if (total == 0) return;
  const unsigned blocks = grid_stride_blocks(total, kThreads);
  if (fits_int32(total, g.planes * g.H * g.W))
    adaptive_avg_pool2d_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, x, y, total);
  else
    adaptive_avg_pool2d_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(g, x, y, total);
  check_launch("adaptive_avg_pool2d", "adaptive_avg_pool2d_kernel");
}

template <typename T>
void adaptive_avg_pool2d_backward_cuda(const PoolDims& g, const T* dy, T* dx, cudaStream_t stream) {
  const int64_t total = g.planes * g.H * g.W;
  if (total == 0) return;
  const unsigned blocks = grid_stride_blocks(total, kThreads);
  if (fits_int32(total, g.planes * g.OH * g.OW))
    adaptive_avg_pool2d_backward_kernel<T, int><<<blocks, kThreads, 0, stream>>>(g, dy, dx, total);
  else
    adaptive_avg_pool2d_backward_kernel<T, int64_t><<<blocks, kThreads, 0, stream>>>(g, dy, dx, total);
  check_launch("adaptive_avg_pool2d_backward", "adaptive_avg_pool2d_backward_kernel");
}

template <typename T>
void roi_pool_forward_cuda(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois,
                           int64_t PH, int64_t PW, double spatial_scale, T* y, int64_t* argmax, cudaStream_t stream) {
  const int64_t total = K * C * PH * PW;
  if (total == 0) return;
  roi_pool_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(RoiShape{C, H, W, PH, PW}, x, rois,
                                                                                   spatial_scale, y, argmax, total);
  check_launch("roi_pool", "roi_pool_kernel");
}

template <typename T>
void roi_pool_backward_cuda(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* rois, int64_t PH,
                            int64_t PW, const T* dy, const int64_t* argmax, T* dx, cudaStream_t stream) {
  const char* op = "roi_pool_backward";
  zero(dx, N * C * H * W * int64_t(sizeof(T)), stream, op);
  const int64_t total = K * C * PH * PW;
  if (total == 0) return;
  roi_pool_backward_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(
      RoiShape{C, H, W, PH, PW}, rois, dy, argmax, dx, total);
  check_launch(op, "roi_pool_backward_kernel");
}

template <typename T>
void pool_simulated_on_host(PoolPass pass, const PoolDims& g, bool count_include_pad, int64_t divisor_override,
                            const T* in, T* out, int64_t* idx) {
  const int64_t outputs = g.planes * g.OH * g.OW, inputs = g.planes * g.H * g.W;
  if (!fits_int32(outputs, inputs)) throw std::invalid_argument("pool_simulated_on_host: small shapes only");
  switch (pass) {
    case PoolPass::max:
    case PoolPass::adaptive_max:
      for (int64_t o = 0; o < outputs; ++o) max_pool_output<T, int>(g, pass == PoolPass::adaptive_max, in, out, idx, o);
      break;
    case PoolPass::avg:
      for (int64_t o = 0; o < outputs; ++o) out[o] = avg_pool_output<T, int>(g, count_include_pad, divisor_override, in, o);
      break;
    case PoolPass::avg_backward:
      for (int64_t i = 0; i < inputs; ++i)
        out[i] = avg_pool_input_gradient<T, int>(g, count_include_pad, divisor_override, in, i);
      break;
    case PoolPass::adaptive_avg:
      for (int64_t o = 0; o < outputs; ++o) out[o] = adaptive_avg_output<T, int>(g, in, o);
      break;
    case PoolPass::adaptive_avg_backward:
      for (int64_t i = 0; i < inputs; ++i) out[i] = adaptive_avg_input_gradient<T, int>(g, in, i);
      break;
  }
}

template <typename T>
void roi_pool_simulated_on_host(int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois, int64_t PH,
                                int64_t PW, double spatial_scale, T* y, int64_t* argmax) {
  for (int64_t o = 0; o < K * C * PH * PW; ++o) roi_pool_output(RoiShape{C, H, W, PH, PW}, x, rois, spatial_scale, y, argmax, o);
}

#define RB_POOL_INSTANTIATE(T)                                                                                        \
  template void max_pool2d_forward_cuda<T>(const PoolDims&, bool, const T*, T*, int64_t*, cudaStream_t);              \
  template void max_pool2d_backward_cuda<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, T*, cudaStream_t);   \
  template void avg_pool2d_forward_cuda<T>(const PoolDims&, bool, int64_t, const T*, T*, cudaStream_t);               \
  template void avg_pool2d_backward_cuda<T>(const PoolDims&, bool, int64_t, const T*, T*, cudaStream_t);              \
  template void adaptive_avg_pool2d_forward_cuda<T>(const PoolDims&, const T*, T*, cudaStream_t);                     \
  template void adaptive_avg_pool2d_backward_cuda<T>(const PoolDims&, const T*, T*, cudaStream_t);                    \
  template void roi_pool_forward_cuda<T>(int64_t, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t,    \
                                         int64_t, double, T*, int64_t*, cudaStream_t);                                \
  template void roi_pool_backward_cuda<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, int64_t,    \
                                          const T*, const int64_t*, T*, cudaStream_t);                      \
  template void pool_simulated_on_host<T>(PoolPass, const PoolDims&, bool, int64_t, const T*, T*, int64_t*);          \
  template void roi_pool_simulated_on_host<T>(int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t,        \
                                              int64_t, double, T*, int64_t*);
RB_POOL_INSTANTIATE(float)
RB_POOL_INSTANTIATE(double)
#undef RB_POOL_INSTANTIATE

}  // namespace rb::cuda
