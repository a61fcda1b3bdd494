// Python entry points of the CUDA recurrent family. Names, arguments, defaults and return tuples
// are those of rosenblatt._C (csrc/rnn/bind_rnn.cpp), with DeviceArrays in place of NumPy arrays,
// so the Python layer calls either module the same way:
//   rnn_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, linear_before_reset, out=None)
//       -> (y, h_n, c_n, saved)
//   rnn_backward(cell, x, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset, saved, dy, dh_n,
//                dc_n, cell_grad_clip=0.0, dx=None) -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)
//   grid_rnn_forward(x, w_ih, w_left, w_up, bias) -> h
//   grid_rnn_backward(x, w_ih, w_left, w_up, has_bias, h, dh) -> (dx, dw_ih, dw_left, dw_up, db)
// `lengths` may be a NumPy integer array (as the CPU layer passes it) or an int64 DeviceArray; it is
// checked on the host. `out` and `dy` may be column slices of a (T, B, W) array (rows equally spaced,
// contiguous inside), as for the CPU kernels. Every argument is checked here, before any launch.
// Also the host simulations (_rnn_*_host_simulation): the same kernels' code run on NumPy arrays.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "allocator.h"
#include "device_array.h"
#include "ops.h"
#include "rnn.h"

namespace py = pybind11;

