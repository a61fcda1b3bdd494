// Kernel launchers. They take device pointers, shapes and the stream, compute their launch
// configuration from the shapes, and check the launch (RuntimeError naming the op on failure).
// Shape checks belong to the callers in ops.cpp; these assume valid arguments.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <vector>

namespace rb::cuda {

// ---- element-wise (elementwise.cu) ---------------------------------------------------------
enum class Elementwise {
  copy, neg, exp, log, tanh, sigmoid, relu,              // one input
  sqrt, abs, sign, log1p, sin, cos,
  add, sub, mul, div,                                    // two inputs
  pow, maximum, minimum,                                 // maximum / minimum propagate NaN, as NumPy
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

// Builds the layout for inputs of these shapes and strides (NumPy broadcasting); out_shape gets
// the broadcast shape. Throws ValueError naming `op` when the shapes do not broadcast.
BroadcastLayout broadcast_layout(const std::vector<std::vector<int64_t>>& shapes,
                                 const std::vector<std::vector<int64_t>>& strides, const char* op,
                                 std::vector<int64_t>& out_shape);
// The kernels' own offset computation, run on the host (tests without a GPU).
void broadcast_offsets_on_host(const BroadcastLayout& layout, int n_inputs, int64_t i, int64_t* offsets);

// Floating T only (integer and bool arrays are copied and converted by launch_cast).
template <typename T>
void launch_elementwise(Elementwise op, const BroadcastLayout& layout, const T* const* inputs, T* out, int64_t n,
                        cudaStream_t stream);

// ---- the device tensor layer's kernels (tensor_ops.cu) -------------------------------------
// Layouts as for launch_elementwise; bool arrays are uint8_t holding 0 or 1.
enum class Compare { eq, ne, lt, le, gt, ge, logical_and, logical_or, logical_xor };
// out (bool) = a <op> b, broadcasting.
template <typename T>
void launch_compare(Compare op, const BroadcastLayout& layout, const T* a, const T* b, uint8_t* out, int64_t n,
                    cudaStream_t stream);
// out = cond ? a : b, broadcasting (layout inputs: cond, a, b).
template <typename T>
void launch_where(const BroadcastLayout& layout, const uint8_t* cond, const T* a, const T* b, T* out, int64_t n,
                  cudaStream_t stream);
// out (C-contiguous) = x read through the layout's strides, converted (to bool: x != 0).
template <typename From, typename To>
void launch_cast(const BroadcastLayout& layout, const From* x, To* out, int64_t n, cudaStream_t stream);
// dst[offset0(i)] = src[offset1(i)] for the n elements of dst (layout inputs: dst, src broadcast to dst).
// T is an unsigned integer of the element's size: assignment moves bits.
template <typename T>
void launch_assign(const BroadcastLayout& layout, T* dst, const T* src, int64_t n, cudaStream_t stream);
// out[0..n) = value.
template <typename T>
void launch_fill(T* out, T value, int64_t n, cudaStream_t stream);
// x is C-contiguous (outer, n, inner), n >= 1: values and indices (outer, inner) of the max (or min)
// over n; the first extreme wins ties, and a NaN wins over numbers (as np.argmax / np.max).
template <typename T>
void extreme_axis(const T* x, T* values, int64_t* indices, int64_t outer, int64_t n, int64_t inner, bool minimum,
                  cudaStream_t stream);

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
// The same kernel run on the host, with host pointers, barrier phase by barrier phase: a test of the
// kernel's index arithmetic that needs no GPU (slow; small shapes only).
void sgemm_simulated_on_host(const GemmProblem& p);

}  // namespace rb::cuda
