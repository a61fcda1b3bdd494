// Python entry point: rosenblatt._C.gemm(a, b, trans_a, trans_b, alpha, beta, out)
#include "bindings/arrays.h"
#include "common/parallel.h"
#include "dispatch/dispatch.h"
#include "gemm/gemm.h"

namespace rb {

double fma_peak_flops_avx2(int threads, int64_t iterations);

namespace {

template <typename T>
py::array gemm_typed(const py::array& a, const py::array& b, bool trans_a, bool trans_b, double alpha,
                     double beta, py::object out_obj) {
  const char* op = "gemm";
  auto sa = element_strides(a, op, "a");
  auto sb = element_strides(b, op, "b");
  // op(a) is (M, K), op(b) is (K, N); a transpose swaps the strides, nothing is copied.
  const int64_t M = trans_a ? a.shape(1) : a.shape(0), Ka = trans_a ? a.shape(0) : a.shape(1);
  const int64_t Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
  if (Ka != Kb)
    value_error(op, ": shapes ", shape_str(shape_of(a)), " and ", shape_str(shape_of(b)),
                " are not aligned (trans_a=", trans_a ? "True" : "False", ", trans_b=", trans_b ? "True" : "False",
                ": inner dimensions ", Ka, " and ", Kb, ")");
  MatView<const T> A{static_cast<const T*>(a.data()), trans_a ? sa[1] : sa[0], trans_a ? sa[0] : sa[1]};
  MatView<const T> B{static_cast<const T*>(b.data()), trans_b ? sb[1] : sb[0], trans_b ? sb[0] : sb[1]};

  py::array out;
  T beta_t = T(beta);
  if (out_obj.is_none()) {
    out = recycled_array<T>({M, N});  // a large product's pages are not faulted in afresh each call
    beta_t = T(0);  // a fresh array has no old values to scale
  } else {
    out = require_ndarray(out_obj, op, "out");
    check_out(out, py::dtype::of<T>(), {M, N}, {&a, &b}, op);
  }
  auto sc = element_strides(out, op, "out");
  MatView<T> C{static_cast<T*>(out.mutable_data()), sc[0], sc[1]};
  bool out_of_memory = false;  // the packing buffers grow with K and N (a broadcast view can ask for terabytes)
  {
    py::gil_scoped_release release;
    try {
      gemm(M, N, Ka, T(alpha), A, B, beta_t, C);
    } catch (const std::bad_alloc&) {
      out_of_memory = true;
    }
  }
  if (out_of_memory)
    memory_error(op, ": no memory for the packed operands of a ", M, " x ", N, " x ", Ka, " product (shapes ",
                 shape_str(shape_of(a)), " and ", shape_str(shape_of(b)), ")");
  return out;
}

py::array gemm_entry(py::handle a_obj, py::handle b_obj, bool trans_a, bool trans_b, double alpha, double beta,
                     py::object out) {
  const char* op = "gemm";
  py::array a = require_ndarray(a_obj, op, "a");
  py::array b = require_ndarray(b_obj, op, "b");
  if (a.ndim() != 2 || b.ndim() != 2)
    value_error(op, ": expected 2-D arrays, got shapes ", shape_str(shape_of(a)), " and ", shape_str(shape_of(b)));
  if (!a.dtype().equal(b.dtype()))
    throw py::type_error(cat(op, ": dtypes differ: a is ", dtype_name(a), ", b is ", dtype_name(b),
                             " (shapes ", shape_str(shape_of(a)), " and ", shape_str(shape_of(b)), ")"));
  if (has_dtype<float>(a)) return gemm_typed<float>(a, b, trans_a, trans_b, alpha, beta, out);
  if (has_dtype<double>(a)) return gemm_typed<double>(a, b, trans_a, trans_b, alpha, beta, out);
  throw py::type_error(cat(op, ": unsupported dtype ", dtype_name(a), " (shapes ", shape_str(shape_of(a)), " and ",
                           shape_str(shape_of(b)), "); expected float32 or float64"));
}

}  // namespace

void bind_gemm(py::module_& m) {
  m.def("gemm", &gemm_entry, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("alpha") = 1.0, py::arg("beta") = 0.0, py::arg("out") = py::none(),
        "alpha * op(a) @ op(b) + beta * out for 2-D float32/float64 arrays.");
  m.def("fma_peak_gflops", [](int64_t threads, int64_t iterations) {
    if (!cpu_supports_avx2()) throw std::invalid_argument("fma_peak_gflops: this CPU has no AVX2/FMA");
    check_thread_count("fma_peak_gflops", threads);
    if (iterations < 1) throw std::invalid_argument("fma_peak_gflops: iterations must be >= 1");
    py::gil_scoped_release release;
    return fma_peak_flops_avx2(int(threads), iterations) * 1e-9;
  }, py::arg("threads"), py::arg("iterations") = 20000000,
  "Measured float32 FMA peak of this CPU in GFLOP/s (12 register-resident FMA chains per thread).");
}

}  // namespace rb
