// Scalar reference pooling: one output window at a time, plain loops. The spec for the fast paths.
#include <algorithm>
#include <cmath>
#include <limits>

#include "pool/pool.h"

namespace rb {

// plane (H, W) -> *out = max over the dilated window of output (oh, ow), *idx = its flat index (if idx)
template <typename T>
void max_pool2d_window(const PoolGeometry& g, const T* plane, int64_t oh, int64_t ow, T* out, int64_t* idx) {
  T best = -std::numeric_limits<T>::infinity();
  int64_t best_index = -1;
  int64_t i0, i1, j0, j1;
  taps_inside(oh * g.sH - g.pH, g.dH, g.kH, g.H, &i0, &i1);
  taps_inside(ow * g.sW - g.pW, g.dW, g.kW, g.W, &j0, &j1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ih = oh * g.sH - g.pH + i * g.dH;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t iw = ow * g.sW - g.pW + j * g.dW;
      const T v = plane[ih * g.W + iw];
      if (best_index < 0 || v > best || std::isnan(v)) {
        best = v;
        best_index = ih * g.W + iw;
      }
    }
  }
  *out = best;
  if (idx) *idx = best_index;
}

void avg_pool2d_bounds(const PoolGeometry& g, const AvgOptions& opt, int64_t oh, int64_t ow, int64_t* h0, int64_t* h1,
                       int64_t* w0, int64_t* w1, int64_t* divisor) {
  int64_t hs = oh * g.sH - g.pH, ws = ow * g.sW - g.pW;
  int64_t he = std::min(hs + g.kH, g.H + g.pH), we = std::min(ws + g.kW, g.W + g.pW);
  const int64_t padded_count = (he - hs) * (we - ws);
  hs = std::max<int64_t>(hs, 0);
  ws = std::max<int64_t>(ws, 0);
  he = std::min(he, g.H);
  we = std::min(we, g.W);
  *h0 = hs, *h1 = he, *w0 = ws, *w1 = we;
  *divisor = opt.divisor_override ? opt.divisor_override
             : opt.count_include_pad ? padded_count
                                     : std::max<int64_t>((he - hs) * (we - ws), 0);
}

template <typename T>
T avg_pool2d_window(const PoolGeometry& g, const AvgOptions& opt, const T* plane, int64_t oh, int64_t ow) {
  int64_t h0, h1, w0, w1, divisor;
  avg_pool2d_bounds(g, opt, oh, ow, &h0, &h1, &w0, &w1, &divisor);
  T sum = T(0);
  for (int64_t ih = h0; ih < h1; ++ih)
    for (int64_t iw = w0; iw < w1; ++iw) sum += plane[ih * g.W + iw];
  return divisor != 0 ? sum / T(divisor) : T(0);  // 0: a window with no taps
}

// x (P, H, W) -> y, idx (P, OH, OW) for planes [p0, p1)
template <typename T>
void max_pool2d_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* x, T* y, int64_t* idx) {
  const int64_t out_plane = g.OH * g.OW;
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t o = p * out_plane + oh * g.OW + ow;
        max_pool2d_window(g, x + p * g.H * g.W, oh, ow, y + o, idx ? idx + o : nullptr);
      }
}

// dy, idx (P, OH*OW) -> dx (P, H*W) for planes [p0, p1): zeroed, then each gradient added at its argmax
template <typename T>
void max_pool2d_backward_ref(int64_t p0, int64_t p1, int64_t in_plane, int64_t out_plane, const T* dy,
                             const int64_t* idx, T* dx) {
  for (int64_t p = p0; p < p1; ++p) {
    T* plane = dx + p * in_plane;
    for (int64_t i = 0; i < in_plane; ++i) plane[i] = T(0);
    for (int64_t o = p * out_plane; o < (p + 1) * out_plane; ++o)
      if (idx[o] >= 0) plane[idx[o]] += dy[o];
  }
}

// x (P, H, W) -> y (P, OH, OW) for planes [p0, p1)
template <typename T>
void avg_pool2d_ref(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const T* x, T* y) {
  for (int64_t p = p0; p < p1; ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow)
        y[(p * g.OH + oh) * g.OW + ow] = avg_pool2d_window(g, opt, x + p * g.H * g.W, oh, ow);
}

