// The per-step products of a recurrence, written for rb::gemm (baseline translation units only).
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

// A sequence's step products go through the weight packed into panels once per call (a pass over
// the weight, not one per step). At batch <= 4 the packed panels are read as one stream by the
// micro-kernel; there packing pays only over a few steps, and a single cell step (or two, three)
// multiplies the weight in place on rb::gemm's direct path, a dot product per weight row.
// (One thread's step at batch 1 over 256 units of an LSTM with H = 512, 2 MiB of packed weight read
// from L3: 35 GFLOP/s, against 29 for the direct path's 2048 x 1 x 512. Whole LSTM (200, 1, 65, 512)
// forward + backward kernels, 2 threads, paired: 1.105x faster than with the direct path.)
inline bool prepacked_steps(int64_t batch, int64_t steps) { return batch > 4 || steps >= 4; }

// The weight operand of one thread's per-step product: segments B_s (K x n), s < segments, at
// b.data + s * segment_stride with b's strides (one segment per gate, say). Packed once into
// `packed` (AVX2 path only; packed_b_floats(K, n, segments) floats), or read in place by rb::gemm
// when `packed` is null.
class StepWeight {
 public:
  StepWeight(int64_t K, int64_t n, int64_t segments, MatView<const float> b, int64_t segment_stride, float* packed)
      : K_(K), n_(n), segments_(segments), b_(b), segment_stride_(segment_stride), packed_(packed) {
    if (packed_) pack_b_avx2(K, n, segments, b, segment_stride, packed);
  }

  // C_s (M x n) = A (M x K) . B_s + beta C_s for every segment; C_s at c + s * c_segment_stride,
  // rows ldc apart, unit column stride; A rows lda apart, unit column stride.
  void multiply(int64_t M, const float* a, int64_t lda, float beta, float* c, int64_t ldc,
                int64_t c_segment_stride) const {
    if (packed_) {
      sgemm_packed_b_avx2(M, n_, K_, segments_, 1.0f, MatView<const float>{a, lda, 1}, packed_, beta,
                          MatView<float>{c, ldc, 1}, c_segment_stride);
      return;
    }
    for (int64_t s = 0; s < segments_; ++s)
      gemm(M, n_, K_, 1.0f, MatView<const float>{a, lda, 1},
           MatView<const float>{b_.data + s * segment_stride_, b_.rs, b_.cs}, beta,
           MatView<float>{c + s * c_segment_stride, ldc, 1});
  }

 private:
  int64_t K_, n_, segments_;
  MatView<const float> b_;
  int64_t segment_stride_;
  const float* packed_;
};

}  // namespace rb
