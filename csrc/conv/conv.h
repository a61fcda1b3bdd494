// 2-D convolution (cross-correlation, as torch) on NCHW arrays, forward and backward.
//
//   x  (N, C, H, W)          input
//   w  (O, C/groups, kH, kW) weight (PyTorch's layout)
//   y  (N, O, OH, OW)        output, OH = (H + 2 pH - dH (kH - 1) - 1) / sH + 1
//
//   y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] * x[n, c, oh sH - pH + i dH, ow sW - pW + j dW]
//
// Taps that fall outside the image read zero. Transposed convolution is this op's
// backward-data (and its backward-data is this op's forward), so it has no kernels of its own.
// All arrays are C-contiguous; the bindings validate shapes before anything here runs.
#pragma once
#include <cstdint>

namespace rb {

struct ConvGeometry {
  int64_t N, C, H, W;     // input
  int64_t O, kH, kW;      // weight is (O, C / groups, kH, kW)
  int64_t OH, OW;         // output
  int64_t sH, sW, pH, pW, dH, dW;
  int64_t groups;

  int64_t c_per_group() const { return C / groups; }
  int64_t o_per_group() const { return O / groups; }
  int64_t taps() const { return kH * kW; }
  // Rows of the im2col matrix of one group: (C / groups) * kH * kW.
  int64_t col_rows() const { return c_per_group() * kH * kW; }
  bool is_pointwise() const {  // 1x1, stride 1, no padding: the image already is the GEMM operand
    return kH == 1 && kW == 1 && sH == 1 && sW == 1 && pH == 0 && pW == 0;
  }
};

// Output length of one spatial dimension (may be <= 0 for an invalid configuration).
inline int64_t conv_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d) {
  const int64_t span = d * (k - 1) + 1;
  const int64_t padded = in + 2 * p;
  return padded < span ? 0 : (padded - span) / s + 1;
}

// ---- dispatchers (conv.cpp): choose the implementation and record it under the op's name.
// `op` names the op for last_impl ("conv2d", "conv2d_backward_data", "conv_transpose2d", ...).
template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, const char* op);
template <typename T>
void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* w, T* dx, const char* op);
template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dw, const char* op);
template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* dy, T* db);
// y = the forward of x (no bias) and dw = the weight gradient for x and output gradient dy, sharing
// the im2col of x where both take the GEMM route: the transposed convolution's backward.
template <typename T>
void conv2d_forward_and_backward_weight(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* y, T* dw,
                                        const char* op);

// im2col of one image for output rows [oh0, oh1): col (C * kH * kW, (oh1 - oh0) * OW) with row stride ld,
// from x (C, H, W). col2im adds a whole image's col (C * kH * kW, OH * OW), row stride ld, back onto x
// (zeroed by the caller), with threads splitting the channels.
template <typename T>
void im2col(const ConvGeometry& g, const T* x, int64_t oh0, int64_t oh1, T* col, int64_t ld);
template <typename T>
void col2im(const ConvGeometry& g, const T* col, int64_t ld, T* x);

// out[k] = src[2 k] for k < n, reading nothing past src[2 (n - 1)] (im2col_avx2.cpp, float32).
void copy_even_avx2(const float* src, float* out, int64_t n);

// ---- Winograd F(4x4, 3x3) (conv_winograd_avx2.cpp): 3x3, stride 1, dilation 1, groups 1, float32.
void conv2d_winograd_f4x3(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y);

// ---- direct convolution for a few output channels (conv_direct_avx2.cpp): stride 1, dilation 1, one
// group, float32. Forward: image n, all outputs; backward data: image n, input channel c; backward
// weight: the weights of input channel c, summed over all images.
void conv2d_few_outputs_forward_avx2(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                                     float* y, int64_t n);
void conv2d_few_outputs_backward_data_avx2(const ConvGeometry& g, const float* dy, const float* w, float* dx,
                                           int64_t n, int64_t c);
void conv2d_few_outputs_backward_weight_avx2(const ConvGeometry& g, const float* x, const float* dy, float* dw,
                                             int64_t c);

// ---- the scalar reference (conv_ref.cpp): direct loops, the spec.
template <typename T>
void conv2d_forward_ref(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void conv2d_backward_data_ref(const ConvGeometry& g, const T* dy, const T* w, T* dx);
template <typename T>
void conv2d_backward_weight_ref(const ConvGeometry& g, const T* x, const T* dy, T* dw);

}  // namespace rb
