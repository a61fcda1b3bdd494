#include "train_ops.h"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>

#include "allocator.h"
#include "check.h"
#include "ops.h"
#include "philox.h"
#include "train_kernels.h"

namespace py = pybind11;

namespace rb::cuda {
namespace {

std::string str(const char* op) { return std::string(op) + ": "; }

void require_float(const DeviceArray& x, const char* op, const char* what) {
  if (x.dtype() == DType::int64)
    throw py::type_error(str(op) + what + " must be float32 or float64, got " + x.describe());
}

void require_int64(const DeviceArray& x, const char* op, const char* what) {
  if (x.dtype() != DType::int64) throw py::type_error(str(op) + what + " must be int64, got " + x.describe());
}

// `x` is `what`, an array like `like` (same device and dtype) of the given shape.
void require_like(const DeviceArray& x, const DeviceArray& like, const std::vector<int64_t>& shape, const char* op,
                  const char* what) {
  if (x.device() != like.device())
    throw py::value_error(str(op) + what + " " + x.describe() + " is on another device than " + like.describe());
  if (x.dtype() != like.dtype())
    throw py::type_error(str(op) + what + " " + x.describe() + " does not have the dtype of " + like.describe());
  if (x.shape() != shape)
    throw py::value_error(str(op) + what + " " + x.describe() + " should have shape " + shape_str(shape));
}

// An array updated in place: it must be writable and C-contiguous (the kernels index it flat).
void require_writable(const DeviceArray& x, const char* op, const char* what) {
  if (x.read_only()) throw py::value_error(str(op) + what + " " + x.describe() + " is read-only");
  if (!x.is_contiguous())
    throw py::value_error(str(op) + what + " " + x.describe() + " must be C-contiguous to be updated in place");
}

template <class F>
void dispatch_float(DType dtype, F&& f) {
  if (dtype == DType::float32) f(static_cast<float*>(nullptr));
  else f(static_cast<double*>(nullptr));
}

template <typename T>
T* ptr(const DeviceArray& x) { return static_cast<T*>(x.data()); }
template <typename T>
T* ptr(const std::optional<DeviceArray>& x) { return x ? static_cast<T*>(x->data()) : nullptr; }

std::optional<DeviceArray> contiguous_or_none(const std::optional<DeviceArray>& x) {
  return x ? std::optional<DeviceArray>(contiguous(*x)) : std::nullopt;
}

int64_t product(const std::vector<int64_t>& shape, std::size_t from = 0) {
  int64_t n = 1;
  for (std::size_t d = from; d < shape.size(); ++d) n *= shape[d];
  return n;
}

// Two zeroed device words the index-checking kernels raise when they meet a bad index (never
// reading through it): flag[0] = 1, flag[1] = one bad index. `bad()` waits for the stream once.
class BadIndexFlag {
 public:
  BadIndexFlag(int device, cudaStream_t stream, const char* op)
      : flag_(DeviceArray::empty({2}, DType::int64, device, op)), stream_(stream), op_(op) {
    RB_CUDA_CHECK(op, cudaMemsetAsync(flag_.data(), 0, 2 * sizeof(int64_t), stream));
  }
  unsigned long long* data() const { return static_cast<unsigned long long*>(flag_.data()); }
  std::optional<int64_t> bad() const {
    int64_t host[2] = {0, 0};
    RB_CUDA_CHECK(op_, cudaMemcpyAsync(host, flag_.data(), sizeof(host), cudaMemcpyDeviceToHost, stream_));
    {
      py::gil_scoped_release no_gil;
      RB_CUDA_CHECK(op_, cudaStreamSynchronize(stream_));
    }
    if (host[0] == 0) return std::nullopt;
    return host[1];
  }

 private:
  DeviceArray flag_;
  cudaStream_t stream_;
  const char* op_;
};

}  // namespace

// ---- dropout -----------------------------------------------------------------------------------------
DeviceArray dropout(const DeviceArray& x, double p, uint64_t seed, uint64_t offset, int64_t plane, const char* op) {
  require_float(x, op, "input");
  if (!(p >= 0.0 && p <= 1.0))
    throw py::value_error(str(op) + "probability has to be between 0 and 1, but got " + std::to_string(p) +
                          " (input " + x.describe() + ")");
  const int64_t n = x.numel();
  if (plane < 1 || n % plane != 0)
    throw py::value_error(str(op) + "plane " + std::to_string(plane) + " must be positive and divide the " +
                          std::to_string(n) + " elements of " + x.describe());
  const DeviceArray xc = contiguous(x);
  DeviceArray out = DeviceArray::empty(x.shape(), x.dtype(), x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  const uint32_t threshold = dropout_threshold(p);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    // As the CPU version: kept elements are multiplied by 1 / (1 - p) in the array's dtype; p = 1 keeps none.
    const T scale = p < 1.0 ? T(1) / static_cast<T>(1.0 - p) : T(0);
    dropout_apply<T>(ptr<T>(xc), ptr<T>(out), n, plane, threshold, scale, seed, offset, s);
  });
  return out;
}

