// Recurrent layers over whole sequences: Elman RNN (tanh / relu), LSTM and GRU.
//
// One call runs one layer in one direction over all T steps. Layouts follow PyTorch:
//   x (T, B, I) time-major, weight_ih (G*H, I), weight_hh (G*H, H), bias_ih, bias_hh (G*H),
//   gate blocks stacked along rows: LSTM (i, f, g, o), GRU (r, z, n), RNN one block (G = 1).
// Equations (sigma = logistic, * = element-wise, W_x* = rows of weight_ih, W_h* = rows of weight_hh):
//   RNN   h' = act(W_x x + b_x + W_h h + b_h)                       act = tanh or relu
//   LSTM  i, f, o = sigma(W_x* x + b_x* + W_h* h + b_h*),  g = tanh(same for g)
//         c' = f * c + i * g,   h' = o * tanh(c')
//   GRU   r, z = sigma(W_x* x + b_x* + W_h* h + b_h*)
//         linear_before_reset (torch, cuDNN):  n = tanh(W_xn x + b_xn + r * (W_hn h + b_hn))
//         otherwise (Cho et al. 2014):         n = tanh(W_xn x + b_xn + W_hn (r * h) + b_hn)
//         h' = (1 - z) * n + z * h
// Variable lengths: a batch row b takes part in steps t < lengths[b] only; at the other steps its
// state is carried unchanged and its output row is zero (PyTorch's packed sequences). With
// `reverse` the steps run t = T-1 .. 0, so a short sequence starts at its own last element.
//
// Saved for backward (written by forward, read by backward; identical layout on every path):
//   gates  (T, B, G*H)  activated gate values (RNN: h' before masking)
//   h_prev (T, B, H)    the state entering step t
//   aux    (T, B, H)    LSTM: c entering step t; GRU linear_before_reset: W_hn h + b_hn;
//                       GRU Cho: r * h; RNN: unused (may be null)
//   aux2   (T, B, H)    LSTM: tanh(c'); others: unused (may be null)
#pragma once
#include <cstdint>

