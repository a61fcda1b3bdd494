// Pooling dispatch: planes are split across threads on every path; within a plane the AVX2
// kernel runs float32 max/avg pooling, and the reference runs float64, the scalar ISA and the
// ops without a vector kernel (backward scatters, adaptive windows, RoI bins: few outputs or
// gather/scatter access that vectors do not speed up).
#include "pool/pool.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/dispatch.h"

namespace rb {

namespace {

// body(p0, p1) over chunks of planes, in parallel when the work is worth a fork: one contiguous
// chunk per thread, so that a kernel's setup (say the narrow path's tap table) runs once per thread,
// not once per plane (the digits CNN's 1024 planes of 8x8: 64 us a call, mostly setup).
template <typename Body>
void for_plane_chunks(int64_t planes, int64_t work_per_plane, Body body) {
  const int threads = available_threads();
  if (threads == 1 || planes * work_per_plane < 32768) {
    body(0, planes);
    return;
  }
#pragma omp parallel num_threads(int(std::min<int64_t>(threads, planes)))
  {
    const int64_t t = omp_get_thread_num(), team = omp_get_num_threads();
    body(planes * t / team, planes * (t + 1) / team);
  }
}

template <typename T>
constexpr bool kIsFloat = std::is_same_v<T, float>;

bool avx2_active() { return active_isa() == Isa::avx2; }

// Taps visited for all of a plane's outputs: a window visits only its taps inside the image (taps_inside),
// and the bound keeps the product in range when the window is vastly larger than the image.
int64_t window_work(const PoolGeometry& g) { return g.OH * g.OW * std::min(g.kH, g.H) * std::min(g.kW, g.W); }

// The vector kernels keep tap indices in 32-bit lanes.
bool fits_int32_lanes(const PoolGeometry& g) { return g.H * g.W < (int64_t(1) << 31); }

}  // namespace

template <typename T>
void max_pool2d_forward(const PoolGeometry& g, const T* x, T* y, int64_t* idx) {
  const int64_t work = g.H * g.W + window_work(g);
  if constexpr (kIsFloat<T>) {
    if (!idx && avx512_active() && max_pool2d_3x3s2_avx512_applies(g)) {
      for_plane_chunks(g.planes, work, [&](int64_t p0, int64_t p1) {
        float* ring = thread_scratch_of<float>(ScratchSlot::pool, size_t(max_pool2d_3x3s2_ring_floats(g)));
        max_pool2d_3x3s2_avx512(g, p0, p1, x, y, ring);
      });
      record_impl("max_pool2d", "avx512_3x3s2");
      return;
    }
    if (avx2_active() && fits_int32_lanes(g)) {
      for_plane_chunks(g.planes, work, [&](int64_t p0, int64_t p1) { max_pool2d_avx2(g, p0, p1, x, y, idx); });
      record_impl("max_pool2d", max_pool2d_avx2_impl(g, idx != nullptr));
      return;
    }
  }
  for_plane_chunks(g.planes, work, [&](int64_t p0, int64_t p1) { max_pool2d_ref(g, p0, p1, x, y, idx); });
  record_impl("max_pool2d", "scalar_ref");
}

template <typename T>
void max_pool2d_backward(int64_t planes, int64_t in_plane, int64_t out_plane, const T* dy, const int64_t* idx, T* dx,
                         const char* op) {
  for_plane_chunks(planes, in_plane + out_plane, [&](int64_t p0, int64_t p1) {
    max_pool2d_backward_ref(p0, p1, in_plane, out_plane, dy, idx, dx);
  });
  record_impl(op, "scalar_scatter");
}

template <typename T>
void avg_pool2d_forward(const PoolGeometry& g, const AvgOptions& opt, const T* x, T* y) {
  const int64_t work = g.H * g.W + window_work(g);
  if constexpr (kIsFloat<T>) {
    if (avx2_active()) {
      for_plane_chunks(g.planes, work, [&](int64_t p0, int64_t p1) { avg_pool2d_avx2(g, opt, p0, p1, x, y); });
      record_impl("avg_pool2d", avg_pool2d_avx2_impl(g));
      return;
    }
  }
  for_plane_chunks(g.planes, work, [&](int64_t p0, int64_t p1) { avg_pool2d_ref(g, opt, p0, p1, x, y); });
  record_impl("avg_pool2d", "scalar_ref");
}

template <typename T>
void avg_pool2d_backward(const PoolGeometry& g, const AvgOptions& opt, const T* dy, T* dx) {
  for_plane_chunks(g.planes, g.H * g.W + window_work(g),
                   [&](int64_t p0, int64_t p1) { avg_pool2d_backward_ref(g, opt, p0, p1, dy, dx); });
  record_impl("avg_pool2d_backward", "scalar_scatter");
}

template <typename T>
void adaptive_max_pool2d_forward(const PoolGeometry& g, const T* x, T* y, int64_t* idx) {
  for_plane_chunks(g.planes, 2 * g.H * g.W,
                   [&](int64_t p0, int64_t p1) { adaptive_max_pool2d_ref(g, p0, p1, x, y, idx); });
  record_impl("adaptive_max_pool2d", "scalar_ref");
}

template <typename T>
void adaptive_avg_pool2d_forward(const PoolGeometry& g, const T* x, T* y) {
  for_plane_chunks(g.planes, 2 * g.H * g.W, [&](int64_t p0, int64_t p1) { adaptive_avg_pool2d_ref(g, p0, p1, x, y); });
  record_impl("adaptive_avg_pool2d", "scalar_ref");
}

template <typename T>
void adaptive_avg_pool2d_backward(const PoolGeometry& g, const T* dy, T* dx) {
  for_plane_chunks(g.planes, 2 * g.H * g.W,
                   [&](int64_t p0, int64_t p1) { adaptive_avg_pool2d_backward_ref(g, p0, p1, dy, dx); });
  record_impl("adaptive_avg_pool2d_backward", "scalar_scatter");
}

// ---- RoI max pooling, torchvision's rules (the reference; threads split channels) ----

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

template <typename T>
RoiBox roi_box(const T* roi, double scale) {
  const T s = T(scale);
  const int64_t x0 = int64_t(std::round(roi[1] * s)), y0 = int64_t(std::round(roi[2] * s));
  const int64_t x1 = int64_t(std::round(roi[3] * s)), y1 = int64_t(std::round(roi[4] * s));
  return {int64_t(roi[0]), x0, y0, std::max<int64_t>(x1 - x0 + 1, 1), std::max<int64_t>(y1 - y0 + 1, 1)};
}

}  // namespace