// ---- embedding -----------------------------------------------------------------------------------------
DeviceArray embedding_forward(const DeviceArray& weight, const DeviceArray& indices) {
  const char* op = "embedding_forward";
  require_float(weight, op, "weight");
  require_int64(indices, op, "indices");
  if (weight.ndim() != 2)
    throw py::value_error(str(op) + "weight must be 2-D (num_embeddings, dim), got " + weight.describe());
  if (indices.device() != weight.device())
    throw py::value_error(str(op) + "indices " + indices.describe() + " and weight " + weight.describe() +
                          " are on different devices");
  const int64_t num = weight.shape()[0], dim = weight.shape()[1], n = indices.numel();
  std::vector<int64_t> shape = indices.shape();
  shape.push_back(dim);
  const DeviceArray wc = contiguous(weight), ic = contiguous(indices);
  DeviceArray out = DeviceArray::empty(shape, weight.dtype(), weight.device(), op);
  if (n * dim == 0) return out;
  DeviceGuard guard(weight.device(), op);
  cudaStream_t s = stream(weight.device(), op);
  BadIndexFlag flag(weight.device(), s, op);
  dispatch_float(weight.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    embedding_gather<T>(ptr<T>(wc), ptr<int64_t>(ic), ptr<T>(out), n, num, dim, flag.data(), s);
  });
  if (const auto bad = flag.bad())
    throw py::index_error(str(op) + "index " + std::to_string(*bad) + " is out of range [0, " + std::to_string(num) +
                          ") in indices " + indices.describe() + "; weight is " + weight.describe());
  return out;
}

DeviceArray embedding_backward(const DeviceArray& grad, const DeviceArray& indices, int64_t num_embeddings,
                               std::optional<int64_t> padding_idx) {
  const char* op = "embedding_backward";
  require_float(grad, op, "grad");
  require_int64(indices, op, "indices");
  if (num_embeddings < 0)
    throw py::value_error(str(op) + "num_embeddings must be >= 0, got " + std::to_string(num_embeddings));
  if (grad.ndim() != indices.ndim() + 1 ||
      !std::equal(indices.shape().begin(), indices.shape().end(), grad.shape().begin()))
    throw py::value_error(str(op) + "grad " + grad.describe() + " should have shape indices.shape + (dim,), indices " +
                          indices.describe());
  if (indices.device() != grad.device())
    throw py::value_error(str(op) + "indices " + indices.describe() + " and grad " + grad.describe() +
                          " are on different devices");
  int64_t pad = -1;
  if (padding_idx) {
    pad = *padding_idx < 0 ? *padding_idx + num_embeddings : *padding_idx;
    if (pad < 0 || pad >= num_embeddings)
      throw py::value_error(str(op) + "padding_idx " + std::to_string(*padding_idx) + " is out of range for " +
                            std::to_string(num_embeddings) + " embeddings");
  }
  const int64_t dim = grad.shape().back(), n = indices.numel();
  DeviceArray out = DeviceArray::empty({num_embeddings, dim}, grad.dtype(), grad.device(), op);
  DeviceGuard guard(grad.device(), op);
  cudaStream_t s = stream(grad.device(), op);
  if (out.numel() > 0)
    RB_CUDA_CHECK(op, cudaMemsetAsync(out.data(), 0, static_cast<std::size_t>(out.numel()) * itemsize(out.dtype()), s));
  if (n * dim == 0) return out;
  const DeviceArray gc = contiguous(grad), ic = contiguous(indices);
  BadIndexFlag flag(grad.device(), s, op);
  dispatch_float(grad.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    embedding_scatter_add<T>(ptr<T>(gc), ptr<int64_t>(ic), ptr<T>(out), n, num_embeddings, dim, pad, flag.data(), s);
  });
  if (const auto bad = flag.bad())
    throw py::index_error(str(op) + "index " + std::to_string(*bad) + " is out of range [0, " +
                          std::to_string(num_embeddings) + ") in indices " + indices.describe());
  return out;
}

