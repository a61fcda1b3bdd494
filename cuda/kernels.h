// Kernel launchers. They take device pointers, shapes and the stream, compute their launch
// configuration from the shapes, and check the launch (RuntimeError naming the op on failure).
// Shape checks belong to the callers in ops.cpp; these assume valid arguments.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace rb::cuda {

// ---- element-wise (elementwise.cu) ---------------------------------------------------------
enum class Elementwise {
  copy, neg, exp, log, tanh, sigmoid, relu,              // one input
  add, sub, mul, div,                                    // two inputs
  exp_backward, tanh_backward, sigmoid_backward,         // (grad, forward output)
  log_backward, relu_backward,                           // (grad, forward input)
  div_backward_b,                                        // (grad, a, b): d(a/b)/db * grad
};
int arity(Elementwise op);

constexpr int kMaxDims = 8;
constexpr int kMaxInputs = 3;

// out (C-contiguous, `shape`) from up to three inputs read through their own strides, in elements,
// already broadcast to `shape` (stride 0 along a broadcast dimension).
struct BroadcastLayout {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxInputs][kMaxDims] = {};
  bool contiguous = false;  // every input is C-contiguous with the output's shape: index = offset
};

template <typename T>
void launch_elementwise(Elementwise op, const BroadcastLayout& layout, const T* const* inputs, T* out, int64_t n,
                        cudaStream_t stream);
// Integer arrays are only ever copied (made contiguous, or on their way to the host): op must be copy.
template <>
void launch_elementwise<int64_t>(Elementwise op, const BroadcastLayout& layout, const int64_t* const* inputs,
                                 int64_t* out, int64_t n, cudaStream_t stream);

// ---- reductions and softmax (reduce.cu) ----------------------------------------------------
// x is C-contiguous (outer, n, inner); out (outer, inner) = sum over n.
template <typename T>
void sum_axis(const T* x, T* out, int64_t outer, int64_t n, int64_t inner, cudaStream_t stream);

// x, y are C-contiguous (rows, n): softmax or log_softmax of each row.
template <typename T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n, bool log, cudaStream_t stream);
// dx from dy and the forward output y: softmax: y*(dy - sum(dy*y)); log_softmax: dy - exp(y)*sum(dy).
template <typename T>
void softmax_rows_backward(const T* dy, const T* y, T* dx, int64_t rows, int64_t n, bool log, cudaStream_t stream);

// ---- SGEMM (gemm.cu) -----------------------------------------------------------------------
// For each of `batch` problems: C = alpha * op(A) op(B) + beta * C, row-major, op(A) is M x K,
// op(B) is K x N. Not transposed, A(m, k) = A[m*lda + k]; transposed, A(m, k) = A[k*lda + m]
// (likewise B). Problem b uses A + b*stride_a, B + b*stride_b, C + b*stride_c. beta == 0 never reads C.
struct GemmProblem {
  const float* a = nullptr;
  const float* b = nullptr;
  float* c = nullptr;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t stride_a = 0, stride_b = 0, stride_c = 0;
  int64_t batch = 1;
  bool trans_a = false, trans_b = false;
  float alpha = 1.0f, beta = 0.0f;
};
void sgemm(const GemmProblem& p, cudaStream_t stream);

}  // namespace rb::cuda
