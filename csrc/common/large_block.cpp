// Why huge pages: the kernels stream their large operands (a layer's packed weights, a sequence's
// saved gates, the [X | H] of a weight gradient) and, in 4 KiB pages, meet a page-table walk every
// 4 KiB. NumPy asks for huge pages for its own arrays from 4 MiB up, but under Linux's default THP
// mode ("madvise") the kernels' scratch and recycled blocks got none.
// - Whole LSTM forward+backward kernels, THP "always" against "madvise", alternating processes
//   (medians of 5): (50, 32, 128, 256) 21.1 against 21.7 ms; (100, 64, 512, 512) 403 against 416 ms.
// - This advice, paired against none (bench/ab_builds.py): LSTM (50, 32) 1.023x, GRU (50, 32)
//   1.017x, LSTM (100, 64) 1.010-1.016x, GRU (100, 64) 1.014x; convolutions, pooling and the GEMM
//   0.996-1.010x. From 2 MiB up instead of 1 MiB, LSTM (50, 32) (whose per-step arrays are
//   1.6 MiB) gained only 1.005x; from 256 KiB (taking in the GEMM's packed A blocks), 0.999-1.002x.
// The cost: a block of 1 to 2 MiB takes 2 MiB.
#include "common/large_block.h"

#include <cstdint>
#include <cstdlib>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace rb {

void* large_block_alloc(size_t bytes) {
  if (bytes < kHugePageBytes / 2) return std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (bytes > SIZE_MAX - kHugePageBytes) return nullptr;
  const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  void* block = std::aligned_alloc(kHugePageBytes, rounded);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (block) madvise(block, rounded, MADV_HUGEPAGE);  // advice: a refusal leaves ordinary pages
#endif
  return block;
}

}  // namespace rb
