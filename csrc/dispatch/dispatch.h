// Run-time choice of instruction set, and a record of which implementation ran.
//
// The ISA is read from cpuid once; ROSENBLATT_ISA=scalar (or set_isa("scalar"))
// forces the reference kernels everywhere so both paths are testable on one machine.
#pragma once
#include <string>

namespace rb {

enum class Isa { scalar, avx2 };

bool cpu_supports_avx2();    // AVX2 and FMA both present
Isa active_isa();            // what kernels should use now
void set_isa(const std::string& name);  // "avx2" (only if supported) or "scalar"
const char* isa_name(Isa isa);

// Each op records the name of the implementation that last ran ("gemm" -> "avx2_packed_6x16").
void record_impl(const char* op, const char* impl);
std::string last_impl(const std::string& op);

}  // namespace rb
