// Up-sampling (and down-sampling) of planes x (P, H, W) -> y (P, OH, OW), nearest or bilinear:
// F.interpolate with torch's source-index rules and arithmetic, shared by the CPU kernel
// (upsample.cpp) and the CUDA one (cuda/upsample.cu), so both give torch's values and torch's NaNs.
//
// Along each axis an output index reads at most two inputs, `low` and `high`, with weights:
//   nearest:  the output index itself when the sizes are equal, dst / 2 when the output is twice
//             the input, else min(floor(float(dst) * float(ratio)), in - 1); weights (1, 0), and the
//             value is gathered, not multiplied (an inf stays inf).
//   bilinear: the output index itself with weights (1, 0) when the sizes are equal; else the source
//             position src = ratio' * dst (align_corners, ratio' = (in - 1) / (out - 1)) or
//             max(ratio * (dst + 0.5) - 0.5, 0) (one fused multiply-add, as torch's compiled kernel),
//             low = min(floor(float(src)), in - 1) (rounded to float first even in double, as torch),
//             high = low + 1 but at the last input, weights (1 - frac, frac), frac = src - low
//             clamped to [0, 1]. Where the exact position is an integer these roundings decide which
//             tap gets weight 0, and so where a neighbouring inf turns into NaN (0 * inf).
// `ratio` is torch's in / out ratio: 1 / scale_factor when a factor was given, else in / out, taken
// in the input's precision (nearest: always float, as torch). The bilinear value is
//   (x[low_h, low_w] w_lw + x[low_h, high_w] w_hw) w_lh + (x[high_h, low_w] w_lw + ...) w_hh,
// every tap included even at weight 0 (so 0 * inf = NaN there, as torch), and the backward adds
// (w_h w_w) * dy to each of the four taps, output by output.
#pragma once
#include <math.h>

#include <cstdint>

#if defined(__CUDACC__)
#define RB_UPSAMPLE_FN __host__ __device__ inline
#else
#define RB_UPSAMPLE_FN inline
#endif

namespace rb {

struct UpsampleDims {
  int64_t planes, H, W, OH, OW;
  double scale_h, scale_w;  // torch's in / out ratios (1 / scale_factor when a factor was given)
  bool bilinear, align_corners;
};

template <typename T>
struct UpsampleTap {
  int64_t low, high;
  T weight_low, weight_high;
};

RB_UPSAMPLE_FN float fused_multiply_add(float a, float b, float c) { return fmaf(a, b, c); }
RB_UPSAMPLE_FN double fused_multiply_add(double a, double b, double c) { return fma(a, b, c); }

// A whole-number source position as an index, at most in - 1. Compared as a float before the
// cast: a position past int64's range (a ratio no F.interpolate call makes, 1e20 say) or NaN would
// make the cast undefined (on x86 INT64_MIN, which then read row 0).
RB_UPSAMPLE_FN int64_t last_at_most(float whole, int64_t in) {
  return whole < static_cast<float>(in - 1) ? static_cast<int64_t>(whole) : in - 1;
}

// The inputs and weights of output index dst along an axis of `in` inputs and `out` outputs.
template <typename T>
RB_UPSAMPLE_FN UpsampleTap<T> upsample_tap(int64_t dst, int64_t in, int64_t out, double ratio, bool bilinear,
                                           bool align_corners) {
  if (!bilinear) {
    int64_t src = dst;
    if (out == 2 * in) {
      src = dst >> 1;
    } else if (out != in) {
      src = last_at_most(floorf(static_cast<float>(dst) * static_cast<float>(ratio)), in);
    }
    return {src, src, T(1), T(0)};
  }
  if (out == in) return {dst, dst, T(1), T(0)};
  T src;
  if (align_corners) {
    src = out > 1 ? T(in - 1) / T(out - 1) * T(dst) : T(0);
  } else {
    src = fused_multiply_add(static_cast<T>(ratio), T(dst) + T(0.5), T(-0.5));
    if (src < T(0)) src = T(0);
  }
  const int64_t low = last_at_most(floorf(static_cast<float>(src)), in);  // float, even for double (torch)
  T frac = src - T(low);
  frac = frac < T(0) ? T(0) : frac > T(1) ? T(1) : frac;
  return {low, low < in - 1 ? low + 1 : low, T(1) - frac, frac};
}

// One output of a plane (rows W apart) from its row and column taps.
template <typename T>
RB_UPSAMPLE_FN T upsample_value(const T* plane, int64_t W, const UpsampleTap<T>& h, const UpsampleTap<T>& w,
                                bool bilinear) {
  if (!bilinear) return plane[h.low * W + w.low];
  const T* top = plane + h.low * W;
  const T* bottom = plane + h.high * W;
  const T upper = top[w.low] * w.weight_low + top[w.high] * w.weight_high;
  const T lower = bottom[w.low] * w.weight_low + bottom[w.high] * w.weight_high;
  return upper * h.weight_low + lower * h.weight_high;
}

// add(flat index in the plane, amount) for each tap of one output whose gradient is g.
template <typename T, typename Add>
RB_UPSAMPLE_FN void upsample_scatter(int64_t W, const UpsampleTap<T>& h, const UpsampleTap<T>& w, bool bilinear, T g,
                                     Add&& add) {
  if (!bilinear) {
    add(h.low * W + w.low, g);
    return;
  }
  add(h.low * W + w.low, h.weight_low * w.weight_low * g);
  add(h.low * W + w.high, h.weight_low * w.weight_high * g);
  add(h.high * W + w.low, h.weight_high * w.weight_low * g);
  add(h.high * W + w.high, h.weight_high * w.weight_high * g);
}

// ---- CPU kernels (upsample.cpp): planes split over the threads, each plane's scatter in output order ----
template <typename T>
void upsample2d_forward(const UpsampleDims& g, const T* x, T* y);
template <typename T>
void upsample2d_backward(const UpsampleDims& g, const T* dy, T* dx);  // dx is overwritten

}  // namespace rb
