// Per-thread scratch buffers that grow and are kept, so a kernel called in a loop
// (a recurrent step, a conv per image) does not pay malloc + page faults each call.
#pragma once
#include <cstddef>

namespace rb {

// One slot per concurrent use on a thread; a kernel that calls another kernel
// must use a different slot than its callee.
enum class ScratchSlot { gemm_pack_a, gemm_pack_b, gemm_misc, conv, conv_aux, rnn, rnn_grad, pool, count_ };

// A 64-byte aligned buffer of at least `bytes` for the calling thread (in huge pages from 1 MiB up:
// large_block.h). The pointer stays valid until the same thread asks the same slot for more.
void* thread_scratch(ScratchSlot slot, size_t bytes);

template <typename T>
T* thread_scratch_of(ScratchSlot slot, size_t count) {
  return static_cast<T*>(thread_scratch(slot, count * sizeof(T)));
}

}  // namespace rb
