// Embedding: a gather of weight rows (forward) and a scatter-add of gradient rows (backward).
// Indices are checked on the device: a bad one is never read through; it raises a flag the op
// reads back once after the launch (train_ops.cpp turns it into IndexError).
#include "check.h"
#include "index_flag.cuh"
#include "launch.cuh"
#include "train_kernels.h"
#include "train_math.h"

namespace rb::cuda {
namespace {

// One thread per output element (row i, column d): neighbouring threads read neighbouring columns.
template <typename T>
__global__ void embedding_gather_kernel(const T* __restrict__ weight, const int64_t* __restrict__ indices,
                                        T* __restrict__ out, int64_t n, int64_t num, int64_t dim,
                                        unsigned long long* flag) {
  const int64_t total = n * dim;
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) {
    const int64_t source = embedding_source(e, indices, num, dim);
    if (source >= 0) {
      out[e] = weight[source];
    } else {
      out[e] = T(0);
      if (e % dim == 0) flag_bad_index(flag, indices[e / dim]);
    }
  }
}

template <typename T>
__global__ void embedding_scatter_add_kernel(const T* __restrict__ grad, const int64_t* __restrict__ indices,
                                             T* __restrict__ grad_weight, int64_t n, int64_t num, int64_t dim,
                                             int64_t padding_idx, unsigned long long* flag) {
  const int64_t total = n * dim;
  for (int64_t e = global_thread_index(); e < total; e += grid_threads()) {
    const int64_t target = embedding_source(e, indices, num, dim);  // the gather's source is the scatter's target
    if (target < 0) {
      if (e % dim == 0) flag_bad_index(flag, indices[e / dim]);
    } else if (target / dim != padding_idx) {
      atomicAdd(&grad_weight[target], grad[e]);
    }
  }
}

}  // namespace

template <typename T>
void embedding_gather(const T* weight, const int64_t* indices, T* out, int64_t n, int64_t num, int64_t dim,
                      unsigned long long* flag, cudaStream_t stream) {
  if (n * dim == 0) return;
  constexpr int threads = 256;
  embedding_gather_kernel<T><<<grid_stride_blocks(n * dim, threads), threads, 0, stream>>>(weight, indices, out, n,
                                                                                          num, dim, flag);
  check_launch("embedding_forward", "embedding_gather_kernel");
}

template <typename T>
void embedding_scatter_add(const T* grad, const int64_t* indices, T* grad_weight, int64_t n, int64_t num,
                           int64_t dim, int64_t padding_idx, unsigned long long* flag, cudaStream_t stream) {
  if (n * dim == 0) return;
  constexpr int threads = 256;
  embedding_scatter_add_kernel<T><<<grid_stride_blocks(n * dim, threads), threads, 0, stream>>>(
      grad, indices, grad_weight, n, num, dim, padding_idx, flag);
  check_launch("embedding_backward", "embedding_scatter_add_kernel");
}

#define RB_INSTANTIATE(T)                                                                                     \
  template void embedding_gather<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, unsigned long long*, \
                                    cudaStream_t);                                                            \
  template void embedding_scatter_add<T>(const T*, const int64_t*, T*, int64_t, int64_t, int64_t, int64_t,     \
                                         unsigned long long*, cudaStream_t);
RB_INSTANTIATE(float)
RB_INSTANTIATE(double)
#undef RB_INSTANTIATE

}  // namespace rb::cuda
