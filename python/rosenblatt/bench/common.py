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
