// The per-element arithmetic of the training kernels, `__host__ __device__`: the kernels call these
// functions on the GPU, and train_bindings.cpp runs the very same functions over NumPy arrays on the
// host (tests/test_cuda_train_host.py), so the formulas and index arithmetic are tested without a GPU.
#pragma once
#include <cuda_runtime.h>  // __host__ __device__ (empty for the host compiler)

#include <cmath>
#include <cstdint>


namespace rb::cuda {

template <typename T>
__host__ __device__ inline T sqrt_of(T x) {
#ifdef __CUDA_ARCH__
  return sqrt(x);
#else
  return std::sqrt(x);
#endif
}

// ---- optimizers ---------------------------------------------------------------------------------
// Scalars are what the CPU optimizers in python/rosenblatt/optim compute in Python (float64) and
// NumPy then rounds to the array's dtype; each kernel rounds them the same way.
struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov, maximize, first_step;  // first_step: the momentum buffer starts as the gradient
};

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  int64_t step;  // t, counted from 1 (already incremented for this update)
  bool amsgrad, maximize, decoupled_weight_decay;
};

// The hyper-parameters rounded to the array's dtype, as NumPy rounds the CPU optimizers' Python floats.
template <typename T>
struct SgdScalars {
  T lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov, maximize, first_step, use_momentum, use_weight_decay;
};

template <typename T>
SgdScalars<T> sgd_scalars(const SgdHyper& h) {
  SgdScalars<T> s;
  s.lr = static_cast<T>(h.lr);
  s.momentum = static_cast<T>(h.momentum);
  s.one_minus_dampening = static_cast<T>(1.0 - h.dampening);
  s.weight_decay = static_cast<T>(h.weight_decay);
  s.nesterov = h.nesterov;
  s.maximize = h.maximize;
  s.first_step = h.first_step;
  s.use_momentum = h.momentum != 0.0;
  s.use_weight_decay = h.weight_decay != 0.0;
  return s;
}

// torch.optim.SGD on element i (buffer may be null without momentum).
template <typename T>
__host__ __device__ inline void sgd_update(int64_t i, T* param, const T* grad, T* buffer, const SgdScalars<T>& s) {
  T g = s.maximize ? -grad[i] : grad[i];
  const T p = param[i];
  if (s.use_weight_decay) g = g + s.weight_decay * p;
  if (s.use_momentum) {
    const T b = s.first_step ? g : buffer[i] * s.momentum + s.one_minus_dampening * g;
    buffer[i] = b;
    g = s.nesterov ? g + s.momentum * b : b;
  }
  param[i] = p - s.lr * g;
}

template <typename T>
struct AdamScalars {
  T weight_decay, decay_factor;      // L2: g += weight_decay * p; decoupled: p *= decay_factor = 1 - lr * wd
  T lerp_weight, lerp_complement;    // 1 - beta1 and 1 - (1 - beta1), for torch's two-sided lerp
  bool lerp_from_start;              // lerp_weight < 0.5
  T beta2, one_minus_beta2;
  T step_size, bias_correction2_sqrt, eps;  // lr / (1 - beta1^t), sqrt(1 - beta2^t)
  bool use_weight_decay, decoupled, amsgrad, maximize;
};

template <typename T>
AdamScalars<T> adam_scalars(const AdamHyper& h) {
  const double t = static_cast<double>(h.step);
  const double lerp_weight = 1.0 - h.beta1;
  AdamScalars<T> s;
  s.weight_decay = static_cast<T>(h.weight_decay);
  s.decay_factor = static_cast<T>(1.0 - h.lr * h.weight_decay);
  s.lerp_weight = static_cast<T>(lerp_weight);
  s.lerp_complement = static_cast<T>(1.0 - lerp_weight);
  s.lerp_from_start = lerp_weight < 0.5;
  s.beta2 = static_cast<T>(h.beta2);
  s.one_minus_beta2 = static_cast<T>(1.0 - h.beta2);
  s.step_size = static_cast<T>(h.lr / (1.0 - std::pow(h.beta1, t)));
  s.bias_correction2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(h.beta2, t)));
  s.eps = static_cast<T>(h.eps);
  s.use_weight_decay = h.weight_decay != 0.0;
  s.decoupled = h.decoupled_weight_decay;
  s.amsgrad = h.amsgrad;
  s.maximize = h.maximize;
  return s;
}

