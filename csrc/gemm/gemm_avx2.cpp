// Float32 GEMM for AVX2 + FMA (Haswell and later, Zen): the Goto/BLIS scheme.
//
//   for jc in N by NC:          B block  (KC x NC) packed into 16-wide panels, per thread (L3)
//     for pc in K by KC:
//       for ic in M by MC:      A block  (MC x KC) packed into row panels of 6, per thread (L2)
//         for jr, ir:           6x16 micro-kernel, 12 YMM accumulators (L1 holds one B panel)
//
// At K <= 128 the two inner loops swap (a row sweep: one A panel across a group of B panels
// held in L2), so C is written row by row. Threads split the C block as a tm x tn grid of row
// ranges x panel ranges, and a thread out of work takes the others' last items; where one operand
// is small (a single A block, or at most 16 B panels) they instead claim chunks of the other
// operand at run time (the balanced drivers). Edge tiles need no padding: a ragged last B panel
// is zero-filled, a block's last rows go in panels of fewer rows (panel_rows), and partial tiles
// are written through a small buffer, so no size has to divide the tile. Small, skinny and K <= 4 products
// skip packing (the direct paths).
//
// Where the CPU has AVX-512F, run_tiles hands pairs of full B panels to the 6x32 AVX-512 micro-kernel
// instead (gemm_avx512.cpp; same packed layouts, same bits). This file is compiled with -mavx2 -mfma; it uses
// no standard library templates, so nothing here can be shared with (and leak AVX2 into) baseline code.
#include <immintrin.h>

#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/dispatch.h"
#include "gemm/gemm.h"

