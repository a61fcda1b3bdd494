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
#include <cstdint>
#include <stdexcept>
#include <string>

#include "check.h"
#include "kernels.h"

namespace rb::cuda {
namespace {

constexpr int kTile = 128;           // BM = BN
constexpr int kStep = 8;             // BK
constexpr int kThreads = 256;        // 16 x 16 threads, 8 x 8 outputs each
constexpr int kLds = kTile + 4;      // row length of a shared slice: the padding spreads the k-contiguous
                                     // stores (two k groups per row) over all 32 banks; 528 bytes keeps float4 alignment
constexpr int kMaxGridY = 65535;

using Slice = float[kStep][kLds];

// Element (i, k) of an operand viewed as I x K: at P[i*ld + k] when K_CONTIG, else at P[k*ld + i].
// op(A) is K-contiguous when A is not transposed; op(B)^T (N x K) is K-contiguous when B is.
// Each thread fetches 4 elements of the 128 x 8 slice starting at (i0, k0), zero outside I x K.
template <bool K_CONTIG>
__device__ inline void fetch_slice(const float* __restrict__ p, int64_t ld, int64_t rows, int64_t depth, int64_t i0,
                                   int64_t k0, bool vec, float (&r)[4]) {
  const int t = threadIdx.x;
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
__device__ inline void store_slice(Slice& s, const float (&r)[4]) {
  const int t = threadIdx.x;
  if (K_CONTIG) {
    const int i = t / 2, k = (t % 2) * 4;
#pragma unroll
    for (int j = 0; j < 4; ++j) s[k + j][i] = r[j];
  } else {
    const int k = t / 32, i = (t % 32) * 4;
    *reinterpret_cast<float4*>(&s[k][i]) = make_float4(r[0], r[1], r[2], r[3]);
  }
}

// Row (or column) within the tile of this thread's q-th output, q in 0..7.
__device__ inline int tile_offset(int thread_coordinate, int q) { return (q / 4) * 64 + thread_coordinate * 4 + q % 4; }

template <bool TRANS_A, bool TRANS_B>
__global__ void __launch_bounds__(kThreads, 2) sgemm_kernel(GemmProblem p, bool vec_a, bool vec_b, bool vec_c) {
  __shared__ __align__(16) Slice a_slices[2];
  __shared__ __align__(16) Slice b_slices[2];
  constexpr bool a_k_contig = !TRANS_A, b_k_contig = TRANS_B;

  const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;
  const int64_t m0 = static_cast<int64_t>(blockIdx.x) * kTile, n0 = static_cast<int64_t>(blockIdx.y) * kTile;
  const int64_t steps = (p.k + kStep - 1) / kStep;

  for (int64_t batch = blockIdx.z; batch < p.batch; batch += gridDim.z) {
    const float* a = p.a + batch * p.stride_a;
    const float* b = p.b + batch * p.stride_b;
    float* c = p.c + batch * p.stride_c;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
      for (int j = 0; j < 8; ++j) acc[i][j] = 0.0f;

    float ra[4], rb[4];
    if (steps > 0) {
      fetch_slice<a_k_contig>(a, p.lda, p.m, p.k, m0, 0, vec_a, ra);
      fetch_slice<b_k_contig>(b, p.ldb, p.n, p.k, n0, 0, vec_b, rb);
      store_slice<a_k_contig>(a_slices[0], ra);
      store_slice<b_k_contig>(b_slices[0], rb);
      __syncthreads();
    }
    for (int64_t step = 0; step < steps; ++step) {
      const int cur = static_cast<int>(step & 1);
      const bool has_next = step + 1 < steps;  // the same for every thread: barriers stay uniform
      if (has_next) {
        fetch_slice<a_k_contig>(a, p.lda, p.m, p.k, m0, (step + 1) * kStep, vec_a, ra);
        fetch_slice<b_k_contig>(b, p.ldb, p.n, p.k, n0, (step + 1) * kStep, vec_b, rb);
      }
#pragma unroll
      for (int kk = 0; kk < kStep; ++kk) {
        const float4 a0 = *reinterpret_cast<const float4*>(&a_slices[cur][kk][ty * 4]);
        const float4 a1 = *reinterpret_cast<const float4*>(&a_slices[cur][kk][64 + ty * 4]);
        const float4 b0 = *reinterpret_cast<const float4*>(&b_slices[cur][kk][tx * 4]);
        const float4 b1 = *reinterpret_cast<const float4*>(&b_slices[cur][kk][64 + tx * 4]);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; ++i)
#pragma unroll
          for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(av[i], bv[j], acc[i][j]);
      }
      if (has_next) {  // nobody reads buffer cur^1 now: the previous step's barrier ended its use
        store_slice<a_k_contig>(a_slices[cur ^ 1], ra);
        store_slice<b_k_contig>(b_slices[cur ^ 1], rb);
      }
      __syncthreads();
    }

    // Epilogue: C = alpha * acc + beta * C, in float4s where a group of 4 columns is whole and aligned.
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
}

// float4 access is allowed when every row start is 16-byte aligned: base, leading dimension and
// batch stride all multiples of 4 floats.
bool aligned16(const void* ptr, int64_t ld, int64_t batch_stride) {
  return reinterpret_cast<uintptr_t>(ptr) % 16 == 0 && ld % 4 == 0 && batch_stride % 4 == 0;
}

}  // namespace

void sgemm(const GemmProblem& p, cudaStream_t stream) {
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  const int64_t grid_x = (p.m + kTile - 1) / kTile, grid_y = (p.n + kTile - 1) / kTile;
  if (grid_x > INT32_MAX || grid_y > kMaxGridY)
    throw std::runtime_error("matmul: output of " + std::to_string(p.m) + " x " + std::to_string(p.n) +
                             " is beyond the CUDA grid limits");
  const dim3 grid(static_cast<unsigned>(grid_x), static_cast<unsigned>(grid_y),
                  static_cast<unsigned>(p.batch < kMaxGridY ? p.batch : kMaxGridY));
  const bool vec_a = aligned16(p.a, p.lda, p.stride_a), vec_b = aligned16(p.b, p.ldb, p.stride_b),
             vec_c = aligned16(p.c, p.ldc, p.stride_c);
  if (!p.trans_a && !p.trans_b)
    sgemm_kernel<false, false><<<grid, kThreads, 0, stream>>>(p, vec_a, vec_b, vec_c);
  else if (!p.trans_a && p.trans_b)
    sgemm_kernel<false, true><<<grid, kThreads, 0, stream>>>(p, vec_a, vec_b, vec_c);
  else if (p.trans_a && !p.trans_b)
    sgemm_kernel<true, false><<<grid, kThreads, 0, stream>>>(p, vec_a, vec_b, vec_c);
  else
    sgemm_kernel<true, true><<<grid, kThreads, 0, stream>>>(p, vec_a, vec_b, vec_c);
  check_launch("matmul", "sgemm_kernel");
}

}  // namespace rb::cuda
