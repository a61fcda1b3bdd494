// Ops on DeviceArrays: argument checks (ValueError / TypeError naming the op and shapes), output
// allocation, then the kernel launch on the device's stream. Results are fresh C-contiguous arrays.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <vector>

#include "device_array.h"
#include "kernels.h"

namespace rb::cuda {

// Host <-> device. from_host copies on the device's stream; to_host waits for the copy.
DeviceArray from_host(const pybind11::array& array, int device);
pybind11::array to_host(const DeviceArray& x);

DeviceArray contiguous(const DeviceArray& x);  // x itself when already C-contiguous
DeviceArray elementwise(Elementwise op, const std::vector<DeviceArray>& inputs, const char* name);
DeviceArray sum(const DeviceArray& x, int axis, bool keepdims);
DeviceArray softmax(const DeviceArray& x, bool log);
DeviceArray softmax_backward(const DeviceArray& dy, const DeviceArray& y, bool log);
DeviceArray matmul(const DeviceArray& a, const DeviceArray& b);  // (M,K)@(K,N) or batched (B,M,K)@(B,K,N), float32

// alpha * op(a) @ op(b) + beta * out, as rosenblatt._C.gemm: 2-D float32; out (when given) is
// C-contiguous (M, N) and is written and returned.
DeviceArray gemm(const DeviceArray& a, const DeviceArray& b, bool trans_a, bool trans_b, double alpha, double beta,
                 const std::optional<DeviceArray>& out);

void synchronize(int device);

}  // namespace rb::cuda
