// Direct kernels for convolutions with one input channel per group (depthwise, any channel
// multiplier Og = O / groups): output channel o reads input channel o / Og only. The implicit GEMM
// would fill 1 row of its 64 (and 9 of 128 columns in backward-weight); these do the few taps of
// each element directly.
//   forward          one thread per output:  y = b + sum_{i,j} w[o, i, j] x[n, o / Og, tap]
//   backward-data    one thread per input:   the dy taps that read it (stride divides), over its Og outputs
//   backward-weight  one block per (o, i, j): a block-wide sum over N * OH * OW pixels (deterministic)
#include <cstdint>

#include "block_reduce.cuh"
#include "check.h"
#include "conv_kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

#define RB_HD __host__ __device__ __forceinline__

constexpr int kThreads = 256;

template <typename T>
RB_HD T depthwise_output(const ConvDims& d, const T* x, const T* w, const T* bias, int64_t e) {
  const int64_t ow = e % d.OW, oh = (e / d.OW) % d.OH, o = (e / (int64_t(d.OW) * d.OH)) % d.O;
  const int64_t n = e / (int64_t(d.OW) * d.OH * d.O), og = d.O / d.groups;
  const T* plane = x + (n * d.C + o / og) * d.H * d.W;
  const T* taps = w + o * d.kH * d.kW;
  T sum = T(0);
  for (int64_t i = 0; i < d.kH; ++i) {
    const int64_t ih = oh * d.sH - d.pH + i * d.dH;
    if (ih < 0 || ih >= d.H) continue;
    for (int64_t j = 0; j < d.kW; ++j) {
      const int64_t iw = ow * d.sW - d.pW + j * d.dW;
      if (iw >= 0 && iw < d.W) sum += taps[i * d.kW + j] * plane[ih * d.W + iw];
    }
  }
  return bias ? sum + bias[o] : sum;
}

template <typename T>
RB_HD T depthwise_input_gradient(const ConvDims& d, const T* dy, const T* w, const T* bias, int64_t e) {
  const int64_t w_ = e % d.W, h = (e / d.W) % d.H, c = (e / (int64_t(d.W) * d.H)) % d.C;
  const int64_t n = e / (int64_t(d.W) * d.H * d.C), og = d.O / d.groups;
  T sum = T(0);
  for (int64_t m = 0; m < og; ++m) {
    const int64_t o = c * og + m;
    const T* grad = dy + (n * d.O + o) * d.OH * d.OW;
    const T* taps = w + o * d.kH * d.kW;
    for (int64_t i = 0; i < d.kH; ++i) {
      const int64_t th = h + d.pH - i * d.dH;
      if (th < 0 || th % d.sH != 0 || th / d.sH >= d.OH) continue;
      for (int64_t j = 0; j < d.kW; ++j) {
        const int64_t tw = w_ + d.pW - j * d.dW;
        if (tw < 0 || tw % d.sW != 0 || tw / d.sW >= d.OW) continue;
        sum += taps[i * d.kW + j] * grad[(th / d.sH) * d.OW + tw / d.sW];
      }
    }
  }
  return bias ? sum + bias[c] : sum;
}

// Thread t of `threads`' share of dw[o, i, j] (weight element `e`): pixels q = t, t + threads, ...
template <typename T>
RB_HD T depthwise_weight_partial(const ConvDims& d, const T* x, const T* dy, int64_t e, int t, int threads) {
  const int64_t taps = int64_t(d.kH) * d.kW, o = e / taps, i = (e % taps) / d.kW, j = e % d.kW;
  const int64_t plane = int64_t(d.OH) * d.OW, pixels = d.N * plane, og = d.O / d.groups;
  T sum = T(0);
  for (int64_t q = t; q < pixels; q += threads) {
    const int64_t n = q / plane, p = q % plane, oh = p / d.OW, ow = p % d.OW;
    const int64_t ih = oh * d.sH - d.pH + i * d.dH, iw = ow * d.sW - d.pW + j * d.dW;
    if (ih < 0 || ih >= d.H || iw < 0 || iw >= d.W) continue;
    sum += dy[(n * d.O + o) * plane + p] * x[((n * d.C + o / og) * d.H + ih) * d.W + iw];
  }
  return sum;
}

template <typename T>
__global__ void depthwise_forward_kernel(ConvDims d, const T* __restrict__ x, const T* __restrict__ w,
                                         const T* __restrict__ bias, T* __restrict__ y, int64_t total) {
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) y[e] = depthwise_output(d, x, w, bias, e);
}