// dy (P, OH, OW) -> dx (P, H, W): each output's gradient / divisor added to every tap of its window
template <typename T>
void avg_pool2d_backward_ref(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const T* dy, T* dx) {
  for (int64_t p = p0; p < p1; ++p) {
    T* plane = dx + p * g.H * g.W;
    for (int64_t i = 0; i < g.H * g.W; ++i) plane[i] = T(0);
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        int64_t h0, h1, w0, w1, divisor;
        avg_pool2d_bounds(g, opt, oh, ow, &h0, &h1, &w0, &w1, &divisor);
        if (divisor == 0) continue;  // a window with no taps
        const T share = dy[(p * g.OH + oh) * g.OW + ow] / T(divisor);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) plane[ih * g.W + iw] += share;
      }
  }
}

namespace {
inline int64_t adaptive_start(int64_t o, int64_t in, int64_t out) { return (o * in) / out; }
inline int64_t adaptive_end(int64_t o, int64_t in, int64_t out) { return ((o + 1) * in + out - 1) / out; }
}  // namespace

void adaptive_windows(int64_t in, int64_t out, int64_t* bounds) {
  for (int64_t o = 0; o < out; ++o) {
    bounds[2 * o] = adaptive_start(o, in, out);
    bounds[2 * o + 1] = adaptive_end(o, in, out);
  }
}

// x (P, H, W) -> y, idx (P, OH, OW): max over rows [floor(oh H/OH), ceil((oh+1) H/OH)) x columns likewise
template <typename T>
void adaptive_max_pool2d_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* x, T* y, int64_t* idx) {
  for (int64_t p = p0; p < p1; ++p) {
    const T* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        T best = -std::numeric_limits<T>::infinity();
        int64_t best_index = -1;
        for (int64_t ih = adaptive_start(oh, g.H, g.OH); ih < adaptive_end(oh, g.H, g.OH); ++ih)
          for (int64_t iw = adaptive_start(ow, g.W, g.OW); iw < adaptive_end(ow, g.W, g.OW); ++iw) {
            const T v = plane[ih * g.W + iw];
            if (best_index < 0 || v > best || std::isnan(v)) {
              best = v;
              best_index = ih * g.W + iw;
            }
          }
        const int64_t o = (p * g.OH + oh) * g.OW + ow;
        y[o] = best;
        if (idx) idx[o] = best_index;
      }
  }
}

// x (P, H, W) -> y (P, OH, OW): mean over the adaptive window
template <typename T>
void adaptive_avg_pool2d_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* x, T* y) {
  for (int64_t p = p0; p < p1; ++p) {
    const T* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t h0 = adaptive_start(oh, g.H, g.OH), h1 = adaptive_end(oh, g.H, g.OH);
        const int64_t w0 = adaptive_start(ow, g.W, g.OW), w1 = adaptive_end(ow, g.W, g.OW);
        T sum = T(0);
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) sum += plane[ih * g.W + iw];
        y[(p * g.OH + oh) * g.OW + ow] = sum / T((h1 - h0) * (w1 - w0));
      }
  }
}

// dy (P, OH, OW) -> dx (P, H, W)
template <typename T>
void adaptive_avg_pool2d_backward_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* dy, T* dx) {
  for (int64_t p = p0; p < p1; ++p) {
    T* plane = dx + p * g.H * g.W;
    for (int64_t i = 0; i < g.H * g.W; ++i) plane[i] = T(0);
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t h0 = adaptive_start(oh, g.H, g.OH), h1 = adaptive_end(oh, g.H, g.OH);
        const int64_t w0 = adaptive_start(ow, g.W, g.OW), w1 = adaptive_end(ow, g.W, g.OW);
        const T share = dy[(p * g.OH + oh) * g.OW + ow] / T((h1 - h0) * (w1 - w0));
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t iw = w0; iw < w1; ++iw) plane[ih * g.W + iw] += share;
      }
  }
}

// ---- RoI max pooling, torchvision's rules ----

namespace {

// The image rows [*start, *end) of bin `bin` of a RoI spanning [roi_start, roi_start + roi_size) scaled pixels.
template <typename T>
void roi_bin(int64_t bin, T bin_size, int64_t roi_start, int64_t limit, int64_t* start, int64_t* end) {
  const int64_t s = int64_t(std::floor(T(bin) * bin_size)), e = int64_t(std::ceil(T(bin + 1) * bin_size));
  *start = std::min(std::max<int64_t>(s + roi_start, 0), limit);
  *end = std::min(std::max<int64_t>(e + roi_start, 0), limit);
}

struct RoiBox {
  int64_t batch, x0, y0, width, height;
};

// Corners scaled and rounded in T (half away from zero), as torchvision; a box has at least one pixel.
template <typename T>
RoiBox roi_box(const T* roi, double scale) {
  const T s = T(scale);
  const int64_t x0 = int64_t(std::round(roi[1] * s)), y0 = int64_t(std::round(roi[2] * s));
  const int64_t x1 = int64_t(std::round(roi[3] * s)), y1 = int64_t(std::round(roi[4] * s));
  return {int64_t(roi[0]), x0, y0, std::max<int64_t>(x1 - x0 + 1, 1), std::max<int64_t>(y1 - y0 + 1, 1)};
}

}  // namespace

