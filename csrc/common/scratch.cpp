#include "common/scratch.h"

#include "common/large_block.h"

#include <cstdint>
#include <cstdlib>
#include <new>

namespace rb {

namespace {
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
};
}  // namespace

void* thread_scratch(ScratchSlot slot, size_t bytes) {
  // Trivially destructible on purpose: OpenMP worker threads live as long as the process.
  static thread_local Buffer buffers[static_cast<int>(ScratchSlot::count_)];
  Buffer& buf = buffers[static_cast<int>(slot)];
  if (bytes > buf.bytes) {
    std::free(buf.data);
    buf.data = nullptr, buf.bytes = 0;
    if (bytes > SIZE_MAX - 4096) throw std::bad_alloc();
    size_t rounded = (bytes + 4095) / 4096 * 4096;
    buf.data = large_block_alloc(rounded);
    if (!buf.data) throw std::bad_alloc();
    buf.bytes = rounded;
  }
  return buf.data;
}

}  // namespace rb
