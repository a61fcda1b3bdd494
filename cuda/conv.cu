// 2-D convolution as implicit GEMM: forward, backward-data and backward-weight are each one GEMM
// whose operands are gathered from the NCHW arrays tile by tile into shared memory (no im2col
// buffer in global memory). Stride, padding, dilation and groups live in the gather functions.
//
//   pass             rows (M)         columns (N)                  reduction (K)
//   forward          o   in group     (n, oh, ow)   -> y            (c, i, j)   w[o, c, i, j] * x[n, c, tap]
//   backward-data    c   in group     (n, h, w)     -> dx           (o, i, j)   w[o, c, i, j] * dy[n, o, (h + pH - i dH) / sH, ...]
//   backward-weight  o   in group     (c, i, j)     -> dw           (n, oh, ow) dy[n, o, oh, ow] * x[n, c, tap]
//
// Backward-data reads dy only where (h + pH - i dH) and (w + pW - j dW) are non-negative multiples
// of the stride (others are zeros of the GEMM, skipped by the gather). Backward-weight's reduction
// over N * OH * OW is long and its output small, so the reduction is split over grid.z and the
// partial products summed by sum_axis (deterministic, no atomics).
//
// One kernel serves the three passes and both dtypes: a block of 256 threads computes a BM x 128
// tile of the output (BM = 64, or 32 for small row counts), walking K in steps of 8; each step's
// BM x 8 and 8 x 128 slices are staged in shared memory k-major (S[k][row]) with double buffering
// (the next step's gather is in registers during the current step's arithmetic: one barrier per
// step). Thread (tx, ty) = (t % 16, t / 16) owns rows ty*R + {0..R-1}, R = BM / 16, and columns
// 64 q/4 + tx*4 + q%4, q < 8, read from shared memory as vectors.
//
// The pieces are functions of the thread index, callable on the host: simulate_on_host runs them
// for every thread phase by phase, so the index arithmetic is tested without a GPU.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"
#include "conv_kernels.h"
#include "kernels.h"

namespace rb::cuda {
namespace {

#define RB_HD __host__ __device__ __forceinline__

// Output rows per block: 64, or 32 when a group has at most 32 rows (few output channels, or few
// input channels for backward-data), so that small problems waste less of the tile.
constexpr int kBMLarge = 64, kBMSmall = 32;
constexpr int kBN = 128;       // output columns per block
constexpr int kBK = 8;         // reduction step
constexpr int kThreads = 256;  // 16 x 16 threads, 4 x 8 outputs each
constexpr int kPad = 4;        // keeps the k-fast stores free of bank conflicts and rows 16-byte aligned
constexpr int kMaxGridYZ = 65535;

template <typename T, int R>
using Tile = T[kBK][R + kPad];  // S[k][row]

// Which element (row, k) of an R x kBK slice the j-th of thread t's loads fetches.
// K_FAST: 8 consecutive threads take consecutive k (operands contiguous along the reduction);
// otherwise consecutive threads take consecutive rows (operands contiguous along the rows), and a
// thread keeps the same row for all its loads.
template <int R, bool K_FAST>
struct TileMap {
  static constexpr int kLoads = R * kBK / kThreads;
  static_assert(kLoads * kThreads == R * kBK, "the slice must split evenly over the threads");
  RB_HD static int row(int t, int j) { return K_FAST ? t / kBK + j * (kThreads / kBK) : t % R; }
  RB_HD static int k(int t, int j) { return K_FAST ? t % kBK : t / R + j * (kThreads / R); }
};

// Column of a thread's q-th output (q < 8) within the 128-wide tile.
RB_HD int tile_column(int tx, int q) { return (q / 4) * 64 + tx * 4 + q % 4; }

// ---- digits: reduction indices advanced without divisions ------------------------------------------
// The gathers split a reduction index into digits ((c, i, j) of a tap, (n, oh, ow) of a pixel).
// A thread's indices advance by constants (kBK per step, the spacing between its loads), so the
// split is done once per block and then carried forward by additions: one carry at most per digit.

struct Digits {  // value = (hi * mids + mid) * los + lo
  int hi, mid, lo;
};

RB_HD Digits split(int value, int mids, int los) {
  Digits d;
  d.lo = value % los;
  value /= los;
  d.mid = value % mids;
  d.hi = value / mids;
  return d;
}

struct DigitStep {  // a constant step, split once on the host
  int mids, los;
  int hi, mid, lo;
  static DigitStep of(int step, int mids, int los) {
    const Digits d = split(step, mids, los);
    return DigitStep{mids, los, d.hi, d.mid, d.lo};
  }
};

// d += step. Each digit stays below its radix before and after, so each sum carries at most once.
RB_HD void advance(Digits& d, const DigitStep& step) {
  d.lo += step.lo;
  const int carry_lo = d.lo >= step.los ? 1 : 0;
  d.lo -= carry_lo * step.los;
  d.mid += step.mid + carry_lo;
  const int carry_mid = d.mid >= step.mids ? 1 : 0;
  d.mid -= carry_mid * step.mids;
  d.hi += step.hi + carry_mid;
}

// ---- the three problems: sizes, per-thread cursor, gathers and output stores ----------------------
// Each defines rows() (M), columns() (N), depth() (K) per grid.z index, and z_count() of them.
// cursor() places a thread at the first reduction step of its block; fetch() gathers the step at
// k0 (the cursor's step: steps are fetched in order) into registers and moves the cursor on.

template <typename T, int BM>
struct ForwardProblem {
  using Scalar = T;
  static constexpr int kBM = BM;
  using AMap = TileMap<BM, true>;   // weights: contiguous along (c, i, j)
  using BMap = TileMap<kBN, false>;  // image taps: neighbouring output pixels read neighbouring inputs
  static constexpr int kBSpacing = kThreads / kBN;  // between a thread's B loads along k
  ConvDims d;
  const T* x;
  const T* w;
  const T* bias;  // may be null
  T* y;
  DigitStep tap_step, tap_spacing;  // kBK and kBSpacing as (c, i, j) steps