// ---- batch norm ----------------------------------------------------------------------------------------
namespace {

// x as (N, C, L), each per-channel array checked to be (C,) of x's dtype on x's device.
struct ChannelLayout {
  int64_t N, C, L;
};

ChannelLayout channel_layout(const DeviceArray& x, const char* op) {
  require_float(x, op, "input");
  if (x.ndim() < 2)
    throw py::value_error(str(op) + "expected an input with at least 2 dims (N, C, ...), got " + x.describe());
  return ChannelLayout{x.shape()[0], x.shape()[1], product(x.shape(), 2)};
}

void require_channel(const std::optional<DeviceArray>& v, const DeviceArray& x, const char* op, const char* what) {
  if (v) require_like(*v, x, {x.shape()[1]}, op, what);
}

}  // namespace

std::tuple<DeviceArray, DeviceArray, DeviceArray> batch_norm_forward(
    const DeviceArray& x, const std::optional<DeviceArray>& weight, const std::optional<DeviceArray>& bias,
    const std::optional<DeviceArray>& running_mean, const std::optional<DeviceArray>& running_var, bool training,
    double momentum, double eps) {
  const char* op = "batch_norm_forward";
  const ChannelLayout c = channel_layout(x, op);
  require_channel(weight, x, op, "weight");
  require_channel(bias, x, op, "bias");
  require_channel(running_mean, x, op, "running_mean");
  require_channel(running_var, x, op, "running_var");
  if (training) {
    if (c.N * c.L <= 1)
      throw py::value_error(str(op) + "expected more than 1 value per channel when training, got input " +
                            x.describe());
    if (running_mean) require_writable(*running_mean, op, "running_mean");
    if (running_var) require_writable(*running_var, op, "running_var");
  } else if (!running_mean || !running_var) {
    throw py::value_error(str(op) + "running_mean and running_var are needed in evaluation mode (input " +
                          x.describe() + ")");
  }
  if (!(eps >= 0.0)) throw py::value_error(str(op) + "eps must be >= 0, got " + std::to_string(eps));
  const DeviceArray xc = contiguous(x);
  const std::optional<DeviceArray> wc = contiguous_or_none(weight), bc = contiguous_or_none(bias);
  // Evaluation only reads the running stats: a strided view is copied. (Training requires them contiguous.)
  const std::optional<DeviceArray> rm = contiguous_or_none(running_mean), rv = contiguous_or_none(running_var);
  DeviceArray y = DeviceArray::empty(x.shape(), x.dtype(), x.device(), op);
  DeviceArray mean = DeviceArray::empty({c.C}, x.dtype(), x.device(), op);
  DeviceArray invstd = DeviceArray::empty({c.C}, x.dtype(), x.device(), op);
  DeviceArray scratch = DeviceArray::empty({batch_norm_scratch_size(c.C, c.N * c.L)}, DType::float64, x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    batch_norm_stats<T>(ptr<T>(xc), c.N, c.C, c.L, training, momentum, eps, ptr<T>(rm), ptr<T>(rv), ptr<T>(mean),
                        ptr<T>(invstd), ptr<double>(scratch), s);
    batch_norm_normalize<T>(ptr<T>(xc), ptr<T>(mean), ptr<T>(invstd), ptr<T>(wc), ptr<T>(bc), ptr<T>(y), c.N, c.C,
                            c.L, s);
  });
  return {y, mean, invstd};
}

std::tuple<DeviceArray, DeviceArray, DeviceArray> batch_norm_backward(const DeviceArray& grad, const DeviceArray& x,
                                                                      const std::optional<DeviceArray>& weight,
                                                                      const DeviceArray& save_mean,
                                                                      const DeviceArray& save_invstd, bool training) {
  const char* op = "batch_norm_backward";
  const ChannelLayout c = channel_layout(x, op);
  require_like(grad, x, x.shape(), op, "grad");
  require_channel(weight, x, op, "weight");
  require_like(save_mean, x, {c.C}, op, "save_mean");
  require_like(save_invstd, x, {c.C}, op, "save_invstd");
  const DeviceArray gc = contiguous(grad), xc = contiguous(x), mc = contiguous(save_mean), sc = contiguous(save_invstd);
  const std::optional<DeviceArray> wc = contiguous_or_none(weight);
  DeviceArray dx = DeviceArray::empty(x.shape(), x.dtype(), x.device(), op);
  DeviceArray dweight = DeviceArray::empty({c.C}, x.dtype(), x.device(), op);
  DeviceArray dbias = DeviceArray::empty({c.C}, x.dtype(), x.device(), op);
  DeviceArray scratch = DeviceArray::empty({batch_norm_scratch_size(c.C, c.N * c.L)}, DType::float64, x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    batch_norm_grads<T>(ptr<T>(gc), ptr<T>(xc), ptr<T>(mc), ptr<T>(sc), ptr<T>(wc), training, ptr<T>(dx),
                        ptr<T>(dweight), ptr<T>(dbias), ptr<double>(scratch), c.N, c.C, c.L, s);
  });
  return {dx, dweight, dbias};
}

