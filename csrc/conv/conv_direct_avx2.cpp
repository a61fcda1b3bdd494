// Direct convolution for few output channels (stride 1, no dilation, one group), float32, AVX2;
// conv.cpp routes single-output convolutions here (see kFewOutputs there for the measurements).
//
// With one output channel, im2col copies C * kH * kW values per output position for a GEMM of one
// row: the copy is the whole cost (a VAE's 32 -> 1 3x3 output layer on 8x8 maps). Here each
// (channel, tap) pair adds a shifted input row, scaled by one weight, to an output row: every operand
// is read in place and the row loops vectorise.
// No standard-library templates here (this file is compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "conv/conv.h"

namespace rb {

namespace {

inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// body(i, j, r0, r1, c0, c1) for each tap (i, j) that reads inside the image, with the output rows
// [r0, r1) and columns [c0, c1) it does so for: output (oh, ow) reads input (oh - pH + i, ow - pW + j).
template <typename Body>
inline void for_each_tap(const ConvGeometry& g, Body&& body) {
  for (int64_t i = 0; i < g.kH; ++i) {
    const int64_t r0 = max64(0, g.pH - i), r1 = min64(g.OH, g.H + g.pH - i);
    for (int64_t j = 0; j < g.kW; ++j) {
      const int64_t c0 = max64(0, g.pW - j), c1 = min64(g.OW, g.W + g.pW - j);
      if (r1 > r0 && c1 > c0) body(i, j, r0, r1, c0, c1);
    }
  }
}

// out[k] += a * in[k], k < n
inline void axpy(float a, const float* __restrict in, float* __restrict out, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t k = 0;
  for (; k + 8 <= n; k += 8)
    _mm256_storeu_ps(out + k, _mm256_fmadd_ps(va, _mm256_loadu_ps(in + k), _mm256_loadu_ps(out + k)));
  for (; k < n; ++k) out[k] += a * in[k];
}

// sum of a[k] * b[k], k < n, in 8 lanes then across them
inline float dot(const float* a, const float* b, int64_t n) {
  __m256 acc = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), acc);
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  float sum = _mm_cvtss_f32(s);
  for (; k < n; ++k) sum += a[k] * b[k];
  return sum;
}

}  // namespace

void conv2d_few_outputs_forward_avx2(const ConvGeometry& g, const float* x, const float* w, const float* bias,
                                     float* y, int64_t n) {
  const int64_t plane = g.H * g.W, L = g.OH * g.OW;
  for (int64_t o = 0; o < g.O; ++o) {
    float* out = y + (n * g.O + o) * L;
    const float b = bias ? bias[o] : 0.0f;
    for (int64_t l = 0; l < L; ++l) out[l] = b;
    for (int64_t c = 0; c < g.C; ++c) {
      const float* in = x + (n * g.C + c) * plane;
      const float* wc = w + (o * g.C + c) * g.kH * g.kW;
      for_each_tap(g, [=](int64_t i, int64_t j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        for (int64_t oh = r0; oh < r1; ++oh)
          axpy(wc[i * g.kW + j], in + (oh - g.pH + i) * g.W + (c0 - g.pW + j), out + oh * g.OW + c0, c1 - c0);
      });
    }
  }
}

void conv2d_few_outputs_backward_data_avx2(const ConvGeometry& g, const float* dy, const float* w, float* dx,
                                           int64_t n, int64_t c) {
  const int64_t plane = g.H * g.W, L = g.OH * g.OW;
  float* out = dx + (n * g.C + c) * plane;
  for (int64_t p = 0; p < plane; ++p) out[p] = 0.0f;
  for (int64_t o = 0; o < g.O; ++o) {
    const float* grad = dy + (n * g.O + o) * L;
    const float* wc = w + (o * g.C + c) * g.kH * g.kW;
    for_each_tap(g, [=](int64_t i, int64_t j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      for (int64_t oh = r0; oh < r1; ++oh)
        axpy(wc[i * g.kW + j], grad + oh * g.OW + c0, out + (oh - g.pH + i) * g.W + (c0 - g.pW + j), c1 - c0);
    });
  }
}

void conv2d_few_outputs_backward_weight_avx2(const ConvGeometry& g, const float* x, const float* dy, float* dw,
                                             int64_t c) {
  const int64_t plane = g.H * g.W, L = g.OH * g.OW;
  for (int64_t o = 0; o < g.O; ++o) {
    float* dwc = dw + (o * g.C + c) * g.kH * g.kW;
    for (int64_t t = 0; t < g.kH * g.kW; ++t) dwc[t] = 0.0f;  // taps wholly in the padding stay 0
    for_each_tap(g, [=](int64_t i, int64_t j, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
      float sum = 0.0f;
      for (int64_t n = 0; n < g.N; ++n) {
        const float* grad = dy + (n * g.O + o) * L;
        const float* in = x + (n * g.C + c) * plane;
        for (int64_t oh = r0; oh < r1; ++oh)
          sum += dot(grad + oh * g.OW + c0, in + (oh - g.pH + i) * g.W + (c0 - g.pW + j), c1 - c0);
      }
      dwc[i * g.kW + j] = sum;
    });
  }
}

}  // namespace rb
