// Argument checks, output allocation and launches of the convolution family's ops (convolution,
// unfold / fold, pooling, up-sampling). The checks follow the CPU bindings (csrc/conv/bind_conv.cpp,
// csrc/pool/bind_pool.cpp) rule for rule, with the same messages, so that both modules refuse the
// same calls in the same words; this file also chooses between the implicit GEMM and the direct
// depthwise kernels (use_depthwise).
#include "conv_ops.h"

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <type_traits>

#include "allocator.h"
#include "check.h"
#include "conv/conv.h"  // rb::ConvGeometry, rb::conv_out_size: the CPU module's geometry
#include "conv_kernels.h"
#include "kernels.h"
#include "ops.h"

namespace py = pybind11;

namespace rb::cuda {
namespace {

constexpr int64_t kInt32Limit = int64_t(1) << 31;

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::string s;
  auto add = [&s](const auto& part) {
    if constexpr (std::is_arithmetic_v<std::decay_t<decltype(part)>>) s += std::to_string(part);
    else s += part;
  };
  (add(parts), ...);
  return s;
}

template <typename... Parts>
[[noreturn]] void value_error(const Parts&... parts) {
  throw py::value_error(cat(parts...));
}

void check_pair(const Pair& p, const char* op, const char* name, int64_t minimum, const std::string& context = "") {
  if (p.size() != 2) value_error(op, ": ", name, " must have 2 entries (height, width), got ", shape_str(p), context);
  if (p[0] < minimum || p[1] < minimum) value_error(op, ": ", name, " must be >= ", minimum, ", got ", shape_str(p), context);
}

void require_4d(const DeviceArray& a, const char* op, const char* name) {
  if (a.ndim() != 4) value_error(op, ": ", name, " must be 4-D (N, C, H, W), got shape ", shape_str(a.shape()));
}

void require_float(const DeviceArray& a, const char* op, const char* name) {
  if (a.dtype() == DType::int64)
    throw py::type_error(cat(op, ": ", name, " has dtype int64 (shape ", shape_str(a.shape()),
                             "); expected float32 or float64"));
}

// b must have a's dtype (TypeError) and device (ValueError).
void require_like(const DeviceArray& a, const char* a_name, const DeviceArray& b, const char* b_name, const char* op) {
  if (b.dtype() != a.dtype())
    throw py::type_error(cat(op, ": ", b_name, " has dtype ", dtype_name(b.dtype()), " (shape ", shape_str(b.shape()),
                             ") but ", a_name, " has ", dtype_name(a.dtype())));
  if (b.device() != a.device())
    value_error(op, ": ", a_name, " ", a.describe(), " and ", b_name, " ", b.describe(), " are on different devices");
}

void require_indices(const DeviceArray& idx, const DeviceArray& like, const char* op, const char* name) {
  if (idx.dtype() != DType::int64)
    throw py::type_error(cat(op, ": ", name, " must be int64, got ", dtype_name(idx.dtype()), " (shape ",
                             shape_str(idx.shape()), ")"));
  if (idx.device() != like.device())
    value_error(op, ": ", name, " ", idx.describe(), " and grad_output ", like.describe(), " are on different devices");
}

// The kernels index in 32 bits: refuse arrays they could not address.
void require_int32_size(int64_t elements, const std::vector<int64_t>& shape, const char* op, const char* name) {
  if (elements >= kInt32Limit)
    value_error(op, ": ", name, " of shape ", shape_str(shape), " has 2^31 elements or more (the CUDA kernels index in 32 bits)");
}

template <class F>
void dispatch_float(DType dtype, F&& f) {
  if (dtype == DType::float32) f(static_cast<float*>(nullptr));
  else f(static_cast<double*>(nullptr));
}

template <typename T>
const T* cptr(const DeviceArray& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mptr(const DeviceArray& a) { return static_cast<T*>(a.data()); }

// ---- convolution geometry (make_geometry in csrc/conv/bind_conv.cpp) ----

ConvGeometry make_geometry(const char* op, const std::vector<int64_t>& xs, const std::vector<int64_t>& ws,
                           const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups,
                           const Pair* out_hw = nullptr) {
  check_pair(stride, op, "stride", 1);
  check_pair(padding, op, "padding", 0);
  check_pair(dilation, op, "dilation", 1);
  const std::string shapes = cat(" (input ", shape_str(xs), ", weight ", shape_str(ws), ")");
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups, shapes);
  ConvGeometry g{xs[0], xs[1], xs[2], xs[3], ws[0], ws[2], ws[3], 0, 0,
                 stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], groups};
  if (g.C % groups != 0) value_error(op, ": in_channels ", g.C, " is not divisible by groups ", groups, shapes);
  if (g.O % groups != 0) value_error(op, ": out_channels ", g.O, " is not divisible by groups ", groups, shapes);
  if (ws[1] != g.C / groups)
    value_error(op, ": weight must have C / groups = ", g.C / groups, " input channels, got ", ws[1], shapes);
  if (g.kH < 1 || g.kW < 1) value_error(op, ": kernel size must be >= 1", shapes);
  // Every intermediate of the kernels' tap arithmetic must fit 32 bits.
  auto fits = [](int64_t v) { return v >= 0 && v < kInt32Limit; };
  const bool parameters_fit = fits(g.sH) && fits(g.sW) && fits(g.pH) && fits(g.pW) && fits(g.dH) && fits(g.dW) &&
                              fits(g.kH) && fits(g.kW) && fits(g.H) && fits(g.W);
  if (!parameters_fit || !fits(g.H + 2 * g.pH) || !fits(g.W + 2 * g.pW) || !fits(g.dH * (g.kH - 1) + 1) ||
      !fits(g.dW * (g.kW - 1) + 1))
      value_error(op, ": stride ", shape_str(stride), ", padding ", shape_str(padding), ", dilation ",
                  shape_str(dilation), " are too large for the CUDA kernels' 32-bit indexing", shapes);
  const int64_t oh = conv_out_size(g.H, g.kH, g.sH, g.pH, g.dH), ow = conv_out_size(g.W, g.kW, g.sW, g.pW, g.dW);
  if (oh < 1 || ow < 1)
    value_error(op, ": the dilated kernel (", g.dH * (g.kH - 1) + 1, ", ", g.dW * (g.kW - 1) + 1,
                ") is larger than the padded input (", g.H + 2 * g.pH, ", ", g.W + 2 * g.pW, ")", shapes);
  g.OH = oh;
  g.OW = ow;
  if (out_hw) {
    if ((*out_hw)[0] < 1 || (*out_hw)[1] < 1 || (*out_hw)[0] > oh || (*out_hw)[1] > ow)
      value_error(op, ": output size ", shape_str(*out_hw), " does not fit the computed size (", oh, ", ", ow, ")",
                  shapes);
    g.OH = (*out_hw)[0];
    g.OW = (*out_hw)[1];
  }
  if (g.N < 1 || g.C < 1 || g.O < 1 || g.H < 1 || g.W < 1) value_error(op, ": empty dimension", shapes);
  require_int32_size(g.N * g.C * g.H * g.W, {g.N, g.C, g.H, g.W}, op, "input");
  require_int32_size(g.O * (g.C / groups) * g.kH * g.kW, ws, op, "weight");
  require_int32_size(g.N * g.O * g.OH * g.OW, {g.N, g.O, g.OH, g.OW}, op, "output");
  return g;
}

