"""Compare two builds of rosenblatt's kernels in one process, call by call (a developer's tool).

    python bench/ab_builds.py OLD_PACKAGE_DIR NEW_PACKAGE_DIR [--threads=2] [--seconds=6] CASE...

Each PACKAGE_DIR is a directory holding a built `rosenblatt/_C*.so` (say a copy of `python/` taken
before a change). CASE is `gemm:M,N,K` (`gemm_ta:M,N,K`: A stored transposed, (K, M)),
`lstm:T,B,I,H` / `gru:T,B,I,H` (the whole-sequence forward and backward kernels),
`maxpool:N,C,H,W,k,s,p` / `avgpool:N,C,H,W,k,s,p` (forward, max without indices, its inputs rotating
through copies larger than the last-level cache, as in the conv benchmark, so each call reads from
memory), `tconv:N,C,H,W,O,k,s,p` (transposed convolution forward, weight (C, O, k, k)),
`conv:N,C,H,W,O,k,s,p` (convolution forward, backward-data and backward-weight) or
`batchnorm:N,C,H,W` (training forward and backward). Both extension modules are loaded side by side
and their samples alternate (old, new, old, new, ... about 20 ms each), so each pair of samples sees
the same load on the machine. On a shared host the speed of a CPU drifts by tens of percent over
seconds to minutes: separate runs of each build (or separate processes) then measure the drift more
than the change.

Prints, per case, each build's median speed and the median of the paired ratios old time / new time
(> 1: the new build is faster) with its quartiles.
"""
from __future__ import annotations

import glob
import importlib.util
import statistics
import sys
import time

import numpy as np


def load_build(package_dir: str, tag: str):
    paths = glob.glob(f"{package_dir}/rosenblatt/_C*.so")
    if not paths:
        raise SystemExit(f"ab_builds: no rosenblatt/_C*.so under {package_dir}")
    spec = importlib.util.spec_from_file_location(f"rosenblatt_{tag}._C", paths[0])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def gemm_case(dims, rng, trans_a=False):
    M, N, K = dims
    a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    c = np.empty((M, N), np.float32)
    return 2.0 * M * N * K, "GFLOP/s", lambda C: C.gemm(a, b, trans_a, False, 1.0, 0.0, c)


def recurrent_case(cell, dims, rng):
    T, B, I, H = dims
    G = 4 if cell == "lstm" else 3

    def draw(*shape):
        return (0.1 * rng.standard_normal(shape)).astype(np.float32)

    x, h0, c0 = draw(T, B, I), draw(B, H), draw(B, H) if cell == "lstm" else None
    w_ih, w_hh, b_ih, b_hh = draw(G * H, I), draw(G * H, H), draw(G * H), draw(G * H)
    dy, dh_n, dc_n = draw(T, B, H), draw(B, H), draw(B, H) if cell == "lstm" else None

    def forward_backward(C):
        _, _, _, saved = C.rnn_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, False, True, None)
        C.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, saved, dy, dh_n, dc_n, 0.0, None)

    return 3 * 2.0 * T * B * G * H * (I + H), "GFLOP/s", forward_backward  # forward + twice that in backward


