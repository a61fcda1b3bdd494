// AVX2 pooling: 8 neighbouring outputs of a row at once, for windows that lie wholly inside the
// image along W (and, for average pooling, along H). Stride 1 loads taps directly, stride 2
// loads 15 floats and keeps the even lanes, or, for the two taps of a width-2 window, splits 16
// floats into even and odd; other strides and the border outputs go through the reference's
// per-window function, so every output follows the one spec.
// The tap order and the comparison (v > best or v is NaN) are the reference's, so results are identical.
#include <immintrin.h>

#include "common/scratch.h"
#include "pool/pool.h"

namespace rb {
namespace {
// Pooling streams its input once: the hardware prefetcher alone left a thread at about half the
// copy bandwidth, so every row read also asks for the line this many floats (4 KiB) ahead.
constexpr int64_t kPrefetchFloats = 1024;
inline void prefetch_ahead(const float* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchFloats), _MM_HINT_T0);
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchFloats + 15), _MM_HINT_T0);
}

// The 8 floats p[0], p[s], ..., p[7 s] for s in {1, 2}, reading nothing past p[7 s]. For s = 2 they
// come in the lane order 0 1 4 5 2 3 6 7 (one in-lane shuffle; the lane-crossing permute that
// would sort them is slow on Zen): pooling is element-wise across taps, so blocks accumulate in
// this order and in_output_order() sorts the result once.
inline __m256 load_strided(const float* p, int64_t s) {
  if (s == 1) return _mm256_loadu_ps(p);
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 7);  // p0..p7, p7..p14
  return _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 2, 0));          // p0 p2 p8 p10 | p4 p6 p12 p14
}
// The even and odd floats of p[0 .. 15] (the two taps of 8 windows of width 2 at stride 2), in
// load_strided's lane order: two whole loads and two shuffles rather than two load_strided.
inline void load_pairs(const float* p, __m256* even, __m256* odd) {
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  *even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // p0 p2 p8 p10 | p4 p6 p12 p14
  *odd = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));   // p1 p3 p9 p11 | p5 p7 p13 p15
}
// Windows of width 2 at stride 2 (2x2 pooling): each row's two taps come from load_pairs.
inline bool pairs_apply(const PoolGeometry& g) { return g.kW == 2 && g.sW == 2 && g.dW == 1; }

