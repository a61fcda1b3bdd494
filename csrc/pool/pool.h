// 2-D pooling on planes: x (P, H, W) -> y (P, OH, OW), where P = N * C (NCHW arrays, C-contiguous).
//
//   max:  y[p, oh, ow] = max over taps (oh sH - pH + i dH, ow sW - pW + j dW) inside the image;
//         idx = the tap's flat index ih * W + iw in its plane (torch's `indices`): the first maximum,
//         or the last NaN (NaN propagates, as torch).
//   avg:  y = sum over the window clipped to the image / divisor, where the divisor is
//         divisor_override, else the window clipped to the padded image (count_include_pad), else
//         the window clipped to the image (torch's rules, ceil_mode windows included).
//   adaptive: window rows [floor(o H / OH), ceil((o + 1) H / OH)), columns likewise.
// Planes are independent: the dispatchers split them across threads for every path.
#pragma once
#include <cstdint>

namespace rb {

struct PoolGeometry {
  int64_t planes, H, W, OH, OW;
  int64_t kH, kW, sH, sW, pH, pW, dH, dW;
};

// The taps [*first, *last) of a window that starts at `start` (k taps, dilation d) and lie in [0, size).
// Window loops visit only these: with enough padding a window of 2**40 taps over a 4x4 image is valid.
inline void taps_inside(int64_t start, int64_t d, int64_t k, int64_t size, int64_t* first, int64_t* last) {
  if (d == 1) {  // no divisions for the usual windows
    *first = start >= 0 ? 0 : -start;
    *last = size - start < k ? size - start : k;
    return;
  }
  *first = start >= 0 ? 0 : (-start + d - 1) / d;
  *last = start >= size ? 0 : (size - 1 - start) / d + 1 < k ? (size - 1 - start) / d + 1 : k;
}

struct AvgOptions {
  bool count_include_pad;
  int64_t divisor_override;  // 0: none
};

// ---- dispatchers (pool.cpp) ----
template <typename T>
void max_pool2d_forward(const PoolGeometry& g, const T* x, T* y, int64_t* idx);  // idx may be null
// dx (P, H, W) = scatter-add of dy (P, OH, OW) through idx; also the backward of adaptive max pooling.
template <typename T>
void max_pool2d_backward(int64_t planes, int64_t in_plane, int64_t out_plane, const T* dy, const int64_t* idx,
                         T* dx, const char* op);
template <typename T>
void avg_pool2d_forward(const PoolGeometry& g, const AvgOptions& opt, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const PoolGeometry& g, const AvgOptions& opt, const T* dy, T* dx);
// Adaptive pooling: only planes, H, W, OH, OW of the geometry are used.
template <typename T>
void adaptive_max_pool2d_forward(const PoolGeometry& g, const T* x, T* y, int64_t* idx);
template <typename T>
void adaptive_avg_pool2d_forward(const PoolGeometry& g, const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward(const PoolGeometry& g, const T* dy, T* dx);

// RoI max pooling (torchvision.ops.roi_pool): x (N, C, H, W), rois (K, 5) = (batch, x1, y1, x2, y2)
// -> y (K, C, PH, PW) and argmax (K, C, PH, PW) (flat index in the plane, -1 for an empty bin). argmax may
// be null (no gradient wanted): then no index is computed or written, and y is the same, bit for bit.
// Corners are scaled and rounded (half away from zero) in T, a box spans at least one pixel, bin ph
// covers rows [floor(ph h / PH), ceil((ph + 1) h / PH)) of a box of h rows, clipped to the image.
// A bin's maximum follows torchvision's CPU kernel: best starts at -max, the lowest finite T (0 for an
// empty bin), and a value is taken when v > best, in row-major order: the first of equal values wins
// (+0 and -0 are equal), NaN is never taken, and a bin holding only NaN, -inf or -max gives -max with
// argmax -1. (torchvision starts float64 at -FLT_MAX too: a difference only below -3.4e38.)
template <typename T>
void roi_pool_forward(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois, int64_t PH,
                      int64_t PW, double spatial_scale, T* y, int64_t* argmax);
template <typename T>
void roi_pool_backward(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* rois, int64_t PH, int64_t PW,
                       const T* dy, const int64_t* argmax, T* dx);

struct RoiPoolGeometry {
  int64_t N, C, H, W, K, PH, PW;
  double spatial_scale;
};

// ---- the scalar reference on planes [p0, p1) (pool_ref.cpp): the spec ----
template <typename T>
void max_pool2d_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* x, T* y, int64_t* idx);
template <typename T>
void max_pool2d_backward_ref(int64_t p0, int64_t p1, int64_t in_plane, int64_t out_plane, const T* dy,
                             const int64_t* idx, T* dx);
template <typename T>
void avg_pool2d_ref(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const T* x, T* y);
template <typename T>
void avg_pool2d_backward_ref(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const T* dy, T* dx);
template <typename T>
void adaptive_max_pool2d_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* x, T* y, int64_t* idx);
template <typename T>
void adaptive_avg_pool2d_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* x, T* y);
template <typename T>
void adaptive_avg_pool2d_backward_ref(const PoolGeometry& g, int64_t p0, int64_t p1, const T* dy, T* dx);
// RoI pooling of the (RoI, channel) pairs [i0, i1), i = k C + c; argmax may be null.
template <typename T>
void roi_pool_ref(const RoiPoolGeometry& g, int64_t i0, int64_t i1, const T* x, const T* rois, T* y,
                  int64_t* argmax);

