// Recurrent layers on the GPU: Elman RNN (tanh / relu), LSTM and GRU (both forms) over a whole
// sequence, one layer and one direction per call, forward and back-propagation through time.
// Equations, gate order, weight layout and the saved activations are those of the CPU kernels
// (csrc/rnn/rnn.h, whose reference rnn_ref.cpp is the spec):
//   x (T, B, I), w_ih (G*H, I), w_hh (G*H, H), b_ih / b_hh (G*H); LSTM (i, f, g, o), GRU (r, z, n).
//   saved: gates (T, B, G*H) activations, h_prev (T, B, H) the state entering step t,
//          aux (T, B, H) LSTM c entering t / GRU(linear_before_reset) W_hn h + b_hn / GRU(Cho) r * h,
//          aux2 (T, B, H) LSTM tanh(c').
//
// Forward: one GEMM projects every step's input (gates = x . w_ih^T); then per step ONE kernel
// (two for Cho's GRU) computes h_{t-1} . w_hh^T for a 16 x 16 tile of (batch rows, hidden units),
// all gates of those units, and applies the cell's element-wise update in its epilogue.
// Backward: per step one kernel computes dL/dh_t = dgates_{t+1} . w_hh (+ the direct terms) for a
// tile and, in its epilogue, the gate gradients of step t; the weight gradients and dx are large
// GEMMs over all T*B rows at the end, the bias gradients column sums.
//
// Every pointer in the plans is a device pointer (host pointers for the *_simulated_on_host
// versions, which run the same kernel code on the CPU, block by block and barrier phase by
// barrier phase: a test of the indexing without a GPU). Shapes are checked by the caller
// (rnn_bindings.cpp); these functions assume them valid.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace rb::cuda {

enum class RnnCell { rnn_tanh, rnn_relu, lstm, gru };

inline int64_t rnn_gate_count(RnnCell cell) { return cell == RnnCell::lstm ? 4 : cell == RnnCell::gru ? 3 : 1; }

// The largest hidden size the step kernels' grid allows (grid.y = ceil(H / 16) <= 65535).
constexpr int64_t kRnnMaxHidden = int64_t{65535} * 16;

template <typename Real>
struct RnnForwardPlan {
  RnnCell cell;
  bool linear_before_reset;  // GRU only
  bool reverse;
  int64_t T, B, I, H;
  const Real* x;               // (T, B, I)
  const Real* h0;              // (B, H)
  const Real* c0;              // (B, H), LSTM only
  const Real* w_ih;            // (G*H, I)
  const Real* w_hh;            // (G*H, H)
  const Real* b_ih;            // (G*H) or null
  const Real* b_hh;            // (G*H) or null
  const int64_t* lengths;      // (B) or null; values in [1, T]
  Real* y;                     // (T, B, H) rows of ldy elements
  int64_t ldy;
  Real* h_n;                   // (B, H)
  Real* c_n;                   // (B, H), LSTM only
  Real* gates;                 // saved (see above)
  Real* h_prev;
  Real* aux;                   // LSTM, GRU
  Real* aux2;                  // LSTM
  Real* w_hh_t;                // scratch (H, G*H): w_hh transposed
};

template <typename Real>
struct RnnBackwardPlan {
  RnnCell cell;
  bool linear_before_reset;
  bool reverse;
  int64_t T, B, I, H;
  Real cell_grad_clip;         // LSTM: clip dL/dc to [-clip, clip] at every step when > 0
  const Real* x;
  const Real* w_ih;
  const Real* w_hh;
  const int64_t* lengths;
  const Real* gates;           // saved by forward
  const Real* h_prev;
  const Real* aux;
  const Real* aux2;
  const Real* dy;              // (T, B, H) rows of ldy, or null
  int64_t ldy;
  const Real* dh_n;            // (B, H) or null
  const Real* dc_n;            // (B, H) or null, LSTM only
  Real* dx;                    // (T, B, I)
  bool accumulate_dx;          // dx += instead of dx =
  Real* dh0;                   // (B, H)
  Real* dc0;                   // (B, H), LSTM only: also the running dL/dc during the steps
  Real* dw_ih;                 // (G*H, I)
  Real* dw_hh;                 // (G*H, H)
  Real* db_ih;                 // (G*H) or null
  Real* db_hh;                 // (G*H) or null
  Real* dgates;                // scratch (T, B, G*H): gradients of the input-path pre-activations
  Real* dhn;                   // scratch (T, B, H), GRU(linear_before_reset) only: of W_hn h + b_hn
  Real* carry;                 // scratch (B, H): the part of dL/dh_{t-1} that does not go through w_hh
};

// Two-dimensional (grid) recurrence (csrc/rnn/grid_rnn.h is the spec):
//   h[i, j] = tanh(W_ih x[i, j] + b + W_left h[i, j-1] + W_up h[i-1, j]), zero states outside the grid,
// x (R, C, B, I), h (R, C, B, H) position-major. The positions of one anti-diagonal i + j = d are
// independent: forward runs one step kernel per diagonal (R + C - 1 launches) after one GEMM for
// the input projection; backward the diagonals in reverse, then GEMMs for dx and the weights.
template <typename Real>
struct GridRnnPlan {
  int64_t R, C, B, I, H;
  const Real* x;               // (R, C, B, I)
  const Real* w_ih;            // (H, I)
  const Real* w_left;          // (H, H)
  const Real* w_up;            // (H, H)
  const Real* bias;            // forward: (H) or null
  Real* h;                     // forward: out; backward: the forward's output
  const Real* dh;              // backward: (R, C, B, H)
  Real* dx;                    // backward: (R, C, B, I)
  Real* dw_ih;                 // (H, I)
  Real* dw_left;               // (H, H)
  Real* dw_up;                 // (H, H)
  Real* db;                    // (H) or null
  Real* scratch;               // forward: (2, H, H) for w_left^T, w_up^T; backward: (R, C, B, H) dL/d(pre)
};

template <typename T>
void grid_rnn_forward(const GridRnnPlan<T>& plan, cudaStream_t stream);
template <typename T>
void grid_rnn_backward(const GridRnnPlan<T>& plan, cudaStream_t stream);
template <typename T>
void grid_rnn_forward_simulated_on_host(const GridRnnPlan<T>& plan);
template <typename T>
void grid_rnn_backward_simulated_on_host(const GridRnnPlan<T>& plan);

template <typename T>
void rnn_forward(const RnnForwardPlan<T>& plan, cudaStream_t stream);
template <typename T>
void rnn_backward(const RnnBackwardPlan<T>& plan, cudaStream_t stream);

template <typename T>
void rnn_forward_simulated_on_host(const RnnForwardPlan<T>& plan);
template <typename T>
void rnn_backward_simulated_on_host(const RnnBackwardPlan<T>& plan);

}  // namespace rb::cuda
