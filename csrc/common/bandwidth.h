// The machine's memory-copy bandwidth (bandwidth.cpp explains how it is taken).
#pragma once
#include <cstdint>

namespace rb {

// GB/s (bytes read + written) of the fastest of three ways to copy `bytes` over the kernels'
// threads, best of `repeats` runs each.
double copy_bandwidth_gbs(int64_t bytes, int repeats);

}  // namespace rb
