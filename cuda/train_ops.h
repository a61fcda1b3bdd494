// Training ops on DeviceArrays: argument checks (ValueError / TypeError / IndexError naming the op
// and the shapes), output allocation, then the launches of train_kernels.h on the device's stream.
// Functions ending in _ update their first array(s) in place; the rest return fresh C-contiguous arrays.
#pragma once
#include <cstdint>
#include <optional>
#include <tuple>
#include <utility>
#include <vector>

#include "device_array.h"

namespace rb::cuda {

// x * mask / (1 - p), the mask a function of (seed, offset) (philox.h); `plane` elements share one draw.
// The backward pass is the same call on the gradient with the same (p, seed, offset, plane).
DeviceArray dropout(const DeviceArray& x, double p, uint64_t seed, uint64_t offset, int64_t plane, const char* op);

DeviceArray embedding_forward(const DeviceArray& weight, const DeviceArray& indices);
DeviceArray embedding_backward(const DeviceArray& grad, const DeviceArray& indices, int64_t num_embeddings,
                               std::optional<int64_t> padding_idx);

// Returns (y, save_mean, save_invstd); running stats are updated in place when training.
std::tuple<DeviceArray, DeviceArray, DeviceArray> batch_norm_forward(
    const DeviceArray& x, const std::optional<DeviceArray>& weight, const std::optional<DeviceArray>& bias,
    const std::optional<DeviceArray>& running_mean, const std::optional<DeviceArray>& running_var, bool training,
    double momentum, double eps);
// Returns (dx, dweight, dbias).
std::tuple<DeviceArray, DeviceArray, DeviceArray> batch_norm_backward(const DeviceArray& grad, const DeviceArray& x,
                                                                      const std::optional<DeviceArray>& weight,
                                                                      const DeviceArray& save_mean,
                                                                      const DeviceArray& save_invstd, bool training);

void sgd_step_(const DeviceArray& param, const DeviceArray& grad, const std::optional<DeviceArray>& momentum_buffer,
               double lr, double momentum, double dampening, double weight_decay, bool nesterov, bool maximize,
               bool first_step);
void adam_step_(const DeviceArray& param, const DeviceArray& grad, const DeviceArray& exp_avg,
                const DeviceArray& exp_avg_sq, const std::optional<DeviceArray>& max_exp_avg_sq, int64_t step,
                double lr, double beta1, double beta2, double eps, double weight_decay, bool amsgrad, bool maximize,
                bool decoupled_weight_decay);

DeviceArray grad_norm(const std::vector<DeviceArray>& arrays, double norm_type);  // float32, shape []
void clip_by_total_norm_(const std::vector<DeviceArray>& arrays, const DeviceArray& total_norm, double max_norm);
void scale_(const DeviceArray& x, double factor);

// (picked, element_weight), each of the target's shape.
std::pair<DeviceArray, DeviceArray> nll_gather(const DeviceArray& log_probs, const DeviceArray& target,
                                               const std::optional<DeviceArray>& weight, int64_t ignore_index);
DeviceArray nll_scatter(const DeviceArray& coef, const DeviceArray& target, int64_t num_classes, int64_t ignore_index);
// (values, indices) over the last axis.
std::pair<DeviceArray, DeviceArray> max_last_axis(const DeviceArray& x);

}  // namespace rb::cuda