namespace rb {
namespace {

constexpr int64_t MR = 6;
constexpr int64_t NR = 16;
constexpr int64_t MC = 144;   // MR multiple: A block 144 x 512 floats = 288 KiB, fits L2 (512 KiB on Zen 3)
// K block. C is read and written once per block (its tiles are too many to stay in cache between
// blocks), and a product with few rows (a recurrent step: a few dozen per thread) or a large C (the
// RNN's gates and gradients) paid that traffic as much as the arithmetic at 256. At 512 the 6x32
// kernel's B pair (64 KiB) streams from L2 for each A panel, which measured free. Paired against 256
// (bench/ab_builds.py, 2 threads, Zen 4): 1024^3 1.017x, 2048^3 1.016x, 6400x512x2048 1.032x,
// 128x784x1152 1.020x, 512x49x4608 1.021x, 64x50176x27 1.055x; AVX2 kernel 1.03-1.045x; 1 thread
// 1024^3 1.027x; recurrent step products: LSTM (100,64) kernels 1.023x; convolutions unchanged.
// (A cap of 256 or 128 for the pre-packed step weights alone: LSTM (50, 32) kernels 0.995x, 0.985x.)
constexpr int64_t KC = 512;
constexpr int64_t NC = 4080;  // NR multiple: B block 512 x 4080 floats = 8 MiB, fits L3
// B panels packed together right before use (see pack_b_panels): 8 reads 512 contiguous bytes of
// each B row. Against 4, interleaved A/B medians: 64x2048x2048 +7-11% at 1 and 2 threads, where B
// streams from memory; 64x3136x576, 128x784x1152, 256x196x2304 within noise.
constexpr int64_t kPanelGroup = 8;
// B panels packed together ahead of a sweep over several A blocks: each B row is then read as
// 8 x 64 contiguous bytes, not 64 (one panel at a time read every row as a separate cache miss).
constexpr int64_t kPackGroup = 8;
// A thread that multiplies each A block by at most this many B panels reads A's row panels in
// place (unit column stride) instead of packing them: packing is one more pass over A, from L3,
// paid back only over many panels. Measured at 1 and 2 threads: 16 beats 4 by 10-25% on 256^3,
// 512^3, 256x196x2304 and the RNN's dX = dgates . W_ih, and 32 loses on tall products. (Packing A
// in the LSTM (50, 32) backward's step products, 16 panels: 0.989-0.993x.)
constexpr int64_t kInPlaceMaxPanels = 16;
// Smallest weight (floats) that pack_b_avx2 packs with the whole team.
constexpr int64_t kParallelPackFloats = int64_t(1) << 16;
// Largest K at which the packed driver sweeps rows of C (see sgemm_blocked).
constexpr int64_t kRowSweepMaxK = 128;
// A last B panel of at most this many valid columns goes through the thin-edge kernels (see
// thin_tile), where A is read in place.
constexpr int64_t kThinMaxColumns = 4;

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// K blocks of near-equal depth: as few as KC allows, each a multiple of 8 (at most KC). A remainder
// block (K = 1600 as 512, 512, 512, 64) paid a full pass over C for an eighth of the arithmetic.
inline int64_t k_depth(int64_t K) { return ceil_div(ceil_div(K, ceil_div(K, KC)), 8) * 8; }

// Rows of the next A panel when `remaining` rows of a block are left: MR, except that a last 7 or 8
// go as 4 + 3 or 4 + 4. A 1- or 2-row tile has 2 or 4 independent FMA chains for the FMA latency of
// 4 cycles on two pipes, so it runs at a quarter or half rate; 3 and 4 rows keep 6 and 8 chains.
// (Micro-kernel from L1, GFLOP/s by rows 1-6: 25, 47, 69, 83, 86, 87. Rows 1 and 2 have since been
// given a second set of accumulators, see kernel_6x16: on a Zen 4, 1 row 30 -> 57, 2 rows 56 -> 82,
// 6 rows 98.)
inline int64_t panel_rows(int64_t remaining) { return remaining == 7 || remaining == 8 ? 4 : min64(MR, remaining); }

// In-register transpose of an 8x8 block: r[i] lane j  ->  r[j] lane i.
inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {
    u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h + 0], t[4 * h + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// ---- packing -------------------------------------------------------------------------

// A panel: rows [0, mr) x columns [0, kc) of `a` -> dst[p * mr + i].
void pack_a_panel(int64_t mr, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  int64_t p = 0;
  if (mr == MR && cs == 1) {
    // Rows are contiguous along k: transpose 8-wide chunks (rows 6 and 7 are padding). Each
    // column is stored 8 wide, its two padding lanes overwritten by the next column's store: a
    // masked store is microcoded on Zen and cost a third of the packing time. Only the last
    // column of the panel is masked, so nothing past it is written.
    const __m256i keep6 = _mm256_setr_epi32(-1, -1, -1, -1, -1, -1, 0, 0);
    for (; p + 8 <= kc; p += 8) {
      __m256 r[8];
      for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(a + i * rs + p);
      // A block's rows are short streams (KC floats) that the hardware prefetcher does not pick
      // up in time: ask for the next row panel's lines while this one is transposed.
      if (p % 16 == 0)
        for (int i = 0; i < 6; ++i) _mm_prefetch(reinterpret_cast<const char*>(a + (MR + i) * rs + p), _MM_HINT_T0);
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int k = 0; k < 7; ++k) _mm256_storeu_ps(dst + (p + k) * MR, r[k]);
      if (p + 8 < kc)
        _mm256_storeu_ps(dst + (p + 7) * MR, r[7]);
      else
        _mm256_maskstore_ps(dst + (p + 7) * MR, keep6, r[7]);
    }
  }
  for (; p < kc; ++p)
    for (int64_t i = 0; i < mr; ++i) dst[p * mr + i] = a[i * rs + p * cs];
}

// A block: rows [0, mc) x columns [0, kc) of `a` as the row panels of panel_rows, the panel of row
// ir at dst + ir * kc. When A's columns are contiguous (A is a transposed row-major matrix) the
// block is walked column by column, each column dealt out to all panels: a panel at a time read 24
// bytes of each column's cache line, and at a power-of-two column stride the lines fell out of L1
// and L2 (same sets) before the next panel could use the rest of them. Packing reads A from memory
// with no arithmetic beside it, but asking for the next block's lines while the current block
// computes measured 0.99-1.00x (6400x512x2048, 2048x1024x6400 transposed).
void pack_a_block(int64_t mc, int64_t kc, const float* a, int64_t rs, int64_t cs, float* dst) {
  if (rs != 1 || cs == 1) {
    for (int64_t ir = 0; ir < mc; ir += panel_rows(mc - ir))
      pack_a_panel(panel_rows(mc - ir), kc, a + ir * rs, rs, cs, dst + ir * kc);
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    const float* column = a + p * cs;
    for (int64_t i = 0; i < mc; i += 16) _mm_prefetch(reinterpret_cast<const char*>(column + 8 * cs + i), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(column + 8 * cs + mc - 1), _MM_HINT_T0);
    for (int64_t ir = 0; ir < mc;) {
      const int64_t mr = panel_rows(mc - ir);
      float* out = dst + ir * kc + p * mr;
      if (mr == MR) {  // two overlapping 4-wide copies (values 0-3 and 2-5)
        _mm_storeu_ps(out, _mm_loadu_ps(column + ir));
        _mm_storeu_ps(out + 2, _mm_loadu_ps(column + ir + 2));
      } else {
        for (int64_t i = 0; i < mr; ++i) out[i] = column[ir + i];
      }
      ir += mr;
    }
  }
}

// B panel: rows [0, kc) x columns [0, nr) of `b` -> dst[p * NR + j], zero columns past nr.
void pack_b_panel(int64_t nr, int64_t kc, const float* b, int64_t rs, int64_t cs, float* dst) {
  int64_t p = 0;
  if (nr == NR && cs == 1) {
    for (; p < kc; ++p) {
      // Rows are far apart in memory (beyond what the hardware prefetcher follows).
      _mm_prefetch(reinterpret_cast<const char*>(b + (p + 16) * rs), _MM_HINT_T0);
      _mm256_store_ps(dst + p * NR, _mm256_loadu_ps(b + p * rs));
      _mm256_store_ps(dst + p * NR + 8, _mm256_loadu_ps(b + p * rs + 8));
    }
  } else if (nr == NR && rs == 1) {
    // Columns are contiguous along k (B is a transposed row-major matrix): 8x8 transposes.
    for (; p + 8 <= kc; p += 8) {
      for (int half = 0; half < 2; ++half) {
        __m256 r[8];
        for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(b + (half * 8 + j) * cs + p);
        transpose8(r);
        for (int k = 0; k < 8; ++k) _mm256_store_ps(dst + (p + k) * NR + half * 8, r[k]);
      }
    }
  }
  for (; p < kc; ++p) {
    int64_t j = 0;
    for (; j < nr; ++j) dst[p * NR + j] = b[p * rs + j * cs];
    for (; j < NR; ++j) dst[p * NR + j] = 0.0f;
  }
}

// Panels [0, count) of B's rows [0, kc) into dst + g * panel_stride, like pack_b_panel for each. With
// unit column stride and full panels each row is read once for all of them: count * 64 contiguous
// bytes per row instead of 64 (the rows of a wide B are far apart, and each is a cache miss).
void pack_b_panels(int64_t count, int64_t n_valid, int64_t kc, const float* b, int64_t rs, int64_t cs, float* dst,
                   int64_t panel_stride) {
  if (cs == 1 && n_valid == count * NR) {
    for (int64_t p = 0; p < kc; ++p) {
      const float* row = b + p * rs;
      for (int64_t g = 0; g < count; ++g)
        _mm_prefetch(reinterpret_cast<const char*>(row + 16 * rs + g * NR), _MM_HINT_T0);
      for (int64_t g = 0; g < count; ++g) {
        _mm256_store_ps(dst + g * panel_stride + p * NR, _mm256_loadu_ps(row + g * NR));
        _mm256_store_ps(dst + g * panel_stride + p * NR + 8, _mm256_loadu_ps(row + g * NR + 8));
      }
    }
    return;
  }
  for (int64_t g = 0; g < count; ++g) {
    const int64_t nr = n_valid - g * NR < NR ? n_valid - g * NR : NR;
    pack_b_panel(nr, kc, b + g * NR * cs, rs, cs, dst + g * panel_stride);
  }
}

// Ask for rows [pc, pc + kc) x columns [j, j + 16) of B to be brought into L2.
void prefetch_b_panel(MatView<const float> B, int64_t pc, int64_t kc, int64_t j) {
  for (int64_t p = pc; p < pc + kc; ++p) {
    const float* row = B.data + p * B.rs + j * B.cs;
    _mm_prefetch(reinterpret_cast<const char*>(row), _MM_HINT_T1);
    _mm_prefetch(reinterpret_cast<const char*>(row + (NR - 1) * B.cs), _MM_HINT_T1);
  }
}

// ---- micro-kernel ---------------------------------------------------------------------

// One row of the micro-kernel's update: (lo, hi) += a[0] * (b0, b1); only lo at WIDTH 8.
template <int WIDTH>
inline __attribute__((always_inline)) void fma_row(const float* a, __m256 b0, __m256 b1, __m256& lo, __m256& hi) {
  const __m256 ai = _mm256_broadcast_ss(a);
  lo = _mm256_fmadd_ps(ai, b0, lo);
  if constexpr (WIDTH == 16) hi = _mm256_fmadd_ps(ai, b1, hi);
}

// C[0:ROWS, 0:nr] = alpha * (A panel . B panel) + beta * C.
// A panel of ROWS rows: packed (element (i, p) at a[p * ROWS + i]) or, with A_IN_PLACE, rows of
// a matrix with unit column stride (element (i, p) at a[i * lda + p]).
// B panel: row p is the 16 floats at b + p * b_rs (b_rs = NR for a packed panel).
// WIDTH 8 computes only the left half (a ragged last panel of at most 8 columns), and
// ROWS < 6 only that many rows (the last panels of a block, see panel_rows).
// Tiles of full width (16, or 8 at WIDTH 8) with unit column stride store straight from
// registers; others go through a small buffer so only the valid ROWS x nr part of C is touched.
template <bool A_IN_PLACE, int WIDTH, int ROWS>
void kernel_6x16(int64_t kc, const float* a, int64_t lda, const float* b, int64_t b_rs, float* c, int64_t rsc,
                 int64_t csc, float alpha, float beta, int64_t nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  // Packed: the ROWS values of step p are adjacent. In place: ROWS row pointers.
  const int64_t row = A_IN_PLACE ? lda : 1;
  const int64_t step = A_IN_PLACE ? 1 : ROWS;
  const float* a0 = a;
  const float* a1 = a + row;
  const float* a2 = a + 2 * row;
  const float* a3 = a + 3 * row;
  const float* a4 = a + 4 * row;
  const float* a5 = a + 5 * row;
  // Fetch the C tile now so its update at the end does not wait on a cache miss.
  for (int i = 0; i < ROWS; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc + (nr - 1) * csc), _MM_HINT_T0);
  }