inline __m256 in_output_order(__m256 v, int64_t s) {
  return s == 1 ? v : _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline __m256i in_output_order(__m256i v, int64_t s) {
  return s == 1 ? v : _mm256_permute4x64_epi64(v, _MM_SHUFFLE(3, 1, 2, 0));
}

// The output columns [*first, *end) whose whole window lies inside [0, W).
void interior_columns(const PoolGeometry& g, int64_t* first, int64_t* end) {
  const int64_t lo = (g.pW + g.sW - 1) / g.sW;
  const int64_t last_start = g.W - 1 + g.pW - (g.kW - 1) * g.dW;  // ow * sW may be at most this
  int64_t hi = last_start < 0 ? 0 : last_start / g.sW + 1;
  hi = hi < g.OW ? hi : g.OW;
  *first = lo < hi ? lo : hi;
  *end = hi;
}

// Calls block(ow) for 8-wide blocks covering [first, end) (the last one overlapping its neighbour
// rather than leaving a scalar tail) and returns how far the blocks reached (first if none fit).
template <typename Block>
inline int64_t for_each_block(int64_t first, int64_t end, Block block) {
  if (end - first < 8) return first;
  int64_t ow = first;
  for (; ow + 8 <= end; ow += 8) block(ow);
  if (ow < end) block(end - 8);
  return end;
}

// The maximum of 8 lanes over a sequence of vectors, NaN in a lane that saw a NaN: max_ps keeps the
// earlier value on ties (as the reference), and the NaN mask keeps the dependency chain one max long.
// v with NaN in the lanes where `mask` is set: the maxima below track NaN in a mask beside the value.
inline __m256 nan_where(__m256 mask, __m256 v) {
  return _mm256_blendv_ps(v, _mm256_set1_ps(__builtin_nanf("")), mask);
}

struct RunningMax8 {
  __m256 best = _mm256_set1_ps(-__builtin_inff()), saw_nan = _mm256_setzero_ps();
  void add(__m256 v) {
    best = _mm256_max_ps(v, best);  // v > best ? v : best
    saw_nan = _mm256_or_ps(saw_nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  __m256 result() const { return nan_where(saw_nan, best); }
};

// 8 outputs (oh, ow .. ow + 7) without indices: a running max_ps (which keeps the earlier value on
// ties, as the reference) plus a mask of lanes that saw a NaN, so the dependency chain is one max.
inline void max_block(const PoolGeometry& g, const float* plane, int64_t oh, int64_t ow, float* out) {
  RunningMax8 m;
  const bool pairs = pairs_apply(g);
  int64_t i0, i1;
  taps_inside(oh * g.sH - g.pH, g.dH, g.kH, g.H, &i0, &i1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ih = oh * g.sH - g.pH + i * g.dH;
    const float* row = plane + ih * g.W + ow * g.sW - g.pW;
    prefetch_ahead(row);
    if (pairs) {
      __m256 even, odd;
      load_pairs(row, &even, &odd);
      m.add(even);
      m.add(odd);
    } else {
      for (int64_t j = 0; j < g.kW; ++j) m.add(load_strided(row + j * g.dW, g.sW));
    }
  }
  _mm256_storeu_ps(out, in_output_order(m.result(), g.sW));
}

// One output without its index, branch-free (the reference's data-dependent branch mispredicts
// on every other tap of random data): running max plus a NaN flag, as max_block.
inline float max_window_value(const PoolGeometry& g, const float* plane, int64_t oh, int64_t ow) {
  float best = -__builtin_inff();
  bool saw_nan = false;
  int64_t i0, i1, j0, j1;
  taps_inside(oh * g.sH - g.pH, g.dH, g.kH, g.H, &i0, &i1);
  taps_inside(ow * g.sW - g.pW, g.dW, g.kW, g.W, &j0, &j1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ih = oh * g.sH - g.pH + i * g.dH;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t iw = ow * g.sW - g.pW + j * g.dW;
      const float v = plane[ih * g.W + iw];
      best = v > best ? v : best;
      saw_nan |= v != v;
    }
  }
  return saw_nan ? __builtin_nanf("") : best;
}

// One output with the flat index of its maximum, branch-free on the data: the reference's rule
// (the first tap, then v > best or v is NaN) with selects instead of its data-dependent branch.
// Images narrower than 8 outputs (4x4 after a 2x2 pool of 8x8) run every output through here.
inline void max_window_with_index(const PoolGeometry& g, const float* plane, int64_t oh, int64_t ow, float* out,
                                  int64_t* idx) {
  // (Written with SSE compares and masks: from plain `take ? v : best` GCC emits the branch.)
  __m128 best = _mm_set_ss(-__builtin_inff());
  int64_t best_index = -1;
  int64_t i0, i1, j0, j1;
  taps_inside(oh * g.sH - g.pH, g.dH, g.kH, g.H, &i0, &i1);
  taps_inside(ow * g.sW - g.pW, g.dW, g.kW, g.W, &j0, &j1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ih = oh * g.sH - g.pH + i * g.dH;
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t iw = ow * g.sW - g.pW + j * g.dW;
      const int64_t tap = ih * g.W + iw;
      const __m128 v = _mm_load_ss(plane + tap);
      const int take = (_mm_movemask_ps(_mm_or_ps(_mm_cmpgt_ss(v, best), _mm_cmpunord_ss(v, v))) & 1) |
                       int(best_index < 0);
      const int64_t keep_tap = -int64_t(take);  // all ones when taken
      best = _mm_blendv_ps(best, v, _mm_castsi128_ps(_mm_set1_epi32(-take)));
      best_index = (tap & keep_tap) | (best_index & ~keep_tap);
    }
  }
  *out = _mm_cvtss_f32(best);
  *idx = best_index;
}

// The reference's rule for a tap after the first, in 8 lanes: it is taken where v > best or v is NaN,
// and its index (tap) with it.
inline void take_later_tap(__m256 v, __m256i tap, __m256* best, __m256i* best_index) {
  const __m256 take = _mm256_or_ps(_mm256_cmp_ps(v, *best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  *best = _mm256_blendv_ps(*best, v, take);
  *best_index = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(*best_index), _mm256_castsi256_ps(tap), take));
}

// 8 outputs with the flat index of each maximum: the reference's rule (v > best or v is NaN) per tap.
inline void max_block_with_index(const PoolGeometry& g, const float* plane, int64_t oh, int64_t ow,
                                 __m256i lane_offsets, float* out, int64_t* idx) {
  __m256 best = _mm256_set1_ps(-__builtin_inff());
  __m256i best_index = _mm256_set1_epi32(-1);
  bool first_tap = true;
  int64_t i0, i1;
  taps_inside(oh * g.sH - g.pH, g.dH, g.kH, g.H, &i0, &i1);
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t ih = oh * g.sH - g.pH + i * g.dH;
    for (int64_t j = 0; j < g.kW; ++j) {
      const int64_t tap = ih * g.W + ow * g.sW - g.pW + j * g.dW;
      const __m256 v = load_strided(plane + tap, g.sW);
      const __m256i tap_index = _mm256_add_epi32(_mm256_set1_epi32(int(tap)), lane_offsets);
      if (first_tap) {
        best = v, best_index = tap_index;
        first_tap = false;
      } else {
        take_later_tap(v, tap_index, &best, &best_index);
      }
    }
  }
  _mm256_storeu_ps(out, in_output_order(best, g.sW));
  best_index = in_output_order(best_index, g.sW);
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(best_index)));
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + 4),
                      _mm256_cvtepi32_epi64(_mm256_extracti128_si256(best_index, 1)));
}

