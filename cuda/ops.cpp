#include "ops.h"

#include <algorithm>
#include <optional>
#include <string>

#include "allocator.h"
#include "check.h"
#include "tensor_ops.h"

namespace py = pybind11;

namespace rb::cuda {
namespace {

std::optional<DType> dtype_of(const py::dtype& dt) {
  if (dt.byteorder() == '>') return std::nullopt;  // the device is little-endian
  if (dt.kind() == 'f' && dt.itemsize() == 4) return DType::float32;
  if (dt.kind() == 'f' && dt.itemsize() == 8) return DType::float64;
  if (dt.kind() == 'i' && dt.itemsize() == 8) return DType::int64;
  if (dt.kind() == 'b') return DType::bool_;
  return std::nullopt;
}

void require_same_device(const DeviceArray& a, const DeviceArray& b, const char* op) {
  if (a.device() != b.device())
    throw py::value_error(std::string(op) + ": arrays on different devices: " + a.describe() + " and " + b.describe());
}

void require_float(const DeviceArray& x, const char* op) {
  if (x.dtype() != DType::float32 && x.dtype() != DType::float64)
    throw py::type_error(std::string(op) + ": expected a float32 or float64 array, got " + x.describe());
}

// Dispatches on the dtype: f is called with a typed null pointer to pick the element type.
template <class F>
void dispatch_float(DType dtype, F&& f) {
  if (dtype == DType::float32) f(static_cast<float*>(nullptr));
  else f(static_cast<double*>(nullptr));
}

}  // namespace

DeviceArray from_host(const py::array& array, int device) {
  const auto dtype = dtype_of(array.dtype());
  if (!dtype)
    throw py::type_error("from_numpy: unsupported dtype " + std::string(py::str(array.dtype())) +
                         " (float32, float64, int64 or bool)");
  py::array c = py::array::ensure(array, py::array::c_style);
  std::vector<int64_t> shape(c.shape(), c.shape() + c.ndim());
  DeviceArray out = DeviceArray::empty(shape, *dtype, device, "from_numpy");
  const std::size_t bytes = static_cast<std::size_t>(out.numel()) * itemsize(*dtype);
  if (bytes > 0) {
    DeviceGuard guard(device, "from_numpy");
    // From pageable memory the copy returns once the source has been staged, so `c` may go.
    RB_CUDA_CHECK("from_numpy", cudaMemcpyAsync(out.data(), c.data(), bytes, cudaMemcpyHostToDevice,
                                                stream(device, "from_numpy")));
  }
  return out;
}

py::array to_host(const DeviceArray& x) {
  const DeviceArray c = contiguous(x);
  py::array out(py::dtype(dtype_name(x.dtype())), std::vector<py::ssize_t>(x.shape().begin(), x.shape().end()));
  const std::size_t bytes = static_cast<std::size_t>(x.numel()) * itemsize(x.dtype());
  if (bytes > 0) {
    DeviceGuard guard(x.device(), "to_numpy");
    cudaStream_t s = stream(x.device(), "to_numpy");
    RB_CUDA_CHECK("to_numpy", cudaMemcpyAsync(out.mutable_data(), c.data(), bytes, cudaMemcpyDeviceToHost, s));
    py::gil_scoped_release no_gil;
    RB_CUDA_CHECK("to_numpy", cudaStreamSynchronize(s));
  }
  return out;
}

DeviceArray contiguous(const DeviceArray& x) {
  if (x.is_contiguous()) return x;
  return cast(x, x.dtype());
}

BroadcastLayout broadcast_layout(const std::vector<std::vector<int64_t>>& shapes,
                                 const std::vector<std::vector<int64_t>>& strides, const char* op,
                                 std::vector<int64_t>& shape) {
  const int n_in = static_cast<int>(shapes.size());
  if (n_in < 1 || n_in > kMaxInputs || strides.size() != shapes.size())
    throw py::value_error(std::string(op) + ": expected 1 to " + std::to_string(kMaxInputs) + " inputs");
  // Broadcast shape (NumPy rules), aligned at the innermost dimension.
  int ndim = 0;
  for (const auto& s : shapes) ndim = std::max(ndim, static_cast<int>(s.size()));
  std::string all_shapes;
  for (const auto& s : shapes) all_shapes += (all_shapes.empty() ? "" : " and ") + shape_str(s);
  if (ndim > kMaxDims)
    throw py::value_error(std::string(op) + ": at most " + std::to_string(kMaxDims) + " dimensions, got shapes " +
                          all_shapes);
  shape.assign(ndim, 1);
  for (int k = 0; k < n_in; ++k) {
    if (strides[k].size() != shapes[k].size())
      throw py::value_error(std::string(op) + ": strides do not match shape " + shape_str(shapes[k]));
    const int offset = ndim - static_cast<int>(shapes[k].size());
    for (std::size_t d = 0; d < shapes[k].size(); ++d) {
      int64_t& s = shape[offset + d];
      const int64_t xs = shapes[k][d];
      if (s == 1) s = xs;
      else if (xs != 1 && xs != s)
        throw py::value_error(std::string(op) + ": shapes " + all_shapes + " do not broadcast");
    }
  }

  BroadcastLayout layout;
  layout.ndim = ndim;
  layout.contiguous = true;
  for (int d = 0; d < ndim; ++d) layout.shape[d] = shape[ndim - 1 - d];  // dimension 0 is the innermost
  for (int k = 0; k < n_in; ++k) {
    const int nd = static_cast<int>(shapes[k].size());
    layout.contiguous = layout.contiguous && shapes[k] == shape && is_c_contiguous(shapes[k], strides[k]);
    for (int d = 0; d < nd; ++d) layout.strides[k][nd - 1 - d] = shapes[k][d] == 1 ? 0 : strides[k][d];
  }
  return layout;
}

DeviceArray elementwise(Elementwise op, const std::vector<DeviceArray>& inputs, const char* name) {
  const int n_in = arity(op);
  if (static_cast<int>(inputs.size()) != n_in)
    throw py::value_error(std::string(name) + ": expected " + std::to_string(n_in) + " arrays");
  const DeviceArray& first = inputs[0];
  for (const DeviceArray& x : inputs) {
    require_same_device(first, x, name);
    if (x.dtype() != first.dtype())
      throw py::type_error(std::string(name) + ": dtypes differ: " + first.describe() + " and " + x.describe());
    if (op != Elementwise::copy) require_float(x, name);
  }
  if (op == Elementwise::copy) return cast(first, first.dtype());  // any dtype

  std::vector<std::vector<int64_t>> shapes, strides;
  for (const DeviceArray& x : inputs) {
    shapes.push_back(x.shape());
    strides.push_back(x.strides());
  }
  std::vector<int64_t> shape;
  const BroadcastLayout layout = broadcast_layout(shapes, strides, name, shape);

  DeviceArray out = DeviceArray::empty(shape, first.dtype(), first.device(), name);
  DeviceGuard guard(first.device(), name);
  cudaStream_t s = stream(first.device(), name);
  const int64_t n = out.numel();
  switch (first.dtype()) {
    case DType::float32: {
      const float* in[kMaxInputs] = {};
      for (int k = 0; k < n_in; ++k) in[k] = static_cast<const float*>(inputs[k].data());
      launch_elementwise<float>(op, layout, in, static_cast<float*>(out.data()), n, s);
      break;
    }
    case DType::float64: {
      const double* in[kMaxInputs] = {};
      for (int k = 0; k < n_in; ++k) in[k] = static_cast<const double*>(inputs[k].data());
      launch_elementwise<double>(op, layout, in, static_cast<double*>(out.data()), n, s);
      break;
    }
    default:
      break;  // not reached: require_float above
  }
  return out;
}

DeviceArray sum(const DeviceArray& x, int axis, bool keepdims) {
  require_float(x, "sum");
  if (x.ndim() == 0 || axis < -x.ndim() || axis >= x.ndim())
    throw py::value_error("sum: axis " + std::to_string(axis) + " is out of range for shape " + shape_str(x.shape()));
  if (axis < 0) axis += x.ndim();
  const DeviceArray c = contiguous(x);
  int64_t outer = 1, inner = 1;
  for (int d = 0; d < axis; ++d) outer *= x.shape()[d];
  for (int d = axis + 1; d < x.ndim(); ++d) inner *= x.shape()[d];
  std::vector<int64_t> shape = x.shape();
  if (keepdims) shape[axis] = 1;
  else shape.erase(shape.begin() + axis);
  DeviceArray out = DeviceArray::empty(shape, x.dtype(), x.device(), "sum");
  DeviceGuard guard(x.device(), "sum");
  cudaStream_t s = stream(x.device(), "sum");
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    sum_axis<T>(static_cast<const T*>(c.data()), static_cast<T*>(out.data()), outer, x.shape()[axis], inner, s);
  });
  return out;
}

