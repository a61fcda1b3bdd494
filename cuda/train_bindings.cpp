// Python bindings of the training ops (train_ops.h) and of the host-callable pieces of the dropout
// random numbers, which tests/test_cuda_philox.py checks without a GPU.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>

#include "philox.h"
#include "train_ops.h"

namespace py = pybind11;
using rb::cuda::DeviceArray;

void register_train(py::module_& m) {
  m.def("dropout_forward", [](const DeviceArray& x, double p, uint64_t seed, uint64_t offset, int64_t plane) {
    return rb::cuda::dropout(x, p, seed, offset, plane, "dropout_forward");
  }, py::arg("x"), py::arg("p"), py::arg("seed"), py::arg("offset") = 0, py::arg("plane") = 1);
  m.def("dropout_backward", [](const DeviceArray& grad, double p, uint64_t seed, uint64_t offset, int64_t plane) {
    return rb::cuda::dropout(grad, p, seed, offset, plane, "dropout_backward");
  }, py::arg("grad"), py::arg("p"), py::arg("seed"), py::arg("offset") = 0, py::arg("plane") = 1);

  m.def("embedding_forward", &rb::cuda::embedding_forward, py::arg("weight"), py::arg("indices"));
  m.def("embedding_backward", &rb::cuda::embedding_backward, py::arg("grad"), py::arg("indices"),
        py::arg("num_embeddings"), py::arg("padding_idx") = py::none());

  m.def("batch_norm_forward", &rb::cuda::batch_norm_forward, py::arg("x"), py::arg("weight") = py::none(),
        py::arg("bias") = py::none(), py::arg("running_mean") = py::none(), py::arg("running_var") = py::none(),
        py::arg("training") = false, py::arg("momentum") = 0.1, py::arg("eps") = 1e-5);
  m.def("batch_norm_backward", &rb::cuda::batch_norm_backward, py::arg("grad"), py::arg("x"), py::arg("weight"),
        py::arg("save_mean"), py::arg("save_invstd"), py::arg("training"));

  m.def("sgd_step_", &rb::cuda::sgd_step_, py::arg("param"), py::arg("grad"), py::arg("momentum_buffer") = py::none(),
        py::kw_only(), py::arg("lr"), py::arg("momentum") = 0.0, py::arg("dampening") = 0.0,
        py::arg("weight_decay") = 0.0, py::arg("nesterov") = false, py::arg("maximize") = false,
        py::arg("first_step") = false);
  m.def("adam_step_", &rb::cuda::adam_step_, py::arg("param"), py::arg("grad"), py::arg("exp_avg"),
        py::arg("exp_avg_sq"), py::arg("max_exp_avg_sq") = py::none(), py::kw_only(), py::arg("step"), py::arg("lr"),
        py::arg("beta1") = 0.9, py::arg("beta2") = 0.999, py::arg("eps") = 1e-8, py::arg("weight_decay") = 0.0,
        py::arg("amsgrad") = false, py::arg("maximize") = false, py::arg("decoupled_weight_decay") = false);
  m.def("grad_norm", &rb::cuda::grad_norm, py::arg("arrays"), py::arg("norm_type") = 2.0);
  m.def("clip_by_total_norm_", &rb::cuda::clip_by_total_norm_, py::arg("arrays"), py::arg("total_norm"),
        py::arg("max_norm"));
  m.def("scale_", &rb::cuda::scale_, py::arg("x"), py::arg("factor"));

  m.def("nll_gather", &rb::cuda::nll_gather, py::arg("log_probs"), py::arg("target"), py::arg("weight") = py::none(),
        py::arg("ignore_index") = -100);
  m.def("nll_scatter", &rb::cuda::nll_scatter, py::arg("coef"), py::arg("target"), py::arg("num_classes"),
        py::arg("ignore_index") = -100);
  m.def("max_last_axis", &rb::cuda::max_last_axis, py::arg("x"));

  // ---- the random numbers on the host (tests without a GPU) ----
  m.def("_philox4x32_10", [](std::array<uint32_t, 4> counter, std::array<uint32_t, 2> key) {
    const rb::cuda::Philox4 out =
        rb::cuda::philox4x32_10(rb::cuda::Philox4{{counter[0], counter[1], counter[2], counter[3]}}, key[0], key[1]);
    return py::make_tuple(out.v[0], out.v[1], out.v[2], out.v[3]);
  }, py::arg("counter"), py::arg("key"));
  // Which of n elements dropout keeps, by the device code's own function, and its threshold.
  m.def("_dropout_keep_on_host", [](int64_t n, double p, uint64_t seed, uint64_t offset, int64_t plane) {
    if (n < 0 || plane < 1 || !(p >= 0.0 && p <= 1.0))
      throw py::value_error("_dropout_keep_on_host: need n >= 0, plane >= 1 and p in [0, 1]");
    const uint32_t threshold = rb::cuda::dropout_threshold(p);
    py::array_t<bool> keep(static_cast<py::ssize_t>(n));
    bool* k = keep.mutable_data();
    for (int64_t i = 0; i < n; ++i) k[i] = rb::cuda::dropout_element_keeps(i, plane, threshold, seed, offset);
    return keep;
  }, py::arg("n"), py::arg("p"), py::arg("seed"), py::arg("offset") = 0, py::arg("plane") = 1);
  m.def("_dropout_threshold", &rb::cuda::dropout_threshold, py::arg("p"));
}
