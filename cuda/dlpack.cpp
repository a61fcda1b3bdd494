#include "dlpack.h"

#include <string>
#include <vector>

#include "allocator.h"
#include "check.h"
#include "dlpack_abi.h"
#include "ops.h"

namespace py = pybind11;

namespace rb::cuda {
namespace {

using namespace rb::dlpack;

DLDataType dl_dtype(DType dtype) {
  switch (dtype) {
    case DType::float32: return {kDLFloat, 32, 1};
    case DType::float64: return {kDLFloat, 64, 1};
    case DType::int64: return {kDLInt, 64, 1};
    case DType::bool_: return {kDLBool, 8, 1};
  }
  return {};
}

// What an exported capsule keeps alive: the memory, and the shape and strides it points to.
struct ExportContext {
  std::shared_ptr<Storage> storage;
  std::vector<int64_t> shape, strides;
};

template <class Managed>
Managed* export_managed(const DeviceArray& x) {
  auto* context = new ExportContext{x.storage(), x.shape(), x.strides()};
  auto* managed = new Managed{};
  DLTensor& t = managed->dl_tensor;
  t.data = x.data();
  t.device = {kDLCUDA, x.device()};
  t.ndim = x.ndim();
  t.dtype = dl_dtype(x.dtype());
  t.shape = context->shape.data();
  t.strides = context->strides.data();
  t.byte_offset = 0;
  managed->manager_ctx = context;
  managed->deleter = [](Managed* self) {
    delete static_cast<ExportContext*>(self->manager_ctx);
    delete self;
  };
  return managed;
}

// A capsule that nobody consumed still owns its tensor: call the deleter when it is collected.
template <class Managed>
void capsule_destructor(PyObject* capsule, const char* name) {
  if (!PyCapsule_IsValid(capsule, name)) return;  // renamed "used_...": the consumer owns it now
  PyObject *type, *value, *traceback;
  PyErr_Fetch(&type, &value, &traceback);
  auto* managed = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
  if (managed == nullptr) PyErr_WriteUnraisable(capsule);
  else if (managed->deleter) managed->deleter(managed);
  PyErr_Restore(type, value, traceback);
}
void legacy_capsule_destructor(PyObject* c) { capsule_destructor<DLManagedTensor>(c, kCapsuleName); }
void versioned_capsule_destructor(PyObject* c) { capsule_destructor<DLManagedTensorVersioned>(c, kVersionedCapsuleName); }

cudaStream_t stream_from_protocol(const py::object& value, bool& none) {
  none = false;
  if (value.is_none()) return cudaStreamLegacy;  // the spec's meaning of None for CUDA
  const int64_t v = value.cast<int64_t>();
  if (v == -1) {
    none = true;
    return nullptr;
  }
  if (v == 0) throw py::value_error("__dlpack__: stream 0 is ambiguous for CUDA; pass 1 for the legacy default stream");
  if (v == 1) return cudaStreamLegacy;
  if (v == 2) return cudaStreamPerThread;
  return reinterpret_cast<cudaStream_t>(static_cast<uintptr_t>(v));
}

// Makes `consumer` wait for everything queued so far on the array's stream.
void order_before(int device, cudaStream_t consumer, const char* op) {
  cudaStream_t ours = stream(device, op);
  if (consumer == ours) return;
  DeviceGuard guard(device, op);
  cudaEvent_t event;
  RB_CUDA_CHECK(op, cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
  cudaError_t err = cudaEventRecord(event, ours);
  if (err == cudaSuccess) err = cudaStreamWaitEvent(consumer, event, 0);
  cudaEventDestroy(event);  // released once the wait has been satisfied
  RB_CUDA_CHECK(op, err);
}

void check_import(const DLTensor& t, const char* op) {
  if (t.device.device_type != kDLCUDA)
    throw py::buffer_error(std::string(op) + ": the capsule holds DLPack device type " +
                           std::to_string(t.device.device_type) + ", not CUDA (2)");
  const DLDataType d = t.dtype;
  const bool supported = d.lanes == 1 && ((d.code == kDLFloat && (d.bits == 32 || d.bits == 64)) ||
                                          (d.code == kDLInt && d.bits == 64) || (d.code == kDLBool && d.bits == 8));
  if (!supported)
    throw py::type_error(std::string(op) + ": unsupported DLPack dtype (code " + std::to_string(d.code) + ", " +
                         std::to_string(d.bits) + " bits, " + std::to_string(d.lanes) +
                         " lanes); float32, float64, int64 or bool");
  if (t.ndim < 0 || t.ndim > 64) throw py::value_error(std::string(op) + ": bad ndim " + std::to_string(t.ndim));
  for (int d = 0; d < t.ndim; ++d)
    if (t.shape[d] < 0) throw py::value_error(std::string(op) + ": negative dimension in the DLPack tensor");
}

DType dtype_of(DLDataType d) {
  if (d.code == kDLInt) return DType::int64;
  if (d.code == kDLBool) return DType::bool_;
  return d.bits == 32 ? DType::float32 : DType::float64;
}

// A view of an imported DLTensor; `release` runs the producer's deleter when the last view goes.
DeviceArray import_view(const DLTensor& t, bool read_only, std::function<void()> release) {
  std::vector<int64_t> shape(t.shape, t.shape + t.ndim);
  std::vector<int64_t> strides = t.strides ? std::vector<int64_t>(t.strides, t.strides + t.ndim)
                                           : contiguous_strides(shape);
  auto storage = std::make_shared<Storage>();
  storage->data = static_cast<char*>(t.data) + t.byte_offset;
  storage->device = t.device.device_id;
  storage->release = std::move(release);
  return DeviceArray(std::move(storage), shape, strides, dtype_of(t.dtype), 0, read_only);
}

}  // namespace

py::capsule to_dlpack(const DeviceArray& x, py::object stream, py::object max_version, py::object dl_device,
                      py::object copy) {
  const char* op = "__dlpack__";
  if (!dl_device.is_none()) {
    auto dev = dl_device.cast<py::tuple>();
    if (dev.size() != 2 || dev[0].cast<int>() != kDLCUDA || dev[1].cast<int>() != x.device())
      throw py::buffer_error("__dlpack__: cannot export " + x.describe() + " to device " +
                             std::string(py::str(dl_device)));
  }
  const bool copied = !copy.is_none() && copy.cast<bool>();
  const DeviceArray exported = copied ? elementwise(Elementwise::copy, {x}, op) : x;
  bool no_sync = false;
  cudaStream_t consumer = stream_from_protocol(stream, no_sync);
  if (!no_sync) order_before(x.device(), consumer, op);
  exported.storage()->exported = true;

  bool versioned = false;
  if (!max_version.is_none()) {
    auto v = max_version.cast<py::tuple>();
    versioned = v.size() >= 1 && v[0].cast<int>() >= 1;
  }
  PyObject* capsule;
  if (versioned) {
    auto* managed = export_managed<DLManagedTensorVersioned>(exported);
    managed->version = {kMajorVersion, kMinorVersion};
    managed->flags = (exported.read_only() ? kFlagReadOnly : 0) | (copied ? kFlagIsCopied : 0);
    capsule = PyCapsule_New(managed, kVersionedCapsuleName, versioned_capsule_destructor);
    if (capsule == nullptr) managed->deleter(managed);
  } else {
    if (exported.read_only())
      throw py::buffer_error("__dlpack__: a read-only array needs a versioned capsule (max_version >= (1, 0))");
    auto* managed = export_managed<DLManagedTensor>(exported);
    capsule = PyCapsule_New(managed, kCapsuleName, legacy_capsule_destructor);
    if (capsule == nullptr) managed->deleter(managed);
  }
  if (capsule == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::capsule>(capsule);
}

DeviceArray from_dlpack(py::object producer) {
  const char* op = "from_dlpack";
  if (!py::hasattr(producer, "__dlpack__") || !py::hasattr(producer, "__dlpack_device__"))
    throw py::type_error(std::string(op) + ": " + std::string(py::str(py::type::of(producer).attr("__name__"))) +
                         " does not implement __dlpack__ and __dlpack_device__");
  auto dev = producer.attr("__dlpack_device__")().cast<py::tuple>();
  const int device_type = dev[0].cast<int>(), device_id = dev[1].cast<int>();
  if (device_type != kDLCUDA)
    throw py::value_error(std::string(op) + ": the producer is on DLPack device type " + std::to_string(device_type) +
                          ", not CUDA (2); rosenblatt.from_dlpack takes CPU arrays");
  require_device(device_id, op);
  // Ask the producer to order its pending work before our stream, where we will read the memory.
  const auto our_stream = reinterpret_cast<uintptr_t>(stream(device_id, op));
  py::object capsule;
  try {
    capsule = producer.attr("__dlpack__")(py::arg("stream") = our_stream, py::arg("max_version") = py::make_tuple(1, 0));
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError)) throw;  // a pre-1.0 producer without max_version
    capsule = producer.attr("__dlpack__")(py::arg("stream") = our_stream);
  }