def pool_case(kind, dims, rng):
    N, C, H, W, k, s, p = dims
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    copies = [x] + [x.copy() for _ in range(max(0, -(-(128 << 20) // x.nbytes) - 1))]
    turn = {"next": 0}
    out_bytes = N * C * ((H + 2 * p - k) // s + 1) * ((W + 2 * p - k) // s + 1) * 4

    def forward(C_):
        if kind == "maxpool":
            C_.max_pool2d_forward(copies[turn["next"]], (k, k), (s, s), (p, p), (1, 1), False, False)
        else:
            C_.avg_pool2d_forward(copies[turn["next"]], (k, k), (s, s), (p, p), False, True, None)
        turn["next"] = (turn["next"] + 1) % len(copies)

    return float(x.nbytes + out_bytes), "GB/s", forward  # bytes read + written


def transposed_conv_case(dims, rng):
    N, C, H, W, O, k, s, p = dims
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((C, O, k, k), dtype=np.float32)
    return 2.0 * N * C * H * W * O * k * k, "GFLOP/s", lambda C_: C_.conv_transpose2d_forward(
        x, w, None, (s, s), (p, p), (0, 0), (1, 1), 1)


def conv_case(dims, rng):
    N, C, H, W, O, k, s, p = dims
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((O, C, k, k), dtype=np.float32)
    OH, OW = (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1
    dy = rng.standard_normal((N, O, OH, OW), dtype=np.float32)

    def passes(C_):
        C_.conv2d_forward(x, w, None, (s, s), (p, p), (1, 1), 1)
        C_.conv2d_backward_data(dy, w, (H, W), (s, s), (p, p), (1, 1), 1)
        C_.conv2d_backward_weight(x, dy, (k, k), (s, s), (p, p), (1, 1), 1)

    return 3 * 2.0 * N * O * OH * OW * C * k * k, "GFLOP/s", passes


def batch_norm_case(dims, rng):
    x = rng.standard_normal(dims, dtype=np.float32)
    g = rng.standard_normal(dims, dtype=np.float32)
    C = dims[1]
    weight, bias = np.ones(C, np.float32), np.zeros(C, np.float32)
    mean, var = np.zeros(C, np.float32), np.ones(C, np.float32)

    def forward_backward(C_):
        _, save_mean, save_invstd = C_.batch_norm_forward(x, weight, bias, mean, var, True, 0.1, 1e-5)
        C_.batch_norm_backward(g, x, weight, save_mean, save_invstd, True)

    return 2.0 * x.nbytes, "GB/s (of x, both passes)", forward_backward


def make_case(spec: str, rng):
    kind, _, numbers = spec.partition(":")
    dims = tuple(int(v) for v in numbers.split(","))
    if kind in ("gemm", "gemm_ta") and len(dims) == 3:
        return gemm_case(dims, rng, trans_a=kind == "gemm_ta")
    if kind in ("lstm", "gru") and len(dims) == 4:
        return recurrent_case(kind, dims, rng)
    if kind in ("maxpool", "avgpool") and len(dims) == 7:
        return pool_case(kind, dims, rng)
    if kind == "tconv" and len(dims) == 8:
        return transposed_conv_case(dims, rng)
    if kind == "conv" and len(dims) == 8:
        return conv_case(dims, rng)
    if kind == "batchnorm" and len(dims) == 4:
        return batch_norm_case(dims, rng)
    raise SystemExit(f"ab_builds: bad case {spec!r}; expected gemm:M,N,K, gemm_ta:M,N,K, lstm:T,B,I,H, gru:T,B,I,H, "
                     "maxpool:N,C,H,W,k,s,p, avgpool:N,C,H,W,k,s,p, tconv:N,C,H,W,O,k,s,p, "
                     "conv:N,C,H,W,O,k,s,p or batchnorm:N,C,H,W")


def paired_samples(builds, run, seconds: float):
    """Seconds per call of each build, in alternating samples of about 20 ms."""
    repeats = []
    for C in builds:
        for _ in range(2):
            run(C)
        start = time.perf_counter()
        run(C)
        repeats.append(max(1, int(0.02 / max(time.perf_counter() - start, 1e-9))))
    samples = [[] for _ in builds]
    order = list(zip(builds, repeats, samples))
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        for C, count, bucket in order:
            start = time.perf_counter()
            for _ in range(count):
                run(C)
            bucket.append((time.perf_counter() - start) / count)
        order.reverse()  # old-new, new-old, ...: neither build always runs right after the other
    return samples


def main(argv) -> None:
    options = {a.split("=")[0]: a.split("=")[1] for a in argv if a.startswith("--")}
    positional = [a for a in argv if not a.startswith("--")]
    if len(positional) < 3:
        raise SystemExit(__doc__)
    threads, seconds = int(options.get("--threads", 2)), float(options.get("--seconds", 6))
    builds = [load_build(positional[0], "old"), load_build(positional[1], "new")]
    for C in builds:
        C.set_num_threads(threads)
    rng = np.random.default_rng(0)
    print(f"old {positional[0]}, new {positional[1]}; {threads} thread(s), {seconds:g} s per case")
    for spec in positional[2:]:
        work, unit, run = make_case(spec, rng)
        old, new = paired_samples(builds, run, seconds)
        ratios = [o / n for o, n in zip(old, new)]
        q1, _, q3 = statistics.quantiles(ratios, n=4)
        print(f"{spec:24s} pairs {len(ratios):4d}  old {work / statistics.median(old) / 1e9:7.1f} {unit}  "
              f"new {work / statistics.median(new) / 1e9:7.1f} {unit}  old/new time {statistics.median(ratios):.3f} "
              f"[quartiles {q1:.3f} {q3:.3f}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
