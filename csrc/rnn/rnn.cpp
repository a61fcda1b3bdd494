// Recurrent layers, fast path and dispatch.
//
// Forward, one layer and direction:
//   1. gates (T*B, G*H) = X (T*B, I) . W_ih^T                        one large GEMM for all steps
//   2. per step: gates_t += h_{t-1} . W_hh^T, then a fused pass (bias, activations, state update)
// Backward (BPTT over the saved activations, reverse order):
//   per step: fused pass -> dgates_t; dh_{t-1} = dgates_t . W_hh (+ the direct terms)
//   then dX = dgates . W_ih, [dW_ih | dW_hh] = dgates^T . [X | H_prev], biases as column sums:
//   one large GEMM each over all T*B rows.
//
// The steps run inside one OpenMP region, split one of two ways (plan_steps):
// - by batch rows, from 16 rows up: each thread runs the whole recurrence of its own rows, all
//   hidden units, and meets nobody until the end. It reads all of W_hh every step, but its h rows
//   never leave its core and no step waits for the other thread (a step that the OS delays on a
//   shared machine delays only its own rows).
// - by hidden units (8-aligned slices) for smaller batches: each thread computes the recurrent GEMM
//   for its rows of W_hh (its columns of dh in backward) and the fused pass for its units, and the
//   team meets at one barrier per step (two for Cho's GRU).
// The GEMM runs single-threaded inside the region. The W_hh a thread uses is packed into the GEMM's
// panel layout once per call (StepWeight; split by rows, one copy serves all threads: private copies
// of a 4 MiB weight crowded L3, and of a 1 MiB one measured no faster), so a step packs only h (or
// dgates). A call of fewer than 4 steps at batch <= 4 (a cell step) multiplies the weight in place
// instead (see prepacked_steps).
//
// The per-step barrier spins briefly and then yields the CPU: on a machine shared with other
// processes, a thread that spins for its whole time slice while its partner waits to be scheduled
// turns a 100 us step into a 10+ ms one (measured with OpenMP's default active barrier).
#include <immintrin.h>  // _mm_pause (SSE2, baseline x86-64)
#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/dispatch.h"
#include "gemm/gemm.h"
#include "rnn/rnn.h"
#include "rnn/step_gemm.h"

namespace rb {

namespace {

struct UnitRange {
  int64_t j0, j1;
};

// A reusable barrier for the threads of one parallel region: spin (cheap when both threads run),
// then sched_yield so a descheduled partner can take the CPU.
class StepBarrier {
 public:
  explicit StepBarrier(int team) : team_(team) {}
  void wait() {
    if (team_ == 1) return;
    const int generation = generation_.load(std::memory_order_acquire);
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == team_ - 1) {
      arrived_.store(0, std::memory_order_relaxed);
      generation_.fetch_add(1, std::memory_order_release);
      return;
    }
    for (int spin = 0; generation_.load(std::memory_order_acquire) == generation; ++spin) {
      if (spin < 2000)
        _mm_pause();
      else
        sched_yield();
    }
  }