namespace rb::cuda {
namespace {

RnnCell parse_cell(const std::string& name, const char* op) {
  if (name == "rnn_tanh") return RnnCell::rnn_tanh;
  if (name == "rnn_relu") return RnnCell::rnn_relu;
  if (name == "lstm") return RnnCell::lstm;
  if (name == "gru") return RnnCell::gru;
  throw py::value_error(std::string(op) + ": unknown cell '" + name + "'; expected rnn_tanh, rnn_relu, lstm or gru");
}

template <typename T>
DType dtype_of() {
  return std::is_same_v<T, float> ? DType::float32 : DType::float64;
}

DeviceArray device_array(py::handle obj, const std::string& op, const char* name) {
  if (!py::isinstance<DeviceArray>(obj))
    throw py::type_error(op + ": " + name + " must be a DeviceArray, got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  return obj.cast<DeviceArray>();
}

// Byte range [lo, hi) an array's elements span (empty arrays span nothing).
std::pair<uintptr_t, uintptr_t> extent(const DeviceArray& a) {
  if (a.numel() == 0) return {0, 0};
  int64_t lo = 0, hi = 0;
  for (int d = 0; d < a.ndim(); ++d) {
    const int64_t span = (a.shape()[d] - 1) * a.strides()[d];
    (span < 0 ? lo : hi) += span;
  }
  const auto base = reinterpret_cast<uintptr_t>(a.data());
  const auto size = static_cast<int64_t>(itemsize(a.dtype()));
  return {base + lo * size, base + (hi + 1) * size};
}

bool overlap(const DeviceArray& a, const DeviceArray& b) {
  if (a.device() != b.device()) return false;
  const auto [a0, a1] = extent(a);
  const auto [b0, b1] = extent(b);
  return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

// Checks shared by the inputs of one call: device and dtype of the call (set by x).
struct Checker {
  std::string op;
  int device;
  DType dtype;
  std::vector<DeviceArray> inputs;  // for the overlap checks of out / dx

  DeviceArray typed(py::handle obj, const char* name) {
    DeviceArray a = device_array(obj, op, name);
    if (a.dtype() != dtype)
      throw py::type_error(op + ": " + name + " has dtype " + dtype_name(a.dtype()) + ", expected " +
                           dtype_name(dtype) + " (that of x; shape " + shape_str(a.shape()) + ")");
    if (a.device() != device)
      throw py::value_error(op + ": " + name + " is " + a.describe() + " but x is on cuda:" + std::to_string(device));
    return a;
  }
  // A C-contiguous array of exactly `shape` (a copy if the given one is a strided view).
  DeviceArray input(py::handle obj, const char* name, const std::vector<int64_t>& shape) {
    DeviceArray a = typed(obj, name);
    if (a.shape() != shape)
      throw py::value_error(op + ": " + name + " has shape " + shape_str(a.shape()) + ", expected " + shape_str(shape));
    inputs.push_back(a);
    return contiguous(a);
  }
  std::optional<DeviceArray> optional_input(py::handle obj, const char* name, const std::vector<int64_t>& shape) {
    if (obj.is_none()) return std::nullopt;
    return input(obj, name, shape);
  }
  // A (T, B, H) array with equally spaced contiguous rows (a column slice of (T, B, W) is allowed).
  DeviceArray row_strided(py::handle obj, const char* name, int64_t T, int64_t B, int64_t H, int64_t& ld) {
    DeviceArray a = typed(obj, name);
    if (a.shape() != std::vector<int64_t>{T, B, H})
      throw py::value_error(op + ": " + name + " has shape " + shape_str(a.shape()) + ", expected " +
                            shape_str({T, B, H}));
    const auto& s = a.strides();
    ld = s[1];
    if (B == 1 && s[2] == 1) ld = T == 1 ? H : s[0];  // a size-1 dimension's stride is arbitrary
    const bool rows_ok = (s[2] == 1 || H == 1) && ld >= H && (T == 1 || s[0] == B * ld);
    if (!rows_ok)
      throw py::value_error(op + ": " + name + " of shape " + shape_str({T, B, H}) +
                            " must have contiguous rows (strides in elements: " + std::to_string(s[0]) + ", " +
                            std::to_string(s[1]) + ", " + std::to_string(s[2]) + ")");
    return a;
  }
  void writable_without_overlap(const DeviceArray& a, const char* name) {
    if (a.read_only()) throw py::value_error(op + ": " + name + " (" + a.describe() + ") is read-only");
    for (const DeviceArray& in : inputs)
      if (overlap(a, in)) throw py::value_error(op + ": " + name + " (" + a.describe() + ") overlaps an input");
  }
};

// Lengths from a NumPy integer array (or anything array-like) or an int64 DeviceArray, checked on the
// host, returned as a device array (or nothing).
std::optional<DeviceArray> lengths_of(py::handle obj, const std::string& op, int64_t T, int64_t B, int device) {
  if (obj.is_none()) return std::nullopt;
  py::array host;
  if (py::isinstance<DeviceArray>(obj)) {
    const DeviceArray d = obj.cast<DeviceArray>();
    if (d.dtype() != DType::int64)
      throw py::type_error(op + ": lengths has dtype " + std::string(dtype_name(d.dtype())) + ", expected int64");
    host = to_host(d);
  } else {
    host = py::array::ensure(obj);
    if (!host) throw py::type_error(op + ": lengths must be an integer array or None");
    if (host.dtype().kind() != 'i' && host.dtype().kind() != 'u')
      throw py::type_error(op + ": lengths has dtype " + std::string(py::str(host.dtype())) + ", expected int64");
  }
  py::array_t<int64_t, py::array::c_style | py::array::forcecast> values(host);
  if (values.ndim() != 1 || values.shape(0) != B) {
    std::vector<int64_t> shape(values.shape(), values.shape() + values.ndim());
    throw py::value_error(op + ": lengths has shape " + shape_str(shape) + ", expected " + shape_str({B}));
  }
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = values.at(b);
    if (n < 1 || n > T)
      throw py::value_error(op + ": lengths[" + std::to_string(b) + "] = " + std::to_string(n) + " is outside [1, " +
                            std::to_string(T) + "] (sequence length " + std::to_string(T) + ", batch " +
                            std::to_string(B) + ")");
  }
  return from_host(values, device);
}

// x's dtype and device, and the sizes every call checks.
struct Sizes {
  int64_t T, B, I, H, G;
};

Sizes sizes_of(const DeviceArray& x, py::handle w_hh_obj, RnnCell cell, const std::string& op) {
  if (x.ndim() != 3) throw py::value_error(op + ": x must be (T, B, I), got shape " + shape_str(x.shape()));
  if (x.dtype() == DType::int64)
    throw py::type_error(op + ": unsupported dtype int64 (x shape " + shape_str(x.shape()) + "); expected float32 or float64");
  const DeviceArray w_hh = device_array(w_hh_obj, op, "w_hh");
  if (w_hh.ndim() != 2) throw py::value_error(op + ": w_hh must be 2-D, got shape " + shape_str(w_hh.shape()));
  Sizes s{x.shape()[0], x.shape()[1], x.shape()[2], w_hh.shape()[1], rnn_gate_count(cell)};
  if (s.T < 1 || s.B < 1 || s.H < 1)
    throw py::value_error(op + ": empty sequence, batch or hidden size (x " + shape_str(x.shape()) + ", w_hh " +
                          shape_str(w_hh.shape()) + ")");
  if (s.H > kRnnMaxHidden)
    throw py::value_error(op + ": hidden size " + std::to_string(s.H) + " is above the kernels' limit " +
                          std::to_string(kRnnMaxHidden));
  return s;
}

template <typename T>
T* ptr(const DeviceArray& a) {
  return static_cast<T*>(a.data());
}
template <typename T>
T* ptr(const std::optional<DeviceArray>& a) {
  return a ? static_cast<T*>(a->data()) : nullptr;
}

template <typename T>
py::tuple forward_typed(RnnCell cell, const std::string& op, py::handle x_obj, const Sizes& s, py::handle h0,
                        py::handle c0, py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh,
                        py::handle lengths, bool reverse, bool linear_before_reset, py::handle out) {
  const bool lstm = cell == RnnCell::lstm, has_aux = lstm || cell == RnnCell::gru;
  const int64_t T_ = s.T, B = s.B, H = s.H, GH = s.G * s.H;
  const DType dtype = dtype_of<T>();
  const int device = device_array(x_obj, op, "x").device();
  Checker check{op, device, dtype, {}};
  const DeviceArray x = check.input(x_obj, "x", {T_, B, s.I});
  const DeviceArray wi = check.input(w_ih, "w_ih", {GH, s.I});
  const DeviceArray wh = check.input(w_hh, "w_hh", {GH, H});
  const DeviceArray h = check.input(h0, "h0", {B, H});
  const std::optional<DeviceArray> c = lstm ? std::optional<DeviceArray>(check.input(c0, "c0", {B, H})) : std::nullopt;
  const std::optional<DeviceArray> bi = check.optional_input(b_ih, "b_ih", {GH});
  const std::optional<DeviceArray> bh = check.optional_input(b_hh, "b_hh", {GH});

  py::object y_obj;
  RnnForwardPlan<T> p{};
  if (out.is_none()) {
    DeviceArray y = DeviceArray::empty({T_, B, H}, dtype, device, op.c_str());
    p.y = ptr<T>(y), p.ldy = H;
    y_obj = py::cast(y);
  } else {
    int64_t ld = H;
    DeviceArray y = check.row_strided(out, "out", T_, B, H, ld);
    check.writable_without_overlap(y, "out");
    p.y = ptr<T>(y), p.ldy = ld;
    y_obj = py::reinterpret_borrow<py::object>(out);
  }
  const std::optional<DeviceArray> len = lengths_of(lengths, op, T_, B, device);

  const char* name = op.c_str();
  DeviceArray h_n = DeviceArray::empty({B, H}, dtype, device, name);
  DeviceArray c_n = DeviceArray::empty({lstm ? B : 0, lstm ? H : 0}, dtype, device, name);
  DeviceArray gates = DeviceArray::empty({T_, B, GH}, dtype, device, name);
  DeviceArray h_prev = DeviceArray::empty({T_, B, H}, dtype, device, name);
  DeviceArray aux = DeviceArray::empty({has_aux ? T_ : 0, B, H}, dtype, device, name);
  DeviceArray aux2 = DeviceArray::empty({lstm ? T_ : 0, B, H}, dtype, device, name);
  DeviceArray w_hh_t = DeviceArray::empty({H, GH}, dtype, device, name);

  p.cell = cell, p.linear_before_reset = linear_before_reset, p.reverse = reverse;
  p.T = T_, p.B = B, p.I = s.I, p.H = H;
  p.x = ptr<T>(x), p.h0 = ptr<T>(h), p.c0 = ptr<T>(c);
  p.w_ih = ptr<T>(wi), p.w_hh = ptr<T>(wh), p.b_ih = ptr<T>(bi), p.b_hh = ptr<T>(bh);
  p.lengths = ptr<int64_t>(len);
  p.h_n = ptr<T>(h_n), p.c_n = lstm ? ptr<T>(c_n) : nullptr;
  p.gates = ptr<T>(gates), p.h_prev = ptr<T>(h_prev);
  p.aux = has_aux ? ptr<T>(aux) : nullptr, p.aux2 = lstm ? ptr<T>(aux2) : nullptr;
  p.w_hh_t = ptr<T>(w_hh_t);
  DeviceGuard guard(device, name);
  rnn_forward(p, stream(device, name));
  return py::make_tuple(y_obj, h_n, lstm ? py::cast(c_n) : py::object(py::none()),
                        py::make_tuple(gates, h_prev, aux, aux2));
}

py::tuple forward_entry(const std::string& cell_name, py::handle x_obj, py::handle h0, py::handle c0, py::handle w_ih,
                        py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle lengths, bool reverse,
                        bool linear_before_reset, py::handle out) {
  const RnnCell cell = parse_cell(cell_name, "rnn_forward");
  const std::string op = cell_name + "_forward";
  const DeviceArray x = device_array(x_obj, op, "x");
  const Sizes s = sizes_of(x, w_hh, cell, op);
  if (x.dtype() == DType::float32)
    return forward_typed<float>(cell, op, x_obj, s, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                                linear_before_reset, out);
  return forward_typed<double>(cell, op, x_obj, s, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                               linear_before_reset, out);
}

template <typename T>
py::tuple backward_typed(RnnCell cell, const std::string& op, py::handle x_obj, const Sizes& s, py::handle w_ih,
                         py::handle w_hh, bool has_bias, py::handle lengths, bool reverse, bool linear_before_reset,
                         const py::tuple& saved, py::handle dy_obj, py::handle dh_n, py::handle dc_n, double clip,
                         py::handle dx_obj) {
  const bool lstm = cell == RnnCell::lstm, has_aux = lstm || cell == RnnCell::gru;
  const bool lbr = cell == RnnCell::gru && linear_before_reset;
  const int64_t T_ = s.T, B = s.B, I = s.I, H = s.H, GH = s.G * s.H;
  const DType dtype = dtype_of<T>();
  const int device = device_array(x_obj, op, "x").device();
  Checker check{op, device, dtype, {}};
  const DeviceArray x = check.input(x_obj, "x", {T_, B, I});
  const DeviceArray wi = check.input(w_ih, "w_ih", {GH, I});
  const DeviceArray wh = check.input(w_hh, "w_hh", {GH, H});
  const DeviceArray gates = check.input(saved[0], "saved gates", {T_, B, GH});
  const DeviceArray h_prev = check.input(saved[1], "saved h_prev", {T_, B, H});
  const std::optional<DeviceArray> aux =
      has_aux ? std::optional<DeviceArray>(check.input(saved[2], "saved aux", {T_, B, H})) : std::nullopt;
  const std::optional<DeviceArray> aux2 =
      lstm ? std::optional<DeviceArray>(check.input(saved[3], "saved aux2", {T_, B, H})) : std::nullopt;
  RnnBackwardPlan<T> p{};
  std::optional<DeviceArray> dy;
  if (!dy_obj.is_none()) {
    int64_t ld = H;
    dy = check.row_strided(dy_obj, "dy", T_, B, H, ld);
    check.inputs.push_back(*dy);
    p.dy = ptr<T>(dy), p.ldy = ld;
  }
  const std::optional<DeviceArray> dhn_in = check.optional_input(dh_n, "dh_n", {B, H});
  const std::optional<DeviceArray> dcn_in = lstm ? check.optional_input(dc_n, "dc_n", {B, H}) : std::nullopt;
  const std::optional<DeviceArray> len = lengths_of(lengths, op, T_, B, device);

  const char* name = op.c_str();
  py::object dx_result;
  if (dx_obj.is_none()) {
    DeviceArray dx = DeviceArray::empty({T_, B, I}, dtype, device, name);
    p.dx = ptr<T>(dx);
    dx_result = py::cast(dx);
  } else {
    DeviceArray dx = check.typed(dx_obj, "dx");
    if (dx.shape() != std::vector<int64_t>{T_, B, I})
      throw py::value_error(op + ": dx has shape " + shape_str(dx.shape()) + ", expected " + shape_str({T_, B, I}));
    if (!dx.is_contiguous())
      throw py::value_error(op + ": dx of shape " + shape_str({T_, B, I}) + " must be C-contiguous");
    check.writable_without_overlap(dx, "dx");
    p.dx = ptr<T>(dx), p.accumulate_dx = true;
    dx_result = py::reinterpret_borrow<py::object>(dx_obj);
  }
  DeviceArray dh0 = DeviceArray::empty({B, H}, dtype, device, name);
  DeviceArray dc0 = DeviceArray::empty({lstm ? B : 0, lstm ? H : 0}, dtype, device, name);
  DeviceArray dw_ih = DeviceArray::empty({GH, I}, dtype, device, name);
  DeviceArray dw_hh = DeviceArray::empty({GH, H}, dtype, device, name);
  DeviceArray db_ih = DeviceArray::empty({has_bias ? GH : 0}, dtype, device, name);
  DeviceArray db_hh = DeviceArray::empty({has_bias ? GH : 0}, dtype, device, name);
  DeviceArray dgates = DeviceArray::empty({T_, B, GH}, dtype, device, name);
  DeviceArray dhn = DeviceArray::empty({lbr ? T_ : 0, B, H}, dtype, device, name);
  DeviceArray carry = DeviceArray::empty({B, H}, dtype, device, name);

  p.cell = cell, p.linear_before_reset = linear_before_reset, p.reverse = reverse;
  p.T = T_, p.B = B, p.I = I, p.H = H, p.cell_grad_clip = T(clip);
  p.x = ptr<T>(x), p.w_ih = ptr<T>(wi), p.w_hh = ptr<T>(wh), p.lengths = ptr<int64_t>(len);
  p.gates = ptr<T>(gates), p.h_prev = ptr<T>(h_prev), p.aux = ptr<T>(aux), p.aux2 = ptr<T>(aux2);
  p.dh_n = ptr<T>(dhn_in), p.dc_n = ptr<T>(dcn_in);
  p.dh0 = ptr<T>(dh0), p.dc0 = lstm ? ptr<T>(dc0) : nullptr;
  p.dw_ih = ptr<T>(dw_ih), p.dw_hh = ptr<T>(dw_hh);
  p.db_ih = has_bias ? ptr<T>(db_ih) : nullptr, p.db_hh = has_bias ? ptr<T>(db_hh) : nullptr;
  p.dgates = ptr<T>(dgates), p.dhn = lbr ? ptr<T>(dhn) : nullptr, p.carry = ptr<T>(carry);
  DeviceGuard guard(device, name);
  rnn_backward(p, stream(device, name));
  py::object none = py::none();
  return py::make_tuple(dx_result, dh0, lstm ? py::cast(dc0) : none, dw_ih, dw_hh,
                        has_bias ? py::cast(db_ih) : none, has_bias ? py::cast(db_hh) : none);
}

py::tuple backward_entry(const std::string& cell_name, py::handle x_obj, py::handle w_ih, py::handle w_hh,
                         bool has_bias, py::handle lengths, bool reverse, bool linear_before_reset, py::handle saved_obj,
                         py::handle dy, py::handle dh_n, py::handle dc_n, double clip, py::handle dx) {
  const RnnCell cell = parse_cell(cell_name, "rnn_backward");
  const std::string op = cell_name + "_backward";
  const DeviceArray x = device_array(x_obj, op, "x");
  const Sizes s = sizes_of(x, w_hh, cell, op);
  if (!py::isinstance<py::tuple>(saved_obj) || py::len(saved_obj) != 4)
    throw py::value_error(op + ": saved must be the 4-tuple returned by the forward call");
  const py::tuple saved = py::reinterpret_borrow<py::tuple>(saved_obj);
  if (x.dtype() == DType::float32)
    return backward_typed<float>(cell, op, x_obj, s, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset,
                                 saved, dy, dh_n, dc_n, clip, dx);
  return backward_typed<double>(cell, op, x_obj, s, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset,
                                saved, dy, dh_n, dc_n, clip, dx);
}

// ---- grid recurrence ---------------------------------------------------------------------------------
// x (R, C, B, I) and w_left (H, H) give the sizes; the rest is checked against them.
struct GridSizes {
  int64_t R, C, B, I, H;
};

GridSizes grid_sizes(const DeviceArray& x, py::handle w_left_obj, const std::string& op) {
  if (x.ndim() != 4) throw py::value_error(op + ": x must be (R, C, B, I), got shape " + shape_str(x.shape()));
  if (x.dtype() == DType::int64)
    throw py::type_error(op + ": unsupported dtype int64 (x shape " + shape_str(x.shape()) + "); expected float32 or float64");
  const DeviceArray w = device_array(w_left_obj, op, "w_left");
  if (w.ndim() != 2) throw py::value_error(op + ": w_left must be (H, H), got shape " + shape_str(w.shape()));
  GridSizes s{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3], w.shape()[0]};
  if (s.R < 1 || s.C < 1 || s.B < 1 || s.H < 1)
    throw py::value_error(op + ": empty grid, batch or hidden size (x " + shape_str(x.shape()) + ", w_left " +
                          shape_str(w.shape()) + ")");
  if (s.H > kRnnMaxHidden)
    throw py::value_error(op + ": hidden size " + std::to_string(s.H) + " is above the kernels' limit " +
                          std::to_string(kRnnMaxHidden));
  return s;
}

template <typename T>
py::object grid_forward_typed(py::handle x_obj, const GridSizes& s, py::handle w_ih, py::handle w_left,
                              py::handle w_up, py::handle bias) {
  const std::string op = "grid_rnn_forward";
  const int device = device_array(x_obj, op, "x").device();
  Checker check{op, device, dtype_of<T>(), {}};
  const DeviceArray x = check.input(x_obj, "x", {s.R, s.C, s.B, s.I});
  const DeviceArray wi = check.input(w_ih, "w_ih", {s.H, s.I});
  const DeviceArray wl = check.input(w_left, "w_left", {s.H, s.H});
  const DeviceArray wu = check.input(w_up, "w_up", {s.H, s.H});
  const std::optional<DeviceArray> b = check.optional_input(bias, "bias", {s.H});
  DeviceArray h = DeviceArray::empty({s.R, s.C, s.B, s.H}, dtype_of<T>(), device, op.c_str());
  DeviceArray scratch = DeviceArray::empty({2, s.H, s.H}, dtype_of<T>(), device, op.c_str());
  GridRnnPlan<T> p{};
  p.R = s.R, p.C = s.C, p.B = s.B, p.I = s.I, p.H = s.H;
  p.x = ptr<T>(x), p.w_ih = ptr<T>(wi), p.w_left = ptr<T>(wl), p.w_up = ptr<T>(wu), p.bias = ptr<T>(b);
  p.h = ptr<T>(h), p.scratch = ptr<T>(scratch);
  DeviceGuard guard(device, op.c_str());
  grid_rnn_forward(p, stream(device, op.c_str()));
  return py::cast(h);
}

template <typename T>
py::tuple grid_backward_typed(py::handle x_obj, const GridSizes& s, py::handle w_ih, py::handle w_left,
                              py::handle w_up, bool has_bias, py::handle h_obj, py::handle dh_obj) {
  const std::string op = "grid_rnn_backward";
  const int device = device_array(x_obj, op, "x").device();
  const DType dtype = dtype_of<T>();
  Checker check{op, device, dtype, {}};
  const DeviceArray x = check.input(x_obj, "x", {s.R, s.C, s.B, s.I});
  const DeviceArray wi = check.input(w_ih, "w_ih", {s.H, s.I});
  const DeviceArray wl = check.input(w_left, "w_left", {s.H, s.H});
  const DeviceArray wu = check.input(w_up, "w_up", {s.H, s.H});
  const DeviceArray h = check.input(h_obj, "h", {s.R, s.C, s.B, s.H});
  const DeviceArray dh = check.input(dh_obj, "dh", {s.R, s.C, s.B, s.H});
  const char* name = op.c_str();
  DeviceArray dx = DeviceArray::empty({s.R, s.C, s.B, s.I}, dtype, device, name);
  DeviceArray dw_ih = DeviceArray::empty({s.H, s.I}, dtype, device, name);
  DeviceArray dw_left = DeviceArray::empty({s.H, s.H}, dtype, device, name);
  DeviceArray dw_up = DeviceArray::empty({s.H, s.H}, dtype, device, name);
  DeviceArray db = DeviceArray::empty({has_bias ? s.H : 0}, dtype, device, name);
  DeviceArray dpre = DeviceArray::empty({s.R, s.C, s.B, s.H}, dtype, device, name);
  GridRnnPlan<T> p{};
  p.R = s.R, p.C = s.C, p.B = s.B, p.I = s.I, p.H = s.H;
  p.x = ptr<T>(x), p.w_ih = ptr<T>(wi), p.w_left = ptr<T>(wl), p.w_up = ptr<T>(wu);
  p.h = ptr<T>(h), p.dh = ptr<T>(dh);
  p.dx = ptr<T>(dx), p.dw_ih = ptr<T>(dw_ih), p.dw_left = ptr<T>(dw_left), p.dw_up = ptr<T>(dw_up);
  p.db = has_bias ? ptr<T>(db) : nullptr, p.scratch = ptr<T>(dpre);
  DeviceGuard guard(device, name);
  grid_rnn_backward(p, stream(device, name));
  return py::make_tuple(dx, dw_ih, dw_left, dw_up, has_bias ? py::cast(db) : py::object(py::none()));
}

py::object grid_forward_entry(py::handle x_obj, py::handle w_ih, py::handle w_left, py::handle w_up, py::handle bias) {
  const DeviceArray x = device_array(x_obj, "grid_rnn_forward", "x");
  const GridSizes s = grid_sizes(x, w_left, "grid_rnn_forward");
  return x.dtype() == DType::float32 ? grid_forward_typed<float>(x_obj, s, w_ih, w_left, w_up, bias)
                                     : grid_forward_typed<double>(x_obj, s, w_ih, w_left, w_up, bias);
}

py::tuple grid_backward_entry(py::handle x_obj, py::handle w_ih, py::handle w_left, py::handle w_up, bool has_bias,
                              py::handle h, py::handle dh) {
  const DeviceArray x = device_array(x_obj, "grid_rnn_backward", "x");
  const GridSizes s = grid_sizes(x, w_left, "grid_rnn_backward");
  return x.dtype() == DType::float32 ? grid_backward_typed<float>(x_obj, s, w_ih, w_left, w_up, has_bias, h, dh)
                                     : grid_backward_typed<double>(x_obj, s, w_ih, w_left, w_up, has_bias, h, dh);
}

// ---- host simulation: the same plans on NumPy buffers ---------------------------------------------------
template <typename T>
using HostArray = py::array_t<T, py::array::c_style | py::array::forcecast>;

template <typename T>
HostArray<T> host_input(py::handle obj, const char* name, const std::vector<int64_t>& shape) {
  HostArray<T> a = HostArray<T>::ensure(obj);
  if (!a) throw py::type_error(std::string("rnn host simulation: ") + name + " is not an array");
  std::vector<int64_t> got(a.shape(), a.shape() + a.ndim());
  if (got != shape)
    throw py::value_error(std::string("rnn host simulation: ") + name + " has shape " + shape_str(got) +
                          ", expected " + shape_str(shape));
  return a;
}

template <typename T>
const T* host_ptr(const std::optional<HostArray<T>>& a) {
  return a ? a->data() : nullptr;
}

// Outputs and scratch start as NaN: an element the kernels fail to write (or read before writing) shows.
template <typename T>
void poison(py::array_t<T>& a) {
  std::fill(a.mutable_data(), a.mutable_data() + a.size(), std::numeric_limits<T>::quiet_NaN());
}

template <typename T>
py::tuple simulate_forward(RnnCell cell, py::handle x_obj, py::handle h0, py::handle c0, py::handle w_ih,
                           py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle lengths, bool reverse,
                           bool linear_before_reset) {
  const py::array x_any = py::array::ensure(x_obj);
  const py::array wh_any = py::array::ensure(w_hh);
  if (!x_any || x_any.ndim() != 3 || !wh_any || wh_any.ndim() != 2)
    throw py::value_error("rnn host simulation: x must be 3-D and w_hh 2-D");
  const int64_t T_ = x_any.shape(0), B = x_any.shape(1), I = x_any.shape(2), H = wh_any.shape(1);
  const int64_t G = rnn_gate_count(cell), GH = G * H;
  if (T_ < 1 || B < 1 || H < 1) throw py::value_error("rnn host simulation: empty sizes");
  const bool lstm = cell == RnnCell::lstm, has_aux = lstm || cell == RnnCell::gru;
  auto x = host_input<T>(x_obj, "x", {T_, B, I});
  auto wi = host_input<T>(w_ih, "w_ih", {GH, I});
  auto wh = host_input<T>(w_hh, "w_hh", {GH, H});
  auto h = host_input<T>(h0, "h0", {B, H});
  std::optional<HostArray<T>> c, bi, bh;
  if (lstm) c = host_input<T>(c0, "c0", {B, H});
  if (!b_ih.is_none()) bi = host_input<T>(b_ih, "b_ih", {GH});
  if (!b_hh.is_none()) bh = host_input<T>(b_hh, "b_hh", {GH});
  std::optional<HostArray<int64_t>> len;
  if (!lengths.is_none()) {
    len = host_input<int64_t>(lengths, "lengths", {B});
    for (int64_t b = 0; b < B; ++b)
      if (len->at(b) < 1 || len->at(b) > T_) throw py::value_error("rnn host simulation: lengths outside [1, T]");
  }
  py::array_t<T> y({T_, B, H}), h_n({B, H}), c_n(std::vector<int64_t>{lstm ? B : 0, lstm ? H : 0});
  py::array_t<T> gates({T_, B, GH}), h_prev({T_, B, H}), w_hh_t({H, GH});
  py::array_t<T> aux(std::vector<int64_t>{has_aux ? T_ : 0, B, H}), aux2(std::vector<int64_t>{lstm ? T_ : 0, B, H});
  RnnForwardPlan<T> p{};
  p.cell = cell, p.linear_before_reset = linear_before_reset, p.reverse = reverse;
  p.T = T_, p.B = B, p.I = I, p.H = H;
  p.x = x.data(), p.h0 = h.data(), p.c0 = host_ptr(c), p.w_ih = wi.data(), p.w_hh = wh.data();
  p.b_ih = host_ptr(bi), p.b_hh = host_ptr(bh), p.lengths = host_ptr(len);
  p.y = y.mutable_data(), p.ldy = H, p.h_n = h_n.mutable_data(), p.c_n = lstm ? c_n.mutable_data() : nullptr;
  p.gates = gates.mutable_data(), p.h_prev = h_prev.mutable_data();
  p.aux = has_aux ? aux.mutable_data() : nullptr, p.aux2 = lstm ? aux2.mutable_data() : nullptr;
  p.w_hh_t = w_hh_t.mutable_data();
  for (py::array_t<T>* a : {&y, &h_n, &c_n, &gates, &h_prev, &w_hh_t, &aux, &aux2}) poison(*a);
  rnn_forward_simulated_on_host(p);
  return py::make_tuple(y, h_n, lstm ? py::object(c_n) : py::object(py::none()),
                        py::make_tuple(gates, h_prev, aux, aux2));
}

template <typename T>
py::tuple simulate_backward(RnnCell cell, py::handle x_obj, py::handle w_ih, py::handle w_hh, bool has_bias,
                            py::handle lengths, bool reverse, bool linear_before_reset, py::tuple saved,
                            py::handle dy_obj, py::handle dh_n, py::handle dc_n, double clip) {
  const py::array x_any = py::array::ensure(x_obj);
  const py::array wh_any = py::array::ensure(w_hh);
  if (!x_any || x_any.ndim() != 3 || !wh_any || wh_any.ndim() != 2 || saved.size() != 4)
    throw py::value_error("rnn host simulation: x must be 3-D, w_hh 2-D and saved a 4-tuple");
  const int64_t T_ = x_any.shape(0), B = x_any.shape(1), I = x_any.shape(2), H = wh_any.shape(1);
  const int64_t G = rnn_gate_count(cell), GH = G * H;
  if (T_ < 1 || B < 1 || H < 1) throw py::value_error("rnn host simulation: empty sizes");
  const bool lstm = cell == RnnCell::lstm, has_aux = lstm || cell == RnnCell::gru;
  const bool lbr = cell == RnnCell::gru && linear_before_reset;
  auto x = host_input<T>(x_obj, "x", {T_, B, I});
  auto wi = host_input<T>(w_ih, "w_ih", {GH, I});
  auto wh = host_input<T>(w_hh, "w_hh", {GH, H});
  auto gates = host_input<T>(saved[0], "gates", {T_, B, GH});
  auto h_prev = host_input<T>(saved[1], "h_prev", {T_, B, H});
  std::optional<HostArray<T>> aux, aux2, dy, dhn_in, dcn_in;
  if (has_aux) aux = host_input<T>(saved[2], "aux", {T_, B, H});
  if (lstm) aux2 = host_input<T>(saved[3], "aux2", {T_, B, H});
  if (!dy_obj.is_none()) dy = host_input<T>(dy_obj, "dy", {T_, B, H});
  if (!dh_n.is_none()) dhn_in = host_input<T>(dh_n, "dh_n", {B, H});
  if (lstm && !dc_n.is_none()) dcn_in = host_input<T>(dc_n, "dc_n", {B, H});
  std::optional<HostArray<int64_t>> len;
  if (!lengths.is_none()) {
    len = host_input<int64_t>(lengths, "lengths", {B});
    for (int64_t b = 0; b < B; ++b)
      if (len->at(b) < 1 || len->at(b) > T_) throw py::value_error("rnn host simulation: lengths outside [1, T]");
  }
  py::array_t<T> dx({T_, B, I}), dh0({B, H}), dc0(std::vector<int64_t>{lstm ? B : 0, lstm ? H : 0});
  py::array_t<T> dw_ih({GH, I}), dw_hh({GH, H});
  py::array_t<T> db_ih(std::vector<int64_t>{has_bias ? GH : 0}), db_hh(std::vector<int64_t>{has_bias ? GH : 0});
  py::array_t<T> dgates({T_, B, GH}), dhn(std::vector<int64_t>{lbr ? T_ : 0, B, H}), carry({B, H});
  RnnBackwardPlan<T> p{};
  p.cell = cell, p.linear_before_reset = linear_before_reset, p.reverse = reverse;
  p.T = T_, p.B = B, p.I = I, p.H = H, p.cell_grad_clip = T(clip);
  p.x = x.data(), p.w_ih = wi.data(), p.w_hh = wh.data(), p.lengths = host_ptr(len);
  p.gates = gates.data(), p.h_prev = h_prev.data(), p.aux = host_ptr(aux), p.aux2 = host_ptr(aux2);
  p.dy = host_ptr(dy), p.ldy = H, p.dh_n = host_ptr(dhn_in), p.dc_n = host_ptr(dcn_in);
  p.dx = dx.mutable_data(), p.dh0 = dh0.mutable_data(), p.dc0 = lstm ? dc0.mutable_data() : nullptr;
  p.dw_ih = dw_ih.mutable_data(), p.dw_hh = dw_hh.mutable_data();
  p.db_ih = has_bias ? db_ih.mutable_data() : nullptr, p.db_hh = has_bias ? db_hh.mutable_data() : nullptr;
  p.dgates = dgates.mutable_data(), p.dhn = lbr ? dhn.mutable_data() : nullptr, p.carry = carry.mutable_data();
  for (py::array_t<T>* a : {&dx, &dh0, &dc0, &dw_ih, &dw_hh, &db_ih, &db_hh, &dgates, &dhn, &carry}) poison(*a);
  rnn_backward_simulated_on_host(p);
  py::object none = py::none();
  return py::make_tuple(dx, dh0, lstm ? py::object(dc0) : none, dw_ih, dw_hh, has_bias ? py::object(db_ih) : none,
                        has_bias ? py::object(db_hh) : none);
}

template <typename T>
py::tuple simulate_grid(py::handle x_obj, py::handle w_ih, py::handle w_left, py::handle w_up, py::handle bias,
                        py::handle dh_obj) {
  const py::array x_any = py::array::ensure(x_obj);
  const py::array wl_any = py::array::ensure(w_left);
  if (!x_any || x_any.ndim() != 4 || !wl_any || wl_any.ndim() != 2)
    throw py::value_error("grid host simulation: x must be 4-D and w_left 2-D");
  const int64_t R = x_any.shape(0), C = x_any.shape(1), B = x_any.shape(2), I = x_any.shape(3), H = wl_any.shape(0);
  if (R < 1 || C < 1 || B < 1 || H < 1) throw py::value_error("grid host simulation: empty sizes");
  auto x = host_input<T>(x_obj, "x", {R, C, B, I});
  auto wi = host_input<T>(w_ih, "w_ih", {H, I});
  auto wl = host_input<T>(w_left, "w_left", {H, H});
  auto wu = host_input<T>(w_up, "w_up", {H, H});
  auto dh = host_input<T>(dh_obj, "dh", {R, C, B, H});
  std::optional<HostArray<T>> b;
  if (!bias.is_none()) b = host_input<T>(bias, "bias", {H});
  py::array_t<T> h({R, C, B, H}), scratch_f({int64_t{2}, H, H}), dx({R, C, B, I}), dw_ih({H, I}), dw_left({H, H});
  py::array_t<T> dw_up({H, H}), db(std::vector<int64_t>{b ? H : 0}), dpre({R, C, B, H});
  for (py::array_t<T>* a : {&h, &scratch_f, &dx, &dw_ih, &dw_left, &dw_up, &db, &dpre}) poison(*a);
  GridRnnPlan<T> p{};
  p.R = R, p.C = C, p.B = B, p.I = I, p.H = H;
  p.x = x.data(), p.w_ih = wi.data(), p.w_left = wl.data(), p.w_up = wu.data(), p.bias = host_ptr(b);
  p.h = h.mutable_data(), p.scratch = scratch_f.mutable_data();
  grid_rnn_forward_simulated_on_host(p);
  p.dh = dh.data(), p.dx = dx.mutable_data(), p.dw_ih = dw_ih.mutable_data(), p.dw_left = dw_left.mutable_data();
  p.dw_up = dw_up.mutable_data(), p.db = b ? db.mutable_data() : nullptr, p.scratch = dpre.mutable_data();
  grid_rnn_backward_simulated_on_host(p);
  return py::make_tuple(h, dx, dw_ih, dw_left, dw_up, b ? py::object(db) : py::object(py::none()));
}

bool is_float64(py::handle x) {
  const py::array a = py::array::ensure(x);
  if (!a) throw py::type_error("rnn host simulation: x is not an array");
  return a.dtype().kind() == 'f' && a.dtype().itemsize() == 8;
}

}  // namespace
}  // namespace rb::cuda