// ---- which convolution kernel runs ----

std::map<std::string, std::string>& last_impls() {  // written with the GIL held
  static std::map<std::string, std::string> impls;
  return impls;
}

// The direct depthwise kernels where they apply, unless ROSENBLATT_CUDA_CONV=igemm asks for the
// implicit GEMM (so tests reach both on one machine); records the choice under `op`.
bool use_depthwise(const ConvDims& d, const char* op) {
  const char* forced = std::getenv("ROSENBLATT_CUDA_CONV");
  const bool direct = conv2d_is_depthwise(d) && !(forced && std::string(forced) == "igemm");
  last_impls()[op] = direct ? "depthwise_direct" : "implicit_gemm";
  return direct;
}

ConvDims dims_of(const ConvGeometry& g) {
  auto i = [](int64_t v) { return static_cast<int>(v); };
  return ConvDims{i(g.N), i(g.C), i(g.H), i(g.W), i(g.O), i(g.kH), i(g.kW), i(g.OH), i(g.OW),
                  i(g.sH), i(g.sW), i(g.pH), i(g.pW), i(g.dH), i(g.dW), i(g.groups)};
}

void check_bias(const std::optional<DeviceArray>& bias, const char* op, int64_t channels, const DeviceArray& x,
                const DeviceArray& w) {
  if (!bias) return;
  if (bias->ndim() != 1 || bias->shape()[0] != channels)
    value_error(op, ": bias must have shape (", channels, ",), got ", shape_str(bias->shape()), " (input ",
                shape_str(x.shape()), ", weight ", shape_str(w.shape()), ")");
  require_like(x, "input", *bias, "bias", op);
}

// The convolution whose output-gradient is dy (N, O, OH, OW) and whose input is (N, C, H, W) = input_hw.
ConvGeometry geometry_from_output(const char* op, const DeviceArray& dy, const DeviceArray& w, const Pair& input_hw,
                                  const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups) {
  check_pair(input_hw, op, "input size", 1);
  if (dy.shape()[1] != w.shape()[0])
    value_error(op, ": grad_output has ", dy.shape()[1], " channels but weight ", shape_str(w.shape()), " has ",
                w.shape()[0], " output channels");
  int64_t channels;  // w.shape()[1] * groups, which an absurd groups would overflow
  if (__builtin_mul_overflow(w.shape()[1], groups, &channels))
    value_error(op, ": groups ", groups, " is too large for weight ", shape_str(w.shape()));
  const std::vector<int64_t> xs{dy.shape()[0], channels, input_hw[0], input_hw[1]};
  const Pair out_hw{dy.shape()[2], dy.shape()[3]};
  return make_geometry(op, xs, w.shape(), stride, padding, dilation, groups, &out_hw);
}

