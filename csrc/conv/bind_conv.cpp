// Python entry points of the convolution family. Every argument is validated here, before any
// kernel touches memory; inputs of any layout are copied to C order (the kernels want contiguous data).
#include <algorithm>

#include <pybind11/stl.h>

#include "bindings/arrays.h"
#include "common/parallel.h"
#include "conv/conv.h"

namespace rb {

namespace {

using Pair = std::vector<int64_t>;

Pair check_pair(const Pair& p, const char* op, const char* name, int64_t minimum) {
  if (p.size() != 2) value_error(op, ": ", name, " must have 2 entries (height, width), got ", shape_str(p));
  if (p[0] < minimum || p[1] < minimum)
    value_error(op, ": ", name, " must be >= ", minimum, ", got ", shape_str(p));
  return p;
}

// The shared dtype of the float arrays (TypeError otherwise); 'f' for float32, 'd' for float64.
char common_float_dtype(const char* op, std::initializer_list<std::pair<const char*, const py::array*>> arrays) {
  const py::array& first = *arrays.begin()->second;
  const char kind = has_dtype<float>(first) ? 'f' : has_dtype<double>(first) ? 'd' : 0;
  if (!kind)
    throw py::type_error(cat(op, ": ", arrays.begin()->first, " has dtype ", dtype_name(first), " (shape ",
                             shape_str(shape_of(first)), "); expected float32 or float64"));
  for (auto& [name, a] : arrays)
    if (!a->dtype().equal(first.dtype()))
      throw py::type_error(cat(op, ": ", name, " has dtype ", dtype_name(*a), " (shape ", shape_str(shape_of(*a)),
                               ") but ", arrays.begin()->first, " has ", dtype_name(first)));
  return kind;
}

py::array require_4d(py::handle obj, const char* op, const char* name) {
  py::array a = require_ndarray(obj, op, name);
  if (a.ndim() != 4) value_error(op, ": ", name, " must be 4-D (N, C, H, W), got shape ", shape_str(shape_of(a)));
  return a;
}

template <typename T>
const T* cptr(const py::array& a) { return static_cast<const T*>(a.data()); }
template <typename T>
T* mptr(py::array& a) { return static_cast<T*>(a.mutable_data()); }

// Geometry of a convolution with input (N, C, H, W) and weight (O, C/groups, kH, kW); the output size is
// computed (must be >= 1) unless out_hw is given, which must then be between 1 and the computed size.
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
  // The kernels index up to the padded input plus the dilated kernel, and loop over C/groups * kH * kW
  // taps: none of it may wrap around.
  const std::string too_large = cat(op, ": kernel size (", g.kH, ", ", g.kW, "), padding ", shape_str(padding),
                                    " and dilation ", shape_str(dilation), " are too large", shapes);
  for (int64_t d = 0; d < 2; ++d) {
    const int64_t k = ws[2 + d], in = xs[2 + d];
    const int64_t span = checked_add(checked_mul(dilation[d], k - 1, too_large), 1, too_large);
    checked_add(checked_add(in, checked_mul(2, padding[d], too_large), too_large), span, too_large);
  }
  checked_mul(checked_mul(ws[1], g.kH, too_large), g.kW, too_large);
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
  if (g.N < 1 || g.C < 1 || g.O < 1 || g.H < 1 || g.W < 1)
    value_error(op, ": empty dimension", shapes);
  return g;
}

std::vector<int64_t> dims(const py::array& a) { return shape_of(a); }

void check_bias(const py::object& bias, const char* op, int64_t O, const py::array& x, const py::array& w) {
  if (bias.is_none()) return;
  py::array b = require_ndarray(bias, op, "bias");
  if (b.ndim() != 1 || b.shape(0) != O)
    value_error(op, ": bias must have shape (", O, ",), got ", shape_str(shape_of(b)), " (input ",
                shape_str(shape_of(x)), ", weight ", shape_str(shape_of(w)), ")");
  common_float_dtype(op, {{"input", &x}, {"bias", &b}});
}

// ---- conv2d ----

template <typename T>
py::array forward_typed(const py::array& x_in, const py::array& w_in, const py::object& bias_obj, const ConvGeometry& g) {
  const char* op = "conv2d";
  py::array x = c_contiguous<T>(x_in, op, "input"), w = c_contiguous<T>(w_in, op, "weight"), b;
  if (!bias_obj.is_none()) b = c_contiguous<T>(py::reinterpret_borrow<py::array>(bias_obj), op, "bias");
  py::array y = py::array_t<T>({g.N, g.O, g.OH, g.OW});
  const T* bias = bias_obj.is_none() ? nullptr : cptr<T>(b);
  T* out = mptr<T>(y);
  py::gil_scoped_release release;
  conv2d_forward<T>(g, cptr<T>(x), cptr<T>(w), bias, out, op);
  return y;
}

py::array conv2d_forward_entry(py::handle x_obj, py::handle w_obj, py::object bias, Pair stride, Pair padding,
                               Pair dilation, int64_t groups) {
  const char* op = "conv2d";
  py::array x = require_4d(x_obj, op, "input"), w = require_4d(w_obj, op, "weight");
  const char kind = common_float_dtype(op, {{"input", &x}, {"weight", &w}});
  ConvGeometry g = make_geometry(op, dims(x), dims(w), stride, padding, dilation, groups);
  check_bias(bias, op, g.O, x, w);
  return kind == 'f' ? forward_typed<float>(x, w, bias, g) : forward_typed<double>(x, w, bias, g);
}

template <typename T>
py::array backward_data_typed(const py::array& dy_in, const py::array& w_in, const ConvGeometry& g, const char* op) {
  py::array dy = c_contiguous<T>(dy_in, op, "grad_output"), w = c_contiguous<T>(w_in, op, "weight");
  py::array dx = py::array_t<T>({g.N, g.C, g.H, g.W});
  T* out = mptr<T>(dx);
  py::gil_scoped_release release;
  conv2d_backward_data<T>(g, cptr<T>(dy), cptr<T>(w), out, op);
  return dx;
}

// The convolution whose output-gradient is dy (N, O, OH, OW) and whose input is (N, C, H, W) = input_size.
ConvGeometry geometry_from_output(const char* op, const py::array& dy, const py::array& w, const Pair& input_hw,
                                  const Pair& stride, const Pair& padding, const Pair& dilation, int64_t groups) {
  check_pair(input_hw, op, "input size", 1);
  if (dy.shape(1) != w.shape(0))
    value_error(op, ": grad_output has ", dy.shape(1), " channels but weight ", shape_str(shape_of(w)), " has ",
                w.shape(0), " output channels");
  const int64_t channels = checked_mul(w.shape(1), groups, cat(op, ": groups ", groups, " is too large for weight ",
                                                                shape_str(shape_of(w))));
  const std::vector<int64_t> xs{dy.shape(0), channels, input_hw[0], input_hw[1]};
  const Pair out_hw{dy.shape(2), dy.shape(3)};
  return make_geometry(op, xs, dims(w), stride, padding, dilation, groups, &out_hw);
}

py::array conv2d_backward_data_entry(py::handle dy_obj, py::handle w_obj, Pair input_hw, Pair stride, Pair padding,
                                     Pair dilation, int64_t groups) {
  const char* op = "conv2d_backward_data";
  py::array dy = require_4d(dy_obj, op, "grad_output"), w = require_4d(w_obj, op, "weight");
  const char kind = common_float_dtype(op, {{"grad_output", &dy}, {"weight", &w}});
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups);
  ConvGeometry g = geometry_from_output(op, dy, w, input_hw, stride, padding, dilation, groups);
  return kind == 'f' ? backward_data_typed<float>(dy, w, g, op) : backward_data_typed<double>(dy, w, g, op);
}

