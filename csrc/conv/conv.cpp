// Convolution dispatch and the fast paths (float32, AVX2 active), in the order they are tried:
//   im2col_gemm_batched  one group, <= 32 output positions per image: one GEMM over the whole batch
//   winograd_f4x3   3x3, stride 1, dilation 1, one group, >= 16 channels in and out (forward, and
//                   backward-data as the convolution of dy with the flipped weight); conv_winograd_avx2.cpp
//   gemm_1x1        1x1, stride 1, no padding: the GEMM on the image itself
//   im2col_gemm     everything else
// Float64 and the scalar ISA run the direct-loop reference (conv_ref.cpp).
//
// The GEMM route. Forward, per image and group:   Y_g (O/g, OH*OW) = W_g (O/g, C/g*kH*kW) . col_g (C/g*kH*kW, OH*OW)
// Backward-data:                  col_g = W_g^T . dY_g, then col2im adds each column back onto its taps
// Backward-weight:                dW_g  = sum_n dY_g,n . col_g,n^T
// A 1x1 stride-1 unpadded convolution needs no im2col: the image (C, H*W) already is col.
//
// Threads take blocks of output rows (whole images when the batch splits evenly) and call the GEMM
// single-threaded on their own im2col columns; see row_blocks.
#include "conv/conv.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <vector>

#include "common/check.h"
#include "common/parallel.h"
#include "common/scratch.h"
#include "dispatch/dispatch.h"
#include "gemm/gemm.h"

namespace rb {

namespace {

// Output positions o in [0, out) whose tap o * s + offset lies inside [0, in): [*lo, *hi).
void valid_range(int64_t offset, int64_t s, int64_t in, int64_t out, int64_t* lo, int64_t* hi) {
  *lo = offset >= 0 ? 0 : (-offset + s - 1) / s;
  *hi = in - offset <= 0 ? 0 : (in - offset - 1) / s + 1;
  if (*hi > out) *hi = out;
  if (*lo > out) *lo = out;
  if (*hi < *lo) *hi = *lo;
}

// Split images across threads when there are enough of them to keep every thread equally busy.
bool split_batch(int64_t N, int threads) { return threads > 1 && (N % threads == 0 || N >= 4 * threads); }

// Rows of output narrower than kNarrowRows go through a table of tap offsets (tap_offsets), up to
// kMaxTapOffsets entries: for a 4x4 image the row-by-row copies handled 4 floats at a time, and their
// zero fills became memset calls, 61% of a batched 3x3 forward (32 x 32 x 4 x 4 -> 64) against 18%
// for its GEMM.
constexpr int64_t kNarrowRows = 8, kMaxTapOffsets = 1 << 16;

bool tap_table_applies(const ConvGeometry& g, int64_t positions) {
  return g.OW < kNarrowRows && g.taps() * positions <= kMaxTapOffsets;
}

// offsets[t * n + l] = where tap t (i * kW + j) of output position oh0 * OW + l reads in its channel's
// plane, or -1 in the padding; n = (oh1 - oh0) * OW positions.
std::vector<int64_t> tap_offsets(const ConvGeometry& g, int64_t oh0, int64_t oh1) {
  const int64_t n = (oh1 - oh0) * g.OW;
  std::vector<int64_t> offsets(size_t(g.taps() * n));
  for (int64_t i = 0; i < g.kH; ++i)
    for (int64_t j = 0; j < g.kW; ++j)
      for (int64_t l = 0; l < n; ++l) {
        const int64_t ih = (oh0 + l / g.OW) * g.sH - g.pH + i * g.dH, iw = (l % g.OW) * g.sW - g.pW + j * g.dW;
        offsets[(i * g.kW + j) * n + l] = ih >= 0 && ih < g.H && iw >= 0 && iw < g.W ? ih * g.W + iw : -1;
      }
  return offsets;
}

}  // namespace

// x (C, H, W) -> col rows (c, i, j) = tap (i, j) of channel c, for output rows [oh0, oh1); row stride ld.
template <typename T>
void im2col(const ConvGeometry& g, const T* x, int64_t oh0, int64_t oh1, T* col, int64_t ld) {
  if (tap_table_applies(g, (oh1 - oh0) * g.OW)) {
    const int64_t n = (oh1 - oh0) * g.OW;
    const std::vector<int64_t> offsets = tap_offsets(g, oh0, oh1);
    for (int64_t c = 0; c < g.C; ++c) {
      const T* plane = x + c * g.H * g.W;
      for (int64_t t = 0; t < g.taps(); ++t) {
        T* row = col + (c * g.taps() + t) * ld;
        const int64_t* at = offsets.data() + t * n;
        for (int64_t l = 0; l < n; ++l) row[l] = at[l] >= 0 ? plane[at[l]] : T(0);
      }
    }
    return;
  }
  // The output rows / columns whose tap lands inside the image depend on the tap, not on the
  // channel: found once per call (small images have thousands of rows of a few floats each, where
  // per-row index arithmetic would cost more than the copy).
  std::vector<int64_t> h_range(2 * g.kH), w_range(2 * g.kW);
  for (int64_t i = 0; i < g.kH; ++i) valid_range(i * g.dH - g.pH, g.sH, g.H, g.OH, &h_range[2 * i], &h_range[2 * i + 1]);
  for (int64_t j = 0; j < g.kW; ++j) valid_range(j * g.dW - g.pW, g.sW, g.W, g.OW, &w_range[2 * j], &w_range[2 * j + 1]);
  T* dst = col - oh0 * g.OW;  // row r indexed by absolute output position oh * OW + ow
  bool even_avx2 = false;  // stride 2: two loads and two shuffles per 8 outputs, not 8 scalar copies
  if constexpr (std::is_same_v<T, float>) even_avx2 = g.sW == 2 && active_isa() == Isa::avx2;
  for (int64_t c = 0; c < g.C; ++c) {
    const T* plane = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kH; ++i) {
      const int64_t oh_lo = h_range[2 * i], oh_hi = h_range[2 * i + 1];
      for (int64_t j = 0; j < g.kW; ++j, dst += ld) {
        const int64_t ow_lo = w_range[2 * j], ow_hi = w_range[2 * j + 1];
        for (int64_t oh = oh0; oh < oh1; ++oh) {
          T* out = dst + oh * g.OW;
          if (oh < oh_lo || oh >= oh_hi) {  // the whole row of taps is in the padding
            for (int64_t ow = 0; ow < g.OW; ++ow) out[ow] = T(0);
            continue;
          }
          const T* src = plane + (oh * g.sH - g.pH + i * g.dH) * g.W + (j * g.dW - g.pW);
          for (int64_t ow = 0; ow < ow_lo; ++ow) out[ow] = T(0);
          if (g.sW == 1 && ow_hi - ow_lo >= 16) {
            std::memcpy(out + ow_lo, src + ow_lo, sizeof(T) * (ow_hi - ow_lo));
          } else if (even_avx2) {
            if constexpr (std::is_same_v<T, float>) copy_even_avx2(src + 2 * ow_lo, out + ow_lo, ow_hi - ow_lo);
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) out[ow] = src[ow * g.sW];
          }
          for (int64_t ow = ow_hi; ow < g.OW; ++ow) out[ow] = T(0);
        }
      }
    }
  }
}

