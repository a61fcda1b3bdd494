// Pooling dispatch: planes are split across threads on every path; within a plane the AVX2
// kernel runs float32 max/avg pooling; float32 adaptive max and RoI max pooling run with 8 planes
// (channels) in the lanes of a vector (roi_pool_avx2.cpp); the reference runs float64, the scalar
// ISA and the ops without a vector kernel (backward scatters, adaptive average pooling: few outputs
// or scatter access that vectors do not speed up).
#include "pool/pool.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>
#include <vector>

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
  if constexpr (kIsFloat<T>) {
    if (avx2_active() && fits_int32_lanes(g)) {
      std::vector<int64_t> rows(size_t(2 * g.OH)), cols(size_t(2 * g.OW));
      adaptive_windows(g.H, g.OH, rows.data());
      adaptive_windows(g.W, g.OW, cols.data());
      for_plane_chunks(g.planes, 2 * g.H * g.W, [&](int64_t p0, int64_t p1) {
        adaptive_max_pool2d_avx2(g, rows.data(), cols.data(), p0, p1, x, y, idx);
      });
      record_impl("adaptive_max_pool2d", "avx2_plane_lanes");
      return;
    }
  }
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

// ---- RoI max pooling ----

namespace {

// The AVX2 path copies at most this many floats per output (see roi_pool_channel_lanes).
constexpr int64_t kRoiCopyPerOutput = 16;

// The AVX2 path: each RoI's bins computed once; the part of each image that some bin covers copied in
// channel blocks, channels last (RoiRegion), so a tap of a bin is one vector load per 8 channels; then
// (RoI, channel block) pairs split across threads in guided chunks: RoIs differ in size, and a chunk of
// a few pairs (each a fraction of a microsecond with SPP-net's small boxes) left 2 threads no faster than 1.
// Returns false, having written nothing, where the copy would cost more than the reference's whole work:
// a few small boxes far apart on a large map (the copy costs 0.2-0.6 ns a float, the reference 5-15 ns
// an output; two one-pixel boxes in opposite corners of 256x100x100 took 1.6 ms copied, 0.13 ms by the reference).
bool roi_pool_channel_lanes(const RoiPoolGeometry& g, const float* x, const float* rois, float* y, int64_t* argmax) {
  const int64_t per_roi = 2 * (g.PH + g.PW), blocks = (g.C + kRoiChannelBlock - 1) / kRoiChannelBlock;
  const int team = g.K * g.C * g.PH * g.PW >= 4096 ? available_threads() : 1;
  std::vector<int64_t> bins(size_t(g.K * per_roi)), batch(size_t(g.K));
  parallel_for(team, g.K, [&](int64_t k) {
    int64_t* rows = bins.data() + k * per_roi;
    batch[size_t(k)] = roi_pool_bins(g, rois + 5 * k, rows, rows + 2 * g.PH);
  });

  // Per image, the rows and columns its non-empty bins cover.
  std::vector<RoiRegion> regions(size_t(g.N), RoiRegion{nullptr, g.H, 0, g.W, 0});
  for (int64_t k = 0; k < g.K; ++k) {
    const int64_t* rows = bins.data() + k * per_roi;
    const int64_t* cols = rows + 2 * g.PH;
    int64_t h0 = g.H, h1 = 0, w0 = g.W, w1 = 0;
    for (int64_t ph = 0; ph < g.PH; ++ph)
      if (rows[2 * ph] < rows[2 * ph + 1]) h0 = std::min(h0, rows[2 * ph]), h1 = std::max(h1, rows[2 * ph + 1]);
    for (int64_t pw = 0; pw < g.PW; ++pw)
      if (cols[2 * pw] < cols[2 * pw + 1]) w0 = std::min(w0, cols[2 * pw]), w1 = std::max(w1, cols[2 * pw + 1]);
    if (h1 <= h0 || w1 <= w0) continue;  // every bin empty: nothing read
    RoiRegion& r = regions[size_t(batch[size_t(k)])];
    r.h0 = std::min(r.h0, h0), r.h1 = std::max(r.h1, h1), r.w0 = std::min(r.w0, w0), r.w1 = std::max(r.w1, w1);
  }
  for (RoiRegion& r : regions)
    if (r.h1 <= r.h0) r = RoiRegion{nullptr, 0, 0, 0, 0};  // no bin reads this image
  const int64_t pixel_floats = (g.C + 7) / 8 * 8;
  const auto floats = [&](const RoiRegion& r) { return (r.h1 - r.h0) * (r.w1 - r.w0) * pixel_floats; };
  int64_t total = 0;
  for (const RoiRegion& r : regions) total += floats(r);
  if (total > kRoiCopyPerOutput * g.K * g.C * g.PH * g.PW) return false;
  float* copy = thread_scratch_of<float>(ScratchSlot::pool, size_t(std::max<int64_t>(total, 1)));
  for (RoiRegion& r : regions) {
    r.data = copy;
    copy += floats(r);
  }
  parallel_for(team, g.N * g.H, [&](int64_t i) {
    const int64_t n = i / g.H, h = i % g.H;
    const RoiRegion& r = regions[size_t(n)];
    if (h >= r.h0 && h < r.h1) roi_region_row_avx2(x + n * g.C * g.H * g.W, g.C, g.H, g.W, h, r);
  });

  const int64_t out_roi = g.C * g.PH * g.PW;
#pragma omp parallel for schedule(guided) num_threads(team) if (team > 1)
  for (int64_t i = 0; i < g.K * blocks; ++i) {
    const int64_t k = i / blocks, c0 = i % blocks * kRoiChannelBlock;
    const int64_t* rows = bins.data() + k * per_roi;
    roi_pool_block_avx2(g, regions[size_t(batch[size_t(k)])], rows, rows + 2 * g.PH, c0, y + k * out_roi,
                        argmax ? argmax + k * out_roi : nullptr);
  }
  return true;
}

}  // namespace