// Max pooling without indices over 2x2 windows at stride 2, no padding or dilation (LeNet, VGG,
// FCN): with the taps fixed, each block's four loads, three maxima and NaN test stay in registers
// with no per-row bounds tests: 2-3 times the general loop's rate on data in cache. The maxima
// nest as the running maximum does (first of equal values kept, row-major): identical results.
bool is_plain_2x2(const PoolGeometry& g) {
  return g.kH == 2 && g.kW == 2 && g.sH == 2 && g.sW == 2 && g.pH == 0 && g.pW == 0 && g.dH == 1 && g.dW == 1;
}

// The 2x2 stride-2 windows of a plane without padding: for 8 outputs of a row at a time, combine(e0,
// o0, e1, o1) of the top row's even and odd taps and the bottom row's (in load_strided's lane
// order); window(oh, ow) for the outputs no vector covers (a row's ragged end, ceil_mode's clipped
// last row and column).
template <typename Combine, typename Window>
void for_plain_2x2_windows(const PoolGeometry& g, const float* plane, float* out, int64_t end, Combine combine,
                           Window window) {
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* out_row = out + oh * g.OW;
    const float* top = plane + 2 * oh * g.W;
    const float* bottom = top + g.W;
    const bool whole_row = 2 * oh + 1 < g.H && end >= 8;  // not ceil_mode's clipped last row
    const int64_t vector_end = whole_row ? end : 0;
    for_each_block(0, vector_end, [&](int64_t o) {
      prefetch_ahead(top + 2 * o);
      prefetch_ahead(bottom + 2 * o);
      __m256 e0, o0, e1, o1;
      load_pairs(top + 2 * o, &e0, &o0);
      load_pairs(bottom + 2 * o, &e1, &o1);
      _mm256_storeu_ps(out_row + o, in_output_order(combine(e0, o0, e1, o1), 2));
    });
    for (int64_t ow = vector_end; ow < g.OW; ++ow) out_row[ow] = window(oh, ow);
  }
}

void max_pool_plane_2x2(const PoolGeometry& g, const float* plane, float* out, int64_t end) {
  for_plain_2x2_windows(
      g, plane, out, end,
      [](__m256 e0, __m256 o0, __m256 e1, __m256 o1) {
        const __m256 upper = _mm256_max_ps(o0, e0), lower = _mm256_max_ps(o1, e1);
        const __m256 saw_nan = _mm256_or_ps(_mm256_cmp_ps(e0, o0, _CMP_UNORD_Q), _mm256_cmp_ps(e1, o1, _CMP_UNORD_Q));
        return nan_where(saw_nan, _mm256_max_ps(lower, upper));
      },
      [&](int64_t oh, int64_t ow) { return max_window_value(g, plane, oh, ow); });
}

