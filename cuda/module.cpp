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
#include "kernels.h"
#include "ops.h"

namespace py = pybind11;
using rb::cuda::DeviceArray;
using rb::cuda::Elementwise;

void register_train(py::module_& m);  // train_bindings.cpp
void register_rnn(py::module_& m);  // rnn_bindings.cpp
void register_tensor(py::module_& m);  // tensor_bindings.cpp
void register_conv(py::module_& m);  // conv_bindings.cpp

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
      .def_property_readonly("dtype", [](const DeviceArray& x) { return py::dtype(rb::cuda::dtype_name(x.dtype())); })
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
  register_train(m);
  register_tensor(m);
  register_conv(m);

  // The element-wise kernels' layout and offset computation run on the host: for every output
  // element, each input's offset (in elements), as the strided kernel would read it.
  m.def("_broadcast_offsets", [](const std::vector<std::vector<int64_t>>& shapes,
                                 const std::vector<std::vector<int64_t>>& strides) {
    std::vector<int64_t> shape;
    const rb::cuda::BroadcastLayout layout = rb::cuda::broadcast_layout(shapes, strides, "_broadcast_offsets", shape);
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    const auto n_in = static_cast<py::ssize_t>(shapes.size());
    py::array_t<int64_t> offsets({static_cast<py::ssize_t>(n), n_in});
    for (int64_t i = 0; i < n; ++i) rb::cuda::broadcast_offsets_on_host(layout, static_cast<int>(n_in), i, offsets.mutable_data(i, 0));
    return py::make_tuple(py::tuple(py::cast(shape)), layout.contiguous, offsets);
  });

  // The SGEMM kernel's code run on the host (tests of its indexing without a GPU). A, B and C are
  // float32 NumPy buffers addressed exactly as the kernel addresses device memory.
  m.def("_sgemm_host_simulation", [](py::array_t<float, py::array::c_style> a, py::array_t<float, py::array::c_style> b,
                                     py::array_t<float, py::array::c_style> c, int64_t m, int64_t n, int64_t k,
                                     int64_t lda, int64_t ldb, int64_t ldc, bool trans_a, bool trans_b, float alpha,
                                     float beta, int64_t batch, int64_t stride_a, int64_t stride_b, int64_t stride_c) {
    // Refuse buffers the kernel would overrun: the largest offset read or written must lie inside.
    auto need = [](int64_t rows, int64_t cols, int64_t ld, bool trans, int64_t batches, int64_t stride) {
      if (rows == 0 || cols == 0 || batches == 0) return int64_t{0};
      const int64_t last = trans ? (cols - 1) * ld + rows - 1 : (rows - 1) * ld + cols - 1;
      return (batches - 1) * stride + last + 1;
    };
    if (need(m, k, lda, trans_a, batch, stride_a) > a.size() || need(k, n, ldb, trans_b, batch, stride_b) > b.size() ||
        need(m, n, ldc, false, batch, stride_c) > c.size())
      throw py::value_error("_sgemm_host_simulation: a buffer is too small for the given sizes and strides");
    rb::cuda::GemmProblem p;
    p.a = a.data();
    p.b = b.data();
    p.c = c.mutable_data();
    p.m = m; p.n = n; p.k = k;
    p.lda = lda; p.ldb = ldb; p.ldc = ldc;
    p.trans_a = trans_a; p.trans_b = trans_b;
    p.alpha = alpha; p.beta = beta;
    p.batch = batch; p.stride_a = stride_a; p.stride_b = stride_b; p.stride_c = stride_c;
    rb::cuda::sgemm_simulated_on_host(p);
  }, py::arg("a"), py::arg("b"), py::arg("c").noconvert(), py::arg("m"), py::arg("n"), py::arg("k"), py::arg("lda"),
     py::arg("ldb"), py::arg("ldc"), py::arg("trans_a") = false, py::arg("trans_b") = false, py::arg("alpha") = 1.0f,
     py::arg("beta") = 0.0f, py::arg("batch") = 1, py::arg("stride_a") = 0, py::arg("stride_b") = 0,
     py::arg("stride_c") = 0);

  register_rnn(m);
}
