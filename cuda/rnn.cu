// Recurrent layers: the step kernels, the per-call drivers, and their host simulation (see rnn.h).
//
// The step kernel. A block owns a tile of 16 batch rows x 16 hidden units. It computes
//   forward:  P[b][g*16 + u] = sum_j  S[b][j] * w_hh[g*H + u][j]       for its units' gate rows g
//   backward: P[b][u]        = sum_g sum_j dG_g[b][j] * w_hh[g*H + j][u]
// (S is h_{t-1}, or r * h for Cho's n rows; dG_g the later step's gate gradients), then applies
// the cell's element-wise work to its (row, unit) pairs in the epilogue, so each step is one launch.
// The reduction dimension is walked in chunks of kChunk: each chunk's slice of the row operand A
// (16 x kChunk) and of the column operand B (kChunk x C, C = 16 per gate block in the product) is
// fetched from global memory into registers one chunk ahead, then stored in shared memory k-major.
// The block's threads form kGroups groups of C threads; a group's thread owns a 4 x 4 piece of the
// 16 x C tile and accumulates it over every kGroups-th index of each chunk (a split of the
// reduction, so that a small tile still keeps 256 threads busy). The groups' partial tiles are then
// summed through shared memory and each (row, unit) pair's gate sums go to the epilogue.
//
// The kernel's pieces are __host__ __device__ functions of the thread index: the host simulation
// below runs them for every thread of every block, phase by phase between the barriers, with the
// drivers' exact sequence of launches, so tests can check the whole computation without a GPU.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "check.h"
#include "kernels.h"
#include "rnn.h"