template <bool kWithIndex>
void max_pool_plane(const PoolGeometry& g, const float* plane, float* out, int64_t* idx) {
  int64_t first, end;
  interior_columns(g, &first, &end);
  const bool vectorise = g.sW == 1 || g.sW == 2;
  // Tap offsets of the 8 lanes, in load_strided's lane order.
  const __m256i lane_offsets = g.sW == 1 ? _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)
                                         : _mm256_setr_epi32(0, 2, 8, 10, 4, 6, 12, 14);
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* out_row = out + oh * g.OW;
    int64_t* idx_row = kWithIndex ? idx + oh * g.OW : nullptr;
    int64_t ow = 0;
    const auto border = [&](int64_t o) {
      if (kWithIndex)
        max_window_with_index(g, plane, oh, o, out_row + o, idx_row + o);
      else
        out_row[o] = max_window_value(g, plane, oh, o);
    };
    for (; ow < first; ++ow) border(ow);
    if (vectorise) {
      ow = for_each_block(first, end, [&](int64_t o) {
        if (kWithIndex)
          max_block_with_index(g, plane, oh, o, lane_offsets, out_row + o, idx_row + o);
        else
          max_block(g, plane, oh, o, out_row + o);
      });
    }
    for (; ow < g.OW; ++ow) border(ow);
  }
}

// ---- planes narrower than a vector --------------------------------------------------------
// A plane narrower than 8 outputs (4x4 after a 2x2 pool of 8x8, 2x2 after the next) has no 8-wide
// block along a row, and every output went through the one-window functions, about 20 cycles each.
// When every window lies wholly inside the image (no padding, no ceil_mode overhang), the plane's
// outputs are taken 8 at a time in row-major order instead, each tap of the 8 windows gathered;
// the windows' first taps come from a table shared by all planes of a call. Taps are compared in
// the reference's order with its rule (the first tap, then v > best or v is NaN): the same values,
// ties and indices. Planes of fewer than 8 outputs (2x2 after two 2x2 pools of 8x8) go kNarrowGroup
// at a time, as one sequence of outputs whose first taps include their plane's offset; their
// indices are made plane-relative again on the way out.
constexpr int64_t kNarrowGroup = 8;

int64_t narrow_group(const PoolGeometry& g) { return g.OH * g.OW >= 8 ? 1 : kNarrowGroup; }

bool narrow_applies(const PoolGeometry& g) {
  return g.OW < 8 && g.pH == 0 && g.pW == 0 && (g.OH - 1) * g.sH + (g.kH - 1) * g.dH < g.H &&
         (g.OW - 1) * g.sW + (g.kW - 1) * g.dW < g.W &&
         narrow_group(g) * g.H * g.W < (int64_t(1) << 31);  // offsets in 32-bit lanes
}

// For a group of narrow_group(g) planes: first_taps[q] = the offset of output q's first tap from the
// group's first plane, outputs in row-major order plane after plane; bases[q] = its plane's offset.
void narrow_first_taps(const PoolGeometry& g, int32_t* first_taps, int32_t* bases) {
  const int64_t out_plane = g.OH * g.OW;
  for (int64_t p = 0; p < narrow_group(g); ++p)
    for (int64_t oh = 0; oh < g.OH; ++oh)
      for (int64_t ow = 0; ow < g.OW; ++ow) {
        const int64_t q = p * out_plane + oh * g.OW + ow;
        bases[q] = int32_t(p * g.H * g.W);
        first_taps[q] = int32_t(bases[q] + oh * g.sH * g.W + ow * g.sW);
      }
}

// The `count` outputs of a group of planes (or of one plane) from `plane`, the first.
template <bool kWithIndex>
void max_pool_plane_narrow(const PoolGeometry& g, const float* plane, int64_t count, const int32_t* first_taps,
                           const int32_t* bases, float* out, int64_t* idx) {
  for_each_block(0, count, [&](int64_t q) {
    const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(first_taps + q));
    __m256 best = _mm256_i32gather_ps(plane, first, 4);  // the first tap is always inside: taken
    __m256i best_index = first;
    for (int64_t t = 1; t < g.kH * g.kW; ++t) {
      const int64_t i = t / g.kW, j = t % g.kW;
      const __m256i tap = _mm256_add_epi32(first, _mm256_set1_epi32(int(i * g.dH * g.W + j * g.dW)));
      take_later_tap(_mm256_i32gather_ps(plane, tap, 4), tap, &best, &best_index);
    }
    _mm256_storeu_ps(out + q, best);
    if (kWithIndex) {
      best_index = _mm256_sub_epi32(best_index, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bases + q)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + q), _mm256_cvtepi32_epi64(_mm256_castsi256_si128(best_index)));
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + q + 4),
                          _mm256_cvtepi32_epi64(_mm256_extracti128_si256(best_index, 1)));
    }
  });
}

