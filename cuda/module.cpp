// rosenblatt._cuda: the CUDA backend. The runtime is linked statically, so this module
// imports on machines with no driver and simply reports no devices; anything that needs a
// device then raises RuntimeError("... no CUDA device ...").
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "allocator.h"
#include "device.h"
#include "device_array.h"
#include "dlpack.h"
#include "ops.h"

namespace py = pybind11;
using rb::cuda::DeviceArray;
using rb::cuda::Elementwise;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "rosenblatt CUDA kernels";
  m.def("device_count", &rb::cuda::device_count);
  m.def("get_device_name", &rb::cuda::device_name, py::arg("device"));
  m.def("runtime_version", &rb::cuda::runtime_version);

  // ---- memory ----------------------------------------------------------------------------
  m.def("memory_stats", [](int device) {
    const rb::cuda::MemoryStats s = rb::cuda::memory_stats(device);
    py::dict d;
    d["allocated"] = s.allocated;
    d["max_allocated"] = s.max_allocated;
    d["reserved"] = s.reserved;
    d["malloc_calls"] = s.malloc_calls;
    return d;
  }, py::arg("device") = 0);
  m.def("reset_peak_memory_stats", &rb::cuda::reset_peak_memory_stats, py::arg("device") = 0);
  m.def("empty_cache", &rb::cuda::empty_cache, py::arg("device") = 0);
  m.def("synchronize", &rb::cuda::synchronize, py::arg("device") = 0);
  m.def("round_size", &rb::cuda::round_size, py::arg("bytes"));

  // ---- arrays ----------------------------------------------------------------------------
  py::class_<DeviceArray>(m, "DeviceArray")
      .def_property_readonly("shape", [](const DeviceArray& x) { return py::tuple(py::cast(x.shape())); })
      .def_property_readonly("strides", [](const DeviceArray& x) { return py::tuple(py::cast(x.strides())); },
                             "strides in elements")
      .def_property_readonly("dtype", [](const DeviceArray& x) { return rb::cuda::dtype_name(x.dtype()); })
      .def_property_readonly("device", &DeviceArray::device)
      .def_property_readonly("ndim", &DeviceArray::ndim)
      .def_property_readonly("size", &DeviceArray::numel)
      .def_property_readonly("read_only", &DeviceArray::read_only)
      .def_property_readonly("data_ptr", [](const DeviceArray& x) { return reinterpret_cast<uintptr_t>(x.data()); })
      .def("is_contiguous", &DeviceArray::is_contiguous)
      .def("contiguous", &rb::cuda::contiguous)
      .def("transpose", &DeviceArray::transpose, py::arg("dim0"), py::arg("dim1"))
      .def("to_numpy", &rb::cuda::to_host)
      .def("synchronize", [](const DeviceArray& x) { rb::cuda::synchronize(x.device()); })
      .def("__dlpack__", &rb::cuda::to_dlpack, py::kw_only(), py::arg("stream") = py::none(),
           py::arg("max_version") = py::none(), py::arg("dl_device") = py::none(), py::arg("copy") = py::none())
      .def("__dlpack_device__", [](const DeviceArray& x) { return py::make_tuple(2, x.device()); })
      .def_property_readonly("__cuda_array_interface__", &rb::cuda::cuda_array_interface)
      .def("__repr__", [](const DeviceArray& x) { return "DeviceArray(" + x.describe() + ")"; });

  m.def("empty", [](const std::vector<int64_t>& shape, const std::string& dtype, int device) {
    return DeviceArray::empty(shape, rb::cuda::dtype_from_name(dtype, "empty"), device, "empty");
  }, py::arg("shape"), py::arg("dtype") = "float32", py::arg("device") = 0);
  m.def("from_numpy", &rb::cuda::from_host, py::arg("array"), py::arg("device") = 0);
  m.def("from_dlpack", &rb::cuda::from_dlpack, py::arg("producer"));

  // ---- kernels ---------------------------------------------------------------------------
  // One table from names to element-wise ops; each becomes a function of 1 to 3 arrays.
  static const std::pair<const char*, Elementwise> elementwise_ops[] = {
      {"copy", Elementwise::copy}, {"neg", Elementwise::neg}, {"exp", Elementwise::exp},
      {"log", Elementwise::log}, {"tanh", Elementwise::tanh}, {"sigmoid", Elementwise::sigmoid},
      {"relu", Elementwise::relu}, {"add", Elementwise::add}, {"sub", Elementwise::sub},
      {"mul", Elementwise::mul}, {"div", Elementwise::div}, {"exp_backward", Elementwise::exp_backward},
      {"tanh_backward", Elementwise::tanh_backward}, {"sigmoid_backward", Elementwise::sigmoid_backward},
      {"log_backward", Elementwise::log_backward}, {"relu_backward", Elementwise::relu_backward},
      {"div_backward_b", Elementwise::div_backward_b},
  };
  for (const auto& [name, op] : elementwise_ops) {
    const char* op_name = name;
    const Elementwise which = op;
    switch (rb::cuda::arity(op)) {
      case 1:
        m.def(name, [which, op_name](const DeviceArray& a) { return rb::cuda::elementwise(which, {a}, op_name); });
        break;
      case 2:
        m.def(name, [which, op_name](const DeviceArray& a, const DeviceArray& b) {
          return rb::cuda::elementwise(which, {a, b}, op_name);
        });
        break;
      default:
        m.def(name, [which, op_name](const DeviceArray& a, const DeviceArray& b, const DeviceArray& c) {
          return rb::cuda::elementwise(which, {a, b, c}, op_name);
        });
    }
  }
  m.def("sum", &rb::cuda::sum, py::arg("x"), py::arg("axis"), py::arg("keepdims") = false);
  m.def("softmax", [](const DeviceArray& x) { return rb::cuda::softmax(x, false); });
  m.def("log_softmax", [](const DeviceArray& x) { return rb::cuda::softmax(x, true); });
  m.def("softmax_backward", [](const DeviceArray& dy, const DeviceArray& y) {
    return rb::cuda::softmax_backward(dy, y, false);
  });
  m.def("log_softmax_backward", [](const DeviceArray& dy, const DeviceArray& y) {
    return rb::cuda::softmax_backward(dy, y, true);
  });
  m.def("matmul", &rb::cuda::matmul, py::arg("a"), py::arg("b"));
}
