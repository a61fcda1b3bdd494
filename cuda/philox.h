// Philox-4x32-10, the counter-based random number generator of Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3" (SC 2011). A pure function of a 128-bit counter and
// a 64-bit key: any thread can draw the numbers of any element without state, and the backward pass
// regenerates the forward pass's dropout mask from (seed, offset) instead of storing it.
//
// Written from the paper's description; checked against its known-answer vectors and a NumPy
// implementation in tests/test_cuda_philox.py, on the host, through these same functions.
#pragma once
#include <cuda_runtime.h>  // __host__ __device__ (empty for the host compiler)

#include <cstdint>

namespace rb::cuda {

constexpr uint32_t kPhiloxM0 = 0xD2511F53u;  // round multipliers
constexpr uint32_t kPhiloxM1 = 0xCD9E8D57u;
constexpr uint32_t kPhiloxW0 = 0x9E3779B9u;  // key increments (golden ratio, sqrt(3) - 1)
constexpr uint32_t kPhiloxW1 = 0xBB67AE85u;

struct Philox4 {
  uint32_t v[4];
};

// out = Philox-4x32-10(counter, key): ten rounds, the key bumped between rounds.
__host__ __device__ inline Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    const uint64_t p0 = static_cast<uint64_t>(kPhiloxM0) * c.v[0];
    const uint64_t p1 = static_cast<uint64_t>(kPhiloxM1) * c.v[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
  }
  return c;
}

// The stream of 32-bit numbers for (seed, offset): number j is word j % 4 of
// Philox(counter = (j / 4 low, j / 4 high, offset low, offset high), key = (seed low, seed high)).
// A caller draws a fresh stream per call by advancing `offset` (torch's "philox offset" idea).
__host__ __device__ inline Philox4 philox_block(uint64_t seed, uint64_t offset, uint64_t block) {
  const Philox4 counter{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32),
                         static_cast<uint32_t>(offset), static_cast<uint32_t>(offset >> 32)}};
  return philox4x32_10(counter, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

// Dropout keeps value j when its top 24 bits, as an integer u in [0, 2^24), are >= threshold:
// a uniform u / 2^24 in [0, 1) compared with p exactly, without float rounding.
__host__ __device__ inline bool dropout_keeps(uint32_t bits, uint32_t threshold) { return (bits >> 8) >= threshold; }

// Whether dropout keeps element i when each value covers `plane` consecutive elements (1: dropout;
// H * W: dropout2d), value j = i / plane being number j of the (seed, offset) stream.
__host__ __device__ inline bool dropout_element_keeps(int64_t i, int64_t plane, uint32_t threshold, uint64_t seed,
                                                      uint64_t offset) {
  const int64_t j = i / plane;
  const Philox4 bits = philox_block(seed, offset, static_cast<uint64_t>(j / 4));
  const int64_t k = j % 4;  // selected, not indexed: a run-time index would put bits on the stack
  return dropout_keeps(k == 0 ? bits.v[0] : k == 1 ? bits.v[1] : k == 2 ? bits.v[2] : bits.v[3], threshold);
}

// threshold = ceil(p * 2^24) for p in [0, 1]: p = 0 keeps everything, p = 1 nothing.
inline uint32_t dropout_threshold(double p) {
  const double scaled = p * 16777216.0;
  uint32_t t = static_cast<uint32_t>(scaled);
  if (static_cast<double>(t) < scaled) ++t;
  return t;
}

}  // namespace rb::cuda