DeviceArray softmax(const DeviceArray& x, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  require_float(x, name);
  if (x.ndim() == 0) throw py::value_error(std::string(name) + ": expected at least one dimension, got shape []");
  const DeviceArray c = contiguous(x);
  const int64_t n = x.shape().back(), rows = n == 0 ? 0 : x.numel() / n;
  DeviceArray out = DeviceArray::empty(x.shape(), x.dtype(), x.device(), name);
  DeviceGuard guard(x.device(), name);
  cudaStream_t s = stream(x.device(), name);
  dispatch_float(x.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    softmax_rows<T>(static_cast<const T*>(c.data()), static_cast<T*>(out.data()), rows, n, log, s);
  });
  return out;
}

DeviceArray softmax_backward(const DeviceArray& dy, const DeviceArray& y, bool log) {
  const char* name = log ? "log_softmax_backward" : "softmax_backward";
  require_float(y, name);
  require_same_device(dy, y, name);
  if (dy.shape() != y.shape() || dy.dtype() != y.dtype() || y.ndim() == 0)
    throw py::value_error(std::string(name) + ": gradient " + dy.describe() + " does not match output " + y.describe());
  const DeviceArray dyc = contiguous(dy), yc = contiguous(y);
  const int64_t n = y.shape().back(), rows = n == 0 ? 0 : y.numel() / n;
  DeviceArray out = DeviceArray::empty(y.shape(), y.dtype(), y.device(), name);
  DeviceGuard guard(y.device(), name);
  cudaStream_t s = stream(y.device(), name);
  dispatch_float(y.dtype(), [&](auto* type) {
    using T = std::remove_pointer_t<decltype(type)>;
    softmax_rows_backward<T>(static_cast<const T*>(dyc.data()), static_cast<const T*>(yc.data()),
                             static_cast<T*>(out.data()), rows, n, log, s);
  });
  return out;
}

