// Direct convolution for few output channels (stride 1, no dilation, one group), float32, AVX2;
// conv.cpp routes single-output convolutions here (see kFewOutputs there for the measurements).
//
// With one output channel, im2col copies C * kH * kW values per output position for a GEMM of one
// row: the copy is the whole cost (a VAE's 32 -> 1 3x3 output layer on 8x8 maps). Here each (channel, tap) pair adds a shifted input row, scaled by one weight, to an
// output row: every operand is read in place and the row loops vectorise.
// No standard-library templates here (this file is compiled with -mavx2 -mfma).
#include <immintrin.h>

#include "conv/conv.h"

namespace rb {

namespace {

inline int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Output rows [lo, hi) that tap row i reads inside the image (input row oh - pH + i in [0, H)).
inline void tap_rows(const ConvGeometry& g, int64_t i, int64_t* lo, int64_t* hi) {
  *lo = max64(0, g.pH - i);
  *hi = min64(g.OH, g.H + g.pH - i);
}

// Output columns [lo, hi) that tap column j reads inside the image.
inline void tap_cols(const ConvGeometry& g, int64_t j, int64_t* lo, int64_t* hi) {
  *lo = max64(0, g.pW - j);
  *hi = min64(g.OW, g.W + g.pW - j);
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
  const int64_t plane = g.H * g.W, L = g.OH * g.OW, taps = g.kH * g.kW;
  for (int64_t o = 0; o < g.O; ++o) {
    float* out = y + (n * g.O + o) * L;
    const float b = bias ? bias[o] : 0.0f;
    for (int64_t l = 0; l < L; ++l) out[l] = b;
    for (int64_t c = 0; c < g.C; ++c) {
      const float* in = x + (n * g.C + c) * plane;
      const float* wc = w + (o * g.C + c) * taps;
      for (int64_t i = 0; i < g.kH; ++i) {
        int64_t r0, r1;
        tap_rows(g, i, &r0, &r1);
        for (int64_t j = 0; j < g.kW; ++j) {
          int64_t c0, c1;
          tap_cols(g, j, &c0, &c1);
          if (c1 <= c0) continue;
          const float wv = wc[i * g.kW + j];
          for (int64_t oh = r0; oh < r1; ++oh)
            axpy(wv, in + (oh - g.pH + i) * g.W + (c0 - g.pW + j), out + oh * g.OW + c0, c1 - c0);
        }
      }
    }
  }
}

void conv2d_few_outputs_backward_data_avx2(const ConvGeometry& g, const float* dy, const float* w, float* dx,
                                           int64_t n, int64_t ch0, int64_t ch1) {
  const int64_t plane = g.H * g.W, L = g.OH * g.OW, taps = g.kH * g.kW;
  for (int64_t c = ch0; c < ch1; ++c) {
    float* out = dx + (n * g.C + c) * plane;
    for (int64_t p = 0; p < plane; ++p) out[p] = 0.0f;
    for (int64_t o = 0; o < g.O; ++o) {
      const float* grad = dy + (n * g.O + o) * L;
      const float* wc = w + (o * g.C + c) * taps;
      for (int64_t i = 0; i < g.kH; ++i) {
        int64_t r0, r1;
        tap_rows(g, i, &r0, &r1);
        for (int64_t j = 0; j < g.kW; ++j) {
          int64_t c0, c1;
          tap_cols(g, j, &c0, &c1);
          if (c1 <= c0) continue;
          const float wv = wc[i * g.kW + j];
          for (int64_t oh = r0; oh < r1; ++oh)
            axpy(wv, grad + oh * g.OW + c0, out + (oh - g.pH + i) * g.W + (c0 - g.pW + j), c1 - c0);
        }
      }
    }
  }
}

void conv2d_few_outputs_backward_weight_avx2(const ConvGeometry& g, const float* x, const float* dy, float* dw,
                                             int64_t ch0, int64_t ch1) {
  const int64_t plane = g.H * g.W, L = g.OH * g.OW, taps = g.kH * g.kW;
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t c = ch0; c < ch1; ++c)
      for (int64_t i = 0; i < g.kH; ++i) {
        int64_t r0, r1;
        tap_rows(g, i, &r0, &r1);
        for (int64_t j = 0; j < g.kW; ++j) {
          int64_t c0, c1;
          tap_cols(g, j, &c0, &c1);
          float sum = 0.0f;
          for (int64_t n = 0; n < g.N && c1 > c0; ++n) {
            const float* grad = dy + (n * g.O + o) * L;
            const float* in = x + (n * g.C + c) * plane;
            for (int64_t oh = r0; oh < r1; ++oh)
              sum += dot(grad + oh * g.OW + c0, in + (oh - g.pH + i) * g.W + (c0 - g.pW + j), c1 - c0);
          }
          dw[(o * g.C + c) * taps + i * g.kW + j] = sum;
        }
      }
}

}  // namespace rb