// dx of the convolution g from dy and w (plus a per-channel bias: conv_transpose2d's).
DeviceArray backward_data(const DeviceArray& dy_in, const DeviceArray& w_in, const std::optional<DeviceArray>& bias,
                          const ConvGeometry& g, const char* op) {
  const DeviceArray dy = contiguous(dy_in), w = contiguous(w_in);
  const std::optional<DeviceArray> b = bias ? std::optional<DeviceArray>(contiguous(*bias)) : std::nullopt;
  DeviceArray dx = DeviceArray::empty({g.N, g.C, g.H, g.W}, dy.dtype(), dy.device(), op);
  DeviceGuard guard(dy.device(), op);
  cudaStream_t s = stream(dy.device(), op);
  const ConvDims d = dims_of(g);
  const bool direct = use_depthwise(d, op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    if (direct)
      conv2d_depthwise_backward_data<T>(d, cptr<T>(dy), cptr<T>(w), b ? cptr<T>(*b) : nullptr, mptr<T>(dx), s);
    else
      conv2d_backward_data_igemm<T>(d, cptr<T>(dy), cptr<T>(w), b ? cptr<T>(*b) : nullptr, mptr<T>(dx), s);
  });
  return dx;
}

// ---- pooling geometry (bind_pool.cpp) ----

