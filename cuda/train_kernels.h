// Launchers of the kernels a training step needs beyond GEMM/conv/RNN: dropout, embedding, batch
// norm, the optimizer updates, gradient norms, and the pieces of nll/cross-entropy. They take
// device pointers, sizes and the stream, and check the launch; argument checks live in
// train_ops.cpp. Arrays are C-contiguous unless said otherwise.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "train_math.h"  // SgdHyper, AdamHyper

namespace rb::cuda {

// ---- dropout (dropout.cu) -------------------------------------------------------------------------
// out[i] = x[i] * (keep(i / plane) ? scale : 0), keep from the Philox stream of (seed, offset) (philox.h).
// plane = 1: dropout; plane = H * W: dropout2d (one draw per (n, c) plane). x == out is allowed.
template <typename T>
void dropout_apply(const T* x, T* out, int64_t n, int64_t plane, uint32_t threshold, T scale, uint64_t seed,
                   uint64_t offset, cudaStream_t stream);

// ---- embedding (embedding.cu) ---------------------------------------------------------------------
// Bad indices (outside [0, num)) are never read through: their output row is 0 and `flag` records
// them: flag[0] becomes 1 and flag[1] holds one bad index. flag is two zeroed words of device memory.
// out (n, dim) = weight (num, dim) [indices (n)]
template <typename T>
void embedding_gather(const T* weight, const int64_t* indices, T* out, int64_t n, int64_t num, int64_t dim,
                      unsigned long long* flag, cudaStream_t stream);
// grad_weight (num, dim), zeroed by the caller, += grad (n, dim) at rows indices (n); rows equal to
// padding_idx (or -1: none) get nothing. atomicAdd: the order of the additions into a row varies.
template <typename T>
void embedding_scatter_add(const T* grad, const int64_t* indices, T* grad_weight, int64_t n, int64_t num,
                           int64_t dim, int64_t padding_idx, unsigned long long* flag, cudaStream_t stream);

// ---- batch norm (batch_norm.cu) -------------------------------------------------------------------
// Per-channel sums run over `batch_norm_chunks` pieces of each channel's count = N * L elements, one
// block each, so that a few channels still fill the GPU; the float64 block sums are added in chunk
// order (deterministic). `scratch` holds batch_norm_scratch_size(C, count) doubles.
int64_t batch_norm_chunks(int64_t C, int64_t count);
int64_t batch_norm_scratch_size(int64_t C, int64_t count);
// x is (N, C, L). Training: mean and 1/sqrt(var + eps) of each channel from the batch (biased var),
// and, when given, running_mean/var move towards mean and the unbiased var by `momentum`, in place.
// Evaluation: mean and invstd from running_mean/var. Writes save_mean, save_invstd (C).
template <typename T>
void batch_norm_stats(const T* x, int64_t N, int64_t C, int64_t L, bool training, double momentum, double eps,
                      T* running_mean, T* running_var, T* save_mean, T* save_invstd, double* scratch,
                      cudaStream_t stream);
// y = (x - mean[c]) * invstd[c] * weight[c] + bias[c]; weight, bias may be null (1, 0).
template <typename T>
void batch_norm_normalize(const T* x, const T* mean, const T* invstd, const T* weight, const T* bias, T* y,
                          int64_t N, int64_t C, int64_t L, cudaStream_t stream);
// dweight = sum(g * x_hat), dbias = sum(g) per channel; dx = g * s (evaluation) or
// s * (g - x_hat * dweight / count - dbias / count) (training), s = invstd * weight (or invstd).
template <typename T>
void batch_norm_grads(const T* grad, const T* x, const T* mean, const T* invstd, const T* weight, bool training,
                      T* dx, T* dweight, T* dbias, double* scratch, int64_t N, int64_t C, int64_t L,
                      cudaStream_t stream);

// ---- optimizers and gradient norms (optim.cu) -------------------------------------------------------
// SgdHyper and AdamHyper: train_math.h.
template <typename T>
void sgd_step(T* param, const T* grad, T* momentum_buffer, int64_t n, const SgdHyper& h, cudaStream_t stream);

template <typename T>
void adam_step(T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq, int64_t n, const AdamHyper& h,
               cudaStream_t stream);

// Gradient norms in two deterministic stages. norm_partials adds |x|^p (p = norm_type; max |x| when
// norm_type is inf) of one array into partials[0 .. kNormPartials), one slot per block, the slots
// starting at zero; norm_finish reduces `count` partials into out[0] = (sum)^(1/p) (or the max), float32.
constexpr int kNormPartials = 256;
template <typename T>
void norm_partials(const T* x, int64_t n, double norm_type, double* partials, cudaStream_t stream);
void norm_finish(const double* partials, int64_t count, double norm_type, float* out, cudaStream_t stream);
// x *= factor (a host number), or x *= min(max_norm / (total[0] + 1e-6), 1) read on the device
// (clip_grad_norm_'s coefficient, float32 as the CPU version).
template <typename T>
void scale_inplace(T* x, int64_t n, double factor, cudaStream_t stream);
template <typename T>
void clip_scale_inplace(T* x, int64_t n, const float* total, double max_norm, cudaStream_t stream);

// ---- nll / cross-entropy pieces (nll.cu) ------------------------------------------------------------
// log_probs (N, C, L), target (N, L). picked[n, l] = log_probs[n, t, l] and element_weight[n, l] =
// weight[t] (1 without weight), both 0 where t == ignore_index. Bad targets are never read through;
// they set flag as the embedding kernels do.
template <typename T>
void gather_targets(const T* log_probs, const int64_t* target, const T* weight, T* picked, T* element_weight,
                    int64_t N, int64_t C, int64_t L, int64_t ignore_index, unsigned long long* flag,
                    cudaStream_t stream);
// out (N, C, L), zeroed by the caller: out[n, t, l] = coef[n, l] where t is a valid target.
template <typename T>
void scatter_targets(const T* coef, const int64_t* target, T* out, int64_t N, int64_t C, int64_t L,
                     int64_t ignore_index, unsigned long long* flag, cudaStream_t stream);
// x (rows, n), n >= 1: the largest value of each row and its first index (NaN counts as largest, as
// NumPy's argmax).
template <typename T>
void max_rows(const T* x, T* values, int64_t* indices, int64_t rows, int64_t n, cudaStream_t stream);

}  // namespace rb::cuda