// col (C * kH * kW, OH * OW), row stride ld -> x (C, H, W) += each column's taps. Channels are independent,
// so threads split them.
template <typename T>
void col2im(const ConvGeometry& g, const T* col, int64_t ld, T* x) {
  const int64_t L = g.OH * g.OW;
  if (tap_table_applies(g, L)) {  // as in im2col
    const std::vector<int64_t> offsets = tap_offsets(g, 0, g.OH);
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (g.C * g.taps() * L > 65536)
    for (int64_t c = 0; c < g.C; ++c) {
      T* plane = x + c * g.H * g.W;
      for (int64_t t = 0; t < g.taps(); ++t) {
        const T* row = col + (c * g.taps() + t) * ld;
        const int64_t* at = offsets.data() + t * L;
        for (int64_t l = 0; l < L; ++l)
          if (at[l] >= 0) plane[at[l]] += row[l];
      }
    }
    return;
  }
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (g.C * g.taps() * L > 65536)
  for (int64_t c = 0; c < g.C; ++c) {
    T* plane = x + c * g.H * g.W;
    for (int64_t i = 0; i < g.kH; ++i)
      for (int64_t j = 0; j < g.kW; ++j) {
        const T* src = col + ((c * g.kH + i) * g.kW + j) * ld;
        int64_t oh_lo, oh_hi, ow_lo, ow_hi;
        valid_range(i * g.dH - g.pH, g.sH, g.H, g.OH, &oh_lo, &oh_hi);
        valid_range(j * g.dW - g.pW, g.sW, g.W, g.OW, &ow_lo, &ow_hi);
        if (g.sW == 2 && g.dW == 1 && j + 1 < g.kW) {
          // Stride 2: taps j and j + 1 fill the even and odd columns of the same span, so they are
          // added together, one contiguous pair per output column (the transposed convolution's
          // up-sampling case, where a stride-2 scatter one tap at a time cost as much as the GEMM).
          const T* src_next = src + ld;
          int64_t next_lo, next_hi;
          valid_range(j + 1 - g.pW, 2, g.W, g.OW, &next_lo, &next_hi);
          const int64_t both_lo = std::max(ow_lo, next_lo), both_hi = std::min(ow_hi, next_hi);
          for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
            T* dst = plane + (oh * g.sH - g.pH + i * g.dH) * g.W + (j - g.pW);
            const T *row = src + oh * g.OW, *row_next = src_next + oh * g.OW;
            for (int64_t ow = ow_lo; ow < std::min(ow_hi, both_lo); ++ow) dst[2 * ow] += row[ow];
            for (int64_t ow = next_lo; ow < std::min(next_hi, both_lo); ++ow) dst[2 * ow + 1] += row_next[ow];
            for (int64_t ow = both_lo; ow < both_hi; ++ow) {
              dst[2 * ow] += row[ow];
              dst[2 * ow + 1] += row_next[ow];
            }
            for (int64_t ow = std::max(both_hi, ow_lo); ow < ow_hi; ++ow) dst[2 * ow] += row[ow];
            for (int64_t ow = std::max(both_hi, next_lo); ow < next_hi; ++ow) dst[2 * ow + 1] += row_next[ow];
          }
          ++j;  // (both taps share their rows: the row range depends on i only)
          continue;
        }
        for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
          T* dst = plane + (oh * g.sH - g.pH + i * g.dH) * g.W + (j * g.dW - g.pW);
          const T* row = src + oh * g.OW;
          if (g.sW == 1) {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow] += row[ow];
          } else {
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) dst[ow * g.sW] += row[ow];
          }
        }
      }
  }
}

