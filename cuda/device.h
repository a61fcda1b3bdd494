// Device queries that never abort: a missing driver or GPU reads as zero devices.
#pragma once
#include <string>

namespace rb::cuda {

int device_count();                  // 0 when there is no driver or no device
std::string device_name(int device); // throws std::runtime_error on a bad index or CUDA error
std::string runtime_version();       // "13.0"

}  // namespace rb::cuda
