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

// C[0:mr, 0:32] (row stride rsc, unit column stride) = alpha * A . B + beta * C over kc steps of k, for
// a packed A panel of mr rows, 3 <= mr <= 6 (or, a_in_place, mr rows lda apart with unit column stride)
// and two packed 16-column B panels at b and b + b_stride (gemm_avx512.cpp; call only where
// avx512_active(), see dispatch.h).
void kernel_x32_avx512(int64_t mr, int64_t kc, const float* a, int64_t lda, bool a_in_place, const float* b,
                       int64_t b_stride, float* c, int64_t rsc, float alpha, float beta);

// ---- a right-hand operand packed once (AVX2 float32) ----------------------------------------
// For products repeated with the same B, such as a recurrent weight at every time step: B is
// packed once and each product then packs only A. B may be several segments of the same shape
// (K x N), segment s at B.data + s * b_segment_stride; the product of segment s is written to
// C.data + s * c_segment_stride: C_s (M x N) = alpha * A . B_s + beta * C_s. A is packed once for
// all segments. The product runs on the calling thread (use it inside a parallel region); a large B
// is packed by the threads available (the calling thread alone inside a parallel region).
int64_t packed_b_floats(int64_t K, int64_t N, int64_t segments);
void pack_b_avx2(int64_t K, int64_t N, int64_t segments, MatView<const float> B, int64_t b_segment_stride,
                 float* packed);
void sgemm_packed_b_avx2(int64_t M, int64_t N, int64_t K, int64_t segments, float alpha, MatView<const float> A,
                         const float* packed_b, float beta, MatView<float> C, int64_t c_segment_stride);

}  // namespace rb