namespace {

// ---- the GEMM path (float32), on a block of output rows [oh0, oh1) of one image ----
//
// Work is cut into such blocks: whole images when the batch splits evenly across threads,
// otherwise every image cut into one row block per thread. Each block runs on one thread with
// the single-threaded GEMM, so a pass has no synchronisation inside it (a busy machine makes
// every barrier expensive).

constexpr int64_t kColBlockFloats = 1024 * 1024;  // 4 MiB of im2col columns per block (measured: smaller
                                                  // blocks repack the weight too often)
// A block's im2col columns: enough positions (kMinBlockPositions) that packing the weight once per
// block is cheap, and no more, so that with a short column (a first layer: C * kH * kW = 27) the
// block stays in L2 between im2col writing it and the GEMM reading it: 3x3 3->64 at 224x224,
// 2 threads, 3.8-4.1 ms in two 2.7 MiB blocks -> 3.3 ms in 256 KiB ones.
constexpr int64_t kMinBlockPositions = 2048;
constexpr int64_t kMinColBlockFloats = 64 * 1024;

int64_t col_block_floats(const ConvGeometry& g) {
  return std::clamp<int64_t>(g.C * g.taps() * kMinBlockPositions, kMinColBlockFloats, kColBlockFloats);
}

struct RowBlock {
  int64_t n, oh0, oh1;
};

// Blocks of output rows for `threads` threads; sets *batch_split.
std::vector<RowBlock> row_blocks(const ConvGeometry& g, int threads, bool* batch_split) {
  std::vector<RowBlock> blocks;
  *batch_split = split_batch(g.N, threads);
  // Enough blocks per image for every thread, and small enough that a block's im2col columns
  // (written, then packed by the GEMM) stay in cache (col_block_floats).
  const int64_t row_cols = g.C * g.taps() * g.OW;  // im2col floats per output row
  const int64_t block_floats = col_block_floats(g);
  const int64_t by_cache = g.is_pointwise() ? 1 : (row_cols * g.OH + block_floats - 1) / block_floats;
  const int64_t per_image = std::min<int64_t>(std::max<int64_t>(*batch_split ? 1 : threads, by_cache), g.OH);
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t b = 0; b < per_image; ++b) blocks.push_back({n, g.OH * b / per_image, g.OH * (b + 1) / per_image});
  return blocks;
}

// Columns of the im2col matrix a block needs: C*kH*kW rows x its output positions (none for 1x1).
size_t block_col_elems(const ConvGeometry& g, const RowBlock& b) {
  return g.is_pointwise() ? 1 : size_t(g.C * g.taps() * (b.oh1 - b.oh0) * g.OW);
}

// The block's im2col columns and their row stride: the image itself for a pointwise convolution.
const float* block_columns(const ConvGeometry& g, const float* x, const RowBlock& b, float* buf, int64_t* ld) {
  const int64_t L = g.OH * g.OW;
  if (g.is_pointwise()) {
    *ld = L;
    return x + b.oh0 * g.OW;
  }
  *ld = (b.oh1 - b.oh0) * g.OW;
  im2col(g, x, b.oh0, b.oh1, buf, *ld);
  return buf;
}

