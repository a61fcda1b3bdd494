// Max pooling 3x3, stride 2 (ResNet's stem; dilation 1, padding 0 or 1), without indices, for CPUs
// with AVX-512F: 16 outputs of a row per step.
//
// For each of a window's (up to) three rows, a step loads the 33 columns its 16 windows cover (two
// vectors, the first carried over from the previous step, and the first lane of the next one),
// picks out every window's left, middle and right taps with two lane permutes and one shift, and
// takes their maximum; then the maximum over the rows. Masked loads read only columns inside the
// image and give -inf elsewhere, so padding and ragged row ends need no scalar border code, and a
// masked store writes a row's last, partial step.
//
// Why beside the AVX2 row-ring loop (pool_avx2.cpp): that loop is bound by its shuffles and border
// code more than by memory. Paired with it on Zen 4, 2 threads: 1.27x with the input in L3, 1.09x
// from DRAM (bench/ab_builds.py maxpool:8,64,112,112,3,2,1). It takes about 33 cycles per 16
// outputs in L3, and neither combining the rows first (a third of the permutes, and it would break
// the -0/+0 rule below) nor keeping each input row's maxima in a ring (as the AVX2 loop) was faster.
//
// The result is the AVX2 path's, bit for bit: NaN propagates (any NaN in a window gives NaN), and a
// tie between -0 and +0 goes to the first tap in torch's scan order (rows top to bottom, each row
// left to right), which is why the rows are not combined first.
// This file is compiled with -mavx512f (see gemm_avx512.cpp on keeping AVX-512 code out of
// baseline functions).
#include <immintrin.h>

#include "pool/pool.h"

// GCC 12 warns that the "undefined" pass-through vector inside _mm512_max_ps may be used
// uninitialised (a false positive: the unmasked form never reads it).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace rb {

namespace {

// Lanes whose columns col + lane lie in [0, W).
inline __mmask16 inside(int64_t col, int64_t W, __m512i lane) {
  const __m512i cols = _mm512_add_epi32(lane, _mm512_set1_epi32(int32_t(col)));
  return _mm512_cmpge_epi32_mask(cols, _mm512_setzero_si512()) &
         _mm512_cmplt_epi32_mask(cols, _mm512_set1_epi32(int32_t(W)));
}

// One output row from the window's ROWS input rows (fewer than 3 at the top and bottom edges).
// vmaxps(later, earlier) keeps `earlier` on a tie, so -0 against +0 resolves as a scan that replaces
// its maximum only by a greater value. It also keeps `earlier` when either is NaN; the lanes whose
// taps held a NaN are collected separately and set to NaN at the end.
template <int ROWS>
void pool_output_row(const float* const* rows, int64_t W, int64_t OW, int64_t pW, float* out) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  // Window o + k covers columns col + 2k, col + 2k + 1 and col + 2k + 2 (col = 2 o - pW) of each
  // row: the columns of `low` and `high`, and the first of the next step's `low`. Masked-off lanes
  // are not read (no fault past either end of the plane) and hold -inf.
  __m512 low[ROWS];
  const __mmask16 first = inside(-pW, W, lane);
  for (int r = 0; r < ROWS; ++r) low[r] = _mm512_mask_loadu_ps(neg_inf, first, rows[r] - pW);
  for (int64_t o = 0; o < OW; o += 16) {
    const int64_t col = o * 2 - pW;
    const __mmask16 in_high = inside(col + 16, W, lane), in_next = inside(col + 32, W, lane);
    __m512 best = neg_inf;
    __mmask16 nan = 0;
    for (int r = 0; r < ROWS; ++r) {
      const __m512 high = _mm512_mask_loadu_ps(neg_inf, in_high, rows[r] + col + 16);
      const __m512 next = _mm512_mask_loadu_ps(neg_inf, in_next, rows[r] + col + 32);
      const __m512 left = _mm512_permutex2var_ps(low[r], even, high);
      const __m512 middle = _mm512_permutex2var_ps(low[r], odd, high);
      const __m512 right = _mm512_castsi512_ps(
          _mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(left), 1));
      nan |= _mm512_cmp_ps_mask(left, middle, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(right, right, _CMP_UNORD_Q);
      const __m512 in_row = _mm512_max_ps(right, _mm512_max_ps(middle, left));
      best = r == 0 ? in_row : _mm512_max_ps(in_row, best);
      low[r] = next;
    }
    best = _mm512_mask_mov_ps(best, nan, _mm512_set1_ps(__builtin_nanf("")));
    const int64_t n = OW - o < 16 ? OW - o : 16;
    _mm512_mask_storeu_ps(out + o, __mmask16((1u << n) - 1), best);
  }
}

}  // namespace

bool max_pool2d_3x3s2_avx512_applies(const PoolGeometry& g) {
  return g.kH == 3 && g.kW == 3 && g.sH == 2 && g.sW == 2 && g.dH == 1 && g.dW == 1 && g.pH <= 1 && g.pW <= 1 &&
         g.W + 64 < (int64_t(1) << 31);  // column numbers in 32-bit lanes
}

void max_pool2d_3x3s2_avx512(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y) {
  for (int64_t p = p0; p < p1; ++p) {
    const float* plane = x + p * g.H * g.W;
    for (int64_t oh = 0; oh < g.OH; ++oh) {
      const float* rows[3];
      int count = 0;
      for (int64_t i = 0; i < 3; ++i) {
        const int64_t ih = oh * 2 - g.pH + i;
        if (ih >= 0 && ih < g.H) rows[count++] = plane + ih * g.W;
      }
      float* out = y + (p * g.OH + oh) * g.OW;
      if (count == 3)
        pool_output_row<3>(rows, g.W, g.OW, g.pW, out);
      else if (count == 2)
        pool_output_row<2>(rows, g.W, g.OW, g.pW, out);
      else
        pool_output_row<1>(rows, g.W, g.OW, g.pW, out);
    }
  }
}

}  // namespace rb
