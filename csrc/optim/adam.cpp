// The fused Adam step (see adam.h): dispatch, and the scalar loop. This file is compiled for baseline
// x86-64, which has no FMA: no product and sum can be contracted into one rounding, so each line
// rounds as its NumPy counterpart.
#include "optim/adam.h"

#include <omp.h>

#include <cmath>
#include <type_traits>

#include "common/parallel.h"
#include "dispatch/dispatch.h"

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

template <typename T>
void adam_update(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                 const AdamScalars& s) {
  // Memory-bound: threads only for parameters large enough to be worth a fork; each takes a range.
  const int team = n > (int64_t(1) << 18) ? available_threads() : 1;
  const bool avx2 = std::is_same_v<T, float> && active_isa() == Isa::avx2;
#pragma omp parallel num_threads(team) if (team > 1)
  {
    const int64_t t = omp_get_thread_num(), threads = omp_get_num_threads();
    const int64_t i0 = n * t / threads, count = n * (t + 1) / threads - i0;
    T* max_part = max_exp_avg_sq ? max_exp_avg_sq + i0 : nullptr;
    if constexpr (std::is_same_v<T, float>) {
      if (avx2) adam_update_avx2(count, param + i0, grad + i0, exp_avg + i0, exp_avg_sq + i0, max_part, s);
    }
    if (!avx2) adam_update_ref(count, param + i0, grad + i0, exp_avg + i0, exp_avg_sq + i0, max_part, s);
  }
  record_impl("adam_update", avx2 ? "avx2" : "scalar_ref");
}

#define RB_ADAM_INSTANTIATE(T)                                                                            \
  template void adam_update<T>(int64_t, T*, const T*, T*, T*, T*, const AdamScalars&);                    \
  template void adam_update_ref<T>(int64_t, T*, const T*, T*, T*, T*, const AdamScalars&);
RB_ADAM_INSTANTIATE(float)
RB_ADAM_INSTANTIATE(double)
#undef RB_ADAM_INSTANTIATE

}  // namespace rb
