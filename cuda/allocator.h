// Device memory: a caching allocator with one stream per device.
//
// Blocks are rounded to a size class and, when freed, kept on that class's free list instead of
// going back to cudaFree; the next request of the same class reuses one. Once a training step has
// run, later steps ask for the same sizes and never reach cudaMalloc. Reuse is safe without events
// because all of this module's work on a device runs in order on that device's one stream.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace rb::cuda {

// Throws std::runtime_error("<op>: no CUDA device ...") unless `device` names a present device.
void require_device(int device, const char* op);

// Makes `device` current for the guard's lifetime (the CUDA runtime's current device is per thread).
class DeviceGuard {
 public:
  DeviceGuard(int device, const char* op);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = -1;
  int device_ = -1;
};

// The device's stream (created on first use; non-blocking with respect to the legacy default stream).
cudaStream_t stream(int device, const char* op);

std::size_t round_size(std::size_t bytes);  // the size class a request of `bytes` is served from

// Never returns null: on out-of-memory it frees the cache, retries once, then throws.
void* device_alloc(int device, std::size_t bytes, const char* op);
// Returns a block to its free list. `bytes` is what was asked of device_alloc. Never throws.
void device_free(int device, void* ptr, std::size_t bytes) noexcept;

struct MemoryStats {
  std::size_t allocated = 0;      // bytes in blocks handed out (rounded sizes)
  std::size_t max_allocated = 0;  // high-water mark of `allocated` since the last reset
  std::size_t reserved = 0;       // bytes obtained from cudaMalloc, in use or cached
  std::uint64_t malloc_calls = 0; // successful cudaMalloc calls: flat once a workload is warm
};
MemoryStats memory_stats(int device);
void reset_peak_memory_stats(int device);
void empty_cache(int device);  // cudaFree every cached (unused) block of the device

}  // namespace rb::cuda
