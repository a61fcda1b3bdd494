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

#define RB_POOL_INSTANTIATE(T)                                                                                   \
  template void max_pool2d_window<T>(const PoolGeometry&, const T*, int64_t, int64_t, T*, int64_t*);             \
  template T avg_pool2d_window<T>(const PoolGeometry&, const AvgOptions&, const T*, int64_t, int64_t);           \
  template void max_pool2d_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*, int64_t*);                \
  template void max_pool2d_backward_ref<T>(int64_t, int64_t, int64_t, int64_t, const T*, const int64_t*, T*);    \
  template void avg_pool2d_ref<T>(const PoolGeometry&, const AvgOptions&, int64_t, int64_t, const T*, T*);       \
  template void avg_pool2d_backward_ref<T>(const PoolGeometry&, const AvgOptions&, int64_t, int64_t, const T*, T*); \
  template void adaptive_max_pool2d_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*, int64_t*);       \
  template void adaptive_avg_pool2d_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*);                 \
  template void adaptive_avg_pool2d_backward_ref<T>(const PoolGeometry&, int64_t, int64_t, const T*, T*);
RB_POOL_INSTANTIATE(float)
RB_POOL_INSTANTIATE(double)
#undef RB_POOL_INSTANTIATE

}  // namespace rb
