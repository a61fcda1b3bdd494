// GEMM dispatch: the one place that chooses between the AVX2 kernel and the reference.
#include "gemm/gemm.h"

#include "dispatch/dispatch.h"

namespace rb {

void gemm(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
          float beta, MatView<float> C) {
  if (active_isa() == Isa::avx2) {
    record_impl("gemm", sgemm_avx2(M, N, K, alpha, A, B, beta, C));
  } else {
    gemm_ref<float>(M, N, K, alpha, A, B, beta, C);
    record_impl("gemm", "scalar_ref");
  }
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, MatView<const double> A, MatView<const double> B,
          double beta, MatView<double> C) {
  gemm_ref<double>(M, N, K, alpha, A, B, beta, C);
  record_impl("gemm", "scalar_ref");
}

}  // namespace rb