// Scratch taken by the threads of a parallel region. An exception must not leave an OpenMP region
// (the process would terminate), so a failed allocation is noted, the thread skips its block, and
// throw_if_failed raises MemoryError after the region. (A block is at least one output row: with a
// 1000 x 1000 kernel over a row of 99,002 outputs, 400 GB of columns.)
class RegionScratch {
 public:
  float* get(ScratchSlot slot, size_t count) {
    try {
      return thread_scratch_of<float>(slot, count);
    } catch (const std::bad_alloc&) {
      failed_.store(true, std::memory_order_relaxed);
      return nullptr;
    }
  }
  void throw_if_failed(const char* op, const ConvGeometry& g) const {
    if (failed_.load(std::memory_order_relaxed))
      memory_error(op, ": no memory for the im2col columns of a block of output rows (input (", g.N, ", ", g.C,
                   ", ", g.H, ", ", g.W, "), kernel ", g.kH, "x", g.kW, ", output ", g.OH, "x", g.OW, ")");
  }

 private:
  std::atomic<bool> failed_{false};
};

// The block's im2col columns in the calling thread's scratch (block_columns), or null when that
// scratch could not be had (noted in `scratch`).
const float* scratch_columns(const ConvGeometry& g, const float* x, const RowBlock& b, RegionScratch& scratch,
                             int64_t* ld) {
  float* buf = g.is_pointwise() ? nullptr : scratch.get(ScratchSlot::conv, block_col_elems(g, b));
  if (!g.is_pointwise() && !buf) return nullptr;
  return block_columns(g, x, b, buf, ld);
}

// y[:, block] = W . col (+ bias), col the block's columns (rows ld apart)
void forward_products(const ConvGeometry& g, const float* col, int64_t ld, const float* w, const float* bias, float* y,
                      const RowBlock& b) {
  const int64_t L = g.OH * g.OW, Kc = g.col_rows(), Og = g.o_per_group();
  const int64_t l0 = b.oh0 * g.OW, nl = (b.oh1 - b.oh0) * g.OW;
  for (int64_t grp = 0; grp < g.groups; ++grp) {
    float* yg = y + grp * Og * L + l0;
    float beta = 0.0f;
    if (bias) {  // start from the bias and let the GEMM accumulate onto it
      for (int64_t o = 0; o < Og; ++o)
        for (int64_t l = 0; l < nl; ++l) yg[o * L + l] = bias[grp * Og + o];
      beta = 1.0f;
    }
    gemm(Og, nl, Kc, 1.0f, MatView<const float>{w + grp * Og * Kc, Kc, 1},
         MatView<const float>{col + grp * Kc * ld, ld, 1}, beta, MatView<float>{yg, L, 1});
  }
}

// col[:, block] = W^T . dy[:, block], into a whole-image col (C*kH*kW, L) (or dx itself when pointwise)
void backward_data_columns(const ConvGeometry& g, const float* dy, const float* w, float* col, const RowBlock& b) {
  const int64_t L = g.OH * g.OW, Kc = g.col_rows(), Og = g.o_per_group();
  const int64_t l0 = b.oh0 * g.OW, nl = (b.oh1 - b.oh0) * g.OW;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemm(Kc, nl, Og, 1.0f, MatView<const float>{w + grp * Og * Kc, 1, Kc},
         MatView<const float>{dy + grp * Og * L + l0, L, 1}, 0.0f, MatView<float>{col + grp * Kc * L + l0, L, 1});
}

// dw += dy[:, block] . col[:, block]^T, col the block's columns (rows ld apart)
void backward_weight_products(const ConvGeometry& g, const float* col, int64_t ld, const float* dy, float* dw,
                              const RowBlock& b) {
  const int64_t L = g.OH * g.OW, Kc = g.col_rows(), Og = g.o_per_group();
  const int64_t l0 = b.oh0 * g.OW, nl = (b.oh1 - b.oh0) * g.OW;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    gemm(Og, Kc, nl, 1.0f, MatView<const float>{dy + grp * Og * L + l0, L, 1},
         MatView<const float>{col + grp * Kc * ld, 1, ld}, 1.0f, MatView<float>{dw + grp * Og * Kc, Kc, 1});
}

const char* gemm_impl_name(const ConvGeometry& g, bool batch_split) {
  if (g.is_pointwise()) return batch_split ? "gemm_1x1_batch_split" : "gemm_1x1_row_split";
  return batch_split ? "im2col_gemm_batch_split" : "im2col_gemm_row_split";
}

bool use_fast_path() { return active_isa() == Isa::avx2; }

// ---- the batched GEMM path (float32, one group), for small images ----
//
// A few output positions per image make every per-image GEMM a thin one that runs far below the
// kernel's speed (and Winograd's transforms cost more than they save on a single tile). So the
// im2col columns of all images go side by side into one (Kc, N * L) matrix and each pass is one
// wide GEMM, threaded inside; only (O, N * L) <-> (N, O, L) reorderings are added.

