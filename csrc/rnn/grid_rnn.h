// Two-dimensional (grid) recurrence: each position of an image-like grid receives the states of its
// left and upper neighbours (a multi-dimensional RNN, Graves et al. 2007, one scan direction).
//
//   h[i, j] = tanh(W_ih x[i, j] + b + W_left h[i, j-1] + W_up h[i-1, j]),   h[-1, .] = h[., -1] = 0
//
// Layout, position-major: x (R, C, B, I), h (R, C, B, H) for a grid of R rows and C columns;
// W_ih (H, I), W_left and W_up (H, H), b (H). Positions run in raster order (row by row, left to
// right); backward runs the reverse order, where each position's gradient collects its own output
// gradient and those flowing back from its right and lower neighbours.
#pragma once
#include <cstdint>

namespace rb {

template <typename Real>
struct GridRnnArgs {
  int64_t R, C, B, I, H;
  const Real* x;       // (R, C, B, I)
  const Real* w_ih;    // (H, I)
  const Real* w_left;  // (H, H)
  const Real* w_up;    // (H, H)
  const Real* bias;    // (H) or null
  Real* h;             // forward: out (R, C, B, H); backward: the forward's output, in
  // backward only
  const Real* dh;      // (R, C, B, H) gradient of the loss with respect to h
  Real* dx;            // (R, C, B, I)
  Real* dw_ih;         // (H, I)
  Real* dw_left;       // (H, H)
  Real* dw_up;         // (H, H)
  Real* db;            // (H) or null
};

void grid_rnn_forward(const GridRnnArgs<float>& a);
void grid_rnn_forward(const GridRnnArgs<double>& a);
void grid_rnn_backward(const GridRnnArgs<float>& a);
void grid_rnn_backward(const GridRnnArgs<double>& a);

template <typename T>
void grid_rnn_forward_ref(const GridRnnArgs<T>& a);
template <typename T>
void grid_rnn_backward_ref(const GridRnnArgs<T>& a);

}  // namespace rb