  // No software prefetch in the loop: both panels are sequential streams that the hardware
  // prefetcher follows, and on Zen 3 prefetching A 16 steps and B 8 rows ahead only took load
  // slots (interleaved A/B: 0-5% slower on 1024^3, 64x3136x576, 512x49x4608).
  int64_t p = 0;
  if constexpr (ROWS <= 2) {
    // One or two rows give only 2 or 4 FMA chains, too few for the FMA latency (4 cycles, two
    // pipes): odd steps of k go to a second set of accumulators, added in at the end. (A single row
    // is a matrix-vector product: a recurrent step at batch 1, see rnn/step_gemm.h.)
    __m256 d00 = _mm256_setzero_ps(), d01 = _mm256_setzero_ps();
    __m256 d10 = _mm256_setzero_ps(), d11 = _mm256_setzero_ps();
#pragma GCC unroll 2
    for (; p + 2 <= kc; p += 2) {
      const __m256 b0 = _mm256_loadu_ps(b), b2 = _mm256_loadu_ps(b + b_rs);
      const __m256 b1 = WIDTH == 16 ? _mm256_loadu_ps(b + 8) : b0;
      const __m256 b3 = WIDTH == 16 ? _mm256_loadu_ps(b + b_rs + 8) : b2;
      fma_row<WIDTH>(a0 + p * step, b0, b1, c00, c01);
      fma_row<WIDTH>(a0 + (p + 1) * step, b2, b3, d00, d01);
      if constexpr (ROWS > 1) {
        fma_row<WIDTH>(a1 + p * step, b0, b1, c10, c11);
        fma_row<WIDTH>(a1 + (p + 1) * step, b2, b3, d10, d11);
      }
      b += 2 * b_rs;
    }
    c00 = _mm256_add_ps(c00, d00), c01 = _mm256_add_ps(c01, d01);
    c10 = _mm256_add_ps(c10, d10), c11 = _mm256_add_ps(c11, d11);
  }
#pragma GCC unroll 4
  for (; p < kc; ++p) {
    const __m256 b0 = _mm256_loadu_ps(b);
    const __m256 b1 = WIDTH == 16 ? _mm256_loadu_ps(b + 8) : b0;
    const int64_t k = p * step;
    fma_row<WIDTH>(a0 + k, b0, b1, c00, c01);
    if constexpr (ROWS > 1) fma_row<WIDTH>(a1 + k, b0, b1, c10, c11);
    if constexpr (ROWS > 2) fma_row<WIDTH>(a2 + k, b0, b1, c20, c21);
    if constexpr (ROWS > 3) fma_row<WIDTH>(a3 + k, b0, b1, c30, c31);
    if constexpr (ROWS > 4) fma_row<WIDTH>(a4 + k, b0, b1, c40, c41);
    if constexpr (ROWS > 5) fma_row<WIDTH>(a5 + k, b0, b1, c50, c51);
    b += b_rs;
  }

  const __m256 va = _mm256_set1_ps(alpha);
  __m256 acc[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
  if (nr == WIDTH && csc == 1) {
    const __m256 vb = _mm256_set1_ps(beta);
    for (int i = 0; i < ROWS; ++i) {
      for (int half = 0; half < WIDTH / 8; ++half) {
        float* ci = c + i * rsc + 8 * half;
        const __m256 v = _mm256_mul_ps(va, acc[2 * i + half]);
        _mm256_storeu_ps(ci, beta == 0.0f ? v : _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), v));
      }
    }
    return;
  }
  alignas(32) float tile[MR * NR];
  for (int i = 0; i < ROWS; ++i) {
    _mm256_store_ps(tile + i * NR, _mm256_mul_ps(va, acc[2 * i]));
    _mm256_store_ps(tile + i * NR + 8, _mm256_mul_ps(va, acc[2 * i + 1]));
  }
  const int64_t cols = min64(nr, WIDTH);  // nr <= WIDTH by contract; the bound also tells the compiler
  for (int i = 0; i < ROWS; ++i)
    for (int64_t j = 0; j < cols; ++j) {
      float* cij = c + i * rsc + j * csc;
      *cij = beta == 0.0f ? tile[i * NR + j] : tile[i * NR + j] + beta * *cij;
    }
}

using Kernel = void (*)(int64_t, const float*, int64_t, const float*, int64_t, float*, int64_t, int64_t, float, float,
                        int64_t);

// The kernel for an mr x nr tile (mr <= 6, nr <= 16).
template <bool A_IN_PLACE>
Kernel kernel_for(int64_t mr, int64_t nr) {
  static constexpr Kernel full_width[MR] = {kernel_6x16<A_IN_PLACE, 16, 1>, kernel_6x16<A_IN_PLACE, 16, 2>,
                                            kernel_6x16<A_IN_PLACE, 16, 3>, kernel_6x16<A_IN_PLACE, 16, 4>,
                                            kernel_6x16<A_IN_PLACE, 16, 5>, kernel_6x16<A_IN_PLACE, 16, 6>};
  static constexpr Kernel half_width[MR] = {kernel_6x16<A_IN_PLACE, 8, 1>, kernel_6x16<A_IN_PLACE, 8, 2>,
                                            kernel_6x16<A_IN_PLACE, 8, 3>, kernel_6x16<A_IN_PLACE, 8, 4>,
                                            kernel_6x16<A_IN_PLACE, 8, 5>, kernel_6x16<A_IN_PLACE, 8, 6>};
  return (nr > 8 ? full_width : half_width)[mr - 1];
}

// ---- thin edge: a last B panel of a few columns ------------------------------------------
//
// The micro-kernel vectorises along N, so a ragged last panel costs a half-width tile whatever
// its valid columns: with N = 49 (7x7 images in an im2col product) the 49th column takes 6 FMAs
// per step of k for 6 useful products, a seventh of the whole product's work. Where A's rows are
// read in place (few B panels, the case where one panel is a large share), the few columns are
// instead copied out of the packed panel as vectors along k, and each (row, column) of the tile
// is a dot product vectorised along k: ROWS x COLS FMAs per 8 steps of k rather than 8 x ROWS.

// columns[j * kc + p] = panel[p * NR + j] for the first `cols` columns of a packed B panel.
void panel_columns(int64_t cols, int64_t kc, const float* panel, float* columns) {
  for (int64_t p = 0; p < kc; ++p)
    for (int64_t j = 0; j < cols; ++j) columns[j * kc + p] = panel[p * NR + j];
}

inline float horizontal_sum(__m256 v) {
  const __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
  return _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)));
}

// C[0:ROWS, 0:COLS] = alpha * A rows . B columns + beta * C, with A's rows in place (unit column
// stride, row stride lda) and B's columns contiguous along k (column j at b + j * kc).
template <int ROWS, int COLS>
void thin_kernel(int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t rsc, int64_t csc,
                 float alpha, float beta) {
  __m256 acc[ROWS][COLS];
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) acc[i][j] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8) {
    __m256 column[COLS];
    for (int j = 0; j < COLS; ++j) column[j] = _mm256_loadu_ps(b + j * kc + p);
    for (int i = 0; i < ROWS; ++i) {
      const __m256 row = _mm256_loadu_ps(a + i * lda + p);
      for (int j = 0; j < COLS; ++j) acc[i][j] = _mm256_fmadd_ps(row, column[j], acc[i][j]);
    }
  }
  for (int i = 0; i < ROWS; ++i)
    for (int j = 0; j < COLS; ++j) {
      float dot = horizontal_sum(acc[i][j]);
      for (int64_t q = p; q < kc; ++q) dot += a[i * lda + q] * b[j * kc + q];
      float* cij = c + i * rsc + j * csc;
      *cij = beta == 0.0f ? alpha * dot : alpha * dot + beta * *cij;
    }
}

// Rows of a thin tile taken together: the accumulators, the COLS column vectors and a row vector
// stay within the 16 YMM registers.
template <int COLS>
constexpr int thin_rows_max() { return COLS <= 2 ? 6 : COLS == 3 ? 3 : 2; }

// thin_kernel<rows, COLS> for a runtime rows <= ROWS.
template <int COLS, int ROWS = thin_rows_max<COLS>()>
void thin_rows(int64_t rows, int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t rsc,
               int64_t csc, float alpha, float beta) {
  if constexpr (ROWS > 1)
    if (rows < ROWS) return thin_rows<COLS, ROWS - 1>(rows, kc, a, lda, b, c, rsc, csc, alpha, beta);
  thin_kernel<ROWS, COLS>(kc, a, lda, b, c, rsc, csc, alpha, beta);
}

