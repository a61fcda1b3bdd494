#include "tensor_ops.h"

#include <pybind11/pybind11.h>

#include <algorithm>
#include <string>
#include <type_traits>

#include "allocator.h"
#include "check.h"
#include "ops.h"

namespace py = pybind11;

namespace rb::cuda {
namespace {

// Calls f with a typed null pointer for the element type of `dtype` (bool is uint8_t).
template <class F>
void dispatch_any(DType dtype, F&& f) {
  switch (dtype) {
    case DType::float32: return f(static_cast<float*>(nullptr));
    case DType::float64: return f(static_cast<double*>(nullptr));
    case DType::int64: return f(static_cast<int64_t*>(nullptr));
    case DType::bool_: return f(static_cast<uint8_t*>(nullptr));
  }
}

void require_same_device(const DeviceArray& a, const DeviceArray& b, const char* op) {
  if (a.device() != b.device())
    throw py::value_error(std::string(op) + ": arrays on different devices: " + a.describe() + " and " + b.describe());
}

BroadcastLayout layout_of(const std::vector<const DeviceArray*>& inputs, const char* op, std::vector<int64_t>& shape) {
  std::vector<std::vector<int64_t>> shapes, strides;
  for (const DeviceArray* x : inputs) {
    shapes.push_back(x->shape());
    strides.push_back(x->strides());
  }
  return broadcast_layout(shapes, strides, op, shape);
}

// The lowest and highest element offsets (from element 0) a view reaches; {0, -1} when empty.
// In 128 bits, so that no shape and strides a caller passes can wrap around and pass the checks.
std::pair<__int128, __int128> span(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  __int128 lo = 0, hi = 0;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] == 0) return {0, -1};
    const __int128 reach = static_cast<__int128>(shape[d] - 1) * strides[d];
    if (reach < 0) lo += reach;
    else hi += reach;
  }
  return {lo, hi};
}

}  // namespace

DeviceArray compare(Compare op, const DeviceArray& a, const DeviceArray& b, const char* name) {
  require_same_device(a, b, name);
  if (a.dtype() != b.dtype())
    throw py::type_error(std::string(name) + ": dtypes differ: " + a.describe() + " and " + b.describe());
  std::vector<int64_t> shape;
  const BroadcastLayout layout = layout_of({&a, &b}, name, shape);
  DeviceArray out = DeviceArray::empty(shape, DType::bool_, a.device(), name);
  DeviceGuard guard(a.device(), name);
  cudaStream_t s = stream(a.device(), name);
  dispatch_any(a.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    launch_compare<T>(op, layout, static_cast<const T*>(a.data()), static_cast<const T*>(b.data()),
                      static_cast<uint8_t*>(out.data()), out.numel(), s);
  });
  return out;
}

DeviceArray where(const DeviceArray& cond, const DeviceArray& a, const DeviceArray& b) {
  require_same_device(cond, a, "where");
  require_same_device(a, b, "where");
  if (cond.dtype() != DType::bool_)
    throw py::type_error("where: the condition must be a bool array, got " + cond.describe());
  if (a.dtype() != b.dtype())
    throw py::type_error("where: dtypes differ: " + a.describe() + " and " + b.describe());
  std::vector<int64_t> shape;
  const BroadcastLayout layout = layout_of({&cond, &a, &b}, "where", shape);
  DeviceArray out = DeviceArray::empty(shape, a.dtype(), a.device(), "where");
  DeviceGuard guard(a.device(), "where");
  cudaStream_t s = stream(a.device(), "where");
  dispatch_any(a.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    launch_where<T>(layout, static_cast<const uint8_t*>(cond.data()), static_cast<const T*>(a.data()),
                    static_cast<const T*>(b.data()), static_cast<T*>(out.data()), out.numel(), s);
  });
  return out;
}

DeviceArray cast(const DeviceArray& x, DType dtype) {
  std::vector<int64_t> shape;
  const BroadcastLayout layout = layout_of({&x}, "astype", shape);
  DeviceArray out = DeviceArray::empty(shape, dtype, x.device(), "astype");
  DeviceGuard guard(x.device(), "astype");
  cudaStream_t s = stream(x.device(), "astype");
  dispatch_any(x.dtype(), [&](auto* from) {
    using From = std::remove_pointer_t<decltype(from)>;
    dispatch_any(dtype, [&](auto* to) {
      using To = std::remove_pointer_t<decltype(to)>;
      launch_cast<From, To>(layout, static_cast<const From*>(x.data()), static_cast<To*>(out.data()), out.numel(), s);
    });
  });
  return out;
}

DeviceArray full(const std::vector<int64_t>& shape, double value, DType dtype, int device) {
  DeviceArray out = DeviceArray::empty(shape, dtype, device, "full");
  DeviceGuard guard(device, "full");
  cudaStream_t s = stream(device, "full");
  dispatch_any(dtype, [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    T v;
    if constexpr (std::is_same_v<T, uint8_t>) v = value != 0.0 ? 1 : 0;
    else v = static_cast<T>(value);
    launch_fill<T>(static_cast<T*>(out.data()), v, out.numel(), s);
  });
  return out;
}