  ForwardProblem(const ConvDims& dims, const T* x_, const T* w_, const T* bias_, T* y_)
      : d(dims), x(x_), w(w_), bias(bias_), y(y_), tap_step(DigitStep::of(kBK, dims.kH, dims.kW)),
        tap_spacing(DigitStep::of(kBSpacing, dims.kH, dims.kW)) {}

  RB_HD int rows() const { return d.O / d.groups; }
  RB_HD int columns() const { return d.N * d.OH * d.OW; }
  RB_HD int depth() const { return d.C / d.groups * d.kH * d.kW; }
  RB_HD int z_count() const { return d.groups; }

  struct Cursor {
    int group, m0, n0, k_begin, k_end;
    const T* x_column;  // this thread's image, first channel of the group
    int ih0, iw0;       // top-left tap of its column's window
    bool column_ok;
    int b_k;            // the reduction index of this thread's first B load in the next step
    Digits b_tap;       // the same as (c, i, j)
  };
  RB_HD Cursor cursor(int t, int z, int m0, int n0) const {
    Cursor c{};
    c.group = z;
    c.m0 = m0;
    c.n0 = n0;
    c.k_begin = 0;
    c.k_end = depth();
    const int n = n0 + BMap::row(t, 0), plane = d.OH * d.OW;
    c.column_ok = n < columns();
    const int image = c.column_ok ? n / plane : 0, p = c.column_ok ? n - image * plane : 0;
    const int oh = p / d.OW, ow = p - oh * d.OW;
    c.x_column = x + (int64_t(image) * d.C + int64_t(z) * (d.C / d.groups)) * d.H * d.W;
    c.ih0 = oh * d.sH - d.pH;
    c.iw0 = ow * d.sW - d.pW;
    c.b_k = c.k_begin + BMap::k(t, 0);
    c.b_tap = split(c.b_k, d.kH, d.kW);
    return c;
  }
  RB_HD void fetch(Cursor& c, int t, int k0, T (&a)[AMap::kLoads], T (&b)[BMap::kLoads]) const {
    const int M = rows(), K = depth();
    const T* w_group = w + int64_t(c.group) * M * K;
#pragma unroll
    for (int j = 0; j < AMap::kLoads; ++j) {
      const int m = c.m0 + AMap::row(t, j), k = k0 + AMap::k(t, j);
      a[j] = (m < M && k < c.k_end) ? w_group[int64_t(m) * K + k] : T(0);
    }
    Digits tap = c.b_tap;
    int k = c.b_k;
#pragma unroll
    for (int j = 0; j < BMap::kLoads; ++j) {
      if (j > 0) {
        advance(tap, tap_spacing);
        k += kBSpacing;
      }
      const int ih = c.ih0 + tap.mid * d.dH, iw = c.iw0 + tap.lo * d.dW;
      const bool inside = c.column_ok && k < c.k_end && ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
      b[j] = inside ? c.x_column[(int64_t(tap.hi) * d.H + ih) * d.W + iw] : T(0);
    }
    advance(c.b_tap, tap_step);
    c.b_k += kBK;
  }
  RB_HD void store(const Cursor& c, int m, int n, T v) const {
    const int plane = d.OH * d.OW, image = n / plane, p = n - image * plane;
    const int o = c.group * rows() + m;
    y[(int64_t(image) * d.O + o) * plane + p] = bias ? v + bias[o] : v;
  }
};

template <typename T, int BM>
struct BackwardDataProblem {
  using Scalar = T;
  static constexpr int kBM = BM;
  using AMap = TileMap<BM, true>;   // weights: contiguous along (i, j) within an o
  using BMap = TileMap<kBN, false>;  // dy taps of neighbouring input pixels are neighbours (stride 1)
  static constexpr int kBSpacing = kThreads / kBN;
  ConvDims d;
  const T* dy;
  const T* w;
  const T* bias;  // (C,) or null: conv_transpose2d's bias
  T* dx;
  DigitStep a_step;                 // kBK as an (o, -, tap) step
  DigitStep tap_step, tap_spacing;  // kBK and kBSpacing as (o, i, j) steps

