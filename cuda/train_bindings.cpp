// Python bindings of the training ops (train_ops.h), and the kernels' host-callable pieces (philox.h,
// train_math.h) run over NumPy arrays: tests/test_cuda_philox.py and test_cuda_train_host.py check
// them without a GPU.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "philox.h"
#include "train_kernels.h"
#include "train_math.h"
#include "train_ops.h"

namespace py = pybind11;
using rb::cuda::DeviceArray;

namespace {

template <typename T>
using Array = py::array_t<T, py::array::c_style>;

void require(bool ok, const char* op, const char* what) {
  if (!ok) throw py::value_error(std::string(op) + ": " + what);
}

template <typename T>
const T* data_or_null(const std::optional<Array<T>>& a) { return a ? a->data() : nullptr; }

// The kernels' per-element functions over host arrays of one dtype (overloads: float32, float64).
template <typename T>
void define_host_simulations(py::module_& m) {
  m.def("_sgd_step_on_host", [](Array<T> param, Array<T> grad, std::optional<Array<T>> buffer, double lr,
                                double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
                                bool first_step) {
    const char* op = "_sgd_step_on_host";
    require(grad.size() == param.size() && (!buffer || buffer->size() == param.size()), op, "sizes differ");
    require(momentum == 0 || buffer, op, "momentum needs a buffer");
    const auto s = rb::cuda::sgd_scalars<T>({lr, momentum, dampening, weight_decay, nesterov, maximize, first_step});
    T* b = buffer ? buffer->mutable_data() : nullptr;
    for (py::ssize_t i = 0; i < param.size(); ++i) rb::cuda::sgd_update<T>(i, param.mutable_data(), grad.data(), b, s);
  }, py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("buffer").noconvert(), py::arg("lr"),
     py::arg("momentum"), py::arg("dampening"), py::arg("weight_decay"), py::arg("nesterov"), py::arg("maximize"),
     py::arg("first_step"));

  m.def("_adam_step_on_host", [](Array<T> param, Array<T> grad, Array<T> exp_avg, Array<T> exp_avg_sq,
                                 std::optional<Array<T>> max_exp_avg_sq, int64_t step, double lr, double beta1,
                                 double beta2, double eps, double weight_decay, bool amsgrad, bool maximize,
                                 bool decoupled_weight_decay) {
    const char* op = "_adam_step_on_host";
    const py::ssize_t n = param.size();
    require(grad.size() == n && exp_avg.size() == n && exp_avg_sq.size() == n &&
            (!max_exp_avg_sq || max_exp_avg_sq->size() == n), op, "sizes differ");
    require(!amsgrad || max_exp_avg_sq, op, "amsgrad needs max_exp_avg_sq");
    const auto s = rb::cuda::adam_scalars<T>(
        {lr, beta1, beta2, eps, weight_decay, step, amsgrad, maximize, decoupled_weight_decay});
    T* vmax = max_exp_avg_sq ? max_exp_avg_sq->mutable_data() : nullptr;
    for (py::ssize_t i = 0; i < n; ++i)
      rb::cuda::adam_update<T>(i, param.mutable_data(), grad.data(), exp_avg.mutable_data(), exp_avg_sq.mutable_data(),
                               vmax, s);
  }, py::arg("param").noconvert(), py::arg("grad").noconvert(), py::arg("exp_avg").noconvert(),
     py::arg("exp_avg_sq").noconvert(), py::arg("max_exp_avg_sq").noconvert(), py::arg("step"), py::arg("lr"),
     py::arg("beta1"), py::arg("beta2"), py::arg("eps"), py::arg("weight_decay"), py::arg("amsgrad"),
     py::arg("maximize"), py::arg("decoupled_weight_decay"));

  // x (N, C, ...); per-channel arrays of C; sums (2 C) float64 as the backward kernels keep them.
  m.def("_batch_norm_normalize_on_host", [](Array<T> x, Array<T> mean, Array<T> invstd,
                                            std::optional<Array<T>> weight, std::optional<Array<T>> bias) {
    const char* op = "_batch_norm_normalize_on_host";
    require(x.ndim() >= 2, op, "x needs (N, C, ...)");
    const int64_t C = x.shape(1), L = C == 0 ? 0 : x.size() / (x.shape(0) * C);
    require(mean.size() == C && invstd.size() == C && (!weight || weight->size() == C) && (!bias || bias->size() == C),
            op, "per-channel sizes");
    Array<T> y(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    for (py::ssize_t e = 0; e < x.size(); ++e)
      y.mutable_data()[e] = rb::cuda::batch_norm_normalize_element<T>(e, x.data(), mean.data(), invstd.data(),
                                                                      data_or_null(weight), data_or_null(bias), C, L);
    return y;
  }, py::arg("x").noconvert(), py::arg("mean").noconvert(), py::arg("invstd").noconvert(),
     py::arg("weight").noconvert(), py::arg("bias").noconvert());
  m.def("_batch_norm_dx_on_host", [](Array<T> grad, Array<T> x, Array<T> mean, Array<T> invstd,
                                     std::optional<Array<T>> weight, bool training, Array<double> sums) {
    const char* op = "_batch_norm_dx_on_host";
    require(x.ndim() >= 2 && grad.size() == x.size(), op, "grad and x need (N, C, ...)");
    const int64_t C = x.shape(1), L = C == 0 ? 0 : x.size() / (x.shape(0) * C);
    require(mean.size() == C && invstd.size() == C && (!weight || weight->size() == C) && sums.size() == 2 * C, op,
            "per-channel sizes");
    Array<T> dx(std::vector<py::ssize_t>(x.shape(), x.shape() + x.ndim()));
    const double count = static_cast<double>(x.shape(0) * L);
    for (py::ssize_t e = 0; e < x.size(); ++e)
      dx.mutable_data()[e] = rb::cuda::batch_norm_dx_element<T>(e, grad.data(), x.data(), mean.data(), invstd.data(),
                                                                data_or_null(weight), training, sums.data(), C, L,
                                                                count);
    return dx;
  }, py::arg("grad").noconvert(), py::arg("x").noconvert(), py::arg("mean").noconvert(),
     py::arg("invstd").noconvert(), py::arg("weight").noconvert(), py::arg("training"), py::arg("sums"));
}

}  // namespace

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
  // How many chunks batch norm splits each channel's `count` elements into (one block each).
  m.def("_batch_norm_chunks", &rb::cuda::batch_norm_chunks, py::arg("C"), py::arg("count"));

