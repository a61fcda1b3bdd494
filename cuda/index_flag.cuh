// The device side of train_ops.cpp's BadIndexFlag (device code: include only from .cu files).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace rb::cuda {

// Records a bad index in two zeroed words: flag[0] becomes 1, and the first thread to set it
// leaves its index in flag[1] (for the error message).
__device__ inline void flag_bad_index(unsigned long long* flag, int64_t index) {
  if (atomicOr(&flag[0], 1ull) == 0ull) atomicExch(&flag[1], static_cast<unsigned long long>(index));
}

}  // namespace rb::cuda
