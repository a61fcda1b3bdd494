// Checks that turn NumPy arguments into raw views for the kernels.
// Every failure raises TypeError or ValueError naming the op, the argument and its shape.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/check.h"

namespace rb {
namespace py = pybind11;

// `obj` must be a numpy.ndarray (anything else is a TypeError; no silent conversion).
py::array require_ndarray(py::handle obj, const char* op, const char* name);

std::vector<int64_t> shape_of(const py::array& a);

// Strides in elements; a stride that is not a whole number of elements is a ValueError.
std::vector<int64_t> element_strides(const py::array& a, const char* op, const char* name);

// "float32" / "float64" / other dtype names, for messages.
std::string dtype_name(const py::array& a);

template <typename T>
bool has_dtype(const py::array& a) {
  return py::dtype::of<T>().is(a.dtype()) || a.dtype().equal(py::dtype::of<T>());
}

// True when two different indices of `a` address the same memory (zero or overlapping strides).
bool has_internal_overlap(const py::array& a);

// True when the byte ranges spanned by the two arrays intersect.
bool may_overlap(const py::array& a, const py::array& b);

// `out` must be writeable, of the given dtype and shape, and must not alias any input.
void check_out(const py::array& out, const py::dtype& dtype, const std::vector<int64_t>& shape,
               const std::vector<const py::array*>& inputs, const char* op,
               const char* name = "out");

// `a` as a C-contiguous array of T: `a` itself when it already is one, else a copy. numpy's copy can fail
// (a broadcast view far larger than memory); that is a MemoryError naming the op, where pybind11's
// ensure() would hand back a null array for the kernel to dereference.
template <typename T>
py::array_t<T, py::array::c_style> c_contiguous(const py::array& a, const char* op, const char* name) {
  auto result = py::array_t<T, py::array::c_style>::ensure(a);
  if (!result)  // (ensure() has cleared numpy's error)
    memory_error(op, ": cannot make a contiguous copy of ", name, " of shape ", shape_str(shape_of(a)), " (",
                 a.nbytes(), " bytes)");
  return result;
}

// A new C-contiguous array of `shape`, its memory recycled from arrays of the same byte size that
// have been freed. For the large per-call results of a training step (an LSTM's saved activations
// are tens of MB): malloc maps each of them fresh and the kernel zeroes it page by page at every
// step, about 4% of a large LSTM's forward + backward. Small arrays come from numpy as usual.
template <typename T>
py::array_t<T> recycled_array(const std::vector<int64_t>& shape);

}  // namespace rb
