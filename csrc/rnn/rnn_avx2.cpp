// Fused element-wise passes of one recurrent step, AVX2 + FMA, float32.
//
// Each pass walks batch rows and, within a row, hidden units in vectors of 8 (blocks of four vectors
// where the activations run in lockstep; a masked load/store for the last, partial vector), so one
// pass reads the GEMM's pre-activations once and writes everything the next step and the backward
// pass need. Equations: rnn.h. No standard-library templates in this file (-mavx2).
#include <immintrin.h>

#include "rnn/rnn.h"

namespace rb {
namespace {

// ---- vectorised exp, sigmoid, tanh (Cephes single-precision polynomials, ~2 ulp) -------------
//
// Each function evaluates N vectors in lockstep: a stage is applied to all N before the next one.
// One evaluation is a chain of about twenty dependent FMAs (~70 cycles), and the core's FP scheduler
// holds the waiting operations of only two or three such chains: called one vector at a time, a
// gate pass ran at about a third of the FMA throughput. Four chains side by side keep both pipes
// busy: the LSTM step pass over 32 rows x 128 units went from 28 us to 14 us. With AVX-512VL's 32
// registers, eight vectors in lockstep ran 1.3-1.4x faster again in isolation (sigmoid 14 -> 10
// cycles per 8 floats, tanh 21 -> 17 on Zen 4), but whole LSTM and GRU kernels only 1.00-1.01x:
// not worth a second build of this file. A ZMM pass doing all of an LSTM row's activations for 32
// units at a time measured the same: forward 6.65 -> 6.60 ms at (50, 32, 128, 256), forward+backward
// 1.000-1.003x.

template <int N>
inline void exp_n(__m256 (&x)[N]) {
  __m256 n[N], r[N], p[N];
  // Clamped so that 2^n stays a normal number. (min_ps and max_ps return their second operand when
  // either is NaN: x goes second, so a NaN comes out as NaN, not as the bound.)
  for (int k = 0; k < N; ++k) {
    x[k] = _mm256_min_ps(_mm256_set1_ps(88.3762626647949f), x[k]);
    x[k] = _mm256_max_ps(_mm256_set1_ps(-87.3365447505531f), x[k]);
  }
  // x = n ln2 + r, |r| <= ln2 / 2, with ln2 split in two for an exact product.
  for (int k = 0; k < N; ++k)
    n[k] = _mm256_floor_ps(_mm256_fmadd_ps(x[k], _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f)));
  for (int k = 0; k < N; ++k) r[k] = _mm256_fnmadd_ps(n[k], _mm256_set1_ps(0.693359375f), x[k]);
  for (int k = 0; k < N; ++k) r[k] = _mm256_fnmadd_ps(n[k], _mm256_set1_ps(-2.12194440e-4f), r[k]);
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r[k], _mm256_set1_ps(1.3981999507e-3f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(8.3334519073e-3f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(4.1665795894e-2f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(1.6666665459e-1f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], r[k], _mm256_set1_ps(5.0000001201e-1f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], _mm256_mul_ps(r[k], r[k]), _mm256_add_ps(r[k], _mm256_set1_ps(1.0f)));
  for (int k = 0; k < N; ++k) {
    const __m256i pow2n = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n[k]), _mm256_set1_epi32(127)), 23);
    x[k] = _mm256_mul_ps(p[k], _mm256_castsi256_ps(pow2n));
  }
}

// d = 1 / d for d >= 1: the 12-bit hardware reciprocal and two Newton steps, each r += r (1 - d r).
// A division is the slowest instruction of an activation (one per 3.5 cycles on Zen 3); one
// Newton step would leave sigmoid(100) at 1 - 2^-24 instead of 1.
template <int N>
inline void reciprocal_n(__m256 (&d)[N]) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 r[N];
  for (int k = 0; k < N; ++k) r[k] = _mm256_rcp_ps(d[k]);
  for (int k = 0; k < N; ++k) r[k] = _mm256_fmadd_ps(r[k], _mm256_fnmadd_ps(d[k], r[k], one), r[k]);
  for (int k = 0; k < N; ++k) d[k] = _mm256_fmadd_ps(r[k], _mm256_fnmadd_ps(d[k], r[k], one), r[k]);
}

template <int N>
inline void sigmoid_n(__m256 (&x)[N]) {
  for (int k = 0; k < N; ++k) x[k] = _mm256_sub_ps(_mm256_setzero_ps(), x[k]);
  exp_n(x);
  for (int k = 0; k < N; ++k) x[k] = _mm256_add_ps(_mm256_set1_ps(1.0f), x[k]);
  reciprocal_n(x);
}

