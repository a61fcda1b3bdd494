// rosenblatt._C: the CPU kernels. Each kernel family registers its own functions.
#include <pybind11/pybind11.h>

#include "bindings/arrays.h"
#include "common/bandwidth.h"
#include "common/malloc_tuning.h"
#include "common/parallel.h"
#include "dispatch/dispatch.h"

namespace py = pybind11;

namespace rb {
void bind_gemm(py::module_& m);
void bind_conv(py::module_& m);
void bind_pool(py::module_& m);
void bind_rnn(py::module_& m);
void bind_norm(py::module_& m);
void bind_optim(py::module_& m);
}  // namespace rb

PYBIND11_MODULE(_C, m) {
  m.doc() = "rosenblatt CPU kernels (AVX2/FMA with scalar references)";

  m.def("get_num_threads", &rb::get_num_threads);
  m.def("set_num_threads", [](int64_t n) {
    rb::check_thread_count("set_num_threads", n);
    rb::set_num_threads(int(n));
  });
  m.def("cpu_supports_avx2", &rb::cpu_supports_avx2);
  m.def("cpu_supports_avx512", &rb::cpu_supports_avx512, "AVX-512F, with the OS saving ZMM state.");
  m.def("avx512", &rb::avx512_active, "Whether the AVX-512 kernels (the GEMM's micro-kernel, max pooling 3x3 s2) run now.");
  m.def("set_avx512", &rb::set_avx512, py::arg("enabled"),
        "Use the AVX-512 kernels where the CPU has AVX-512F (the default), or keep the AVX2 code.");
  m.def("isa", [] { return std::string(rb::isa_name(rb::active_isa())); });
  m.def("set_isa", &rb::set_isa, py::arg("name"));
  m.def("last_impl", &rb::last_impl, py::arg("op"), "Name of the implementation the op last ran.");
  m.def(
      "recycled_empty",
      [](int64_t count, const std::string& dtype) -> py::object {
        if (count < 0) throw py::value_error("recycled_empty: count must be >= 0, got " + std::to_string(count));
        if (dtype != "float32" && dtype != "float64")
          throw py::type_error("recycled_empty: dtype must be float32 or float64, got " + dtype);
        try {
          return dtype == "float32" ? py::object(rb::recycled_array<float>({count}))
                                    : py::object(rb::recycled_array<double>({count}));
        } catch (const std::bad_alloc&) {
          rb::memory_error("recycled_empty: no memory for ", count, " elements of ", dtype);
        } catch (const std::exception& error) {  // NumPy's "array is too big" (a size past its limits)
          rb::value_error("recycled_empty: ", count, " elements of ", dtype, " are too many (", error.what(), ")");
        }
      },
      py::arg("count"), py::arg("dtype"),
      "A 1-D array of `count` elements (contents undefined) whose memory, when large, comes from the "
      "pool of freed kernel results: no fresh pages to fault in.");
  m.def(
      "copy_bandwidth",
      [](int64_t bytes, int repeats) {
        py::gil_scoped_release release;
        return rb::copy_bandwidth_gbs(bytes, repeats);
      },
      py::arg("bytes") = int64_t(64) << 20, py::arg("repeats") = 7,
      "GB/s (bytes read + written) of the fastest of memcpy, a plain loop and streaming stores copying "
      "`bytes` over the kernels' threads: the ceiling for memory-bound kernels.");
  m.def(
      "read_bandwidth",
      [](int64_t bytes, int repeats) {
        py::gil_scoped_release release;
        return rb::read_bandwidth_gbs(bytes, repeats);
      },
      py::arg("bytes") = int64_t(64) << 20, py::arg("repeats") = 7,
      "GB/s (bytes read) of summing `bytes` of floats over the kernels' threads: the ceiling for kernels "
      "that read much more than they write.");
  m.attr("compiler") = ROSENBLATT_COMPILER;
  m.attr("malloc_tuned") = rb::tune_malloc();

  rb::bind_gemm(m);
  rb::bind_conv(m);
  rb::bind_pool(m);
  rb::bind_rnn(m);
  rb::bind_norm(m);
  rb::bind_optim(m);
}
