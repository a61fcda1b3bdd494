// The machine's memory-copy bandwidth, the ceiling that memory-bound kernels (pooling) are measured
// against in the benchmarks. A copy can be written several ways and none is fastest everywhere, so
// this times three over the kernels' threads and reports the best: the C library's memcpy, a plain
// loop (ordinary stores, which first read each destination line), and streaming stores (which skip
// that read). Bytes read plus written, as STREAM counts them; the best of several repetitions.
#include <emmintrin.h>  // SSE2 streaming stores: part of every x86-64 CPU

#include <algorithm>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/bandwidth.h"
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

}  // namespace

double copy_bandwidth_gbs(int64_t bytes, int repeats) {
  if (bytes < 4096 || repeats < 1)
    throw std::invalid_argument("copy_bandwidth: bytes must be >= 4096 and repeats >= 1, got " +
                                std::to_string(bytes) + " and " + std::to_string(repeats));
  const int team = available_threads();
  const int64_t n = bytes / sizeof(float) / (4 * team) * (4 * team);  // equal shares of whole vectors
  if (n == 0)
    throw std::invalid_argument("copy_bandwidth: " + std::to_string(bytes) + " bytes cannot be split over " +
                                std::to_string(team) + " threads");
  std::vector<float> src(size_t(n), 1.0f), dst(size_t(n), 0.0f);   // written once: pages faulted in
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
