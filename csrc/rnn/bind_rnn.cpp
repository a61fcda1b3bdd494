// Python entry points of the recurrent family:
//   rosenblatt._C.rnn_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse,
//                             linear_before_reset, out) -> (y, h_n, c_n, saved)
//   rosenblatt._C.rnn_backward(cell, x, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset,
//                              saved, dy, dh_n, dc_n, cell_grad_clip, dx)
//       -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)
//   rosenblatt._C.grid_rnn_forward(x, w_ih, w_left, w_up, bias) -> h
//   rosenblatt._C.grid_rnn_backward(x, w_ih, w_left, w_up, has_bias, h, dh) -> (dx, dw_ih, dw_left, dw_up, db)
//   rosenblatt._C.rnn_activation("sigmoid" | "tanh", x): the gate activations on float32 (for tests)
// cell is "rnn_tanh", "rnn_relu", "lstm" or "gru". Everything is validated here, before any
// memory is touched.
#include <cmath>
#include <string>

#include "bindings/arrays.h"
#include "dispatch/dispatch.h"
#include "rnn/grid_rnn.h"
#include "rnn/rnn.h"

namespace rb {

namespace {

RnnCell parse_cell(const std::string& name, const std::string& op) {
  if (name == "rnn_tanh") return RnnCell::rnn_tanh;
  if (name == "rnn_relu") return RnnCell::rnn_relu;
  if (name == "lstm") return RnnCell::lstm;
  if (name == "gru") return RnnCell::gru;
  value_error(op, ": unknown cell '", name, "'; expected rnn_tanh, rnn_relu, lstm or gru");
}

// A C-contiguous array of dtype T and exactly `shape`.
template <typename T>
const T* contiguous_input(py::handle obj, const std::string& op, const char* name, const std::vector<int64_t>& shape) {
  py::array a = require_ndarray(obj, op.c_str(), name);
  if (!has_dtype<T>(a))
    throw py::type_error(cat(op, ": ", name, " has dtype ", dtype_name(a), ", expected ",
                             std::string(py::str(py::dtype::of<T>())), " (shape ", shape_str(shape_of(a)), ")"));
  if (shape_of(a) != shape)
    value_error(op, ": ", name, " has shape ", shape_str(shape_of(a)), ", expected ", shape_str(shape));
  if (!(a.flags() & py::array::c_style))
    value_error(op, ": ", name, " of shape ", shape_str(shape), " must be C-contiguous");
  return static_cast<const T*>(a.data());
}

template <typename T>
const T* optional_input(py::handle obj, const std::string& op, const char* name, const std::vector<int64_t>& shape) {
  return obj.is_none() ? nullptr : contiguous_input<T>(obj, op, name, shape);
}

// A (T, B, H) array whose rows (t, b) are equally spaced and contiguous inside: a column slice of
// a (T, B, W) array is allowed (the two directions of a bidirectional layer). Returns the row stride.
int64_t row_strided(const py::array& a, const std::string& op, const char* name, int64_t T, int64_t B, int64_t H) {
  if (shape_of(a) != std::vector<int64_t>{T, B, H})
    value_error(op, ": ", name, " has shape ", shape_str(shape_of(a)), ", expected ", shape_str({T, B, H}));
  const auto s = element_strides(a, op.c_str(), name);
  if (s[2] != 1 || s[1] < H || s[0] != B * s[1])
    value_error(op, ": ", name, " of shape ", shape_str({T, B, H}),
                " must have contiguous rows (strides in elements: ", s[0], ", ", s[1], ", ", s[2], ")");
  return s[1];
}

const int64_t* lengths_of(py::handle obj, const std::string& op, int64_t T, int64_t B) {
  if (obj.is_none()) return nullptr;
  const int64_t* lengths = contiguous_input<int64_t>(obj, op, "lengths", {B});
  for (int64_t b = 0; b < B; ++b)
    if (lengths[b] < 1 || lengths[b] > T)
      value_error(op, ": lengths[", b, "] = ", lengths[b], " is outside [1, ", T, "] (sequence length ", T,
                  ", batch ", B, ")");
  return lengths;
}

template <typename T>
py::tuple forward_typed(RnnCell cell, const std::string& op, const py::array& x, py::handle h0, py::handle c0,
                        py::handle w_ih, py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle lengths,
                        bool reverse, bool linear_before_reset, py::handle out) {
  const int64_t steps = x.shape(0), B = x.shape(1), I = x.shape(2);
  py::array w_hh_array = require_ndarray(w_hh, op.c_str(), "w_hh");
  if (w_hh_array.ndim() != 2)
    value_error(op, ": w_hh must be 2-D, got shape ", shape_str(shape_of(w_hh_array)));
  const int64_t H = w_hh_array.shape(1), G = rnn_gate_count(cell), GH = G * H;
  if (steps < 1 || B < 1 || H < 1)
    value_error(op, ": empty sequence, batch or hidden size (x ", shape_str(shape_of(x)), ", w_hh ",
                shape_str(shape_of(w_hh_array)), ")");
  const bool lstm = cell == RnnCell::lstm;

  RnnForwardArgs<T> a{};
  a.cell = cell, a.linear_before_reset = linear_before_reset, a.reverse = reverse;
  a.T = steps, a.B = B, a.I = I, a.H = H;
  a.x = contiguous_input<T>(x, op, "x", {steps, B, I});
  a.w_ih = contiguous_input<T>(w_ih, op, "w_ih", {GH, I});
  a.w_hh = contiguous_input<T>(w_hh, op, "w_hh", {GH, H});
  a.h0 = contiguous_input<T>(h0, op, "h0", {B, H});
  if (lstm) a.c0 = contiguous_input<T>(c0, op, "c0", {B, H});
  a.b_ih = optional_input<T>(b_ih, op, "b_ih", {GH});
  a.b_hh = optional_input<T>(b_hh, op, "b_hh", {GH});
  a.lengths = lengths_of(lengths, op, steps, B);

  py::array y;
  if (out.is_none()) {
    y = recycled_array<T>({steps, B, H});
    a.ldy = H;
  } else {
    y = require_ndarray(out, op.c_str(), "out");
    if (!has_dtype<T>(y)) throw py::type_error(cat(op, ": out has dtype ", dtype_name(y), ", expected that of x"));
    if (!y.writeable()) value_error(op, ": out of shape ", shape_str(shape_of(y)), " is read-only");
    a.ldy = row_strided(y, op, "out", steps, B, H);
    // Every input was validated as an ndarray above (c0 only for LSTM, where it is used).
    const py::handle used_c0 = lstm ? c0 : py::handle(py::none());
    for (py::handle input : {py::handle(x), h0, used_c0, w_ih, w_hh, b_ih, b_hh, lengths})
      if (!input.is_none() && may_overlap(y, py::reinterpret_borrow<py::array>(input)))
        value_error(op, ": out of shape ", shape_str(shape_of(y)), " overlaps an input");
  }
  a.y = static_cast<T*>(y.mutable_data());
  // The saved activations are as large as the sequence and are made again every training step.
  py::array_t<T> h_n({B, H});
  py::array_t<T> gates = recycled_array<T>({steps, B, GH}), h_prev = recycled_array<T>({steps, B, H});
  py::array_t<T> c_n(std::vector<int64_t>{lstm ? B : 0, lstm ? H : 0});
  const bool has_aux = cell == RnnCell::lstm || cell == RnnCell::gru;
  py::array_t<T> aux = recycled_array<T>({has_aux ? steps : 0, B, H});
  py::array_t<T> aux2 = recycled_array<T>({lstm ? steps : 0, B, H});
  a.h_n = h_n.mutable_data(), a.c_n = lstm ? c_n.mutable_data() : nullptr;
  a.gates = gates.mutable_data(), a.h_prev = h_prev.mutable_data();
  a.aux = has_aux ? aux.mutable_data() : nullptr, a.aux2 = lstm ? aux2.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    rnn_forward(a);
  }
  return py::make_tuple(y, h_n, lstm ? py::object(c_n) : py::object(py::none()),
                        py::make_tuple(gates, h_prev, aux, aux2));
}

py::tuple forward_entry(const std::string& cell_name, py::handle x_obj, py::handle h0, py::handle c0, py::handle w_ih,
                        py::handle w_hh, py::handle b_ih, py::handle b_hh, py::handle lengths, bool reverse,
                        bool linear_before_reset, py::handle out) {
  const RnnCell cell = parse_cell(cell_name, "rnn_forward");
  const std::string op = cell_name + "_forward";
  py::array x = require_ndarray(x_obj, op.c_str(), "x");
  if (x.ndim() != 3) value_error(op, ": x must be (T, B, I), got shape ", shape_str(shape_of(x)));
  if (has_dtype<float>(x))
    return forward_typed<float>(cell, op, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, linear_before_reset, out);
  if (has_dtype<double>(x))
    return forward_typed<double>(cell, op, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, linear_before_reset, out);
  throw py::type_error(cat(op, ": unsupported dtype ", dtype_name(x), " (x shape ", shape_str(shape_of(x)),
                           "); expected float32 or float64"));
}

template <typename T>
py::tuple backward_typed(RnnCell cell, const std::string& op, const py::array& x, py::handle w_ih, py::handle w_hh,
                         bool has_bias, py::handle lengths, bool reverse, bool linear_before_reset,
                         const py::tuple& saved, py::handle dy_obj, py::handle dh_n, py::handle dc_n, double clip,
                         py::handle dx_obj) {
  const int64_t steps = x.shape(0), B = x.shape(1), I = x.shape(2);
  py::array w_hh_array = require_ndarray(w_hh, op.c_str(), "w_hh");
  if (w_hh_array.ndim() != 2) value_error(op, ": w_hh must be 2-D, got shape ", shape_str(shape_of(w_hh_array)));
  const int64_t H = w_hh_array.shape(1), G = rnn_gate_count(cell), GH = G * H;
  if (steps < 1 || B < 1 || H < 1)
    value_error(op, ": empty sequence, batch or hidden size (x ", shape_str(shape_of(x)), ")");
  const bool lstm = cell == RnnCell::lstm, has_aux = lstm || cell == RnnCell::gru;
  if (saved.size() != 4) value_error(op, ": saved must be the 4-tuple returned by the forward call");

  RnnBackwardArgs<T> a{};
  a.cell = cell, a.linear_before_reset = linear_before_reset, a.reverse = reverse;
  a.T = steps, a.B = B, a.I = I, a.H = H, a.cell_grad_clip = T(clip);
  a.x = contiguous_input<T>(x, op, "x", {steps, B, I});
  a.w_ih = contiguous_input<T>(w_ih, op, "w_ih", {GH, I});
  a.w_hh = contiguous_input<T>(w_hh, op, "w_hh", {GH, H});
  a.lengths = lengths_of(lengths, op, steps, B);
  a.gates = contiguous_input<T>(saved[0], op, "saved gates", {steps, B, GH});
  a.h_prev = contiguous_input<T>(saved[1], op, "saved h_prev", {steps, B, H});
  a.aux = has_aux ? contiguous_input<T>(saved[2], op, "saved aux", {steps, B, H}) : nullptr;
  a.aux2 = lstm ? contiguous_input<T>(saved[3], op, "saved aux2", {steps, B, H}) : nullptr;
  if (!dy_obj.is_none()) {
    py::array dy = require_ndarray(dy_obj, op.c_str(), "dy");
    if (!has_dtype<T>(dy)) throw py::type_error(cat(op, ": dy has dtype ", dtype_name(dy), ", expected that of x"));
    a.ldy = row_strided(dy, op, "dy", steps, B, H);
    a.dy = static_cast<const T*>(dy.data());
  }
  a.dh_n = optional_input<T>(dh_n, op, "dh_n", {B, H});
  a.dc_n = lstm ? optional_input<T>(dc_n, op, "dc_n", {B, H}) : nullptr;

  py::array dx;
  if (dx_obj.is_none()) {
    dx = recycled_array<T>({steps, B, I});
  } else {
    dx = require_ndarray(dx_obj, op.c_str(), "dx");
    check_out(dx, py::dtype::of<T>(), {steps, B, I}, {&x}, op.c_str(), "dx");
    if (!(dx.flags() & py::array::c_style)) value_error(op, ": dx of shape ", shape_str({steps, B, I}), " must be C-contiguous");
    a.accumulate_dx = true;
  }
  a.dx = static_cast<T*>(dx.mutable_data());
  py::array_t<T> dh0({B, H}), dw_ih = recycled_array<T>({GH, I}), dw_hh = recycled_array<T>({GH, H});
  py::array_t<T> dc0(std::vector<int64_t>{lstm ? B : 0, lstm ? H : 0});
  py::array_t<T> db_ih(std::vector<int64_t>{has_bias ? GH : 0}), db_hh(std::vector<int64_t>{has_bias ? GH : 0});
  a.dh0 = dh0.mutable_data(), a.dc0 = lstm ? dc0.mutable_data() : nullptr;
  a.dw_ih = dw_ih.mutable_data(), a.dw_hh = dw_hh.mutable_data();
  a.db_ih = has_bias ? db_ih.mutable_data() : nullptr, a.db_hh = has_bias ? db_hh.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    rnn_backward(a);
  }
  py::object none = py::none();
  return py::make_tuple(dx, dh0, lstm ? py::object(dc0) : none, dw_ih, dw_hh, has_bias ? py::object(db_ih) : none,
                        has_bias ? py::object(db_hh) : none);
}