constexpr int64_t kBatchedMaxPositions = 32;  // output positions per image (measured on the digits CNN:
                                              // 4x4 images gain 3-5x, 8x8 ones run faster per image)

bool batched_applies(const ConvGeometry& g) {
  const int64_t L = g.OH * g.OW;
  return g.groups == 1 && L <= kBatchedMaxPositions && g.col_rows() * L <= kColBlockFloats;
}

// The batched passes run over equal chunks of images whose im2col columns take at most 1 MiB
// (kBatchedChunkFloats), so that the columns are still in L2 when the GEMM reads them. Before, a
// batch whose columns passed 4 MiB went to Winograd or to per-image GEMMs instead. Paired against
// that, fwd / bwd data / bwd weight, 1 and 2 threads, 2 runs each:
// 32->64 3x3 on 4x4 maps at N = 450: 1.96-2.51x / 1.06-1.47x; a 4x4 stride-2 conv 64->64 from 4x4
// to 2x2 at N = 5000 (the VAE's transposed convolution read backwards): 1.48-2.54x; 32->64 from 8x8
// to 4x4: 0.96-1.82x. 4 MiB chunks lost up to 0.64x on the last. pass(chunk geometry, first image)
// runs once per chunk.
constexpr int64_t kBatchedChunkFloats = 256 * 1024;

template <typename Pass>
void over_batched_chunks(const ConvGeometry& g, Pass pass) {
  const int64_t fit = std::max<int64_t>(1, kBatchedChunkFloats / (g.col_rows() * g.OH * g.OW));
  const int64_t chunks = (g.N + fit - 1) / fit, per_chunk = (g.N + chunks - 1) / chunks;
  for (int64_t n0 = 0; n0 < g.N; n0 += per_chunk) {
    ConvGeometry chunk = g;
    chunk.N = std::min(per_chunk, g.N - n0);
    pass(chunk, n0);
  }
}

// The copies around the GEMM cost as much as the GEMM itself at these sizes, so threads split
// them by image (each image's columns are disjoint).

// col (Kc, N * L): image n's im2col columns from column n * L on.
void batched_columns(const ConvGeometry& g, const float* x, float* col) {
  const int64_t L = g.OH * g.OW, in_img = g.C * g.H * g.W;
#pragma omp parallel for schedule(static) num_threads(available_threads())
  for (int64_t n = 0; n < g.N; ++n) im2col(g, x + n * in_img, 0, g.OH, col + n * L, g.N * L);
}

// dy (N, O, L) -> (O, N * L), the GEMM operand layout.
void batched_gather(const ConvGeometry& g, const float* dy, float* out) {
  const int64_t L = g.OH * g.OW;
#pragma omp parallel for schedule(static) num_threads(available_threads())
  for (int64_t n = 0; n < g.N; ++n)
    for (int64_t o = 0; o < g.O; ++o) std::memcpy(out + (o * g.N + n) * L, dy + (n * g.O + o) * L, sizeof(float) * L);
}

void forward_batched(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const int64_t L = g.OH * g.OW, NL = g.N * L, Kc = g.col_rows();
  float* col = thread_scratch_of<float>(ScratchSlot::conv, size_t(Kc * NL));
  float* out = thread_scratch_of<float>(ScratchSlot::conv_aux, size_t(g.O * NL));
  batched_columns(g, x, col);
  gemm(g.O, NL, Kc, 1.0f, MatView<const float>{w, Kc, 1}, MatView<const float>{col, NL, 1}, 0.0f,
       MatView<float>{out, NL, 1});
#pragma omp parallel for schedule(static) num_threads(available_threads())
  for (int64_t n = 0; n < g.N; ++n)  // (O, N * L) -> (N, O, L), adding the bias on the way
    for (int64_t o = 0; o < g.O; ++o) {
      const float* src = out + (o * g.N + n) * L;
      float* dst = y + (n * g.O + o) * L;
      const float b = bias ? bias[o] : 0.0f;
      for (int64_t l = 0; l < L; ++l) dst[l] = src[l] + b;
    }
}

// col = W^T . dy, then each image's columns are added back onto its taps.
void backward_data_batched(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  const int64_t L = g.OH * g.OW, NL = g.N * L, Kc = g.col_rows(), in_img = g.C * g.H * g.W;
  float* col = thread_scratch_of<float>(ScratchSlot::conv, size_t(Kc * NL));
  float* dy_t = thread_scratch_of<float>(ScratchSlot::conv_aux, size_t(g.O * NL));
  batched_gather(g, dy, dy_t);
  gemm(Kc, NL, g.O, 1.0f, MatView<const float>{w, 1, Kc}, MatView<const float>{dy_t, NL, 1}, 0.0f,
       MatView<float>{col, NL, 1});
#pragma omp parallel for schedule(static) num_threads(available_threads())
  for (int64_t n = 0; n < g.N; ++n) {
    std::memset(dx + n * in_img, 0, sizeof(float) * in_img);
    col2im(g, col + n * L, NL, dx + n * in_img);
  }
}