template <typename T>
__global__ void depthwise_backward_data_kernel(ConvDims d, const T* __restrict__ dy, const T* __restrict__ w,
                                               const T* __restrict__ bias, T* __restrict__ dx, int64_t total) {
  for (int64_t e = global_thread_index(); e < total; e += grid_threads())
    dx[e] = depthwise_input_gradient(d, dy, w, bias, e);
}

// One block per weight element; grid-stride over weight elements when there are more than the grid.
template <typename T>
__global__ void __launch_bounds__(kThreads) depthwise_backward_weight_kernel(ConvDims d, const T* __restrict__ x,
                                                                             const T* __restrict__ dy,
                                                                             T* __restrict__ dw, int64_t total) {
  for (int64_t e = blockIdx.x; e < total; e += gridDim.x) {  // uniform across the block: barriers stay uniform
    const T partial = depthwise_weight_partial(d, x, dy, e, static_cast<int>(threadIdx.x), kThreads);
    const T sum = blockwise::block_reduce(partial, blockwise::Sum{}, T(0));
    if (threadIdx.x == 0) dw[e] = sum;
  }
}

}  // namespace

bool conv2d_is_depthwise(const ConvDims& d) { return d.C == d.groups; }

template <typename T>
void conv2d_depthwise_forward(const ConvDims& d, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream) {
  const int64_t total = int64_t(d.N) * d.O * d.OH * d.OW;
  if (total == 0) return;
  depthwise_forward_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(d, x, w, bias, y, total);
  check_launch("conv2d", "depthwise_forward_kernel");
}

template <typename T>
void conv2d_depthwise_backward_data(const ConvDims& d, const T* dy, const T* w, const T* bias, T* dx,
                                    cudaStream_t stream) {
  const int64_t total = int64_t(d.N) * d.C * d.H * d.W;
  if (total == 0) return;
  depthwise_backward_data_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(d, dy, w, bias, dx,
                                                                                                  total);
  check_launch("conv2d_backward_data", "depthwise_backward_data_kernel");
}

template <typename T>
void conv2d_depthwise_backward_weight(const ConvDims& d, const T* x, const T* dy, T* dw, cudaStream_t stream) {
  const int64_t total = int64_t(d.O) * d.kH * d.kW;
  if (total == 0) return;
  depthwise_backward_weight_kernel<T><<<grid_stride_blocks(total, 1), kThreads, 0, stream>>>(d, x, dy, dw, total);
  check_launch("conv2d_backward_weight", "depthwise_backward_weight_kernel");
}

template <typename T>
void conv2d_depthwise_simulated_on_host(ConvPass pass, const ConvDims& d, const T* in0, const T* in1, const T* bias,
                                        T* out) {
  switch (pass) {
    case ConvPass::forward:
      for (int64_t e = 0; e < int64_t(d.N) * d.O * d.OH * d.OW; ++e) out[e] = depthwise_output(d, in0, in1, bias, e);
      break;
    case ConvPass::backward_data:
      for (int64_t e = 0; e < int64_t(d.N) * d.C * d.H * d.W; ++e)
        out[e] = depthwise_input_gradient(d, in0, in1, bias, e);
      break;
    case ConvPass::backward_weight:
      for (int64_t e = 0; e < int64_t(d.O) * d.kH * d.kW; ++e) {
        T sum = T(0);
        for (int t = 0; t < kThreads; ++t) sum += depthwise_weight_partial(d, in0, in1, e, t, kThreads);
        out[e] = sum;
      }
      break;
  }
}

#define RB_DEPTHWISE_INSTANTIATE(T)                                                                              \
  template void conv2d_depthwise_forward<T>(const ConvDims&, const T*, const T*, const T*, T*, cudaStream_t);     \
  template void conv2d_depthwise_backward_data<T>(const ConvDims&, const T*, const T*, const T*, T*, cudaStream_t); \
  template void conv2d_depthwise_backward_weight<T>(const ConvDims&, const T*, const T*, T*, cudaStream_t);        \
  template void conv2d_depthwise_simulated_on_host<T>(ConvPass, const ConvDims&, const T*, const T*, const T*, T*);
RB_DEPTHWISE_INSTANTIATE(float)
RB_DEPTHWISE_INSTANTIATE(double)
#undef RB_DEPTHWISE_INSTANTIATE

}  // namespace rb::cuda