py::tuple backward_entry(const std::string& cell_name, py::handle x_obj, py::handle w_ih, py::handle w_hh,
                         bool has_bias, py::handle lengths, bool reverse, bool linear_before_reset, py::tuple saved,
                         py::handle dy, py::handle dh_n, py::handle dc_n, double clip, py::handle dx) {
  const RnnCell cell = parse_cell(cell_name, "rnn_backward");
  const std::string op = cell_name + "_backward";
  py::array x = require_ndarray(x_obj, op.c_str(), "x");
  if (x.ndim() != 3) value_error(op, ": x must be (T, B, I), got shape ", shape_str(shape_of(x)));
  if (has_dtype<float>(x))
    return backward_typed<float>(cell, op, x, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset, saved, dy,
                                 dh_n, dc_n, clip, dx);
  if (has_dtype<double>(x))
    return backward_typed<double>(cell, op, x, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset, saved,
                                  dy, dh_n, dc_n, clip, dx);
  throw py::type_error(cat(op, ": unsupported dtype ", dtype_name(x), " (x shape ", shape_str(shape_of(x)),
                           "); expected float32 or float64"));
}


// ---- grid recurrence ------------------------------------------------------------------------------

template <typename T>
GridRnnArgs<T> grid_args(const std::string& op, const py::array& x, py::handle w_ih, py::handle w_left,
                         py::handle w_up) {
  GridRnnArgs<T> a{};
  a.R = x.shape(0), a.C = x.shape(1), a.B = x.shape(2), a.I = x.shape(3);
  py::array w = require_ndarray(w_left, op.c_str(), "w_left");
  if (w.ndim() != 2) value_error(op, ": w_left must be (H, H), got shape ", shape_str(shape_of(w)));
  a.H = w.shape(0);
  if (a.R < 1 || a.C < 1 || a.B < 1 || a.H < 1)
    value_error(op, ": empty grid, batch or hidden size (x ", shape_str(shape_of(x)), ", w_left ",
                shape_str(shape_of(w)), ")");
  a.x = contiguous_input<T>(x, op, "x", {a.R, a.C, a.B, a.I});
  a.w_ih = contiguous_input<T>(w_ih, op, "w_ih", {a.H, a.I});
  a.w_left = contiguous_input<T>(w_left, op, "w_left", {a.H, a.H});
  a.w_up = contiguous_input<T>(w_up, op, "w_up", {a.H, a.H});
  return a;
}

