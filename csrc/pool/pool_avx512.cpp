// Max pooling 3x3, stride 2 (ResNet's stem; dilation 1, padding 0 or 1), without indices, for CPUs
// with AVX-512F: 16 outputs of a row per step.
//
// For each of a window's (up to) three rows, a step loads the 32 or 33 columns its 16 windows cover
// (two vectors, and a lane carried over from the neighbouring step), picks out every window's left,
// middle and right taps with two lane permutes and one shift, and takes their maximum; then the
// maximum over the rows. An input row shared by two output rows (the last of one window, the
// first of the next) is reduced along W once: the first output row keeps its last row's maxima in
// a ring of OW floats and the second starts from them (paired: 1.09-1.10x in cache; from DRAM,
// where the loop is bound by memory, 0.93-1.03x over five runs, within the host's noise).
//
// The loads start at column 2 o whatever the padding, so that where a row is 64-byte aligned (a
// width that is a multiple of 16) no load straddles two cache lines. Masked loads read only columns
// inside the image and give -inf elsewhere, so padding and ragged row ends need no scalar border
// code; steps wholly inside the row take no masks, and a masked store writes a row's last, partial
// step. (Paired against the earlier loop, whose loads began at column 2 o - 1 with padding 1 and
// so, on aligned rows, all split: skipping the masks and one NaN compare alone gave 1.24x in cache
// but 0.935x from DRAM; with the aligned loads 1.42x and 1.063x.)
//
// Why beside the AVX2 row-ring loop (pool_avx2.cpp): that loop is bound by its shuffles and border
// code more than by memory. Paired with it on Zen 4, 2 threads: 1.27x with the input in L3, 1.09x
// from DRAM (bench/ab_builds.py maxpool:8,64,112,112,3,2,1), before the aligned loads above.
// Combining the rows first would need a third of the permutes but breaks the -0/+0 rule below
// (reducing each row along W first, as here and in the AVX2 loop, keeps it). Software prefetch
// 4 KiB ahead cost 8-16% from DRAM, and staging a plane's outputs to write them with streaming
// stores 16%. For rows not 64-byte aligned (numpy and malloc give 16-byte alignment), starting
// each row's steps up to 7 outputs early so that the later loads align measured 0.94-0.98x in
// cache: the extra masked step cost more than the split loads (6% in cache, about 1% from DRAM).
// In phases when the host's memory is slow (this loop at 22-24 GB/s from DRAM while the copy probe
// still gives 35-55), alternating the output rows of two planes per thread, for more streams in
// flight, measured 0.81x (8x64x112x112) and 0.95x (32x64x56x56), paired.
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

