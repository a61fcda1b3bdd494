// Launchers of the convolution and pooling kernels (conv.cu, pool.cu). They take device pointers,
// geometry and the stream, and check their launches; the op layer (conv_ops.cpp) validates every
// argument first and refuses arrays of 2^31 elements or more, so the kernels index in 32 bits and
// form element offsets in 64.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "pool/upsample.h"

namespace rb::cuda {

// ---- convolution (conv.cu): implicit GEMM -----------------------------------------------------
// x (N, C, H, W), w (O, C/groups, kH, kW), y (N, O, OH, OW); as rb::ConvGeometry (csrc/conv/conv.h):
//   y[n, o, oh, ow] = b[o] + sum_{c in group(o), i, j} w[o, c, i, j] x[n, c, oh sH - pH + i dH, ow sW - pW + j dW]
struct ConvDims {
  int N, C, H, W;  // input
  int O, kH, kW;   // weight (O, C / groups, kH, kW)
  int OH, OW;      // output (may be smaller than the formula's size: backward passes take it from dy)
  int sH, sW, pH, pW, dH, dW;
  int groups;
};

enum class ConvPass { forward, backward_data, backward_weight };

// y = conv(x, w) + bias (bias may be null).
template <typename T>
void conv2d_forward_igemm(const ConvDims& d, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream);
// dx = conv2d's input gradient from dy (N, O, OH, OW); bias (C,) may be null (added per input
// channel: conv_transpose2d's bias).
template <typename T>
void conv2d_backward_data_igemm(const ConvDims& d, const T* dy, const T* w, const T* bias, T* dx, cudaStream_t stream);
// dw (O, C/groups, kH, kW). The reduction over N*OH*OW is split `splits` ways; with splits > 1
// each split writes its partial dw into workspace (splits, O, C/groups*kH*kW) and the partials are
// then summed into dw.
template <typename T>
void conv2d_backward_weight_igemm(const ConvDims& d, const T* x, const T* dy, T* dw, T* workspace, int splits,
                                  cudaStream_t stream);
// How many ways to split backward-weight's reduction so that about `multiprocessors` x 4 blocks run.
int conv2d_backward_weight_splits(const ConvDims& d, int multiprocessors);

// The same kernels' code run on the host, barrier phase by barrier phase, with host pointers (tests
// of the index arithmetic without a GPU; small shapes only). in0, in1 are (x, w) for forward,
// (dy, w) for backward-data, (x, dy) for backward-weight; bias only for the first two.
// rows_per_tile: 32 or 64 forces that tile height; 0 chooses as the launchers do.
template <typename T>
void conv2d_igemm_simulated_on_host(ConvPass pass, const ConvDims& d, const T* in0, const T* in1, const T* bias, T* out,
                                    int splits, int rows_per_tile = 0);

// Direct kernels for one input channel per group (depthwise, any multiplier; conv_depthwise.cu).
// The op layer runs them instead of the implicit GEMM when conv2d_is_depthwise, unless the
// environment variable ROSENBLATT_CUDA_CONV is "igemm".
bool conv2d_is_depthwise(const ConvDims& d);
template <typename T>
void conv2d_depthwise_forward(const ConvDims& d, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream);
template <typename T>
void conv2d_depthwise_backward_data(const ConvDims& d, const T* dy, const T* w, const T* bias, T* dx,
                                    cudaStream_t stream);
template <typename T>
void conv2d_depthwise_backward_weight(const ConvDims& d, const T* x, const T* dy, T* dw, cudaStream_t stream);
template <typename T>
void conv2d_depthwise_simulated_on_host(ConvPass pass, const ConvDims& d, const T* in0, const T* in1, const T* bias,
                                        T* out);

// im2col / col2im of a batch (unfold.cu): x (N, C, H, W) <-> cols (N, C*kH*kW, OH*OW), with O = 1
// and groups = 1 in d. col2im writes every element of x (sums of the columns holding it).
template <typename T>
void im2col_cuda(const ConvDims& d, const T* x, T* cols, cudaStream_t stream);
template <typename T>
void col2im_cuda(const ConvDims& d, const T* cols, T* x, cudaStream_t stream);
// Both kernels' per-element code on the host: cols from x, and x_out from cols_in.
template <typename T>
void unfold_simulated_on_host(const ConvDims& d, const T* x, T* cols, const T* cols_in, T* x_out);

// ---- pooling (pool.cu): planes P = N * C, one thread per output (or per input for gathers) ------
struct PoolDims {
  int64_t planes, H, W, OH, OW;
  int64_t kH, kW, sH, sW, pH, pW, dH, dW;
};

// idx may be null. adaptive: windows [floor(o H / OH), ceil((o + 1) H / OH)), kernel fields unused.
template <typename T>
void max_pool2d_forward_cuda(const PoolDims& g, bool adaptive, const T* x, T* y, int64_t* idx, cudaStream_t stream);
// dx (P, in_plane) = scatter-add of dy (P, out_plane) through idx; indices outside [0, in_plane) are skipped.
template <typename T>
void max_pool2d_backward_cuda(int64_t planes, int64_t in_plane, int64_t out_plane, const T* dy, const int64_t* idx,
                              T* dx, cudaStream_t stream);
// divisor_override 0: none.
template <typename T>
void avg_pool2d_forward_cuda(const PoolDims& g, bool count_include_pad, int64_t divisor_override, const T* x, T* y,
                             cudaStream_t stream);
template <typename T>
void avg_pool2d_backward_cuda(const PoolDims& g, bool count_include_pad, int64_t divisor_override, const T* dy, T* dx,
                              cudaStream_t stream);
template <typename T>
void adaptive_avg_pool2d_forward_cuda(const PoolDims& g, const T* x, T* y, cudaStream_t stream);
template <typename T>
void adaptive_avg_pool2d_backward_cuda(const PoolDims& g, const T* dy, T* dx, cudaStream_t stream);
// RoI max pooling (torchvision.ops.roi_pool): rois (K, 5) already validated (batch index in range); argmax
// may be null.
template <typename T>
void roi_pool_forward_cuda(int64_t N, int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois,
                           int64_t PH, int64_t PW, double spatial_scale, T* y, int64_t* argmax, cudaStream_t stream);
template <typename T>
void roi_pool_backward_cuda(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, const T* rois, int64_t PH,
                            int64_t PW, const T* dy, const int64_t* argmax, T* dx, cudaStream_t stream);

// ---- up-sampling (upsample.cu): nearest or bilinear, torch's source-index rules -----------------
// UpsampleDims and the per-element rules: csrc/pool/upsample.h, shared with the CPU kernel.
template <typename T>
void upsample2d_forward_cuda(const UpsampleDims& g, const T* x, T* y, cudaStream_t stream);
template <typename T>
void upsample2d_backward_cuda(const UpsampleDims& g, const T* dy, T* dx, cudaStream_t stream);
// Both kernels' per-element code on the host: y from x, and dx from dy.
template <typename T>
void upsample2d_simulated_on_host(const UpsampleDims& g, const T* x, T* y, const T* dy, T* dx);

// The per-element code of the kernels above run on the host for every output (or input, for the
// gathers), with host pointers: tests of the window arithmetic without a GPU. For the backward
// passes `in` is dy and `out` is dx; idx is used by the max passes only (may be null).
enum class PoolPass { max, adaptive_max, avg, avg_backward, adaptive_avg, adaptive_avg_backward };
template <typename T>
void pool_simulated_on_host(PoolPass pass, const PoolDims& g, bool count_include_pad, int64_t divisor_override,
                            const T* in, T* out, int64_t* idx);
template <typename T>
void roi_pool_simulated_on_host(int64_t C, int64_t H, int64_t W, const T* x, int64_t K, const T* rois, int64_t PH,
                                int64_t PW, double spatial_scale, T* y, int64_t* argmax);

}  // namespace rb::cuda
