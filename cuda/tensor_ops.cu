// Kernels of the device tensor layer beyond elementwise.cu: comparisons (bool out), where, dtype
// casts, assignment into strided views, fill, and max / min with the arg-index over one axis.
// Every grid-stride loop is 64-bit; broadcast_offsets (launch.cuh) is the one index helper.
#include <cstdint>
#include <type_traits>

#include "check.h"
#include "kernels.h"
#include "launch.cuh"

namespace rb::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__device__ bool compare(Compare op, T a, T b) {
  switch (op) {
    case Compare::eq: return a == b;
    case Compare::ne: return a != b;
    case Compare::lt: return a < b;
    case Compare::le: return a <= b;
    case Compare::gt: return a > b;
    case Compare::ge: return a >= b;
    case Compare::logical_and: return a != T(0) && b != T(0);
    case Compare::logical_or: return a != T(0) || b != T(0);
    case Compare::logical_xor: return (a != T(0)) != (b != T(0));
  }
  return false;
}

template <typename T>
__global__ void compare_kernel(Compare op, BroadcastLayout layout, const T* __restrict__ a, const T* __restrict__ b,
                               uint8_t* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    int64_t offset[kMaxInputs];
    broadcast_offsets<2>(layout, i, offset);
    out[i] = compare(op, a[offset[0]], b[offset[1]]) ? 1 : 0;
  }
}

template <typename T>
__global__ void where_kernel(BroadcastLayout layout, const uint8_t* __restrict__ cond, const T* __restrict__ a,
                             const T* __restrict__ b, T* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    int64_t offset[kMaxInputs];
    broadcast_offsets<3>(layout, i, offset);
    out[i] = cond[offset[0]] ? a[offset[1]] : b[offset[2]];
  }
}

template <typename To, typename From>
__device__ To convert(From x) {
  if constexpr (std::is_same_v<To, uint8_t>) return x != From(0) ? 1 : 0;  // to bool
  else return static_cast<To>(x);
}

template <typename From, typename To>
__global__ void cast_kernel(BroadcastLayout layout, const From* __restrict__ x, To* __restrict__ out, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    int64_t offset[kMaxInputs];
    broadcast_offsets<1>(layout, i, offset);
    out[i] = convert<To>(x[offset[0]]);
  }
}

// dst and src never overlap (the op layer copies src first when they share storage), and no two
// i reach the same dst element (the op layer refuses broadcast destinations).
template <typename T>
__global__ void assign_kernel(BroadcastLayout layout, T* dst, const T* __restrict__ src, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) {
    int64_t offset[kMaxInputs];
    broadcast_offsets<2>(layout, i, offset);
    dst[offset[0]] = src[offset[1]];
  }
}

template <typename T>
__global__ void fill_kernel(T* __restrict__ out, T value, int64_t n) {
  for (int64_t i = global_thread_index(); i < n; i += grid_threads()) out[i] = value;
}

// One thread per output (o, j) of x (outer, n, inner): neighbouring threads read neighbouring j.
template <typename T>
__global__ void extreme_axis_kernel(const T* __restrict__ x, T* __restrict__ values, int64_t* __restrict__ indices,
                                    int64_t outer, int64_t n, int64_t inner, bool minimum) {
  const int64_t total = outer * inner;
  for (int64_t idx = global_thread_index(); idx < total; idx += grid_threads()) {
    const int64_t o = idx / inner, j = idx % inner;
    const T* p = x + o * n * inner + j;
    T best = p[0];
    int64_t arg = 0;
    for (int64_t r = 1; r < n && best == best; ++r) {  // stops at the first NaN
      const T v = p[r * inner];
      if (v != v || (minimum ? v < best : v > best)) {
        best = v;
        arg = r;
      }
    }
    values[idx] = best;
    indices[idx] = arg;
  }
}

}  // namespace

template <typename T>
void launch_compare(Compare op, const BroadcastLayout& layout, const T* a, const T* b, uint8_t* out, int64_t n,
                    cudaStream_t stream) {
  if (n == 0) return;
  compare_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(op, layout, a, b, out, n);
  check_launch("compare", "compare_kernel");
}

template <typename T>
void launch_where(const BroadcastLayout& layout, const uint8_t* cond, const T* a, const T* b, T* out, int64_t n,
                  cudaStream_t stream) {
  if (n == 0) return;
  where_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(layout, cond, a, b, out, n);
  check_launch("where", "where_kernel");
}

template <typename From, typename To>
void launch_cast(const BroadcastLayout& layout, const From* x, To* out, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  cast_kernel<From, To><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(layout, x, out, n);
  check_launch("astype", "cast_kernel");
}

template <typename T>
void launch_assign(const BroadcastLayout& layout, T* dst, const T* src, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  assign_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(layout, dst, src, n);
  check_launch("assign", "assign_kernel");
}

template <typename T>
void launch_fill(T* out, T value, int64_t n, cudaStream_t stream) {
  if (n == 0) return;
  fill_kernel<T><<<grid_stride_blocks(n, kThreads), kThreads, 0, stream>>>(out, value, n);
  check_launch("full", "fill_kernel");
}

template <typename T>
void extreme_axis(const T* x, T* values, int64_t* indices, int64_t outer, int64_t n, int64_t inner, bool minimum,
                  cudaStream_t stream) {
  const int64_t total = outer * inner;
  if (total == 0) return;
  extreme_axis_kernel<T><<<grid_stride_blocks(total, kThreads), kThreads, 0, stream>>>(x, values, indices, outer, n,
                                                                                      inner, minimum);
  check_launch(minimum ? "min" : "max", "extreme_axis_kernel");
}

// The element types: float32, float64, int64 and bool (uint8_t).
#define RB_FOR_EACH_TYPE(X) X(float) X(double) X(int64_t) X(uint8_t)

#define RB_INSTANTIATE(T)                                                                                  \
  template void launch_compare<T>(Compare, const BroadcastLayout&, const T*, const T*, uint8_t*, int64_t,  \
                                  cudaStream_t);                                                           \
  template void launch_where<T>(const BroadcastLayout&, const uint8_t*, const T*, const T*, T*, int64_t,   \
                                cudaStream_t);                                                             \
  template void launch_fill<T>(T*, T, int64_t, cudaStream_t);                                              \
  template void launch_cast<T, float>(const BroadcastLayout&, const T*, float*, int64_t, cudaStream_t);    \
  template void launch_cast<T, double>(const BroadcastLayout&, const T*, double*, int64_t, cudaStream_t);  \
  template void launch_cast<T, int64_t>(const BroadcastLayout&, const T*, int64_t*, int64_t, cudaStream_t); \
  template void launch_cast<T, uint8_t>(const BroadcastLayout&, const T*, uint8_t*, int64_t, cudaStream_t);
RB_FOR_EACH_TYPE(RB_INSTANTIATE)
#undef RB_INSTANTIATE
#undef RB_FOR_EACH_TYPE

template void launch_assign<uint8_t>(const BroadcastLayout&, uint8_t*, const uint8_t*, int64_t, cudaStream_t);
template void launch_assign<uint32_t>(const BroadcastLayout&, uint32_t*, const uint32_t*, int64_t, cudaStream_t);
template void launch_assign<uint64_t>(const BroadcastLayout&, uint64_t*, const uint64_t*, int64_t, cudaStream_t);
template void extreme_axis<float>(const float*, float*, int64_t*, int64_t, int64_t, int64_t, bool, cudaStream_t);
template void extreme_axis<double>(const double*, double*, int64_t*, int64_t, int64_t, int64_t, bool, cudaStream_t);

}  // namespace rb::cuda