  BackwardDataProblem(const ConvDims& dims, const T* dy_, const T* w_, const T* bias_, T* dx_)
      : d(dims), dy(dy_), w(w_), bias(bias_), dx(dx_), a_step(DigitStep::of(kBK, 1, dims.kH * dims.kW)),
        tap_step(DigitStep::of(kBK, dims.kH, dims.kW)), tap_spacing(DigitStep::of(kBSpacing, dims.kH, dims.kW)) {}

  RB_HD int rows() const { return d.C / d.groups; }
  RB_HD int columns() const { return d.N * d.H * d.W; }
  RB_HD int depth() const { return d.O / d.groups * d.kH * d.kW; }
  RB_HD int z_count() const { return d.groups; }

  struct Cursor {
    int group, m0, n0, k_begin, k_end;
    const T* dy_column;  // this thread's image, first output channel of the group
    int th0, tw0;        // h + pH, w + pW of its column
    bool column_ok;
    int a_k, b_k;        // reduction indices of this thread's A and first B loads in the next step
    Digits a_tap, b_tap; // the same as (o, 0, tap) and (o, i, j)
  };
  RB_HD Cursor cursor(int t, int z, int m0, int n0) const {
    Cursor c{};
    c.group = z;
    c.m0 = m0;
    c.n0 = n0;
    c.k_begin = 0;
    c.k_end = depth();
    const int n = n0 + BMap::row(t, 0), plane = d.H * d.W;
    c.column_ok = n < columns();
    const int image = c.column_ok ? n / plane : 0, p = c.column_ok ? n - image * plane : 0;
    const int h = p / d.W, w_ = p - h * d.W;
    c.dy_column = dy + (int64_t(image) * d.O + int64_t(z) * (d.O / d.groups)) * d.OH * d.OW;
    c.th0 = h + d.pH;
    c.tw0 = w_ + d.pW;
    c.a_k = c.k_begin + AMap::k(t, 0);
    c.a_tap = split(c.a_k, 1, d.kH * d.kW);
    c.b_k = c.k_begin + BMap::k(t, 0);
    c.b_tap = split(c.b_k, d.kH, d.kW);
    return c;
  }
  RB_HD void fetch(Cursor& c, int t, int k0, T (&a)[AMap::kLoads], T (&b)[BMap::kLoads]) const {
    const int M = rows(), taps = d.kH * d.kW;
    const T* w_group = w + int64_t(c.group) * (d.O / d.groups) * M * taps;
#pragma unroll
    for (int j = 0; j < AMap::kLoads; ++j) {  // the same k for every A load (K_FAST)
      const int m = c.m0 + AMap::row(t, j);
      a[j] = (m < M && c.a_k < c.k_end) ? w_group[(int64_t(c.a_tap.hi) * M + m) * taps + c.a_tap.lo] : T(0);
    }
    advance(c.a_tap, a_step);
    c.a_k += kBK;
    Digits tap = c.b_tap;
    int k = c.b_k;
#pragma unroll
    for (int j = 0; j < BMap::kLoads; ++j) {
      if (j > 0) {
        advance(tap, tap_spacing);
        k += kBSpacing;
      }
      T v = T(0);
      const int th = c.th0 - tap.mid * d.dH, tw = c.tw0 - tap.lo * d.dW;
      if (c.column_ok && k < c.k_end && th >= 0 && tw >= 0) {
        const int oh = th / d.sH, ow = tw / d.sW;
        if (oh * d.sH == th && ow * d.sW == tw && oh < d.OH && ow < d.OW)
          v = c.dy_column[(int64_t(tap.hi) * d.OH + oh) * d.OW + ow];
      }
      b[j] = v;
    }
    advance(c.b_tap, tap_step);
    c.b_k += kBK;
  }
  RB_HD void store(const Cursor& c, int m, int n, T v) const {
    const int plane = d.H * d.W, image = n / plane, p = n - image * plane;
    const int ch = c.group * rows() + m;
    dx[(int64_t(image) * d.C + ch) * plane + p] = bias ? v + bias[ch] : v;
  }
};

template <typename T, int BM>
struct BackwardWeightProblem {
  using Scalar = T;
  static constexpr int kBM = BM;
  using AMap = TileMap<BM, true>;  // dy: contiguous along the reduction (pixels)
  using BMap = TileMap<kBN, true>;  // x taps: likewise
  ConvDims d;
  const T* x;
  const T* dy;
  T* out;  // dw (O, Cg*kH*kW) when splits == 1, else the partials (splits, O, Cg*kH*kW)
  int splits;
  DigitStep pixel_step;  // kBK as an (n, oh, ow) step

