// AVX2 pooling: 8 neighbouring outputs of a row at once, for windows that lie wholly inside the
// image along W (and, for average pooling, along H). Stride 1 loads taps directly, stride 2
// loads 16 floats and keeps the even lanes; other strides and the border outputs go through the
// reference's per-window function, so every output follows the one spec.
// The tap order and the comparison (v > best or v is NaN) are the reference's, so results are identical.
#include <immintrin.h>

#include "pool/pool.h"

namespace rb {
namespace {

// 8 floats at p, p + s, ..., p + 7 s for s in {1, 2}.
inline __m256 load_strided(const float* p, int64_t s) {
  if (s == 1) return _mm256_loadu_ps(p);
  const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
  const __m256 evens = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(evens), _MM_SHUFFLE(3, 1, 2, 0)));
}

// The first output column whose whole window lies inside [0, W), and the end of the run of
// 8-wide blocks that stay inside it (a stride-2 load reads one float past the last tap).
void vector_columns(const PoolGeometry& g, int64_t* first, int64_t* blocks_end) {
  const int64_t lo = (g.pW + g.sW - 1) / g.sW;
  const int64_t reach = (g.kW - 1) * g.dW + (g.sW == 2 ? 1 : 0);  // farthest float read right of a window's start
  int64_t end = lo;
  while (end + 8 <= g.OW && (end + 7) * g.sW - g.pW + reach <= g.W - 1) end += 8;
  *first = lo < g.OW ? lo : g.OW;
  *blocks_end = end < *first ? *first : end;
}

template <bool kWithIndex>
void max_pool_plane(const PoolGeometry& g, const float* plane, float* out, int64_t* idx) {
  int64_t first, blocks_end;
  vector_columns(g, &first, &blocks_end);
  const bool vectorise = g.sW == 1 || g.sW == 2;
  const __m256i lane_offsets = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                                  _mm256_set1_epi32(int(g.sW)));
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* out_row = out + oh * g.OW;
    int64_t* idx_row = kWithIndex ? idx + oh * g.OW : nullptr;
    int64_t ow = 0;
    for (; ow < first; ++ow) max_pool2d_window(g, plane, oh, ow, out_row + ow, kWithIndex ? idx_row + ow : nullptr);
    if (vectorise) {
      for (; ow < blocks_end; ow += 8) {
        __m256 best = _mm256_set1_ps(-__builtin_inff());
        __m256i best_index = _mm256_set1_epi32(-1);
        bool first_tap = true;
        for (int64_t i = 0; i < g.kH; ++i) {
          const int64_t ih = oh * g.sH - g.pH + i * g.dH;
          if (ih < 0 || ih >= g.H) continue;
          for (int64_t j = 0; j < g.kW; ++j) {
            const int64_t tap = ih * g.W + ow * g.sW - g.pW + j * g.dW;
            const __m256 v = load_strided(plane + tap, g.sW);
            __m256 take;
            if (first_tap) {
              take = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
              first_tap = false;
            } else {
              take = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            }
            best = _mm256_blendv_ps(best, v, take);
            if (kWithIndex) {
              const __m256i tap_index = _mm256_add_epi32(_mm256_set1_epi32(int(tap)), lane_offsets);
              best_index = _mm256_castps_si256(
                  _mm256_blendv_ps(_mm256_castsi256_ps(best_index), _mm256_castsi256_ps(tap_index), take));
            }
          }
        }
        _mm256_storeu_ps(out_row + ow, best);
        if (kWithIndex) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx_row + ow),
                              _mm256_cvtepi32_epi64(_mm256_castsi256_si128(best_index)));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx_row + ow + 4),
                              _mm256_cvtepi32_epi64(_mm256_extracti128_si256(best_index, 1)));
        }
      }
    }
    for (; ow < g.OW; ++ow) max_pool2d_window(g, plane, oh, ow, out_row + ow, kWithIndex ? idx_row + ow : nullptr);
  }
}

void avg_pool_plane(const PoolGeometry& g, const AvgOptions& opt, const float* plane, float* out) {
  int64_t first, blocks_end;
  vector_columns(g, &first, &blocks_end);
  const bool vectorise = g.sW == 1 || g.sW == 2;
  // A window wholly inside the image has kH * kW taps under every counting rule.
  const __m256 divisor = _mm256_set1_ps(float(opt.divisor_override ? opt.divisor_override : g.kH * g.kW));
  for (int64_t oh = 0; oh < g.OH; ++oh) {
    float* out_row = out + oh * g.OW;
    const int64_t h0 = oh * g.sH - g.pH;
    const bool row_inside = h0 >= 0 && h0 + g.kH <= g.H;
    int64_t ow = 0;
    if (row_inside && vectorise) {
      for (; ow < first; ++ow) out_row[ow] = avg_pool2d_window(g, opt, plane, oh, ow);
      for (; ow < blocks_end; ow += 8) {
        __m256 sum = _mm256_setzero_ps();
        for (int64_t i = 0; i < g.kH; ++i)
          for (int64_t j = 0; j < g.kW; ++j)
            sum = _mm256_add_ps(sum, load_strided(plane + (h0 + i) * g.W + ow * g.sW - g.pW + j, g.sW));
        _mm256_storeu_ps(out_row + ow, _mm256_div_ps(sum, divisor));
      }
    }
    for (; ow < g.OW; ++ow) out_row[ow] = avg_pool2d_window(g, opt, plane, oh, ow);
  }
}

}  // namespace

// x (P, H, W) -> y, idx (P, OH, OW) for planes [p0, p1); idx may be null
void max_pool2d_avx2(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y, int64_t* idx) {
  const int64_t in_plane = g.H * g.W, out_plane = g.OH * g.OW;
  for (int64_t p = p0; p < p1; ++p) {
    if (idx)
      max_pool_plane<true>(g, x + p * in_plane, y + p * out_plane, idx + p * out_plane);
    else
      max_pool_plane<false>(g, x + p * in_plane, y + p * out_plane, nullptr);
  }
}

// x (P, H, W) -> y (P, OH, OW) for planes [p0, p1); avg pooling has no dilation (dH = dW = 1)
void avg_pool2d_avx2(const PoolGeometry& g, const AvgOptions& opt, int64_t p0, int64_t p1, const float* x, float* y) {
  for (int64_t p = p0; p < p1; ++p) avg_pool_plane(g, opt, x + p * g.H * g.W, y + p * g.OH * g.OW);
}

}  // namespace rb