namespace rb::cuda {
namespace {

#define RB_HD __host__ __device__ __forceinline__

// ---- element-wise math, the same on host and device --------------------------------------------
RB_HD float exp_hd(float v) { return expf(v); }
RB_HD double exp_hd(double v) { return exp(v); }
RB_HD float tanh_hd(float v) { return tanhf(v); }
RB_HD double tanh_hd(double v) { return tanh(v); }
template <typename T>
RB_HD T sigmoid_hd(T v) {
  return T(1) / (T(1) + exp_hd(-v));
}

// What one launch of the step kernel does after its product.
enum class Step {
  lstm, gru, gru_cho_gates, gru_cho_output, rnn_tanh, rnn_relu,           // forward
  back_lstm, back_gru, back_rnn_tanh, back_rnn_relu, back_cho_reset,      // backward
  back_final,                                                             // dh0 = product + carry
  grid, back_grid,                                                        // one diagonal of the grid recurrence
};

constexpr bool is_forward(Step k) { return k <= Step::rnn_relu || k == Step::grid; }
constexpr bool is_grid(Step k) { return k == Step::grid || k == Step::back_grid; }
// Gate blocks among the product's columns (forward) — backward products have one.
constexpr int column_blocks(Step k) {
  return k == Step::lstm ? 4 : k == Step::gru ? 3 : k == Step::gru_cho_gates ? 2 : 1;
}

constexpr int kRows = 16;   // batch rows per block
constexpr int kUnits = 16;  // hidden units per block
constexpr int kPairs = kRows * kUnits;
constexpr int kMaxReduceBlocks = 4;

// Reduction indices per chunk: fewer chunks mean fewer round trips to L2 per step (each chunk waits
// for its global loads once), bounded by the staging area (under ~45 KB) and the prefetch registers.
// float32: 256 for the 16-column products (backward, Elman, grid), 128 for 32 columns, 64 for GRU's
// 48 and LSTM's 64 (at 128, GRU's forward kernel reached the 255-register cap).
constexpr int chunk_of(int bytes, int cols) {
  return (cols <= 16 ? 256 : cols <= 32 ? 128 : 64) / (bytes / 4);
}

template <typename T, Step K>
struct Config {
  static constexpr int kCols = column_blocks(K) * kUnits;
  static constexpr int kChunk = chunk_of(sizeof(T), kCols);
  static constexpr int kGroups = 256 / kCols;                // 4, 5, 8 or 16
  static constexpr int kThreads = kGroups * kCols;           // 256, or 240 for GRU's 48 columns
  static constexpr int kLdA = kRows + 4;                     // shared A[jj][r]; multiple of 4 (float4 rows)
  static constexpr int kLdB = kCols + 4;                     // shared B[jj][c]
  static constexpr int kAPer = (kRows * kChunk + kThreads - 1) / kThreads;
  static constexpr int kBPer = (kCols * kChunk + kThreads - 1) / kThreads;
  static constexpr int kStage = kChunk * kLdA + kChunk * kLdB;
  static constexpr int kReduce = kGroups * kRows * kCols;
  static constexpr int kShared = kStage > kReduce ? kStage : kReduce;
  static_assert(kShared * sizeof(T) <= 48 * 1024, "static shared memory limit");
  static_assert((kChunk * kLdA) % 4 == 0, "B's slice must stay 16-byte aligned");
};

// One launch's arguments (passed by value). Pointers are already offset to step t.
template <typename T>
struct StepParams {
  int64_t B, H;
  // The product: n_reduce blocks of H reduction indices (0: no product, the sums are zero).
  int n_reduce;
  const T* a[kMaxReduceBlocks];       // row operand of reduce block g: A_g[b][j] = a[g][b * lda[g] + j]
  int64_t lda[kMaxReduceBlocks];
  const T* w[kMaxReduceBlocks];       // column operand: B(j, unit u) = w[g][j * ldw + u], g the reduce
  int64_t ldw;                        // block (backward) or the column gate block (forward)
  // Element-wise.
  const int64_t* lengths;             // (B) or null
  int64_t t;                          // the step (for lengths)
  bool linear_before_reset;
  T* gates;                           // (B, G*H) of step t: forward pre-activations in, activations out
  const T* b_ih;                      // forward: (G*H) or null
  const T* b_hh;
  const T* h_prev;                    // (B, H) state entering step t
  T* h_next;                          // forward: (B, H) state leaving it
  T* y;                               // forward: (B, ldy) outputs; backward: dy or null
  int64_t ldy;
  T* c_prev;                          // LSTM forward: c entering the step; backward: saved c (aux)
  T* c_next;                          // LSTM forward
  T* aux;                             // forward LSTM: tanh(c') out; GRU: hn or r * h out. backward: saved aux
  const T* aux2;                      // backward LSTM: saved tanh(c')
  T* dgates;                          // backward: (B, G*H) of step t out
  T* dhn;                             // backward GRU(linear_before_reset): (B, H) of step t out
  T* carry;                           // backward: (B, H) in / out
  T* dc;                              // backward LSTM: (B, H) in / out
  T clip;
  T* out;                             // back_final: dh0
  // Grid recurrence: the rows are (position q on the anti-diagonal i + j = diag, batch row b) with
  // q = row / batch and i = i0 + q, of an R x C grid of (batch, H) states stored position-major.
  // Reduce block 0 is the left neighbour (forward; the right one backward), block 1 the upper one
  // (the lower one); a neighbour outside the grid contributes zero. a[0] = a[1] = the state array.
  int64_t grid_R, grid_C, grid_i0, grid_diag, grid_batch;
};

template <typename T, Step K>
struct Registers {
  T acc[4][4];
  T pa[Config<T, K>::kAPer];
  T pb[Config<T, K>::kBPer];
};

// ---- the product ---------------------------------------------------------------------------------
template <typename T>
RB_HD int64_t chunks_per_block(const StepParams<T>& p, int chunk) {
  return (p.H + chunk - 1) / chunk;
}

// Grid recurrence: the element offset of row `row`'s state (row = q * batch + b) in the position-major
// (R, C, batch, H) array, and that of its neighbour through reduce block g: forward (left, up),
// backward (right, down). False when the neighbour lies outside the grid.
template <typename T>
RB_HD int64_t grid_offset(const StepParams<T>& p, int64_t row) {
  const int64_t q = row / p.grid_batch, b = row % p.grid_batch, i = p.grid_i0 + q, j = p.grid_diag - i;
  return ((i * p.grid_C + j) * p.grid_batch + b) * p.H;
}

template <typename T>
RB_HD bool grid_neighbour(const StepParams<T>& p, int g, int64_t row, bool forward, int64_t& offset) {
  const int64_t i = p.grid_i0 + row / p.grid_batch, j = p.grid_diag - i;
  const int64_t step = (g == 0 ? 1 : p.grid_C) * p.grid_batch * p.H;  // one column, or one grid row
  const bool inside = forward ? (g == 0 ? j > 0 : i > 0) : (g == 0 ? j + 1 < p.grid_C : i + 1 < p.grid_R);
  offset = grid_offset(p, row) + (forward ? -step : step);
  return inside;
}

// Thread t fetches its elements of chunk c (reduce block g = c / chunks_per_block, indices j0..) of A
// and B into registers; zero outside the matrices.
template <typename T, Step K>
RB_HD void load_chunk(int t, const StepParams<T>& p, int64_t b0, int64_t u0, int64_t c, Registers<T, K>& r) {
  using C = Config<T, K>;
  const int64_t per_block = chunks_per_block(p, C::kChunk);
  const int g = static_cast<int>(c / per_block);
  const int64_t j0 = (c % per_block) * C::kChunk;
#pragma unroll
  for (int i = 0; i < C::kAPer; ++i) {
    const int e = t + i * C::kThreads;
    const int row = e / C::kChunk, jj = e % C::kChunk;
    const int64_t b = b0 + row, j = j0 + jj;
    if constexpr (is_grid(K)) {
      int64_t offset = 0;
      const bool ok = e < kRows * C::kChunk && b < p.B && j < p.H && grid_neighbour(p, g, b, K == Step::grid, offset);
      r.pa[i] = ok ? p.a[g][offset + j] : T(0);
    } else {
      r.pa[i] = (e < kRows * C::kChunk && b < p.B && j < p.H) ? p.a[g][b * p.lda[g] + j] : T(0);
    }
  }
#pragma unroll
  for (int i = 0; i < C::kBPer; ++i) {
    const int e = t + i * C::kThreads;
    const int jj = e / C::kCols, col = e % C::kCols;
    const int gc = col / kUnits;
    const int64_t u = u0 + col % kUnits, j = j0 + jj;
    r.pb[i] = (e < C::kCols * C::kChunk && u < p.H && j < p.H) ? p.w[g + gc][j * p.ldw + u] : T(0);
  }
}

// ... and writes them k-major into shared memory: A[jj][row], B[jj][col].
template <typename T, Step K>
RB_HD void store_chunk(int t, const Registers<T, K>& r, T* shared) {
  using C = Config<T, K>;
  T* as = shared;
  T* bs = shared + C::kChunk * C::kLdA;
#pragma unroll
  for (int i = 0; i < C::kAPer; ++i) {
    const int e = t + i * C::kThreads;
    if (e < kRows * C::kChunk) as[(e % C::kChunk) * C::kLdA + e / C::kChunk] = r.pa[i];
  }
#pragma unroll
  for (int i = 0; i < C::kBPer; ++i) {
    const int e = t + i * C::kThreads;
    if (e < C::kCols * C::kChunk) bs[(e / C::kCols) * C::kLdB + e % C::kCols] = r.pb[i];
  }
}

// Thread t's group and 4 x 4 piece of the tile.
template <typename T, Step K>
struct Piece {
  int group, row0, col0;
  RB_HD explicit Piece(int t) {
    using C = Config<T, K>;
    const int q = t % C::kCols, col_groups = C::kCols / 4;
    group = t / C::kCols;
    row0 = (q / col_groups) * 4;
    col0 = (q % col_groups) * 4;
  }
};

template <typename T>
RB_HD void load4(const T* s, T (&v)[4]) {
#ifdef __CUDA_ARCH__
  constexpr bool vector = std::is_same_v<T, float>;
#else
  constexpr bool vector = false;
#endif
  if constexpr (vector) {  // 16-byte aligned: row strides and offsets are multiples of 4
    const float4 q = *reinterpret_cast<const float4*>(s);
    v[0] = q.x; v[1] = q.y; v[2] = q.z; v[3] = q.w;
  } else {
    for (int i = 0; i < 4; ++i) v[i] = s[i];
  }
}

template <typename T, Step K>
RB_HD void accumulate_chunk(int t, const T* shared, Registers<T, K>& r) {
  using C = Config<T, K>;
  const Piece<T, K> piece(t);
  const T* as = shared;
  const T* bs = shared + C::kChunk * C::kLdA;
  for (int jj = piece.group; jj < C::kChunk; jj += C::kGroups) {
    T av[4], bv[4];
    load4(as + jj * C::kLdA + piece.row0, av);
    load4(bs + jj * C::kLdB + piece.col0, bv);
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
      for (int j = 0; j < 4; ++j) r.acc[i][j] += av[i] * bv[j];
  }
}

// Partial tiles of the groups into shared memory (aliasing the staging area: after a barrier).
template <typename T, Step K>
RB_HD void store_partials(int t, const Registers<T, K>& r, T* shared) {
  using C = Config<T, K>;
  const Piece<T, K> piece(t);
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) shared[(piece.group * kRows + piece.row0 + i) * C::kCols + piece.col0 + j] = r.acc[i][j];
}

// ---- the epilogues: one (batch row b, hidden unit u) pair, s[g] the product for gate block g -------
template <typename T>
RB_HD bool active(const StepParams<T>& p, int64_t b) {
  return !p.lengths || p.t < p.lengths[b];
}

template <typename T>
RB_HD T bias(const StepParams<T>& p, int64_t r) {
  return (p.b_ih ? p.b_ih[r] : T(0)) + (p.b_hh ? p.b_hh[r] : T(0));
}

// The new state (or the carried one, for a row past its length) and the output.
template <typename T>
RB_HD void store_state(const StepParams<T>& p, int64_t b, int64_t u, T h, T c, bool lstm) {
  const int64_t i = b * p.H + u;
  if (active(p, b)) {
    p.h_next[i] = h;
    if (lstm) p.c_next[i] = c;
    p.y[b * p.ldy + u] = h;
  } else {
    p.h_next[i] = p.h_prev[i];
    if (lstm) p.c_next[i] = p.c_prev[i];
    p.y[b * p.ldy + u] = T(0);
  }
}

template <typename T, Step K>
RB_HD void forward_pair(const StepParams<T>& p, int64_t b, int64_t u, const T* s) {
  const int64_t H = p.H, i = b * H + u;
  if constexpr (K == Step::lstm) {
    T* g = p.gates + b * 4 * H;
    const T gi = sigmoid_hd(g[u] + s[0] + bias(p, u));
    const T gf = sigmoid_hd(g[H + u] + s[1] + bias(p, H + u));
    const T gg = tanh_hd(g[2 * H + u] + s[2] + bias(p, 2 * H + u));
    const T go = sigmoid_hd(g[3 * H + u] + s[3] + bias(p, 3 * H + u));
    g[u] = gi, g[H + u] = gf, g[2 * H + u] = gg, g[3 * H + u] = go;
    const T c = gf * p.c_prev[i] + gi * gg;
    const T tc = tanh_hd(c);
    p.aux[i] = tc;
    store_state(p, b, u, go * tc, c, true);
  } else if constexpr (K == Step::gru || K == Step::gru_cho_gates) {
    T* g = p.gates + b * 3 * H;
    const T r = sigmoid_hd(g[u] + s[0] + bias(p, u));
    const T z = sigmoid_hd(g[H + u] + s[1] + bias(p, H + u));
    g[u] = r, g[H + u] = z;
    const T hp = p.h_prev[i];
    if constexpr (K == Step::gru) {  // linear_before_reset: n = tanh(x_n + r * (W_hn h + b_hn))
      const T hn = s[2] + (p.b_hh ? p.b_hh[2 * H + u] : T(0));
      p.aux[i] = hn;
      const T n = tanh_hd(g[2 * H + u] + (p.b_ih ? p.b_ih[2 * H + u] : T(0)) + r * hn);
      g[2 * H + u] = n;
      store_state(p, b, u, (T(1) - z) * n + z * hp, T(0), false);
    } else {  // Cho, first phase: r * h for the n rows' product
      p.aux[i] = r * hp;
    }
  } else if constexpr (K == Step::gru_cho_output) {
    T* g = p.gates + b * 3 * H;
    const T z = g[H + u];
    const T n = tanh_hd(g[2 * H + u] + s[0] + bias(p, 2 * H + u));
    g[2 * H + u] = n;
    store_state(p, b, u, (T(1) - z) * n + z * p.h_prev[i], T(0), false);
  } else if constexpr (K == Step::grid) {  // h = tanh(W_ih x (already in h) + b + W_left h_left + W_up h_up)
    T* h = p.gates + grid_offset(p, b) + u;
    *h = tanh_hd(*h + s[0] + (p.b_ih ? p.b_ih[u] : T(0)));
  } else {  // Elman
    T* g = p.gates + b * H;
    const T v = g[u] + s[0] + bias(p, u);
    const T h = K == Step::rnn_relu ? (v <= T(0) ? T(0) : v) : tanh_hd(v);  // relu keeps a NaN, as the CPU
    g[u] = h;
    store_state(p, b, u, h, T(0), false);
  }
}

template <typename T, Step K>
RB_HD void backward_pair(const StepParams<T>& p, int64_t b, int64_t u, const T* s) {
  const int64_t H = p.H, i = b * H + u;
  if constexpr (K == Step::back_grid) {  // dL/d(pre) = (dh + from the right and lower neighbours) (1 - h^2)
    const int64_t e = grid_offset(p, b) + u;
    const T h = p.h_prev[e];
    p.dgates[e] = (p.y[e] + s[0]) * (T(1) - h * h);
  } else if constexpr (K == Step::back_final) {
    p.out[i] = s[0] + p.carry[i];
  } else if constexpr (K == Step::back_cho_reset) {  // s: gradient of r * h (through W_hn)
    T* dg = p.dgates + b * 3 * H;
    if (active(p, b)) {
      const T r = p.gates[b * 3 * H + u];
      dg[u] = s[0] * p.h_prev[i] * r * (T(1) - r);
      p.carry[i] += s[0] * r;
    } else {
      dg[u] = T(0);
    }
  } else {
    constexpr int G = K == Step::back_lstm ? 4 : K == Step::back_gru ? 3 : 1;
    T* dg = p.dgates + b * G * H;
    const T* g = p.gates + b * G * H;
    const T dh_in = s[0] + p.carry[i];  // dL/dh' of step t
    if (!active(p, b)) {                // the state was carried: its gradient passes unchanged
      for (int k = 0; k < G; ++k) dg[k * H + u] = T(0);
      if (K == Step::back_gru && p.linear_before_reset) p.dhn[i] = T(0);
      p.carry[i] = dh_in;
      return;
    }
    const T dht = dh_in + (p.y ? p.y[b * p.ldy + u] : T(0));
    if constexpr (K == Step::back_lstm) {
      const T gi = g[u], gf = g[H + u], gg = g[2 * H + u], go = g[3 * H + u];
      const T tc = p.aux2[i];
      T dct = p.dc[i] + dht * go * (T(1) - tc * tc);
      if (p.clip > T(0)) dct = dct < -p.clip ? -p.clip : dct > p.clip ? p.clip : dct;
      dg[u] = dct * gg * gi * (T(1) - gi);
      dg[H + u] = dct * p.c_prev[i] * gf * (T(1) - gf);
      dg[2 * H + u] = dct * gi * (T(1) - gg * gg);
      dg[3 * H + u] = dht * tc * go * (T(1) - go);
      p.dc[i] = dct * gf;
      p.carry[i] = T(0);
    } else if constexpr (K == Step::back_gru) {
      const T z = g[H + u], n = g[2 * H + u], hp = p.h_prev[i];
      const T dn = dht * (T(1) - z) * (T(1) - n * n);
      dg[H + u] = dht * (hp - n) * z * (T(1) - z);
      dg[2 * H + u] = dn;
      p.carry[i] = dht * z;
      if (p.linear_before_reset) {  // n = tanh(x_n + r * hn), hn = W_hn h + b_hn saved in aux
        const T r = g[u];
        dg[u] = dn * p.c_prev[i] * r * (T(1) - r);
        p.dhn[i] = dn * r;
      }  // Cho: dr needs the whole n block (back_cho_reset, the next launch)
    } else {
      const T v = g[u];
      dg[u] = K == Step::back_rnn_relu ? (v <= T(0) ? T(0) : dht) : dht * (T(1) - v * v);
      p.carry[i] = T(0);
    }
  }
}

// The epilogue of thread t: sums the groups' partials for its pairs and applies the cell's work.
template <typename T, Step K>
RB_HD void finish(int t, const StepParams<T>& p, int64_t b0, int64_t u0, const T* shared) {
  using C = Config<T, K>;
  for (int pair = t; pair < kPairs; pair += C::kThreads) {
    const int row = pair / kUnits, unit = pair % kUnits;
    const int64_t b = b0 + row, u = u0 + unit;
    if (b >= p.B || u >= p.H) continue;
    T s[column_blocks(K)];
    for (int gc = 0; gc < column_blocks(K); ++gc) {
      T sum = T(0);
      for (int group = 0; group < C::kGroups; ++group) sum += shared[(group * kRows + row) * C::kCols + gc * kUnits + unit];
      s[gc] = sum;
    }
    if constexpr (is_forward(K)) forward_pair<T, K>(p, b, u, s);
    else backward_pair<T, K>(p, b, u, s);
  }
}

template <typename T, Step K>
__global__ void __launch_bounds__(Config<T, K>::kThreads) step_kernel(StepParams<T> p) {
  using C = Config<T, K>;
  __shared__ __align__(16) T shared[C::kShared];
  const int t = threadIdx.x;
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * kRows, u0 = static_cast<int64_t>(blockIdx.y) * kUnits;
  Registers<T, K> r;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) r.acc[i][j] = T(0);
  const int64_t chunks = p.n_reduce * chunks_per_block(p, C::kChunk);  // the same for every thread
  if (chunks > 0) load_chunk<T, K>(t, p, b0, u0, 0, r);
  for (int64_t c = 0; c < chunks; ++c) {
    store_chunk<T, K>(t, r, shared);
    __syncthreads();
    if (c + 1 < chunks) load_chunk<T, K>(t, p, b0, u0, c + 1, r);  // in flight during the arithmetic
    accumulate_chunk<T, K>(t, shared, r);
    __syncthreads();  // every read of the slices done before the next store (or the partials)
  }
  store_partials<T, K>(t, r, shared);
  __syncthreads();
  finish<T, K>(t, p, b0, u0, shared);
}