  BackwardWeightProblem(const ConvDims& dims, const T* x_, const T* dy_, T* out_, int splits_)
      : d(dims), x(x_), dy(dy_), out(out_), splits(splits_), pixel_step(DigitStep::of(kBK, dims.OH, dims.OW)) {}

  RB_HD int rows() const { return d.O / d.groups; }
  RB_HD int columns() const { return d.C / d.groups * d.kH * d.kW; }
  RB_HD int depth() const { return d.N * d.OH * d.OW; }
  RB_HD int z_count() const { return d.groups * splits; }
  RB_HD int split_length() const { return (depth() + splits - 1) / splits; }

  struct Cursor {
    int group, split, m0, n0, k_begin, k_end;
    // For each of this thread's B rows (weight taps (c, i, j)): c*H*W and the tap's offsets.
    int x_offset[BMap::kLoads], di[BMap::kLoads], dj[BMap::kLoads];
    bool tap_ok[BMap::kLoads];
    int q;         // the pixel this thread reads (A and B alike, K_FAST) in the next step
    Digits pixel;  // the same as (n, oh, ow)
  };
  RB_HD Cursor cursor(int t, int z, int m0, int n0) const {
    Cursor c{};
    c.group = z % d.groups;
    c.split = z / d.groups;
    c.m0 = m0;
    c.n0 = n0;
    const int length = split_length();
    c.k_begin = std::min(c.split * length, depth());
    c.k_end = std::min(c.k_begin + length, depth());
    const int taps = d.kH * d.kW;
#pragma unroll
    for (int j = 0; j < BMap::kLoads; ++j) {
      const int n = n0 + BMap::row(t, j);
      c.tap_ok[j] = n < columns();
      const int ch = c.tap_ok[j] ? n / taps : 0, tap = c.tap_ok[j] ? n - ch * taps : 0;
      const int i = tap / d.kW, jj = tap - i * d.kW;
      c.x_offset[j] = ch * d.H * d.W;
      c.di[j] = i * d.dH - d.pH;
      c.dj[j] = jj * d.dW - d.pW;
    }
    c.q = c.k_begin + BMap::k(t, 0);  // AMap::k(t, j) == BMap::k(t, j) == t % kBK
    c.pixel = split(c.q, d.OH, d.OW);
    return c;
  }
  RB_HD void fetch(Cursor& c, int t, int k0, T (&a)[AMap::kLoads], T (&b)[BMap::kLoads]) const {
    const int plane = d.OH * d.OW, M = rows();
    const bool q_ok = c.q < c.k_end;
    const int image = q_ok ? c.pixel.hi : 0;
    const T* dy_pixel =
        dy + (int64_t(image) * d.O + int64_t(c.group) * M) * plane + (q_ok ? c.pixel.mid * d.OW + c.pixel.lo : 0);
#pragma unroll
    for (int j = 0; j < AMap::kLoads; ++j) {
      const int m = c.m0 + AMap::row(t, j);
      a[j] = (q_ok && m < M) ? dy_pixel[int64_t(m) * plane] : T(0);
    }
    const T* x_group = x + (int64_t(image) * d.C + int64_t(c.group) * (d.C / d.groups)) * d.H * d.W;
    const int ih0 = c.pixel.mid * d.sH, iw0 = c.pixel.lo * d.sW;
#pragma unroll
    for (int j = 0; j < BMap::kLoads; ++j) {
      const int ih = ih0 + c.di[j], iw = iw0 + c.dj[j];
      const bool inside = q_ok && c.tap_ok[j] && ih >= 0 && ih < d.H && iw >= 0 && iw < d.W;
      b[j] = inside ? x_group[c.x_offset[j] + int64_t(ih) * d.W + iw] : T(0);
    }
    advance(c.pixel, pixel_step);
    c.q += kBK;
  }
  RB_HD void store(const Cursor& c, int m, int n, T v) const {
    out[(int64_t(c.split) * d.O + int64_t(c.group) * rows() + m) * columns() + n] = v;
  }
};

// ---- the block's phases -----------------------------------------------------------------------------

template <class P>
struct Staging {  // one step's gathered values, between the global loads and the shared stores
  typename P::Scalar a[P::AMap::kLoads];
  typename P::Scalar b[P::BMap::kLoads];
};

template <class P>
RB_HD void fetch_step(const P& p, typename P::Cursor& c, int t, int k0, Staging<P>& r) {
  p.fetch(c, t, k0, r.a, r.b);
}

template <class P>
RB_HD void store_step(int t, Tile<typename P::Scalar, P::kBM>& as, Tile<typename P::Scalar, kBN>& bs, const Staging<P>& r) {
#pragma unroll
  for (int j = 0; j < P::AMap::kLoads; ++j) as[P::AMap::k(t, j)][P::AMap::row(t, j)] = r.a[j];
#pragma unroll
  for (int j = 0; j < P::BMap::kLoads; ++j) bs[P::BMap::k(t, j)][P::BMap::row(t, j)] = r.b[j];
}

// Four consecutive shared-memory values (16-byte aligned) as vector loads.
RB_HD void load4(const float* p, float* v) {
  const float4 f = *reinterpret_cast<const float4*>(p);
  v[0] = f.x; v[1] = f.y; v[2] = f.z; v[3] = f.w;
}
RB_HD void load4(const double* p, double* v) {
  const double2 lo = *reinterpret_cast<const double2*>(p), hi = *reinterpret_cast<const double2*>(p + 2);
  v[0] = lo.x; v[1] = lo.y; v[2] = hi.x; v[3] = hi.y;
}
RB_HD void load2(const float* p, float* v) {  // 8-byte aligned
  const float2 f = *reinterpret_cast<const float2*>(p);
  v[0] = f.x; v[1] = f.y;
}
RB_HD void load2(const double* p, double* v) {  // 16-byte aligned
  const double2 f = *reinterpret_cast<const double2*>(p);
  v[0] = f.x; v[1] = f.y;
}

template <typename T, int BM>
RB_HD void accumulate_step(int t, const Tile<T, BM>& as, const Tile<T, kBN>& bs, T (&acc)[BM / 16][8]) {
  constexpr int R = BM / 16;  // rows per thread
  static_assert(R == 2 || R == 4, "tiles of 32 or 64 rows");
  const int tx = t % 16, ty = t / 16;
#pragma unroll
  for (int kk = 0; kk < kBK; ++kk) {
    T a[R], b[8];
    if constexpr (R == 4) load4(&as[kk][ty * 4], a);
    else load2(&as[kk][ty * 2], a);
    load4(&bs[kk][tx * 4], b);
    load4(&bs[kk][64 + tx * 4], b + 4);
#pragma unroll
    for (int i = 0; i < R; ++i)
#pragma unroll
      for (int q = 0; q < 8; ++q) acc[i][q] += a[i] * b[q];
  }
}

template <class P>
RB_HD void write_outputs(const P& p, const typename P::Cursor& c, int t,
                         const typename P::Scalar (&acc)[P::kBM / 16][8]) {
  constexpr int R = P::kBM / 16;
  const int tx = t % 16, ty = t / 16, M = p.rows(), N = p.columns();
#pragma unroll
  for (int i = 0; i < R; ++i) {
    const int m = c.m0 + ty * R + i;
    if (m >= M) continue;
#pragma unroll
    for (int q = 0; q < 8; ++q) {
      const int n = c.n0 + tile_column(tx, q);
      if (n < N) p.store(c, m, n, acc[i][q]);
    }
  }
}

template <class P>
__global__ void __launch_bounds__(kThreads, sizeof(typename P::Scalar) == 4 ? 2 : 1)
    igemm_kernel(P p, int z_offset) {
  using T = typename P::Scalar;
  constexpr int R = P::kBM / 16;
  __shared__ __align__(16) Tile<T, P::kBM> a_tiles[2];
  __shared__ __align__(16) Tile<T, kBN> b_tiles[2];
  const int t = threadIdx.x;
  typename P::Cursor c =
      p.cursor(t, static_cast<int>(blockIdx.z) + z_offset, static_cast<int>(blockIdx.y) * P::kBM,
               static_cast<int>(blockIdx.x) * kBN);
  T acc[R][8];
#pragma unroll
  for (int i = 0; i < R; ++i)
#pragma unroll
    for (int q = 0; q < 8; ++q) acc[i][q] = T(0);

  const int steps = (c.k_end - c.k_begin + kBK - 1) / kBK;  // the same for the whole block
  Staging<P> r;
  if (steps > 0) {
    fetch_step(p, c, t, c.k_begin, r);
    store_step<P>(t, a_tiles[0], b_tiles[0], r);
    __syncthreads();
  }
  for (int step = 0; step < steps; ++step) {
    const int cur = step & 1;
    const bool has_next = step + 1 < steps;
    if (has_next) fetch_step(p, c, t, c.k_begin + (step + 1) * kBK, r);  // in flight during the arithmetic
    accumulate_step<T, P::kBM>(t, a_tiles[cur], b_tiles[cur], acc);
    if (has_next) store_step<P>(t, a_tiles[cur ^ 1], b_tiles[cur ^ 1], r);  // buffer cur^1 is free since the last barrier
    __syncthreads();
  }
  write_outputs(p, c, t, acc);
}

template <class P>
void launch_igemm(const P& p, cudaStream_t stream, const char* op) {
  const int64_t grid_x = (int64_t(p.columns()) + kBN - 1) / kBN, grid_y = (int64_t(p.rows()) + P::kBM - 1) / P::kBM;
  if (grid_x == 0 || grid_y == 0) return;
  if (grid_y > kMaxGridYZ)
    throw std::runtime_error(std::string(op) + ": " + std::to_string(p.rows()) +
                             " channels per group are beyond the CUDA grid limits");
  const int z_count = p.z_count();
  for (int z0 = 0; z0 < z_count; z0 += kMaxGridYZ) {  // grid.z is limited to 65535
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y),
                    static_cast<unsigned>(std::min(kMaxGridYZ, z_count - z0)));
    igemm_kernel<P><<<grid, kThreads, 0, stream>>>(p, z0);
    check_launch(op, "igemm_kernel");
  }
}

