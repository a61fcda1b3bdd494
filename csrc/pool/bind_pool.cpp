// Python entry points of the pooling family. Shapes, window parameters, indices and RoI boxes are
// validated here before any kernel runs; inputs of any layout are copied to C order.
#include <pybind11/stl.h>

#include <cmath>
#include <string>
#include <vector>

#include "bindings/arrays.h"
#include "pool/pool.h"
#include "pool/upsample.h"

namespace rb {

namespace {

using Pair = std::vector<int64_t>;

void check_pair(const Pair& p, const char* op, const char* name, int64_t minimum, const std::vector<int64_t>& xs) {
  if (p.size() != 2)
    value_error(op, ": ", name, " must have 2 entries (height, width), got ", shape_str(p), " (input ", shape_str(xs),
                ")");
  if (p[0] < minimum || p[1] < minimum)
    value_error(op, ": ", name, " must be >= ", minimum, ", got ", shape_str(p), " (input ", shape_str(xs), ")");
}
void check_pair(const Pair& p, const char* op, const char* name, int64_t minimum, const py::array& x) {
  check_pair(p, op, name, minimum, shape_of(x));
}

py::array require_4d_float(py::handle obj, const char* op, const char* name) {
  py::array a = require_ndarray(obj, op, name);
  if (a.ndim() != 4) value_error(op, ": ", name, " must be 4-D (N, C, H, W), got shape ", shape_str(shape_of(a)));
  if (!has_dtype<float>(a) && !has_dtype<double>(a))
    throw py::type_error(cat(op, ": ", name, " has dtype ", dtype_name(a), " (shape ", shape_str(shape_of(a)),
                             "); expected float32 or float64"));
  if (a.size() == 0) value_error(op, ": ", name, " is empty, shape ", shape_str(shape_of(a)));
  return a;
}

void check_same_dtype(const char* op, const py::array& a, const char* a_name, const py::array& b, const char* b_name) {
  if (!a.dtype().equal(b.dtype()))
    throw py::type_error(cat(op, ": ", b_name, " has dtype ", dtype_name(b), " (shape ", shape_str(shape_of(b)),
                             ") but ", a_name, " has ", dtype_name(a)));
}

py::array contiguous_index(const py::array& a, const char* op) {
  if (!has_dtype<int64_t>(a))
    throw py::type_error(cat(op, ": indices must be int64, got ", dtype_name(a), " (shape ", shape_str(shape_of(a)), ")"));
  return c_contiguous<int64_t>(a, op, "indices");
}

// torch's pooling_output_shape: floor (or ceil) division, and a ceil-mode window must start inside the image or left padding.
int64_t pool_out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode) {
  const int64_t numerator = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
  int64_t out = (numerator >= 0 ? numerator / s : -((-numerator + s - 1) / s)) + 1;
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

// Input shape xs = (N, C, H, W).
PoolGeometry window_geometry(const char* op, const std::vector<int64_t>& xs, const Pair& kernel, const Pair& stride,
                             const Pair& padding, const Pair& dilation, bool ceil_mode) {
  check_pair(kernel, op, "kernel_size", 1, xs);
  check_pair(stride, op, "stride", 1, xs);
  check_pair(padding, op, "padding", 0, xs);
  check_pair(dilation, op, "dilation", 1, xs);
  const std::string shape = shape_str(xs);
  for (int d = 0; d < 2; ++d)
    if (padding[d] > kernel[d] / 2)  // padding * 2 > kernel, without overflow
      value_error(op, ": padding ", shape_str(padding), " must be at most half of kernel_size ", shape_str(kernel),
                  " (input ", shape, ")");
  // The output size and the kernels' indices reach the padded input plus the dilated window (plus a
  // stride in ceil mode), and a window has kH * kW taps: none of it may wrap around.
  const std::string too_large = cat(op, ": kernel_size ", shape_str(kernel), ", stride ", shape_str(stride),
                                    ", padding ", shape_str(padding), " and dilation ", shape_str(dilation),
                                    " are too large (input ", shape, ")");
  for (int d = 0; d < 2; ++d) {
    const int64_t span = checked_add(checked_mul(dilation[d], kernel[d] - 1, too_large), 1, too_large);
    const int64_t padded = checked_add(xs[2 + d], checked_mul(2, padding[d], too_large), too_large);
    checked_add(padded, span, too_large);
    checked_add(padded, stride[d], too_large);
  }
  checked_mul(kernel[0], kernel[1], too_large);
  PoolGeometry g{xs[0] * xs[1], xs[2], xs[3], 0, 0, kernel[0], kernel[1], stride[0], stride[1],
                 padding[0], padding[1], dilation[0], dilation[1]};
  g.OH = pool_out_size(g.H, g.kH, g.sH, g.pH, g.dH, ceil_mode);
  g.OW = pool_out_size(g.W, g.kW, g.sW, g.pW, g.dW, ceil_mode);
  if (g.OH < 1 || g.OW < 1)
    value_error(op, ": output size (", g.OH, ", ", g.OW, ") is too small for input ", shape, " with kernel_size ",
                shape_str(kernel), ", stride ", shape_str(stride), ", padding ", shape_str(padding), ", dilation ",
                shape_str(dilation));
  return g;
}

// ---- max pooling ----

template <typename T>
py::tuple max_forward_typed(const py::array& x_in, const PoolGeometry& g, bool with_indices, bool adaptive) {
  py::array x = c_contiguous<T>(x_in, adaptive ? "adaptive_max_pool2d" : "max_pool2d", "input");
  const int64_t N = x.shape(0), C = x.shape(1);
  py::array y = py::array_t<T>({N, C, g.OH, g.OW});
  py::object idx_obj = py::none();
  int64_t* idx = nullptr;
  if (with_indices) {
    py::array_t<int64_t> indices({N, C, g.OH, g.OW});
    idx = indices.mutable_data();
    idx_obj = indices;
  }
  const T* src = static_cast<const T*>(x.data());
  T* dst = static_cast<T*>(y.mutable_data());
  {
    py::gil_scoped_release release;
    if (adaptive)
      adaptive_max_pool2d_forward<T>(g, src, dst, idx);
    else
      max_pool2d_forward<T>(g, src, dst, idx);
  }
  return py::make_tuple(y, idx_obj);
}

py::tuple max_pool2d_forward_entry(py::handle x_obj, Pair kernel, Pair stride, Pair padding, Pair dilation,
                                   bool ceil_mode, bool return_indices) {
  const char* op = "max_pool2d";
  py::array x = require_4d_float(x_obj, op, "input");
  PoolGeometry g = window_geometry(op, shape_of(x), kernel, stride, padding, dilation, ceil_mode);
  return has_dtype<float>(x) ? max_forward_typed<float>(x, g, return_indices, false)
                             : max_forward_typed<double>(x, g, return_indices, false);
}

PoolGeometry adaptive_geometry(const char* op, const py::array& x, const Pair& output_size) {
  check_pair(output_size, op, "output_size", 1, x);
  return PoolGeometry{x.shape(0) * x.shape(1), x.shape(2), x.shape(3), output_size[0], output_size[1],
                      1, 1, 1, 1, 0, 0, 1, 1};
}

py::tuple adaptive_max_pool2d_forward_entry(py::handle x_obj, Pair output_size, bool return_indices) {
  const char* op = "adaptive_max_pool2d";
  py::array x = require_4d_float(x_obj, op, "input");
  PoolGeometry g = adaptive_geometry(op, x, output_size);
  return has_dtype<float>(x) ? max_forward_typed<float>(x, g, return_indices, true)
                             : max_forward_typed<double>(x, g, return_indices, true);
}

template <typename T>
py::array max_backward_typed(const py::array& dy_in, const py::array& idx, int64_t H, int64_t W, const char* op) {
  py::array dy = c_contiguous<T>(dy_in, op, "grad_output");
  const int64_t N = dy.shape(0), C = dy.shape(1), out_plane = dy.shape(2) * dy.shape(3);
  py::array dx = py::array_t<T>({N, C, H, W});
  const T* g = static_cast<const T*>(dy.data());
  const int64_t* index = static_cast<const int64_t*>(idx.data());
  T* out = static_cast<T*>(dx.mutable_data());
  py::gil_scoped_release release;
  max_pool2d_backward<T>(N * C, H * W, out_plane, g, index, out, op);
  return dx;
}

// dy, indices (N, C, OH, OW) -> dx (N, C, H, W): every index must be -1 or inside its plane.
py::array max_pool2d_backward_entry(py::handle dy_obj, py::handle idx_obj, Pair input_size) {
  const char* op = "max_pool2d_backward";
  py::array dy = require_4d_float(dy_obj, op, "grad_output");
  py::array idx = contiguous_index(require_ndarray(idx_obj, op, "indices"), op);
  if (shape_of(idx) != shape_of(dy))
    value_error(op, ": indices ", shape_str(shape_of(idx)), " and grad_output ", shape_str(shape_of(dy)),
                " differ in shape");
  check_pair(input_size, op, "input_size", 1, dy);
  const int64_t plane =
      checked_mul(input_size[0], input_size[1], cat(op, ": input_size ", shape_str(input_size), " is too large"));
  const int64_t* index = static_cast<const int64_t*>(idx.data());
  for (int64_t i = 0; i < idx.size(); ++i)
    if (index[i] < -1 || index[i] >= plane)
      value_error(op, ": index ", index[i], " at position ", i, " is outside an input plane of size ",
                  shape_str(input_size), " (grad_output ", shape_str(shape_of(dy)), ")");
  return has_dtype<float>(dy) ? max_backward_typed<float>(dy, idx, input_size[0], input_size[1], op)
                              : max_backward_typed<double>(dy, idx, input_size[0], input_size[1], op);
}

// ---- average pooling ----

// divisor_override: None or a non-zero int, as torch (which divides by a negative one too).
AvgOptions avg_options(const char* op, bool count_include_pad, py::object divisor_override, const py::array& x) {
  AvgOptions opt{count_include_pad, 0};
  if (divisor_override.is_none()) return opt;
  const std::string given = py::repr(divisor_override);
  try {
    opt.divisor_override = divisor_override.cast<int64_t>();
  } catch (const py::cast_error&) {
    throw py::type_error(cat(op, ": divisor_override must be None or a non-zero int, got ", given, " (input ",
                             shape_str(shape_of(x)), ")"));
  }
  if (opt.divisor_override == 0)
    value_error(op, ": divisor_override must be None or a non-zero int, got ", given, " (input ",
                shape_str(shape_of(x)), ")");
  return opt;
}

PoolGeometry avg_geometry(const char* op, const std::vector<int64_t>& xs, const Pair& kernel, const Pair& stride,
                          const Pair& padding, bool ceil_mode) {
  return window_geometry(op, xs, kernel, stride, padding, {1, 1}, ceil_mode);
}

template <typename T>
py::array avg_forward_typed(const py::array& x_in, const PoolGeometry& g, const AvgOptions* opt) {
  py::array x = c_contiguous<T>(x_in, opt ? "avg_pool2d" : "adaptive_avg_pool2d", "input");
  py::array y = py::array_t<T>({x.shape(0), x.shape(1), g.OH, g.OW});
  const T* src = static_cast<const T*>(x.data());
  T* dst = static_cast<T*>(y.mutable_data());
  py::gil_scoped_release release;
  if (opt)
    avg_pool2d_forward<T>(g, *opt, src, dst);
  else
    adaptive_avg_pool2d_forward<T>(g, src, dst);
  return y;
}

py::array avg_pool2d_forward_entry(py::handle x_obj, Pair kernel, Pair stride, Pair padding, bool ceil_mode,
                                   bool count_include_pad, py::object divisor_override) {
  const char* op = "avg_pool2d";
  py::array x = require_4d_float(x_obj, op, "input");
  PoolGeometry g = avg_geometry(op, shape_of(x), kernel, stride, padding, ceil_mode);
  AvgOptions opt = avg_options(op, count_include_pad, divisor_override, x);
  return has_dtype<float>(x) ? avg_forward_typed<float>(x, g, &opt) : avg_forward_typed<double>(x, g, &opt);
}

template <typename T>
py::array avg_backward_typed(const py::array& dy_in, const PoolGeometry& g, const AvgOptions* opt) {
  py::array dy = c_contiguous<T>(dy_in, opt ? "avg_pool2d_backward" : "adaptive_avg_pool2d_backward", "grad_output");
  py::array dx = py::array_t<T>({dy.shape(0), dy.shape(1), g.H, g.W});
  const T* src = static_cast<const T*>(dy.data());
  T* dst = static_cast<T*>(dx.mutable_data());
  py::gil_scoped_release release;
  if (opt)
    avg_pool2d_backward<T>(g, *opt, src, dst);
  else
    adaptive_avg_pool2d_backward<T>(g, src, dst);
  return dx;
}

void check_grad_shape(const char* op, const py::array& dy, const PoolGeometry& g) {
  if (dy.shape(2) != g.OH || dy.shape(3) != g.OW)
    value_error(op, ": grad_output ", shape_str(shape_of(dy)), " does not match the pooled size (", g.OH, ", ", g.OW,
                ")");
}

py::array avg_pool2d_backward_entry(py::handle dy_obj, Pair input_size, Pair kernel, Pair stride, Pair padding,
                                    bool ceil_mode, bool count_include_pad, py::object divisor_override) {
  const char* op = "avg_pool2d_backward";
  py::array dy = require_4d_float(dy_obj, op, "grad_output");
  check_pair(input_size, op, "input_size", 1, dy);
  // The geometry of the forward input: (N, C) from dy, (H, W) from input_size.
  PoolGeometry g =
      avg_geometry(op, {dy.shape(0), dy.shape(1), input_size[0], input_size[1]}, kernel, stride, padding, ceil_mode);
  check_grad_shape(op, dy, g);
  AvgOptions opt = avg_options(op, count_include_pad, divisor_override, dy);
  return has_dtype<float>(dy) ? avg_backward_typed<float>(dy, g, &opt) : avg_backward_typed<double>(dy, g, &opt);
}

py::array adaptive_avg_pool2d_forward_entry(py::handle x_obj, Pair output_size) {
  const char* op = "adaptive_avg_pool2d";
  py::array x = require_4d_float(x_obj, op, "input");
  PoolGeometry g = adaptive_geometry(op, x, output_size);
  return has_dtype<float>(x) ? avg_forward_typed<float>(x, g, nullptr) : avg_forward_typed<double>(x, g, nullptr);
}

py::array adaptive_avg_pool2d_backward_entry(py::handle dy_obj, Pair input_size) {
  const char* op = "adaptive_avg_pool2d_backward";
  py::array dy = require_4d_float(dy_obj, op, "grad_output");
  check_pair(input_size, op, "input_size", 1, dy);
  PoolGeometry g{dy.shape(0) * dy.shape(1), input_size[0], input_size[1], dy.shape(2), dy.shape(3), 1, 1, 1, 1, 0, 0, 1, 1};
  return has_dtype<float>(dy) ? avg_backward_typed<float>(dy, g, nullptr) : avg_backward_typed<double>(dy, g, nullptr);
}

// ---- RoI pooling ----

// rois (K, 5) = (batch, x1, y1, x2, y2): batch index in [0, N), coordinates finite and moderate once
// scaled as the kernel scales them (in T: a float32 scale of 1e39 is inf), since it rounds them to int64.
template <typename T>
void check_rois(const char* op, const py::array& rois, int64_t N, const py::array& x, double spatial_scale = 1.0) {
  const T* r = static_cast<const T*>(rois.data());
  const T scale = T(spatial_scale);
  for (int64_t k = 0; k < rois.shape(0); ++k) {
    for (int j = 0; j < 5; ++j) {
      const double value = double(r[k * 5 + j]), scaled = j ? double(r[k * 5 + j] * scale) : value;
      if (!std::isfinite(value) || std::fabs(value) > 1e15 || !std::isfinite(scaled) || std::fabs(scaled) > 1e15)
        value_error(op, ": box ", k, " has a non-finite or huge coordinate (", value, " scaled by spatial_scale ",
                    spatial_scale, ") (boxes ", shape_str(shape_of(rois)), ", input ", shape_str(shape_of(x)), ")");
    }
    const double b = double(r[k * 5]);
    if (b != std::floor(b) || b < 0 || b >= double(N))
      value_error(op, ": box ", k, " has batch index ", b, ", outside [0, ", N, ") (boxes ", shape_str(shape_of(rois)),
                  ", input ", shape_str(shape_of(x)), ")");
  }
}

py::array require_rois(py::handle obj, const char* op, const py::array& x) {
  py::array rois = require_ndarray(obj, op, "boxes");
  if (rois.ndim() != 2 || rois.shape(1) != 5)
    value_error(op, ": boxes must have shape (K, 5) = (batch_index, x1, y1, x2, y2), got ", shape_str(shape_of(rois)),
                " (input ", shape_str(shape_of(x)), ")");
  check_same_dtype(op, x, "input", rois, "boxes");
  return rois;
}

// Without indices (no gradient wanted) the int64 argmax, twice the bytes of a float32 output, is
// neither allocated nor computed.
template <typename T>
py::tuple roi_forward_typed(const py::array& x_in, const py::array& rois_in, const Pair& out, double scale,
                            bool with_indices) {
  py::array x = c_contiguous<T>(x_in, "roi_pool", "input"), rois = c_contiguous<T>(rois_in, "roi_pool", "boxes");
  const int64_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3), K = rois.shape(0);
  check_rois<T>("roi_pool", rois, N, x, scale);
  py::array y = py::array_t<T>({K, C, out[0], out[1]});
  py::object argmax_obj = py::none();
  int64_t* arg = nullptr;
  if (with_indices) {
    py::array_t<int64_t> argmax({K, C, out[0], out[1]});
    arg = argmax.mutable_data();
    argmax_obj = argmax;
  }
  const T* src = static_cast<const T*>(x.data());
  const T* boxes = static_cast<const T*>(rois.data());
  T* dst = static_cast<T*>(y.mutable_data());
  {
    py::gil_scoped_release release;
    roi_pool_forward<T>(N, C, H, W, src, K, boxes, out[0], out[1], scale, dst, arg);
  }
  return py::make_tuple(y, argmax_obj);
}

py::tuple roi_pool_forward_entry(py::handle x_obj, py::handle rois_obj, Pair output_size, double spatial_scale,
                                 bool return_indices) {
  const char* op = "roi_pool";
  py::array x = require_4d_float(x_obj, op, "input");
  py::array rois = require_rois(rois_obj, op, x);
  check_pair(output_size, op, "output_size", 1, x);
  if (!std::isfinite(spatial_scale) || spatial_scale <= 0)
    value_error(op, ": spatial_scale must be positive, got ", spatial_scale, " (input ", shape_str(shape_of(x)), ")");
  return has_dtype<float>(x) ? roi_forward_typed<float>(x, rois, output_size, spatial_scale, return_indices)
                             : roi_forward_typed<double>(x, rois, output_size, spatial_scale, return_indices);
}

template <typename T>
py::array roi_backward_typed(const py::array& dy_in, const py::array& rois_in, const py::array& argmax,
                             const std::vector<int64_t>& xs) {
  const char* op = "roi_pool_backward";
  py::array dy = c_contiguous<T>(dy_in, op, "grad_output"), rois = c_contiguous<T>(rois_in, op, "boxes");
  check_rois<T>(op, rois, xs[0], dy);
  py::array dx = py::array_t<T>({xs[0], xs[1], xs[2], xs[3]});
  const T* g = static_cast<const T*>(dy.data());
  const T* boxes = static_cast<const T*>(rois.data());
  const int64_t* arg = static_cast<const int64_t*>(argmax.data());
  T* out = static_cast<T*>(dx.mutable_data());
  py::gil_scoped_release release;
  roi_pool_backward<T>(xs[0], xs[1], xs[2], xs[3], dy.shape(0), boxes, dy.shape(2), dy.shape(3), g, arg, out);
  return dx;
}

py::array roi_pool_backward_entry(py::handle dy_obj, py::handle rois_obj, py::handle argmax_obj,
                                  std::vector<int64_t> input_shape) {
  const char* op = "roi_pool_backward";
  py::array dy = require_4d_float(dy_obj, op, "grad_output");
  py::array rois = require_rois(rois_obj, op, dy);
  py::array argmax = contiguous_index(require_ndarray(argmax_obj, op, "argmax"), op);
  if (input_shape.size() != 4 || input_shape[0] < 1 || input_shape[1] != dy.shape(1) || input_shape[2] < 1 ||
      input_shape[3] < 1 || shape_of(argmax) != shape_of(dy) || rois.shape(0) != dy.shape(0))
    value_error(op, ": inconsistent shapes: grad_output ", shape_str(shape_of(dy)), ", argmax ",
                shape_str(shape_of(argmax)), ", boxes ", shape_str(shape_of(rois)), ", input ", shape_str(input_shape));
  const int64_t plane =
      checked_mul(input_shape[2], input_shape[3], cat(op, ": input_shape ", shape_str(input_shape), " is too large"));
  const int64_t* arg = static_cast<const int64_t*>(argmax.data());
  for (int64_t i = 0; i < argmax.size(); ++i)
    if (arg[i] < -1 || arg[i] >= plane)
      value_error(op, ": argmax ", arg[i], " at position ", i, " is outside an input plane of ", plane, " elements");
  return has_dtype<float>(dy) ? roi_backward_typed<float>(dy, rois, argmax, input_shape)
                              : roi_backward_typed<double>(dy, rois, argmax, input_shape);
}

// ---- up-sampling ----

// scales: torch's in / out ratio per axis (1 / scale_factor when a factor was given, else in / out).
UpsampleDims upsample_geometry(const char* op, const std::vector<int64_t>& xs, const Pair& out_hw,
                               const std::vector<double>& scales, const std::string& mode, bool align_corners) {
  check_pair(out_hw, op, "output_size", 1, xs);
  if (mode != "nearest" && mode != "bilinear")
    value_error(op, ": mode must be 'nearest' or 'bilinear', got '", mode, "' (input ", shape_str(xs), ")");
  if (scales.size() != 2 || !std::isfinite(scales[0]) || !std::isfinite(scales[1]) || scales[0] <= 0 || scales[1] <= 0)
    value_error(op, ": scales must be two positive numbers (input / output size per axis) (input ", shape_str(xs), ")");
  return UpsampleDims{xs[0] * xs[1], xs[2], xs[3], out_hw[0], out_hw[1], scales[0], scales[1], mode == "bilinear",
                      align_corners};
}

// The forward (dst of OH x OW planes from x) or the backward (dst of H x W planes from dy).
template <typename T, bool BACKWARD>
py::array upsample_typed(const py::array& src_in, const UpsampleDims& g, const char* op, const char* name) {
  py::array src = c_contiguous<T>(src_in, op, name);
  py::array dst = py::array_t<T>({src.shape(0), src.shape(1), BACKWARD ? g.H : g.OH, BACKWARD ? g.W : g.OW});
  const T* in = static_cast<const T*>(src.data());
  T* out = static_cast<T*>(dst.mutable_data());
  py::gil_scoped_release release;
  if (BACKWARD)
    upsample2d_backward<T>(g, in, out);
  else
    upsample2d_forward<T>(g, in, out);
  return dst;
}

py::array upsample2d_forward_entry(py::handle x_obj, Pair output_size, std::vector<double> scales, std::string mode,
                                   bool align_corners) {
  const char* op = "upsample2d";
  py::array x = require_4d_float(x_obj, op, "input");
  const UpsampleDims g = upsample_geometry(op, shape_of(x), output_size, scales, mode, align_corners);
  return has_dtype<float>(x) ? upsample_typed<float, false>(x, g, op, "input")
                             : upsample_typed<double, false>(x, g, op, "input");
}

py::array upsample2d_backward_entry(py::handle dy_obj, Pair input_size, std::vector<double> scales, std::string mode,
                                    bool align_corners) {
  const char* op = "upsample2d_backward";
  py::array dy = require_4d_float(dy_obj, op, "grad_output");
  check_pair(input_size, op, "input_size", 1, dy);
  const std::vector<int64_t> xs{dy.shape(0), dy.shape(1), input_size[0], input_size[1]};
  const UpsampleDims g = upsample_geometry(op, xs, {dy.shape(2), dy.shape(3)}, scales, mode, align_corners);
  return has_dtype<float>(dy) ? upsample_typed<float, true>(dy, g, op, "grad_output")
                              : upsample_typed<double, true>(dy, g, op, "grad_output");
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("max_pool2d_forward", &max_pool2d_forward_entry, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), py::arg("ceil_mode"), py::arg("return_indices"),
        "(output, indices or None): max pooling of NCHW input; indices are flat per plane (ih * W + iw).");
  m.def("max_pool2d_backward", &max_pool2d_backward_entry, py::arg("grad_output"), py::arg("indices"),
        py::arg("input_size"), "Scatter grad_output to the argmax positions (max and adaptive max pooling).");
  m.def("avg_pool2d_forward", &avg_pool2d_forward_entry, py::arg("input"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("ceil_mode"), py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def("avg_pool2d_backward", &avg_pool2d_backward_entry, py::arg("grad_output"), py::arg("input_size"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("ceil_mode"),
        py::arg("count_include_pad"), py::arg("divisor_override"));
  m.def("adaptive_max_pool2d_forward", &adaptive_max_pool2d_forward_entry, py::arg("input"), py::arg("output_size"),
        py::arg("return_indices"));
  m.def("adaptive_avg_pool2d_forward", &adaptive_avg_pool2d_forward_entry, py::arg("input"), py::arg("output_size"));
  m.def("adaptive_avg_pool2d_backward", &adaptive_avg_pool2d_backward_entry, py::arg("grad_output"),
        py::arg("input_size"));
  m.def("roi_pool_forward", &roi_pool_forward_entry, py::arg("input"), py::arg("boxes"), py::arg("output_size"),
        py::arg("spatial_scale"), py::arg("return_indices") = true,
        "(output, argmax or None): torchvision.ops.roi_pool on NCHW input, boxes (K, 5); argmax (the flat "
        "per-plane index of each bin's maximum, -1 for none) only with return_indices.");
  m.def("roi_pool_backward", &roi_pool_backward_entry, py::arg("grad_output"), py::arg("boxes"), py::arg("argmax"),
        py::arg("input_shape"));
  m.def("upsample2d_forward", &upsample2d_forward_entry, py::arg("input"), py::arg("output_size"), py::arg("scales"),
        py::arg("mode"), py::arg("align_corners"),
        "F.interpolate of NCHW input to output_size; scales = torch's input / output ratio per axis "
        "(1 / scale_factor when a factor was given); mode 'nearest' or 'bilinear'.");
  m.def("upsample2d_backward", &upsample2d_backward_entry, py::arg("grad_output"), py::arg("input_size"),
        py::arg("scales"), py::arg("mode"), py::arg("align_corners"), "Gradient of upsample2d_forward.");
}

}  // namespace rb