template <typename T>
py::array grid_forward_typed(const py::array& x, py::handle w_ih, py::handle w_left, py::handle w_up, py::handle bias) {
  const std::string op = "grid_rnn_forward";
  GridRnnArgs<T> a = grid_args<T>(op, x, w_ih, w_left, w_up);
  a.bias = optional_input<T>(bias, op, "bias", {a.H});
  py::array_t<T> h({a.R, a.C, a.B, a.H});
  a.h = h.mutable_data();
  {
    py::gil_scoped_release release;
    grid_rnn_forward(a);
  }
  return h;
}

template <typename T>
py::tuple grid_backward_typed(const py::array& x, py::handle w_ih, py::handle w_left, py::handle w_up, bool has_bias,
                              py::handle h, py::handle dh) {
  const std::string op = "grid_rnn_backward";
  GridRnnArgs<T> a = grid_args<T>(op, x, w_ih, w_left, w_up);
  a.h = const_cast<T*>(contiguous_input<T>(h, op, "h", {a.R, a.C, a.B, a.H}));  // read only in backward
  a.dh = contiguous_input<T>(dh, op, "dh", {a.R, a.C, a.B, a.H});
  py::array_t<T> dx({a.R, a.C, a.B, a.I}), dw_ih({a.H, a.I}), dw_left({a.H, a.H}), dw_up({a.H, a.H});
  py::array_t<T> db(std::vector<int64_t>{has_bias ? a.H : 0});
  a.dx = dx.mutable_data(), a.dw_ih = dw_ih.mutable_data(), a.dw_left = dw_left.mutable_data();
  a.dw_up = dw_up.mutable_data(), a.db = has_bias ? db.mutable_data() : nullptr;
  {
    py::gil_scoped_release release;
    grid_rnn_backward(a);
  }
  return py::make_tuple(dx, dw_ih, dw_left, dw_up, has_bias ? py::object(db) : py::object(py::none()));
}