template <int COLS>
void thin_tile_of(int64_t mr, int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t rsc,
                  int64_t csc, float alpha, float beta) {
  for (int64_t i = 0; i < mr; i += thin_rows_max<COLS>())
    thin_rows<COLS>(min64(thin_rows_max<COLS>(), mr - i), kc, a + i * lda, lda, b, c + i * rsc, rsc, csc, alpha,
                    beta);
}

// An mr x nr tile (mr <= 6, nr <= kThinMaxColumns) from A rows in place and B columns as above.
void thin_tile(int64_t mr, int64_t nr, int64_t kc, const float* a, int64_t lda, const float* b, float* c,
               int64_t rsc, int64_t csc, float alpha, float beta) {
  switch (nr) {
    case 1: thin_tile_of<1>(mr, kc, a, lda, b, c, rsc, csc, alpha, beta); break;
    case 2: thin_tile_of<2>(mr, kc, a, lda, b, c, rsc, csc, alpha, beta); break;
    case 3: thin_tile_of<3>(mr, kc, a, lda, b, c, rsc, csc, alpha, beta); break;
    default: thin_tile_of<4>(mr, kc, a, lda, b, c, rsc, csc, alpha, beta); break;
  }
}
static_assert(kThinMaxColumns == 4, "thin_tile handles 1 to 4 columns");

// ---- packed driver --------------------------------------------------------------------

// Split `units` into `parts` near-equal contiguous ranges; range `k` is [begin, end).
inline void split_range(int64_t units, int64_t parts, int64_t k, int64_t* begin, int64_t* end) {
  *begin = units * k / parts;
  *end = units * (k + 1) / parts;
}

// Packed B panels of kc rows lie this many floats apart: kc * NR in a row sweep (a group of
// row_sweep_panels fills the space of kPanelGroup panels of KC rows), KC * NR otherwise.
inline int64_t panel_stride(bool row_sweeps, int64_t kc) { return row_sweeps ? kc * NR : KC * NR; }
// Panels of kc rows that a row sweep runs each A panel across: the group fits L2.
inline int64_t row_sweep_panels(int64_t kc) { return kPanelGroup * KC / kc; }

// The tiles of C's rows [ic, ic + mc) x `group` packed B panels from column j0, over k rows [pc, pc + kc):
// A's row panels are read in place or from packed_a (the panel of row ir at packed_a + ir * kc), and
// panel q of the group lies at b_group + q * stride.
// - At small K each tile does little arithmetic per C line it writes, and C's write streams decide
//   the speed: a row sweep runs each A panel across the whole group (group in L2), so six rows of C
//   are written left to right; B-panel-major order wrote 6-row by 64-byte pieces down a column
//   strip, a cache miss per row. (64 x 50176 x 27, the im2col product of a 3-channel 3x3
//   convolution: 2x faster; at K >= 256 sweeping measured -2..+4%.) Otherwise each B panel stays
//   in L1 while the A panels pass.
// - The last panel of N, when it has only a few valid columns and A is read in place, goes as
//   vectors along k (see thin_tile).
void run_tiles(int64_t ic, int64_t mc, int64_t j0, int64_t group, int64_t pc, int64_t kc, int64_t N, float alpha,
               float beta, MatView<const float> A, bool a_in_place, const float* packed_a, const float* b_group,
               int64_t stride, bool row_sweeps, MatView<float> C) {
  alignas(32) float thin_columns[kThinMaxColumns * KC];
  const int64_t last_columns = N - (j0 + (group - 1) * NR);
  const bool thin_edge = a_in_place && last_columns <= kThinMaxColumns;
  if (thin_edge) panel_columns(last_columns, kc, b_group + (group - 1) * stride, thin_columns);
  auto tile = [&](int64_t q, int64_t ir) {
    const int64_t j = j0 + q * NR, nr = min64(NR, N - j), mr = panel_rows(mc - ir);
    float* c_tile = C.data + (ic + ir) * C.rs + j * C.cs;
    const float* a_panel = a_in_place ? A.data + (ic + ir) * A.rs + pc : packed_a + ir * kc;
    if (thin_edge && q == group - 1) {
      thin_tile(mr, nr, kc, a_panel, A.rs, thin_columns, c_tile, C.rs, C.cs, alpha, beta);
      return;
    }
    const Kernel kernel = a_in_place ? kernel_for<true>(mr, nr) : kernel_for<false>(mr, nr);
    kernel(kc, a_panel, A.rs, b_group + q * stride, NR, c_tile, C.rs, C.cs, alpha, beta, nr);
  };
  // Pairs of full B panels go through the AVX-512 kernel, panels of 3 to 6 rows (other tiles as above;
  // one or two rows keep the AVX2 kernel's two accumulator sets along k).
  const bool wide = C.cs == 1 && avx512_active();
  const int64_t pairs = wide ? min64(group, (N - j0) / NR) / 2 : 0;  // full panels, two at a time
  auto pair = [&](int64_t q, int64_t ir) {
    const int64_t mr = panel_rows(mc - ir);
    if (mr < 3) {
      tile(q, ir);
      tile(q + 1, ir);
      return;
    }
    const float* a_panel = a_in_place ? A.data + (ic + ir) * A.rs + pc : packed_a + ir * kc;
    kernel_x32_avx512(mr, kc, a_panel, A.rs, a_in_place, b_group + q * stride, stride,
                      C.data + (ic + ir) * C.rs + j0 + q * NR, C.rs, alpha, beta);
  };
  if (row_sweeps) {
    for (int64_t ir = 0; ir < mc; ir += panel_rows(mc - ir)) {
      for (int64_t p = 0; p < pairs; ++p) pair(2 * p, ir);
      for (int64_t q = 2 * pairs; q < group; ++q) tile(q, ir);
    }
    return;
  }
  for (int64_t p = 0; p < pairs; ++p)
    for (int64_t ir = 0; ir < mc; ir += panel_rows(mc - ir)) pair(2 * p, ir);
  for (int64_t q = 2 * pairs; q < group; ++q)
    for (int64_t ir = 0; ir < mc; ir += panel_rows(mc - ir)) tile(q, ir);
}

// ---- balanced drivers: chunks claimed at run time ------------------------------------------
//
// When one operand is small (a block of A rows, or at most kInPlaceMaxPanels B panels), the threads
// need not split C up front. Each thread prepares the small operand whole for itself (A packed or
// read in place; B packed), then claims chunks of the other operand's panels from a shared counter
// and computes each over all of K. A thread that the machine slows (on a shared host one vCPU at
// times runs at 60% of the other's speed) claims fewer chunks, where a static split made the whole
// product wait for it. Chunks shrink as the work runs out (guided), so the last ones are short.