// dW = dy . col^T (+ dW with accumulate), the sum over images and positions in one GEMM.
void backward_weight_batched(const ConvGeometry& g, const float* x, const float* dy, float* dw, bool accumulate) {
  const int64_t L = g.OH * g.OW, NL = g.N * L, Kc = g.col_rows();
  float* col = thread_scratch_of<float>(ScratchSlot::conv, size_t(Kc * NL));
  float* dy_t = thread_scratch_of<float>(ScratchSlot::conv_aux, size_t(g.O * NL));
  batched_columns(g, x, col);
  batched_gather(g, dy, dy_t);
  gemm(g.O, Kc, NL, 1.0f, MatView<const float>{dy_t, NL, 1}, MatView<const float>{col, 1, NL},
       accumulate ? 1.0f : 0.0f, MatView<float>{dw, Kc, 1});
}


// Winograd pays when its 36 products are real matrix products: enough input and output channels.
bool winograd_applies(const ConvGeometry& g) {
  return g.kH == 3 && g.kW == 3 && g.sH == 1 && g.sW == 1 && g.dH == 1 && g.dW == 1 && g.groups == 1 &&
         g.C >= 16 && g.O >= 16;
}

// The gradient of a 3x3 stride-1 convolution with respect to its input is itself a 3x3 stride-1
// convolution of dy with the weight flipped in space and transposed in channels, padded by 2 - p.
// That holds when dy covers every output the input feeds (OH = H + 2p - 2, which output_padding breaks).
bool winograd_backward_data_applies(const ConvGeometry& g) {
  return winograd_applies(g) && g.pH <= 2 && g.pW <= 2 && g.OH == g.H + 2 * g.pH - 2 && g.OW == g.W + 2 * g.pW - 2;
}

void backward_data_winograd(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  std::vector<float> flipped(size_t(g.C) * g.O * 9);  // (C, O, 3, 3): w[o, c, 2 - i, 2 - j]
  for (int64_t o = 0; o < g.O; ++o)
    for (int64_t c = 0; c < g.C; ++c)
      for (int64_t k = 0; k < 9; ++k) flipped[(c * g.O + o) * 9 + k] = w[(o * g.C + c) * 9 + (8 - k)];
  const ConvGeometry t{g.N, g.O, g.OH, g.OW, g.C, 3, 3, g.H, g.W, 1, 1, 2 - g.pH, 2 - g.pW, 1, 1, 1};
  conv2d_winograd_f4x3(t, dy, flipped.data(), nullptr, dx);
}

// One output channel (an image or mask at the end of a decoder): the direct loops of
// conv_direct_avx2.cpp instead of im2col, whose copy of C * kH * kW values per position feeds a GEMM
// of one row. Paired against im2col, 1 and 2 threads, fwd / bwd data / bwd weight: 32->1 3x3 on 8x8
// at N = 64 and 500, 1.7-2.0x / 1.6-1.7x / 1.8-2.1x; 16->1 5x5 on 28x28, N = 64, 1.4-1.8x /
// 1.7-1.8x / 1.7-2.0x. At 2 to 4 outputs the GEMM already shares the copy among them and the direct
// forward lost (0.6-0.8x on 64->3 at 56x56, 32->4 at 112x112, 8->2 at 224x224).
constexpr int64_t kFewOutputs = 1;

bool few_outputs_applies(const ConvGeometry& g) {
  return g.O <= kFewOutputs && g.groups == 1 && g.sH == 1 && g.sW == 1 && g.dH == 1 && g.dW == 1 &&
         !g.is_pointwise();
}

void forward_fast(const ConvGeometry& g, const float* x, const float* w, const float* bias, float* y, const char* op) {
  if (batched_applies(g)) {
    const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
    over_batched_chunks(g, [&](const ConvGeometry& c, int64_t n0) {
      forward_batched(c, x + n0 * in_img, w, bias, y + n0 * out_img);
    });
    record_impl(op, "im2col_gemm_batched");
    return;
  }
  if (winograd_applies(g)) {
    conv2d_winograd_f4x3(g, x, w, bias, y);
    record_impl(op, "winograd_f4x3");
    return;
  }
  if (few_outputs_applies(g)) {
    parallel_for(available_threads(), g.N, [&](int64_t n) { conv2d_few_outputs_forward_avx2(g, x, w, bias, y, n); });
    record_impl(op, "direct_few_outputs");
    return;
  }
  const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
  const int threads = available_threads();
  bool split;
  const std::vector<RowBlock> blocks = row_blocks(g, threads, &split);
  RegionScratch scratch;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (size_t i = 0; i < blocks.size(); ++i) {
    int64_t ld;
    const float* col = scratch_columns(g, x + blocks[i].n * in_img, blocks[i], scratch, &ld);
    if (col) forward_products(g, col, ld, w, bias, y + blocks[i].n * out_img, blocks[i]);
  }
  scratch.throw_if_failed(op, g);
  record_impl(op, gemm_impl_name(g, split));
}