// The kernel on the host: each barrier-separated phase runs for all 256 threads before the next,
// stores into the other buffer before any read of the current one (the least favourable order).
template <class P>
void simulate_on_host(const P& p) {
  using T = typename P::Scalar;
  struct Thread {
    typename P::Cursor cursor;
    Staging<P> staging;
    T acc[P::kBM / 16][8];
  };
  struct alignas(16) Shared {
    Tile<T, P::kBM> a[2];
    Tile<T, kBN> b[2];
  };
  std::vector<Thread> threads(kThreads);
  auto shared = std::make_unique<Shared>();
  const int grid_x = (p.columns() + kBN - 1) / kBN, grid_y = (p.rows() + P::kBM - 1) / P::kBM;
  for (int z = 0; z < p.z_count(); ++z)
    for (int by = 0; by < grid_y; ++by)
      for (int bx = 0; bx < grid_x; ++bx) {
        for (int t = 0; t < kThreads; ++t) {
          threads[t].cursor = p.cursor(t, z, by * P::kBM, bx * kBN);
          std::fill(&threads[t].acc[0][0], &threads[t].acc[0][0] + P::kBM / 16 * 8, T(0));
        }
        const typename P::Cursor& c0 = threads[0].cursor;
        const int steps = (c0.k_end - c0.k_begin + kBK - 1) / kBK;
        for (int t = 0; t < kThreads && steps > 0; ++t) {
          fetch_step(p, threads[t].cursor, t, threads[t].cursor.k_begin, threads[t].staging);
          store_step<P>(t, shared->a[0], shared->b[0], threads[t].staging);
        }
        for (int step = 0; step < steps; ++step) {
          const int cur = step & 1;
          const bool has_next = step + 1 < steps;
          for (int t = 0; t < kThreads && has_next; ++t) {
            Thread& th = threads[t];
            fetch_step(p, th.cursor, t, th.cursor.k_begin + (step + 1) * kBK, th.staging);
            store_step<P>(t, shared->a[cur ^ 1], shared->b[cur ^ 1], th.staging);
          }
          for (int t = 0; t < kThreads; ++t)
            accumulate_step<T, P::kBM>(t, shared->a[cur], shared->b[cur], threads[t].acc);
        }
        for (int t = 0; t < kThreads; ++t) write_outputs(p, threads[t].cursor, t, threads[t].acc);
      }
}

