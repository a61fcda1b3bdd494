// Fused element-wise passes of one recurrent step, AVX2 + FMA, float32.
//
// Each pass walks batch rows and 8 hidden units at a time (a masked load/store for the last, partial
// group), so one pass reads the GEMM's pre-activations once and writes everything the next step and
// the backward pass need. Equations: rnn.h. No standard-library templates in this file (-mavx2).
#include <immintrin.h>

#include "rnn/rnn.h"

namespace rb {
namespace {

// ---- vectorised exp, sigmoid, tanh (Cephes single-precision polynomials, ~2 ulp) -------------

inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(x, _mm256_set1_ps(88.3762626647949f));
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3365447505531f));  // keeps 2^n a normal number
  // x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two for an exact product.
  const __m256 n = _mm256_floor_ps(_mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(pow2n));
}

// 1 / d for d >= 1: the 12-bit hardware reciprocal and two Newton steps, each r += r (1 - d r).
// A division is the slowest instruction of an activation (one per 3.5 cycles on Zen 3); one
// Newton step would leave sigmoid(100) at 1 - 2^-24 instead of 1.
inline __m256 reciprocal256(__m256 d) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 r = _mm256_rcp_ps(d);
  r = _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
  return _mm256_fmadd_ps(r, _mm256_fnmadd_ps(d, r, one), r);
}

inline __m256 sigmoid256(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return reciprocal256(_mm256_add_ps(one, exp256(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// |x| < 0.625: odd polynomial (no cancellation near 0); otherwise 1 - 2 / (exp(2|x|) + 1), signed.
inline __m256 tanh256(__m256 x) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 ax = _mm256_andnot_ps(sign_bit, x);
  const __m256 one = _mm256_set1_ps(1.0f);
  const __m256 e = exp256(_mm256_add_ps(ax, ax));
  const __m256 r = reciprocal256(_mm256_add_ps(e, one));
  const __m256 large = _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), r, one);
  const __m256 z = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-5.70498872745e-3f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.06390887954e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-5.37397155531e-2f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(1.33314422036e-1f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(-3.33332819422e-1f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p, z), x, x);
  const __m256 signed_large = _mm256_or_ps(large, _mm256_and_ps(sign_bit, x));
  return _mm256_blendv_ps(signed_large, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

// ---- 8 units at a time, the last group masked ---------------------------------------------------

struct Lanes {
  bool full;
  __m256i mask;
};

inline Lanes lanes(int64_t count) {
  const __m256i iota = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return Lanes{count >= 8, _mm256_cmpgt_epi32(_mm256_set1_epi32(int(count < 8 ? count : 8)), iota)};
}

inline __m256 load(const float* p, const Lanes& l) { return l.full ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, l.mask); }
inline void store(float* p, __m256 v, const Lanes& l) {
  if (l.full)
    _mm256_storeu_ps(p, v);
  else
    _mm256_maskstore_ps(p, l.mask, v);
}

inline __m256 one_minus(__m256 v) { return _mm256_sub_ps(_mm256_set1_ps(1.0f), v); }
// Derivative of the logistic at its output s: s (1 - s).
inline __m256 dsigmoid(__m256 s) { return _mm256_mul_ps(s, one_minus(s)); }
// Derivative of tanh at its output v: 1 - v^2.
inline __m256 dtanh(__m256 v) { return _mm256_fnmadd_ps(v, v, _mm256_set1_ps(1.0f)); }

// Inactive rows (past their length) carry the state and output zero.
inline void carry_row(const StepForward& s, int64_t b) {
  for (int64_t j = s.j0; j < s.j1; ++j) {
    s.h_next[b * s.H + j] = s.h_prev[b * s.H + j];
    if (s.c_next) s.c_next[b * s.H + j] = s.c_prev[b * s.H + j];
    s.y[b * s.ldy + j] = 0.0f;
  }
}

// Output and next state of an active row.
inline void emit(const StepForward& s, int64_t b, int64_t j, __m256 h, const Lanes& l) {
  store(s.h_next + b * s.H + j, h, l);
  store(s.y + b * s.ldy + j, h, l);
}

// v[j] = sigmoid(v[j] + bias[j]) (tanh with TANH) for j in [j0, j1): a gate's activations in a loop
// of their own, whose iterations are short chains the out-of-order core overlaps. (Fused into the
// cell update, an iteration chains five exponentials; it measured about 10% slower.)
template <bool TANH>
inline void activate(float* v, const float* bias, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; j += 8) {
    const Lanes l = lanes(j1 - j);
    const __m256 x = _mm256_add_ps(load(v + j, l), load(bias + j, l));
    store(v + j, TANH ? tanh256(x) : sigmoid256(x), l);
  }
}

// dh reaching h' at this step: from the later steps plus, for active rows, from the output y.
inline __m256 total_dh(const StepBackward& s, int64_t b, int64_t j, const Lanes& l) {
  const __m256 dh = load(s.dh + b * s.H + j, l);
  return s.dy ? _mm256_add_ps(dh, load(s.dy + b * s.ldy + j, l)) : dh;
}

}  // namespace