// The same on the host: each barrier-separated phase for every thread before the next.
template <typename T, Step K>
void simulate_step_on_host(const StepParams<T>& p) {
  using C = Config<T, K>;
  std::vector<Registers<T, K>> threads(C::kThreads);
  std::vector<T> shared(C::kShared);
  const int64_t chunks = p.n_reduce * chunks_per_block(p, C::kChunk);
  for (int64_t b0 = 0; b0 < p.B; b0 += kRows) {
    for (int64_t u0 = 0; u0 < p.H; u0 += kUnits) {
      // Poison the shared memory: a read of an element no thread stored shows up as NaN.
      std::fill(shared.begin(), shared.end(), std::numeric_limits<T>::quiet_NaN());
      for (auto& r : threads) std::fill(&r.acc[0][0], &r.acc[0][0] + 16, T(0));
      if (chunks > 0)
        for (int t = 0; t < C::kThreads; ++t) load_chunk<T, K>(t, p, b0, u0, 0, threads[t]);
      for (int64_t c = 0; c < chunks; ++c) {
        for (int t = 0; t < C::kThreads; ++t) store_chunk<T, K>(t, threads[t], shared.data());
        for (int t = 0; t < C::kThreads; ++t) {
          if (c + 1 < chunks) load_chunk<T, K>(t, p, b0, u0, c + 1, threads[t]);
          accumulate_chunk<T, K>(t, shared.data(), threads[t]);
        }
      }
      for (int t = 0; t < C::kThreads; ++t) store_partials<T, K>(t, threads[t], shared.data());
      for (int t = 0; t < C::kThreads; ++t) finish<T, K>(t, p, b0, u0, shared.data());
    }
  }
}

