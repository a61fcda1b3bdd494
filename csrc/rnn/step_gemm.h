// The two per-step products of a recurrence, written for rb::gemm (baseline translation units only).
#pragma once
#include <cstdint>

#include "gemm/gemm.h"

namespace rb {

// C (B x n) = h (B x K) . W_rows^T + beta C, W_rows (n x K) row-major (row stride ldw), C rows ldc apart.
// Computed as C^T = W_rows . h^T so the weight is the operand with unit column stride: at batch <= 4
// rb::gemm then takes its direct path (a dot product per weight row, no packing).
inline void gemm_h_wT(int64_t B, int64_t n, int64_t K, const float* h, int64_t ldh, const float* w_rows, int64_t ldw,
                      float beta, float* c, int64_t ldc) {
  gemm(n, B, K, 1.0f, MatView<const float>{w_rows, ldw, 1}, MatView<const float>{h, 1, ldh}, beta,
       MatView<float>{c, 1, ldc});
}

// C (B x n) = dg (B x K) . W_cols + beta C, W_cols (K x n) a column slice of a row-major matrix
// (row stride ldw): at batch <= 4 the direct path streams the weight rows once.
inline void gemm_dg_w(int64_t B, int64_t n, int64_t K, const float* dg, int64_t lddg, const float* w_cols,
                      int64_t ldw, float beta, float* c, int64_t ldc) {
  gemm(B, n, K, 1.0f, MatView<const float>{dg, lddg, 1}, MatView<const float>{w_cols, ldw, 1}, beta,
       MatView<float>{c, ldc, 1});
}

}  // namespace rb
