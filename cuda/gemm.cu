// SGEMM: C = alpha * op(A) op(B) + beta * C, row-major, any M, N, K, either operand transposed.
//
// A block of 256 threads computes a 128 x 128 tile of C, walking K in steps of 8. Each step's
// 128 x 8 slices of A and B are staged in shared memory stored k-major (S[k][i]), so that the inner
// product reads, for one k, 8 consecutive-in-pairs values of A and of B as float4s. Each thread
// owns an 8 x 8 block of C in registers: rows ty*4 + {0..3} and 64 + ty*4 + {0..3}, columns likewise
// with tx, so a warp's shared-memory reads are broadcasts (A) or 256 contiguous bytes (B).
// Double buffering: the next step's slices are fetched from global memory into registers before
// the current step's arithmetic and written to the other shared buffer after it, so one barrier
// per step suffices and the global loads' latency hides behind the FMAs.
#include <array>
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>
#include <vector>

#include "check.h"
#include "kernels.h"

namespace rb::cuda {
namespace {

constexpr int kTile = 128;           // BM = BN
constexpr int kStep = 8;             // BK
constexpr int kThreads = 256;        // 16 x 16 threads, 8 x 8 outputs each
constexpr int kLds = kTile + 4;      // row length of a shared slice: the padding spreads the k-contiguous
                                     // stores (two k groups per row) over all 32 banks; 528 bytes keeps float4 alignment
constexpr int kMaxGridY = 65535, kMaxGridZ = 65535;

using Slice = float[kStep][kLds];

// The kernel's pieces are functions of the thread index t (0..255), callable on the host as well:
// simulate_on_host below runs them for every thread, phase by phase between the barriers, so the
// index arithmetic is tested on machines without a GPU.
#define RB_HD __host__ __device__ __forceinline__

// Element (i, k) of an operand viewed as I x K: at P[i*ld + k] when K_CONTIG, else at P[k*ld + i].
// op(A) is K-contiguous when A is not transposed; op(B)^T (N x K) is K-contiguous when B is.
// Thread t fetches 4 elements of the 128 x 8 slice starting at (i0, k0), zero outside I x K.
template <bool K_CONTIG>
RB_HD void fetch_slice(int t, const float* __restrict__ p, int64_t ld, int64_t rows, int64_t depth, int64_t i0,
                       int64_t k0, bool vec, float (&r)[4]) {
  if (K_CONTIG) {  // thread t: row t/2, k = (t%2)*4 .. +3
    const int64_t i = i0 + t / 2, k = k0 + (t % 2) * 4;
    if (vec && i < rows && k + 3 < depth) {
      const float4 v = *reinterpret_cast<const float4*>(p + i * ld + k);
      r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) r[j] = (i < rows && k + j < depth) ? p[i * ld + k + j] : 0.0f;
    }
  } else {  // thread t: k = t/32, rows (t%32)*4 .. +3
    const int64_t k = k0 + t / 32, i = i0 + (t % 32) * 4;
    if (vec && k < depth && i + 3 < rows) {
      const float4 v = *reinterpret_cast<const float4*>(p + k * ld + i);
      r[0] = v.x; r[1] = v.y; r[2] = v.z; r[3] = v.w;
    } else {
#pragma unroll
      for (int j = 0; j < 4; ++j) r[j] = (k < depth && i + j < rows) ? p[k * ld + i + j] : 0.0f;
    }
  }
}

// Writes what fetch_slice fetched into the k-major shared slice s[k][i].
template <bool K_CONTIG>
RB_HD void store_slice(int t, Slice& s, const float (&r)[4]) {
  if (K_CONTIG) {
    const int i = t / 2, k = (t % 2) * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) s[k + j][i] = r[j];
  } else {
    const int k = t / 32, i = (t % 32) * 4;
    *reinterpret_cast<float4*>(&s[k][i]) = make_float4(r[0], r[1], r[2], r[3]);
  }
}

// Row (or column) within the tile of a thread's q-th output, q in 0..7, from its ty (or tx).
RB_HD int tile_offset(int thread_coordinate, int q) { return (q / 4) * 64 + thread_coordinate * 4 + q % 4; }

// One step's arithmetic: the 8 x 8 outer products of thread t's rows of A and columns of B.
RB_HD void accumulate_step(int t, const Slice& as, const Slice& bs, float (&acc)[8][8]) {
  const int tx = t % 16, ty = t / 16;
#pragma unroll
  for (int kk = 0; kk < kStep; ++kk) {
    const float4 a0 = *reinterpret_cast<const float4*>(&as[kk][ty * 4]);
    const float4 a1 = *reinterpret_cast<const float4*>(&as[kk][64 + ty * 4]);
    const float4 b0 = *reinterpret_cast<const float4*>(&bs[kk][tx * 4]);
    const float4 b1 = *reinterpret_cast<const float4*>(&bs[kk][64 + tx * 4]);
    const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
    const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
  }
}