namespace rb {

enum class RnnCell { rnn_tanh, rnn_relu, lstm, gru };

inline int64_t rnn_gate_count(RnnCell cell) {
  return cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1;
}

template <typename Real>
struct RnnForwardArgs {
  RnnCell cell;
  bool linear_before_reset;     // GRU only
  bool reverse;
  int64_t T, B, I, H;
  const Real* x;                // (T, B, I) contiguous
  const Real* h0;               // (B, H)
  const Real* c0;               // (B, H), LSTM only
  const Real* w_ih;             // (G*H, I)
  const Real* w_hh;             // (G*H, H)
  const Real* b_ih;             // (G*H) or null (no bias)
  const Real* b_hh;             // (G*H) or null
  const int64_t* lengths;       // (B) or null (every row runs T steps)
  Real* y;                      // (T, B, H) rows of `ldy` elements: may be a column slice
  int64_t ldy;
  Real* h_n;                    // (B, H)
  Real* c_n;                    // (B, H), LSTM only
  Real* gates;                  // saved, see above
  Real* h_prev;
  Real* aux;
  Real* aux2;
};

template <typename Real>
struct RnnBackwardArgs {
  RnnCell cell;
  bool linear_before_reset;
  bool reverse;
  int64_t T, B, I, H;
  Real cell_grad_clip;          // LSTM: clip dL/dc to [-clip, clip] at every step when > 0
  const Real* x;
  const Real* w_ih;
  const Real* w_hh;
  const int64_t* lengths;
  const Real* gates;            // saved by forward
  const Real* h_prev;
  const Real* aux;
  const Real* aux2;
  const Real* dy;               // (T, B, H) rows of `ldy`, or null (no gradient from outputs)
  int64_t ldy;
  const Real* dh_n;             // (B, H) or null
  const Real* dc_n;             // (B, H) or null, LSTM only
  Real* dx;                     // (T, B, I) contiguous
  bool accumulate_dx;           // dx += (the second direction of a bidirectional layer)
  Real* dh0;                    // (B, H)
  Real* dc0;                    // (B, H), LSTM only
  Real* dw_ih;                  // (G*H, I), overwritten
  Real* dw_hh;                  // (G*H, H), overwritten
  Real* db_ih;                  // (G*H) or null
  Real* db_hh;                  // (G*H) or null
};

// Dispatchers: the GEMM-based fast path (float32, AVX2) or the reference; record "rnn_forward" /
// "rnn_backward" in last_impl.
void rnn_forward(const RnnForwardArgs<float>& a);
void rnn_forward(const RnnForwardArgs<double>& a);
void rnn_backward(const RnnBackwardArgs<float>& a);
void rnn_backward(const RnnBackwardArgs<double>& a);

// References (rnn_ref.cpp): plain loops, step by step. The spec.
template <typename T>
void rnn_forward_ref(const RnnForwardArgs<T>& a);
template <typename T>
void rnn_backward_ref(const RnnBackwardArgs<T>& a);

// Fast path (rnn.cpp): one GEMM for the input projection of all steps, one recurrent GEMM and one
// fused element-wise pass (rnn_avx2.cpp) per step; weight gradients as one GEMM each over all steps.
void rnn_forward_fast(const RnnForwardArgs<float>& a);
void rnn_backward_fast(const RnnBackwardArgs<float>& a);

// ---- fused element-wise passes (rnn_avx2.cpp), float32, one step ----------------------------
// Each handles batch rows [0, B) and hidden units [j0, j1) of one step; rows with `active[b] == 0`
// carry their state and output zero. `bias` is the combined per-gate-row bias to add to the
// pre-activations (null: none). Pointers to per-step (B, ...) matrices are contiguous rows of
// G*H (gates) or H (states) elements unless a leading dimension is given.
struct StepForward {
  int64_t B, H, j0, j1;
  const unsigned char* active;  // (B)
  float* gates;                 // (B, G*H) pre-activations in, activations out
  const float* bias;            // (G*H) or null
  const float* h_prev;          // (B, H)
  float* h_next;                // (B, H)
  float* y;                     // (B, ldy)
  int64_t ldy;
  // LSTM
  const float* c_prev;
  float* c_next;
  float* tanh_c;
  // GRU linear_before_reset: hn (B, H) holds W_hn h in, W_hn h + b_hn out; b_hn (H) or null
  float* hn;
  const float* b_hn;
  // GRU Cho: rh (B, H) receives r * h in the first phase
  float* rh;
};

void lstm_step_forward_avx2(const StepForward& s);
void rnn_step_forward_avx2(const StepForward& s, bool relu);
void gru_step_forward_avx2(const StepForward& s);       // linear_before_reset
void gru_cho_step_gates_avx2(const StepForward& s);     // Cho phase 1: r, z, r * h
void gru_cho_step_output_avx2(const StepForward& s);    // Cho phase 2: n, h'

struct StepBackward {
  int64_t B, H, j0, j1;
  const unsigned char* active;
  const float* gates;           // (B, G*H) saved activations
  const float* h_prev;          // (B, H)
  const float* aux;             // see RnnForwardArgs
  const float* aux2;
  const float* dh;              // (B, H) gradient reaching h' from the later steps
  const float* dy;              // (B, ldy) or null
  int64_t ldy;
  float* dgates;                // (B, G*H) out: gradients of the pre-activations (input path)
  float* dhn;                   // GRU linear_before_reset: (B, H) out, gradient of W_hn h + b_hn
  float* dh_prev;               // (B, H) out: the part of dL/dh that does not go through W_hh
  float* dc;                    // LSTM: (B, H) dL/dc' in, dL/dc out (in place)
  float clip;
  const float* drh;             // GRU Cho phase 2: (B, H) gradient of r * h
};

void lstm_step_backward_avx2(const StepBackward& s);
void rnn_step_backward_avx2(const StepBackward& s, bool relu);
void gru_step_backward_avx2(const StepBackward& s);      // linear_before_reset
void gru_cho_step_backward_avx2(const StepBackward& s);  // Cho phase 1: dz, dn, dh * z
void gru_cho_step_reset_avx2(const StepBackward& s);     // Cho phase 2: dr, dh_prev += drh * r

// sums[j] += a[b * lda + j] for the rows b < rows, in order, and j in [j0, j1): a bias gradient
// gathered while a step's gradients are still in cache.
void add_column_sums_avx2(int64_t rows, const float* a, int64_t lda, float* sums, int64_t j0, int64_t j1);

// Vectorised activations over n floats (exposed for the accuracy test and the grid recurrence).
void sigmoid_avx2(const float* x, float* y, int64_t n);
void tanh_avx2(const float* x, float* y, int64_t n);
// out = g * (1 - v^2): the gradient through v = tanh(pre). `out` may alias g.
void tanh_backward_avx2(const float* v, const float* g, float* out, int64_t n);

}  // namespace rb
