// Reference GEMM: plain loops, no intrinsics. This is the spec.
#include <vector>

#include "gemm/gemm.h"
#include "common/parallel.h"

namespace rb {

// A is (M,K), B is (K,N), C is (M,N).
template <typename T>
void gemm_ref(int64_t M, int64_t N, int64_t K, T alpha, MatView<const T> A, MatView<const T> B, T beta,
              MatView<T> C) {
  // Rows of C are independent; each accumulates sum_p A[i,p] * B[p,:] into a row buffer.
#pragma omp parallel num_threads(available_threads()) if (M * N * K > 32768)
  {
    std::vector<T> acc(N);
#pragma omp for schedule(static)
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) acc[j] = T(0);
      for (int64_t p = 0; p < K; ++p) {
        const T a = A.data[i * A.rs + p * A.cs];
        const T* b = B.data + p * B.rs;
        for (int64_t j = 0; j < N; ++j) acc[j] += a * b[j * B.cs];
      }
      T* c = C.data + i * C.rs;
      for (int64_t j = 0; j < N; ++j) {
        T value = alpha * acc[j];
        c[j * C.cs] = beta == T(0) ? value : value + beta * c[j * C.cs];
      }
    }
  }
}

template void gemm_ref<float>(int64_t, int64_t, int64_t, float, MatView<const float>, MatView<const float>, float,
                              MatView<float>);
template void gemm_ref<double>(int64_t, int64_t, int64_t, double, MatView<const double>, MatView<const double>,
                               double, MatView<double>);

}  // namespace rb