// ---- helpers: GEMM (float64), transpose --------------------------------------------------------------
// C = op(A) op(B) + beta * C, row-major (as GemmProblem, alpha = 1).
template <typename T>
struct MatMul {
  const T* a;
  const T* b;
  T* c;
  int64_t m, n, k, lda, ldb, ldc;
  bool trans_a, trans_b;
  T beta;
};

template <typename T>
RB_HD T operand(const T* p, int64_t ld, bool trans, int64_t i, int64_t j) {
  return trans ? p[j * ld + i] : p[i * ld + j];
}

// A plain 16 x 16 shared-memory tiled GEMM: the float64 path (gradient checks, not speed).
constexpr int kMmTile = 16;

template <typename T>
__global__ void matmul_kernel(MatMul<T> p) {
  __shared__ T as[kMmTile][kMmTile + 1], bs[kMmTile][kMmTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t m = static_cast<int64_t>(blockIdx.x) * kMmTile + ty, n = static_cast<int64_t>(blockIdx.y) * kMmTile + tx;
  T sum = T(0);
  for (int64_t k0 = 0; k0 < p.k; k0 += kMmTile) {
    const int64_t ka = k0 + tx, kb = k0 + ty;
    as[ty][tx] = m < p.m && ka < p.k ? operand(p.a, p.lda, p.trans_a, m, ka) : T(0);
    bs[ty][tx] = kb < p.k && n < p.n ? operand(p.b, p.ldb, p.trans_b, kb, n) : T(0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kMmTile; ++kk) sum += as[ty][kk] * bs[kk][tx];
    __syncthreads();
  }
  if (m < p.m && n < p.n) p.c[m * p.ldc + n] = sum + (p.beta != T(0) ? p.beta * p.c[m * p.ldc + n] : T(0));
}

// out (cols, rows) = in (rows, cols)^T.
template <typename T>
__global__ void transpose_kernel(const T* in, T* out, int64_t rows, int64_t cols) {
  __shared__ T tile[32][33];
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * 32, c0 = static_cast<int64_t>(blockIdx.y) * 32;
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t r = r0 + i, c = c0 + threadIdx.x;
    if (r < rows && c < cols) tile[i][threadIdx.x] = in[r * cols + c];
  }
  __syncthreads();
  for (int i = threadIdx.y; i < 32; i += blockDim.y) {
    const int64_t c = c0 + i, r = r0 + threadIdx.x;
    if (r < rows && c < cols) out[c * rows + r] = tile[threadIdx.x][i];
  }
}

