"""Timing helpers shared by the benchmark suites."""
from __future__ import annotations

import statistics
import time


def median_time(fn, repeat: int = 7, warmup: int = 2, min_time: float = 0.0) -> float:
    """Median wall time of fn() in seconds, after `warmup` untimed calls.

    With min_time, each sample runs fn enough times to last at least that long
    (for calls too short to time one by one)."""
    return interleaved_medians([fn], repeat, warmup, min_time)[0]


def interleaved_medians(fns, repeat: int = 7, warmup: int = 1, min_time: float = 0.0, settle: float = 0.0) -> list:
    """Median seconds per call of each fn, sampled round by round.

    On a shared machine the load comes and goes over seconds: timing one library after the other
    hands each a different stretch of it, while alternating the samples gives every fn the same
    stretch. Before each sample the machine is left idle for `settle` seconds, because a library's
    worker threads keep spinning after its call returns (OpenBLAS for about 0.1 s) and would take a
    core from whatever runs next. With min_time, a sample repeats its fn until it lasts that long."""
    inners = []
    for fn in fns:
        for _ in range(warmup):
            fn()
        inner = 1
        if min_time > 0:
            start = time.perf_counter()
            fn()
            inner = max(1, int(min_time / max(time.perf_counter() - start, 1e-9)))
        inners.append(inner)
    samples = [[] for _ in fns]
    for _ in range(repeat):
        for fn, inner, bucket in zip(fns, inners, samples):
            if settle > 0:
                time.sleep(settle)
            start = time.perf_counter()
            for _ in range(inner):
                fn()
            bucket.append((time.perf_counter() - start) / inner)
    return [statistics.median(s) for s in samples]


def machine_description() -> str:
    """The CPU the numbers come from, and whether it has AVX-512 (the peers use it where it exists;
    rosenblatt's are AVX2 but for the GEMM's micro-kernel): machines of the same name differ from one
    session to the next."""
    import os
    import platform

    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break  # the first processor is enough
                key, _, value = line.partition(":")
                fields[key.strip()] = value.strip()
    except OSError:
        return f"cpu: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs"
    flags = fields.get("flags", "").split()
    l2 = ""
    try:
        with open("/sys/devices/system/cpu/cpu0/cache/index2/size") as f:
            l2 = f", L2 {f.read().strip()} per core"
    except OSError:
        pass
    return (f"cpu: {fields.get('model name', '?')} (family {fields.get('cpu family', '?')} model "
            f"{fields.get('model', '?')}), {os.cpu_count()} logical CPUs{l2}; AVX2 "
            f"{'yes' if 'avx2' in flags else 'no'}, AVX-512 {'yes' if 'avx512f' in flags else 'no'}")


def peers_description(torch) -> str:
    """The peers' versions, and the instruction set PyTorch's kernels picked on this CPU."""
    import numpy as np

    line = f"peers: numpy {np.__version__}"
    blas_kernels = openblas_kernels()
    if blas_kernels:
        line += f" (its OpenBLAS kernels: {blas_kernels})"
    if torch is not None:
        capability = torch.backends.cpu.get_cpu_capability() if hasattr(torch.backends, "cpu") else "?"
        line += f", torch {torch.__version__} (its CPU kernels: {capability})"
    return line


def openblas_kernels() -> str:
    """The kernel family NumPy's bundled OpenBLAS picked for this CPU ("Haswell": AVX2; "SkylakeX" or
    "Cooperlake": AVX-512), or "" when NumPy does not bundle OpenBLAS. OPENBLAS_CORETYPE overrides it."""
    import ctypes
    import glob
    import os

    import numpy as np

    libs = glob.glob(os.path.join(os.path.dirname(os.path.dirname(np.__file__)), "numpy.libs", "lib*openblas*.so*"))
    for path in libs:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for symbol in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename", "openblas_get_corename"):
            function = getattr(lib, symbol, None)
            if function is not None:
                function.restype = ctypes.c_char_p
                return function().decode(errors="replace")
    return ""


def try_import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def geomean(values) -> float:
    values = [v for v in values if v > 0]
    if not values:
        return float("nan")
    product = 1.0
    for v in values:
        product *= v
    return product ** (1.0 / len(values))


def print_table(header, rows) -> None:
    """Print rows (lists of strings) under header, columns padded to fit."""
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]
    line = "  ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-" * len(line))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)))
