// glibc's malloc serves blocks above 128 KiB with a fresh mmap (a threshold it raises only after
// freeing a larger one) and returns the free top of its heap to the kernel once that passes twice
// the threshold. A training step frees and reallocates the same few hundred-KiB arrays every step,
// so with the defaults each step faults their pages in again: a fault costs several microseconds
// on a VM, and the digits CNN's step took 7.5 ms instead of 5 with about 270 faults per step.
// At import, rosenblatt sets the values glibc reaches by itself after freeing one 32 MiB block:
// blocks under 32 MiB come from the heap, and up to 64 MiB of free heap is kept. The kernels' large
// per-call results are recycled separately (recycled_array). The user's own settings win.
#include "common/malloc_tuning.h"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rb {

bool tune_malloc() {
#if defined(__GLIBC__)
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (std::getenv("MALLOC_MMAP_THRESHOLD_") || std::getenv("MALLOC_TRIM_THRESHOLD_") ||
      (tunables && std::strstr(tunables, "glibc.malloc.")))
    return false;
  constexpr int kMmapThreshold = 32 << 20;  // glibc's largest dynamic threshold on 64-bit
  return mallopt(M_MMAP_THRESHOLD, kMmapThreshold) == 1 && mallopt(M_TRIM_THRESHOLD, 2 * kMmapThreshold) == 1;
#else
  return false;
#endif
}

}  // namespace rb