// One output row from the window's ROWS input rows (fewer than 3 at the top and bottom edges), PW
// the padding along W. vmaxps(later, earlier) keeps `earlier` on a tie, so -0 against +0 resolves
// as a scan that replaces its maximum only by a greater value. It also keeps `earlier` when either
// is NaN. With NAN_LANES the lanes whose taps held a NaN are collected and set to NaN at the end;
// without, the loop only notes whether any column it read was NaN and returns that, and the caller
// runs the row again with NAN_LANES (one compare per row and step instead of two, for inputs that
// hardly ever hold a NaN). Every pass stores the maxima of its last row in `ring` (with NAN_LANES,
// NaN where a window's taps in that row held one); with RING_IN the first row is taken from there.
template <int ROWS, int PW, bool NAN_LANES, bool RING_IN>
bool pool_output_row(const float* const* rows, int64_t W, int64_t OW, float* out, float* ring) {
  const __m512i lane = _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0);
  const __m512i even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  const __m512 nan_value = _mm512_set1_ps(__builtin_nanf(""));
  constexpr int kFresh = RING_IN ? 1 : 0;  // the first row read from memory
  // Step o loads from column b = 2 o (aligned where the row is). Window o + k covers columns
  // b + 2k - PW + {0, 1, 2}. PW = 0: the even and odd columns of [b, b + 32) and the next even one
  // (carry: the vector at b + 32, the next step's first). PW = 1: the previous odd column and the
  // even and odd columns of [b, b + 32) (carry: this step's odd columns, the next step's left taps).
  __m512 carry[ROWS];
  __mmask16 nan_seen = 0;
  for (int r = kFresh; r < ROWS; ++r) {
    if (PW == 0) {
      carry[r] = _mm512_mask_loadu_ps(neg_inf, inside(0, W, lane), rows[r]);
      if (!NAN_LANES) nan_seen |= _mm512_cmp_ps_mask(carry[r], carry[r], _CMP_UNORD_Q);
    } else {
      carry[r] = neg_inf;
    }
  }
  auto step = [&](int64_t o, __mmask16 in_a, __mmask16 in_b, __mmask16 stored) {
    const int64_t b = o * 2;
    __m512 best = neg_inf;
    __mmask16 nan = 0;
    // The first row's maxima from the ring: a NaN lane there (stored by a NAN_LANES pass) stays NaN,
    // as `best` is the operand vmaxps keeps.
    if (RING_IN) best = _mm512_load_ps(ring + o);
    for (int r = kFresh; r < ROWS; ++r) {
      __m512 left, middle, right;
      if (PW == 0) {
        const __m512 high = _mm512_mask_loadu_ps(neg_inf, in_a, rows[r] + b + 16);
        const __m512 next = _mm512_mask_loadu_ps(neg_inf, in_b, rows[r] + b + 32);
        left = _mm512_permutex2var_ps(carry[r], even, high);
        middle = _mm512_permutex2var_ps(carry[r], odd, high);
        right = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(next), _mm512_castps_si512(left), 1));
        if (!NAN_LANES) nan_seen |= _mm512_cmp_ps_mask(high, next, _CMP_UNORD_Q);
        carry[r] = next;
      } else {
        const __m512 v0 = _mm512_mask_loadu_ps(neg_inf, in_a, rows[r] + b);
        const __m512 v1 = _mm512_mask_loadu_ps(neg_inf, in_b, rows[r] + b + 16);
        middle = _mm512_permutex2var_ps(v0, even, v1);
        right = _mm512_permutex2var_ps(v0, odd, v1);
        left = _mm512_castsi512_ps(_mm512_alignr_epi32(_mm512_castps_si512(right), _mm512_castps_si512(carry[r]), 15));
        if (!NAN_LANES) nan_seen |= _mm512_cmp_ps_mask(v0, v1, _CMP_UNORD_Q);
        carry[r] = right;
      }
      const __m512 in_row = _mm512_max_ps(right, _mm512_max_ps(middle, left));
      if (NAN_LANES) {
        const __mmask16 nan_row =
            _mm512_cmp_ps_mask(left, middle, _CMP_UNORD_Q) | _mm512_cmp_ps_mask(right, right, _CMP_UNORD_Q);
        nan |= nan_row;
        if (r == ROWS - 1) _mm512_store_ps(ring + o, _mm512_mask_mov_ps(in_row, nan_row, nan_value));
      } else if (r == ROWS - 1) {
        _mm512_store_ps(ring + o, in_row);
      }
      best = r == 0 ? in_row : _mm512_max_ps(in_row, best);
    }
    if (NAN_LANES) best = _mm512_mask_mov_ps(best, nan, nan_value);
    _mm512_mask_storeu_ps(out + o, stored, best);
  };
  // Steps whose columns all lie inside the row need no masks (all but the last one or two). A step
  // loads [b + first_load, b + first_load + 32).
  const int64_t first_load = PW == 0 ? 16 : 0;
  int64_t o = 0;
  for (; o + 16 <= OW && o * 2 + first_load + 32 <= W; o += 16) step(o, 0xFFFF, 0xFFFF, 0xFFFF);
  for (; o < OW; o += 16) {
    const int64_t b = o * 2 + first_load, n = OW - o < 16 ? OW - o : 16;
    step(o, inside(b, W, lane), inside(b + 16, W, lane), __mmask16((1u << n) - 1));
  }
  return nan_seen != 0;
}

template <int ROWS, int PW>
void pool_output_row(const float* const* rows, int64_t W, int64_t OW, bool ring_in, float* out, float* ring) {
  const bool nan_seen = ring_in ? pool_output_row<ROWS, PW, false, true>(rows, W, OW, out, ring)
                                : pool_output_row<ROWS, PW, false, false>(rows, W, OW, out, ring);
  if (nan_seen) pool_output_row<ROWS, PW, true, false>(rows, W, OW, out, ring);
}

template <int ROWS>
void pool_output_row(const float* const* rows, int64_t W, int64_t OW, int64_t pW, bool ring_in, float* out,
                     float* ring) {
  if (pW == 0)
    pool_output_row<ROWS, 0>(rows, W, OW, ring_in, out, ring);
  else
    pool_output_row<ROWS, 1>(rows, W, OW, ring_in, out, ring);
}

}  // namespace

bool max_pool2d_3x3s2_avx512_applies(const PoolGeometry& g) {
  return g.kH == 3 && g.kW == 3 && g.sH == 2 && g.sW == 2 && g.dH == 1 && g.dW == 1 && g.pH <= 1 && g.pW <= 1 &&
         g.W + 64 < (int64_t(1) << 31);  // column numbers in 32-bit lanes
}

void max_pool2d_3x3s2_avx512(const PoolGeometry& g, int64_t p0, int64_t p1, const float* x, float* y, float* ring) {
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
      // From the second output row on, this window's first row (2 oh - pH) was the previous one's last.
      const bool ring_in = oh > 0;
      if (count == 3)
        pool_output_row<3>(rows, g.W, g.OW, g.pW, ring_in, out, ring);
      else if (count == 2)
        pool_output_row<2>(rows, g.W, g.OW, g.pW, ring_in, out, ring);
      else
        pool_output_row<1>(rows, g.W, g.OW, g.pW, ring_in, out, ring);
    }
  }
}

}  // namespace rb