// out (cols) = the column sums of x (rows, cols): the bias gradients over all T*B rows. A block of
// 32 x 32 threads owns 32 columns; each thread sums every 32nd row (four independent partial sums,
// so four loads are in flight), then the 32 partials of a column are added in shared memory.
// (sum_axis's one thread per column would walk all rows of a column alone.)
template <typename T>
__global__ void column_sums_kernel(const T* __restrict__ x, T* __restrict__ out, int64_t rows, int64_t cols) {
  __shared__ T partial[32][33];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t c = static_cast<int64_t>(blockIdx.x) * 32 + tx;
  T acc[4] = {T(0), T(0), T(0), T(0)};
  if (c < cols) {
    int64_t r = ty;
    for (; r + 96 < rows; r += 128) {
      acc[0] += x[r * cols + c];
      acc[1] += x[(r + 32) * cols + c];
      acc[2] += x[(r + 64) * cols + c];
      acc[3] += x[(r + 96) * cols + c];
    }
    for (; r < rows; r += 32) acc[0] += x[r * cols + c];
  }
  partial[ty][tx] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  __syncthreads();
  if (ty == 0 && c < cols) {
    T sum = T(0);
    for (int k = 0; k < 32; ++k) sum += partial[k][tx];
    out[c] = sum;
  }
}

// ---- executors: the drivers below issue their work through one of these ---------------------------
constexpr int64_t kMaxGridY = 65535;

struct DeviceExec {
  cudaStream_t stream;
  const char* op;