  // ---- the element-wise kernels' arithmetic and index functions on the host ----
  define_host_simulations<float>(m);
  define_host_simulations<double>(m);
  // For each element of embedding's (n, dim) output, the weight element it reads (-1: bad index).
  m.def("_embedding_sources_on_host", [](Array<int64_t> indices, int64_t num, int64_t dim) {
    require(num >= 0 && dim >= 1, "_embedding_sources_on_host", "need num >= 0 and dim >= 1");
    Array<int64_t> out(indices.size() * dim);
    for (py::ssize_t e = 0; e < out.size(); ++e)
      out.mutable_data()[e] = rb::cuda::embedding_source(e, indices.data(), num, dim);
    return out;
  }, py::arg("indices"), py::arg("num"), py::arg("dim"));
  // For each target position (N * L of them), the (N, C, L) log_probs element (-1: ignored, -2: bad).
  m.def("_nll_sources_on_host", [](Array<int64_t> target, int64_t C, int64_t L, int64_t ignore_index) {
    require(L >= 1 && target.size() % L == 0, "_nll_sources_on_host", "need L >= 1 dividing the targets");
    Array<int64_t> out(target.size());
    for (py::ssize_t e = 0; e < target.size(); ++e)
      out.mutable_data()[e] = rb::cuda::nll_source(e, target.data(), C, L, ignore_index);
    return out;
  }, py::arg("target"), py::arg("C"), py::arg("L"), py::arg("ignore_index"));
}
