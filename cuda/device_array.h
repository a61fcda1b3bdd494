// DeviceArray: an n-dimensional view (shape, strides in elements, dtype) of device memory that is
// either a block of the caching allocator or memory borrowed from another library through DLPack,
// whose deleter runs when the last view of it goes away.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace rb::cuda {

enum class DType { float32, float64, int64, bool_ };  // bool_: one byte, 0 or 1

std::size_t itemsize(DType dtype);
const char* dtype_name(DType dtype);
DType dtype_from_name(const std::string& name, const char* op);  // TypeError for anything else

// One piece of device memory and how to give it back.
struct Storage {
  void* data = nullptr;
  int device = 0;
  bool exported = false;          // a pointer to it left through DLPack or the array interface
  std::function<void()> release;  // returns the block to the allocator, or calls the producer's deleter
  ~Storage();
};

class DeviceArray {
 public:
  using Shape = std::vector<int64_t>;

  DeviceArray(std::shared_ptr<Storage> storage, Shape shape, Shape strides, DType dtype, int64_t offset = 0,
              bool read_only = false);

  // A fresh C-contiguous array from the allocator (contents undefined).
  static DeviceArray empty(const Shape& shape, DType dtype, int device, const char* op);

  void* data() const;  // address of element (0, ..., 0)
  const Shape& shape() const { return shape_; }
  const Shape& strides() const { return strides_; }
  DType dtype() const { return dtype_; }
  int device() const { return storage_->device; }
  int ndim() const { return static_cast<int>(shape_.size()); }
  int64_t offset() const { return offset_; }  // in elements, from storage()->data
  int64_t numel() const;
  bool is_contiguous() const;  // C order (dimensions of size 1 may have any stride)
  bool read_only() const { return read_only_; }
  const std::shared_ptr<Storage>& storage() const { return storage_; }

  DeviceArray transpose(int dim0, int dim1) const;  // a view, as ndarray.swapaxes
  std::string describe() const;                    // "float32[3, 4] on cuda:0", for error messages

 private:
  std::shared_ptr<Storage> storage_;
  Shape shape_, strides_;
  DType dtype_;
  int64_t offset_;  // in elements, from storage->data
  bool read_only_;
};

std::vector<int64_t> contiguous_strides(const std::vector<int64_t>& shape);
// C order; dimensions of size 1 may have any stride.
bool is_c_contiguous(const std::vector<int64_t>& shape, const std::vector<int64_t>& strides);
std::string shape_str(const std::vector<int64_t>& shape);

}  // namespace rb::cuda