// x (N, C, H, W), rois (K, 5) -> y, argmax (K, C, PH, PW)
template <typename T>
void roi_pool_forward(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois, int64_t PH,
                      int64_t PW, double spatial_scale, T* y, int64_t* argmax) {
#pragma omp parallel for collapse(2) schedule(static) num_threads(available_threads()) if (K * C * PH * PW > 4096)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t c = 0; c < C; ++c) {
      const RoiBox box = roi_box(rois + k * 5, spatial_scale);
      const T bin_h = T(box.height) / T(PH), bin_w = T(box.width) / T(PW);
      const T* plane = x + (box.batch * C + c) * H * W;
      for (int64_t ph = 0; ph < PH; ++ph)
        for (int64_t pw = 0; pw < PW; ++pw) {
          int64_t h0, h1, w0, w1;
          roi_bin(ph, bin_h, box.y0, H, &h0, &h1);
          roi_bin(pw, bin_w, box.x0, W, &w0, &w1);
          const bool empty = h1 <= h0 || w1 <= w0;
          T best = empty ? T(0) : -std::numeric_limits<T>::max();
          int64_t best_index = -1;
          for (int64_t h = h0; h < h1; ++h)
            for (int64_t w = w0; w < w1; ++w)
              if (plane[h * W + w] > best) {
                best = plane[h * W + w];
                best_index = h * W + w;
              }
          const int64_t o = ((k * C + c) * PH + ph) * PW + pw;
          y[o] = best;
          argmax[o] = best_index;
        }
    }
  record_impl("roi_pool", "scalar_ref");
}

// dy, argmax (K, C, PH, PW) -> dx (N, C, H, W). RoIs of one image overlap, so threads split channels.
template <typename T>
void roi_pool_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* rois, int64_t PH, int64_t PW,
                       const T* dy, const int64_t* argmax, T* dx) {
  for (int64_t i = 0; i < N * C * H * W; ++i) dx[i] = T(0);
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (K * C * PH * PW > 4096)
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) {
      T* plane = dx + (int64_t(rois[k * 5]) * C + c) * H * W;
      for (int64_t b = 0; b < PH * PW; ++b) {
        const int64_t o = (k * C + c) * PH * PW + b;
        if (argmax[o] >= 0) plane[argmax[o]] += dy[o];
      }
    }
  record_impl("roi_pool_backward", "scalar_ref");
}

#define RB_POOL_DISPATCH_INSTANTIATE(T)                                                                              \
  template void max_pool2d_forward<T>(const PoolGeometry&, const T*, T*, int64_t*);                                  \
  template void max_pool2d_backward<T>(int64_t, int64_t, int64_t, const T*, const int64_t*, T*, const char*);        \
  template void avg_pool2d_forward<T>(const PoolGeometry&, const AvgOptions&, const T*, T*);                         \
  template void avg_pool2d_backward<T>(const PoolGeometry&, const AvgOptions&, const T*, T*);                        \
  template void adaptive_max_pool2d_forward<T>(const PoolGeometry&, const T*, T*, int64_t*);                         \
  template void adaptive_avg_pool2d_forward<T>(const PoolGeometry&, const T*, T*);                                   \
  template void adaptive_avg_pool2d_backward<T>(const PoolGeometry&, const T*, T*);                                  \
  template void roi_pool_forward<T>(int64_t, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, int64_t, \
                                    double, T*, int64_t*);                                                           \
  template void roi_pool_backward<T>(int64_t, int64_t, int64_t, int64_t, int64_t, const T*, int64_t, int64_t,        \
                                     const T*, const int64_t*, T*);
RB_POOL_DISPATCH_INSTANTIATE(float)
RB_POOL_DISPATCH_INSTANTIATE(double)
#undef RB_POOL_DISPATCH_INSTANTIATE

}  // namespace rb