template <typename T>
py::array backward_weight_typed(const py::array& x_in, const py::array& dy_in, const ConvGeometry& g) {
  const char* op = "conv2d_backward_weight";
  py::array x = c_contiguous<T>(x_in, op, "input"), dy = c_contiguous<T>(dy_in, op, "grad_output");
  py::array dw = py::array_t<T>({g.O, g.c_per_group(), g.kH, g.kW});
  T* out = mptr<T>(dw);
  py::gil_scoped_release release;
  conv2d_backward_weight<T>(g, cptr<T>(x), cptr<T>(dy), out, op);
  return dw;
}

py::array conv2d_backward_weight_entry(py::handle x_obj, py::handle dy_obj, Pair kernel, Pair stride, Pair padding,
                                       Pair dilation, int64_t groups) {
  const char* op = "conv2d_backward_weight";
  py::array x = require_4d(x_obj, op, "input"), dy = require_4d(dy_obj, op, "grad_output");
  const char kind = common_float_dtype(op, {{"input", &x}, {"grad_output", &dy}});
  check_pair(kernel, op, "kernel_size", 1);
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups);
  if (dy.shape(0) != x.shape(0) || x.shape(1) % groups != 0)
    value_error(op, ": input ", shape_str(shape_of(x)), " and grad_output ", shape_str(shape_of(dy)),
                " do not match (groups ", groups, ")");
  const std::vector<int64_t> ws{dy.shape(1), x.shape(1) / groups, kernel[0], kernel[1]};
  const Pair out_hw{dy.shape(2), dy.shape(3)};
  ConvGeometry g = make_geometry(op, dims(x), ws, stride, padding, dilation, groups, &out_hw);
  return kind == 'f' ? backward_weight_typed<float>(x, dy, g) : backward_weight_typed<double>(x, dy, g);
}

