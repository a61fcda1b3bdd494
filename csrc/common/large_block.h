// Memory for the kernels' large buffers: per-thread scratch and recycled results.
#pragma once
#include <cstddef>

namespace rb {

constexpr size_t kHugePageBytes = size_t(2) << 20;

// A block of at least `bytes`, 64-byte aligned, or null when out of memory; free it with std::free.
// From half a huge page up, the block is a whole number of huge pages, aligned to one, and the
// kernel is asked to back it with transparent huge pages (Linux; no effect where THP is off).
void* large_block_alloc(size_t bytes);

}  // namespace rb