int conv_columns_per_weight(const ConvDims& d) { return d.C / d.groups * d.kH * d.kW; }

// The tile height for a problem whose groups have `rows` output rows (or the one asked for).
int tile_rows(int rows, int asked = 0) { return asked ? asked : rows <= kBMSmall ? kBMSmall : kBMLarge; }

// Runs run(Problem<T, BM>{args...}) with the tile height for `rows`.
template <template <typename, int> class Problem, typename T, class Run, typename... Args>
void with_tile(int rows, int asked, Run&& run, const Args&... args) {
  if (tile_rows(rows, asked) == kBMSmall) run(Problem<T, kBMSmall>(args...));
  else run(Problem<T, kBMLarge>(args...));
}

}  // namespace

template <typename T>
void conv2d_forward_igemm(const ConvDims& d, const T* x, const T* w, const T* bias, T* y, cudaStream_t stream) {
  with_tile<ForwardProblem, T>(d.O / d.groups, 0, [&](const auto& p) { launch_igemm(p, stream, "conv2d"); }, d, x, w,
                               bias, y);
}

template <typename T>
void conv2d_backward_data_igemm(const ConvDims& d, const T* dy, const T* w, const T* bias, T* dx, cudaStream_t stream) {
  with_tile<BackwardDataProblem, T>(d.C / d.groups, 0,
                                    [&](const auto& p) { launch_igemm(p, stream, "conv2d_backward_data"); }, d, dy, w,
                                    bias, dx);
}

