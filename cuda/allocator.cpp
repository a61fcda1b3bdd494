#include "allocator.h"

#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "check.h"
#include "device.h"

namespace rb::cuda {
namespace {

struct DeviceState {
  std::unordered_map<std::size_t, std::vector<void*>> free_blocks;  // size class -> cached blocks
  MemoryStats stats;
  cudaStream_t stream = nullptr;
};

struct State {
  std::mutex mutex;
  std::vector<DeviceState> devices;
};

// Never destroyed: at interpreter exit the CUDA runtime may already be torn down, so cached
// blocks are left to the driver, which frees everything when the process ends.
State& state() {
  static State* s = new State;
  return *s;
}

DeviceState& device_state(State& s, int device) {
  if (static_cast<std::size_t>(device) >= s.devices.size()) s.devices.resize(device + 1);
  return s.devices[device];
}

std::string mib(std::size_t bytes) { return std::to_string(bytes / (1024.0 * 1024.0)) + " MiB"; }

// cudaFree every cached block of one device, after the queued work that may still read them.
// The caller holds the mutex and has made the device current.
void release_cached(DeviceState& d, const char* op) {
  RB_CUDA_CHECK(op, cudaDeviceSynchronize());
  for (auto& [size, blocks] : d.free_blocks) {
    for (void* p : blocks) {
      RB_CUDA_CHECK(op, cudaFree(p));
      d.stats.reserved -= size;
    }
    blocks.clear();
  }
}

}  // namespace

void require_device(int device, const char* op) {
  int count = 0;
  cudaError_t err = cudaGetDeviceCount(&count);
  if (err != cudaSuccess) {
    cudaGetLastError();
    throw std::runtime_error(std::string(op) + ": no CUDA device is available (" + cudaGetErrorString(err) + ")");
  }
  if (count == 0) throw std::runtime_error(std::string(op) + ": no CUDA device is available");
  if (device < 0 || device >= count)
    throw std::runtime_error(std::string(op) + ": no CUDA device " + std::to_string(device) + " (there are " +
                             std::to_string(count) + ")");
}

DeviceGuard::DeviceGuard(int device, const char* op) : device_(device) {
  require_device(device, op);
  RB_CUDA_CHECK(op, cudaGetDevice(&previous_));
  if (previous_ != device) RB_CUDA_CHECK(op, cudaSetDevice(device));
}

DeviceGuard::~DeviceGuard() {
  if (previous_ >= 0 && previous_ != device_) cudaSetDevice(previous_);  // best effort: destructors do not throw
}

cudaStream_t stream(int device, const char* op) {
  require_device(device, op);  // before the state grows an entry for it
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceState& d = device_state(s, device);
  if (d.stream == nullptr) {
    DeviceGuard guard(device, op);
    RB_CUDA_CHECK(op, cudaStreamCreateWithFlags(&d.stream, cudaStreamNonBlocking));
  }
  return d.stream;
}

std::size_t round_size(std::size_t bytes) {
  // Small blocks in 512-byte steps (also the alignment cudaMalloc gives), large ones in 2 MiB steps:
  // few classes, so a freed block is found again, and at most 2 MiB of slack on a large one.
  constexpr std::size_t small_step = 512, large_step = 2 << 20, small_limit = 1 << 20;
  if (bytes == 0) return small_step;  // every array gets a real, distinct pointer
  std::size_t step = bytes <= small_limit ? small_step : large_step;
  return (bytes + step - 1) / step * step;
}

void* device_alloc(int device, std::size_t bytes, const char* op) {
  const std::size_t size = round_size(bytes);
  if (size < bytes) throw std::runtime_error(std::string(op) + ": allocation of " + std::to_string(bytes) + " bytes overflows");
  DeviceGuard guard(device, op);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceState& d = device_state(s, device);

  void* ptr = nullptr;
  auto it = d.free_blocks.find(size);
  if (it != d.free_blocks.end() && !it->second.empty()) {
    ptr = it->second.back();
    it->second.pop_back();
  } else {
    cudaError_t err = cudaMalloc(&ptr, size);
    if (err == cudaErrorMemoryAllocation) {  // give the cache back to the driver and try once more
      cudaGetLastError();
      release_cached(d, op);
      err = cudaMalloc(&ptr, size);
    }
    if (err == cudaErrorMemoryAllocation) {
      cudaGetLastError();
      std::size_t free_bytes = 0, total_bytes = 0;
      cudaMemGetInfo(&free_bytes, &total_bytes);
      cudaGetLastError();
      throw std::runtime_error(std::string(op) + ": out of CUDA memory on device " + std::to_string(device) +
                               ": tried to allocate " + mib(size) + "; rosenblatt holds " + mib(d.stats.allocated) +
                               ", the device has " + mib(free_bytes) + " free of " + mib(total_bytes));
    }
    RB_CUDA_CHECK(op, err);
    d.stats.reserved += size;
    d.stats.malloc_calls += 1;
  }
  d.stats.allocated += size;
  if (d.stats.allocated > d.stats.max_allocated) d.stats.max_allocated = d.stats.allocated;
  return ptr;
}

void device_free(int device, void* ptr, std::size_t bytes) noexcept {
  if (ptr == nullptr) return;
  const std::size_t size = round_size(bytes);
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  DeviceState& d = device_state(s, device);
  d.stats.allocated -= size;
  try {
    d.free_blocks[size].push_back(ptr);
  } catch (...) {  // out of host memory for the list: the block leaks, harmlessly
    d.stats.reserved -= size;
  }
}

// Queries below never touch the device: a device never allocated on reads as all zeros.
MemoryStats memory_stats(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (device < 0 || static_cast<std::size_t>(device) >= s.devices.size()) return MemoryStats{};
  return s.devices[device].stats;
}

void reset_peak_memory_stats(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (device < 0 || static_cast<std::size_t>(device) >= s.devices.size()) return;
  MemoryStats& stats = s.devices[device].stats;
  stats.max_allocated = stats.allocated;
}

void empty_cache(int device) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (device < 0 || static_cast<std::size_t>(device) >= s.devices.size()) return;  // never allocated on it
  DeviceGuard guard(device, "empty_cache");
  release_cached(s.devices[device], "empty_cache");
}

}  // namespace rb::cuda