  template <typename T>
  void matmul(const MatMul<T>& p) const {
    if (p.m == 0 || p.n == 0) return;
    if constexpr (std::is_same_v<T, float>) {
      GemmProblem g;
      g.a = p.a, g.b = p.b, g.c = p.c;
      g.m = p.m, g.n = p.n, g.k = p.k, g.lda = p.lda, g.ldb = p.ldb, g.ldc = p.ldc;
      g.trans_a = p.trans_a, g.trans_b = p.trans_b, g.beta = p.beta;
      sgemm(g, stream);
    } else {
      const int64_t gy = (p.n + kMmTile - 1) / kMmTile;
      if (gy > kMaxGridY) throw std::runtime_error(std::string(op) + ": float64 GEMM of " + std::to_string(p.n) + " columns is beyond the grid limits");
      const dim3 grid(static_cast<unsigned>((p.m + kMmTile - 1) / kMmTile), static_cast<unsigned>(gy));
      matmul_kernel<T><<<grid, dim3(kMmTile, kMmTile), 0, stream>>>(p);
      check_launch(op, "matmul_kernel");
    }
  }
  template <typename T>
  void transpose(const T* in, T* out, int64_t rows, int64_t cols) const {
    const dim3 grid(static_cast<unsigned>((rows + 31) / 32), static_cast<unsigned>((cols + 31) / 32));
    transpose_kernel<T><<<grid, dim3(32, 8), 0, stream>>>(in, out, rows, cols);
    check_launch(op, "transpose_kernel");
  }
  template <typename T>
  void copy(T* dst, const T* src, int64_t n) const {
    RB_CUDA_CHECK(op, cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDeviceToDevice, stream));
  }
  template <typename T>
  void zero(T* dst, int64_t n) const {
    RB_CUDA_CHECK(op, cudaMemsetAsync(dst, 0, n * sizeof(T), stream));
  }
  template <typename T>
  void column_sums(const T* x, T* out, int64_t rows, int64_t cols) const {  // x (rows, cols) contiguous
    if (cols == 0) return;
    column_sums_kernel<T><<<static_cast<unsigned>((cols + 31) / 32), dim3(32, 32), 0, stream>>>(x, out, rows, cols);
    check_launch(op, "column_sums_kernel");
  }
  template <Step K, typename T>
  void step(const StepParams<T>& p) const {
    const dim3 grid(static_cast<unsigned>((p.B + kRows - 1) / kRows), static_cast<unsigned>((p.H + kUnits - 1) / kUnits));
    step_kernel<T, K><<<grid, Config<T, K>::kThreads, 0, stream>>>(p);
    check_launch(op, "rnn step_kernel");
  }
};

struct HostExec {
  template <typename T>
  void matmul(const MatMul<T>& p) const {
    for (int64_t i = 0; i < p.m; ++i)
      for (int64_t j = 0; j < p.n; ++j) {
        double sum = 0;
        for (int64_t k = 0; k < p.k; ++k)
          sum += double(operand(p.a, p.lda, p.trans_a, i, k)) * double(operand(p.b, p.ldb, p.trans_b, k, j));
        T& c = p.c[i * p.ldc + j];
        c = T(sum) + (p.beta != T(0) ? p.beta * c : T(0));
      }
  }
  template <typename T>
  void transpose(const T* in, T* out, int64_t rows, int64_t cols) const {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < cols; ++c) out[c * rows + r] = in[r * cols + c];
  }
  template <typename T>
  void copy(T* dst, const T* src, int64_t n) const {
    std::memcpy(dst, src, n * sizeof(T));
  }
  template <typename T>
  void zero(T* dst, int64_t n) const {
    std::fill(dst, dst + n, T(0));
  }
  template <typename T>
  void column_sums(const T* x, T* out, int64_t rows, int64_t cols) const {
    for (int64_t c = 0; c < cols; ++c) {
      double sum = 0;
      for (int64_t r = 0; r < rows; ++r) sum += x[r * cols + c];
      out[c] = T(sum);
    }
  }
  template <Step K, typename T>
  void step(const StepParams<T>& p) const {
    simulate_step_on_host<T, K>(p);
  }
};

// ---- the drivers ----------------------------------------------------------------------------------
template <typename T, class Exec>
void forward(const Exec& ex, const RnnForwardPlan<T>& a) {
  const int64_t T_ = a.T, B = a.B, H = a.H, G = rnn_gate_count(a.cell), GH = G * H;
  const bool lstm = a.cell == RnnCell::lstm, gru = a.cell == RnnCell::gru;
  const bool cho = gru && !a.linear_before_reset;

  // 1. The input projection of every step: gates (T*B, G*H) = x (T*B, I) . w_ih^T; biases come later.
  ex.matmul(MatMul<T>{a.x, a.w_ih, a.gates, T_ * B, GH, a.I, a.I, a.I, GH, false, true, T(0)});
  // w_hh^T (H, G*H): the forward product reads, for each reduction index j, a row of all gates' units.
  ex.transpose(a.w_hh, a.w_hh_t, GH, H);
  const int64_t t_first = a.reverse ? T_ - 1 : 0;
  ex.copy(a.h_prev + t_first * B * H, a.h0, B * H);
  if (lstm) ex.copy(a.aux + t_first * B * H, a.c0, B * H);

  for (int64_t s = 0; s < T_; ++s) {
    const int64_t t = a.reverse ? T_ - 1 - s : s;
    const int64_t t_next = a.reverse ? t - 1 : t + 1;
    const bool last = s == T_ - 1;
    StepParams<T> p{};
    p.B = B, p.H = H;
    p.n_reduce = 1;
    p.a[0] = a.h_prev + t * B * H, p.lda[0] = H;
    for (int g = 0; g < G; ++g) p.w[g] = a.w_hh_t + g * H;
    p.ldw = GH;
    p.lengths = a.lengths, p.t = t, p.linear_before_reset = a.linear_before_reset;
    p.gates = a.gates + t * B * GH;
    p.b_ih = a.b_ih, p.b_hh = a.b_hh;
    p.h_prev = a.h_prev + t * B * H;
    p.h_next = last ? a.h_n : a.h_prev + t_next * B * H;
    p.y = a.y + t * B * a.ldy, p.ldy = a.ldy;
    if (lstm) {
      p.c_prev = a.aux + t * B * H;
      p.c_next = last ? a.c_n : a.aux + t_next * B * H;
      p.aux = a.aux2 + t * B * H;  // tanh(c')
      ex.template step<Step::lstm>(p);
    } else if (gru && !cho) {
      p.aux = a.aux + t * B * H;  // W_hn h + b_hn
      ex.template step<Step::gru>(p);
    } else if (cho) {
      p.aux = a.aux + t * B * H;  // r * h
      ex.template step<Step::gru_cho_gates>(p);
      StepParams<T> q = p;        // n = tanh(x_n + b_in + W_hn (r * h) + b_hn)
      q.a[0] = p.aux;
      q.w[0] = a.w_hh_t + 2 * H;
      ex.template step<Step::gru_cho_output>(q);
    } else if (a.cell == RnnCell::rnn_relu) {
      ex.template step<Step::rnn_relu>(p);
    } else {
      ex.template step<Step::rnn_tanh>(p);
    }
  }
}

