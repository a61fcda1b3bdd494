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

// The AVX-512 micro-kernel of the float32 GEMM (gemm_avx512.cpp) is a part of the AVX2 path, used
// where the CPU and the OS support AVX-512F: the rest of the library is AVX2 throughout.
// ROSENBLATT_GEMM_AVX512=0 (or set_gemm_avx512(false)) keeps the GEMM on its AVX2 kernel, so tests
// can compare the two on one machine.
bool cpu_supports_avx512();
bool gemm_avx512_active();  // supported, enabled, and the AVX2 path active
void set_gemm_avx512(bool enabled);  // enabling it where unsupported is a ValueError

// Each op records the name of the implementation that last ran ("gemm" -> "avx2_packed_6x16").
void record_impl(const char* op, const char* impl);
std::string last_impl(const std::string& op);

}  // namespace rb
