// Reference recurrent kernels: plain loops, one batch row and one step at a time. This is the spec
// (equations in rnn.h); the fast path in rnn.cpp must agree with it.
#include <algorithm>
#include <cmath>
#include <vector>

#include "rnn/rnn.h"

namespace rb {

namespace {

template <typename T>
T sigmoid(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

// sum_k w[k] * v[k]
template <typename T>
T dot(const T* w, const T* v, int64_t n) {
  T s = T(0);
  for (int64_t k = 0; k < n; ++k) s += w[k] * v[k];
  return s;
}

inline bool row_active(const int64_t* lengths, int64_t b, int64_t t) { return !lengths || t < lengths[b]; }

}  // namespace

// x (T,B,I), h0/c0 (B,H), w_ih (G*H,I), w_hh (G*H,H), b_* (G*H); y (T,B,ldy), h_n/c_n (B,H);
// saved gates (T,B,G*H), h_prev/aux/aux2 (T,B,H).
template <typename T>
void rnn_forward_ref(const RnnForwardArgs<T>& a) {
  const int64_t B = a.B, I = a.I, H = a.H, G = rnn_gate_count(a.cell), GH = G * H;
  const bool lstm = a.cell == RnnCell::lstm, gru = a.cell == RnnCell::gru;
  std::vector<T> h(a.h0, a.h0 + B * H), c(lstm ? B * H : 0), px(GH), ph(GH), rh(H);
  if (lstm) std::copy(a.c0, a.c0 + B * H, c.begin());

  for (int64_t s = 0; s < a.T; ++s) {
    const int64_t t = a.reverse ? a.T - 1 - s : s;
    for (int64_t b = 0; b < B; ++b) {
      const int64_t row = t * B + b;
      T* hb = &h[b * H];
      T* gates = a.gates + row * GH;
      T* y = a.y + row * a.ldy;
      const bool active = row_active(a.lengths, b, t);
      std::copy(hb, hb + H, a.h_prev + row * H);
      if (lstm) std::copy(&c[b * H], &c[b * H] + H, a.aux + row * H);

      // Both projections, biases included: px = W_ih x + b_ih, ph = W_hh h + b_hh.
      for (int64_t r = 0; r < GH; ++r) {
        px[r] = (a.b_ih ? a.b_ih[r] : T(0)) + dot(a.w_ih + r * I, a.x + row * I, I);
        ph[r] = (a.b_hh ? a.b_hh[r] : T(0)) + dot(a.w_hh + r * H, hb, H);
      }
      if (gru && !a.linear_before_reset) {
        // Cho's form: the n rows of W_hh see r * h, not h.
        for (int64_t j = 0; j < H; ++j) rh[j] = sigmoid(px[j] + ph[j]) * hb[j];
        for (int64_t j = 0; j < H; ++j)
          ph[2 * H + j] = (a.b_hh ? a.b_hh[2 * H + j] : T(0)) + dot(a.w_hh + (2 * H + j) * H, rh.data(), H);
        std::copy(rh.begin(), rh.end(), a.aux + row * H);
      }

      for (int64_t j = 0; j < H; ++j) {
        T h_new, c_new = T(0);
        if (lstm) {
          const T i = sigmoid(px[j] + ph[j]), f = sigmoid(px[H + j] + ph[H + j]);
          const T g = std::tanh(px[2 * H + j] + ph[2 * H + j]), o = sigmoid(px[3 * H + j] + ph[3 * H + j]);
          gates[j] = i, gates[H + j] = f, gates[2 * H + j] = g, gates[3 * H + j] = o;
          c_new = f * c[b * H + j] + i * g;
          const T tc = std::tanh(c_new);
          a.aux2[row * H + j] = tc;
          h_new = o * tc;
        } else if (gru) {
          const T r = sigmoid(px[j] + ph[j]), z = sigmoid(px[H + j] + ph[H + j]);
          T n;
          if (a.linear_before_reset) {
            a.aux[row * H + j] = ph[2 * H + j];
            n = std::tanh(px[2 * H + j] + r * ph[2 * H + j]);
          } else {
            n = std::tanh(px[2 * H + j] + ph[2 * H + j]);
          }
          gates[j] = r, gates[H + j] = z, gates[2 * H + j] = n;
          h_new = (T(1) - z) * n + z * hb[j];
        } else {
          const T v = px[j] + ph[j];
          h_new = a.cell == RnnCell::rnn_relu ? std::max(v, T(0)) : std::tanh(v);
          gates[j] = h_new;
        }
        if (active) {
          hb[j] = h_new;
          if (lstm) c[b * H + j] = c_new;
          y[j] = h_new;
        } else {
          y[j] = T(0);
        }
      }
    }
  }
  std::copy(h.begin(), h.end(), a.h_n);
  if (lstm) std::copy(c.begin(), c.end(), a.c_n);
}

// Back-propagation through time over the saved activations, in the reverse of the forward order.
// dy (T,B,ldy), dh_n/dc_n (B,H); dx (T,B,I), dh0/dc0 (B,H), dw_ih (G*H,I), dw_hh (G*H,H), db_* (G*H).
template <typename T>
void rnn_backward_ref(const RnnBackwardArgs<T>& a) {
  const int64_t B = a.B, I = a.I, H = a.H, G = rnn_gate_count(a.cell), GH = G * H;
  const bool lstm = a.cell == RnnCell::lstm, gru = a.cell == RnnCell::gru;
  const bool cho = gru && !a.linear_before_reset;
  std::vector<T> dh(B * H, T(0)), dc(lstm ? B * H : 0, T(0));
  if (a.dh_n) std::copy(a.dh_n, a.dh_n + B * H, dh.begin());
  if (lstm && a.dc_n) std::copy(a.dc_n, a.dc_n + B * H, dc.begin());
  std::fill(a.dw_ih, a.dw_ih + GH * I, T(0));
  std::fill(a.dw_hh, a.dw_hh + GH * H, T(0));
  if (a.db_ih) std::fill(a.db_ih, a.db_ih + GH, T(0));
  if (a.db_hh) std::fill(a.db_hh, a.db_hh + GH, T(0));
  if (!a.accumulate_dx) std::fill(a.dx, a.dx + a.T * B * I, T(0));

  // dgx: gradient of the input-path pre-activations (W_ih x + b_ih); dgh: of the hidden path
  // (W_hh h + b_hh, or W_hn (r * h) + b_hn for Cho's n rows); they differ only in GRU's n rows.
  std::vector<T> dht(H), dgx(GH), dgh(GH), dh_direct(H), drh(H);
  for (int64_t s = a.T - 1; s >= 0; --s) {
    const int64_t t = a.reverse ? a.T - 1 - s : s;
    for (int64_t b = 0; b < B; ++b) {
      if (!row_active(a.lengths, b, t)) continue;  // state was carried: dh, dc pass unchanged
      const int64_t row = t * B + b;
      const T* gates = a.gates + row * GH;
      const T* hp = a.h_prev + row * H;
      const T* aux = a.aux ? a.aux + row * H : nullptr;
      for (int64_t j = 0; j < H; ++j) dht[j] = dh[b * H + j] + (a.dy ? a.dy[row * a.ldy + j] : T(0));

      for (int64_t j = 0; j < H; ++j) {
        if (lstm) {
          const T i = gates[j], f = gates[H + j], g = gates[2 * H + j], o = gates[3 * H + j];
          const T tc = a.aux2[row * H + j];
          T dct = dc[b * H + j] + dht[j] * o * (T(1) - tc * tc);
          if (a.cell_grad_clip > T(0)) dct = std::min(std::max(dct, -a.cell_grad_clip), a.cell_grad_clip);
          dgx[j] = dct * g * i * (T(1) - i);
          dgx[H + j] = dct * aux[j] * f * (T(1) - f);
          dgx[2 * H + j] = dct * i * (T(1) - g * g);
          dgx[3 * H + j] = dht[j] * tc * o * (T(1) - o);
          dc[b * H + j] = dct * f;
          dh_direct[j] = T(0);
        } else if (gru) {
          const T z = gates[H + j], n = gates[2 * H + j];
          const T dn_pre = dht[j] * (T(1) - z) * (T(1) - n * n);
          dgx[H + j] = dht[j] * (hp[j] - n) * z * (T(1) - z);
          dgx[2 * H + j] = dn_pre;
          dh_direct[j] = dht[j] * z;
        } else {
          const T v = gates[j];
          // relu: zero unless h' <= 0, so a NaN h' passes the gradient (torch's threshold_backward)
          dgx[j] = a.cell == RnnCell::rnn_relu ? (v <= T(0) ? T(0) : dht[j]) : dht[j] * (T(1) - v * v);
          dh_direct[j] = T(0);
        }
      }
      if (gru) {
        // The reset gate's gradient needs the whole n block first in Cho's form (through W_hn).
        for (int64_t k = 0; k < H; ++k) {
          drh[k] = T(0);
          if (cho)
            for (int64_t j = 0; j < H; ++j) drh[k] += dgx[2 * H + j] * a.w_hh[(2 * H + j) * H + k];
        }
        for (int64_t j = 0; j < H; ++j) {
          const T r = gates[j];
          const T dr = cho ? drh[j] * hp[j] : dgx[2 * H + j] * aux[j];  // aux: W_hn h + b_hn
          dgx[j] = dr * r * (T(1) - r);
          if (cho) dh_direct[j] += drh[j] * r;
        }
      }
      std::copy(dgx.begin(), dgx.end(), dgh.begin());
      if (gru && a.linear_before_reset)
        for (int64_t j = 0; j < H; ++j) dgh[2 * H + j] = dgx[2 * H + j] * gates[j];

      // Weight and bias gradients, and dx.
      const T* x = a.x + row * I;
      for (int64_t r = 0; r < GH; ++r) {
        const T* h_in = cho && r >= 2 * H ? aux : hp;  // Cho's n rows multiply r * h
        for (int64_t k = 0; k < I; ++k) a.dw_ih[r * I + k] += dgx[r] * x[k];
        for (int64_t k = 0; k < H; ++k) a.dw_hh[r * H + k] += dgh[r] * h_in[k];
        if (a.db_ih) a.db_ih[r] += dgx[r];
        if (a.db_hh) a.db_hh[r] += dgh[r];
      }
      for (int64_t k = 0; k < I; ++k) {
        T sum = T(0);
        for (int64_t r = 0; r < GH; ++r) sum += dgx[r] * a.w_ih[r * I + k];
        a.dx[row * I + k] += sum;
      }
      // dh for the previous step: through W_hh (Cho's n rows already went through drh) plus the direct part.
      const int64_t through_rows = cho ? 2 * H : GH;
      for (int64_t k = 0; k < H; ++k) {
        T sum = dh_direct[k];
        for (int64_t r = 0; r < through_rows; ++r) sum += dgh[r] * a.w_hh[r * H + k];
        dh[b * H + k] = sum;
      }
    }
  }
  std::copy(dh.begin(), dh.end(), a.dh0);
  if (lstm) std::copy(dc.begin(), dc.end(), a.dc0);
}

template void rnn_forward_ref<float>(const RnnForwardArgs<float>&);
template void rnn_forward_ref<double>(const RnnForwardArgs<double>&);
template void rnn_backward_ref<float>(const RnnBackwardArgs<float>&);
template void rnn_backward_ref<double>(const RnnBackwardArgs<double>&);

}  // namespace rb
