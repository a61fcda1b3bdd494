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

// Two AVX-512 kernels are a part of the AVX2 path, used where the CPU and the OS support AVX-512F:
// the float32 GEMM's micro-kernel (gemm_avx512.cpp) and max pooling 3x3 stride 2 (pool_avx512.cpp).
// The rest of the library is AVX2 throughout. ROSENBLATT_AVX512=0 (or set_avx512(false)) keeps both
// on their AVX2 code, so tests can compare the two on one machine.
bool cpu_supports_avx512();
bool avx512_active();  // supported, enabled, and the AVX2 path active
void set_avx512(bool enabled);  // enabling it where unsupported is a ValueError

// Each op records the name of the implementation that last ran ("gemm" -> "avx2_packed_6x16").
void record_impl(const char* op, const char* impl);
std::string last_impl(const std::string& op);

}  // namespace rb
