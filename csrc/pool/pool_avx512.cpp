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
// code, not by memory: about 30 GB/s on 2 threads with its input in L3, no faster than from DRAM.
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

// The columns [col, col + 16) of `row` that lie in [0, W); -inf for the others.
inline __m512 load_inside(const float* row, int64_t col, int64_t W, __m512i lane, __m512 neg_inf) {
  const __m512i cols = _mm512_add_epi32(lane, _mm512_set1_epi32(int32_t(col)));
  const __mmask16 inside = _mm512_cmpge_epi32_mask(cols, _mm512_setzero_si512()) &
                           _mm512_cmplt_epi32_mask(cols, _mm512_set1_epi32(int32_t(W)));
  return _mm512_mask_loadu_ps(neg_inf, inside, row + col);  // masked-off lanes are not read
}

// max(later, earlier), NaN where either is NaN. On a tie the earlier value (vmaxps's second operand)
// stays, so -0 against +0 resolves as a scan that replaces its maximum only by a greater value.
inline __m512 max_keeping_nan(__m512 later, __m512 earlier) {
  const __mmask16 nan = _mm512_cmp_ps_mask(later, earlier, _CMP_UNORD_Q);
  return _mm512_mask_mov_ps(_mm512_max_ps(later, earlier), nan, _mm512_set1_ps(__builtin_nanf("")));
}

}  // namespace

bool max_pool2d_3x3s2_avx512_applies(const PoolGeometry& g) {
  return g.kH == 3 && g.kW == 3 && g.sH == 2 && g.sW == 2 && g.dH == 1 && g.dW == 1 && g.pH <= 1 && g.pW <= 1 &&
         g.W + 64 < (int64_t(1) << 31);  // column numbers in 32-bit lanes
}

void max_pool2d_3x3s2_avx512(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
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
      // Window o + k covers columns col + 2k, col + 2k + 1 and col + 2k + 2 (col = 2 o - pW) of
      // each row: the columns of `low` and `high`, and the first of the next step's `low`.
      __m512 low[3];
      for (int r = 0; r < count; ++r) low[r] = load_inside(rows[r], -g.pW, g.W, lane, neg_inf);
      for (int64_t o = 0; o < g.OW; o += 16) {
        const int64_t col = o * 2 - g.pW;
        __m512 best = neg_inf;
        for (int r = 0; r < count; ++r) {
          const __m512 high = load_inside(rows[r], col + 16, g.W, lane, neg_inf);
          const __m512 next = load_inside(rows[r], col + 32, g.W, lane, neg_inf);
          const __m512 left = _mm512_permutex2var_ps(low[r], even, high);
          const __m512 middle = _mm512_permutex2var_ps(low[r], odd, high);
          const __m512 right = _mm512_castsi512_ps(
              _mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(left), 1));
          const __m512 in_row = max_keeping_nan(right, max_keeping_nan(middle, left));
          best = r == 0 ? in_row : max_keeping_nan(in_row, best);
          low[r] = next;
        }
        const int64_t n = g.OW - o < 16 ? g.OW - o : 16;
        _mm512_mask_storeu_ps(out + o, __mmask16((1u << n) - 1), best);
      }
    }
  }
}

}  // namespace rb
