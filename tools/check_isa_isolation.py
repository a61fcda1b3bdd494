"""Check that AVX2 code stays in *_avx2.cpp objects.

The module must import and run on x86-64 CPUs without AVX2, so every object file
not built from a *_avx2.cpp source must be free of YMM instructions, and AVX2
objects must not export weak (COMDAT) code that the linker could pick for
baseline callers. Usage: python tools/check_isa_isolation.py BUILD_DIR
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
        if obj.name.endswith("_avx2.cpp.o"):
            symbols = subprocess.run(["nm", "-C", str(obj)], capture_output=True, text=True, check=True).stdout
            weak = [line for line in symbols.splitlines() if line[17:18] == "W"]
            if weak:
                problems.append(f"{obj.name}: weak symbols could leak AVX2 code: {weak[:3]}")
        else:
            disassembly = subprocess.run(["objdump", "-d", str(obj)], capture_output=True, text=True, check=True).stdout
            if "%ymm" in disassembly:
                problems.append(f"{obj.name}: baseline object uses YMM registers")
    for problem in problems:
        print("check_isa_isolation:", problem)
    print(f"check_isa_isolation: {len(objects)} objects, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "build"))