// The bins of one RoI, as the reference computes them: rows [rows[2 ph], rows[2 ph + 1]) for ph < PH,
// columns [cols[2 pw], cols[2 pw + 1]) for pw < PW, clipped to the image (empty where end <= start);
// returns the RoI's batch index.
template <typename T>
int64_t roi_pool_bins(const RoiPoolGeometry& g, const T* roi, int64_t* rows, int64_t* cols);
// The windows of adaptive pooling along one axis: [bounds[2 o], bounds[2 o + 1]) for o < out.
void adaptive_windows(int64_t in, int64_t out, int64_t* bounds);

// One output of one plane (used by the reference and by the fast path at the borders).
template <typename T>
void max_pool2d_window(const PoolGeometry& g, const T* plane, int64_t oh, int64_t ow, T* out, int64_t* idx);
template <typename T>
T avg_pool2d_window(const PoolGeometry& g, const AvgOptions& opt, const T* plane, int64_t oh, int64_t ow);
// The avg-pool window of output (oh, ow) clipped to the image, and its divisor.
void avg_pool2d_bounds(const PoolGeometry& g, const AvgOptions& opt, int64_t oh, int64_t ow, int64_t* h0, int64_t* h1,
                       int64_t* w0, int64_t* w1, int64_t* divisor);

// ---- AVX2 fast paths (pool_avx2.cpp): vectors of 8 outputs along W in the image interior ----
void max_pool2d_avx2(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y, int64_t* idx);
const char* max_pool2d_avx2_impl(const PoolGeometry& g, bool with_index);  // which loop max_pool2d_avx2 runs
void avg_pool2d_avx2(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const float* x, float* y);
const char* avg_pool2d_avx2_impl(const PoolGeometry& g);  // which loop avg_pool2d_avx2 runs

// ---- AVX2 max over bins with channels (planes) in the lanes (roi_pool_avx2.cpp) ----
// RoI pooling reads a copy of the part of each image its bins cover, rows [h0, h1) x columns [w0, w1),
// in blocks of kRoiChannelBlock channels, channels last within a block: channel c0 + j of pixel (h, w) at
//   data + c0 * area + ((h - h0) * (w1 - w0) + w - w0) * pitch + j,     area = (h1 - h0) * (w1 - w0),
// where pitch is the block's channel count rounded up to 8 (the padding zero): C rounded up to 8 floats a
// pixel in all. A tap of a bin is then one load per 8 channels, and a block's pixels lie side by side.
constexpr int64_t kRoiChannelBlock = 32;  // 4 vectors of maxima and 4 of indices stay in registers
struct RoiRegion {
  float* data;
  int64_t h0, h1, w0, w1;
};
// Row h of `image` (C, H, W) into its region.
void roi_region_row_avx2(const float* image, int64_t C, int64_t H, int64_t W, int64_t h, const RoiRegion& region);
// The channels [c0, min(c0 + kRoiChannelBlock, C)) of one RoI (c0 a multiple of kRoiChannelBlock): y, argmax
// point at the RoI's (C, PH, PW) outputs (argmax may be null: no index work); rows and cols are its bins
// (roi_pool_bins). Each channel runs the reference's rule on the reference's taps in its order: identical results.
void roi_pool_block_avx2(const RoiPoolGeometry& g, const RoiRegion& region, const int64_t* rows, const int64_t* cols,
                         int64_t c0, float* y, int64_t* argmax);
// Adaptive max pooling of planes [p0, p1), 8 planes at a time transposed into the lanes; rows, cols: the
// windows (adaptive_windows); idx may be null.
void adaptive_max_pool2d_avx2(const PoolGeometry& g, const int64_t* rows, const int64_t* cols, int64_t p0, int64_t p1,
                              const float* x, float* y, int64_t* idx);

// ---- AVX-512 fast path (pool_avx512.cpp; call only where avx512_active()): max 3x3 stride 2, no indices ----
bool max_pool2d_3x3s2_avx512_applies(const PoolGeometry& g);
// ring: max_pool2d_3x3s2_ring_floats(g) floats, 64-byte aligned, the calling thread's own.
void max_pool2d_3x3s2_avx512(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y, float* ring);
inline int64_t max_pool2d_3x3s2_ring_floats(const PoolGeometry& g) { return (g.OW + 15) / 16 * 16; }

}  // namespace rb