// x (N, C, H, W), rois (K, 5) -> y, argmax (K, C, PH, PW) for the (RoI, channel) pairs [i0, i1), i = k C + c;
// argmax may be null (the index is then tracked but not stored: the values do not depend on it).
// Each pair recomputes its box and every bin's bounds (the fast path computes them once per RoI,
// through roi_pool_bins below: the same functions, so the same bins).
template <typename T>
void roi_pool_ref(const RoiPoolGeometry& g, int64_t i0, int64_t i1, const T* x, const T* rois, T* y,
                  int64_t* argmax) {
  // Locals, not g's fields: the stores to argmax (int64_t) could alias those and reload them every tap.
  const int64_t C = g.C, H = g.H, W = g.W, PH = g.PH, PW = g.PW;
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t k = i / C, c = i % C;
    const RoiBox box = roi_box(rois + k * 5, g.spatial_scale);
    const T bin_h = T(box.height) / T(PH), bin_w = T(box.width) / T(PW);
    const T* plane = x + (box.batch * C + c) * H * W;
    for (int64_t ph = 0; ph < PH; ++ph)
      for (int64_t pw = 0; pw < PW; ++pw) {
        int64_t h0, h1, w0, w1;
        roi_bin(ph, bin_h, box.y0, H, &h0, &h1);
        roi_bin(pw, bin_w, box.x0, W, &w0, &w1);
        const bool empty = h1 <= h0 || w1 <= w0;
        // v > best from -max: NaN, -inf and -max itself are never taken (see pool.h).
        T best = empty ? T(0) : -std::numeric_limits<T>::max();
        int64_t best_index = -1;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w)
            if (plane[h * W + w] > best) {
              best = plane[h * W + w];
              best_index = h * W + w;
            }
        const int64_t o = (i * PH + ph) * PW + pw;
        y[o] = best;
        if (argmax) argmax[o] = best_index;
      }
  }
}

template <typename T>
int64_t roi_pool_bins(const RoiPoolGeometry& g, const T* roi, int64_t* rows, int64_t* cols) {
  const RoiBox box = roi_box(roi, g.spatial_scale);
  const T bin_h = T(box.height) / T(g.PH), bin_w = T(box.width) / T(g.PW);
  for (int64_t ph = 0; ph < g.PH; ++ph) roi_bin(ph, bin_h, box.y0, g.H, rows + 2 * ph, rows + 2 * ph + 1);
  for (int64_t pw = 0; pw < g.PW; ++pw) roi_bin(pw, bin_w, box.x0, g.W, cols + 2 * pw, cols + 2 * pw + 1);
  return box.batch;
}

#define RB_POOL_INSTANTIATE(T)                                                                                   \
  template void max_pool2d_window<T>(const PoolGeometry&, const T*, int64_t, int64_t, T*, int64_t*);             \
  template T avg_pool2d_window<T>(const PoolGeometry&, const AvgOptions&, const T*, int64_t, int64_t);           \
  template void max_pool2d_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*, int64_t*);                \
  template void max_pool2d_backward_ref<T>(int64_t, int64_t, int64_t, int64_t, const T*, const int64_t*, T*);    \
  template void avg_pool2d_ref<T>(const PoolGeometry&, const AvgOptions&, int64_t, int64_t, const T*, T*);       \
  template void avg_pool2d_backward_ref<T>(const PoolGeometry&, const AvgOptions&, int64_t, int64_t, const T*, T*); \
  template void adaptive_max_pool2d_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*, int64_t*);       \
  template void adaptive_avg_pool2d_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*);                 \
  template void adaptive_avg_pool2d_backward_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*);         \
  template void roi_pool_ref<T>(const RoiPoolGeometry&, int64_t, int64_t, const T*, const T*, T*, int64_t*);     \
  template int64_t roi_pool_bins<T>(const RoiPoolGeometry&, const T*, int64_t*, int64_t*);
RB_POOL_INSTANTIATE(float)
RB_POOL_INSTANTIATE(double)
#undef RB_POOL_INSTANTIATE

}  // namespace rb