// |x| < 0.625: odd polynomial (no cancellation near 0); otherwise 1 - 2 / (exp(2|x|) + 1), signed.
template <int N>
inline void tanh_n(__m256 (&x)[N]) {
  const __m256 sign_bit = _mm256_set1_ps(-0.0f);
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 e[N], z[N], p[N];
  for (int k = 0; k < N; ++k) {
    const __m256 ax = _mm256_andnot_ps(sign_bit, x[k]);
    e[k] = _mm256_add_ps(ax, ax);
  }
  exp_n(e);
  for (int k = 0; k < N; ++k) e[k] = _mm256_add_ps(e[k], one);
  reciprocal_n(e);  // e = 1 / (exp(2|x|) + 1)
  for (int k = 0; k < N; ++k) z[k] = _mm256_mul_ps(x[k], x[k]);
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(_mm256_set1_ps(-5.70498872745e-3f), z[k], _mm256_set1_ps(2.06390887954e-2f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], z[k], _mm256_set1_ps(-5.37397155531e-2f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], z[k], _mm256_set1_ps(1.33314422036e-1f));
  for (int k = 0; k < N; ++k) p[k] = _mm256_fmadd_ps(p[k], z[k], _mm256_set1_ps(-3.33332819422e-1f));
  for (int k = 0; k < N; ++k) {
    const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(p[k], z[k]), x[k], x[k]);
    const __m256 large = _mm256_fnmadd_ps(_mm256_set1_ps(2.0f), e[k], one);
    const __m256 signed_large = _mm256_or_ps(large, _mm256_and_ps(sign_bit, x[k]));
    const __m256 is_small = _mm256_cmp_ps(_mm256_andnot_ps(sign_bit, x[k]), _mm256_set1_ps(0.625f), _CMP_LT_OQ);
    x[k] = _mm256_blendv_ps(signed_large, small, is_small);
  }
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

// body(Vectors<N>{}, j, lanes) over the units [j0, j1): blocks of four full vectors, whose
// activations run in lockstep, then single vectors, the last one possibly partial.
template <int N>
struct Vectors {
  static constexpr int count = N;
};

template <class Body>
inline void for_vectors(int64_t j0, int64_t j1, Body body) {
  int64_t j = j0;
  for (; j + 32 <= j1; j += 32) body(Vectors<4>{}, j, lanes(8));
  for (; j < j1; j += 8) body(Vectors<1>{}, j, lanes(j1 - j));
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

// y[j] = sigmoid(x[j] + bias[j]) (tanh with TANH) for j in [j0, j1); bias may be null, y may be x.
template <bool TANH>
inline void activate(const float* x, const float* bias, float* y, int64_t j0, int64_t j1) {
  for_vectors(j0, j1, [&](auto width, int64_t j, const Lanes& l) {
    constexpr int N = decltype(width)::count;
    __m256 v[N];
    for (int k = 0; k < N; ++k) {
      v[k] = load(x + j + 8 * k, l);
      if (bias) v[k] = _mm256_add_ps(v[k], load(bias + j + 8 * k, l));
    }
    if constexpr (TANH)
      tanh_n(v);
    else
      sigmoid_n(v);
    for (int k = 0; k < N; ++k) store(y + j + 8 * k, v[k], l);
  });
}

// A gate's pre-activations plus bias, activated in place.
template <bool TANH>
inline void activate(float* v, const float* bias, int64_t j0, int64_t j1) {
  activate<TANH>(v, bias, v, j0, j1);
}

// dh reaching h' at this step: from the later steps plus, for active rows, from the output y.
inline __m256 total_dh(const StepBackward& s, int64_t b, int64_t j, const Lanes& l) {
  const __m256 dh = load(s.dh + b * s.H + j, l);
  return s.dy ? _mm256_add_ps(dh, load(s.dy + b * s.ldy + j, l)) : dh;
}

}  // namespace

void sigmoid_avx2(const float* x, float* y, int64_t n) { activate<false>(x, nullptr, y, 0, n); }

void tanh_avx2(const float* x, float* y, int64_t n) { activate<true>(x, nullptr, y, 0, n); }

void tanh_backward_avx2(const float* v, const float* g, float* out, int64_t n) {
  for (int64_t i = 0; i < n; i += 8) {
    const Lanes l = lanes(n - i);
    store(out + i, _mm256_mul_ps(load(g + i, l), dtanh(load(v + i, l))), l);
  }
}