void backward_data_fast(const ConvGeometry& g, const float* dy, const float* w, float* dx, const char* op) {
  if (batched_applies(g)) {
    const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
    over_batched_chunks(g, [&](const ConvGeometry& c, int64_t n0) {
      backward_data_batched(c, dy + n0 * out_img, w, dx + n0 * in_img);
    });
    record_impl(op, "im2col_gemm_batched");
    return;
  }
  if (winograd_backward_data_applies(g)) {
    backward_data_winograd(g, dy, w, dx);
    record_impl(op, "winograd_f4x3");
    return;
  }
  if (few_outputs_applies(g)) {  // (image, channel) items: a batch of one still splits over the team
    parallel_for(available_threads(), g.N * g.C, [&](int64_t item) {
      conv2d_few_outputs_backward_data_avx2(g, dy, w, dx, item / g.C, item % g.C);
    });
    record_impl(op, "direct_few_outputs");
    return;
  }
  const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW, col_img = g.C * g.taps() * g.OH * g.OW;
  const int threads = available_threads();
  bool split;
  const std::vector<RowBlock> blocks = row_blocks(g, threads, &split);
  if (split) {  // whole images per thread: GEMM into the thread's col, then col2im
    RegionScratch scratch;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t n = 0; n < g.N; ++n) {
      float* col = g.is_pointwise() ? dx + n * in_img : scratch.get(ScratchSlot::conv, col_img);
      if (!col) continue;
      backward_data_columns(g, dy + n * out_img, w, col, RowBlock{n, 0, g.OH});
      if (!g.is_pointwise()) {
        std::memset(dx + n * in_img, 0, sizeof(float) * in_img);
        col2im(g, col, g.OH * g.OW, dx + n * in_img);
      }
    }
    scratch.throw_if_failed(op, g);
  } else {  // per image: row blocks of col in parallel, then col2im split by channel
    float* col = g.is_pointwise() ? nullptr : thread_scratch_of<float>(ScratchSlot::conv, col_img);
    for (int64_t n = 0; n < g.N; ++n) {
      float* target = g.is_pointwise() ? dx + n * in_img : col;
#pragma omp parallel for schedule(static) num_threads(threads)
      for (size_t i = n * blocks.size() / g.N; i < (n + 1) * blocks.size() / g.N; ++i)
        backward_data_columns(g, dy + n * out_img, w, target, blocks[i]);
      if (!g.is_pointwise()) {
        std::memset(dx + n * in_img, 0, sizeof(float) * in_img);
        col2im(g, col, g.OH * g.OW, dx + n * in_img);
      }
    }
  }
  record_impl(op, gemm_impl_name(g, split));
}

// dw = the sum over blocks of dy . col^T, each thread into a private copy of dW, the copies summed
// after. With y (and w), also y = W . col from the same columns: the transposed convolution's backward
// (its dx is this convolution's forward of its output gradient, its dW this convolution's weight
// gradient for the same input), where two separate passes spent a sixth of their time making the same
// columns twice.
void weight_gradient_pass(const ConvGeometry& g, const float* x, const float* dy, float* dw, const float* w,
                          float* y, const char* op) {
  const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW, w_elems = g.O * g.col_rows();
  const int threads = available_threads();
  bool split;
  const std::vector<RowBlock> blocks = row_blocks(g, threads, &split);
  std::vector<float> partial(size_t(threads) * w_elems, 0.0f);
  RegionScratch scratch;
#pragma omp parallel num_threads(threads)
  {
    float* acc = partial.data() + int64_t(omp_get_thread_num()) * w_elems;
#pragma omp for schedule(static)
    for (size_t i = 0; i < blocks.size(); ++i) {
      int64_t ld;
      const float* col = scratch_columns(g, x + blocks[i].n * in_img, blocks[i], scratch, &ld);
      if (!col) continue;
      if (y) forward_products(g, col, ld, w, nullptr, y + blocks[i].n * out_img, blocks[i]);
      backward_weight_products(g, col, ld, dy + blocks[i].n * out_img, acc, blocks[i]);
    }
#pragma omp for schedule(static)
    for (int64_t e = 0; e < w_elems; ++e) {
      float sum = 0.0f;
      for (int t = 0; t < threads; ++t) sum += partial[size_t(t) * w_elems + e];
      dw[e] = sum;
    }
  }
  scratch.throw_if_failed(op, g);
  record_impl(op, gemm_impl_name(g, split));
}