void sigmoid_avx2(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    const Lanes l = lanes(n - i);
    store(y + i, sigmoid256(load(x + i, l)), l);
  }
}

void tanh_avx2(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    const Lanes l = lanes(n - i);
    store(y + i, tanh256(load(x + i, l)), l);
  }
}

void tanh_backward_avx2(const float* v, const float* g, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    const Lanes l = lanes(n - i);
    store(out + i, _mm256_mul_ps(load(g + i, l), dtanh(load(v + i, l))), l);
  }
}

// ---- forward ----------------------------------------------------------------------------------

void lstm_step_forward_avx2(const StepForward& s) {
  const int64_t H = s.H, GH = 4 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    float* g = s.gates + b * GH;
    activate<false>(g, s.bias, s.j0, s.j1);                  // i
    activate<false>(g + H, s.bias + H, s.j0, s.j1);          // f
    activate<true>(g + 2 * H, s.bias + 2 * H, s.j0, s.j1);   // g
    activate<false>(g + 3 * H, s.bias + 3 * H, s.j0, s.j1);  // o
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 i = load(g + j, l), f = load(g + H + j, l), gg = load(g + 2 * H + j, l), o = load(g + 3 * H + j, l);
      const __m256 c = _mm256_fmadd_ps(f, load(s.c_prev + b * H + j, l), _mm256_mul_ps(i, gg));
      const __m256 tc = tanh256(c);
      store(s.tanh_c + b * H + j, tc, l);
      if (s.active[b]) {
        store(s.c_next + b * H + j, c, l);
        emit(s, b, j, _mm256_mul_ps(o, tc), l);
      }
    }
    if (!s.active[b]) carry_row(s, b);
  }
}

void rnn_step_forward_avx2(const StepForward& s, bool relu) {
  const int64_t H = s.H;
  for (int64_t b = 0; b < s.B; ++b) {
    float* g = s.gates + b * H;
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 pre = _mm256_add_ps(load(g + j, l), load(s.bias + j, l));
      const __m256 v = relu ? _mm256_max_ps(pre, _mm256_setzero_ps()) : tanh256(pre);
      store(g + j, v, l);
      if (s.active[b]) emit(s, b, j, v, l);
    }
    if (!s.active[b]) carry_row(s, b);
  }
}

void gru_step_forward_avx2(const StepForward& s) {
  const int64_t H = s.H, GH = 3 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    float* g = s.gates + b * GH;
    activate<false>(g, s.bias, s.j0, s.j1);          // r
    activate<false>(g + H, s.bias + H, s.j0, s.j1);  // z
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 r = load(g + j, l), z = load(g + H + j, l);
      const __m256 hn = _mm256_add_ps(load(s.hn + b * H + j, l), load(s.b_hn + j, l));
      const __m256 n = tanh256(_mm256_fmadd_ps(r, hn, _mm256_add_ps(load(g + 2 * H + j, l), load(s.bias + 2 * H + j, l))));
      store(g + 2 * H + j, n, l);
      store(s.hn + b * H + j, hn, l);
      if (s.active[b]) {
        const __m256 hp = load(s.h_prev + b * H + j, l);
        emit(s, b, j, _mm256_fmadd_ps(z, _mm256_sub_ps(hp, n), n), l);  // (1 - z) n + z h
      }
    }
    if (!s.active[b]) carry_row(s, b);
  }
}