void assign(const DeviceArray& dst, const DeviceArray& src) {
  require_same_device(dst, src, "assign");
  if (dst.read_only()) throw py::value_error("assign: the destination " + dst.describe() + " is read-only");
  if (dst.dtype() != src.dtype())
    throw py::type_error("assign: dtypes differ: destination " + dst.describe() + ", source " + src.describe());
  for (int d = 0; d < dst.ndim(); ++d)
    if (dst.shape()[d] > 1 && dst.strides()[d] == 0)
      throw py::value_error("assign: the destination " + dst.describe() + " is a broadcast view (stride 0)");
  std::vector<int64_t> shape;
  // Reading and writing one storage at once could read elements already overwritten: copy first.
  const DeviceArray source = src.storage() == dst.storage() ? cast(src, src.dtype()) : src;
  const BroadcastLayout layout = layout_of({&dst, &source}, "assign", shape);
  if (shape != dst.shape())
    throw py::value_error("assign: cannot assign shape " + shape_str(src.shape()) + " to shape " +
                          shape_str(dst.shape()));
  DeviceGuard guard(dst.device(), "assign");
  cudaStream_t s = stream(dst.device(), "assign");
  const int64_t n = dst.numel();
  switch (itemsize(dst.dtype())) {
    case 1:
      launch_assign<uint8_t>(layout, static_cast<uint8_t*>(dst.data()), static_cast<const uint8_t*>(source.data()), n, s);
      break;
    case 4:
      launch_assign<uint32_t>(layout, static_cast<uint32_t*>(dst.data()), static_cast<const uint32_t*>(source.data()),
                              n, s);
      break;
    default:
      launch_assign<uint64_t>(layout, static_cast<uint64_t*>(dst.data()), static_cast<const uint64_t*>(source.data()),
                              n, s);
  }
}

DeviceArray as_strided(const DeviceArray& x, const std::vector<int64_t>& shape, const std::vector<int64_t>& strides,
                       int64_t offset) {
  if (shape.size() != strides.size() || shape.size() > 64)
    throw py::value_error("as_strided: shape " + shape_str(shape) + " and strides " + shape_str(strides) +
                          " differ in length");
  __int128 count = 1;
  for (int64_t n : shape) {
    if (n < 0) throw py::value_error("as_strided: negative dimension in shape " + shape_str(shape));
    count = count * n > (__int128{1} << 62) ? (__int128{1} << 62) + 1 : count * n;
  }
  if (count > (__int128{1} << 62)) throw py::value_error("as_strided: shape " + shape_str(shape) + " is too large");
  const auto [lo, hi] = span(shape, strides);
  if (lo <= hi) {  // the view reads something: it must stay inside the memory x covers
    const auto [x_lo, x_hi] = span(x.shape(), x.strides());
    if (x_lo > x_hi || offset + lo < x_lo || offset + hi > x_hi)
      throw py::value_error("as_strided: a view of shape " + shape_str(shape) + ", strides " + shape_str(strides) +
                            " at offset " + std::to_string(offset) + " reaches outside " + x.describe());
  } else {
    offset = 0;  // an empty view reads nothing; keep its pointer inside x
  }
  return DeviceArray(x.storage(), shape, strides, x.dtype(), x.offset() + offset, x.read_only());
}

std::pair<DeviceArray, DeviceArray> extreme(const DeviceArray& x, int axis, bool keepdims, bool minimum) {
  const char* name = minimum ? "min" : "max";
  if (x.dtype() != DType::float32 && x.dtype() != DType::float64)
    throw py::type_error(std::string(name) + ": expected a float32 or float64 array, got " + x.describe());
  if (x.ndim() == 0 || axis < -x.ndim() || axis >= x.ndim())
    throw py::value_error(std::string(name) + ": axis " + std::to_string(axis) + " is out of range for shape " +
                          shape_str(x.shape()));
  if (axis < 0) axis += x.ndim();
  const int64_t n = x.shape()[axis];
  if (n == 0)
    throw py::value_error(std::string(name) + ": cannot reduce over axis " + std::to_string(axis) +
                          " of size 0 (shape " + shape_str(x.shape()) + ")");
  const DeviceArray c = contiguous(x);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape()[d];
  for (int d = axis + 1; d < x.ndim(); ++d) inner *= x.shape()[d];
  std::vector<int64_t> shape = x.shape();
  if (keepdims) shape[axis] = 1;
  else shape.erase(shape.begin() + axis);
  DeviceArray values = DeviceArray::empty(shape, x.dtype(), x.device(), name);
  DeviceArray indices = DeviceArray::empty(shape, DType::int64, x.device(), name);
  DeviceGuard guard(x.device(), name);
  cudaStream_t s = stream(x.device(), name);
  if (x.dtype() == DType::float32)
    extreme_axis<float>(static_cast<const float*>(c.data()), static_cast<float*>(values.data()),
                        static_cast<int64_t*>(indices.data()), outer, n, inner, minimum, s);
  else
    extreme_axis<double>(static_cast<const double*>(c.data()), static_cast<double*>(values.data()),
                         static_cast<int64_t*>(indices.data()), outer, n, inner, minimum, s);
  return {values, indices};
}

}  // namespace rb::cuda
