"""python -m rosenblatt.bench conv: convolution, transposed convolution and pooling against PyTorch.

Prints, per case, the forward and forward+backward (gradients of input and weight) times, GFLOP/s,
the implementation that ran (`last_impl`) and the ratio torch_time / our_time (> 1: we are faster),
all measured in this run with the same thread count on both sides (default 2; --threads=N).
--cpu-time times process CPU seconds instead of wall seconds, for a busy shared machine; use it with
--threads=1 (idle OpenMP workers spin between calls and that counts as CPU time of every thread).
Pooling rows give GB/s (bytes read + written) beside the machine's copy bandwidth, and the rate at
which they read their input beside its read-only bandwidth (a pooling call reads 4x or more what it
writes, and its output's stores also read each line first), both probed among the case's own samples;
their inputs rotate through copies larger than the last-level cache, so all are rates from memory.
A last table times RoI max pooling (against our scalar reference: torch has none without torchvision)
and adaptive max pooling (against torch).
"""
from __future__ import annotations

import statistics
import time

import numpy as np

import rosenblatt
from rosenblatt import _C, nn
from rosenblatt.bench.common import geomean, interleaved_medians, median_time, print_table, try_import_torch
from rosenblatt.tensor import Tensor, no_grad

F = nn.functional

# name, batch, in channels, out channels, input size, kernel, stride, padding
CONV_CASES = [
    ("3x3 64->64 56x56 b1", 1, 64, 64, 56, 3, 1, 1),
    ("3x3 128->128 28x28 b8", 8, 128, 128, 28, 3, 1, 1),
    ("3x3 3->64 224x224 b1", 1, 3, 64, 224, 3, 1, 1),
    ("5x5 1->20 28x28 b64", 64, 1, 20, 28, 5, 1, 0),
    ("3x3 32->64 32x32 b32", 32, 32, 64, 32, 3, 1, 1),
    ("1x1 256->64 56x56 b1", 1, 256, 64, 56, 1, 1, 0),
    ("3x3 s2 64->128 56x56 b8", 8, 64, 128, 56, 3, 2, 1),
]
# name, batch, in channels, out channels, input size, kernel, stride, padding
TRANSPOSED_CASES = [("T 4x4 s2 64->32 28->56 b8", 8, 64, 32, 28, 4, 2, 1)]
# name, op, input shape, kernel, stride, padding
POOL_CASES = [
    ("max 2x2 32x64x56x56", "max", (32, 64, 56, 56), 2, 2, 0),
    ("avg 2x2 32x64x56x56", "avg", (32, 64, 56, 56), 2, 2, 0),
    ("max 3x3 s2 p1 8x64x112x112", "max", (8, 64, 112, 112), 3, 2, 1),
]


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f}"


def _ratio(theirs, ours) -> str:
    return f"{theirs / ours:.2f}x" if theirs else "-"


MIN_SAMPLE = 0.02  # seconds per timing sample: short calls are repeated inside a sample
_clock = {"cpu": False}


def _time(fn, repeat):
    """Median wall time of fn, or with --cpu-time the median process CPU time (all threads): on a
    shared, oversubscribed machine the CPU time of a call is far less noisy than its wall time."""
    if not _clock["cpu"]:
        return median_time(fn, repeat, min_time=MIN_SAMPLE)
    fn()
    samples = []
    for _ in range(repeat):
        start = time.process_time()
        fn()
        samples.append(time.process_time() - start)
    return statistics.median(samples)


def _time_pair(ours_fwd, ours_step, torch_fwd, torch_step, repeat):
    """[ours fwd, ours fwd+bwd, torch fwd, torch fwd+bwd] seconds (None without torch); in wall-time
    mode the four alternate sample by sample, so a burst of load hits them alike."""
    fns = [ours_fwd, ours_step] + ([torch_fwd, torch_step] if torch_fwd is not None else [])
    if _clock["cpu"]:
        times = [_time(fn, repeat) for fn in fns]
    else:
        times = interleaved_medians(fns, repeat, min_time=MIN_SAMPLE)
    return times + [None] * (4 - len(times))