// Claims the next chunk of [0, total): about a (2 * team)-th of what is left, between `least` and
// `most` units (fewer at the very end). Returns false when nothing is left.
bool claim_chunk(int64_t* next, int64_t total, int team, int64_t least, int64_t most, int64_t* begin,
                 int64_t* end) {
  int64_t start = __atomic_load_n(next, __ATOMIC_RELAXED);
  for (;;) {
    if (start >= total) return false;
    int64_t count = (total - start) / (2 * team);
    count = count < least ? least : count > most ? most : count;
    const int64_t stop = min64(total, start + count);
    if (__atomic_compare_exchange_n(next, &start, stop, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
      *begin = start, *end = stop;
      return true;
    }
  }
}

// M <= MC: chunks of B panels. Each thread packs all of A (a single row block) once, KC block by
// KC block, unless it reads A in place; each chunk packs its B panels right before use, KC rows at
// a time, so B is read from memory once overall.
void sgemm_column_chunks(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
                         float beta, MatView<float> C, int team) {
  const int64_t panels = ceil_div(N, NR), kd = k_depth(K), k_blocks = ceil_div(K, kd);
  const bool a_in_place = A.cs == 1 && panels <= kInPlaceMaxPanels;
  const bool row_sweeps = K <= kRowSweepMaxK;
  const int64_t chunk_max = row_sweeps ? row_sweep_panels(K) : kPanelGroup;
  // Every thread's copy of A, all of K (each KC block M x KC floats), in one block allocated before the
  // team starts: an allocation that fails (K in the billions, from a broadcast view) is then a
  // MemoryError, where inside the parallel region it could only end the process.
  const int64_t a_floats = k_blocks * M * KC;
  float* const packed_a_all =
      a_in_place ? nullptr : thread_scratch_of<float>(ScratchSlot::gemm_pack_a, size_t(team * a_floats));
  int64_t next_panel = 0;
  run_team(team, [&](int tid) {
    float* const packed_a = a_in_place ? nullptr : packed_a_all + tid * a_floats;
    for (int64_t pc = 0; pc < K && !a_in_place; pc += kd)
      pack_a_block(M, min64(kd, K - pc), A.data + pc * A.cs, A.rs, A.cs, packed_a + pc / kd * M * KC);
    float* packed_b =
        thread_scratch_of<float>(ScratchSlot::gemm_pack_b, size_t(panel_stride(row_sweeps, min64(K, KC)) * chunk_max));
    int64_t begin, end;
    while (claim_chunk(&next_panel, panels, team, 1, chunk_max, &begin, &end)) {
      const int64_t group = end - begin, j0 = begin * NR;
      for (int64_t pc = 0; pc < K; pc += kd) {
        const int64_t kc = min64(kd, K - pc);
        const int64_t stride = panel_stride(row_sweeps, kc);
        pack_b_panels(group, min64(group * NR, N - j0), kc, B.data + pc * B.rs + j0 * B.cs, B.rs, B.cs, packed_b,
                      stride);
        if (pc + kd < K)  // ask for the next block's rows of these panels, to load while this block computes
          for (int64_t q = 0; q < group; ++q) prefetch_b_panel(B, pc + kd, min64(kd, K - pc - kd), j0 + q * NR);
        run_tiles(0, M, j0, group, pc, kc, N, alpha, pc == 0 ? beta : 1.0f, A, a_in_place,
                  a_in_place ? nullptr : packed_a + pc / kd * M * KC, packed_b, stride, row_sweeps, C);
      }
    }
  });
}

// N <= kInPlaceMaxPanels * NR: chunks of A row panels. Each thread packs all of B once; each chunk
// reads its A rows in place, or packs them KC columns at a time.
void sgemm_row_chunks(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
                      float beta, MatView<float> C, int team) {
  const int64_t panels = ceil_div(N, NR), row_units = ceil_div(M, MR);
  const bool a_in_place = A.cs == 1;
  const bool row_sweeps = K <= kRowSweepMaxK;
  // Every thread's copy of B, allocated before the team starts (as A in sgemm_column_chunks). The K
  // block from row pc starts at pc / kd * KC * NR * panels; its panels lie panel_stride apart.
  const int64_t kd = k_depth(K), b_floats = ceil_div(K, kd) * KC * NR * panels;
  float* const packed_b_all = thread_scratch_of<float>(ScratchSlot::gemm_pack_b, size_t(team * b_floats));
  int64_t next_unit = 0;
  run_team(team, [&](int tid) {
    float* const packed_b = packed_b_all + tid * b_floats;
    for (int64_t pc = 0; pc < K; pc += kd) {
      const int64_t kc = min64(kd, K - pc);
      for (int64_t jp = 0; jp < panels; jp += kPackGroup) {
        const int64_t group = min64(kPackGroup, panels - jp);
        pack_b_panels(group, min64(group * NR, N - jp * NR), kc, B.data + pc * B.rs + jp * NR * B.cs, B.rs, B.cs,
                      packed_b + pc / kd * KC * NR * panels + jp * panel_stride(row_sweeps, kc),
                      panel_stride(row_sweeps, kc));
      }
    }
    float* packed_a = a_in_place ? nullptr : thread_scratch_of<float>(ScratchSlot::gemm_pack_a, size_t(MC * KC));
    int64_t begin, end;
    // Chunks of at least 4 row panels: each chunk reads all of B's packed panels from L2 per KC block.
    while (claim_chunk(&next_unit, row_units, team, 4, MC / MR, &begin, &end)) {
      const int64_t ic = begin * MR, mc = min64(M, end * MR) - ic;
      for (int64_t pc = 0; pc < K; pc += kd) {
        const int64_t kc = min64(kd, K - pc);
        if (!a_in_place) pack_a_block(mc, kc, A.data + ic * A.rs + pc * A.cs, A.rs, A.cs, packed_a);
        run_tiles(ic, mc, 0, panels, pc, kc, N, alpha, pc == 0 ? beta : 1.0f, A, a_in_place, packed_a,
                  packed_b + pc / kd * KC * NR * panels, panel_stride(row_sweeps, kc), row_sweeps, C);
      }
    }
  });
}

// ---- work stealing in the static driver -------------------------------------------------
//
// Each thread owns a rectangle of C and its items (an A block x a chunk of B panels) for the current
// K block, in order. It takes its own items from the front; when it has none left it takes the other
// threads' from the back, using the B panels they packed. Items are counted in one word per thread
// (first untaken in the low half, end in the high half), changed by compare-and-swap only.
struct alignas(64) TeamShare {
  const float* packed_b;  // the owner's packed B panels for the current K block
  int64_t items;          // (end << 32) | next
  int64_t ready_stage;    // the K block whose items and B panels are published
};

// Takes an item of `share`: the first untaken (front) or the last (back). False when none is left.
bool take_item(TeamShare* share, bool front, int64_t* item) {
  int64_t word = __atomic_load_n(&share->items, __ATOMIC_RELAXED);
  for (;;) {
    const int64_t next = word & 0xffffffff, end = word >> 32;
    if (next >= end) return false;
    const int64_t taken = front ? word + 1 : ((end - 1) << 32) | next;
    if (__atomic_compare_exchange_n(&share->items, &word, taken, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
      *item = front ? next : end - 1;
      return true;
    }
  }
}

// Runs thread `tid`'s own items of K block `stage`, then the others' untaken ones.
template <typename RunItem>
void take_items(TeamShare* shares, int tid, int team, int64_t stage, RunItem&& run_item) {
  int64_t item;
  while (take_item(&shares[tid], true, &item)) run_item(tid, item);
  for (int step = 1; step < team; ++step) {
    const int v = (tid + step) % team;
    while (__atomic_load_n(&shares[v].ready_stage, __ATOMIC_ACQUIRE) != stage) _mm_pause();
    while (take_item(&shares[v], false, &item)) run_item(v, item);
  }
}

void sgemm_blocked(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
                   float beta, MatView<float> C, int nthreads) {
  if (M * N * K < 65536) nthreads = 1;
  if (nthreads > 1 && M <= MC) return sgemm_column_chunks(M, N, K, alpha, A, B, beta, C, nthreads);
  if (nthreads > 1 && ceil_div(N, NR) <= kInPlaceMaxPanels)
    return sgemm_row_chunks(M, N, K, alpha, A, B, beta, C, nthreads);
  const int64_t nc_max = min64(N, NC);
  // Thread grid tm x tn: of the splits that give every thread work, take the one whose
  // per-thread block has the smallest half-perimeter (least packing per flop).
  int64_t tm = 1, tn = 1;
  double best_cost = -1.0;
  for (int64_t t = 1; t <= nthreads; ++t) {
    if (nthreads % t) continue;
    const int64_t cand_m = t, cand_n = nthreads / t;
    if (cand_m > ceil_div(M, MR) || cand_n > ceil_div(nc_max, NR)) continue;
    const double cost = double(M) / cand_m + double(nc_max) / cand_n;
    if (best_cost < 0 || cost < best_cost) best_cost = cost, tm = cand_m, tn = cand_n;
  }
  const int team = int(tm * tn);

  // Where the micro-kernel's operands come from:
  // - A is packed into an MC x KC block per thread (each value then serves every B panel
  //   from L2), unless B has only a few panels per thread (kInPlaceMaxPanels): then its
  //   row panels are read in place.
  // - B is packed by each thread for itself: the panels it covers, once per KC block, or,
  //   when the thread covers a single A block, each panel right before its use (so it is
  //   read from memory once and then used from L1). Packing privately repeats a little
  //   work when threads split M.
  const bool a_in_place = A.cs == 1 && ceil_div(ceil_div(nc_max, NR), tn) <= kInPlaceMaxPanels;
  const bool b_panelwise = ceil_div(ceil_div(M, MR), tm) * MR <= MC;
  // - At K <= kRowSweepMaxK the tiles go in row sweeps (see run_tiles).
  const bool row_sweeps = K <= kRowSweepMaxK;
  // - With B packed ahead of the A blocks, a thread that finishes its items of a K block early
  //   takes the other threads' last ones (see take_items); a barrier then closes each K block.
  const bool stealing = team > 1 && !b_panelwise;
  TeamShare* const shares = stealing ? thread_scratch_of<TeamShare>(ScratchSlot::gemm_misc, size_t(team)) : nullptr;
  for (int v = 0; stealing && v < team; ++v) shares[v].items = 0, shares[v].ready_stage = -1;
  // The rows and panels (of the current NC block) of thread v.
  auto rectangle_of = [&](int v, int64_t nc, int64_t* row_begin, int64_t* row_end, int64_t* panel_begin,
                          int64_t* panel_end) {
    int64_t unit_begin, unit_end;
    split_range(ceil_div(M, MR), tm, v / tn, &unit_begin, &unit_end);
    *row_begin = unit_begin * MR, *row_end = min64(M, unit_end * MR);
    split_range(ceil_div(nc, NR), tn, v % tn, panel_begin, panel_end);
  };

  const int64_t kd = k_depth(K);
  run_team(team, [&](int tid) {
    float* packed_a = thread_scratch_of<float>(ScratchSlot::gemm_pack_a, size_t(MC * KC));
    const int64_t my_panels_max = ceil_div(ceil_div(nc_max, NR), tn);
    float* packed_b =
        thread_scratch_of<float>(ScratchSlot::gemm_pack_b, size_t(KC * NR * (b_panelwise ? kPanelGroup : my_panels_max)));
    if (stealing) shares[tid].packed_b = packed_b;
    int64_t stage = 0;

    for (int64_t jc = 0; jc < N; jc += NC) {
      const int64_t nc = min64(NC, N - jc);
      int64_t row_begin, row_end, panel_begin, panel_end;
      rectangle_of(tid, nc, &row_begin, &row_end, &panel_begin, &panel_end);

      for (int64_t pc = 0; pc < K; pc += kd, ++stage) {
        const int64_t kc = min64(kd, K - pc);
        const float beta_here = pc == 0 ? beta : 1.0f;
        const int64_t stride = panel_stride(row_sweeps, kc);
        if (!b_panelwise)
          for (int64_t jp = panel_begin; jp < panel_end; jp += kPackGroup) {
            const int64_t group = min64(kPackGroup, panel_end - jp), j = jc + jp * NR;
            pack_b_panels(group, min64(group * NR, N - j), kc, B.data + pc * B.rs + j * B.cs, B.rs, B.cs,
                          packed_b + (jp - panel_begin) * stride, stride);
          }
        if (stealing) {
          // Items: (A block, chunk of B panels) of a thread's rectangle, A-block-major.
          const int64_t chunk = row_sweeps ? row_sweep_panels(kc) : 2 * kPanelGroup;
          int64_t held_owner = -1, held_block = -1;
          auto run_item = [&](int v, int64_t item) {
            int64_t rb, re, pb, pe;
            rectangle_of(v, nc, &rb, &re, &pb, &pe);
            const int64_t chunks = ceil_div(pe - pb, chunk);
            const int64_t block = item / chunks, q0 = pb + item % chunks * chunk;
            const int64_t ic = rb + block * MC, mc = min64(MC, re - ic);
            if (!a_in_place && (v != held_owner || block != held_block)) {
              pack_a_block(mc, kc, A.data + ic * A.rs + pc * A.cs, A.rs, A.cs, packed_a);
              held_owner = v, held_block = block;
            }
            run_tiles(ic, mc, jc + q0 * NR, min64(chunk, pe - q0), pc, kc, N, alpha, beta_here, A, a_in_place,
                      packed_a, shares[v].packed_b + (q0 - pb) * stride, stride, row_sweeps, C);
          };
          const int64_t items = ceil_div(row_end - row_begin, MC) * ceil_div(panel_end - panel_begin, chunk);
          __atomic_store_n(&shares[tid].items, items << 32, __ATOMIC_RELAXED);
          __atomic_store_n(&shares[tid].ready_stage, stage, __ATOMIC_RELEASE);
          take_items(shares, tid, team, stage, run_item);
#pragma omp barrier
          continue;
        }

        for (int64_t ic = row_begin; ic < row_end; ic += MC) {
          const int64_t mc = min64(MC, row_end - ic);
          if (!a_in_place) pack_a_block(mc, kc, A.data + ic * A.rs + pc * A.cs, A.rs, A.cs, packed_a);
          // Panels go in groups (packed just before use at b_panelwise, all packed above otherwise);
          // a row sweep's group fits L2.
          const int64_t group_max =
              row_sweeps ? row_sweep_panels(kc) : b_panelwise ? kPanelGroup : panel_end - panel_begin;
          for (int64_t g0 = panel_begin; g0 < panel_end; g0 += group_max) {
            const int64_t group = min64(group_max, panel_end - g0), j0 = jc + g0 * NR;
            float* const b_group = b_panelwise ? packed_b : packed_b + (g0 - panel_begin) * stride;
            if (b_panelwise) {
              pack_b_panels(group, min64(group * NR, N - j0), kc, B.data + pc * B.rs + j0 * B.cs, B.rs, B.cs, b_group,
                            stride);
              if (!row_sweeps)  // ask for the next group's rows, to load while this group computes
                for (int64_t next = g0 + group; next < min64(g0 + 2 * group, panel_end); ++next)
                  prefetch_b_panel(B, pc, kc, jc + next * NR);
            }
            run_tiles(ic, mc, j0, group, pc, kc, N, alpha, beta_here, A, a_in_place, packed_a, b_group, stride,
                      row_sweeps, C);
          }
        }
      }
    }
  });
}

// ---- direct paths for skinny products ---------------------------------------------------

// Columns one few-rows block covers: ROWS x width floats of accumulators fit 8 KiB of L1,
// and each accumulator row stays 32-byte aligned (a multiple of 8 floats).
constexpr int64_t few_rows_width(int64_t rows) { return 2048 / (rows <= 2 ? rows : 4); }

// C[0:ROWS, j0:j0+w] for a block of at most 4 rows and w <= few_rows_width(ROWS) columns:
// B is streamed row by row (each row segment is contiguous, the whole row when N is small),
// and every row of B updates all ROWS accumulator rows, which stay in L1.
template <int ROWS>
void few_rows_block(int64_t j0, int64_t w, int64_t K, float alpha, const float* const* a_rows, int64_t a_cs,
                    MatView<const float> B, float beta, float* const* c_rows, int64_t c_cs) {
  alignas(32) float acc[ROWS][few_rows_width(ROWS)];
  for (int r = 0; r < ROWS; ++r)
    for (int64_t j = 0; j < w; ++j) acc[r][j] = 0.0f;
  const int64_t w8 = w / 8 * 8;
  for (int64_t p = 0; p < K; ++p) {
    const float* b = B.data + p * B.rs + j0;
    _mm_prefetch(reinterpret_cast<const char*>(b + 4 * B.rs), _MM_HINT_T0);
    for (int r = 0; r < ROWS; ++r) {
      const float a_scalar = a_rows[r][p * a_cs];
      const __m256 a = _mm256_set1_ps(a_scalar);
      float* acc_r = acc[r];
      for (int64_t j = 0; j < w8; j += 8)
        _mm256_store_ps(acc_r + j, _mm256_fmadd_ps(a, _mm256_loadu_ps(b + j), _mm256_load_ps(acc_r + j)));
      for (int64_t j = w8; j < w; ++j) acc_r[j] += a_scalar * b[j];
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int64_t j = 0; j < w; ++j) {
      float* cij = c_rows[r] + (j0 + j) * c_cs;
      *cij = beta == 0.0f ? alpha * acc[r][j] : alpha * acc[r][j] + beta * *cij;
    }
}

// M <= 4 and B has unit column stride (a vector or a few rows times a matrix): no
// packing; B is read once, in contiguous row segments, and threads split the columns.
void sgemm_few_rows(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
                    float beta, MatView<float> C, int nthreads) {
  const float* a_rows[4];
  float* c_rows[4];
  for (int64_t i = 0; i < M; ++i) {
    a_rows[i] = A.data + i * A.rs;
    c_rows[i] = C.data + i * C.rs;
  }
  // Column chunks as wide as the accumulators allow, at least one per thread when there
  // is enough work.
  const int team = M * N * K > 65536 ? nthreads : 1;
  const int64_t chunk_width = min64(few_rows_width(M), ceil_div(ceil_div(N, team), 8) * 8);
  const int64_t chunks = ceil_div(N, chunk_width);
  parallel_for(team, chunks, [&](int64_t chunk) {
    const int64_t j0 = chunk * chunk_width, w = min64(chunk_width, N - j0);
    switch (M) {
      case 1: few_rows_block<1>(j0, w, K, alpha, a_rows, A.cs, B, beta, c_rows, C.cs); break;
      case 2: few_rows_block<2>(j0, w, K, alpha, a_rows, A.cs, B, beta, c_rows, C.cs); break;
      case 3: few_rows_block<3>(j0, w, K, alpha, a_rows, A.cs, B, beta, c_rows, C.cs); break;
      default: few_rows_block<4>(j0, w, K, alpha, a_rows, A.cs, B, beta, c_rows, C.cs); break;
    }
  });
}


// ---- a sum of a few outer products ------------------------------------------------------------

constexpr int64_t kFewK = 4;

// One row of C from KK rows of B: c[0:n] = alpha * sum_p a[p] * b[p][0:n] + beta * c[0:n].
template <int KK>
void few_k_row(int64_t n, const float* a, const float* const* b, float alpha, float beta, float* c) {
  __m256 va[KK];
  for (int p = 0; p < KK; ++p) va[p] = _mm256_set1_ps(a[p]);
  const __m256 valpha = _mm256_set1_ps(alpha), vbeta = _mm256_set1_ps(beta);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 acc = _mm256_mul_ps(va[0], _mm256_loadu_ps(b[0] + j));
    for (int p = 1; p < KK; ++p) acc = _mm256_fmadd_ps(va[p], _mm256_loadu_ps(b[p] + j), acc);
    acc = _mm256_mul_ps(valpha, acc);
    _mm256_storeu_ps(c + j, beta == 0.0f ? acc : _mm256_fmadd_ps(vbeta, _mm256_loadu_ps(c + j), acc));
  }
  for (; j < n; ++j) {  // fused, like the vector loop (std::fma would be a shared inline)
    float acc = a[0] * b[0][j];
    for (int p = 1; p < KK; ++p) acc = _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a[p]), _mm_set_ss(b[p][j]), _mm_set_ss(acc)));
    c[j] = beta == 0.0f ? alpha * acc : alpha * acc + beta * c[j];
  }
}