// torch's pooling_output_shape: floor (or ceil) division; a ceil-mode window must start inside the image or left padding.
int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t numerator = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (numerator >= 0 ? numerator / s : -((-numerator + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

void require_pool_input(const DeviceArray& x, const char* op, const char* name) {
  require_4d(x, op, name);
  require_float(x, op, name);
  if (x.numel() == 0) value_error(op, ": ", name, " is empty, shape ", shape_str(x.shape()));
}

PoolDims window_geometry(const char* op, const std::vector<int64_t>& xs, const Pair& kernel, const Pair& stride,
                         const Pair& padding, const Pair& dilation, bool ceil_mode) {
  const std::string context = cat(" (input ", shape_str(xs), ")");
  check_pair(kernel, op, "kernel_size", 1, context);
  check_pair(stride, op, "stride", 1, context);
  check_pair(padding, op, "padding", 0, context);
  check_pair(dilation, op, "dilation", 1, context);
  for (int d = 0; d < 2; ++d)
    if (padding[d] * 2 > kernel[d])
      value_error(op, ": padding ", shape_str(padding), " must be at most half of kernel_size ", shape_str(kernel),
                  context);
  PoolDims g{xs[0] * xs[1], xs[2], xs[3], 0, 0, kernel[0], kernel[1], stride[0], stride[1],
             padding[0], padding[1], dilation[0], dilation[1]};
  g.OH = pool_out_size(g.H, g.kH, g.sH, g.pH, g.dH, ceil_mode);
  g.OW = pool_out_size(g.W, g.kW, g.sW, g.pW, g.dW, ceil_mode);
  if (g.OH < 1 || g.OW < 1)
    value_error(op, ": output size (", g.OH, ", ", g.OW, ") is too small for input ", shape_str(xs),
                " with kernel_size ", shape_str(kernel), ", stride ", shape_str(stride), ", padding ",
                shape_str(padding), ", dilation ", shape_str(dilation));
  return g;
}

PoolDims adaptive_geometry(const char* op, const DeviceArray& x, const Pair& output_size) {
  check_pair(output_size, op, "output_size", 1, cat(" (input ", shape_str(x.shape()), ")"));
  const auto& s = x.shape();
  return PoolDims{s[0] * s[1], s[2], s[3], output_size[0], output_size[1], 1, 1, 1, 1, 0, 0, 1, 1};
}

int64_t checked_divisor(const char* op, std::optional<int64_t> divisor_override) {
  // As torch (and avg_options in bind_pool.cpp): any divisor but 0; a negative one divides too.
  if (divisor_override && *divisor_override == 0)
    value_error(op, ": divisor_override must be None or a non-zero int, got ", *divisor_override);
  return divisor_override.value_or(0);
}

PoolResult max_pool(const DeviceArray& x_in, const PoolDims& g, bool adaptive, bool with_indices, const char* op) {
  const DeviceArray x = contiguous(x_in);
  const std::vector<int64_t> shape{x.shape()[0], x.shape()[1], g.OH, g.OW};
  DeviceArray y = DeviceArray::empty(shape, x.dtype(), x.device(), op);
  std::optional<DeviceArray> idx;
  if (with_indices) idx = DeviceArray::empty(shape, DType::int64, x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    max_pool2d_forward_cuda<T>(g, adaptive, cptr<T>(x), mptr<T>(y), idx ? mptr<int64_t>(*idx) : nullptr, s);
  });
  return {y, idx};
}

// rois (K, 5) = (batch, x1, y1, x2, y2), checked on the host (they are few): batch index an
// integer in [0, N), every coordinate finite and not huge (check_rois in bind_pool.cpp).
template <typename T>
void check_rois(const char* op, const DeviceArray& rois, int64_t N, const DeviceArray& x) {
  const py::array host = to_host(rois);
  const T* r = static_cast<const T*>(host.data());
  for (int64_t k = 0; k < rois.shape()[0]; ++k) {
    for (int j = 0; j < 5; ++j)
      if (!std::isfinite(double(r[k * 5 + j])) || std::fabs(double(r[k * 5 + j])) > 1e15)
        value_error(op, ": box ", k, " has a non-finite or huge coordinate (boxes ", shape_str(rois.shape()),
                    ", input ", shape_str(x.shape()), ")");
    const double b = double(r[k * 5]);
    if (b != std::floor(b) || b < 0 || b >= double(N))
      value_error(op, ": box ", k, " has batch index ", std::to_string(b), ", outside [0, ", N, ") (boxes ",
                  shape_str(rois.shape()), ", input ", shape_str(x.shape()), ")");
  }
}

void require_rois(const DeviceArray& rois, const char* op, const DeviceArray& x) {
  if (rois.ndim() != 2 || rois.shape()[1] != 5)
    value_error(op, ": boxes must have shape (K, 5) = (batch_index, x1, y1, x2, y2), got ", shape_str(rois.shape()),
                " (input ", shape_str(x.shape()), ")");
  require_like(x, "input", rois, "boxes", op);
}

UpsampleDims upsample_geometry(const char* op, const std::vector<int64_t>& xs, const Pair& out_hw,
                               const std::vector<double>& scales, const std::string& mode, bool align_corners) {
  const std::string context = cat(" (input ", shape_str(xs), ")");
  check_pair(out_hw, op, "output size", 1, context);
  if (mode != "nearest" && mode != "bilinear")
    value_error(op, ": mode must be 'nearest' or 'bilinear', got '", mode, "'", context);
  if (scales.size() != 2 || !std::isfinite(scales[0]) || !std::isfinite(scales[1]) || scales[0] <= 0 || scales[1] <= 0)
    value_error(op, ": scales must be two positive numbers (input / output size per axis)", context);
  return UpsampleDims{xs[0] * xs[1], xs[2], xs[3], out_hw[0], out_hw[1], scales[0], scales[1], mode == "bilinear",
                      align_corners};
}

}  // namespace

// ---- convolution ---------------------------------------------------------------------------------

std::string conv_last_impl(const std::string& op) {
  const auto found = last_impls().find(op);
  return found == last_impls().end() ? std::string() : found->second;
}

DeviceArray conv2d_forward(const DeviceArray& x_in, const DeviceArray& w_in, const std::optional<DeviceArray>& bias,
                           const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups) {
  const char* op = "conv2d";
  require_4d(x_in, op, "input");
  require_4d(w_in, op, "weight");
  require_float(x_in, op, "input");
  require_like(x_in, "input", w_in, "weight", op);
  const ConvGeometry g = make_geometry(op, x_in.shape(), w_in.shape(), stride, padding, dilation, groups);
  check_bias(bias, op, g.O, x_in, w_in);
  const DeviceArray x = contiguous(x_in), w = contiguous(w_in);
  const std::optional<DeviceArray> b = bias ? std::optional<DeviceArray>(contiguous(*bias)) : std::nullopt;
  DeviceArray y = DeviceArray::empty({g.N, g.O, g.OH, g.OW}, x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  const ConvDims d = dims_of(g);
  const bool direct = use_depthwise(d, op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    if (direct)
      conv2d_depthwise_forward<T>(d, cptr<T>(x), cptr<T>(w), b ? cptr<T>(*b) : nullptr, mptr<T>(y), s);
    else
      conv2d_forward_igemm<T>(d, cptr<T>(x), cptr<T>(w), b ? cptr<T>(*b) : nullptr, mptr<T>(y), s);
  });
  return y;
}

DeviceArray conv2d_backward_data(const DeviceArray& dy, const DeviceArray& w, const Pair& input_size,
                                 const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups) {
  const char* op = "conv2d_backward_data";
  require_4d(dy, op, "grad_output");
  require_4d(w, op, "weight");
  require_float(dy, op, "grad_output");
  require_like(dy, "grad_output", w, "weight", op);
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups);
  const ConvGeometry g = geometry_from_output(op, dy, w, input_size, stride, padding, dilation, groups);
  return backward_data(dy, w, std::nullopt, g, op);
}