namespace {

// How the GEMM can read a rows x cols matrix with these strides in place: row-major with leading
// dimension ld (trans = false) or column-major (trans = true). Anything else is copied first.
struct MatrixLayout {
  bool trans;
  int64_t ld;
};

std::optional<MatrixLayout> matrix_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
  if ((col_stride == 1 || cols == 1) && (rows == 1 || row_stride >= cols))
    return MatrixLayout{false, rows == 1 ? cols : row_stride};
  if ((row_stride == 1 || rows == 1) && (cols == 1 || col_stride >= rows))
    return MatrixLayout{true, cols == 1 ? rows : col_stride};
  return std::nullopt;
}

// The operand as (batch, rows, cols) with a layout the GEMM reads; copies when it must.
struct Operand {
  DeviceArray array;
  MatrixLayout layout;
  int64_t batch_stride;
};

Operand gemm_operand(const DeviceArray& x) {
  const int r = x.ndim() - 2;
  const int64_t rows = x.shape()[r], cols = x.shape()[r + 1];
  auto layout = matrix_layout(rows, cols, x.strides()[r], x.strides()[r + 1]);
  if (layout) {
    const int64_t batch_stride = x.ndim() == 3 && x.shape()[0] != 1 ? x.strides()[0] : 0;
    return Operand{x, *layout, batch_stride};
  }
  DeviceArray c = contiguous(x);
  return Operand{c, MatrixLayout{false, cols}, x.ndim() == 3 && x.shape()[0] != 1 ? rows * cols : 0};
}

}  // namespace

