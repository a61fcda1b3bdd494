// Batch normalisation over every dim but 1 (channels), on (N, C, L) C-contiguous arrays: the
// statistics of each channel are reduced in double; one channel's work is independent of the others'.
#pragma once
#include <cstdint>

namespace rb {

template <typename T>
struct BatchNormForward {
  int64_t N, C, L;
  const T* x;
  const T *weight, *bias;          // (C,) or null
  T *running_mean, *running_var;   // (C,) or null; updated in place in training
  bool training;
  double momentum, eps;
  T* y;                            // (N, C, L)
  T *save_mean, *save_invstd;      // (C,): the statistics that normalised (batch or running)
};

template <typename T>
struct BatchNormBackward {
  int64_t N, C, L;
  const T *grad, *x;
  const T* weight;                 // (C,) or null
  const T *save_mean, *save_invstd;
  bool training;                   // batch statistics: x also reaches the output through them
  T* dx;                           // (N, C, L)
  T *dweight, *dbias;              // (C,): sum(grad * x_hat), sum(grad)
};

template <typename T>
void batch_norm_forward(const BatchNormForward<T>& a);
template <typename T>
void batch_norm_backward(const BatchNormBackward<T>& a);

}  // namespace rb