DeviceArray conv2d_backward_weight(const DeviceArray& x_in, const DeviceArray& dy_in, const Pair& kernel_size,
                                   const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups) {
  const char* op = "conv2d_backward_weight";
  require_4d(x_in, op, "input");
  require_4d(dy_in, op, "grad_output");
  require_float(x_in, op, "input");
  require_like(x_in, "input", dy_in, "grad_output", op);
  check_pair(kernel_size, op, "kernel_size", 1);
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups);
  if (dy_in.shape()[0] != x_in.shape()[0] || x_in.shape()[1] % groups != 0)
    value_error(op, ": input ", shape_str(x_in.shape()), " and grad_output ", shape_str(dy_in.shape()),
                " do not match (groups ", groups, ")");
  const std::vector<int64_t> ws{dy_in.shape()[1], x_in.shape()[1] / groups, kernel_size[0], kernel_size[1]};
  const Pair out_hw{dy_in.shape()[2], dy_in.shape()[3]};
  const ConvGeometry g = make_geometry(op, x_in.shape(), ws, stride, padding, dilation, groups, &out_hw);
  const ConvDims d = dims_of(g);
  const DeviceArray x = contiguous(x_in), dy = contiguous(dy_in);
  DeviceArray dw = DeviceArray::empty(ws, x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  if (use_depthwise(d, op)) {
    dispatch_float(x.dtype(), [&](auto* type) {
      using T = std::remove_pointer_t<decltype(type)>;
      conv2d_depthwise_backward_weight<T>(d, cptr<T>(x), cptr<T>(dy), mptr<T>(dw), s);
    });
    return dw;
  }
  int multiprocessors = 0;
  RB_CUDA_CHECK(op, cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, x.device()));
  const int splits = conv2d_backward_weight_splits(d, multiprocessors);
  std::optional<DeviceArray> workspace;
  if (splits > 1) workspace = DeviceArray::empty({splits, dw.numel()}, x.dtype(), x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    conv2d_backward_weight_igemm<T>(d, cptr<T>(x), cptr<T>(dy), mptr<T>(dw), workspace ? mptr<T>(*workspace) : nullptr,
                                    splits, s);
  });
  return dw;  // the workspace returns to the allocator after the stream's work is queued: same stream, safe
}

DeviceArray conv2d_backward_bias(const DeviceArray& dy_in) {
  const char* op = "conv2d_backward_bias";
  require_4d(dy_in, op, "grad_output");
  require_float(dy_in, op, "grad_output");
  const DeviceArray dy = contiguous(dy_in);
  const int64_t N = dy.shape()[0], O = dy.shape()[1], plane = dy.shape()[2] * dy.shape()[3];
  DeviceArray db = DeviceArray::empty({O}, dy.dtype(), dy.device(), op);
  if (O == 0) return db;
  DeviceGuard guard(dy.device(), op);
  cudaStream_t s = stream(dy.device(), op);
  if (N * plane == 0) {
    RB_CUDA_CHECK(op, cudaMemsetAsync(db.data(), 0, static_cast<size_t>(O) * itemsize(dy.dtype()), s));
    return db;
  }
  // Sum over each (n, o) plane, then over n: two passes of the reduction kernels.
  DeviceArray per_image = DeviceArray::empty({N, O}, dy.dtype(), dy.device(), op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    sum_axis<T>(cptr<T>(dy), mptr<T>(per_image), N * O, plane, 1, s);
    sum_axis<T>(cptr<T>(per_image), mptr<T>(db), 1, N, O, s);
  });
  return db;
}

DeviceArray conv_transpose2d_forward(const DeviceArray& x, const DeviceArray& w, const std::optional<DeviceArray>& bias,
                                     const Pair& stride, const Pair& padding, const Pair& output_padding,
                                     const Pair& dilation, int64_t groups) {
  const char* op = "conv_transpose2d";
  require_4d(x, op, "input");
  require_4d(w, op, "weight");
  require_float(x, op, "input");
  require_like(x, "input", w, "weight", op);
  check_pair(stride, op, "stride", 1);
  check_pair(padding, op, "padding", 0);
  check_pair(dilation, op, "dilation", 1);
  check_pair(output_padding, op, "output_padding", 0);
  const std::string shapes = cat(" (input ", shape_str(x.shape()), ", weight ", shape_str(w.shape()), ")");
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups, shapes);
  if (x.shape()[1] != w.shape()[0])
    value_error(op, ": input has ", x.shape()[1], " channels but weight has ", w.shape()[0], shapes);
  for (int d = 0; d < 2; ++d)
    if (output_padding[d] >= stride[d] && output_padding[d] >= dilation[d])
      value_error(op, ": output_padding ", shape_str(output_padding), " must be smaller than stride ",
                  shape_str(stride), " or dilation ", shape_str(dilation), shapes);
  for (int64_t v : {stride[0], stride[1], padding[0], padding[1], dilation[0], dilation[1], output_padding[0],
                    output_padding[1]})
    if (v >= kInt32Limit)
      value_error(op, ": stride, padding, dilation and output_padding must be below 2^31", shapes);
  Pair out_hw(2);
  for (int d = 0; d < 2; ++d)
    out_hw[d] = (x.shape()[2 + d] - 1) * stride[d] - 2 * padding[d] + dilation[d] * (w.shape()[2 + d] - 1) +
                output_padding[d] + 1;
  if (out_hw[0] < 1 || out_hw[1] < 1)
    value_error(op, ": the output size ", out_hw[0], "x", out_hw[1], " is not positive", shapes);
  const ConvGeometry g = geometry_from_output(op, x, w, out_hw, stride, padding, dilation, groups);
  check_bias(bias, op, g.C, x, w);
  return backward_data(x, w, bias, g, op);
}