// K <= 4 (a weight gradient at batch 1, say) and B, C with unit column stride: each row of C is
// written once, from B's few rows, which stay in L1. Bound by writing C; the packed path spent
// more per 6x16 tile on setup and stores than on its one to four multiply-adds (a 2048 x 512
// outer product took 2.5x as long).
void sgemm_few_k(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
                 float beta, MatView<float> C, int nthreads) {
  const int team = M * N > 65536 ? nthreads : 1;
  const float* b[kFewK];
  for (int64_t p = 0; p < K; ++p) b[p] = B.data + p * B.rs;
  parallel_for(team, M, [&](int64_t i) {
    float a[kFewK];
    for (int64_t p = 0; p < K; ++p) a[p] = A.data[i * A.rs + p * A.cs];
    float* c = C.data + i * C.rs;
    switch (K) {
      case 1: few_k_row<1>(N, a, b, alpha, beta, c); break;
      case 2: few_k_row<2>(N, a, b, alpha, beta, c); break;
      case 3: few_k_row<3>(N, a, b, alpha, beta, c); break;
      default: few_k_row<4>(N, a, b, alpha, beta, c); break;
    }
  });
}


// Dot products of four contiguous rows with one contiguous vector x: x is loaded once for all
// four, and two accumulators per row (eight chains) hide the FMA latency. Lane i is row i's sum.
__m128 dot4_contiguous(const float* const rows[4], const float* x, int64_t n) {
  __m256 s[8];
  for (int i = 0; i < 8; ++i) s[i] = _mm256_setzero_ps();
  int64_t p = 0;
  for (; p + 16 <= n; p += 16) {
    const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
    for (int i = 0; i < 4; ++i) {
      s[2 * i] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[i] + p), x0, s[2 * i]);
      s[2 * i + 1] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[i] + p + 8), x1, s[2 * i + 1]);
    }
  }
  for (; p + 8 <= n; p += 8) {
    const __m256 x0 = _mm256_loadu_ps(x + p);
    for (int i = 0; i < 4; ++i) s[2 * i] = _mm256_fmadd_ps(_mm256_loadu_ps(rows[i] + p), x0, s[2 * i]);
  }
  // hadd(a, b) = [a0+a1, a2+a3, b0+b1, b2+b3 | same for lanes 4-7]: two rounds leave row i's
  // partial sums in lanes i and i + 4.
  const __m256 r01 = _mm256_hadd_ps(_mm256_add_ps(s[0], s[1]), _mm256_add_ps(s[2], s[3]));
  const __m256 r23 = _mm256_hadd_ps(_mm256_add_ps(s[4], s[5]), _mm256_add_ps(s[6], s[7]));
  const __m256 r = _mm256_hadd_ps(r01, r23);
  __m128 sums = _mm_add_ps(_mm256_castps256_ps128(r), _mm256_extractf128_ps(r, 1));
  if (p < n) {
    alignas(16) float tail[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (; p < n; ++p)
      for (int i = 0; i < 4; ++i) tail[i] += rows[i][p] * x[p];
    sums = _mm_add_ps(sums, _mm_load_ps(tail));
  }
  return sums;
}

