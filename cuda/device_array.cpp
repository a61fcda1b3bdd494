#include "device_array.h"

#include <pybind11/pybind11.h>

#include <stdexcept>

#include "allocator.h"

namespace rb::cuda {

std::size_t itemsize(DType dtype) {
  switch (dtype) {
    case DType::float32: return 4;
    case DType::bool_: return 1;
    default: return 8;
  }
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::float32: return "float32";
    case DType::float64: return "float64";
    case DType::int64: return "int64";
    case DType::bool_: return "bool";
  }
  return "?";
}

DType dtype_from_name(const std::string& name, const char* op) {
  if (name == "float32") return DType::float32;
  if (name == "float64") return DType::float64;
  if (name == "int64") return DType::int64;
  if (name == "bool") return DType::bool_;
  throw pybind11::type_error(std::string(op) + ": unsupported dtype " + name + " (float32, float64, int64 or bool)");
}

Storage::~Storage() {
  try {
    if (release) release();
  } catch (...) {  // a destructor must not throw; the memory is then lost, not corrupted
  }
}

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> strides(shape.size());
  int64_t step = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    strides[d] = step;
    step *= shape[d] > 0 ? shape[d] : 1;
  }
  return strides;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (std::size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

DeviceArray::DeviceArray(std::shared_ptr<Storage> storage, Shape shape, Shape strides, DType dtype, int64_t offset,
                         bool read_only)
    : storage_(std::move(storage)), shape_(std::move(shape)), strides_(std::move(strides)), dtype_(dtype),
      offset_(offset), read_only_(read_only) {}

DeviceArray DeviceArray::empty(const Shape& shape, DType dtype, int device, const char* op) {
  int64_t n = 1;
  for (int64_t s : shape) {
    if (s < 0) throw pybind11::value_error(std::string(op) + ": negative dimension in shape " + shape_str(shape));
    if (s != 0 && n > INT64_MAX / s)
      throw pybind11::value_error(std::string(op) + ": shape " + shape_str(shape) + " is too large");
    n *= s;
  }
  if (n > static_cast<int64_t>(SIZE_MAX / itemsize(dtype)))
    throw pybind11::value_error(std::string(op) + ": shape " + shape_str(shape) + " is too large");
  const std::size_t bytes = static_cast<std::size_t>(n) * itemsize(dtype);
  auto storage = std::make_shared<Storage>();
  storage->device = device;
  storage->data = device_alloc(device, bytes, op);
  Storage* raw = storage.get();
  storage->release = [raw, bytes]() {
    // Memory that left through DLPack may still be read by another library's stream; wait for
    // the whole device before the block can be handed out again.
    if (raw->exported) {  // best effort, no throwing: this runs in destructors
      int previous = -1;
      cudaGetDevice(&previous);
      cudaSetDevice(raw->device);
      cudaDeviceSynchronize();
      if (previous >= 0 && previous != raw->device) cudaSetDevice(previous);
      cudaGetLastError();
    }
    device_free(raw->device, raw->data, bytes);
  };
  return DeviceArray(std::move(storage), shape, contiguous_strides(shape), dtype);
}

void* DeviceArray::data() const {
  return static_cast<char*>(storage_->data) + offset_ * static_cast<int64_t>(itemsize(dtype_));
}

int64_t DeviceArray::numel() const {
  int64_t n = 1;
  for (int64_t s : shape_) n *= s;
  return n;
}

bool is_c_contiguous(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides) {
  int64_t expected = 1;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expected) return false;
    expected *= shape[d];
  }
  return true;
}

bool DeviceArray::is_contiguous() const { return is_c_contiguous(shape_, strides_); }

DeviceArray DeviceArray::transpose(int dim0, int dim1) const {
  const int n = ndim();
  if (dim0 < 0) dim0 += n;
  if (dim1 < 0) dim1 += n;
  if (dim0 < 0 || dim0 >= n || dim1 < 0 || dim1 >= n)
    throw pybind11::index_error("transpose: dimensions out of range for shape " + shape_str(shape_));
  Shape shape = shape_, strides = strides_;
  std::swap(shape[dim0], shape[dim1]);
  std::swap(strides[dim0], strides[dim1]);
  return DeviceArray(storage_, shape, strides, dtype_, offset_, read_only_);
}

std::string DeviceArray::describe() const {
  return std::string(dtype_name(dtype_)) + shape_str(shape_) + " on cuda:" + std::to_string(device());
}

}  // namespace rb::cuda
