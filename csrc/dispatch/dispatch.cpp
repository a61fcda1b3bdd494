#include "dispatch/dispatch.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <mutex>

#include "common/check.h"

namespace rb {

bool cpu_supports_avx2() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return supported;
}

static Isa initial_isa() {
  const char* env = std::getenv("ROSENBLATT_ISA");
  if (env && std::string(env) == "scalar") return Isa::scalar;
  return cpu_supports_avx2() ? Isa::avx2 : Isa::scalar;
}

static std::atomic<Isa>& isa_slot() {
  static std::atomic<Isa> slot{initial_isa()};
  return slot;
}

Isa active_isa() { return isa_slot().load(std::memory_order_relaxed); }

void set_isa(const std::string& name) {
  if (name == "scalar") {
    isa_slot() = Isa::scalar;
  } else if (name == "avx2") {
    if (!cpu_supports_avx2()) value_error("set_isa: this CPU has no AVX2/FMA");
    isa_slot() = Isa::avx2;
  } else {
    value_error("set_isa: unknown ISA '", name, "' (expected 'avx2' or 'scalar')");
  }
}

const char* isa_name(Isa isa) { return isa == Isa::avx2 ? "avx2" : "scalar"; }

bool cpu_supports_avx512() {
  // libgcc reports AVX-512F only where the OS saves the ZMM state (XCR0), as it does AVX2's YMM.
  static const bool supported = [] {
    __builtin_cpu_init();
    return cpu_supports_avx2() && __builtin_cpu_supports("avx512f");
  }();
  return supported;
}

static std::atomic<bool>& avx512_slot() {
  static std::atomic<bool> slot{[] {
    const char* env = std::getenv("ROSENBLATT_AVX512");
    return cpu_supports_avx512() && !(env && std::string(env) == "0");
  }()};
  return slot;
}

bool avx512_active() {
  return active_isa() == Isa::avx2 && avx512_slot().load(std::memory_order_relaxed);
}

void set_avx512(bool enabled) {
  if (enabled && !cpu_supports_avx512()) value_error("set_avx512: this CPU has no AVX-512F");
  avx512_slot() = enabled;
}

static std::mutex impl_mutex;
static std::map<std::string, std::string> impl_by_op;

void record_impl(const char* op, const char* impl) {
  std::lock_guard<std::mutex> lock(impl_mutex);
  impl_by_op[op] = impl;
}

std::string last_impl(const std::string& op) {
  std::lock_guard<std::mutex> lock(impl_mutex);
  auto it = impl_by_op.find(op);
  return it == impl_by_op.end() ? std::string() : it->second;
}

}  // namespace rb