def bench_convolutions(torch, repeat, rng):
    header = ["case", "fwd ms", "GFLOP/s", "torch ms", "ratio", "fwd+bwd ms", "GFLOP/s", "torch ms", "ratio",
              "impl fwd / bwd-data / bwd-weight"]
    rows, fwd_ratios, step_ratios = [], [], []
    cases = [(c, False) for c in CONV_CASES] + [(c, True) for c in TRANSPOSED_CASES]
    t_ratios = []
    for (name, n, cin, cout, size, k, s, p), transposed in cases:
        x = rng.standard_normal((n, cin, size, size)).astype(np.float32)
        w_shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        w = (rng.standard_normal(w_shape) / np.sqrt(cin * k * k)).astype(np.float32)
        ours = (lambda a, b: F.conv_transpose2d(a, b, None, s, p)) if transposed else \
               (lambda a, b: F.conv2d(a, b, None, s, p))
        xt, wt = Tensor(x, requires_grad=True), Tensor(w, requires_grad=True)
        with no_grad():
            y = ours(xt, wt)
        grad = rng.standard_normal(y.shape).astype(np.float32)
        out_pixels = y.shape[2] * y.shape[3]
        # Multiply-adds of the direct convolution (for transposed: the conv whose backward-data it is).
        flops = 2 * n * cin * cout * k * k * (size * size if transposed else out_pixels)

        def our_fwd():
            with no_grad():
                ours(xt, wt)

        def our_step():
            xt.grad = wt.grad = None
            ours(xt, wt).backward(grad)

        torch_fwd = torch_step = None
        if torch is not None:
            tf = torch.nn.functional
            tx, tw, tg = (torch.from_numpy(a.copy()) for a in (x, w, grad))
            tx.requires_grad_(True)
            tw.requires_grad_(True)
            theirs = (lambda a, b: tf.conv_transpose2d(a, b, None, s, p)) if transposed else \
                     (lambda a, b: tf.conv2d(a, b, None, s, p))

            def torch_fwd():
                with torch.no_grad():
                    theirs(tx, tw)

            def torch_step():
                tx.grad = tw.grad = None
                theirs(tx, tw).backward(tg)

        f, st, tf_, ts = _time_pair(our_fwd, our_step, torch_fwd, torch_step, repeat)
        impl_op = "conv_transpose2d" if transposed else "conv2d"
        our_fwd()
        impl = _C.last_impl(impl_op)
        our_step()
        impl += " / " + _C.last_impl("conv2d" if transposed else "conv2d_backward_data")
        impl += " / " + _C.last_impl("conv2d_backward_weight")
        rows.append([name, _ms(f), f"{flops / f / 1e9:.1f}", _ms(tf_) if tf_ else "-", _ratio(tf_, f),
                     _ms(st), f"{3 * flops / st / 1e9:.1f}", _ms(ts) if ts else "-", _ratio(ts, st), impl])
        if tf_:
            if transposed:
                t_ratios.append(tf_ / f)
            else:
                fwd_ratios.append(tf_ / f)
                step_ratios.append(ts / st)
    print_table(header, rows)
    if fwd_ratios:
        print(f"convolution geomean vs torch: forward {geomean(fwd_ratios):.2f}x, forward+backward "
              f"{geomean(step_ratios):.2f}x, lowest forward {min(fwd_ratios):.2f}x, lowest fwd+bwd {min(step_ratios):.2f}x")
        print(f"transposed convolution forward vs torch: {geomean(t_ratios):.2f}x")


# The pooling inputs rotate through copies that together far exceed the last-level cache, so every
# call reads its input from memory, as the copy probe does: a single 26 MB input stays largely in a
# 32 MB L3 between calls and then reads faster than memory can deliver.
ROTATION_BYTES = 128 << 20


def _rotating(fn, inputs):
    """A call of fn on the next of `inputs` in turn."""
    turn = {"next": 0}

    def call():
        x = inputs[turn["next"]]
        turn["next"] = (turn["next"] + 1) % len(inputs)
        return fn(x)

    return call


