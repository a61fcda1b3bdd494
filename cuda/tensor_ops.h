// Ops on DeviceArrays for the device tensor layer (python/rosenblatt/_device.py): comparisons, where,
// casts, views, assignment into views, fill, max / min with indices. As in ops.h: argument checks
// raise ValueError / TypeError naming the op and the shapes before anything is launched, and
// results are fresh C-contiguous arrays on the inputs' device (as_strided and assign excepted).
#pragma once
#include <utility>
#include <vector>

#include "device_array.h"
#include "kernels.h"

namespace rb::cuda {

DeviceArray compare(Compare op, const DeviceArray& a, const DeviceArray& b, const char* name);
DeviceArray where(const DeviceArray& cond, const DeviceArray& a, const DeviceArray& b);
DeviceArray cast(const DeviceArray& x, DType dtype);  // always a fresh C-contiguous array
DeviceArray full(const std::vector<int64_t>& shape, double value, DType dtype, int device);
// dst (a view, possibly strided) = src broadcast to dst's shape, in place on the device.
void assign(const DeviceArray& dst, const DeviceArray& src);
// A view of x's memory: element (i0, i1, ...) at x's element 0 + offset + sum(i_d * strides[d]).
// Refuses views reaching outside the span of memory x itself covers.
DeviceArray as_strided(const DeviceArray& x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                       int64_t offset);
// (values, int64 indices) of the max (or min) over one axis.
std::pair<DeviceArray, DeviceArray> extreme(const DeviceArray& x, int axis, bool keepdims, bool minimum);

}  // namespace rb::cuda