// Average pooling over 2x2 windows at stride 2 without padding, as max_pool_plane_2x2: the sum in the
// reference's order ((((0 + top even) + top odd) + bottom even) + bottom odd), then divided. A divisor
// that is a power of two (4, unless divisor_override says otherwise) is a multiplication by its exact
// reciprocal: the same real number, so the same rounding, without vdivps. Against the general loop
// (a branch per window row, a division per vector): 1.9x on data in cache, 1.06x from memory.
void avg_pool_plane_2x2(const PoolGeometry& g, const AvgOptions& opt, const float* plane, float* out, int64_t end) {
  const int64_t divisor = opt.divisor_override ? opt.divisor_override : 4;
  const bool exact_reciprocal = (divisor & (divisor - 1)) == 0;
  const __m256 scale = _mm256_set1_ps(exact_reciprocal ? 1.0f / float(divisor) : float(divisor));
  for_plain_2x2_windows(
      g, plane, out, end,
      [&](__m256 e0, __m256 o0, __m256 e1, __m256 o1) {
        const __m256 sum =
            _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_add_ps(_mm256_setzero_ps(), e0), o0), e1), o1);
        return exact_reciprocal ? _mm256_mul_ps(sum, scale) : _mm256_div_ps(sum, scale);
      },
      [&](int64_t oh, int64_t ow) { return avg_pool2d_window(g, opt, plane, oh, ow); });
}

void avg_pool_plane(const PoolGeometry& g, const AvgOptions& opt, const float* plane, float* out) {
  int64_t first, end;
  interior_columns(g, &first, &end);
  if (is_plain_2x2(g)) {
    avg_pool_plane_2x2(g, opt, plane, out, end);
    return;
  }
  const bool vectorise = g.sW == 1 || g.sW == 2, pairs = pairs_apply(g);
  // A window wholly inside the image has kH * kW taps under every counting rule.
  const __m256 divisor = _mm256_set1_ps(float(opt.divisor_override ? opt.divisor_override : g.kH * g.kW));
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* out_row = out + oh * g.OW;
    const int64_t h0 = oh * g.sH - g.pH;
    const bool row_inside = h0 >= 0 && h0 + g.kH <= g.H;
    int64_t ow = 0;
    if (row_inside && vectorise) {
      for (; ow < first; ++ow) out_row[ow] = avg_pool2d_window(g, opt, plane, oh, ow);
      ow = for_each_block(first, end, [&](int64_t o) {
        __m256 sum = _mm256_setzero_ps();
        for (int64_t i = 0; i < g.kH; ++i) {
          const float* row = plane + (h0 + i) * g.W + o * g.sW - g.pW;
          prefetch_ahead(row);
          if (pairs) {  // the reference's order: ((sum + even) + odd)
            __m256 even, odd;
            load_pairs(row, &even, &odd);
            sum = _mm256_add_ps(_mm256_add_ps(sum, even), odd);
          } else {
            for (int64_t j = 0; j < g.kW; ++j) sum = _mm256_add_ps(sum, load_strided(row + j, g.sW));
          }
        }
        _mm256_storeu_ps(out_row + o, in_output_order(_mm256_div_ps(sum, divisor), g.sW));
      });
    }
    for (; ow < g.OW; ++ow) out_row[ow] = avg_pool2d_window(g, opt, plane, oh, ow);
  }
}

}  // namespace

