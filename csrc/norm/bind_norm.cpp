// Python entry points of batch normalisation (the same names and arguments as the CUDA backend's):
//   rosenblatt._C.batch_norm_forward(x, weight=None, bias=None, running_mean=None, running_var=None,
//                                     training=False, momentum=0.1, eps=1e-5) -> (y, save_mean, save_invstd)
//   rosenblatt._C.batch_norm_backward(grad, x, weight, save_mean, save_invstd, training) -> (dx, dweight, dbias)
// x is (N, C, ...) float32 or float64; per-channel arrays are (C,) of x's dtype. In training the running
// statistics (C-contiguous, writeable) are updated in place. Everything is checked before any work.
#include <pybind11/pybind11.h>

#include <optional>

#include "bindings/arrays.h"
#include "norm/batch_norm.h"

namespace rb {

namespace {

struct Layout {
  int64_t N, C, L;
};

Layout channel_layout(const py::array& x, const char* op) {
  if (x.ndim() < 2) value_error(op, ": expected an input with at least 2 dims (N, C, ...), got shape ", shape_str(shape_of(x)));
  if (!has_dtype<float>(x) && !has_dtype<double>(x))
    throw py::type_error(cat(op, ": x has dtype ", dtype_name(x), " (shape ", shape_str(shape_of(x)),
                             "); expected float32 or float64"));
  const int64_t N = x.shape(0), C = x.shape(1);
  return {N, C, C == 0 || N == 0 ? 0 : int64_t(x.size()) / (N * C)};
}

// None, or a (C,) array of x's dtype; copied to C order unless `in_place` (then it must already be).
template <typename T>
std::optional<py::array_t<T>> channel_array(py::handle obj, const py::array& x, int64_t C, const char* op,
                                            const char* name, bool in_place = false) {
  if (obj.is_none()) return std::nullopt;
  py::array a = require_ndarray(obj, op, name);
  if (!a.dtype().equal(x.dtype()))
    throw py::type_error(cat(op, ": ", name, " has dtype ", dtype_name(a), " but x has ", dtype_name(x), " (x shape ",
                             shape_str(shape_of(x)), ")"));
  if (a.ndim() != 1 || a.shape(0) != C)
    value_error(op, ": ", name, " must have shape (", C, ",), got ", shape_str(shape_of(a)), " (x shape ",
                shape_str(shape_of(x)), ")");
  if (in_place) {
    if (!a.writeable()) value_error(op, ": ", name, " is read-only; it is updated in place in training");
    if (!(a.flags() & py::array::c_style))
      value_error(op, ": ", name, " must be contiguous; it is updated in place in training");
    return py::array_t<T>(a);  // same memory
  }
  return c_contiguous<T>(a, op, name);
}

template <typename T>
const T* data_or_null(const std::optional<py::array_t<T>>& a) {
  return a ? a->data() : nullptr;
}

template <typename T>
py::tuple forward_typed(const py::array& x_in, py::handle weight, py::handle bias, py::handle running_mean,
                        py::handle running_var, bool training, double momentum, double eps, const Layout& s) {
  const char* op = "batch_norm_forward";
  const auto w = channel_array<T>(weight, x_in, s.C, op, "weight");
  const auto b = channel_array<T>(bias, x_in, s.C, op, "bias");
  auto rm = channel_array<T>(running_mean, x_in, s.C, op, "running_mean", training);
  auto rv = channel_array<T>(running_var, x_in, s.C, op, "running_var", training);
  if (training && s.N * s.L <= 1)
    value_error(op, ": expected more than 1 value per channel when training, got input ", shape_str(shape_of(x_in)));
  if (!training && (!rm || !rv))
    value_error(op, ": running_mean and running_var are needed in evaluation mode (input ", shape_str(shape_of(x_in)),
                ")");
  if (training && rm && rv && may_overlap(*rm, *rv))
    value_error(op, ": running_mean and running_var share memory");
  const auto x = c_contiguous<T>(x_in, op, "x");
  // In training the running statistics are written while x, weight and bias are still being read.
  if (training) {
    for (const auto& [stat_name, stat] : {std::pair{"running_mean", &rm}, std::pair{"running_var", &rv}}) {
      if (!*stat) continue;
      using Read = std::pair<const char*, const py::array*>;
      for (const auto& [name, read] : {Read{"x", &x}, Read{"weight", w ? &*w : nullptr}, Read{"bias", b ? &*b : nullptr}})
        if (read && may_overlap(**stat, *read))
          value_error(op, ": ", stat_name, " shares memory with ", name, " (x shape ", shape_str(shape_of(x_in)),
                      "); it is updated in place in training");
    }
  }
  py::array_t<T> y(shape_of(x_in)), save_mean(s.C), save_invstd(s.C);
  BatchNormForward<T> a{s.N, s.C, s.L, x.data(), data_or_null(w), data_or_null(b),
                        rm ? rm->mutable_data() : nullptr, rv ? rv->mutable_data() : nullptr, training, momentum, eps,
                        y.mutable_data(), save_mean.mutable_data(), save_invstd.mutable_data()};
  {
    py::gil_scoped_release release;
    batch_norm_forward(a);
  }
  return py::make_tuple(y, save_mean, save_invstd);
}

py::tuple forward_entry(py::handle x_obj, py::handle weight, py::handle bias, py::handle running_mean,
                        py::handle running_var, bool training, double momentum, double eps) {
  const char* op = "batch_norm_forward";
  py::array x = require_ndarray(x_obj, op, "x");
  const Layout s = channel_layout(x, op);
  if (!(eps >= 0.0)) value_error(op, ": eps must be >= 0, got ", eps);
  if (has_dtype<float>(x)) return forward_typed<float>(x, weight, bias, running_mean, running_var, training, momentum, eps, s);
  return forward_typed<double>(x, weight, bias, running_mean, running_var, training, momentum, eps, s);
}

template <typename T>
py::tuple backward_typed(const py::array& grad_in, const py::array& x_in, py::handle weight, py::handle save_mean,
                         py::handle save_invstd, bool training, const Layout& s) {
  const char* op = "batch_norm_backward";
  if (!grad_in.dtype().equal(x_in.dtype()) || shape_of(grad_in) != shape_of(x_in))
    value_error(op, ": grad ", dtype_name(grad_in), " ", shape_str(shape_of(grad_in)), " must match x ",
                dtype_name(x_in), " ", shape_str(shape_of(x_in)));
  const auto w = channel_array<T>(weight, x_in, s.C, op, "weight");
  const auto mean = channel_array<T>(save_mean, x_in, s.C, op, "save_mean");
  const auto invstd = channel_array<T>(save_invstd, x_in, s.C, op, "save_invstd");
  if (!mean || !invstd) value_error(op, ": save_mean and save_invstd are required");
  const auto g = c_contiguous<T>(grad_in, op, "grad");
  const auto x = c_contiguous<T>(x_in, op, "x");
  py::array_t<T> dx(shape_of(x_in)), dweight(s.C), dbias(s.C);
  BatchNormBackward<T> a{s.N, s.C, s.L, g.data(), x.data(), data_or_null(w), mean->data(), invstd->data(),
                         training, dx.mutable_data(), dweight.mutable_data(), dbias.mutable_data()};
  {
    py::gil_scoped_release release;
    batch_norm_backward(a);
  }
  return py::make_tuple(dx, dweight, dbias);
}

py::tuple backward_entry(py::handle grad_obj, py::handle x_obj, py::handle weight, py::handle save_mean,
                         py::handle save_invstd, bool training) {
  const char* op = "batch_norm_backward";
  py::array grad = require_ndarray(grad_obj, op, "grad");
  py::array x = require_ndarray(x_obj, op, "x");
  const Layout s = channel_layout(x, op);
  if (has_dtype<float>(x)) return backward_typed<float>(grad, x, weight, save_mean, save_invstd, training, s);
  return backward_typed<double>(grad, x, weight, save_mean, save_invstd, training, s);
}

}  // namespace

void bind_norm(py::module_& m) {
  m.def("batch_norm_forward", &forward_entry, py::arg("x"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("running_mean") = py::none(), py::arg("running_var") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5);
  m.def("batch_norm_backward", &backward_entry, py::arg("grad"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training"));
}

}  // namespace rb
