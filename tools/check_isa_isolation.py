"""Check that AVX2 code stays in *_avx2.cpp objects and AVX-512 code in *_avx512.cpp ones.

The module must import and run on x86-64 CPUs without AVX2 (or without AVX-512), so
every object file not built from a *_avx2.cpp or *_avx512.cpp source must be free of
YMM and ZMM instructions, *_avx2 objects free of ZMM ones, and neither kind may export
weak (COMDAT) code that the linker could pick for other callers.
Usage: python tools/check_isa_isolation.py BUILD_DIR
"""
import pathlib
import subprocess
import sys


def main(build_dir: str) -> int:
    objects = sorted(p for p in pathlib.Path(build_dir).rglob("*.o") if "/_C.dir/" in str(p))
    if not objects:
        print(f"check_isa_isolation: no _C object files under {build_dir}")
        return 1
    problems = []
    for obj in objects:
        wide = "AVX2" if obj.name.endswith("_avx2.cpp.o") else "AVX-512" if obj.name.endswith("_avx512.cpp.o") else ""
        if wide:
            symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True, check=True).stdout
            weak = [line for line in symbols.splitlines() if line[17:18] == "W"]
            if weak:
                problems.append(f"{obj.name}: weak symbols could leak {wide} code: {weak[:3]}")
        if wide == "AVX-512":
            continue
        disassembly = subprocess.run(["objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout
        if "%zmm" in disassembly:
            problems.append(f"{obj.name}: object outside *_avx512 uses ZMM registers")
        if not wide and "%ymm" in disassembly:
            problems.append(f"{obj.name}: baseline object uses YMM registers")
    for problem in problems:
        print("check_isa_isolation:", problem)
    print(f"check_isa_isolation: {len(objects)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build"))
