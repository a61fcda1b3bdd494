// The fused Adam step's scalar loop: the reference beside the AVX2 loop, and the float64 path. This
// file is compiled for baseline x86-64, which has no FMA: no product and sum can be contracted into
// one rounding, so each line rounds as its NumPy counterpart in optim/adam.py.
#include <cmath>
#include <cstdint>

#include "optim/adam.h"

namespace rb {

template <typename T>
void adam_update_ref(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                     const AdamScalars& s) {
  const T decay = T(s.decay), l2 = T(s.l2), beta2 = T(s.beta2), one_minus_beta2 = T(s.one_minus_beta2);
  const T bias2_sqrt = T(s.bias2_sqrt), eps = T(s.eps), step_size = T(s.step_size);
  const bool small_weight = s.lerp_weight < 0.5;  // lerp_'s two forms, as torch.lerp_
  const T weight = T(small_weight ? s.lerp_weight : 1.0 - s.lerp_weight);
  for (int64_t i = 0; i < n; ++i) {
    T p = param[i], g = grad[i];
    if (s.decay != 1.0) p = p * decay;                  // param.data *= 1 - lr * weight_decay
    if (s.l2 != 0.0) g = g + l2 * p;                    // grad = grad + weight_decay * param.data
    T m = exp_avg[i];                                   // lerp_(exp_avg, grad, 1 - beta1)
    const T difference = (g - m) * weight;
    m = small_weight ? m + difference : g - difference;
    T v = exp_avg_sq[i] * beta2 + g * one_minus_beta2 * g;  // (grad * (1 - beta2)) * grad, then added
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    if (max_exp_avg_sq) {  // np.maximum: NaN wins
      const T held = max_exp_avg_sq[i];
      v = held != held || v != v ? held + v : held >= v ? held : v;
      max_exp_avg_sq[i] = v;
    }
    const T denominator = std::sqrt(v) / bias2_sqrt + eps;
    param[i] = p - m / denominator * step_size;
  }
}

template void adam_update_ref<float>(int64_t, float*, const float*, float*, float*, float*, const AdamScalars&);
template void adam_update_ref<double>(int64_t, double*, const double*, double*, double*, double*,
                                      const AdamScalars&);

}  // namespace rb