namespace {

// Max pooling without indices at stride 2 along W, by rows: the maximum of each window row (its kW
// taps) is taken once per input row and kept in a ring of kH rows; an output is then the maximum of
// its window's kH row maxima. With 3x3 windows at stride 2 each input row serves two output rows,
// so the strided loads happen a third less often than with all kH x kW taps per output. Maxima and
// NaN flags combine through RunningMax8 as in max_block (first of equal values kept, row-major), so
// results are identical.
constexpr int64_t kRowRingMax = 8;  // kH up to this many rows
bool rows_apply(const PoolGeometry& g, int64_t first, int64_t end) {
  // Rows pay only when windows overlap along H; 2x2 windows read each row once and take load_pairs.
  return g.sW == 2 && g.dW == 1 && g.dH == 1 && g.sH < g.kH && g.kH <= kRowRingMax && end - first >= 8;
}

// r[o] for o in [0, OW) = max over the kW taps of window column o in this input row (NaN if any
// tap is NaN), in output order: vectors of 8 in [first, end), where the taps come in pairs from
// load_pairs; one at a time at the borders, skipping taps in the padding.
void window_row_maxima(const PoolGeometry& g, const float* row, float* r, int64_t first, int64_t end) {
  if (g.kW == 3) {  // 3x3 windows (ResNet's stem): the taps fixed, as in max_pool_plane_2x2
    for_each_block(first, end, [&](int64_t o) {
      const float* p = row + o * 2 - g.pW;
      prefetch_ahead(p);
      __m256 even, odd;
      load_pairs(p, &even, &odd);
      const __m256 third = load_strided(p + 2, 2);
      const __m256 saw_nan =
          _mm256_or_ps(_mm256_cmp_ps(even, odd, _CMP_UNORD_Q), _mm256_cmp_ps(third, third, _CMP_UNORD_Q));
      const __m256 best = nan_where(saw_nan, _mm256_max_ps(third, _mm256_max_ps(odd, even)));
      _mm256_storeu_ps(r + o, in_output_order(best, 2));
    });
  } else {
    for_each_block(first, end, [&](int64_t o) {
      const float* p = row + o * 2 - g.pW;
      prefetch_ahead(p);
      RunningMax8 m;
      int64_t j = 0;
      for (; j + 1 < g.kW; j += 2) {
        __m256 even, odd;
        load_pairs(p + j, &even, &odd);
        m.add(even);
        m.add(odd);
      }
      if (j < g.kW) m.add(load_strided(p + j, 2));
      _mm256_storeu_ps(r + o, in_output_order(m.result(), 2));
    });
  }
  const auto border = [&](int64_t o) {
    float best = -__builtin_inff();
    bool saw_nan = false;
    for (int64_t j = 0; j < g.kW; ++j) {
      const int64_t iw = o * 2 - g.pW + j;
      if (iw < 0 || iw >= g.W) continue;
      best = row[iw] > best ? row[iw] : best;
      saw_nan |= row[iw] != row[iw];
    }
    r[o] = saw_nan ? __builtin_nanf("") : best;
  };
  for (int64_t o = 0; o < first; ++o) border(o);
  for (int64_t o = end; o < g.OW; ++o) border(o);
}

void max_pool_plane_by_rows(const PoolGeometry& g, const float* plane, float* out, float* ring, int64_t first,
                            int64_t end) {
  int64_t held[kRowRingMax];  // input row whose maxima slot k holds (-1: none)
  for (int64_t k = 0; k < g.kH; ++k) held[k] = -1;
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* out_row = out + oh * g.OW;
    const float* rows[kRowRingMax];
    int64_t count = 0;
    for (int64_t i = 0; i < g.kH; ++i) {
      const int64_t ih = oh * g.sH - g.pH + i;
      if (ih < 0 || ih >= g.H) continue;
      const int64_t slot = ih % g.kH;  // the kH rows of a window are consecutive: distinct slots
      float* r = ring + slot * g.OW;
      if (held[slot] != ih) {
        window_row_maxima(g, plane + ih * g.W, r, first, end);
        held[slot] = ih;
      }
      rows[count++] = r;
    }
    if (count == 3) {  // a whole 3-row window: fixed, as window_row_maxima's 3 taps
      for_each_block(0, g.OW, [&](int64_t o) {
        const __m256 a = _mm256_loadu_ps(rows[0] + o), b = _mm256_loadu_ps(rows[1] + o);
        const __m256 c = _mm256_loadu_ps(rows[2] + o);
        const __m256 saw_nan = _mm256_or_ps(_mm256_cmp_ps(a, b, _CMP_UNORD_Q), _mm256_cmp_ps(c, c, _CMP_UNORD_Q));
        _mm256_storeu_ps(out_row + o, nan_where(saw_nan, _mm256_max_ps(c, _mm256_max_ps(b, a))));
      });
      continue;
    }
    for_each_block(0, g.OW, [&](int64_t o) {  // rows_apply: OW >= 8
      RunningMax8 m;
      for (int64_t c = 0; c < count; ++c) m.add(_mm256_loadu_ps(rows[c] + o));
      _mm256_storeu_ps(out_row + o, m.result());
    });
  }
}

}  // namespace

