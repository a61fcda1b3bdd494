// Error helpers shared by every kernel family.
//
// Kernels never abort: a bad argument throws, and pybind11 turns
// std::invalid_argument into ValueError and pybind11::type_error into TypeError.
// Messages always start with the op's name and give the shapes involved.
#pragma once
#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>
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

}  // namespace rb