void register_rnn(py::module_& m) {
  using namespace rb::cuda;
  m.def("rnn_forward", &forward_entry, py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"),
        py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"),
        py::arg("linear_before_reset"), py::arg("out") = py::none(),
        "One recurrent layer and direction over a whole (T, B, I) sequence -> (y, h_n, c_n, saved).");
  m.def("rnn_backward", &backward_entry, py::arg("cell"), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"),
        py::arg("has_bias"), py::arg("lengths"), py::arg("reverse"), py::arg("linear_before_reset"),
        py::arg("saved"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"), py::arg("cell_grad_clip") = 0.0,
        py::arg("dx") = py::none(),
        "Back-propagation through time -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh); dx accumulates into `dx` if given.");
  m.def("grid_rnn_forward", &grid_forward_entry, py::arg("x"), py::arg("w_ih"), py::arg("w_left"), py::arg("w_up"),
        py::arg("bias"), "Grid recurrence over x (R, C, B, I) -> h (R, C, B, H).");
  m.def("grid_rnn_backward", &grid_backward_entry, py::arg("x"), py::arg("w_ih"), py::arg("w_left"),
        py::arg("w_up"), py::arg("has_bias"), py::arg("h"), py::arg("dh"),
        "Gradients of the grid recurrence -> (dx, dw_ih, dw_left, dw_up, db).");
  // The kernels' code on the host, on NumPy arrays (float32 or float64, as x): tests without a GPU.
  m.def("_rnn_forward_host_simulation",
        [](const std::string& cell_name, py::handle x, py::handle h0, py::handle c0, py::handle w_ih, py::handle w_hh,
           py::handle b_ih, py::handle b_hh, py::handle lengths, bool reverse, bool linear_before_reset) {
          const RnnCell cell = parse_cell(cell_name, "_rnn_forward_host_simulation");
          return is_float64(x) ? simulate_forward<double>(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                                                          linear_before_reset)
                               : simulate_forward<float>(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
                                                         linear_before_reset);
        },
        py::arg("cell"), py::arg("x"), py::arg("h0"), py::arg("c0"), py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"),
        py::arg("b_hh"), py::arg("lengths"), py::arg("reverse"), py::arg("linear_before_reset"));
  m.def("_rnn_backward_host_simulation",
        [](const std::string& cell_name, py::handle x, py::handle w_ih, py::handle w_hh, bool has_bias,
           py::handle lengths, bool reverse, bool linear_before_reset, py::tuple saved, py::handle dy, py::handle dh_n,
           py::handle dc_n, double clip) {
          const RnnCell cell = parse_cell(cell_name, "_rnn_backward_host_simulation");
          return is_float64(x) ? simulate_backward<double>(cell, x, w_ih, w_hh, has_bias, lengths, reverse,
                                                           linear_before_reset, saved, dy, dh_n, dc_n, clip)
                               : simulate_backward<float>(cell, x, w_ih, w_hh, has_bias, lengths, reverse,
                                                          linear_before_reset, saved, dy, dh_n, dc_n, clip);
        },
        py::arg("cell"), py::arg("x"), py::arg("w_ih"), py::arg("w_hh"), py::arg("has_bias"), py::arg("lengths"),
        py::arg("reverse"), py::arg("linear_before_reset"), py::arg("saved"), py::arg("dy"), py::arg("dh_n"),
        py::arg("dc_n"), py::arg("cell_grad_clip") = 0.0);
  // Forward and backward of the grid recurrence in one call -> (h, dx, dw_ih, dw_left, dw_up, db).
  m.def("_grid_rnn_host_simulation",
        [](py::handle x, py::handle w_ih, py::handle w_left, py::handle w_up, py::handle bias, py::handle dh) {
          return is_float64(x) ? simulate_grid<double>(x, w_ih, w_left, w_up, bias, dh)
                               : simulate_grid<float>(x, w_ih, w_left, w_up, bias, dh);
        },
        py::arg("x"), py::arg("w_ih"), py::arg("w_left"), py::arg("w_up"), py::arg("bias"), py::arg("dh"));
}