DeviceArray matmul(const DeviceArray& a, const DeviceArray& b) {
  require_same_device(a, b, "matmul");
  const bool shapes_ok = (a.ndim() == 2 || a.ndim() == 3) && a.ndim() == b.ndim() &&
                         a.shape()[a.ndim() - 1] == b.shape()[b.ndim() - 2] &&
                         (a.ndim() == 2 || a.shape()[0] == b.shape()[0] || a.shape()[0] == 1 || b.shape()[0] == 1);
  if (!shapes_ok)
    throw py::value_error("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                          " do not multiply ((M, K) @ (K, N), or batched (B, M, K) @ (B, K, N))");
  if (a.dtype() != DType::float32 || b.dtype() != DType::float32)
    throw py::type_error("matmul: the CUDA GEMM is float32 only, got " + a.describe() + " and " + b.describe());
  const bool batched = a.ndim() == 3;
  const Operand oa = gemm_operand(a), ob = gemm_operand(b);
  GemmProblem p;
  p.m = a.shape()[a.ndim() - 2];
  p.k = a.shape()[a.ndim() - 1];
  p.n = b.shape()[b.ndim() - 1];
  p.batch = batched ? std::max(a.shape()[0], b.shape()[0]) : 1;
  std::vector<int64_t> shape = batched ? std::vector<int64_t>{p.batch, p.m, p.n} : std::vector<int64_t>{p.m, p.n};
  DeviceArray out = DeviceArray::empty(shape, DType::float32, a.device(), "matmul");
  p.a = static_cast<const float*>(oa.array.data());
  p.b = static_cast<const float*>(ob.array.data());
  p.c = static_cast<float*>(out.data());
  p.trans_a = oa.layout.trans;
  p.trans_b = ob.layout.trans;
  p.lda = oa.layout.ld;
  p.ldb = ob.layout.ld;
  p.ldc = p.n;
  p.stride_a = oa.batch_stride;
  p.stride_b = ob.batch_stride;
  p.stride_c = p.m * p.n;
  DeviceGuard guard(a.device(), "matmul");
  sgemm(p, stream(a.device(), "matmul"));
  return out;
}

DeviceArray gemm(const DeviceArray& a, const DeviceArray& b, bool trans_a, bool trans_b, double alpha, double beta,
                 const std::optional<DeviceArray>& out) {
  require_same_device(a, b, "gemm");
  if (a.ndim() != 2 || b.ndim() != 2)
    throw py::value_error("gemm: expected 2-D arrays, got shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()));
  const int64_t m = a.shape()[trans_a ? 1 : 0], k = a.shape()[trans_a ? 0 : 1];
  const int64_t kb = b.shape()[trans_b ? 1 : 0], n = b.shape()[trans_b ? 0 : 1];
  if (k != kb)
    throw py::value_error("gemm: op(a) of shape " + shape_str({m, k}) + " and op(b) of shape " + shape_str({kb, n}) +
                          " do not multiply (a " + shape_str(a.shape()) + ", b " + shape_str(b.shape()) + ")");
  if (a.dtype() != DType::float32 || b.dtype() != DType::float32)
    throw py::type_error("gemm: the CUDA GEMM is float32 only, got " + a.describe() + " and " + b.describe());
  DeviceArray c = out ? *out : DeviceArray::empty({m, n}, DType::float32, a.device(), "gemm");
  if (out) {
    require_same_device(a, c, "gemm");
    if (c.shape() != std::vector<int64_t>{m, n} || c.dtype() != DType::float32 || !c.is_contiguous() || c.read_only())
      throw py::value_error("gemm: out must be a writable C-contiguous float32 array of shape " + shape_str({m, n}) +
                            ", got " + c.describe());
    if (c.storage() == a.storage() || c.storage() == b.storage())
      throw py::value_error("gemm: out shares memory with an operand");
  } else {
    beta = 0.0;  // nothing to accumulate into
  }
  // Each operand as stored (row- or column-major); a stored transposition flips the requested one.
  const Operand oa = gemm_operand(a), ob = gemm_operand(b);
  GemmProblem p;
  p.m = m;
  p.n = n;
  p.k = k;
  p.a = static_cast<const float*>(oa.array.data());
  p.b = static_cast<const float*>(ob.array.data());
  p.c = static_cast<float*>(c.data());
  p.trans_a = oa.layout.trans != trans_a;
  p.trans_b = ob.layout.trans != trans_b;
  p.lda = oa.layout.ld;
  p.ldb = ob.layout.ld;
  p.ldc = n;
  p.alpha = static_cast<float>(alpha);
  p.beta = static_cast<float>(beta);
  DeviceGuard guard(a.device(), "gemm");
  sgemm(p, stream(a.device(), "gemm"));
  return c;
}

void synchronize(int device) {
  DeviceGuard guard(device, "synchronize");
  cudaStream_t s = stream(device, "synchronize");
  py::gil_scoped_release no_gil;
  RB_CUDA_CHECK("synchronize", cudaStreamSynchronize(s));
}

}  // namespace rb::cuda