py::array grid_input(py::handle x_obj, const char* op) {
  py::array x = require_ndarray(x_obj, op, "x");
  if (x.ndim() != 4) value_error(op, ": x must be (R, C, B, I), got shape ", shape_str(shape_of(x)));
  if (!has_dtype<float>(x) && !has_dtype<double>(x))
    throw py::type_error(cat(op, ": unsupported dtype ", dtype_name(x), " (x shape ", shape_str(shape_of(x)),
                             "); expected float32 or float64"));
  return x;
}

py::array grid_forward_entry(py::handle x_obj, py::handle w_ih, py::handle w_left, py::handle w_up, py::handle bias) {
  py::array x = grid_input(x_obj, "grid_rnn_forward");
  return has_dtype<float>(x) ? grid_forward_typed<float>(x, w_ih, w_left, w_up, bias)
                             : grid_forward_typed<double>(x, w_ih, w_left, w_up, bias);
}

py::tuple grid_backward_entry(py::handle x_obj, py::handle w_ih, py::handle w_left, py::handle w_up, bool has_bias,
                              py::handle h, py::handle dh) {
  py::array x = grid_input(x_obj, "grid_rnn_backward");
  return has_dtype<float>(x) ? grid_backward_typed<float>(x, w_ih, w_left, w_up, has_bias, h, dh)
                             : grid_backward_typed<double>(x, w_ih, w_left, w_up, has_bias, h, dh);
}

