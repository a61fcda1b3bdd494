// Fused optimizer updates (one kernel per parameter array, everything in place) and the gradient
// norm of clip_grad_norm_, reduced in a fixed order so that it is the same from run to run.
#include <cmath>

#include "block_reduce.cuh"
#include "check.h"
#include "launch.cuh"
#include "train_kernels.h"
#include "train_math.h"

namespace rb::cuda {
namespace {

using blockwise::block_reduce;
using blockwise::MaxNan;
using blockwise::Sum;

constexpr int kThreads = 256;

template <typename T>
__global__ void sgd_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ buffer, int64_t n,
                           SgdScalars<T> s) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) sgd_update(i, param, grad, buffer, s);
}

template <typename T>
__global__ void adam_kernel(T* __restrict__ param, const T* __restrict__ grad, T* __restrict__ exp_avg,
                            T* __restrict__ exp_avg_sq, T* __restrict__ max_exp_avg_sq, int64_t n, AdamScalars<T> s) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads())
    adam_update(i, param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, s);
}

// What one element adds to the sum of a p-norm (p finite).
__device__ inline double norm_term(double a, double p) {
  a = fabs(a);
  return p == 2.0 ? a * a : p == 1.0 ? a : pow(a, p);
}

template <typename T>
__global__ void norm_partials_kernel(const T* __restrict__ x, int64_t n, double p, double* __restrict__ partials) {
  const bool is_max = isinf(p);
  double acc = 0;
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    const double a = static_cast<double>(x[i]);
    acc = is_max ? MaxNan{}(acc, fabs(a)) : acc + norm_term(a, p);
  }
  acc = is_max ? block_reduce(acc, MaxNan{}, 0.0) : block_reduce(acc, Sum{}, 0.0);
  if (threadIdx.x == 0) {
    double& slot = partials[blockIdx.x];
    slot = is_max ? MaxNan{}(slot, acc) : slot + acc;
  }
}

__global__ void norm_finish_kernel(const double* __restrict__ partials, int64_t count, double p,
                                   float* __restrict__ out) {
  const bool is_max = isinf(p);
  double acc = 0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x)
    acc = is_max ? MaxNan{}(acc, partials[i]) : acc + partials[i];
  acc = is_max ? block_reduce(acc, MaxNan{}, 0.0) : block_reduce(acc, Sum{}, 0.0);
  if (threadIdx.x == 0) out[0] = static_cast<float>(is_max ? acc : p == 1.0 ? acc : pow(acc, 1.0 / p));
}

template <typename T>
__global__ void scale_kernel(T* x, int64_t n, T factor) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) x[i] *= factor;
}

// torch's coefficient: min(max_norm / (total + 1e-6), 1), rounded to float32 as the CPU version.
template <typename T>
__global__ void clip_scale_kernel(T* x, int64_t n, const float* __restrict__ total, double max_norm) {
  const float coefficient = static_cast<float>(fmin(max_norm / (static_cast<double>(total[0]) + 1e-6), 1.0));
  const T factor = static_cast<T>(coefficient);
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) x[i] *= factor;
}

}  // namespace

template <typename T>
void sgd_step(T* param, const T* grad, T* momentum_buffer, int64_t n, const SgdHyper& h, cudaStream_t stream) {
  if (n == 0) return;
  const SgdScalars<T> s = sgd_scalars<T>(h);
  sgd_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(param, grad, momentum_buffer, n, s);
  check_launch("sgd_step_", "sgd_kernel");
}

template <typename T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n, const AdamHyper& h,
               cudaStream_t stream) {
  if (n == 0) return;
  const AdamScalars<T> s = adam_scalars<T>(h);
  adam_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(param, grad, exp_avg, exp_avg_sq,
                                                                          max_exp_avg_sq, n, s);
  check_launch("adam_step_", "adam_kernel");
}

template <typename T>
void norm_partials(const T* x, int64_t n, double norm_type, double* partials, cudaStream_t stream) {
  if (n == 0) return;
  const unsigned int blocks = std::min<unsigned int>(grid_stride_blocks(n, kThreads), kNormPartials);
  norm_partials_kernel<T><<<blocks, kThreads, 0, stream>>>(x, n, norm_type, partials);
  check_launch("grad_norm", "norm_partials_kernel");
}

void norm_finish(const double* partials, int64_t count, double norm_type, float* out, cudaStream_t stream) {
  norm_finish_kernel<<<1, 1024, 0, stream>>>(partials, count, norm_type, out);
  check_launch("grad_norm", "norm_finish_kernel");
}

template <typename T>
void scale_inplace(T* x, int64_t n, double factor, cudaStream_t stream) {
  if (n == 0) return;
  scale_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(x, n, static_cast<T>(factor));
  check_launch("scale_", "scale_kernel");
}

template <typename T>
void clip_scale_inplace(T* x, int64_t n, const float* total, double max_norm, cudaStream_t stream) {
  if (n == 0) return;
  clip_scale_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(x, n, total, max_norm);
  check_launch("clip_grad_norm_", "clip_scale_kernel");
}

#define RB_INSTANTIATE(T)                                                                                \
  template void sgd_step<T>(T*, const T*, T*, int64_t, const SgdHyper&, cudaStream_t);                   \
  template void adam_step<T>(T*, const T*, T*, T*, T*, int64_t, const AdamHyper&, cudaStream_t);         \
  template void norm_partials<T>(const T*, int64_t, double, double*, cudaStream_t);                      \
  template void scale_inplace<T>(T*, int64_t, double, cudaStream_t);                                     \
  template void clip_scale_inplace<T>(T*, int64_t, const float*, double, cudaStream_t);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
