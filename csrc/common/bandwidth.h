// The machine's memory-copy and memory-read bandwidth (bandwidth.cpp explains how they are taken).
#pragma once
#include <cstdint>

namespace rb {

// GB/s (bytes read + written) of the fastest of three ways to copy `bytes` over the kernels'
// threads, best of `repeats` runs each.
double copy_bandwidth_gbs(int64_t bytes, int repeats);

// GB/s of summing `bytes` of floats over the kernels' threads (bytes read), best of `repeats` runs.
double read_bandwidth_gbs(int64_t bytes, int repeats);

}  // namespace rb