template <typename T>
void conv2d_backward_weight_igemm(const ConvDims& d, const T* x, const T* dy, T* dw, T* workspace, int splits,
                                  cudaStream_t stream) {
  T* out = splits > 1 ? workspace : dw;
  with_tile<BackwardWeightProblem, T>(d.O / d.groups, 0,
                                      [&](const auto& p) { launch_igemm(p, stream, "conv2d_backward_weight"); }, d, x,
                                      dy, out, splits);
  if (splits > 1) sum_axis<T>(workspace, dw, 1, splits, int64_t(d.O) * conv_columns_per_weight(d), stream);
}

int conv2d_backward_weight_splits(const ConvDims& d, int multiprocessors) {
  const int64_t rows = d.O / d.groups, columns = conv_columns_per_weight(d);
  const int64_t depth = int64_t(d.N) * d.OH * d.OW;
  const int64_t bm = tile_rows(static_cast<int>(rows));
  const int64_t tiles = ((rows + bm - 1) / bm) * ((columns + kBN - 1) / kBN) * d.groups;
  const int64_t wanted = (int64_t(4) * std::max(multiprocessors, 1) + tiles - 1) / tiles;
  const int64_t by_depth = std::max<int64_t>(depth / 512, 1);  // at least 512 products per split
  const int64_t by_memory = std::max<int64_t>((int64_t(1) << 28) / (int64_t(d.O) * columns), 1);  // partials <= 1 GiB (fp32)
  return static_cast<int>(std::clamp<int64_t>(std::min({wanted, by_depth, by_memory, int64_t(1024)}), 1, 1024));
}

