// Bindings of the device tensor layer's kernels (python/rosenblatt/_device.py uses them to make
// DeviceArray behave as the ndarray the autograd ops expect).
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>
#include <utility>

#include "device_array.h"
#include "kernels.h"
#include "ops.h"
#include "tensor_ops.h"

namespace py = pybind11;
using rb::cuda::Compare;
using rb::cuda::DeviceArray;
using rb::cuda::Elementwise;

void register_tensor(py::module_& m) {
  // Element-wise ops of elementwise.cu not in module.cpp's first table.
  static const std::pair<const char*, Elementwise> unary[] = {
      {"sqrt", Elementwise::sqrt}, {"abs", Elementwise::abs}, {"sign", Elementwise::sign},
      {"log1p", Elementwise::log1p}, {"sin", Elementwise::sin}, {"cos", Elementwise::cos},
  };
  for (const auto& [name, op] : unary) {
    const char* op_name = name;
    const Elementwise which = op;
    m.def(name, [which, op_name](const DeviceArray& a) { return rb::cuda::elementwise(which, {a}, op_name); });
  }
  static const std::pair<const char*, Elementwise> binary[] = {
      {"pow", Elementwise::pow}, {"maximum", Elementwise::maximum}, {"minimum", Elementwise::minimum},
  };
  for (const auto& [name, op] : binary) {
    const char* op_name = name;
    const Elementwise which = op;
    m.def(name, [which, op_name](const DeviceArray& a, const DeviceArray& b) {
      return rb::cuda::elementwise(which, {a, b}, op_name);
    });
  }
  static const std::pair<const char*, Compare> comparisons[] = {
      {"eq", Compare::eq}, {"ne", Compare::ne}, {"lt", Compare::lt}, {"le", Compare::le}, {"gt", Compare::gt},
      {"ge", Compare::ge}, {"logical_and", Compare::logical_and}, {"logical_or", Compare::logical_or},
      {"logical_xor", Compare::logical_xor},
  };
  for (const auto& [name, op] : comparisons) {
    const char* op_name = name;
    const Compare which = op;
    m.def(name, [which, op_name](const DeviceArray& a, const DeviceArray& b) {
      return rb::cuda::compare(which, a, b, op_name);
    });
  }
  m.def("where", &rb::cuda::where, py::arg("condition"), py::arg("a"), py::arg("b"));
  m.def("astype", [](const DeviceArray& x, const std::string& dtype) {
    return rb::cuda::cast(x, rb::cuda::dtype_from_name(dtype, "astype"));
  }, py::arg("x"), py::arg("dtype"));
  m.def("full", [](const std::vector<int64_t>& shape, double value, const std::string& dtype, int device) {
    return rb::cuda::full(shape, value, rb::cuda::dtype_from_name(dtype, "full"), device);
  }, py::arg("shape"), py::arg("value"), py::arg("dtype") = "float32", py::arg("device") = 0);
  m.def("assign", &rb::cuda::assign, py::arg("dst"), py::arg("src"));
  m.def("as_strided", &rb::cuda::as_strided, py::arg("x"), py::arg("shape"), py::arg("strides"),
        py::arg("offset") = 0);
  m.def("max", [](const DeviceArray& x, int axis, bool keepdims) {
    auto [values, indices] = rb::cuda::extreme(x, axis, keepdims, false);
    return py::make_tuple(values, indices);
  }, py::arg("x"), py::arg("axis"), py::arg("keepdims") = false);
  m.def("min", [](const DeviceArray& x, int axis, bool keepdims) {
    auto [values, indices] = rb::cuda::extreme(x, axis, keepdims, true);
    return py::make_tuple(values, indices);
  }, py::arg("x"), py::arg("axis"), py::arg("keepdims") = false);
  m.def("gemm", &rb::cuda::gemm, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("out") = py::none());
}