template <typename T>
py::array backward_bias_typed(const py::array& dy_in) {
  py::array dy = c_contiguous<T>(dy_in, "conv2d_backward_bias", "grad_output");
  ConvGeometry g{dy.shape(0), 0, 0, 0, dy.shape(1), 1, 1, dy.shape(2), dy.shape(3), 1, 1, 0, 0, 1, 1, 1};
  py::array db = py::array_t<T>({g.O});
  T* out = mptr<T>(db);
  py::gil_scoped_release release;
  conv2d_backward_bias<T>(g, cptr<T>(dy), out);
  return db;
}

py::array conv2d_backward_bias_entry(py::handle dy_obj) {
  const char* op = "conv2d_backward_bias";
  py::array dy = require_4d(dy_obj, op, "grad_output");
  const char kind = common_float_dtype(op, {{"grad_output", &dy}});
  return kind == 'f' ? backward_bias_typed<float>(dy) : backward_bias_typed<double>(dy);
}

// ---- conv_transpose2d: the forward is conv2d's backward-data ----

// The transposed convolution's backward for both its input and its weight (grad (N, C_out, OH, OW),
// x (N, C_in, H, W), w (C_in, C_out/groups, kH, kW)): the forward of the convolution it transposes,
// applied to grad, and that convolution's weight gradient with grad as input and x as output
// gradient, in one pass over grad's im2col columns.
template <typename T>
py::tuple transposed_backward_typed(const py::array& grad_in, const py::array& x_in, const py::array& w_in,
                                    const ConvGeometry& g, const char* op) {
  py::array grad = c_contiguous<T>(grad_in, op, "grad_output"), x = c_contiguous<T>(x_in, op, "input"),
            w = c_contiguous<T>(w_in, op, "weight");
  py::array dx = py::array_t<T>({g.N, g.O, g.OH, g.OW}), dw = py::array_t<T>({g.O, g.c_per_group(), g.kH, g.kW});
  T *dx_out = mptr<T>(dx), *dw_out = mptr<T>(dw);
  {
    py::gil_scoped_release release;  // (not around make_tuple, which needs the GIL)
    conv2d_forward_and_backward_weight<T>(g, cptr<T>(grad), cptr<T>(w), cptr<T>(x), dx_out, dw_out, op);
  }
  return py::make_tuple(dx, dw);
}

py::tuple conv_transpose2d_backward_entry(py::handle grad_obj, py::handle x_obj, py::handle w_obj, Pair stride,
                                          Pair padding, Pair dilation, int64_t groups) {
  const char* op = "conv_transpose2d_backward";
  py::array grad = require_4d(grad_obj, op, "grad_output"), x = require_4d(x_obj, op, "input"),
            w = require_4d(w_obj, op, "weight");
  const char kind = common_float_dtype(op, {{"grad_output", &grad}, {"input", &x}, {"weight", &w}});
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups);
  if (grad.shape(0) != x.shape(0) || x.shape(1) != w.shape(0))
    value_error(op, ": grad_output ", shape_str(shape_of(grad)), ", input ", shape_str(shape_of(x)), " and weight ",
                shape_str(shape_of(w)), " do not match");
  const Pair in_hw{x.shape(2), x.shape(3)};  // the transposed op's input: the convolution's output
  const ConvGeometry g = make_geometry(op, dims(grad), dims(w), stride, padding, dilation, groups, &in_hw);
  return kind == 'f' ? transposed_backward_typed<float>(grad, x, w, g, op)
                     : transposed_backward_typed<double>(grad, x, w, g, op);
}

