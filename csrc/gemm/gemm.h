// GEMM: C (M,N) = alpha * A (M,K) . B (K,N) + beta * C
//
// Every matrix is a pointer plus a row stride and a column stride in elements
// (any sign, any order), so transposes, slices and Fortran order cost nothing.
// beta == 0 overwrites C without reading it (BLAS semantics: NaN in old C is ignored).
// Callers have validated shapes; these functions do no checking.
#pragma once
#include <cstdint>

namespace rb {

template <typename T>
struct MatView {
  T* data;
  int64_t rs;  // elements between rows
  int64_t cs;  // elements between columns
};

// The dispatcher: AVX2 fast path for float32 when active, the reference otherwise.
// Safe to call from inside an OpenMP parallel region (it then runs on one thread).
void gemm(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
          float beta, MatView<float> C);
void gemm(int64_t M, int64_t N, int64_t K, double alpha, MatView<const double> A, MatView<const double> B,
          double beta, MatView<double> C);

// The scalar reference: the spec every fast path is tested against.
template <typename T>
void gemm_ref(int64_t M, int64_t N, int64_t K, T alpha, MatView<const T> A, MatView<const T> B, T beta,
              MatView<T> C);

// The AVX2/FMA float32 kernel (gemm_avx2.cpp); returns the name of the path it took.
const char* sgemm_avx2(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A,
                       MatView<const float> B, float beta, MatView<float> C);

}  // namespace rb