// C = alpha * acc + beta * C for thread t's outputs of the tile at (m0, n0), in float4s where a
// group of 4 columns is whole and aligned.
RB_HD void write_outputs(int t, const GemmProblem& p, float* c, int64_t m0, int64_t n0, bool vec_c,
                         const float (&acc)[8][8]) {
  const int tx = t % 16, ty = t / 16;
#pragma unroll
  for (int i = 0; i < 8; ++i) {
    const int64_t m = m0 + tile_offset(ty, i);
    if (m >= p.m) continue;
    float* c_row = c + m * p.ldc;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t n = n0 + tile_offset(tx, half * 4);
      float v[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) v[j] = p.alpha * acc[i][half * 4 + j];
      if (vec_c && n + 3 < p.n) {
        float4* dst = reinterpret_cast<float4*>(c_row + n);
        if (p.beta != 0.0f) {
          const float4 old = *dst;
          v[0] += p.beta * old.x; v[1] += p.beta * old.y; v[2] += p.beta * old.z; v[3] += p.beta * old.w;
        }
        *dst = make_float4(v[0], v[1], v[2], v[3]);
      } else {
#pragma unroll
        for (int j = 0; j < 4; ++j) {
          if (n + j < p.n) c_row[n + j] = p.beta != 0.0f ? v[j] + p.beta * c_row[n + j] : v[j];
        }
      }
    }
  }
}

template <bool TRANS_A, bool TRANS_B>
__global__ void __launch_bounds__(kThreads, 2) sgemm_kernel(GemmProblem p, bool vec_a, bool vec_b, bool vec_c) {
  __shared__ __align__(16) Slice a_slices[2];
  __shared__ __align__(16) Slice b_slices[2];
  constexpr bool a_k_contig = !TRANS_A, b_k_contig = TRANS_B;
  const int t = threadIdx.x;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTile, n0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t steps = (p.k + kStep - 1) / kStep;

  const int64_t batch = blockIdx.z;  // one problem per grid.z index: sgemm() launches at most 65535 at a time
  const float* a = p.a + batch * p.stride_a;
  const float* b = p.b + batch * p.stride_b;
  float acc[8][8];
#pragma unroll
  for (int i = 0; i < 8; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

  float ra[4], rb[4];
  if (steps > 0) {
    fetch_slice<a_k_contig>(t, a, p.lda, p.m, p.k, m0, 0, vec_a, ra);
    fetch_slice<b_k_contig>(t, b, p.ldb, p.n, p.k, n0, 0, vec_b, rb);
    store_slice<a_k_contig>(t, a_slices[0], ra);
    store_slice<b_k_contig>(t, b_slices[0], rb);
    __syncthreads();
  }
  for (int64_t step = 0; step < steps; ++step) {
    const int cur = static_cast<int>(step & 1);
    const bool has_next = step + 1 < steps;  // the same for every thread: barriers stay uniform
    if (has_next) {  // global loads in flight during the arithmetic below
      fetch_slice<a_k_contig>(t, a, p.lda, p.m, p.k, m0, (step + 1) * kStep, vec_a, ra);
      fetch_slice<b_k_contig>(t, b, p.ldb, p.n, p.k, n0, (step + 1) * kStep, vec_b, rb);
    }
    accumulate_step(t, a_slices[cur], b_slices[cur], acc);
    if (has_next) {  // nobody reads buffer cur^1 now: the previous step's barrier ended its use
      store_slice<a_k_contig>(t, a_slices[cur ^ 1], ra);
      store_slice<b_k_contig>(t, b_slices[cur ^ 1], rb);
    }
    __syncthreads();
  }
  write_outputs(t, p, p.c + batch * p.stride_c, m0, n0, vec_c, acc);
}

// The kernel on the host: each barrier-separated phase runs for all 256 threads before the next,
// with the shared slices and every thread's registers as arrays. Slow; for tests on small shapes.
template <bool TRANS_A, bool TRANS_B>
void simulate_on_host(const GemmProblem& p, bool vec_a, bool vec_b, bool vec_c) {
  constexpr bool a_k_contig = !TRANS_A, b_k_contig = TRANS_B;
  struct Registers {
    float acc[8][8];
    float ra[4], rb[4];
  };
  std::vector<Registers> threads(kThreads);
  struct alignas(16) Shared {
    Slice a[2], b[2];
  };
  auto shared = std::make_unique<Shared>();
  const int64_t steps = (p.k + kStep - 1) / kStep;
  for (int64_t batch = 0; batch < p.batch; ++batch) {
    const float* a = p.a + batch * p.stride_a;
    const float* b = p.b + batch * p.stride_b;
    for (int64_t m0 = 0; m0 < p.m; m0 += kTile) {
      for (int64_t n0 = 0; n0 < p.n; n0 += kTile) {
        for (Registers& r : threads) std::fill(&r.acc[0][0], &r.acc[0][0] + 64, 0.0f);
        for (int t = 0; t < kThreads && steps > 0; ++t) {
          Registers& r = threads[t];
          fetch_slice<a_k_contig>(t, a, p.lda, p.m, p.k, m0, 0, vec_a, r.ra);
          fetch_slice<b_k_contig>(t, b, p.ldb, p.n, p.k, n0, 0, vec_b, r.rb);
          store_slice<a_k_contig>(t, shared->a[0], r.ra);
          store_slice<b_k_contig>(t, shared->b[0], r.rb);
        }
        for (int64_t step = 0; step < steps; ++step) {
          const int cur = static_cast<int>(step & 1);
          const bool has_next = step + 1 < steps;
          // Between two barriers one thread's stores into buffer cur^1 may land before another
          // thread's reads of buffer cur. Run the least favourable order: every store first, then
          // every read, so a store into the buffer being read would corrupt the result here too.
          for (int t = 0; t < kThreads && has_next; ++t) {
            Registers& r = threads[t];
            fetch_slice<a_k_contig>(t, a, p.lda, p.m, p.k, m0, (step + 1) * kStep, vec_a, r.ra);
            fetch_slice<b_k_contig>(t, b, p.ldb, p.n, p.k, n0, (step + 1) * kStep, vec_b, r.rb);
            store_slice<a_k_contig>(t, shared->a[cur ^ 1], r.ra);
            store_slice<b_k_contig>(t, shared->b[cur ^ 1], r.rb);
          }
          for (int t = 0; t < kThreads; ++t) accumulate_step(t, shared->a[cur], shared->b[cur], threads[t].acc);
        }
        for (int t = 0; t < kThreads; ++t) write_outputs(t, p, p.c + batch * p.stride_c, m0, n0, vec_c, threads[t].acc);
      }
    }
  }
}

// float4 access is allowed when every row start is 16-byte aligned: base, leading dimension and
// batch stride all multiples of 4 floats.
bool aligned16(const void* ptr, int64_t ld, int64_t batch_stride) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && ld % 4 == 0 && batch_stride % 4 == 0;
}