template <typename T>
void conv2d_igemm_simulated_on_host(ConvPass pass, const ConvDims& d, const T* in0, const T* in1, const T* bias, T* out,
                                    int splits, int rows_per_tile) {
  auto simulate = [](const auto& p) { simulate_on_host(p); };
  switch (pass) {
    case ConvPass::forward:
      with_tile<ForwardProblem, T>(d.O / d.groups, rows_per_tile, simulate, d, in0, in1, bias, out);
      break;
    case ConvPass::backward_data:
      with_tile<BackwardDataProblem, T>(d.C / d.groups, rows_per_tile, simulate, d, in0, in1, bias, out);
      break;
    case ConvPass::backward_weight: {
      const int64_t size = int64_t(d.O) * conv_columns_per_weight(d);
      std::vector<T> partials(static_cast<std::size_t>(size * splits));
      T* partial_data = partials.data();
      with_tile<BackwardWeightProblem, T>(d.O / d.groups, rows_per_tile, simulate, d, in0, in1, partial_data, splits);
      for (int64_t e = 0; e < size; ++e) {
        T sum = T(0);
        for (int s = 0; s < splits; ++s) sum += partials[static_cast<std::size_t>(s * size + e)];
        out[e] = sum;
      }
      break;
    }
  }
}

#define RB_CONV_INSTANTIATE(T)                                                                                     \
  template void conv2d_forward_igemm<T>(const ConvDims&, const T*, const T*, const T*, T*, cudaStream_t);          \
  template void conv2d_backward_data_igemm<T>(const ConvDims&, const T*, const T*, const T*, T*, cudaStream_t);    \
  template void conv2d_backward_weight_igemm<T>(const ConvDims&, const T*, const T*, T*, T*, int, cudaStream_t);   \
  template void conv2d_igemm_simulated_on_host<T>(ConvPass, const ConvDims&, const T*, const T*, const T*, T*, int, int);
RB_CONV_INSTANTIATE(float)
RB_CONV_INSTANTIATE(double)
#undef RB_CONV_INSTANTIATE

}  // namespace rb::cuda