 private:
  const int team_;
  std::atomic<int> arrived_{0};
  std::atomic<int> generation_{0};
};

// Thread `tid` of `team` gets a contiguous, 8-aligned slice of the H hidden units.
UnitRange units_of(int tid, int team, int64_t H) {
  const int64_t groups = (H + 7) / 8;
  return {std::min(H, groups * tid / team * 8), std::min(H, groups * (tid + 1) / team * 8)};
}

// How the team splits the steps. By rows only where every thread gets at least kMinRowsPerThread
// rows: a step's GEMM then reuses each weight value for as many rows as the units split gives it
// at batch 16. (LSTM (50, 32, 128, 256), one thread's step GEMM: 16 rows x all 1024 gate columns
// ran as fast as 32 rows x 512 columns, isolated and with the partner running. Whole nn.LSTM
// forward+backward, rows against units, alternating processes: (50, 32, 128, 256) median 39.8 ->
// 34.6 ms, minimum unchanged; (100, 64, 512, 512) median 701 -> 674 ms, minimum 638 -> 596 ms.
// Re-measured later, paired in one process at (50, 32, 128, 256): splitting by units only the
// backward 0.991x, only the forward 0.971x.)
constexpr int64_t kMinRowsPerThread = 8;

struct StepPlan {
  int team;
  bool by_rows;
};

// Split by rows, the one packed copy of W_hh is made before the steps, as a pass of its own: over a
// sequence that is one pass among many, but for a cell step or two it is most of the call (LSTM
// (1, 32, 65, 512): packing 4 MiB serially, then 16 rows x 2048 columns per thread; the pack has
// since been split over the team). Calls of fewer steps split by units, each thread packing only its
// own columns.
constexpr int64_t kMinStepsByRows = 4;

StepPlan plan_steps(int64_t T, int64_t B, int64_t H) {
  const int threads = available_threads();
  if (threads > 1 && B >= 2 * kMinRowsPerThread && T >= kMinStepsByRows)
    return {int(std::min<int64_t>(threads, B / kMinRowsPerThread)), true};
  return {int(std::min<int64_t>(threads, (H + 7) / 8)), false};  // at most one thread per 8 units
}

// The rows [r0, r1) and units [j0, j1) of thread `tid`.
struct StepSlice {
  int64_t r0, r1, j0, j1;
};

StepSlice slice_of(int tid, int team, int64_t B, int64_t H, bool by_rows) {
  if (by_rows) return {B * tid / team, B * (tid + 1) / team, 0, H};
  const UnitRange u = units_of(tid, team, H);
  return {0, B, u.j0, u.j1};
}

// A call of a few hundred microseconds (a single decoder step at batch 1) runs on the calling
// thread alone, GEMMs included: every parallel region costs a fork and a join, and on a machine
// shared with other processes a join can wait a whole scheduler slice (measured: 4-20 ms per
// LSTMCell step with 2 threads, 0.2 ms with 1). The guard caps this thread's OpenMP team size and
// restores it on exit.
class SmallCallOnOneThread {
 public:
  explicit SmallCallOnOneThread(int64_t macs) : saved_(omp_get_max_threads()), capped_(macs < (int64_t(1) << 23)) {
    if (capped_) omp_set_num_threads(1);
  }
  ~SmallCallOnOneThread() {
    if (capped_) omp_set_num_threads(saved_);
  }

 private:
  const int saved_;
  const bool capped_;
};

// Multiply-adds of one direction over the sequence: input and recurrent products.
int64_t sequence_macs(int64_t T, int64_t B, RnnCell cell, int64_t I, int64_t H) {
  return T * B * rnn_gate_count(cell) * H * (I + H);
}

// active[t * B + b] = 1 while step t is within row b's length.
std::vector<unsigned char> active_mask(int64_t T, int64_t B, const int64_t* lengths) {
  std::vector<unsigned char> active(T * B, 1);
  if (lengths)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t b = 0; b < B; ++b) active[t * B + b] = t < lengths[b];
  return active;
}

// db[k * H + j] += sum over the B rows of dg[b * ldg + k * H + j], for the gate blocks k < blocks and
// units [j0, j1): the bias gradient gathered while the step's dgates are still in cache. (A scalar
// loop here took 1.5% of the LSTM (50, 32, 128, 256) backward.)
void add_bias_grad(int64_t B, int64_t H, int64_t blocks, int64_t j0, int64_t j1, const float* dg, int64_t ldg,
                   float* db) {
  for (int64_t k = 0; k < blocks; ++k) add_column_sums_avx2(B, dg + k * H, ldg, db + k * H, j0, j1);
}

}  // namespace