// ---- im2col / col2im (unfold / fold) --------------------------------------------------------------

DeviceArray im2col(const DeviceArray& x_in, const Pair& kernel_size, const Pair& stride, const Pair& padding,
                   const Pair& dilation) {
  const char* op = "unfold";
  require_4d(x_in, op, "input");
  require_float(x_in, op, "input");
  check_pair(kernel_size, op, "kernel_size", 1);
  const ConvGeometry g = make_geometry(op, x_in.shape(), {1, x_in.shape()[1], kernel_size[0], kernel_size[1]},
                                       stride, padding, dilation, 1);
  const int64_t rows = g.C * g.kH * g.kW, L = g.OH * g.OW;
  require_int32_size(g.N * rows * L, {g.N, rows, L}, op, "output");
  const DeviceArray x = contiguous(x_in);
  DeviceArray cols = DeviceArray::empty({g.N, rows, L}, x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    im2col_cuda<T>(dims_of(g), cptr<T>(x), mptr<T>(cols), s);
  });
  return cols;
}

DeviceArray col2im(const DeviceArray& cols_in, const Pair& output_size, const Pair& kernel_size, const Pair& stride,
                   const Pair& padding, const Pair& dilation) {
  const char* op = "fold";
  if (cols_in.ndim() != 3)
    value_error(op, ": input must be 3-D (N, C*kH*kW, L), got ", shape_str(cols_in.shape()));
  require_float(cols_in, op, "input");
  check_pair(kernel_size, op, "kernel_size", 1);
  check_pair(output_size, op, "output_size", 1);
  const int64_t taps = kernel_size[0] * kernel_size[1];
  if (cols_in.shape()[1] % taps != 0)
    value_error(op, ": input ", shape_str(cols_in.shape()), " dim 1 is not a multiple of kH*kW = ", taps);
  const int64_t C = cols_in.shape()[1] / taps;
  const ConvGeometry g = make_geometry(op, {cols_in.shape()[0], C, output_size[0], output_size[1]},
                                       {1, C, kernel_size[0], kernel_size[1]}, stride, padding, dilation, 1);
  if (g.OH * g.OW != cols_in.shape()[2])
    value_error(op, ": input ", shape_str(cols_in.shape()), " has ", cols_in.shape()[2], " columns, expected ",
                g.OH * g.OW, " blocks for output_size ", shape_str(output_size));
  require_int32_size(cols_in.numel(), cols_in.shape(), op, "input");
  const DeviceArray cols = contiguous(cols_in);
  DeviceArray x = DeviceArray::empty({g.N, g.C, g.H, g.W}, cols.dtype(), cols.device(), op);
  DeviceGuard guard(cols.device(), op);
  cudaStream_t s = stream(cols.device(), op);
  dispatch_float(cols.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    col2im_cuda<T>(dims_of(g), cptr<T>(cols), mptr<T>(x), s);
  });
  return x;
}

// ---- pooling -------------------------------------------------------------------------------------

PoolResult max_pool2d_forward(const DeviceArray& x, const Pair& kernel_size, const Pair& stride, const Pair& padding,
                              const Pair& dilation, bool ceil_mode, bool return_indices) {
  const char* op = "max_pool2d";
  require_pool_input(x, op, "input");
  const PoolDims g = window_geometry(op, x.shape(), kernel_size, stride, padding, dilation, ceil_mode);
  return max_pool(x, g, false, return_indices, op);
}

PoolResult adaptive_max_pool2d_forward(const DeviceArray& x, const Pair& output_size, bool return_indices) {
  const char* op = "adaptive_max_pool2d";
  require_pool_input(x, op, "input");
  return max_pool(x, adaptive_geometry(op, x, output_size), true, return_indices, op);
}