// x (N, C, H, W), rois (K, 5) -> y, argmax (K, C, PH, PW); argmax may be null (no gradient wanted)
template <typename T>
void roi_pool_forward(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois, int64_t PH,
                      int64_t PW, double spatial_scale, T* y, int64_t* argmax) {
  const RoiPoolGeometry g{N, C, H, W, K, PH, PW, spatial_scale};
  if constexpr (kIsFloat<T>) {
    if (avx2_active() && H * W < (int64_t(1) << 31) &&  // flat indices in 32-bit lanes
        roi_pool_channel_lanes(g, x, rois, y, argmax)) {
      record_impl("roi_pool", "avx2_channel_lanes");
      return;
    }
  }
  // Threads split the (RoI, channel) pairs.
  for_plane_chunks(K * C, 8 * PH * PW, [&](int64_t i0, int64_t i1) { roi_pool_ref(g, i0, i1, x, rois, y, argmax); });
  record_impl("roi_pool", "scalar_ref");
}

// dy, argmax (K, C, PH, PW) -> dx (N, C, H, W). RoIs of one image overlap, so threads split channels;
// each thread walks the RoIs in order and, within a RoI, its own channels, so that dy and argmax are
// read as a stream (the channel-outer order read them C times with a stride: 6 ms against 0.5 ms for
// the forward on localize's finest pyramid level). Every dx element still sums its terms in RoI
// order, as before.
template <typename T>
void roi_pool_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* rois, int64_t PH, int64_t PW,
                       const T* dy, const int64_t* argmax, T* dx) {
  const int64_t plane_size = H * W, bins = PH * PW;
  const int threads = K * C * bins > 4096 ? available_threads() : 1;
#pragma omp parallel num_threads(threads) if (threads > 1)
  {
    const int team = omp_get_num_threads(), tid = omp_get_thread_num();
    const int64_t c0 = C * tid / team, c1 = C * (tid + 1) / team;
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = c0; c < c1; ++c) std::fill_n(dx + (n * C + c) * plane_size, plane_size, T(0));
    for (int64_t k = 0; k < K; ++k) {
      T* image = dx + int64_t(rois[k * 5]) * C * plane_size;
      for (int64_t c = c0; c < c1; ++c) {
        const int64_t o = (k * C + c) * bins;
        T* plane = image + c * plane_size;
        for (int64_t b = 0; b < bins; ++b)
          if (argmax[o + b] >= 0) plane[argmax[o + b]] += dy[o + b];
      }
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