// ---- optimizers ------------------------------------------------------------------------------------------
namespace {

// The gradient of `param`, C-contiguous (copied when it is a strided view).
DeviceArray checked_grad(const DeviceArray& param, const DeviceArray& grad, const char* op) {
  require_float(param, op, "param");
  require_writable(param, op, "param");
  require_like(grad, param, param.shape(), op, "grad");
  return contiguous(grad);
}

void require_state(const DeviceArray& state, const DeviceArray& param, const char* op, const char* what) {
  require_like(state, param, param.shape(), op, what);
  require_writable(state, op, what);
}

void require_number(bool valid, const char* op, const char* what, double value) {
  if (!valid) throw py::value_error(str(op) + "invalid " + what + ": " + std::to_string(value));
}

}  // namespace

void sgd_step_(const DeviceArray& param, const DeviceArray& grad, const std::optional<DeviceArray>& momentum_buffer,
               double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
               bool first_step) {
  const char* op = "sgd_step_";
  const DeviceArray gc = checked_grad(param, grad, op);
  require_number(lr >= 0, op, "learning rate", lr);
  require_number(momentum >= 0, op, "momentum", momentum);
  require_number(weight_decay >= 0, op, "weight_decay", weight_decay);
  if (nesterov && (momentum <= 0 || dampening != 0))
    throw py::value_error(str(op) + "Nesterov momentum requires a momentum and zero dampening, got momentum=" +
                          std::to_string(momentum) + ", dampening=" + std::to_string(dampening));
  if (momentum != 0) {
    if (!momentum_buffer)
      throw py::value_error(str(op) + "momentum " + std::to_string(momentum) + " needs a momentum_buffer");
    require_state(*momentum_buffer, param, op, "momentum_buffer");
  }
  const SgdHyper h{lr, momentum, dampening, weight_decay, nesterov, maximize, first_step};
  DeviceGuard guard(param.device(), op);
  cudaStream_t s = stream(param.device(), op);
  dispatch_float(param.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    sgd_step<T>(ptr<T>(param), ptr<T>(gc), momentum != 0 ? ptr<T>(momentum_buffer) : nullptr, param.numel(), h, s);
  });
}

void adam_step_(const DeviceArray& param, const DeviceArray& grad, const DeviceArray& exp_avg,
                const DeviceArray& exp_avg_sq, const std::optional<DeviceArray>& max_exp_avg_sq, int64_t step,
                double lr, double beta1, double beta2, double eps, double weight_decay, bool amsgrad, bool maximize,
                bool decoupled_weight_decay) {
  const char* op = "adam_step_";
  const DeviceArray gc = checked_grad(param, grad, op);
  require_state(exp_avg, param, op, "exp_avg");
  require_state(exp_avg_sq, param, op, "exp_avg_sq");
  if (amsgrad) {
    if (!max_exp_avg_sq) throw py::value_error(str(op) + "amsgrad needs max_exp_avg_sq");
    require_state(*max_exp_avg_sq, param, op, "max_exp_avg_sq");
  }
  if (step < 1) throw py::value_error(str(op) + "step counts from 1, got " + std::to_string(step));
  require_number(lr >= 0, op, "learning rate", lr);
  require_number(eps >= 0, op, "epsilon value", eps);
  require_number(beta1 >= 0 && beta1 < 1, op, "beta parameter at index 0", beta1);
  require_number(beta2 >= 0 && beta2 < 1, op, "beta parameter at index 1", beta2);
  require_number(weight_decay >= 0, op, "weight_decay value", weight_decay);
  const AdamHyper h{lr, beta1, beta2, eps, weight_decay, step, amsgrad, maximize, decoupled_weight_decay};
  DeviceGuard guard(param.device(), op);
  cudaStream_t s = stream(param.device(), op);
  dispatch_float(param.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    adam_step<T>(ptr<T>(param), ptr<T>(gc), ptr<T>(exp_avg), ptr<T>(exp_avg_sq),
                 amsgrad ? ptr<T>(max_exp_avg_sq) : nullptr, param.numel(), h, s);
  });
}