void rnn_forward_fast(const RnnForwardArgs<float>& a) {
  const int64_t T = a.T, B = a.B, I = a.I, H = a.H, G = rnn_gate_count(a.cell), GH = G * H;
  const bool lstm = a.cell == RnnCell::lstm, gru = a.cell == RnnCell::gru;
  const bool cho = gru && !a.linear_before_reset;

  // Biases are added in the fused pass: b_ih + b_hh, except that GRU(linear_before_reset)'s b_hn
  // belongs inside r * (W_hn h + b_hn).
  std::vector<float> bias(GH, 0.0f), b_hn(H, 0.0f);
  for (int64_t r = 0; r < GH; ++r) {
    const bool hidden_n_row = gru && a.linear_before_reset && r >= 2 * H;
    bias[r] = (a.b_ih ? a.b_ih[r] : 0.0f) + (a.b_hh && !hidden_n_row ? a.b_hh[r] : 0.0f);
    if (hidden_n_row && a.b_hh) b_hn[r - 2 * H] = a.b_hh[r];
  }
  const std::vector<unsigned char> active = active_mask(T, B, a.lengths);

  // 1. Input projection of every step at once (a direct matrix-vector product for a single step).
  // (Computing x_t . W_ih^T inside each step instead, W_ih pre-packed and beta = 0, so that the step's
  // product no longer reads its gates from memory, measured 0.993-1.000x, paired, LSTM and GRU. And
  // running an LSTM step's product and element-wise pass in chunks of 32-128 units, so that the pass
  // reads gates still in L1, measured 0.943-0.989x.)
  gemm_h_wT(T * B, GH, I, a.x, I, a.w_ih, I, 0.0f, a.gates, GH);

  // The state entering the first step.
  const int64_t t_first = a.reverse ? T - 1 : 0;
  std::copy(a.h0, a.h0 + B * H, a.h_prev + t_first * B * H);
  if (lstm) std::copy(a.c0, a.c0 + B * H, a.aux + t_first * B * H);

  // The rows of W_hh for units [j0, j0 + n) as right-hand sides of h . W_hh^T, one segment per gate:
  // `first` covers the gates added into `gates` (all, or GRU's r and z), `second` GRU's n rows.
  // Packed (see prepacked_steps) into the calling thread's scratch.
  const int64_t first_gates = gru ? 2 : G;
  auto weights_for = [&](int64_t j0, int64_t n) {
    const bool pack = prepacked_steps(B, T) && n > 0;
    const int64_t first_floats = pack ? packed_b_floats(H, n, first_gates) : 0;
    const int64_t second_floats = pack && gru ? packed_b_floats(H, n, 1) : 0;
    float* packed = pack ? thread_scratch_of<float>(ScratchSlot::rnn, size_t(first_floats + second_floats)) : nullptr;
    const MatView<const float> w_rows_t{a.w_hh + j0 * H, 1, H};  // (K = H) x n: W_hh rows j0.. transposed
    return std::pair<StepWeight, StepWeight>{
        StepWeight(H, n, first_gates, w_rows_t, H * H, packed),
        StepWeight(H, n, 1, MatView<const float>{a.w_hh + (2 * H + j0) * H, 1, H}, 0,
                   second_floats ? packed + first_floats : nullptr)};
  };
  const StepPlan plan = plan_steps(T, B, H);
  // Split by rows, every thread multiplies by all of W_hh: one packed copy, shared.
  const auto shared = weights_for(0, plan.by_rows ? H : 0);
  StepBarrier barrier(plan.by_rows ? 1 : plan.team);  // split by rows, a thread waits for nobody
#pragma omp parallel num_threads(plan.team) if (plan.team > 1)
  {
    const StepSlice sl = slice_of(omp_get_thread_num(), omp_get_num_threads(), B, H, plan.by_rows);
    const int64_t r0 = sl.r0, rows = sl.r1 - sl.r0, j0 = sl.j0, n = sl.j1 - sl.j0;
    const bool working = rows > 0 && n > 0;
    const auto own = plan.by_rows ? shared : weights_for(j0, n);
    const StepWeight &first = own.first, &second = own.second;
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = a.reverse ? T - 1 - s : s;
      const int64_t t_next = a.reverse ? t - 1 : t + 1;
      const bool last = s == T - 1;
      // Everything below starts at this thread's first row, r0.
      const int64_t here = t * B + r0, next = t_next * B + r0;
      float* gates = a.gates + here * GH;
      const float* h_prev = a.h_prev + here * H;

      StepForward step{};
      step.B = rows, step.H = H, step.j0 = sl.j0, step.j1 = sl.j1;
      step.active = active.data() + here;
      step.gates = gates, step.bias = bias.data();
      step.h_prev = h_prev;
      step.h_next = last ? a.h_n + r0 * H : a.h_prev + next * H;
      step.y = a.y + here * a.ldy, step.ldy = a.ldy;

      if (working) {
        // gates[:, k*H + j0 : k*H + j0 + n] += h_prev . W_hh[k*H + j0 : ..., :]^T for the first gates
        first.multiply(rows, h_prev, H, 1.0f, gates + j0, GH, H);
        if (lstm) {
          step.c_prev = a.aux + here * H;
          step.c_next = last ? a.c_n + r0 * H : a.aux + next * H;
          step.tanh_c = a.aux2 + here * H;
          lstm_step_forward_avx2(step);
        } else if (gru && !cho) {
          step.hn = a.aux + here * H, step.b_hn = b_hn.data();
          second.multiply(rows, h_prev, H, 0.0f, step.hn + j0, H, 0);
          gru_step_forward_avx2(step);
        } else if (cho) {
          step.rh = a.aux + here * H;
          gru_cho_step_gates_avx2(step);
        } else {
          rnn_step_forward_avx2(step, a.cell == RnnCell::rnn_relu);
        }
      }
      if (cho) {
        barrier.wait();  // n needs r * h of every unit
        if (working) {
          second.multiply(rows, step.rh, H, 1.0f, gates + 2 * H + j0, GH, 0);
          gru_cho_step_output_avx2(step);
        }
      }
      barrier.wait();
    }
  }
}