namespace {
enum class MaxPath { narrow, with_index, plain_2x2, row_ring, blocks };
MaxPath max_path(const PoolGeometry& g, bool with_index) {
  int64_t first, end;
  interior_columns(g, &first, &end);
  if (narrow_applies(g)) return MaxPath::narrow;
  if (with_index) return MaxPath::with_index;
  if (is_plain_2x2(g)) return MaxPath::plain_2x2;
  return rows_apply(g, first, end) ? MaxPath::row_ring : MaxPath::blocks;
}
}  // namespace

const char* max_pool2d_avx2_impl(const PoolGeometry& g, bool with_index) {
  const MaxPath path = max_path(g, with_index);
  if (path == MaxPath::narrow) return "avx2_narrow_gathered";
  if (g.sW > 2) return "avx2_rows_scalar_windows";
  switch (path) {
    case MaxPath::plain_2x2: return "avx2_2x2";
    case MaxPath::row_ring: return "avx2_row_ring";
    default: return "avx2_rows";
  }
}

// x (P, H, W) -> y, idx (P, OH, OW) for planes [p0, p1); idx may be null
void max_pool2d_avx2(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y, int64_t* idx) {
  const int64_t in_plane = g.H * g.W, out_plane = g.OH * g.OW;
  int64_t first, end;
  interior_columns(g, &first, &end);
  const MaxPath path = max_path(g, idx != nullptr);
  float* ring = path == MaxPath::row_ring ? thread_scratch_of<float>(ScratchSlot::pool, size_t(g.kH * g.OW)) : nullptr;
  if (path == MaxPath::narrow) {
    const int64_t group = narrow_group(g), count = group * out_plane;
    int32_t* first_taps = thread_scratch_of<int32_t>(ScratchSlot::pool, size_t(2 * count));
    int32_t* bases = first_taps + count;
    narrow_first_taps(g, first_taps, bases);
    int64_t p = p0;
    for (; p + group <= p1; p += group) {
      if (idx)
        max_pool_plane_narrow<true>(g, x + p * in_plane, count, first_taps, bases, y + p * out_plane, idx + p * out_plane);
      else
        max_pool_plane_narrow<false>(g, x + p * in_plane, count, first_taps, bases, y + p * out_plane, nullptr);
    }
    for (; p < p1; ++p) {  // fewer planes than a group: one window at a time
      if (idx)
        max_pool_plane<true>(g, x + p * in_plane, y + p * out_plane, idx + p * out_plane);
      else
        max_pool_plane<false>(g, x + p * in_plane, y + p * out_plane, nullptr);
    }
    return;
  }
  for (int64_t p = p0; p < p1; ++p) {
    const float* plane = x + p * in_plane;
    float* out = y + p * out_plane;
    switch (path) {
      case MaxPath::narrow: break;  // above
      case MaxPath::with_index: max_pool_plane<true>(g, plane, out, idx + p * out_plane); break;
      case MaxPath::plain_2x2: max_pool_plane_2x2(g, plane, out, end); break;
      case MaxPath::row_ring: max_pool_plane_by_rows(g, plane, out, ring, first, end); break;
      case MaxPath::blocks: max_pool_plane<false>(g, plane, out, nullptr); break;
    }
  }
}

const char* avg_pool2d_avx2_impl(const PoolGeometry& g) {
  return is_plain_2x2(g) ? "avx2_2x2" : g.sW <= 2 ? "avx2_rows" : "avx2_rows_scalar_windows";
}

// x (P, H, W) -> y (P, OH, OW) for planes [p0, p1); avg pooling has no dilation (dH = dW = 1)
void avg_pool2d_avx2(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const float* x, float* y) {
  for (int64_t p = p0; p < p1; ++p) avg_pool_plane(g, opt, x + p * g.H * g.W, y + p * g.OH * g.OW);
}

}  // namespace rb