// ---- gradient norms and scaling -----------------------------------------------------------------------------
DeviceArray grad_norm(const std::vector<DeviceArray>& arrays, double norm_type) {
  const char* op = "grad_norm";
  if (arrays.empty()) throw py::value_error(str(op) + "expected at least one array");
  if (!(norm_type > 0))
    throw py::value_error(str(op) + "norm_type must be positive or inf, got " + std::to_string(norm_type));
  const int device = arrays[0].device();
  for (const DeviceArray& a : arrays) {
    require_float(a, op, "each array");
    if (a.device() != device)
      throw py::value_error(str(op) + "arrays on different devices: " + arrays[0].describe() + " and " + a.describe());
  }
  DeviceArray partials = DeviceArray::empty({kNormPartials}, DType::float64, device, op);
  DeviceArray out = DeviceArray::empty({}, DType::float32, device, op);
  DeviceGuard guard(device, op);
  cudaStream_t s = stream(device, op);
  RB_CUDA_CHECK(op, cudaMemsetAsync(partials.data(), 0, kNormPartials * sizeof(double), s));
  for (const DeviceArray& a : arrays) {
    const DeviceArray ac = contiguous(a);
    dispatch_float(a.dtype(), [&](auto* type) {
      using T = std::remove_pointer_t<decltype(type)>;
      norm_partials<T>(ptr<T>(ac), a.numel(), norm_type, ptr<double>(partials), s);
    });
  }
  norm_finish(ptr<double>(partials), kNormPartials, norm_type, ptr<float>(out), s);
  return out;
}

void clip_by_total_norm_(const std::vector<DeviceArray>& arrays, const DeviceArray& total_norm, double max_norm) {
  const char* op = "clip_by_total_norm_";
  if (total_norm.dtype() != DType::float32 || total_norm.numel() != 1)
    throw py::type_error(str(op) + "total_norm must be one float32 number (grad_norm's result), got " +
                         total_norm.describe());
  for (const DeviceArray& a : arrays) {
    require_float(a, op, "each array");
    require_writable(a, op, "each array");
    if (a.device() != total_norm.device())
      throw py::value_error(str(op) + a.describe() + " is on another device than total_norm " + total_norm.describe());
  }
  DeviceGuard guard(total_norm.device(), op);
  cudaStream_t s = stream(total_norm.device(), op);
  for (const DeviceArray& a : arrays) {
    dispatch_float(a.dtype(), [&](auto* type) {
      using T = std::remove_pointer_t<decltype(type)>;
      clip_scale_inplace<T>(ptr<T>(a), a.numel(), ptr<float>(total_norm), max_norm, s);
    });
  }
}

void scale_(const DeviceArray& x, double factor) {
  const char* op = "scale_";
  require_float(x, op, "x");
  require_writable(x, op, "x");
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    scale_inplace<T>(ptr<T>(x), x.numel(), factor, s);
  });
}

// ---- nll / cross-entropy pieces -------------------------------------------------------------------------------
namespace {

// log_probs (N, C, d1, ...) with target (N, d1, ...), or (C,) with a 0-d target, as (N, C, L).
ChannelLayout class_layout(const std::vector<int64_t>& scores_shape, const DeviceArray& target, const char* op,
                           const std::string& scores) {
  require_int64(target, op, "target");
  std::vector<int64_t> expected;
  ChannelLayout c{1, 0, 1};
  if (scores_shape.size() == 1) {
    c.C = scores_shape[0];
  } else if (scores_shape.size() >= 2) {
    c = ChannelLayout{scores_shape[0], scores_shape[1], product(scores_shape, 2)};
    expected.push_back(scores_shape[0]);
    expected.insert(expected.end(), scores_shape.begin() + 2, scores_shape.end());
  }
  if (scores_shape.empty() || target.shape() != expected)
    throw py::value_error(str(op) + scores + " of shape " + shape_str(scores_shape) + " and target " +
                          target.describe() + " do not match (expected target shape " + shape_str(expected) +
                          " for (N, C, d1, ...) or (C,))");
  return c;
}

}  // namespace