// N is tiny and A has unit column stride: C[i, j] = dot(A[i, :], B[:, j]), with each
// column of B copied to a contiguous buffer first (matrix-vector products), rows four at a time.
void sgemm_few_cols(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A, MatView<const float> B,
                    float beta, MatView<float> C, int nthreads) {
  float* columns = thread_scratch_of<float>(ScratchSlot::gemm_misc, size_t(N * K));
  for (int64_t j = 0; j < N; ++j)
    for (int64_t p = 0; p < K; ++p) columns[j * K + p] = B.data[p * B.rs + j * B.cs];
  const int64_t groups = ceil_div(M, 4);
  parallel_for(M * N * K > 65536 ? nthreads : 1, groups, [&](int64_t g) {
    const int64_t i0 = 4 * g, count = min64(4, M - i0);
    const float* rows[4];
    for (int64_t i = 0; i < 4; ++i) rows[i] = A.data + (i0 + min64(i, count - 1)) * A.rs;  // a short group repeats its last row
    for (int64_t j = 0; j < N; ++j) {
      alignas(16) float dots[4];
      _mm_store_ps(dots, dot4_contiguous(rows, columns + j * K, K));
      for (int64_t i = 0; i < count; ++i) {
        float* cij = C.data + (i0 + i) * C.rs + j * C.cs;
        const float v = alpha * dots[i];
        *cij = beta == 0.0f ? v : v + beta * *cij;
      }
    }
  });
}