void backward_weight_fast(const ConvGeometry& g, const float* x, const float* dy, float* dw, const char* op) {
  if (batched_applies(g)) {
    const int64_t in_img = g.C * g.H * g.W, out_img = g.O * g.OH * g.OW;
    over_batched_chunks(g, [&](const ConvGeometry& c, int64_t n0) {
      backward_weight_batched(c, x + n0 * in_img, dy + n0 * out_img, dw, n0 > 0);
    });
    record_impl(op, "im2col_gemm_batched");
    return;
  }
  if (few_outputs_applies(g)) {
    parallel_for(available_threads(), g.C,
                 [&](int64_t c) { conv2d_few_outputs_backward_weight_avx2(g, x, dy, dw, c); });
    record_impl(op, "direct_few_outputs");
    return;
  }
  weight_gradient_pass(g, x, dy, dw, nullptr, nullptr, op);
}

}  // namespace

template <typename T>
void conv2d_forward(const ConvGeometry& g, const T* x, const T* w, const T* bias, T* y, const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast_path()) return forward_fast(g, x, w, bias, y, op);
  }
  conv2d_forward_ref(g, x, w, bias, y);
  record_impl(op, "scalar_ref");
}

template <typename T>
void conv2d_backward_data(const ConvGeometry& g, const T* dy, const T* w, T* dx, const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast_path()) return backward_data_fast(g, dy, w, dx, op);
  }
  conv2d_backward_data_ref(g, dy, w, dx);
  record_impl(op, "scalar_ref");
}

template <typename T>
void conv2d_backward_weight(const ConvGeometry& g, const T* x, const T* dy, T* dw, const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    if (use_fast_path()) return backward_weight_fast(g, x, dy, dw, op);
  }
  conv2d_backward_weight_ref(g, x, dy, dw);
  record_impl(op, "scalar_ref");
}

template <typename T>
void conv2d_forward_and_backward_weight(const ConvGeometry& g, const T* x, const T* w, const T* dy, T* y, T* dw,
                                        const char* op) {
  if constexpr (std::is_same_v<T, float>) {
    // Where the forward takes another route (one GEMM over the batch, Winograd), the passes stay apart.
    if (use_fast_path() && !batched_applies(g) && !winograd_applies(g) && !few_outputs_applies(g))
      return weight_gradient_pass(g, x, dy, dw, w, y, op);
  }
  conv2d_forward(g, x, w, static_cast<const T*>(nullptr), y, op);
  conv2d_backward_weight(g, x, dy, dw, op);
}

// dy (N, O, OH, OW) -> db (O,): the sum over images and positions. Memory-bound; threads split channels.
template <typename T>
void conv2d_backward_bias(const ConvGeometry& g, const T* dy, T* db) {
  const int64_t L = g.OH * g.OW;
#pragma omp parallel for schedule(static) num_threads(available_threads()) if (g.N * g.O * L > 65536)
  for (int64_t o = 0; o < g.O; ++o) {
    double sum = 0.0;  // float64 accumulation: a bias gradient sums up to millions of terms
    for (int64_t n = 0; n < g.N; ++n) {
      const T* plane = dy + (n * g.O + o) * L;
      T partial = T(0);
      for (int64_t l = 0; l < L; ++l) partial += plane[l];
      sum += double(partial);
    }
    db[o] = T(sum);
  }
}

#define RB_CONV_INSTANTIATE(T)                                                                             \
  template void im2col<T>(const ConvGeometry&, const T*, int64_t, int64_t, T*, int64_t);                                              \
  template void col2im<T>(const ConvGeometry&, const T*, int64_t, T*);                                              \
  template void conv2d_forward<T>(const ConvGeometry&, const T*, const T*, const T*, T*, const char*);     \
  template void conv2d_backward_data<T>(const ConvGeometry&, const T*, const T*, T*, const char*);         \
  template void conv2d_backward_weight<T>(const ConvGeometry&, const T*, const T*, T*, const char*);       \
  template void conv2d_forward_and_backward_weight<T>(const ConvGeometry&, const T*, const T*, const T*, T*, T*,   \
                                                      const char*);                                        \
  template void conv2d_backward_bias<T>(const ConvGeometry&, const T*, T*);
RB_CONV_INSTANTIATE(float)
RB_CONV_INSTANTIATE(double)
#undef RB_CONV_INSTANTIATE

}  // namespace rb
