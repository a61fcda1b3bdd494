// Python entry point of the fused optimizer step:
//   rosenblatt._C.adam_update(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, decay, l2, lerp_weight,
//                             one_minus_beta2, beta2, bias2_sqrt, eps, step_size)
// updates param, exp_avg, exp_avg_sq (and max_exp_avg_sq, or None) in place; the scalars are those of
// optim/adam.h. All arrays: one shape, one float dtype, C-contiguous; the updated ones writeable and
// apart from each other and from grad.
#include <pybind11/pybind11.h>

#include "bindings/arrays.h"
#include "optim/adam.h"

namespace rb {

namespace {

void adam_update_entry(py::handle param_obj, py::handle grad_obj, py::handle exp_avg_obj, py::handle exp_avg_sq_obj,
                       py::handle max_obj, double decay, double l2, double lerp_weight, double one_minus_beta2,
                       double beta2, double bias2_sqrt, double eps, double step_size) {
  const char* op = "adam_update";
  py::array param = require_ndarray(param_obj, op, "param"), grad = require_ndarray(grad_obj, op, "grad");
  py::array exp_avg = require_ndarray(exp_avg_obj, op, "exp_avg");
  py::array exp_avg_sq = require_ndarray(exp_avg_sq_obj, op, "exp_avg_sq");
  std::vector<std::pair<const char*, py::array>> arrays{{"param", param}, {"grad", grad}, {"exp_avg", exp_avg},
                                                        {"exp_avg_sq", exp_avg_sq}};
  if (!max_obj.is_none()) arrays.emplace_back("max_exp_avg_sq", require_ndarray(max_obj, op, "max_exp_avg_sq"));
  const bool single = has_dtype<float>(param);
  if (!single && !has_dtype<double>(param))
    throw py::type_error(cat(op, ": param has dtype ", dtype_name(param), "; expected float32 or float64"));
  for (size_t i = 0; i < arrays.size(); ++i) {
    const auto& [name, a] = arrays[i];
    if (!a.dtype().equal(param.dtype()) || shape_of(a) != shape_of(param))
      value_error(op, ": ", name, " has dtype ", dtype_name(a), " and shape ", shape_str(shape_of(a)), ", param ",
                  dtype_name(param), " and ", shape_str(shape_of(param)));
    if (!(a.flags() & py::array::c_style)) value_error(op, ": ", name, " must be C-contiguous");
    if (i != 1 && !a.writeable()) value_error(op, ": ", name, " is read-only; it is updated in place");  // 1: grad
  }
  for (size_t i = 0; i < arrays.size(); ++i)
    for (size_t j = i + 1; j < arrays.size(); ++j)
      if (may_overlap(arrays[i].second, arrays[j].second))
        value_error(op, ": ", arrays[i].first, " and ", arrays[j].first, " share memory");
  const AdamScalars s{decay, l2, lerp_weight, one_minus_beta2, beta2, bias2_sqrt, eps, step_size};
  const int64_t n = int64_t(param.size());
  auto run = [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    auto mut = [](py::array& a) { return static_cast<T*>(a.mutable_data()); };
    T* max_sq = arrays.size() > 4 ? mut(arrays[4].second) : nullptr;
    T *p = mut(param), *m = mut(exp_avg), *v = mut(exp_avg_sq);
    const T* g = static_cast<const T*>(grad.data());
    py::gil_scoped_release release;
    adam_update<T>(n, p, g, m, v, max_sq, s);
  };
  if (single)
    run(static_cast<float*>(nullptr));
  else
    run(static_cast<double*>(nullptr));
}

}  // namespace

void bind_optim(py::module_& m) {
  m.def("adam_update", &adam_update_entry, py::arg("param"), py::arg("grad"), py::arg("exp_avg"),
        py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq"), py::arg("decay"), py::arg("l2"), py::arg("lerp_weight"),
        py::arg("one_minus_beta2"), py::arg("beta2"), py::arg("bias2_sqrt"), py::arg("eps"), py::arg("step_size"),
        "One Adam step of one parameter in one pass, bit for bit optim/adam.py's NumPy update.");
}

}  // namespace rb