void scale_c(int64_t M, int64_t N, float beta, MatView<float> C) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      float* cij = C.data + i * C.rs + j * C.cs;
      *cij = beta == 0.0f ? 0.0f : beta * *cij;
    }
}

// Work the tiling actually does: M rounded up to 6 rows, N to 16 columns (8 for a
// last panel of at most 8 columns, which the half-width kernel covers).
inline int64_t padded_work(int64_t M, int64_t N) {
  const int64_t ragged = N % NR;
  return ceil_div(M, MR) * MR * (N - ragged + (ragged == 0 ? 0 : ragged <= 8 ? 8 : NR));
}

}  // namespace

// ---- a right-hand operand packed once, reused by many products ------------------------
//
// Layout, for each K block of rows (k_depth): segment 0's 16-column panels, then segment 1's, ...
// (each panel kc x 16, zero-padded past the segment's N columns). Segment s of B starts
// `b_segment_stride` elements after segment 0; its product goes `c_segment_stride` elements
// along C. A recurrent step uses one segment per gate: one packing of h serves all gates.

int64_t packed_b_floats(int64_t K, int64_t N, int64_t segments) { return segments * K * ceil_div(N, NR) * NR; }

void pack_b_avx2(int64_t K, int64_t N, int64_t segments, MatView<const float> B, int64_t b_segment_stride,
                 float* packed) {
  const int64_t panels = ceil_div(N, NR), kd = k_depth(K), k_blocks = ceil_div(K, kd);
  // The panels are split over the threads available (none inside a parallel region): a recurrent
  // weight is packed again at every forward and backward call, and after the other products of a
  // training step it comes from memory. LSTM (50, 32, 128, 256) forward+backward kernels, 2 threads,
  // paired: 1.008-1.014x; a pack of 256 KiB or less is not worth waking the team.
  const int team = segments * K * N >= kParallelPackFloats ? available_threads() : 1;
  parallel_for(team, k_blocks * segments * panels, [&](int64_t item) {
    const int64_t jp = item % panels, s = item / panels % segments, pc = item / (panels * segments) * kd;
    const int64_t j = jp * NR, kc = min64(kd, K - pc);
    pack_b_panel(min64(NR, N - j), kc, B.data + s * b_segment_stride + pc * B.rs + j * B.cs, B.rs, B.cs,
                 packed + pc * segments * panels * NR + (s * panels + jp) * kc * NR);
  });
}

void sgemm_packed_b_avx2(int64_t M, int64_t N, int64_t K, int64_t segments, float alpha, MatView<const float> A,
                         const float* packed_b, float beta, MatView<float> C, int64_t c_segment_stride) {
  if (M == 0 || N == 0 || segments == 0) return;
  if (K == 0) {
    for (int64_t s = 0; s < segments; ++s) scale_c(M, N, beta, MatView<float>{C.data + s * c_segment_stride, C.rs, C.cs});
    return;
  }
  const int64_t panels = ceil_div(N, NR);
  // As in sgemm_blocked: A's full panels are read in place when few B panels reuse them.
  const bool a_in_place = A.cs == 1 && segments * panels <= kInPlaceMaxPanels;
  float* packed_a = thread_scratch_of<float>(ScratchSlot::gemm_pack_a, size_t(MC * KC));
  const int64_t kd = k_depth(K);  // the depth pack_b_avx2 used
  for (int64_t pc = 0; pc < K; pc += kd) {
    const int64_t kc = min64(kd, K - pc);
    const float beta_here = pc == 0 ? beta : 1.0f;
    const float* block = packed_b + pc * segments * panels * NR;
    for (int64_t ic = 0; ic < M; ic += MC) {
      const int64_t mc = min64(MC, M - ic);
      if (!a_in_place) pack_a_block(mc, kc, A.data + ic * A.rs + pc * A.cs, A.rs, A.cs, packed_a);
      for (int64_t s = 0; s < segments; ++s) {  // segment s: its panels lie kc * NR apart
        const MatView<float> C_s{C.data + s * c_segment_stride, C.rs, C.cs};
        run_tiles(ic, mc, 0, panels, pc, kc, N, alpha, beta_here, A, a_in_place, packed_a,
                  block + s * panels * kc * NR, kc * NR, false, C_s);
      }
    }
  }
}

const char* sgemm_avx2(int64_t M, int64_t N, int64_t K, float alpha, MatView<const float> A,
                       MatView<const float> B, float beta, MatView<float> C) {
  if (M == 0 || N == 0) return "avx2_empty";
  if (K == 0) {
    scale_c(M, N, beta, C);
    return "avx2_k0";
  }
  const int nthreads = available_threads();
  // A few rows or columns: matrix-vector-like products, bound by reading the big operand
  // once; each direct path needs unit stride along its inner loop, and the transposed
  // problem C^T = B^T A^T serves the other layouts.
  const MatView<const float> At{A.data, A.cs, A.rs}, Bt{B.data, B.cs, B.rs};
  const MatView<float> Ct{C.data, C.cs, C.rs};
  if (M <= 4 && B.cs == 1) {
    sgemm_few_rows(M, N, K, alpha, A, B, beta, C, nthreads);
    return "avx2_direct_rows";
  }
  if (M <= 4 && B.rs == 1) {  // x @ W^T with W row-major: dot products with W's rows
    sgemm_few_cols(N, M, K, alpha, Bt, At, beta, Ct, nthreads);
    return "avx2_direct_cols_transposed";
  }
  if (N <= 4 && A.cs == 1) {
    sgemm_few_cols(M, N, K, alpha, A, B, beta, C, nthreads);
    return "avx2_direct_cols";
  }
  if (N <= 4 && A.rs == 1) {
    sgemm_few_rows(N, M, K, alpha, Bt, At, beta, Ct, nthreads);
    return "avx2_direct_rows_transposed";
  }
  if (K <= kFewK && B.cs == 1 && C.cs == 1) {
    sgemm_few_k(M, N, K, alpha, A, B, beta, C, nthreads);
    return "avx2_direct_k";
  }
  if (K <= kFewK && A.rs == 1 && C.rs == 1) {
    sgemm_few_k(N, M, K, alpha, Bt, At, beta, Ct, nthreads);
    return "avx2_direct_k_transposed";
  }
  // C^T = B^T A^T: the micro-kernel stores whole tile rows only where C's rows are
  // contiguous (strided stores go element by element, and a power-of-two stride thrashes
  // the cache), so a column-major C is computed transposed. Where C has no unit stride,
  // take the orientation that pads clearly less (transposed operands pack more slowly).
  const bool transpose = C.cs == 1 ? false : C.rs == 1 ? true : padded_work(N, M) * 10 < padded_work(M, N) * 9;
  const bool wide = avx512_active();  // (run_tiles asks again; the answer names the path)
  if (transpose) {
    sgemm_blocked(N, M, K, alpha, Bt, At, beta, Ct, nthreads);
    return wide ? "avx512_packed_6x32_transposed" : "avx2_packed_6x16_transposed";
  }
  sgemm_blocked(M, N, K, alpha, A, B, beta, C, nthreads);
  return wide ? "avx512_packed_6x32" : "avx2_packed_6x16";
}

}  // namespace rb
