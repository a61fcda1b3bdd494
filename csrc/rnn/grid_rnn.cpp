// Grid recurrence, fast path and dispatch.
//
// Forward: one GEMM projects the inputs of all positions; then, row by row, one GEMM adds the upper
// neighbours' contribution to the whole row at once (the row above is complete), and position by
// position one small GEMM adds the left neighbour's, followed by a vectorised tanh.
// Backward mirrors it in reverse raster order (one GEMM per row for the gradient from below, one
// small GEMM per position for the gradient from the right), then the weight gradients are large
// GEMMs over all positions: dW_ih and dW_up one each, dW_left one per grid row.
#include <algorithm>
#include <vector>

#include "dispatch/dispatch.h"
#include "gemm/gemm.h"
#include "rnn/grid_rnn.h"
#include "rnn/rnn.h"
#include "rnn/step_gemm.h"

namespace rb {

namespace {

void grid_forward_fast(const GridRnnArgs<float>& a) {
  const int64_t C = a.C, B = a.B, I = a.I, H = a.H, P = a.R * C * B, row = C * B;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t u = 0; u < H; ++u) a.h[p * H + u] = a.bias ? a.bias[u] : 0.0f;
  gemm(P, H, I, 1.0f, MatView<const float>{a.x, I, 1}, MatView<const float>{a.w_ih, 1, I}, 1.0f,
       MatView<float>{a.h, H, 1});
  for (int64_t i = 0; i < a.R; ++i) {
    float* h_row = a.h + i * row * H;
    if (i > 0) gemm_h_wT(row, H, H, h_row - row * H, H, a.w_up, H, 1.0f, h_row, H);
    for (int64_t j = 0; j < C; ++j) {
      float* h = h_row + j * B * H;
      if (j > 0) gemm_h_wT(B, H, H, h - B * H, H, a.w_left, H, 1.0f, h, H);
      tanh_avx2(h, h, B * H);
    }
  }
}

void grid_backward_fast(const GridRnnArgs<float>& a) {
  const int64_t R = a.R, C = a.C, B = a.B, I = a.I, H = a.H, P = R * C * B, row = C * B;
  std::vector<float> dpre(a.dh, a.dh + P * H);  // accumulates dL/dh, then becomes dL/d(pre-activation)
  for (int64_t i = R - 1; i >= 0; --i) {
    float* d_row = dpre.data() + i * row * H;
    if (i + 1 < R) gemm_dg_w(row, H, H, d_row + row * H, H, a.w_up, H, 1.0f, d_row, H);
    for (int64_t j = C - 1; j >= 0; --j) {
      float* d = d_row + j * B * H;
      if (j + 1 < C) gemm_dg_w(B, H, H, d + B * H, H, a.w_left, H, 1.0f, d, H);
      tanh_backward_avx2(a.h + (i * row + j * B) * H, d, d, B * H);
    }
  }
  const float* dp = dpre.data();
  gemm(P, I, H, 1.0f, MatView<const float>{dp, H, 1}, MatView<const float>{a.w_ih, I, 1}, 0.0f,
       MatView<float>{a.dx, I, 1});
  gemm(H, I, P, 1.0f, MatView<const float>{dp, 1, H}, MatView<const float>{a.x, I, 1}, 0.0f,
       MatView<float>{a.dw_ih, I, 1});
  // Every position below the first row pairs with the one above it: rows shifted by one grid row.
  gemm(H, H, P - row, 1.0f, MatView<const float>{dp + row * H, 1, H}, MatView<const float>{a.h, H, 1}, 0.0f,
       MatView<float>{a.dw_up, H, 1});
  // Left neighbours exist within a grid row only: one GEMM per grid row.
  std::fill(a.dw_left, a.dw_left + H * H, 0.0f);
  for (int64_t i = 0; i < R; ++i)
    gemm(H, H, (C - 1) * B, 1.0f, MatView<const float>{dp + (i * row + B) * H, 1, H},
         MatView<const float>{a.h + i * row * H, H, 1}, 1.0f, MatView<float>{a.dw_left, H, 1});
  if (a.db) {
    const std::vector<float> ones(P, 1.0f);
    gemm(1, H, P, 1.0f, MatView<const float>{ones.data(), P, 1}, MatView<const float>{dp, H, 1}, 0.0f,
         MatView<float>{a.db, H, 1});
  }
}

}  // namespace

void grid_rnn_forward(const GridRnnArgs<float>& a) {
  if (active_isa() == Isa::avx2) {
    grid_forward_fast(a);
    record_impl("grid_rnn_forward", "avx2_gemm");
  } else {
    grid_rnn_forward_ref(a);
    record_impl("grid_rnn_forward", "scalar_ref");
  }
}

void grid_rnn_backward(const GridRnnArgs<float>& a) {
  if (active_isa() == Isa::avx2) {
    grid_backward_fast(a);
    record_impl("grid_rnn_backward", "avx2_gemm");
  } else {
    grid_rnn_backward_ref(a);
    record_impl("grid_rnn_backward", "scalar_ref");
  }
}

void grid_rnn_forward(const GridRnnArgs<double>& a) {
  grid_rnn_forward_ref(a);
  record_impl("grid_rnn_forward", "scalar_ref");
}

void grid_rnn_backward(const GridRnnArgs<double>& a) {
  grid_rnn_backward_ref(a);
  record_impl("grid_rnn_backward", "scalar_ref");
}

}  // namespace rb
