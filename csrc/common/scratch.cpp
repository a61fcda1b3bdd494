#include "common/scratch.h"

#include "common/large_block.h"

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
    buf.data = large_block_alloc(bytes);  // rounds the size up itself
    buf.bytes = buf.data ? bytes : 0;
    if (!buf.data) throw std::bad_alloc();
  }
  return buf.data;
}

}  // namespace rb