def _bandwidth_probe(probes):
    """A probe of the copy and read bandwidths (64 MiB, one run of each copy method), kept in `probes`."""
    def probe():
        probes.append((_C.copy_bandwidth(64 << 20, 1), _C.read_bandwidth(64 << 20, 1)))
    return probe


def bench_pooling(torch, repeat, rng):
    # The bandwidths swing by a third from minute to minute on a shared machine. Each case's
    # fractions compare its median with the median of bandwidth probes taken in the same rotation
    # as its samples (as the GEMM bench does with the FMA peak); the best probe of the run, the
    # ceiling, is printed beside them.
    best_copy = _C.copy_bandwidth(64 << 20, 7)
    best_read = _C.read_bandwidth(64 << 20, 7)
    header = ["case", "fwd ms", "GB/s", "% of copy", "% of read", "% of best copy", "torch ms", "ratio", "impl"]
    rows = []
    for name, kind, shape, k, s, p in POOL_CASES:
        x = rng.standard_normal(shape).astype(np.float32)
        copies = [x] + [x.copy() for _ in range(max(0, -(-ROTATION_BYTES // x.nbytes) - 1))]
        pool = F.max_pool2d if kind == "max" else F.avg_pool2d
        ours = _rotating(lambda xt: pool(xt, k, s, p), [Tensor(c) for c in copies])
        fns = [ours]
        if torch is not None:
            torch_pool = torch.nn.functional.max_pool2d if kind == "max" else torch.nn.functional.avg_pool2d

            def theirs(xt):
                with torch.no_grad():
                    return torch_pool(xt, k, s, p)

            fns.append(_rotating(theirs, [torch.from_numpy(c) for c in copies]))
        probes = []
        if _clock["cpu"]:
            times = [_time(fn, repeat) for fn in fns]
        else:
            times = interleaved_medians(fns + [_bandwidth_probe(probes)], repeat, min_time=MIN_SAMPLE)
        copy_gbs = statistics.median(c for c, _ in probes) if probes else best_copy
        read_gbs = statistics.median(r for _, r in probes) if probes else best_read
        best_copy = max([best_copy] + [c for c, _ in probes])
        best_read = max([best_read] + [r for _, r in probes])
        f, tf_ = times[0], (times[1] if torch is not None else None)
        out = ours()
        impl = _C.last_impl("max_pool2d" if kind == "max" else "avg_pool2d")
        gbs = (x.nbytes + out.data.nbytes) / f / 1e9
        reads = x.nbytes / f / 1e9  # the input alone, against the read-only ceiling
        rows.append([name, _ms(f), f"{gbs:.1f}", f"{100 * gbs / copy_gbs:.0f}% of {copy_gbs:.1f}",
                     f"{100 * reads / read_gbs:.0f}% of {read_gbs:.1f}", gbs,
                     _ms(tf_) if tf_ else "-", _ratio(tf_, f), impl])
    for row in rows:  # against the best probe of the whole run, known only now
        row[5] = f"{100 * row[5] / best_copy:.0f}%"
    print(f"memory bandwidth probes, {rosenblatt.get_num_threads()} threads, 64 MiB: copy = bytes read + written, "
          "the best of memcpy, a plain loop and streaming stores; read = bytes summed")
    print("'% of copy' and '% of read' compare a case with the median of the probes taken among its own samples "
          f"(GB/s after 'of'); '% of best copy' with the best copy probe of the run, {best_copy:.1f} GB/s "
          f"(best read probe {best_read:.1f} GB/s)")
    print(f"pooling inputs rotate through copies totalling {ROTATION_BYTES >> 20} MiB: each call reads from memory")
    print_table(header, rows)


# RoI max pooling (Fast R-CNN's 7x7 bins; 512 random boxes on two 600x800 images, a 1/16 feature map)
# has no peer in PyTorch without torchvision, which is not installed with it: its row compares the AVX2
# path with our scalar reference (the spec, ROSENBLATT_ISA=scalar) in the same run. Adaptive max pooling
# (SPP-net's 4x4 level on a conv5-like map) is compared with torch.
ROI_CASE = ("roi 7x7 2x256x38x50 512 boxes", (2, 256, 38, 50), 512, 7, 1 / 16)
ADAPTIVE_CASE = ("adaptive max 4x4 32x256x13x13", (32, 256, 13, 13), 4)


def _fast_rcnn_boxes(count, images, rng):
    """(count, 5) boxes (batch index, x1, y1, x2, y2) on 600x800 images, sides log-uniform from 16 pixels."""
    width = np.exp(rng.uniform(np.log(16), np.log(800), count))
    height = np.exp(rng.uniform(np.log(16), np.log(600), count))
    x1, y1 = rng.uniform(0, 800 - width), rng.uniform(0, 600 - height)
    return np.stack([rng.integers(0, images, count), x1, y1, x1 + width, y1 + height], axis=1).astype(np.float32)


def _on_isa(isa, fn):
    def call():
        previous = _C.isa()
        _C.set_isa(isa)
        try:
            fn()
        finally:
            _C.set_isa(previous)
    return call


def _time_all(fns, repeat):
    if _clock["cpu"]:
        return [_time(fn, repeat) for fn in fns]
    return interleaved_medians(fns, repeat, min_time=MIN_SAMPLE)


def bench_bin_pooling(torch, repeat, rng):
    header = ["case", "fwd ms", "peer", "peer ms", "ratio", "impl"]
    rows = []
    name, shape, count, size, scale = ROI_CASE
    x = Tensor(rng.standard_normal(shape).astype(np.float32))
    boxes = _fast_rcnn_boxes(count, shape[0], rng)

    def roi():
        with no_grad():
            F.roi_pool(x, boxes, size, scale)

    fns = [roi] + ([_on_isa("scalar", roi)] if _C.isa() == "avx2" else [])
    times = _time_all(fns, repeat)
    roi()
    peer = times[1] if len(times) > 1 else None
    rows.append([name, _ms(times[0]), "our scalar reference", _ms(peer) if peer else "-", _ratio(peer, times[0]),
                 _C.last_impl("roi_pool")])

    name, shape, size = ADAPTIVE_CASE
    a = rng.standard_normal(shape).astype(np.float32)
    at = Tensor(a)

    def adaptive():  # with indices, as torch's kernel always computes them
        F.adaptive_max_pool2d(at, size, return_indices=True)

    fns = [adaptive]
    if torch is not None:
        ta = torch.from_numpy(a)

        def theirs():
            with torch.no_grad():
                torch.nn.functional.adaptive_max_pool2d(ta, size, return_indices=True)

        fns.append(theirs)
    times = _time_all(fns, repeat)
    adaptive()
    peer = times[1] if len(times) > 1 else None
    rows.append([name, _ms(times[0]), "torch", _ms(peer) if peer else "-", _ratio(peer, times[0]),
                 _C.last_impl("adaptive_max_pool2d")])
    print("RoI and adaptive max pooling: ratio = peer time / our time; RoI pooling's peer is our own scalar "
          "reference (torch has no RoI pooling without torchvision)")
    print_table(header, rows)


def main(argv):
    threads = 2
    repeat = 7
    for arg in argv:
        if arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
        elif arg.startswith("--repeat="):
            repeat = int(arg.split("=", 1)[1])
        elif arg == "--cpu-time":
            _clock["cpu"] = True
    rosenblatt.set_num_threads(threads)
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
    clock = "process CPU time" if _clock["cpu"] else "wall time, samples interleaved,"
    print(f"== conv: {threads} threads, ISA {_C.isa()}, median {clock} of {repeat}; ratio = torch time / our time"
          + ("" if torch else " (torch not importable: no ratios)"))
    rng = np.random.default_rng(0)
    bench_convolutions(torch, repeat, rng)
    print()
    bench_pooling(torch, repeat, rng)
    print()
    bench_bin_pooling(torch, repeat, rng)
