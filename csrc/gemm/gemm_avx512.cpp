// The float32 GEMM's micro-kernel for CPUs with AVX-512F: 6 rows (or a last panel's 3 to 5) x 32
// columns of C in up to 12 ZMM accumulators, from the same packed panels as the AVX2 kernel (an A
// panel, two adjacent B panels of 16 columns; or A's rows read in place), so the AVX2 driver in
// gemm_avx2.cpp calls it for pairs of full panels.
//
// Why, when a ZMM FMA does no more arithmetic per cycle than two YMM FMAs on Zen 4: each step of k
// loads B once per 32 columns instead of once per 16 and broadcasts each A value for twice the
// columns, so the loads and the instructions per FMA halve. Paired A/B against the 6x16 kernel alone
// (bench/ab_builds.py, Zen 4): 1024^3 on 1 thread 1.08x, 2048^3 on 2 threads 1.07x. A 12 x 32
// version (24 accumulators) ran 13% slower: the compiler spilled a B vector to the stack. Asking for
// the next B pair (into L1 or L2, one or two pairs ahead) from inside the loop measured 0.97-1.00x:
// the hardware prefetcher already streams the packed panels.
//
// Each element of C is summed over k in the same order, one FMA at a time, as in the AVX2 kernel:
// both kernels give the same bits. This file is the only one compiled with -mavx512f and uses no
// standard library templates, so no AVX-512 code can be merged into baseline functions.
#include <immintrin.h>

#include "gemm/gemm.h"

namespace rb {

namespace {

// A panel of ROWS rows packed (element (i, p) at a[p * ROWS + i]) or, with A_IN_PLACE, ROWS rows of a
// matrix with unit column stride (element (i, p) at a[i * lda + p]), as in the AVX2 kernel. Fewer than 6
// rows are a block's last panels: a recurrent step split by rows gives each thread 32 rows at batch 64
// (panels of 6, 6, 6, 6, 4, 4), and with those 4-row panels in the AVX2 kernel the whole LSTM (100, 64,
// 512, 512) kernels ran 1.037x slower (paired).
template <bool A_IN_PLACE, int ROWS>
void kernel_x32(int64_t kc, const float* a, int64_t lda, const float* b, int64_t b_stride, float* c, int64_t rsc,
                float alpha, float beta) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m512 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float* b1 = b + b_stride;
  const int64_t row = A_IN_PLACE ? lda : 1, step = A_IN_PLACE ? 1 : ROWS;
  const float *a0 = a, *a1 = a + row, *a2 = a + 2 * row, *a3 = a + 3 * row, *a4 = a + 4 * row, *a5 = a + 5 * row;
  for (int i = 0; i < ROWS; ++i) {  // fetch the C tile now so its update at the end does not wait
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc + 31), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p) {
    const __m512 x0 = _mm512_loadu_ps(b + p * 16), x1 = _mm512_loadu_ps(b1 + p * 16);
    const int64_t k = p * step;
    __m512 ai = _mm512_set1_ps(a0[k]);
    c00 = _mm512_fmadd_ps(ai, x0, c00), c01 = _mm512_fmadd_ps(ai, x1, c01);
    ai = _mm512_set1_ps(a1[k]);
    c10 = _mm512_fmadd_ps(ai, x0, c10), c11 = _mm512_fmadd_ps(ai, x1, c11);
    ai = _mm512_set1_ps(a2[k]);
    c20 = _mm512_fmadd_ps(ai, x0, c20), c21 = _mm512_fmadd_ps(ai, x1, c21);
    if constexpr (ROWS > 3) {
      ai = _mm512_set1_ps(a3[k]);
      c30 = _mm512_fmadd_ps(ai, x0, c30), c31 = _mm512_fmadd_ps(ai, x1, c31);
    }
    if constexpr (ROWS > 4) {
      ai = _mm512_set1_ps(a4[k]);
      c40 = _mm512_fmadd_ps(ai, x0, c40), c41 = _mm512_fmadd_ps(ai, x1, c41);
    }
    if constexpr (ROWS > 5) {
      ai = _mm512_set1_ps(a5[k]);
      c50 = _mm512_fmadd_ps(ai, x0, c50), c51 = _mm512_fmadd_ps(ai, x1, c51);
    }
  }
  const __m512 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < ROWS; ++i)
    for (int half = 0; half < 2; ++half) {
      float* ci = c + i * rsc + 16 * half;
      const __m512 v = _mm512_mul_ps(va, acc[2 * i + half]);
      _mm512_storeu_ps(ci, beta == 0.0f ? v : _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), v));
    }
}

template <bool A_IN_PLACE>
void kernel_rows(int64_t mr, int64_t kc, const float* a, int64_t lda, const float* b, int64_t b_stride, float* c,
                 int64_t rsc, float alpha, float beta) {
  switch (mr) {
    case 3: return kernel_x32<A_IN_PLACE, 3>(kc, a, lda, b, b_stride, c, rsc, alpha, beta);
    case 4: return kernel_x32<A_IN_PLACE, 4>(kc, a, lda, b, b_stride, c, rsc, alpha, beta);
    case 5: return kernel_x32<A_IN_PLACE, 5>(kc, a, lda, b, b_stride, c, rsc, alpha, beta);
    default: return kernel_x32<A_IN_PLACE, 6>(kc, a, lda, b, b_stride, c, rsc, alpha, beta);
  }
}

}  // namespace

void kernel_x32_avx512(int64_t mr, int64_t kc, const float* a, int64_t lda, bool a_in_place, const float* b,
                       int64_t b_stride, float* c, int64_t rsc, float alpha, float beta) {
  if (a_in_place)
    kernel_rows<true>(mr, kc, a, lda, b, b_stride, c, rsc, alpha, beta);
  else
    kernel_rows<false>(mr, kc, a, lda, b, b_stride, c, rsc, alpha, beta);
}

}  // namespace rb