void add_column_sums_avx2(int64_t rows, const float* a, int64_t lda, float* sums, int64_t j0, int64_t j1) {
  for_vectors(j0, j1, [&](auto width, int64_t j, const Lanes& l) {
    constexpr int N = decltype(width)::count;
    __m256 acc[N];
    for (int k = 0; k < N; ++k) acc[k] = load(sums + j + 8 * k, l);
    for (int64_t b = 0; b < rows; ++b)  // row by row, as a scalar loop would add them
      for (int k = 0; k < N; ++k) acc[k] = _mm256_add_ps(acc[k], load(a + b * lda + j + 8 * k, l));
    for (int k = 0; k < N; ++k) store(sums + j + 8 * k, acc[k], l);
  });
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
    for_vectors(s.j0, s.j1, [&](auto width, int64_t j, const Lanes& l) {
      constexpr int N = decltype(width)::count;
      __m256 c[N], tc[N];
      for (int k = 0; k < N; ++k) {
        const int64_t u = j + 8 * k;
        const __m256 i = load(g + u, l), f = load(g + H + u, l), gg = load(g + 2 * H + u, l);
        c[k] = tc[k] = _mm256_fmadd_ps(f, load(s.c_prev + b * H + u, l), _mm256_mul_ps(i, gg));
      }
      tanh_n(tc);
      for (int k = 0; k < N; ++k) {
        const int64_t u = j + 8 * k;
        store(s.tanh_c + b * H + u, tc[k], l);
        if (s.active[b]) {
          store(s.c_next + b * H + u, c[k], l);
          emit(s, b, u, _mm256_mul_ps(load(g + 3 * H + u, l), tc[k]), l);
        }
      }
    });
    if (!s.active[b]) carry_row(s, b);
  }
}

void rnn_step_forward_avx2(const StepForward& s, bool relu) {
  const int64_t H = s.H;
  for (int64_t b = 0; b < s.B; ++b) {
    float* g = s.gates + b * H;
    if (relu) {
      for (int64_t j = s.j0; j < s.j1; j += 8) {
        const Lanes l = lanes(s.j1 - j);
        // max(0, v) with v second: a NaN stays NaN (max_ps returns its second operand then)
        store(g + j, _mm256_max_ps(_mm256_setzero_ps(), _mm256_add_ps(load(g + j, l), load(s.bias + j, l))), l);
      }
    } else {
      activate<true>(g, s.bias, s.j0, s.j1);
    }
    if (s.active[b])
      for (int64_t j = s.j0; j < s.j1; j += 8) {
        const Lanes l = lanes(s.j1 - j);
        emit(s, b, j, load(g + j, l), l);
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
    for_vectors(s.j0, s.j1, [&](auto width, int64_t j, const Lanes& l) {
      constexpr int N = decltype(width)::count;
      __m256 n[N];
      for (int k = 0; k < N; ++k) {
        const int64_t u = j + 8 * k;
        const __m256 hn = _mm256_add_ps(load(s.hn + b * H + u, l), load(s.b_hn + u, l));
        store(s.hn + b * H + u, hn, l);
        n[k] = _mm256_fmadd_ps(load(g + u, l), hn, _mm256_add_ps(load(g + 2 * H + u, l), load(s.bias + 2 * H + u, l)));
      }
      tanh_n(n);
      for (int k = 0; k < N; ++k) {
        const int64_t u = j + 8 * k;
        store(g + 2 * H + u, n[k], l);
        if (s.active[b]) {
          const __m256 z = load(g + H + u, l), hp = load(s.h_prev + b * H + u, l);
          emit(s, b, u, _mm256_fmadd_ps(z, _mm256_sub_ps(hp, n[k]), n[k]), l);  // (1 - z) n + z h
        }
      }
    });
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
    activate<true>(g + 2 * H, s.bias + 2 * H, s.j0, s.j1);  // n
    if (s.active[b])
      for (int64_t j = s.j0; j < s.j1; j += 8) {
        const Lanes l = lanes(s.j1 - j);
        const __m256 n = load(g + 2 * H + j, l), z = load(g + H + j, l), hp = load(s.h_prev + b * H + j, l);
        emit(s, b, j, _mm256_fmadd_ps(z, _mm256_sub_ps(hp, n), n), l);
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
      dc = _mm256_min_ps(clip_hi, _mm256_max_ps(clip_lo, dc));  // NaN stays NaN
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
      // relu passes the gradient unless h' <= 0 (torch's threshold_backward): a NaN h' passes it
      const __m256 d = relu ? _mm256_and_ps(dh, _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NLE_UQ))
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
