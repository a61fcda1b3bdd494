// One way to check the CUDA runtime: every call and every launch goes through rb::cuda::check,
// which turns a failure into std::runtime_error (RuntimeError in Python) naming the op, the call
// and CUDA's own error string. Nothing here aborts.
#pragma once
#include <cuda_runtime.h>

namespace rb::cuda {

[[noreturn]] void throw_cuda_error(cudaError_t err, const char* op, const char* call);

inline void check(cudaError_t err, const char* op, const char* call) {
  if (err != cudaSuccess) throw_cuda_error(err, op, call);
}

// After a kernel launch: a bad configuration shows up here, not at the launch itself.
inline void check_launch(const char* op, const char* kernel) { check(cudaGetLastError(), op, kernel); }

}  // namespace rb::cuda

#define RB_CUDA_CHECK(op, call) ::rb::cuda::check((call), (op), #call)