template <typename T>
__host__ __device__ inline T max_nan(T a, T b) { return (a != a || b != b) ? a + b : (a > b ? a : b); }  // np.maximum

// Adam / AdamW on element i (max_exp_avg_sq may be null without amsgrad).
template <typename T>
__host__ __device__ inline void adam_update(int64_t i, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                                            T* max_exp_avg_sq, const AdamScalars<T>& s) {
  T g = s.maximize ? -grad[i] : grad[i];
  T p = param[i];
  if (s.use_weight_decay) {
    if (s.decoupled) p = p * s.decay_factor;
    else g = g + s.weight_decay * p;
  }
  T m = exp_avg[i];
  m = s.lerp_from_start ? m + s.lerp_weight * (g - m) : g - (g - m) * s.lerp_complement;
  exp_avg[i] = m;
  T v = exp_avg_sq[i] * s.beta2 + s.one_minus_beta2 * g * g;
  exp_avg_sq[i] = v;
  if (s.amsgrad) {
    v = max_nan(max_exp_avg_sq[i], v);
    max_exp_avg_sq[i] = v;
  }
  const T denominator = sqrt_of(v) / s.bias_correction2_sqrt + s.eps;
  param[i] = p - s.step_size * (m / denominator);
}

// ---- batch norm ---------------------------------------------------------------------------------
// Element k of channel c of an (N, C, L) array, k in [0, N * L): k = n * L + l.
__host__ __device__ inline int64_t channel_element(int64_t k, int64_t c, int64_t C, int64_t L) {
  const int64_t n = k / L, l = k - n * L;
  return (n * C + c) * L + l;
}

// y[e] = (x - mean) * invstd * weight + bias for element e of (N, C, L); weight, bias may be null.
template <typename T>
__host__ __device__ inline T batch_norm_normalize_element(int64_t e, const T* x, const T* mean, const T* invstd,
                                                          const T* weight, const T* bias, int64_t C, int64_t L) {
  const int64_t c = (e / L) % C;
  T v = (x[e] - mean[c]) * invstd[c];
  if (weight != nullptr) v *= weight[c];
  if (bias != nullptr) v += bias[c];
  return v;
}

// dx[e] from sums[c] = sum(g), sums[C + c] = sum(g * x_hat) over the channel's count = N * L elements.
template <typename T>
__host__ __device__ inline T batch_norm_dx_element(int64_t e, const T* grad, const T* x, const T* mean,
                                                   const T* invstd, const T* weight, bool training,
                                                   const double* sums, int64_t C, int64_t L, double count) {
  const int64_t c = (e / L) % C;
  const T scale = weight != nullptr ? invstd[c] * weight[c] : invstd[c];  // dy/dx_hat * dx_hat/dx
  T v = grad[e] * scale;
  if (training) {  // the batch statistics depend on x too: remove the projections on 1 and x_hat
    const T x_hat = (x[e] - mean[c]) * invstd[c];
    v -= x_hat * static_cast<T>(static_cast<double>(scale) * sums[C + c] / count);
    v -= static_cast<T>(static_cast<double>(scale) * sums[c] / count);
  }
  return v;
}

// ---- gathers and scatters by index ---------------------------------------------------------------
// Where element e of embedding's (n, dim) output reads the (num, dim) weight: -1 for a bad index.
__host__ __device__ inline int64_t embedding_source(int64_t e, const int64_t* indices, int64_t num, int64_t dim) {
  const int64_t i = e / dim, d = e - i * dim;
  const int64_t row = indices[i];
  return row < 0 || row >= num ? -1 : row * dim + d;
}

// Where position e = n * L + l of nll's target reads (N, C, L) log_probs: -1 when ignored, -2 when
// the target is out of [0, C).
__host__ __device__ inline int64_t nll_source(int64_t e, const int64_t* target, int64_t C, int64_t L,
                                              int64_t ignore_index) {
  const int64_t n = e / L, l = e - n * L;
  const int64_t t = target[e];
  if (t == ignore_index) return -1;
  if (t < 0 || t >= C) return -2;
  return (n * C + t) * L + l;
}

}  // namespace rb::cuda
