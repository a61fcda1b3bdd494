#include "bindings/arrays.h"

#include "common/large_block.h"

#include <algorithm>
#include <cstdlib>
#include <map>
#include <mutex>

namespace rb {

py::array require_ndarray(py::handle obj, const char* op, const char* name) {
  if (!py::isinstance<py::array>(obj)) {
    throw py::type_error(cat(op, ": ", name, " must be a numpy.ndarray, got ",
                             std::string(py::str(py::type::handle_of(obj).attr("__name__")))));
  }
  return py::reinterpret_borrow<py::array>(obj);
}

std::vector<int64_t> shape_of(const py::array& a) {
  std::vector<int64_t> shape(a.ndim());
  for (py::ssize_t i = 0; i < a.ndim(); ++i) shape[i] = a.shape(i);
  return shape;
}

std::vector<int64_t> element_strides(const py::array& a, const char* op, const char* name) {
  std::vector<int64_t> strides(a.ndim());
  const int64_t item = a.itemsize();
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    if (a.strides(i) % item != 0)
      value_error(op, ": ", name, " of shape ", shape_str(shape_of(a)), " has a stride of ", a.strides(i),
                  " bytes, not a multiple of its item size ", item);
    strides[i] = a.strides(i) / item;
  }
  return strides;
}

std::string dtype_name(const py::array& a) { return std::string(py::str(a.dtype())); }

// [lowest, highest] byte addresses an array can touch.
static void byte_extent(const py::array& a, uintptr_t* lo, uintptr_t* hi) {
  uintptr_t base = reinterpret_cast<uintptr_t>(a.data());
  *lo = *hi = base;
  if (a.size() == 0) return;
  for (py::ssize_t i = 0; i < a.ndim(); ++i) {
    const intptr_t span = intptr_t(a.shape(i) - 1) * a.strides(i);
    if (span < 0) *lo += span; else *hi += span;
  }
  *hi += a.itemsize() - 1;
}

bool has_internal_overlap(const py::array& a) {
  // Distinct elements iff, with dimensions ordered by |stride|, each stride steps past
  // the whole extent of the dimensions below it. An empty array has no elements to share.
  if (a.size() == 0) return false;
  std::vector<std::pair<int64_t, int64_t>> dims;  // (|stride| in bytes, size)
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) > 1) dims.push_back({std::abs(int64_t(a.strides(i))), int64_t(a.shape(i))});
  std::sort(dims.begin(), dims.end());
  int64_t extent = a.itemsize();
  for (const auto& [stride, size] : dims) {
    if (stride < extent) return true;
    extent = stride * size;
  }
  return false;
}

bool may_overlap(const py::array& a, const py::array& b) {
  if (a.size() == 0 || b.size() == 0) return false;
  uintptr_t alo, ahi, blo, bhi;
  byte_extent(a, &alo, &ahi);
  byte_extent(b, &blo, &bhi);
  return alo <= bhi && blo <= ahi;
}

void check_out(const py::array& out, const py::dtype& dtype, const std::vector<int64_t>& shape,
               const std::vector<const py::array*>& inputs, const char* op, const char* name) {
  if (!out.dtype().equal(dtype))
    throw py::type_error(
        cat(op, ": ", name, " has dtype ", dtype_name(out), ", expected ", std::string(py::str(dtype))));
  if (shape_of(out) != shape)
    value_error(op, ": ", name, " has shape ", shape_str(shape_of(out)), ", expected ", shape_str(shape));
  if (!out.writeable()) value_error(op, ": ", name, " of shape ", shape_str(shape), " is read-only");
  if (has_internal_overlap(out))
    value_error(op, ": ", name, " of shape ", shape_str(shape), " has elements that share memory (a zero or ",
                "overlapping stride); pass an array with distinct elements");
  for (const py::array* input : inputs)
    if (may_overlap(out, *input))
      value_error(op, ": ", name, " of shape ", shape_str(shape), " overlaps an input of shape ",
                  shape_str(shape_of(*input)), "; pass a separate array");
}

// ---- recycled large arrays ------------------------------------------------------------------------

namespace {

constexpr size_t kRecycleMinBytes = size_t(1) << 20;   // below this malloc reuses its heap anyway
constexpr size_t kRecycleMaxCached = size_t(1) << 30;  // freed blocks kept at most, in bytes
constexpr size_t kHeaderBytes = 64;                    // a block's size, ahead of its (aligned) data

// Freed blocks by data size. A block leaves the pool while an array owns it and goes back when that
// array is freed (its capsule's destructor), unless the pool is full. Of several blocks of one size
// the last freed is handed out first: the one most likely still in cache. Blocks are huge pages
// (large_block_alloc).
class BlockPool {
 public:
  // A block with room for `bytes` of data at block + kHeaderBytes.
  char* take(size_t bytes) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = free_blocks_.upper_bound(bytes);  // (emplace puts a block last among its size)
      if (it != free_blocks_.begin() && (--it)->first == bytes) {
        char* block = it->second;
        free_blocks_.erase(it);
        cached_bytes_ -= bytes;
        return block;
      }
    }
    if (bytes > SIZE_MAX - kHeaderBytes) throw std::bad_alloc();
    char* block = static_cast<char*>(large_block_alloc(kHeaderBytes + bytes));
    if (!block) throw std::bad_alloc();
    *reinterpret_cast<size_t*>(block) = bytes;
    return block;
  }

  void give_back(char* block) {
    const size_t bytes = *reinterpret_cast<size_t*>(block);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (cached_bytes_ + bytes <= kRecycleMaxCached) {
        free_blocks_.emplace(bytes, block);
        cached_bytes_ += bytes;
        return;
      }
    }
    std::free(block);
  }

 private:
  std::mutex mutex_;
  std::multimap<size_t, char*> free_blocks_;
  size_t cached_bytes_ = 0;
};

BlockPool& block_pool() {
  static BlockPool* pool = new BlockPool();  // never destroyed: arrays may outlive static destruction
  return *pool;
}

}  // namespace

template <typename T>
py::array_t<T> recycled_array(const std::vector<int64_t>& shape) {
  size_t count = 1;
  for (int64_t extent : shape) count *= size_t(extent);
  const size_t bytes = count * sizeof(T);
  if (bytes < kRecycleMinBytes) return py::array_t<T>(shape);
  char* block = block_pool().take(bytes);
  py::capsule owner(block, [](void* p) { block_pool().give_back(static_cast<char*>(p)); });
  return py::array_t<T>(shape, reinterpret_cast<T*>(block + kHeaderBytes), owner);
}

template py::array_t<float> recycled_array<float>(const std::vector<int64_t>&);
template py::array_t<double> recycled_array<double>(const std::vector<int64_t>&);

}  // namespace rb
