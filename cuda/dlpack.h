// Zero-copy exchange of DeviceArrays: DLPack (legacy and 1.x versioned capsules) both ways, and
// the CUDA array interface (version 3) for export.
#pragma once
#include <pybind11/pybind11.h>

#include "device_array.h"

namespace rb::cuda {

// The __dlpack__ protocol method. `stream` is the consumer's stream (None: the legacy default
// stream, -1: no ordering); our stream's queued work is ordered before it.
pybind11::capsule to_dlpack(const DeviceArray& x, pybind11::object stream, pybind11::object max_version,
                            pybind11::object dl_device, pybind11::object copy);
// A view of a CUDA producer's memory (anything with __dlpack__ / __dlpack_device__), keeping the
// producer's deleter until the last view goes away.
DeviceArray from_dlpack(pybind11::object producer);
pybind11::dict cuda_array_interface(const DeviceArray& x);

}  // namespace rb::cuda