std::pair<DeviceArray, DeviceArray> nll_gather(const DeviceArray& log_probs, const DeviceArray& target,
                                               const std::optional<DeviceArray>& weight, int64_t ignore_index) {
  const char* op = "nll_gather";
  require_float(log_probs, op, "log_probs");
  const ChannelLayout c = class_layout(log_probs.shape(), target, op, "log_probs");
  if (target.device() != log_probs.device())
    throw py::value_error(str(op) + "target " + target.describe() + " and log_probs " + log_probs.describe() +
                          " are on different devices");
  if (weight) require_like(*weight, log_probs, {c.C}, op, "weight");
  const DeviceArray lc = contiguous(log_probs), tc = contiguous(target);
  const std::optional<DeviceArray> wc = contiguous_or_none(weight);
  DeviceArray picked = DeviceArray::empty(target.shape(), log_probs.dtype(), log_probs.device(), op);
  DeviceArray element_weight = DeviceArray::empty(target.shape(), log_probs.dtype(), log_probs.device(), op);
  if (c.N * c.L == 0) return {picked, element_weight};
  DeviceGuard guard(log_probs.device(), op);
  cudaStream_t s = stream(log_probs.device(), op);
  BadIndexFlag flag(log_probs.device(), s, op);
  dispatch_float(log_probs.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    gather_targets<T>(ptr<T>(lc), ptr<int64_t>(tc), ptr<T>(wc), ptr<T>(picked), ptr<T>(element_weight), c.N, c.C, c.L,
                      ignore_index, flag.data(), s);
  });
  if (const auto bad = flag.bad())
    throw py::index_error(str(op) + "target " + std::to_string(*bad) + " is out of bounds for " + std::to_string(c.C) +
                          " classes (log_probs " + log_probs.describe() + ")");
  return {picked, element_weight};
}

DeviceArray nll_scatter(const DeviceArray& coef, const DeviceArray& target, int64_t num_classes, int64_t ignore_index) {
  const char* op = "nll_scatter";
  require_float(coef, op, "coef");
  if (num_classes < 0) throw py::value_error(str(op) + "num_classes must be >= 0, got " + std::to_string(num_classes));
  std::vector<int64_t> shape = target.shape();
  shape.insert(shape.begin() + (shape.empty() ? 0 : 1), num_classes);
  const ChannelLayout c = class_layout(shape, target, op, "the gradient");
  if (coef.shape() != target.shape() || coef.device() != target.device())
    throw py::value_error(str(op) + "coef " + coef.describe() + " should match target " + target.describe());
  DeviceArray out = DeviceArray::empty(shape, coef.dtype(), coef.device(), op);
  DeviceGuard guard(coef.device(), op);
  cudaStream_t s = stream(coef.device(), op);
  if (out.numel() > 0)
    RB_CUDA_CHECK(op, cudaMemsetAsync(out.data(), 0, static_cast<std::size_t>(out.numel()) * itemsize(out.dtype()), s));
  if (c.N * c.L == 0) return out;
  const DeviceArray cc = contiguous(coef), tc = contiguous(target);
  BadIndexFlag flag(coef.device(), s, op);
  dispatch_float(coef.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    scatter_targets<T>(ptr<T>(cc), ptr<int64_t>(tc), ptr<T>(out), c.N, c.C, c.L, ignore_index, flag.data(), s);
  });
  if (const auto bad = flag.bad())
    throw py::index_error(str(op) + "target " + std::to_string(*bad) + " is out of bounds for " +
                          std::to_string(num_classes) + " classes (target " + target.describe() + ")");
  return out;
}

std::pair<DeviceArray, DeviceArray> max_last_axis(const DeviceArray& x) {
  const char* op = "max_last_axis";
  require_float(x, op, "x");
  if (x.ndim() == 0) throw py::value_error(str(op) + "expected at least one dimension, got " + x.describe());
  const int64_t n = x.shape().back();
  std::vector<int64_t> shape(x.shape().begin(), x.shape().end() - 1);
  const int64_t rows = product(shape);
  if (n == 0 && rows > 0)
    throw py::value_error(str(op) + "the last axis of " + x.describe() + " is empty: no maximum");
  const DeviceArray xc = contiguous(x);
  DeviceArray values = DeviceArray::empty(shape, x.dtype(), x.device(), op);
  DeviceArray indices = DeviceArray::empty(shape, DType::int64, x.device(), op);
  DeviceGuard guard(x.device(), op);
  cudaStream_t s = stream(x.device(), op);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    max_rows<T>(ptr<T>(xc), ptr<T>(values), ptr<int64_t>(indices), rows, n, s);
  });
  return {values, indices};
}

}  // namespace rb::cuda