  // Check first, then take ownership (rename) only once nothing can fail: an unconsumed capsule
  // still frees itself, a consumed one is freed by our storage, never both.
  PyObject* c = capsule.ptr();
  if (PyCapsule_IsValid(c, kVersionedCapsuleName)) {
    auto* managed = static_cast<DLManagedTensorVersioned*>(PyCapsule_GetPointer(c, kVersionedCapsuleName));
    if (managed->version.major != kMajorVersion)
      throw py::buffer_error(std::string(op) + ": unsupported DLPack major version " +
                             std::to_string(managed->version.major));
    check_import(managed->dl_tensor, op);
    DeviceArray view = import_view(managed->dl_tensor, (managed->flags & kFlagReadOnly) != 0, [managed]() {
      if (managed->deleter) managed->deleter(managed);
    });
    PyCapsule_SetName(c, kUsedVersionedCapsuleName);
    return view;
  }
  if (PyCapsule_IsValid(c, kCapsuleName)) {
    auto* managed = static_cast<DLManagedTensor*>(PyCapsule_GetPointer(c, kCapsuleName));
    check_import(managed->dl_tensor, op);
    DeviceArray view = import_view(managed->dl_tensor, false, [managed]() {
      if (managed->deleter) managed->deleter(managed);
    });
    PyCapsule_SetName(c, kUsedCapsuleName);
    return view;
  }
  throw py::type_error(std::string(op) + ": __dlpack__ did not return an unused DLPack capsule");
}

py::dict cuda_array_interface(const DeviceArray& x) {
  static const char* typestr[] = {"<f4", "<f8", "<i8", "|b1"};  // indexed by DType
  py::tuple shape(x.ndim());
  for (int d = 0; d < x.ndim(); ++d) shape[d] = x.shape()[d];
  py::object strides = py::none();
  if (!x.is_contiguous()) {
    py::tuple bytes(x.ndim());
    for (int d = 0; d < x.ndim(); ++d) bytes[d] = x.strides()[d] * static_cast<int64_t>(itemsize(x.dtype()));
    strides = bytes;
  }
  x.storage()->exported = true;
  py::dict d;
  d["shape"] = shape;
  d["typestr"] = typestr[static_cast<int>(x.dtype())];
  d["data"] = py::make_tuple(reinterpret_cast<uintptr_t>(x.data()), x.read_only());
  d["strides"] = strides;
  d["version"] = 3;
  // The consumer synchronises with this stream before it reads (never 0 per the specification).
  d["stream"] = reinterpret_cast<uintptr_t>(stream(x.device(), "__cuda_array_interface__"));
  return d;
}

}  // namespace rb::cuda