void rnn_backward_fast(const RnnBackwardArgs<float>& a) {
  const int64_t T = a.T, B = a.B, I = a.I, H = a.H, G = rnn_gate_count(a.cell), GH = G * H;
  const bool lstm = a.cell == RnnCell::lstm, gru = a.cell == RnnCell::gru;
  const bool lbr = gru && a.linear_before_reset, cho = gru && !a.linear_before_reset;

  // Every element of dgates / dhn is written by the step passes: no zero-fill. They live in the
  // calling thread's scratch (kept between calls: a training loop does not fault in fresh pages).
  // (Padding the rows by 16 floats, so that the step product's in-place A rows are not 4 KiB apart
  // at 4H = 1024, measured 0.998-0.999x.)
  float* const dgates = thread_scratch_of<float>(ScratchSlot::rnn_grad, size_t(T * B * (GH + (lbr ? H : 0))));
  float* const dhn = lbr ? dgates + T * B * GH : nullptr;
  const StepPlan plan = plan_steps(T, B, H);
  // Gradient of the combined bias (b_ih; b_hh's r, z rows) and of GRU's b_hn: one partial sum per
  // thread, added up after the steps.
  std::vector<float> db(plan.team * GH, 0.0f), db_hn(lbr ? plan.team * H : 0, 0.0f);
  std::vector<float> dh_a(B * H, 0.0f), dh_b(B * H, 0.0f), dc(lstm ? B * H : 0, 0.0f), drh(cho ? B * H : 0);
  if (a.dh_n) std::copy(a.dh_n, a.dh_n + B * H, dh_a.begin());
  if (lstm && a.dc_n) std::copy(a.dc_n, a.dc_n + B * H, dc.begin());
  const std::vector<unsigned char> active = active_mask(T, B, a.lengths);

  // dh_prev[:, j0:j0+n] (+)= dg . W_hh[r0:r0+K, j0:j0+n] for the rows that multiply h (all, or GRU's
  // r and z: `h_rows`) and GRU's n rows (`n_rows`), packed once (see prepacked_steps) into the calling
  // thread's scratch.
  const int64_t main_rows = gru ? 2 * H : GH;
  auto weights_for = [&](int64_t j0, int64_t n) {
    const bool pack = prepacked_steps(B, T) && n > 0;
    const int64_t main_floats = pack ? packed_b_floats(main_rows, n, 1) : 0;
    const int64_t n_floats = pack && gru ? packed_b_floats(H, n, 1) : 0;
    float* packed = pack ? thread_scratch_of<float>(ScratchSlot::rnn, size_t(main_floats + n_floats)) : nullptr;
    return std::pair<StepWeight, StepWeight>{
        StepWeight(main_rows, n, 1, MatView<const float>{a.w_hh + j0, H, 1}, 0, packed),
        StepWeight(H, n, 1, MatView<const float>{a.w_hh + 2 * H * H + j0, H, 1}, 0,
                   n_floats ? packed + main_floats : nullptr)};
  };
  const auto shared = weights_for(0, plan.by_rows ? H : 0);  // split by rows: one copy for all
  StepBarrier barrier(plan.by_rows ? 1 : plan.team);
#pragma omp parallel num_threads(plan.team) if (plan.team > 1)
  {
    const int tid = omp_get_thread_num();
    const StepSlice sl = slice_of(tid, omp_get_num_threads(), B, H, plan.by_rows);
    const int64_t r0 = sl.r0, rows = sl.r1 - sl.r0, j0 = sl.j0, n = sl.j1 - sl.j0;
    const bool working = rows > 0 && n > 0;
    const auto own = plan.by_rows ? shared : weights_for(j0, n);
    const StepWeight &h_rows = own.first, &n_rows = own.second;
    // dg and out start at this thread's first row.
    float* dh = dh_a.data() + r0 * H;       // dL/dh' of this step (from later steps)
    float* dh_prev = dh_b.data() + r0 * H;  // dL/dh of the state entering it
    for (int64_t s = 0; s < T; ++s) {
      const int64_t t = a.reverse ? s : T - 1 - s;
      const int64_t here = t * B + r0;  // this thread's first row of step t
      float* dg = dgates + here * GH;

      StepBackward step{};
      step.B = rows, step.H = H, step.j0 = sl.j0, step.j1 = sl.j1;
      step.active = active.data() + here;
      step.gates = a.gates + here * GH;
      step.h_prev = a.h_prev + here * H;
      step.aux = a.aux ? a.aux + here * H : nullptr;
      step.aux2 = a.aux2 ? a.aux2 + here * H : nullptr;
      step.dh = dh;
      step.dy = a.dy ? a.dy + here * a.ldy : nullptr, step.ldy = a.ldy;
      step.dgates = dg;
      step.dhn = lbr ? dhn + here * H : nullptr;
      step.dh_prev = dh_prev;
      step.dc = lstm ? dc.data() + r0 * H : nullptr;
      step.clip = a.cell_grad_clip;
      step.drh = cho ? drh.data() + r0 * H : nullptr;

      if (working) {
        if (lstm) lstm_step_backward_avx2(step);
        else if (lbr) gru_step_backward_avx2(step);
        else if (cho) gru_cho_step_backward_avx2(step);
        else rnn_step_backward_avx2(step, a.cell == RnnCell::rnn_relu);
      }
      barrier.wait();  // dgates_t complete
      if (cho) {
        if (working) {
          n_rows.multiply(rows, dg + 2 * H, GH, 0.0f, drh.data() + r0 * H + j0, H, 0);
          gru_cho_step_reset_avx2(step);
        }
        barrier.wait();  // dr complete
      }
      if (working) {
        h_rows.multiply(rows, dg, GH, 1.0f, dh_prev + j0, H, 0);
        if (lbr) n_rows.multiply(rows, step.dhn, H, 1.0f, dh_prev + j0, H, 0);
        add_bias_grad(rows, H, G, j0, sl.j1, dg, GH, db.data() + tid * GH);
        if (lbr) add_bias_grad(rows, H, 1, j0, sl.j1, step.dhn, H, db_hn.data() + tid * H);
      }
      std::swap(dh, dh_prev);
    }
  }
  const float* dh_first = T % 2 == 0 ? dh_a.data() : dh_b.data();  // after T swaps
  std::copy(dh_first, dh_first + B * H, a.dh0);
  if (lstm) std::copy(dc.begin(), dc.end(), a.dc0);
  for (int k = 1; k < plan.team; ++k) {
    for (int64_t r = 0; r < GH; ++r) db[r] += db[k * GH + r];
    if (lbr)
      for (int64_t j = 0; j < H; ++j) db_hn[j] += db_hn[k * H + j];
  }

  // Gradients of the inputs and weights: one GEMM each over all T*B rows.
  const int64_t rows = T * B;
  gemm(rows, I, GH, 1.0f, MatView<const float>{dgates, GH, 1}, MatView<const float>{a.w_ih, I, 1},
       a.accumulate_dx ? 1.0f : 0.0f, MatView<float>{a.dx, I, 1});
  if (!gru && rows > 2 * (I + H)) {
    // [dW_ih | dW_hh] = dgates^T . [X | H_prev] as one product: dgates^T, the large operand, is then
    // packed once instead of twice, and the wider right-hand side uses the kernel better. That saves
    // a pass over GH x rows and costs copies of GH x (I + H): worth it over many rows, not for a
    // single cell step (where it doubled the time of writing the weight gradients).
    const int64_t IH = I + H;
    // (The step loop's packed weights are dead now: their scratch slot holds [X | H_prev] and the result.)
    float* const xh = thread_scratch_of<float>(ScratchSlot::rnn, size_t((rows + GH) * IH));
    float* const dw = xh + rows * IH;
    // The copies are memory-bound and split over the threads: at (T, B, I, H) = (100, 64, 512, 512)
    // they took 11 ms of a 420 ms backward on one thread, 6.5 ms on two.
    parallel_for(available_threads(), rows, [&](int64_t r) {
      std::copy(a.x + r * I, a.x + (r + 1) * I, xh + r * IH);
      std::copy(a.h_prev + r * H, a.h_prev + (r + 1) * H, xh + r * IH + I);
    });
    gemm(GH, IH, rows, 1.0f, MatView<const float>{dgates, 1, GH}, MatView<const float>{xh, IH, 1}, 0.0f,
         MatView<float>{dw, IH, 1});
    parallel_for(available_threads(), GH, [&](int64_t r) {
      std::copy(dw + r * IH, dw + r * IH + I, a.dw_ih + r * I);
      std::copy(dw + r * IH + I, dw + (r + 1) * IH, a.dw_hh + r * H);
    });
  } else {
    gemm(GH, I, rows, 1.0f, MatView<const float>{dgates, 1, GH}, MatView<const float>{a.x, I, 1}, 0.0f,
         MatView<float>{a.dw_ih, I, 1});
    // W_hh rows that multiply h (all, or GRU's r and z), then GRU's n rows.
    gemm(gru ? 2 * H : GH, H, rows, 1.0f, MatView<const float>{dgates, 1, GH}, MatView<const float>{a.h_prev, H, 1},
         0.0f, MatView<float>{a.dw_hh, H, 1});
  }
  if (lbr)
    gemm(H, H, rows, 1.0f, MatView<const float>{dhn, 1, H}, MatView<const float>{a.h_prev, H, 1}, 0.0f,
         MatView<float>{a.dw_hh + 2 * H * H, H, 1});
  if (cho)  // n rows multiply r * h
    gemm(H, H, rows, 1.0f, MatView<const float>{dgates + 2 * H, 1, GH}, MatView<const float>{a.aux, H, 1},
         0.0f, MatView<float>{a.dw_hh + 2 * H * H, H, 1});

  // b_ih and b_hh enter the same sums, except GRU(linear_before_reset)'s b_hn (inside r * (...)).
  if (a.db_ih) std::copy(db.begin(), db.begin() + GH, a.db_ih);
  if (a.db_hh) {
    std::copy(db.begin(), db.begin() + GH, a.db_hh);
    if (lbr) std::copy(db_hn.begin(), db_hn.begin() + H, a.db_hh + 2 * H);
  }
}

