// GEMM dispatch: the one place that chooses between the AVX2 kernel and the reference.
#include "gemm/gemm.h"

#include <omp.h>

#include "dispatch/dispatch.h"

namespace rb {

// Calls from inside another kernel's parallel region (conv, rnn) are that kernel's
// business and would only contend on the record's lock: only top-level calls record.
static void record_gemm(const char* impl) {
  if (!omp_in_parallel()) record_impl("gemm", impl);
}

void gemm(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
          float beta, MatView<float> C) {
  if (active_isa() == Isa::avx2) {
    record_gemm(sgemm_avx2(M, N, K, alpha, A, B, beta, C));
  } else {
    gemm_ref<float>(M, N, K, alpha, A, B, beta, C);
    record_gemm("scalar_ref");
  }
}

void gemm(int64_t M, int64_t N, int64_t K, double alpha, MatView<const double> A, MatView<const double> B,
          double beta, MatView<double> C) {
  gemm_ref<double>(M, N, K, alpha, A, B, beta, C);
  record_gemm("scalar_ref");
}

}  // namespace rb
