// Scalar reference convolution: direct loops over every tap. The spec the fast paths are tested against.
#include "conv/conv.h"

namespace rb {

// x (N, C, H, W), w (O, C/groups, kH, kW), bias (O,) or null -> y (N, O, OH, OW)
template <typename T>
void conv2d_forward_ref(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t Cg = g.c_per_group(), Og = g.o_per_group();
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) {
      const int64_t c0 = (o / Og) * Cg;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          T sum = bias ? bias[o] : T(0);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < g.kH; ++i) {
              const int64_t ih = oh * g.sH - g.pH + i * g.dH;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t j = 0; j < g.kW; ++j) {
                const int64_t iw = ow * g.sW - g.pW + j * g.dW;
                if (iw < 0 || iw >= g.W) continue;
                sum += w[((o * Cg + c) * g.kH + i) * g.kW + j] * x[((n * g.C + c0 + c) * g.H + ih) * g.W + iw];
              }
            }
          y[((n * g.O + o) * g.OH + oh) * g.OW + ow] = sum;
        }
    }
}

// dy (N, O, OH, OW), w (O, C/groups, kH, kW) -> dx (N, C, H, W) = d(sum y * dy)/dx
template <typename T>
void conv2d_backward_data_ref(const ConvGeometry& g, const T* dy, const T* w, T* dx) {
  const int64_t Cg = g.c_per_group(), Og = g.o_per_group();
  for (int64_t i = 0; i < g.N * g.C * g.H * g.W; ++i) dx[i] = T(0);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) {
      const int64_t c0 = (o / Og) * Cg;
      for (int64_t oh = 0; oh < g.OH; ++oh)
        for (int64_t ow = 0; ow < g.OW; ++ow) {
          const T grad = dy[((n * g.O + o) * g.OH + oh) * g.OW + ow];
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t i = 0; i < g.kH; ++i) {
              const int64_t ih = oh * g.sH - g.pH + i * g.dH;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t j = 0; j < g.kW; ++j) {
                const int64_t iw = ow * g.sW - g.pW + j * g.dW;
                if (iw < 0 || iw >= g.W) continue;
                dx[((n * g.C + c0 + c) * g.H + ih) * g.W + iw] += w[((o * Cg + c) * g.kH + i) * g.kW + j] * grad;
              }
            }
        }
    }
}

// x (N, C, H, W), dy (N, O, OH, OW) -> dw (O, C/groups, kH, kW) = d(sum y * dy)/dw
template <typename T>
void conv2d_backward_weight_ref(const ConvGeometry& g, const T* x, const T* dy, T* dw) {
  const int64_t Cg = g.c_per_group(), Og = g.o_per_group();
  for (int64_t o = 0; o < g.O; ++o) {
    const int64_t c0 = (o / Og) * Cg;
    for (int64_t c = 0; c < Cg; ++c)
      for (int64_t i = 0; i < g.kH; ++i)
        for (int64_t j = 0; j < g.kW; ++j) {
          T sum = T(0);
          for (int64_t n = 0; n < g.N; ++n)
            for (int64_t oh = 0; oh < g.OH; ++oh) {
              const int64_t ih = oh * g.sH - g.pH + i * g.dH;
              if (ih < 0 || ih >= g.H) continue;
              for (int64_t ow = 0; ow < g.OW; ++ow) {
                const int64_t iw = ow * g.sW - g.pW + j * g.dW;
                if (iw < 0 || iw >= g.W) continue;
                sum += x[((n * g.C + c0 + c) * g.H + ih) * g.W + iw] * dy[((n * g.O + o) * g.OH + oh) * g.OW + ow];
              }
            }
          dw[((o * Cg + c) * g.kH + i) * g.kW + j] = sum;
        }
  }
}

template void conv2d_forward_ref<float>(const ConvGeometry&, const float*, const float*, const float*, float*);
template void conv2d_forward_ref<double>(const ConvGeometry&, const double*, const double*, const double*, double*);
template void conv2d_backward_data_ref<float>(const ConvGeometry&, const float*, const float*, float*);
template void conv2d_backward_data_ref<double>(const ConvGeometry&, const double*, const double*, double*);
template void conv2d_backward_weight_ref<float>(const ConvGeometry&, const float*, const float*, float*);
template void conv2d_backward_weight_ref<double>(const ConvGeometry&, const double*, const double*, double*);

}  // namespace rb