DeviceArray max_pool2d_backward(const DeviceArray& dy_in, const DeviceArray& idx_in, const Pair& input_size) {
  const char* op = "max_pool2d_backward";
  require_pool_input(dy_in, op, "grad_output");
  require_indices(idx_in, dy_in, op, "indices");
  if (idx_in.shape() != dy_in.shape())
    value_error(op, ": indices ", shape_str(idx_in.shape()), " and grad_output ", shape_str(dy_in.shape()),
                " differ in shape");
  check_pair(input_size, op, "input_size", 1, cat(" (input ", shape_str(dy_in.shape()), ")"));
  const DeviceArray dy = contiguous(dy_in), idx = contiguous(idx_in);
  const int64_t N = dy.shape()[0], C = dy.shape()[1];
  DeviceArray dx = DeviceArray::empty({N, C, input_size[0], input_size[1]}, dy.dtype(), dy.device(), op);
  DeviceGuard guard(dy.device(), op);
  cudaStream_t s = stream(dy.device(), op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    max_pool2d_backward_cuda<T>(N * C, input_size[0] * input_size[1], dy.shape()[2] * dy.shape()[3], cptr<T>(dy),
                                cptr<int64_t>(idx), mptr<T>(dx), s);
  });
  return dx;
}

DeviceArray avg_pool2d_forward(const DeviceArray& x_in, const Pair& kernel_size, const Pair& stride,
                               const Pair& padding, bool ceil_mode, bool count_include_pad,
                               std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d";
  require_pool_input(x_in, op, "input");
  const PoolDims g = window_geometry(op, x_in.shape(), kernel_size, stride, padding, {1, 1}, ceil_mode);
  const int64_t divisor = checked_divisor(op, divisor_override);
  const DeviceArray x = contiguous(x_in);
  DeviceArray y = DeviceArray::empty({x.shape()[0], x.shape()[1], g.OH, g.OW}, x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    avg_pool2d_forward_cuda<T>(g, count_include_pad, divisor, cptr<T>(x), mptr<T>(y), s);
  });
  return y;
}

DeviceArray avg_pool2d_backward(const DeviceArray& dy_in, const Pair& input_size, const Pair& kernel_size,
                                const Pair& stride, const Pair& padding, bool ceil_mode, bool count_include_pad,
                                std::optional<int64_t> divisor_override) {
  const char* op = "avg_pool2d_backward";
  require_pool_input(dy_in, op, "grad_output");
  check_pair(input_size, op, "input_size", 1, cat(" (input ", shape_str(dy_in.shape()), ")"));
  const std::vector<int64_t> xs{dy_in.shape()[0], dy_in.shape()[1], input_size[0], input_size[1]};
  const PoolDims g = window_geometry(op, xs, kernel_size, stride, padding, {1, 1}, ceil_mode);
  if (dy_in.shape()[2] != g.OH || dy_in.shape()[3] != g.OW)
    value_error(op, ": grad_output ", shape_str(dy_in.shape()), " does not match the pooled size (", g.OH, ", ", g.OW,
                ")");
  const int64_t divisor = checked_divisor(op, divisor_override);
  const DeviceArray dy = contiguous(dy_in);
  DeviceArray dx = DeviceArray::empty(xs, dy.dtype(), dy.device(), op);
  DeviceGuard guard(dy.device(), op);
  cudaStream_t s = stream(dy.device(), op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    avg_pool2d_backward_cuda<T>(g, count_include_pad, divisor, cptr<T>(dy), mptr<T>(dx), s);
  });
  return dx;
}

DeviceArray adaptive_avg_pool2d_forward(const DeviceArray& x_in, const Pair& output_size) {
  const char* op = "adaptive_avg_pool2d";
  require_pool_input(x_in, op, "input");
  const PoolDims g = adaptive_geometry(op, x_in, output_size);
  const DeviceArray x = contiguous(x_in);
  DeviceArray y = DeviceArray::empty({x.shape()[0], x.shape()[1], g.OH, g.OW}, x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    adaptive_avg_pool2d_forward_cuda<T>(g, cptr<T>(x), mptr<T>(y), s);
  });
  return y;
}

DeviceArray adaptive_avg_pool2d_backward(const DeviceArray& dy_in, const Pair& input_size) {
  const char* op = "adaptive_avg_pool2d_backward";
  require_pool_input(dy_in, op, "grad_output");
  check_pair(input_size, op, "input_size", 1, cat(" (input ", shape_str(dy_in.shape()), ")"));
  const DeviceArray dy = contiguous(dy_in);
  const auto& s = dy.shape();
  const PoolDims g{s[0] * s[1], input_size[0], input_size[1], s[2], s[3], 1, 1, 1, 1, 0, 0, 1, 1};
  DeviceArray dx = DeviceArray::empty({s[0], s[1], input_size[0], input_size[1]}, dy.dtype(), dy.device(), op);
  DeviceGuard guard(dy.device(), op);
  cudaStream_t st = stream(dy.device(), op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    adaptive_avg_pool2d_backward_cuda<T>(g, cptr<T>(dy), mptr<T>(dx), st);
  });
  return dx;
}