// float4 paths for A, B and C, decided once per call from the addresses and strides.
struct VectorPaths {
  bool a, b, c;
  explicit VectorPaths(const GemmProblem& p)
      : a(aligned16(p.a, p.lda, p.stride_a)), b(aligned16(p.b, p.ldb, p.stride_b)), c(aligned16(p.c, p.ldc, p.stride_c)) {}
};

}  // namespace

void sgemm(const GemmProblem& p, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  const int64_t grid_x = (p.m + kTile - 1) / kTile, grid_y = (p.n + kTile - 1) / kTile;
  if (grid_x > INT32_MAX || grid_y > kMaxGridY)
    throw std::runtime_error("matmul: output of " + std::to_string(p.m) + " x " + std::to_string(p.n) +
                             " is beyond the CUDA grid limits");
  for (int64_t first = 0; first < p.batch; first += kMaxGridZ) {  // grid.z is limited to 65535
    GemmProblem chunk = p;
    chunk.a += first * p.stride_a;
    chunk.b += first * p.stride_b;
    chunk.c += first * p.stride_c;
    chunk.batch = std::min<int64_t>(kMaxGridZ, p.batch - first);
    const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y), static_cast<unsigned>(chunk.batch));
    const VectorPaths vec(chunk);
    if (!p.trans_a && !p.trans_b)
      sgemm_kernel<false, false><<<grid, kThreads, 0, stream>>>(chunk, vec.a, vec.b, vec.c);
    else if (!p.trans_a && p.trans_b)
      sgemm_kernel<false, true><<<grid, kThreads, 0, stream>>>(chunk, vec.a, vec.b, vec.c);
    else if (p.trans_a && !p.trans_b)
      sgemm_kernel<true, false><<<grid, kThreads, 0, stream>>>(chunk, vec.a, vec.b, vec.c);
    else
      sgemm_kernel<true, true><<<grid, kThreads, 0, stream>>>(chunk, vec.a, vec.b, vec.c);
    check_launch("matmul", "sgemm_kernel");
  }
}

void sgemm_simulated_on_host(const GemmProblem& p) {
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  const VectorPaths vec(p);
  if (!p.trans_a && !p.trans_b) simulate_on_host<false, false>(p, vec.a, vec.b, vec.c);
  else if (!p.trans_a && p.trans_b) simulate_on_host<false, true>(p, vec.a, vec.b, vec.c);
  else if (p.trans_a && !p.trans_b) simulate_on_host<true, false>(p, vec.a, vec.b, vec.c);
  else simulate_on_host<true, true>(p, vec.a, vec.b, vec.c);
}

}  // namespace rb::cuda