void gru_cho_step_gates_avx2(const StepForward& s) {
  const int64_t H = s.H, GH = 3 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    float* g = s.gates + b * GH;
    activate<false>(g, s.bias, s.j0, s.j1);          // r
    activate<false>(g + H, s.bias + H, s.j0, s.j1);  // z
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      store(s.rh + b * H + j, _mm256_mul_ps(load(g + j, l), load(s.h_prev + b * H + j, l)), l);
    }
  }
}

void gru_cho_step_output_avx2(const StepForward& s) {
  const int64_t H = s.H, GH = 3 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    float* g = s.gates + b * GH;
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 n = tanh256(_mm256_add_ps(load(g + 2 * H + j, l), load(s.bias + 2 * H + j, l)));
      store(g + 2 * H + j, n, l);
      if (s.active[b]) {
        const __m256 z = load(g + H + j, l), hp = load(s.h_prev + b * H + j, l);
        emit(s, b, j, _mm256_fmadd_ps(z, _mm256_sub_ps(hp, n), n), l);
      }
    }
    if (!s.active[b]) carry_row(s, b);
  }
}

// ---- backward ---------------------------------------------------------------------------------
// Inactive rows: zero pre-activation gradients, dh passes to the previous step unchanged.

namespace {
void zero_units(float* p, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) p[j] = 0.0f;
}
void copy_units(const float* from, float* to, int64_t j0, int64_t j1) {
  for (int64_t j = j0; j < j1; ++j) to[j] = from[j];
}
}  // namespace

void lstm_step_backward_avx2(const StepBackward& s) {
  const int64_t H = s.H, GH = 4 * H;
  const __m256 clip_hi = _mm256_set1_ps(s.clip > 0.0f ? s.clip : __builtin_inff());
  const __m256 clip_lo = _mm256_sub_ps(_mm256_setzero_ps(), clip_hi);
  for (int64_t b = 0; b < s.B; ++b) {
    const float* g = s.gates + b * GH;
    float* dg = s.dgates + b * GH;
    if (!s.active[b]) {
      for (int64_t k = 0; k < 4; ++k) zero_units(dg + k * H, s.j0, s.j1);
      copy_units(s.dh + b * H, s.dh_prev + b * H, s.j0, s.j1);
      continue;
    }
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 dh = total_dh(s, b, j, l);
      const __m256 i = load(g + j, l), f = load(g + H + j, l), gg = load(g + 2 * H + j, l), o = load(g + 3 * H + j, l);
      const __m256 tc = load(s.aux2 + b * H + j, l), c_prev = load(s.aux + b * H + j, l);
      __m256 dc = _mm256_fmadd_ps(_mm256_mul_ps(dh, o), dtanh(tc), load(s.dc + b * H + j, l));
      dc = _mm256_min_ps(_mm256_max_ps(dc, clip_lo), clip_hi);
      store(dg + j, _mm256_mul_ps(_mm256_mul_ps(dc, gg), dsigmoid(i)), l);
      store(dg + H + j, _mm256_mul_ps(_mm256_mul_ps(dc, c_prev), dsigmoid(f)), l);
      store(dg + 2 * H + j, _mm256_mul_ps(_mm256_mul_ps(dc, i), dtanh(gg)), l);
      store(dg + 3 * H + j, _mm256_mul_ps(_mm256_mul_ps(dh, tc), dsigmoid(o)), l);
      store(s.dc + b * H + j, _mm256_mul_ps(dc, f), l);
      store(s.dh_prev + b * H + j, _mm256_setzero_ps(), l);
    }
  }
}