py::array conv_transpose2d_forward_entry(py::handle x_obj, py::handle w_obj, py::object bias, Pair stride,
                                         Pair padding, Pair output_padding, Pair dilation, int64_t groups) {
  const char* op = "conv_transpose2d";
  py::array x = require_4d(x_obj, op, "input"), w = require_4d(w_obj, op, "weight");
  const char kind = common_float_dtype(op, {{"input", &x}, {"weight", &w}});
  check_pair(stride, op, "stride", 1);
  check_pair(padding, op, "padding", 0);
  check_pair(dilation, op, "dilation", 1);
  check_pair(output_padding, op, "output_padding", 0);
  const std::string shapes = cat(" (input ", shape_str(shape_of(x)), ", weight ", shape_str(shape_of(w)), ")");
  if (groups < 1) value_error(op, ": groups must be >= 1, got ", groups, shapes);
  if (x.shape(1) != w.shape(0))
    value_error(op, ": input has ", x.shape(1), " channels but weight has ", w.shape(0), shapes);
  for (int d = 0; d < 2; ++d)
    if (output_padding[d] >= stride[d] && output_padding[d] >= dilation[d])
      value_error(op, ": output_padding ", shape_str(output_padding), " must be smaller than stride ",
                  shape_str(stride), " or dilation ", shape_str(dilation), shapes);
  Pair out_hw(2);
  const std::string too_large = cat(op, ": stride ", shape_str(stride), ", padding ", shape_str(padding),
                                    ", output_padding ", shape_str(output_padding), " and dilation ",
                                    shape_str(dilation), " give an output size beyond int64", shapes);
  // Checked here, with this op's shapes: below, the geometry of the equivalent convolution would
  // name this op's output its input.
  if (x.size() == 0 || w.size() == 0) value_error(op, ": empty dimension", shapes);
  for (int d = 0; d < 2; ++d) {
    // (H - 1) * stride - 2 * padding + dilation * (kH - 1) + output_padding + 1, none of it wrapping around
    int64_t size = checked_mul(x.shape(2 + d) - 1, stride[d], too_large);
    size = checked_add(size, -checked_mul(2, padding[d], too_large), too_large);
    size = checked_add(size, checked_mul(dilation[d], w.shape(2 + d) - 1, too_large), too_large);
    out_hw[d] = checked_add(checked_add(size, output_padding[d], too_large), 1, too_large);
  }
  if (out_hw[0] < 1 || out_hw[1] < 1)
    value_error(op, ": the output size ", out_hw[0], "x", out_hw[1], " is not positive", shapes);
  ConvGeometry g = geometry_from_output(op, x, w, out_hw, stride, padding, dilation, groups);
  const int64_t C_out = g.C;
  check_bias(bias, op, C_out, x, w);
  py::array y = kind == 'f' ? backward_data_typed<float>(x, w, g, op) : backward_data_typed<double>(x, w, g, op);
  if (!bias.is_none()) {  // broadcast add over (N, ., H, W): NumPy is as fast as a loop here
    py::object np = py::module_::import("numpy");
    py::object b = bias.attr("reshape")(py::make_tuple(1, C_out, 1, 1));
    np.attr("add")(y, b, py::arg("out") = y);
  }
  return y;
}

// ---- im2col / col2im (unfold / fold) for batches ----

template <typename T>
py::array unfold_typed(const py::array& x_in, const ConvGeometry& g) {
  py::array x = c_contiguous<T>(x_in, "unfold", "input");
  const int64_t rows = g.C * g.taps(), L = g.OH * g.OW;
  py::array cols = py::array_t<T>({g.N, rows, L});
  const T* src = cptr<T>(x);
  T* dst = mptr<T>(cols);
  py::gil_scoped_release release;
  // Images, and bands of output rows within each, split over the threads: each band writes its own
  // columns of `cols` (a single large image gets every thread too).
  const int threads = g.N * rows * L >= (int64_t(1) << 16) ? available_threads() : 1;
  const int64_t bands = std::min<int64_t>(g.OH, (4 * threads + g.N - 1) / g.N);
  parallel_for(threads, g.N * bands, [&](int64_t unit) {
    const int64_t n = unit / bands, band = unit % bands;
    const int64_t oh0 = g.OH * band / bands, oh1 = g.OH * (band + 1) / bands;
    im2col<T>(g, src + n * g.C * g.H * g.W, oh0, oh1, dst + n * rows * L + oh0 * g.OW, L);
  });
  return cols;
}

py::array im2col_entry(py::handle x_obj, Pair kernel, Pair stride, Pair padding, Pair dilation) {
  const char* op = "unfold";
  py::array x = require_4d(x_obj, op, "input");
  const char kind = common_float_dtype(op, {{"input", &x}});
  check_pair(kernel, op, "kernel_size", 1);
  ConvGeometry g = make_geometry(op, dims(x), {1, x.shape(1), kernel[0], kernel[1]}, stride, padding, dilation, 1);
  return kind == 'f' ? unfold_typed<float>(x, g) : unfold_typed<double>(x, g);
}