// Element-wise activations on float32 vectors: the AVX2 kernels when active, libm otherwise.
template <void (*Avx2)(const float*, float*, int64_t), float (*Scalar)(float)>
py::array activation_entry(py::handle x_obj, const char* op) {
  py::array x = require_ndarray(x_obj, op, "x");
  const float* in = contiguous_input<float>(x, op, "x", shape_of(x));
  py::array_t<float> y(shape_of(x));
  float* out = y.mutable_data();
  const int64_t n = x.size();
  {
    py::gil_scoped_release release;
    if (active_isa() == Isa::avx2) {
      Avx2(in, out, n);
      record_impl(op, "avx2");
    } else {
      for (int64_t i = 0; i < n; ++i) out[i] = Scalar(in[i]);
      record_impl(op, "scalar_ref");
    }
  }
  return y;
}

float sigmoid_scalar(float v) { return 1.0f / (1.0f + std::exp(-v)); }
float tanh_scalar(float v) { return std::tanh(v); }

}  // namespace

void bind_rnn(py::module_& m) {
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
  m.def(
      "rnn_activation",
      [](const std::string& name, py::handle x) {
        if (name == "sigmoid") return activation_entry<sigmoid_avx2, sigmoid_scalar>(x, "rnn_sigmoid");
        if (name == "tanh") return activation_entry<tanh_avx2, tanh_scalar>(x, "rnn_tanh");
        value_error("rnn_activation: unknown activation '", name, "'; expected sigmoid or tanh");
      },
      py::arg("name"), py::arg("x"), "The gate activations on a float32 array (what the fused passes use).");
}

}  // namespace rb