template <typename T, class Exec>
void backward(const Exec& ex, const RnnBackwardPlan<T>& a) {
  const int64_t T_ = a.T, B = a.B, I = a.I, H = a.H, G = rnn_gate_count(a.cell), GH = G * H, rows = T_ * B;
  const bool lstm = a.cell == RnnCell::lstm, gru = a.cell == RnnCell::gru;
  const bool lbr = gru && a.linear_before_reset, cho = gru && !a.linear_before_reset;

  if (a.dh_n) ex.copy(a.carry, a.dh_n, B * H);
  else ex.zero(a.carry, B * H);
  if (lstm) {
    if (a.dc_n) ex.copy(a.dc0, a.dc_n, B * H);
    else ex.zero(a.dc0, B * H);
  }
  // The product of step t's kernel: dL/dh_t through w_hh from the later step's gate gradients
  // (all rows; GRU: r, z rows from dgates and n rows from dhn (linear_before_reset) or none (Cho)).
  const int n_reduce = lbr ? 3 : cho ? 2 : static_cast<int>(G);
  auto product_of = [&](StepParams<T>& p, int64_t t_later) {
    p.n_reduce = n_reduce;
    for (int g = 0; g < n_reduce; ++g) {
      p.a[g] = a.dgates + t_later * B * GH + g * H, p.lda[g] = GH;
      p.w[g] = a.w_hh + g * H * H;
    }
    if (lbr) p.a[2] = a.dhn + t_later * B * H, p.lda[2] = H;
    p.ldw = H;
  };

  for (int64_t s = 0; s < T_; ++s) {
    const int64_t t = a.reverse ? s : T_ - 1 - s;  // forward steps in reverse order
    const int64_t t_later = a.reverse ? t - 1 : t + 1;
    StepParams<T> p{};
    p.B = B, p.H = H;
    if (s > 0) product_of(p, t_later);  // the first has no later step: dL/dh' = dh_n (in carry)
    p.lengths = a.lengths, p.t = t, p.linear_before_reset = a.linear_before_reset;
    p.gates = const_cast<T*>(a.gates + t * B * GH);  // read only in backward
    p.h_prev = a.h_prev + t * B * H;
    p.y = a.dy ? const_cast<T*>(a.dy + t * B * a.ldy) : nullptr, p.ldy = a.ldy;
    p.c_prev = a.aux ? const_cast<T*>(a.aux + t * B * H) : nullptr;
    p.aux2 = a.aux2 ? a.aux2 + t * B * H : nullptr;
    p.dgates = a.dgates + t * B * GH;
    p.dhn = lbr ? a.dhn + t * B * H : nullptr;
    p.carry = a.carry, p.dc = a.dc0, p.clip = a.cell_grad_clip;
    if (lstm) ex.template step<Step::back_lstm>(p);
    else if (gru) ex.template step<Step::back_gru>(p);
    else if (a.cell == RnnCell::rnn_relu) ex.template step<Step::back_rnn_relu>(p);
    else ex.template step<Step::back_rnn_tanh>(p);
    if (cho) {  // dr from the whole n block: drh = dn . W_hn
      StepParams<T> q = p;
      q.n_reduce = 1;
      q.a[0] = a.dgates + t * B * GH + 2 * H, q.lda[0] = GH;
      q.w[0] = a.w_hh + 2 * H * H, q.ldw = H;
      ex.template step<Step::back_cho_reset>(q);
    }
  }
  {  // dh0: the product from the first forward step's gradients, plus the carried part
    StepParams<T> p{};
    p.B = B, p.H = H;
    product_of(p, a.reverse ? T_ - 1 : 0);
    p.carry = a.carry, p.out = a.dh0;
    ex.template step<Step::back_final>(p);
  }

  // Gradients of the inputs and weights: one GEMM each over all T*B rows.
  ex.matmul(MatMul<T>{a.dgates, a.w_ih, a.dx, rows, I, GH, GH, I, I, false, false, a.accumulate_dx ? T(1) : T(0)});
  ex.matmul(MatMul<T>{a.dgates, a.x, a.dw_ih, GH, I, rows, GH, I, I, true, false, T(0)});
  const int64_t h_rows = gru ? 2 * H : GH;  // rows of w_hh that multiply h
  ex.matmul(MatMul<T>{a.dgates, a.h_prev, a.dw_hh, h_rows, H, rows, GH, H, H, true, false, T(0)});
  if (lbr) ex.matmul(MatMul<T>{a.dhn, a.h_prev, a.dw_hh + 2 * H * H, H, H, rows, H, H, H, true, false, T(0)});
  if (cho)  // n rows multiply r * h
    ex.matmul(MatMul<T>{a.dgates + 2 * H, a.aux, a.dw_hh + 2 * H * H, H, H, rows, GH, H, H, true, false, T(0)});
  // b_ih and b_hh enter the same sums, except GRU(linear_before_reset)'s b_hn (inside r * (...)).
  if (a.db_ih) ex.column_sums(a.dgates, a.db_ih, rows, GH);
  if (a.db_hh) {
    ex.column_sums(a.dgates, a.db_hh, rows, GH);
    if (lbr) ex.column_sums(a.dhn, a.db_hh + 2 * H, rows, H);
  }
}