PoolResult roi_pool_forward(const DeviceArray& x_in, const DeviceArray& rois_in, const Pair& output_size,
                            double spatial_scale, bool return_indices) {
  const char* op = "roi_pool";
  require_pool_input(x_in, op, "input");
  require_rois(rois_in, op, x_in);
  check_pair(output_size, op, "output_size", 1, cat(" (input ", shape_str(x_in.shape()), ")"));
  if (!std::isfinite(spatial_scale) || spatial_scale <= 0)
    value_error(op, ": spatial_scale must be positive, got ", spatial_scale, " (input ", shape_str(x_in.shape()), ")");
  const DeviceArray x = contiguous(x_in), rois = contiguous(rois_in);
  const int64_t N = x.shape()[0], C = x.shape()[1], H = x.shape()[2], W = x.shape()[3], K = rois.shape()[0];
  dispatch_float(x.dtype(), [&](auto* type) { check_rois<std::remove_pointer_t<decltype(type)>>(op, rois, N, x); });
  const std::vector<int64_t> shape{K, C, output_size[0], output_size[1]};
  DeviceArray y = DeviceArray::empty(shape, x.dtype(), x.device(), op);
  std::optional<DeviceArray> argmax;
  if (return_indices) argmax = DeviceArray::empty(shape, DType::int64, x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    roi_pool_forward_cuda<T>(N, C, H, W, cptr<T>(x), K, cptr<T>(rois), output_size[0], output_size[1], spatial_scale,
                             mptr<T>(y), argmax ? mptr<int64_t>(*argmax) : nullptr, s);
  });
  return {y, argmax};
}

DeviceArray roi_pool_backward(const DeviceArray& dy_in, const DeviceArray& rois_in, const DeviceArray& argmax_in,
                              const std::vector<int64_t>& xs) {
  const char* op = "roi_pool_backward";
  require_pool_input(dy_in, op, "grad_output");
  require_rois(rois_in, op, dy_in);
  require_indices(argmax_in, dy_in, op, "argmax");
  if (xs.size() != 4 || xs[0] < 1 || xs[1] != dy_in.shape()[1] || xs[2] < 1 || xs[3] < 1 ||
      argmax_in.shape() != dy_in.shape() || rois_in.shape()[0] != dy_in.shape()[0])
    value_error(op, ": inconsistent shapes: grad_output ", shape_str(dy_in.shape()), ", argmax ",
                shape_str(argmax_in.shape()), ", boxes ", shape_str(rois_in.shape()), ", input ", shape_str(xs));
  const DeviceArray dy = contiguous(dy_in), rois = contiguous(rois_in), argmax = contiguous(argmax_in);
  dispatch_float(dy.dtype(), [&](auto* type) { check_rois<std::remove_pointer_t<decltype(type)>>(op, rois, xs[0], dy); });
  DeviceArray dx = DeviceArray::empty(xs, dy.dtype(), dy.device(), op);
  DeviceGuard guard(dy.device(), op);
  cudaStream_t s = stream(dy.device(), op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    roi_pool_backward_cuda<T>(xs[0], xs[1], xs[2], xs[3], dy.shape()[0], cptr<T>(rois), dy.shape()[2], dy.shape()[3],
                              cptr<T>(dy), cptr<int64_t>(argmax), mptr<T>(dx), s);
  });
  return dx;
}

}  // namespace rb::cuda

namespace rb::cuda {

// ---- up-sampling ---------------------------------------------------------------------------------

DeviceArray upsample2d_forward(const DeviceArray& x_in, const Pair& output_size, const std::vector<double>& scales,
                               const std::string& mode, bool align_corners) {
  const char* op = "upsample2d";
  require_pool_input(x_in, op, "input");
  const UpsampleDims g = upsample_geometry(op, x_in.shape(), output_size, scales, mode, align_corners);
  const DeviceArray x = contiguous(x_in);
  DeviceArray y = DeviceArray::empty({x.shape()[0], x.shape()[1], g.OH, g.OW}, x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    upsample2d_forward_cuda<T>(g, cptr<T>(x), mptr<T>(y), s);
  });
  return y;
}

DeviceArray upsample2d_backward(const DeviceArray& dy_in, const Pair& input_size, const std::vector<double>& scales,
                                const std::string& mode, bool align_corners) {
  const char* op = "upsample2d_backward";
  require_pool_input(dy_in, op, "grad_output");
  check_pair(input_size, op, "input_size", 1, cat(" (grad_output ", shape_str(dy_in.shape()), ")"));
  const std::vector<int64_t> xs{dy_in.shape()[0], dy_in.shape()[1], input_size[0], input_size[1]};
  const UpsampleDims g = upsample_geometry(op, xs, {dy_in.shape()[2], dy_in.shape()[3]}, scales, mode, align_corners);
  const DeviceArray dy = contiguous(dy_in);
  DeviceArray dx = DeviceArray::empty(xs, dy.dtype(), dy.device(), op);
  DeviceGuard guard(dy.device(), op);
  cudaStream_t s = stream(dy.device(), op);
  dispatch_float(dy.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    upsample2d_backward_cuda<T>(g, cptr<T>(dy), mptr<T>(dx), s);
  });
  return dx;
}

}  // namespace rb::cuda