void rnn_step_backward_avx2(const StepBackward& s, bool relu) {
  const int64_t H = s.H;
  for (int64_t b = 0; b < s.B; ++b) {
    const float* g = s.gates + b * H;
    float* dg = s.dgates + b * H;
    if (!s.active[b]) {
      zero_units(dg, s.j0, s.j1);
      copy_units(s.dh + b * H, s.dh_prev + b * H, s.j0, s.j1);
      continue;
    }
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 dh = total_dh(s, b, j, l), v = load(g + j, l);
      const __m256 d = relu ? _mm256_and_ps(dh, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GT_OQ))
                            : _mm256_mul_ps(dh, dtanh(v));
      store(dg + j, d, l);
      store(s.dh_prev + b * H + j, _mm256_setzero_ps(), l);
    }
  }
}

void gru_step_backward_avx2(const StepBackward& s) {
  const int64_t H = s.H, GH = 3 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    const float* g = s.gates + b * GH;
    float* dg = s.dgates + b * GH;
    if (!s.active[b]) {
      for (int64_t k = 0; k < 3; ++k) zero_units(dg + k * H, s.j0, s.j1);
      zero_units(s.dhn + b * H, s.j0, s.j1);
      copy_units(s.dh + b * H, s.dh_prev + b * H, s.j0, s.j1);
      continue;
    }
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 dh = total_dh(s, b, j, l);
      const __m256 r = load(g + j, l), z = load(g + H + j, l), n = load(g + 2 * H + j, l);
      const __m256 hp = load(s.h_prev + b * H + j, l), hn = load(s.aux + b * H + j, l);
      const __m256 dn = _mm256_mul_ps(_mm256_mul_ps(dh, one_minus(z)), dtanh(n));
      store(dg + j, _mm256_mul_ps(_mm256_mul_ps(dn, hn), dsigmoid(r)), l);
      store(dg + H + j, _mm256_mul_ps(_mm256_mul_ps(dh, _mm256_sub_ps(hp, n)), dsigmoid(z)), l);
      store(dg + 2 * H + j, dn, l);
      store(s.dhn + b * H + j, _mm256_mul_ps(dn, r), l);
      store(s.dh_prev + b * H + j, _mm256_mul_ps(dh, z), l);
    }
  }
}

void gru_cho_step_backward_avx2(const StepBackward& s) {
  const int64_t H = s.H, GH = 3 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    const float* g = s.gates + b * GH;
    float* dg = s.dgates + b * GH;
    if (!s.active[b]) {
      zero_units(dg + H, s.j0, s.j1);
      zero_units(dg + 2 * H, s.j0, s.j1);
      copy_units(s.dh + b * H, s.dh_prev + b * H, s.j0, s.j1);
      continue;
    }
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 dh = total_dh(s, b, j, l);
      const __m256 z = load(g + H + j, l), n = load(g + 2 * H + j, l), hp = load(s.h_prev + b * H + j, l);
      store(dg + H + j, _mm256_mul_ps(_mm256_mul_ps(dh, _mm256_sub_ps(hp, n)), dsigmoid(z)), l);
      store(dg + 2 * H + j, _mm256_mul_ps(_mm256_mul_ps(dh, one_minus(z)), dtanh(n)), l);
      store(s.dh_prev + b * H + j, _mm256_mul_ps(dh, z), l);
    }
  }
}

void gru_cho_step_reset_avx2(const StepBackward& s) {
  const int64_t H = s.H, GH = 3 * H;
  for (int64_t b = 0; b < s.B; ++b) {
    const float* g = s.gates + b * GH;
    float* dg = s.dgates + b * GH;
    if (!s.active[b]) {
      zero_units(dg, s.j0, s.j1);
      continue;
    }
    for (int64_t j = s.j0; j < s.j1; j += 8) {
      const Lanes l = lanes(s.j1 - j);
      const __m256 r = load(g + j, l), drh = load(s.drh + b * H + j, l), hp = load(s.h_prev + b * H + j, l);
      store(dg + j, _mm256_mul_ps(_mm256_mul_ps(drh, hp), dsigmoid(r)), l);
      float* dhp = s.dh_prev + b * H + j;
      store(dhp, _mm256_fmadd_ps(drh, r, load(dhp, l)), l);
    }
  }
}

}  // namespace rb