// ---- grid recurrence ----------------------------------------------------------------------------------
// The positions (i, d - i) of anti-diagonal d inside an R x C grid: i in [i0, i0 + count).
struct Diagonal {
  int64_t i0, count;
  Diagonal(int64_t d, int64_t R, int64_t C) : i0(std::max<int64_t>(0, d - (C - 1))), count(std::min(d, R - 1) - i0 + 1) {}
};

template <typename T>
StepParams<T> diagonal_step(const GridRnnPlan<T>& a, int64_t d, bool has_neighbours) {
  const Diagonal diagonal(d, a.R, a.C);
  StepParams<T> p{};
  p.B = diagonal.count * a.B, p.H = a.H;
  p.n_reduce = has_neighbours ? 2 : 0;
  p.lda[0] = p.lda[1] = a.H;
  p.ldw = a.H;
  p.grid_R = a.R, p.grid_C = a.C, p.grid_i0 = diagonal.i0, p.grid_diag = d, p.grid_batch = a.B;
  return p;
}

template <typename T, class Exec>
void grid_forward(const Exec& ex, const GridRnnPlan<T>& a) {
  const int64_t H = a.H, P = a.R * a.C * a.B;
  ex.matmul(MatMul<T>{a.x, a.w_ih, a.h, P, H, a.I, a.I, a.I, H, false, true, T(0)});  // h = x . w_ih^T
  T* w_left_t = a.scratch;
  T* w_up_t = a.scratch + H * H;
  ex.transpose(a.w_left, w_left_t, H, H);
  ex.transpose(a.w_up, w_up_t, H, H);
  for (int64_t d = 0; d < a.R + a.C - 1; ++d) {
    StepParams<T> p = diagonal_step(a, d, d > 0);
    p.a[0] = p.a[1] = a.h;
    p.w[0] = w_left_t, p.w[1] = w_up_t;
    p.gates = a.h, p.b_ih = a.bias;
    ex.template step<Step::grid>(p);
  }
}

template <typename T, class Exec>
void grid_backward(const Exec& ex, const GridRnnPlan<T>& a) {
  const int64_t R = a.R, C = a.C, B = a.B, I = a.I, H = a.H, P = R * C * B, row = C * B;
  T* dpre = a.scratch;
  for (int64_t d = R + C - 2; d >= 0; --d) {
    StepParams<T> p = diagonal_step(a, d, d < R + C - 2);
    p.a[0] = p.a[1] = dpre;
    p.w[0] = a.w_left, p.w[1] = a.w_up;
    p.h_prev = a.h, p.y = const_cast<T*>(a.dh), p.dgates = dpre;
    ex.template step<Step::back_grid>(p);
  }
  ex.matmul(MatMul<T>{dpre, a.w_ih, a.dx, P, I, H, H, I, I, false, false, T(0)});
  ex.matmul(MatMul<T>{dpre, a.x, a.dw_ih, H, I, P, H, I, I, true, false, T(0)});
  // Every position below the first grid row pairs with the one above it: rows shifted by one grid row.
  ex.matmul(MatMul<T>{dpre + row * H, a.h, a.dw_up, H, H, P - row, H, H, H, true, false, T(0)});
  // Left neighbours exist within a grid row only: one GEMM per grid row.
  ex.zero(a.dw_left, H * H);
  if (C > 1)
    for (int64_t i = 0; i < R; ++i)
      ex.matmul(MatMul<T>{dpre + (i * row + B) * H, a.h + i * row * H, a.dw_left, H, H, (C - 1) * B, H, H, H, true,
                          false, T(1)});
  if (a.db) ex.column_sums(dpre, a.db, P, H);
}

}  // namespace

template <typename T>
void grid_rnn_forward(const GridRnnPlan<T>& plan, cudaStream_t stream) {
  grid_forward(DeviceExec{stream, "grid_rnn_forward"}, plan);
}

template <typename T>
void grid_rnn_backward(const GridRnnPlan<T>& plan, cudaStream_t stream) {
  grid_backward(DeviceExec{stream, "grid_rnn_backward"}, plan);
}

template <typename T>
void grid_rnn_forward_simulated_on_host(const GridRnnPlan<T>& plan) {
  grid_forward(HostExec{}, plan);
}

template <typename T>
void grid_rnn_backward_simulated_on_host(const GridRnnPlan<T>& plan) {
  grid_backward(HostExec{}, plan);
}

template <typename T>
void rnn_forward(const RnnForwardPlan<T>& plan, cudaStream_t stream) {
  forward(DeviceExec{stream, "rnn_forward"}, plan);
}

template <typename T>
void rnn_backward(const RnnBackwardPlan<T>& plan, cudaStream_t stream) {
  backward(DeviceExec{stream, "rnn_backward"}, plan);
}

template <typename T>
void rnn_forward_simulated_on_host(const RnnForwardPlan<T>& plan) {
  forward(HostExec{}, plan);
}

template <typename T>
void rnn_backward_simulated_on_host(const RnnBackwardPlan<T>& plan) {
  backward(HostExec{}, plan);
}

#define RB_INSTANTIATE(T)                                                         \
  template void rnn_forward<T>(const RnnForwardPlan<T>&, cudaStream_t);            \
  template void rnn_backward<T>(const RnnBackwardPlan<T>&, cudaStream_t);          \
  template void rnn_forward_simulated_on_host<T>(const RnnForwardPlan<T>&);        \
  template void rnn_backward_simulated_on_host<T>(const RnnBackwardPlan<T>&);      \
  template void grid_rnn_forward<T>(const GridRnnPlan<T>&, cudaStream_t);          \
  template void grid_rnn_backward<T>(const GridRnnPlan<T>&, cudaStream_t);         \
  template void grid_rnn_forward_simulated_on_host<T>(const GridRnnPlan<T>&);      \
  template void grid_rnn_backward_simulated_on_host<T>(const GridRnnPlan<T>&);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
