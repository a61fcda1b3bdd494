// The machine's memory-copy bandwidth, the ceiling that memory-bound kernels (pooling) are measured
// against in the benchmarks. A copy can be written several ways and none is fastest everywhere, so
// this times three over the kernels' threads and reports the best: the C library's memcpy, a plain
// loop (ordinary stores, which first read each destination line), and streaming stores (which skip
// that read). Bytes read plus written, as STREAM counts them; the best of several repetitions.
// Beside it, the read-only bandwidth: the ceiling of a kernel that reads much and writes little.
#include <emmintrin.h>  // SSE2 streaming stores: part of every x86-64 CPU

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/bandwidth.h"
#include "common/check.h"
#include "common/large_block.h"
#include "common/parallel.h"

namespace rb {
namespace {

enum class CopyMethod { memcpy_call, plain_loop, streaming_stores };

// dst[0, n) = src[0, n) for one thread's share; n is a multiple of 4 and both are 16-byte aligned.
void copy_share(CopyMethod method, const float* src, float* dst, int64_t n) {
  switch (method) {
    case CopyMethod::memcpy_call:
      std::memcpy(dst, src, size_t(n) * sizeof(float));
      break;
    case CopyMethod::plain_loop:
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
      break;
    case CopyMethod::streaming_stores:
      for (int64_t i = 0; i < n; i += 4) _mm_stream_ps(dst + i, _mm_load_ps(src + i));
      _mm_sfence();
      break;
  }
}

// The sum of src[0, n) (n a multiple of 16, 16-byte aligned): four accumulators, so the adds do not
// wait on each other and the loop runs at the speed of the loads.
float sum_share(const float* src, int64_t n) {
  __m128 acc[4] = {_mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps(), _mm_setzero_ps()};
  for (int64_t i = 0; i < n; i += 16)
    for (int k = 0; k < 4; ++k) acc[k] = _mm_add_ps(acc[k], _mm_load_ps(src + i + 4 * k));
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, _mm_add_ps(_mm_add_ps(acc[0], acc[1]), _mm_add_ps(acc[2], acc[3])));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

// Floats per thread share of about `bytes` split over `team` threads, a multiple of `multiple`.
int64_t share_floats(const char* op, int64_t bytes, int repeats, int team, int64_t multiple) {
  if (bytes < 4096 || repeats < 1)
    throw std::invalid_argument(std::string(op) + ": bytes must be >= 4096 and repeats >= 1, got " +
                                std::to_string(bytes) + " and " + std::to_string(repeats));
  const int64_t share = bytes / int64_t(sizeof(float)) / team / multiple * multiple;
  if (share == 0)
    throw std::invalid_argument(std::string(op) + ": " + std::to_string(bytes) + " bytes cannot be split over " +
                                std::to_string(team) + " threads");
  return share;
}

// A buffer of n floats set to `value`, in the same kind of memory as the kernels' large arrays
// (huge pages, as NumPy's and the recycled blocks): the probes measure the ceiling the kernels see.
class ProbeBuffer {
 public:
  ProbeBuffer(const char* op, size_t n, float value)
      : data_(static_cast<float*>(large_block_alloc(n * sizeof(float)))) {
    if (!data_) memory_error(op, ": no memory for a probe buffer of ", n * sizeof(float), " bytes");
    std::fill(data_, data_ + n, value);  // written once: pages faulted in
  }
  ~ProbeBuffer() { std::free(data_); }
  ProbeBuffer(const ProbeBuffer&) = delete;
  ProbeBuffer& operator=(const ProbeBuffer&) = delete;
  float* data() const { return data_; }

 private:
  float* data_;
};

}  // namespace

double read_bandwidth_gbs(int64_t bytes, int repeats) {
  const int team = available_threads();
  const int64_t share = share_floats("read_bandwidth", bytes, repeats, team, 16);
  const ProbeBuffer src("read_bandwidth", size_t(share * team), 1.0f);
  std::vector<float> sums(static_cast<size_t>(team));
  double best_seconds = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    run_team(team, [&](int tid) { sums[size_t(tid)] = sum_share(src.data() + tid * share, share); });
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
    best_seconds = std::min(best_seconds, took.count());
  }
  volatile float keep = sums[0];  // the sums are used: the reads cannot be optimised away
  (void)keep;
  return double(share * team) * sizeof(float) / best_seconds / 1e9;
}

double copy_bandwidth_gbs(int64_t bytes, int repeats) {
  const int team = available_threads();
  const int64_t n = share_floats("copy_bandwidth", bytes, repeats, team, 4) * team;  // equal shares of vectors
  const ProbeBuffer src("copy_bandwidth", size_t(n), 1.0f), dst("copy_bandwidth", size_t(n), 0.0f);
  double best_seconds = 1e30;
  for (CopyMethod method : {CopyMethod::memcpy_call, CopyMethod::plain_loop, CopyMethod::streaming_stores})
    for (int r = 0; r < repeats; ++r) {
      const auto start = std::chrono::steady_clock::now();
      run_team(team, [&](int tid) {
        const int64_t share = n / team;
        copy_share(method, src.data() + tid * share, dst.data() + tid * share, share);
      });
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      best_seconds = std::min(best_seconds, took.count());
    }
  return 2.0 * double(n) * sizeof(float) / best_seconds / 1e9;
}

}  // namespace rb
