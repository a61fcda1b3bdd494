// The fused Adam step's AVX2 loop (float32), 8 elements at a time: adam_update_ref's operations in
// its order, each rounded once. GCC contracts a * b + c into an FMA by default (also in vector
// intrinsics, which are plain vector arithmetic to it), and an FMA rounds once where NumPy rounds
// twice: contraction is off for this file, so the results keep the NumPy update's bits.
// No standard-library templates here (this file is compiled with -mavx2 -mfma).
#pragma GCC optimize("fp-contract=off")
#include <immintrin.h>

#include "optim/adam.h"

namespace rb {

void adam_update_avx2(int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                      float* max_exp_avg_sq, const AdamScalars& s) {
  const __m256 decay = _mm256_set1_ps(float(s.decay)), l2 = _mm256_set1_ps(float(s.l2));
  const __m256 beta2 = _mm256_set1_ps(float(s.beta2)), one_minus_beta2 = _mm256_set1_ps(float(s.one_minus_beta2));
  const __m256 bias2_sqrt = _mm256_set1_ps(float(s.bias2_sqrt)), eps = _mm256_set1_ps(float(s.eps));
  const __m256 step_size = _mm256_set1_ps(float(s.step_size));
  const bool small_weight = s.lerp_weight < 0.5;
  const __m256 weight = _mm256_set1_ps(float(small_weight ? s.lerp_weight : 1.0 - s.lerp_weight));
  const bool decayed = s.decay != 1.0, penalized = s.l2 != 0.0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 p = _mm256_loadu_ps(param + i), g = _mm256_loadu_ps(grad + i), m = _mm256_loadu_ps(exp_avg + i);
    if (decayed) p = _mm256_mul_ps(p, decay);
    if (penalized) g = _mm256_add_ps(g, _mm256_mul_ps(l2, p));
    const __m256 difference = _mm256_mul_ps(_mm256_sub_ps(g, m), weight);
    m = small_weight ? _mm256_add_ps(m, difference) : _mm256_sub_ps(g, difference);
    __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(exp_avg_sq + i), beta2),
                             _mm256_mul_ps(_mm256_mul_ps(g, one_minus_beta2), g));
    _mm256_storeu_ps(exp_avg + i, m);
    _mm256_storeu_ps(exp_avg_sq + i, v);
    if (max_exp_avg_sq) {  // np.maximum: NaN wins (held + v is NaN where either is)
      const __m256 held = _mm256_loadu_ps(max_exp_avg_sq + i);
      const __m256 either_nan = _mm256_cmp_ps(held, v, _CMP_UNORD_Q);
      const __m256 larger = _mm256_blendv_ps(v, held, _mm256_cmp_ps(held, v, _CMP_GE_OQ));
      v = _mm256_blendv_ps(larger, _mm256_add_ps(held, v), either_nan);
      _mm256_storeu_ps(max_exp_avg_sq + i, v);
    }
    const __m256 denominator = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(v), bias2_sqrt), eps);
    _mm256_storeu_ps(param + i, _mm256_sub_ps(p, _mm256_mul_ps(_mm256_div_ps(m, denominator), step_size)));
  }
  if (i < n)
    adam_update_ref<float>(n - i, param + i, grad + i, exp_avg + i, exp_avg_sq + i,
                           max_exp_avg_sq ? max_exp_avg_sq + i : nullptr, s);
}

}  // namespace rb
