// Error helpers shared by every kernel family.
//
// Kernels never abort: a bad argument throws, and pybind11 turns
// std::invalid_argument into ValueError, pybind11::type_error into TypeError and
// std::bad_alloc (OutOfMemory below) into MemoryError.
// Messages always start with the op's name and give the shapes involved.
#pragma once
#include <cstdint>
#include <new>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace rb {

inline std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < shape.size(); ++i) s << (i ? ", " : "") << shape[i];
  if (shape.size() == 1) s << ",";
  s << ")";
  return s.str();
}

template <typename... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream s;
  (s << ... << parts);
  return s.str();
}

template <typename... Parts>
[[noreturn]] void value_error(const Parts&... parts) {
  throw std::invalid_argument(cat(parts...));
}

// A std::bad_alloc that says which op ran out of memory and on what shapes: pybind11 raises any
// std::bad_alloc as MemoryError(what()).
class OutOfMemory : public std::bad_alloc {
 public:
  explicit OutOfMemory(std::string message) : message_(std::move(message)) {}
  const char* what() const noexcept override { return message_.c_str(); }

 private:
  std::string message_;
};

template <typename... Parts>
[[noreturn]] void memory_error(const Parts&... parts) {
  throw OutOfMemory(cat(parts...));
}

// a * b and a + b, or a ValueError starting with `what` when the exact result does not fit in int64:
// an absurd size (a padding of 2**62) must not wrap around into a small one that later checks accept.
inline int64_t checked_mul(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) value_error(what, " (", a, " * ", b, " overflows int64)");
  return r;
}

inline int64_t checked_add(int64_t a, int64_t b, const std::string& what) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) value_error(what, " (", a, " + ", b, " overflows int64)");
  return r;
}

}  // namespace rb
