// Reference grid recurrence: plain loops, one position and batch row at a time. The spec (grid_rnn.h).
#include <algorithm>
#include <cmath>
#include <vector>

#include "rnn/grid_rnn.h"

namespace rb {

// x (R,C,B,I), w_ih (H,I), w_left/w_up (H,H), bias (H) -> h (R,C,B,H)
template <typename T>
void grid_rnn_forward_ref(const GridRnnArgs<T>& a) {
  const int64_t B = a.B, I = a.I, H = a.H;
  for (int64_t i = 0; i < a.R; ++i)
    for (int64_t j = 0; j < a.C; ++j)
      for (int64_t b = 0; b < B; ++b) {
        const T* x = a.x + ((i * a.C + j) * B + b) * I;
        const T* left = j > 0 ? a.h + ((i * a.C + j - 1) * B + b) * H : nullptr;
        const T* up = i > 0 ? a.h + (((i - 1) * a.C + j) * B + b) * H : nullptr;
        T* h = a.h + ((i * a.C + j) * B + b) * H;
        for (int64_t u = 0; u < H; ++u) {
          T pre = a.bias ? a.bias[u] : T(0);
          for (int64_t k = 0; k < I; ++k) pre += a.w_ih[u * I + k] * x[k];
          if (left)
            for (int64_t k = 0; k < H; ++k) pre += a.w_left[u * H + k] * left[k];
          if (up)
            for (int64_t k = 0; k < H; ++k) pre += a.w_up[u * H + k] * up[k];
          h[u] = std::tanh(pre);
        }
      }
}

// h (R,C,B,H) from forward, dh (R,C,B,H) -> dx (R,C,B,I), dw_ih (H,I), dw_left/dw_up (H,H), db (H)
template <typename T>
void grid_rnn_backward_ref(const GridRnnArgs<T>& a) {
  const int64_t R = a.R, C = a.C, B = a.B, I = a.I, H = a.H;
  // dpre[p] = dL/d(pre-activation) at position p; filled in reverse raster order.
  std::vector<T> dpre(R * C * B * H, T(0));
  std::fill(a.dw_ih, a.dw_ih + H * I, T(0));
  std::fill(a.dw_left, a.dw_left + H * H, T(0));
  std::fill(a.dw_up, a.dw_up + H * H, T(0));
  if (a.db) std::fill(a.db, a.db + H, T(0));
  for (int64_t i = R - 1; i >= 0; --i)
    for (int64_t j = C - 1; j >= 0; --j)
      for (int64_t b = 0; b < B; ++b) {
        const int64_t p = (i * C + j) * B + b;
        const T* right = j + 1 < C ? &dpre[((i * C + j + 1) * B + b) * H] : nullptr;
        const T* below = i + 1 < R ? &dpre[(((i + 1) * C + j) * B + b) * H] : nullptr;
        for (int64_t k = 0; k < H; ++k) {
          T g = a.dh[p * H + k];
          if (right)
            for (int64_t u = 0; u < H; ++u) g += right[u] * a.w_left[u * H + k];
          if (below)
            for (int64_t u = 0; u < H; ++u) g += below[u] * a.w_up[u * H + k];
          const T h = a.h[p * H + k];
          dpre[p * H + k] = g * (T(1) - h * h);
        }
        const T* d = &dpre[p * H];
        const T* x = a.x + p * I;
        const T* left = j > 0 ? a.h + ((i * C + j - 1) * B + b) * H : nullptr;
        const T* up = i > 0 ? a.h + (((i - 1) * C + j) * B + b) * H : nullptr;
        for (int64_t u = 0; u < H; ++u) {
          for (int64_t k = 0; k < I; ++k) a.dw_ih[u * I + k] += d[u] * x[k];
          if (left)
            for (int64_t k = 0; k < H; ++k) a.dw_left[u * H + k] += d[u] * left[k];
          if (up)
            for (int64_t k = 0; k < H; ++k) a.dw_up[u * H + k] += d[u] * up[k];
          if (a.db) a.db[u] += d[u];
        }
        for (int64_t k = 0; k < I; ++k) {
          T s = T(0);
          for (int64_t u = 0; u < H; ++u) s += d[u] * a.w_ih[u * I + k];
          a.dx[p * I + k] = s;
        }
      }
}

template void grid_rnn_forward_ref<float>(const GridRnnArgs<float>&);
template void grid_rnn_forward_ref<double>(const GridRnnArgs<double>&);
template void grid_rnn_backward_ref<float>(const GridRnnArgs<float>&);
template void grid_rnn_backward_ref<double>(const GridRnnArgs<double>&);

}  // namespace rb
