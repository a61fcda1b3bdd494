// Convolution, unfold / fold and pooling ops on DeviceArrays, with the names, arguments and results of the CPU
// module's kernels (csrc/conv/bind_conv.cpp, csrc/pool/bind_pool.cpp), so that the Python layer can
// call rosenblatt._C or rosenblatt._cuda alike. Every argument is checked here (ValueError /
// TypeError naming the op and the shapes) before any launch; results are fresh C-contiguous arrays.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "device_array.h"

namespace rb::cuda {

using Pair = std::vector<int64_t>;  // (height, width)

DeviceArray conv2d_forward(const DeviceArray& input, const DeviceArray& weight, const std::optional<DeviceArray>& bias,
                           const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups);
DeviceArray conv2d_backward_data(const DeviceArray& grad_output, const DeviceArray& weight, const Pair& input_size,
                                 const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups);
DeviceArray conv2d_backward_weight(const DeviceArray& input, const DeviceArray& grad_output, const Pair& kernel_size,
                                   const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups);
DeviceArray conv2d_backward_bias(const DeviceArray& grad_output);
DeviceArray conv_transpose2d_forward(const DeviceArray& input, const DeviceArray& weight,
                                     const std::optional<DeviceArray>& bias, const Pair& stride, const Pair& padding,
                                     const Pair& output_padding, const Pair& dilation, int64_t groups);
// unfold / fold: (N, C, H, W) -> (N, C*kH*kW, L) and back, overlapping values summed.
DeviceArray im2col(const DeviceArray& input, const Pair& kernel_size, const Pair& stride, const Pair& padding,
                   const Pair& dilation);
DeviceArray col2im(const DeviceArray& input, const Pair& output_size, const Pair& kernel_size, const Pair& stride,
                   const Pair& padding, const Pair& dilation);

// The convolution kernel the last call of `op` ran ("implicit_gemm" or "depthwise_direct"; "" before any).
std::string conv_last_impl(const std::string& op);

// (output, indices or nothing)
using PoolResult = std::pair<DeviceArray, std::optional<DeviceArray>>;

PoolResult max_pool2d_forward(const DeviceArray& input, const Pair& kernel_size, const Pair& stride,
                              const Pair& padding, const Pair& dilation, bool ceil_mode, bool return_indices);
DeviceArray max_pool2d_backward(const DeviceArray& grad_output, const DeviceArray& indices, const Pair& input_size);
DeviceArray avg_pool2d_forward(const DeviceArray& input, const Pair& kernel_size, const Pair& stride,
                               const Pair& padding, bool ceil_mode, bool count_include_pad,
                               std::optional<int64_t> divisor_override);
DeviceArray avg_pool2d_backward(const DeviceArray& grad_output, const Pair& input_size, const Pair& kernel_size,
                                const Pair& stride, const Pair& padding, bool ceil_mode, bool count_include_pad,
                                std::optional<int64_t> divisor_override);
PoolResult adaptive_max_pool2d_forward(const DeviceArray& input, const Pair& output_size, bool return_indices);
DeviceArray adaptive_avg_pool2d_forward(const DeviceArray& input, const Pair& output_size);
DeviceArray adaptive_avg_pool2d_backward(const DeviceArray& grad_output, const Pair& input_size);
PoolResult roi_pool_forward(const DeviceArray& input, const DeviceArray& boxes, const Pair& output_size,
                            double spatial_scale, bool return_indices);
DeviceArray roi_pool_backward(const DeviceArray& grad_output, const DeviceArray& boxes, const DeviceArray& argmax,
                              const std::vector<int64_t>& input_shape);

// Up-sampling, nearest or bilinear (F.interpolate): scales are torch's in / out ratios per axis
// (1 / scale_factor when a factor was given, else in / out), mode "nearest" or "bilinear".
DeviceArray upsample2d_forward(const DeviceArray& input, const Pair& output_size, const std::vector<double>& scales,
                               const std::string& mode, bool align_corners);
DeviceArray upsample2d_backward(const DeviceArray& grad_output, const Pair& input_size,
                                const std::vector<double>& scales, const std::string& mode, bool align_corners);

}  // namespace rb::cuda
