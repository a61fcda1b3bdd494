#include "check.h"

#include <stdexcept>
#include <string>

namespace rb::cuda {

void throw_cuda_error(cudaError_t err, const char* op, const char* call) {
  cudaGetLastError();  // clear a non-sticky error so the next call starts clean
  std::string message = std::string(op) + ": " + call + " failed: " + cudaGetErrorString(err) + " (" +
                        cudaGetErrorName(err) + ")";
  if (err == cudaErrorNoDevice || err == cudaErrorInsufficientDriver)
    message += "; no CUDA device is available";
  throw std::runtime_error(message);
}

}  // namespace rb::cuda
