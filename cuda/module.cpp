// rosenblatt._cuda: the CUDA backend. The runtime is linked statically, so this module
// imports on machines with no driver and simply reports no devices.
#include <pybind11/pybind11.h>

#include "device.h"

namespace py = pybind11;

PYBIND11_MODULE(_cuda, m) {
  m.doc() = "rosenblatt CUDA kernels";
  m.def("device_count", &rb::cuda::device_count);
  m.def("get_device_name", &rb::cuda::device_name, py::arg("device"));
  m.def("runtime_version", &rb::cuda::runtime_version);
}
