// One Adam / AdamW step of a parameter, fused into one pass over its elements.
//
// Bit for bit the NumPy update of python/rosenblatt/optim/adam.py (the spec, and the path for
// device arrays): the same operations in the same order, each rounded to T, with every scalar
// rounded to T first, as NumPy does with a Python float and an array of T. The caller computes the
// scalars in double precision, exactly as adam.py writes them.
#pragma once
#include <cstdint>

namespace rb {

struct AdamScalars {
  double decay;          // decoupled weight decay: p *= decay (1 - lr * weight_decay); 1: none
  double l2;             // L2 weight decay folded into the gradient: g = g + l2 * p; 0: none
  double lerp_weight;    // 1 - beta1: exp_avg moves toward g by this weight (torch.lerp_'s rounding)
  double one_minus_beta2, beta2;
  double bias2_sqrt;     // sqrt(1 - beta2^step)
  double eps;
  double step_size;      // lr / (1 - beta1^step)
};

// param, exp_avg, exp_avg_sq (and max_exp_avg_sq with amsgrad, else null) updated in place; n elements
// each (adam.cpp: threads over chunks; the AVX2 loop for float32 where active, else the scalar loop).
template <typename T>
void adam_update(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                 const AdamScalars& s);

// The scalar loop (adam_ref.cpp), the reference, and the AVX2 loop (adam_avx2.cpp) over elements [0, n).
template <typename T>
void adam_update_ref(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
                     const AdamScalars& s);
void adam_update_avx2(int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                      float* max_exp_avg_sq, const AdamScalars& s);

}  // namespace rb