template <typename T>
py::array fold_typed(const py::array& cols_in, const ConvGeometry& g) {
  py::array cols = c_contiguous<T>(cols_in, "fold", "input");
  const int64_t rows = g.C * g.taps(), L = g.OH * g.OW, plane = g.C * g.H * g.W;
  py::array x = py::array_t<T>({g.N, g.C, g.H, g.W});
  const T* src = cptr<T>(cols);
  T* dst = mptr<T>(x);
  py::gil_scoped_release release;
  // Images split over the threads (within one image, windows overlap and their sums share elements).
  parallel_for(g.N * rows * L >= (int64_t(1) << 16) ? available_threads() : 1, g.N, [&](int64_t n) {
    std::fill(dst + n * plane, dst + (n + 1) * plane, T(0));
    col2im<T>(g, src + n * rows * L, L, dst + n * plane);
  });
  return x;
}

py::array col2im_entry(py::handle cols_obj, Pair output_size, Pair kernel, Pair stride, Pair padding, Pair dilation) {
  const char* op = "fold";
  py::array cols = require_ndarray(cols_obj, op, "input");
  if (cols.ndim() != 3) value_error(op, ": input must be 3-D (N, C*kH*kW, L), got ", shape_str(shape_of(cols)));
  const char kind = common_float_dtype(op, {{"input", &cols}});
  check_pair(kernel, op, "kernel_size", 1);
  check_pair(output_size, op, "output_size", 1);
  const int64_t taps = checked_mul(kernel[0], kernel[1], cat(op, ": kernel_size ", shape_str(kernel), " is too large"));
  if (cols.shape(1) % taps != 0)
    value_error(op, ": input ", shape_str(shape_of(cols)), " dim 1 is not a multiple of kH*kW = ", taps);
  const int64_t C = cols.shape(1) / taps;
  ConvGeometry g = make_geometry(op, {cols.shape(0), C, output_size[0], output_size[1]}, {1, C, kernel[0], kernel[1]},
                                 stride, padding, dilation, 1);
  if (checked_mul(g.OH, g.OW, cat(op, ": output_size ", shape_str(output_size), " is too large")) != cols.shape(2))
    value_error(op, ": input ", shape_str(shape_of(cols)), " has ", cols.shape(2), " columns, expected ",
                g.OH * g.OW, " blocks for output_size ", shape_str(output_size));
  return kind == 'f' ? fold_typed<float>(cols, g) : fold_typed<double>(cols, g);
}

}  // namespace

void bind_conv(py::module_& m) {
  m.def("conv2d_forward", &conv2d_forward_entry, py::arg("input"), py::arg("weight"), py::arg("bias"),
        py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "conv2d on NCHW arrays: weight (O, C/groups, kH, kW), bias (O,) or None.");
  m.def("conv2d_backward_data", &conv2d_backward_data_entry, py::arg("grad_output"), py::arg("weight"),
        py::arg("input_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "Gradient of conv2d with respect to its input of spatial size input_size.");
  m.def("conv2d_backward_weight", &conv2d_backward_weight_entry, py::arg("input"), py::arg("grad_output"),
        py::arg("kernel_size"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "Gradient of conv2d with respect to its weight.");
  m.def("conv2d_backward_bias", &conv2d_backward_bias_entry, py::arg("grad_output"),
        "Gradient of conv2d with respect to its bias: grad_output summed over N, H, W.");
  m.def("conv_transpose2d_forward", &conv_transpose2d_forward_entry, py::arg("input"), py::arg("weight"),
        py::arg("bias"), py::arg("stride"), py::arg("padding"), py::arg("output_padding"), py::arg("dilation"),
        py::arg("groups"), "Transposed convolution: weight (C_in, C_out/groups, kH, kW).");
  m.def("conv_transpose2d_backward", &conv_transpose2d_backward_entry, py::arg("grad_output"), py::arg("input"),
        py::arg("weight"), py::arg("stride"), py::arg("padding"), py::arg("dilation"), py::arg("groups"),
        "Transposed convolution's (dx, dw) in one pass over grad_output's im2col columns.");
  m.def("im2col", &im2col_entry, py::arg("input"), py::arg("kernel_size"), py::arg("stride"), py::arg("padding"),
        py::arg("dilation"), "unfold: (N, C, H, W) -> (N, C*kH*kW, OH*OW).");
  m.def("col2im", &col2im_entry, py::arg("input"), py::arg("output_size"), py::arg("kernel_size"), py::arg("stride"),
        py::arg("padding"), py::arg("dilation"), "fold: (N, C*kH*kW, L) -> (N, C, H, W), overlapping blocks summed.");
}

}  // namespace rb