// ---- dispatch ---------------------------------------------------------------------------------

void rnn_forward(const RnnForwardArgs<float>& a) {
  if (active_isa() == Isa::avx2) {
    SmallCallOnOneThread guard(sequence_macs(a.T, a.B, a.cell, a.I, a.H));
    rnn_forward_fast(a);
    record_impl("rnn_forward", "avx2_fused_gemm");
  } else {
    rnn_forward_ref(a);
    record_impl("rnn_forward", "scalar_ref");
  }
}

void rnn_backward(const RnnBackwardArgs<float>& a) {
  if (active_isa() == Isa::avx2) {
    SmallCallOnOneThread guard(2 * sequence_macs(a.T, a.B, a.cell, a.I, a.H));
    rnn_backward_fast(a);
    record_impl("rnn_backward", "avx2_fused_gemm");
  } else {
    rnn_backward_ref(a);
    record_impl("rnn_backward", "scalar_ref");
  }
}

// float64 runs through the reference (gradient checks, not speed).
void rnn_forward(const RnnForwardArgs<double>& a) {
  rnn_forward_ref(a);
  record_impl("rnn_forward", "scalar_ref");
}

void rnn_backward(const RnnBackwardArgs<double>& a) {
  rnn_backward_ref(a);
  record_impl("rnn_backward", "scalar_ref");
}

}  // namespace rb
