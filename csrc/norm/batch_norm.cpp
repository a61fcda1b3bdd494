// Batch normalisation, forward and backward: two passes over each channel in each direction
// (statistics, then the element-wise map), channels spread over threads. Plain C++ that the
// compiler vectorises for the baseline ISA; the sums are double, so float32 statistics lose
// nothing to the order of summation (as the float64 reference the tests use).
#include "norm/batch_norm.h"

#include <cmath>

#include "common/parallel.h"
#include "dispatch/dispatch.h"

namespace rb {

namespace {

// Threads only when the work pays for a fork and join (a small batch-norm takes microseconds).
int norm_threads(int64_t elements) { return elements >= (int64_t(1) << 16) ? available_threads() : 1; }

// The row sums below keep kLanes running sums side by side, added at the end: a single running sum
// is a chain of dependent additions, one per 4 cycles, and without reassociation (no -ffast-math)
// the compiler cannot split it. As separate sums the lanes vectorise: batch norm forward on
// (8, 64, 56, 56) took 1.5 ms (4 GB/s) with one.
constexpr int kLanes = 8;

// sum(f(l)) over l < L, f returning double.
template <typename F>
double lane_sum(int64_t L, F f) {
  double lanes[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= L; l += kLanes)
    for (int k = 0; k < kLanes; ++k) lanes[k] += f(l + k);
  for (; l < L; ++l) lanes[0] += f(l);
  double sum = 0.0;
  for (int k = 0; k < kLanes; ++k) sum += lanes[k];
  return sum;
}

// *sum_g += sum(g), *sum_gx += sum(g * (x - mean)) over a row of L, in one pass (as lane_sum).
template <typename T>
void add_gradient_sums(const T* g, const T* x, int64_t L, double mean, double* sum_g, double* sum_gx) {
  double lanes_g[kLanes] = {}, lanes_gx[kLanes] = {};
  int64_t l = 0;
  for (; l + kLanes <= L; l += kLanes)
    for (int k = 0; k < kLanes; ++k) {
      lanes_g[k] += double(g[l + k]);
      lanes_gx[k] += double(g[l + k]) * (double(x[l + k]) - mean);
    }
  for (; l < L; ++l) {
    lanes_g[0] += double(g[l]);
    lanes_gx[0] += double(g[l]) * (double(x[l]) - mean);
  }
  for (int k = 0; k < kLanes; ++k) *sum_g += lanes_g[k], *sum_gx += lanes_gx[k];
}

}  // namespace

template <typename T>
void batch_norm_forward(const BatchNormForward<T>& a) {
  const int64_t N = a.N, C = a.C, L = a.L, count = N * L;
#pragma omp parallel for schedule(static) num_threads(norm_threads(N * C * L))
  for (int64_t c = 0; c < C; ++c) {
    double mean, var;
    if (a.training) {
      double sum = 0.0;
      for (int64_t n = 0; n < N; ++n) {
        const T* row = a.x + (n * C + c) * L;
        sum += lane_sum(L, [&](int64_t l) { return double(row[l]); });
      }
      mean = sum / double(count);
      double squares = 0.0;  // centred first: no cancellation between two large sums
      for (int64_t n = 0; n < N; ++n) {
        const T* row = a.x + (n * C + c) * L;
        squares += lane_sum(L, [&](int64_t l) {
          const double d = double(row[l]) - mean;
          return d * d;
        });
      }
      var = squares / double(count);
      // torch: the running variance moves towards the unbiased estimate.
      if (a.running_mean) a.running_mean[c] = T((1.0 - a.momentum) * double(a.running_mean[c]) + a.momentum * mean);
      if (a.running_var)
        a.running_var[c] = T((1.0 - a.momentum) * double(a.running_var[c]) +
                             a.momentum * var * double(count) / double(count - 1));
    } else {
      mean = double(a.running_mean[c]);
      var = double(a.running_var[c]);
    }
    const double invstd = 1.0 / std::sqrt(var + a.eps);
    a.save_mean[c] = T(mean);
    a.save_invstd[c] = T(invstd);
    // y = (x - mean) * scale + b, scale = invstd * w (centred first, as the statistics).
    const T mean_t = T(mean), scale_t = T(invstd * (a.weight ? double(a.weight[c]) : 1.0));
    const T shift_t = a.bias ? a.bias[c] : T(0);
    for (int64_t n = 0; n < N; ++n) {
      const T* x = a.x + (n * C + c) * L;
      T* y = a.y + (n * C + c) * L;
      for (int64_t l = 0; l < L; ++l) y[l] = (x[l] - mean_t) * scale_t + shift_t;
    }
  }
  record_impl("batch_norm_forward", "channels_parallel");
}

template <typename T>
void batch_norm_backward(const BatchNormBackward<T>& a) {
  const int64_t N = a.N, C = a.C, L = a.L, count = N * L;
#pragma omp parallel for schedule(static) num_threads(norm_threads(N * C * L))
  for (int64_t c = 0; c < C; ++c) {
    const double mean = double(a.save_mean[c]), invstd = double(a.save_invstd[c]);
    double sum_g = 0.0, sum_gx = 0.0;  // db, and dw = sum(g * x_hat) = invstd * sum(g * (x - mean))
    for (int64_t n = 0; n < N; ++n) {
      const T* g = a.grad + (n * C + c) * L;
      const T* x = a.x + (n * C + c) * L;
      add_gradient_sums(g, x, L, mean, &sum_g, &sum_gx);
    }
    sum_gx *= invstd;
    a.dbias[c] = T(sum_g);
    a.dweight[c] = T(sum_gx);
    // dx = scale * (g - [training] (sum_g + x_hat * sum_gx) / count), scale = invstd * w,
    //    = g * scale - (x - mean) * k - j  with k = scale * invstd * sum_gx / count, j = scale * sum_g / count.
    const double scale = invstd * (a.weight ? double(a.weight[c]) : 1.0);
    const T mean_t = T(mean), scale_t = T(scale);
    const T k_t = a.training ? T(scale * invstd * sum_gx / double(count)) : T(0);
    const T j_t = a.training ? T(scale * sum_g / double(count)) : T(0);
    for (int64_t n = 0; n < N; ++n) {
      const T* g = a.grad + (n * C + c) * L;
      const T* x = a.x + (n * C + c) * L;
      T* dx = a.dx + (n * C + c) * L;
      if (a.training) {
        for (int64_t l = 0; l < L; ++l) dx[l] = g[l] * scale_t - (x[l] - mean_t) * k_t - j_t;
      } else {  // x does not enter (a NaN in x must not reach dx through (x - mean) * 0)
        for (int64_t l = 0; l < L; ++l) dx[l] = g[l] * scale_t;
      }
    }
  }
  record_impl("batch_norm_backward", "channels_parallel");
}

template void batch_norm_forward<float>(const BatchNormForward<float>&);
template void batch_norm_forward<double>(const BatchNormForward<double>&);
template void batch_norm_backward<float>(const BatchNormBackward<float>&);
template void batch_norm_backward<double>(const BatchNormBackward<double>&);

}  // namespace rb
