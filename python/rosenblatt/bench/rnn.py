"""python -m rosenblatt.bench rnn [--repeat=N] [--threads=N] [--only=lstm|gru]

Forward and forward+backward time of nn.LSTM / nn.GRU against torch.nn.LSTM / GRU with the same
weights, same thread count, measured in one run (ours and torch's repeats interleaved so that load
drifts hit both), median of the repeats after a warm-up; then single-step cell latency at batch 1.
Ratio = torch time / our time (> 1: we are faster). Forward+backward = output.sum().backward() with
gradients for the input and every weight.

A second table sets the forward+backward rates against the FMA peak, probed among the same samples:
the matrix products of one layer's forward are 2*T*B*G*H*(I + H) flops (G gates), its backward twice
that (the input and state gradients, the weight gradients). A ratio target needs our rate at
target x torch's rate; where that is above the peak, no kernel of this arithmetic meets it.
"""
from __future__ import annotations

import numpy as np

import rosenblatt as rb
from rosenblatt import nn

from .. import _C
from .common import interleaved_medians, print_table, try_import_torch

SHAPES = [(100, 64, 512, 512), (50, 32, 128, 256), (200, 1, 65, 512)]  # (T, B, I, H)
# Targets of issue 4 for forward+backward (torch / ours).
TARGETS = {("LSTM", 1): 1.2, ("LSTM", 64): 1.2, ("LSTM", 32): 1.2, ("GRU", 64): 1.5, ("GRU", 32): 1.5, ("GRU", 1): 3.0}
GATES = {"LSTM": 4, "GRU": 3}


def product_flops(name, T, B, I, H):
    """Flops of the matrix products of one layer's forward and backward (the element-wise work aside)."""
    return 3 * 2 * T * B * GATES[name] * H * (I + H)


def make_pair(torch, name, I, H):
    theirs = getattr(torch.nn, name)(I, H) if torch else None
    ours = getattr(nn, name)(I, H)
    if torch:
        ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def share(rate, peak):
    """rate as a percentage of the FMA peak; "-" where none was probed (no AVX2/FMA)."""
    return "-" if np.isnan(peak) else f"{100 * rate / peak:.0f}%"


def layer_cases(torch, names, repeat, threads):
    rows = []
    rng = np.random.default_rng(0)
    for name in names:
        for T, B, I, H in SHAPES:
            ours, theirs = make_pair(torch, name, I, H)
            x = rng.standard_normal((T, B, I)).astype(np.float32)
            xr = rb.Tensor(x, requires_grad=True)

            def our_forward():
                with rb.no_grad():
                    ours(xr)

            def our_backward():
                ours.zero_grad()
                xr.grad = None
                ours(xr)[0].sum().backward()

            fns = [our_forward, our_backward]
            if torch:
                xt = torch.tensor(x, requires_grad=True)

                def torch_forward():
                    with torch.no_grad():
                        theirs(xt)

                def torch_backward():
                    theirs.zero_grad()
                    xt.grad = None
                    theirs(xt)[0].sum().backward()

                fns += [torch_forward, torch_backward]
            # The FMA peak, probed in the same rotation: a shared machine slows it as it slows the layers.
            # Each probe lasts about 0.2 s, long enough to average over the host's short swings.
            peaks = []
            if _C.cpu_supports_avx2():
                fns.append(lambda: peaks.append(_C.fma_peak_gflops(threads, 100_000_000) * 1e9))
            reps = max(3, repeat // 2) if T * B * H > 1_000_000 else repeat
            times = interleaved_medians(fns, reps)[:4 if torch else 2]
            peak = float(np.median(peaks)) if peaks else float("nan")
            rows.append((f"{name} (T,B,I,H)=({T},{B},{I},{H})", times, TARGETS.get((name, B)),
                         product_flops(name, T, B, I, H), peak))
    return rows


def cell_cases(torch, names, repeat):
    rows = []
    rng = np.random.default_rng(1)
    for name in names:
        I, H = 65, 512
        ours, theirs = make_pair(torch, name + "Cell", I, H)
        x = rng.standard_normal((1, I)).astype(np.float32)
        h = rng.standard_normal((1, H)).astype(np.float32)
        xr, hr = rb.Tensor(x, requires_grad=True), rb.Tensor(h)
        state_r = (hr, rb.Tensor(h)) if name == "LSTM" else hr

        def loss_of(out):
            return out[0] if isinstance(out, tuple) else out

        def our_forward():
            with rb.no_grad():
                for _ in range(20):
                    ours(xr, state_r)

        def our_backward():
            for _ in range(20):
                loss_of(ours(xr, state_r)).sum().backward()

        fns = [our_forward, our_backward]
        if torch:
            xt, ht = torch.tensor(x, requires_grad=True), torch.tensor(h)
            state_t = (ht, torch.tensor(h)) if name == "LSTM" else ht

            def torch_forward():
                with torch.no_grad():
                    for _ in range(20):
                        theirs(xt, state_t)

            def torch_backward():
                for _ in range(20):
                    loss_of(theirs(xt, state_t)).sum().backward()

            fns += [torch_forward, torch_backward]
        times = [t / 20 for t in interleaved_medians(fns, repeat)]
        rows.append((f"{name}Cell step, B=1, I={I}, H={H}", times, None))
    return rows


def main(options):
    opts = dict(o.lstrip("-").split("=", 1) if "=" in o else (o.lstrip("-"), "1") for o in options)
    repeat = int(opts.get("repeat", 7))
    threads = int(opts.get("threads", 2))
    names = [opts["only"].upper()] if "only" in opts else ["LSTM", "GRU"]
    torch = try_import_torch()
    rb.set_num_threads(threads)
    if torch:
        torch.set_num_threads(threads)
    print(f"== rnn: {threads} threads, ISA {rb.build_info()['isa']}, median of {repeat} interleaved repeats"
          f"{'' if torch else ' (torch not importable: no ratios)'}")

    def fmt(seconds):
        return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.0f} us"

    header = ["case", "ours fwd", "torch fwd", "ratio", "ours fwd+bwd", "torch fwd+bwd", "ratio", "target", "met"]
    table = []
    layers = layer_cases(torch, names, repeat, threads)
    cells = [row + (None, None) for row in cell_cases(torch, names, max(repeat, 9))]
    for label, times, target, _, _ in layers + cells:
        row = [label, fmt(times[0]), "-", "-", fmt(times[1]), "-", "-", "-", "-"]
        if torch:
            fwd_ratio, bwd_ratio = times[2] / times[0], times[3] / times[1]
            row[2], row[3], row[5], row[6] = fmt(times[2]), f"{fwd_ratio:.2f}x", fmt(times[3]), f"{bwd_ratio:.2f}x"
            if target:
                row[7], row[8] = f">= {target}x", "yes" if bwd_ratio >= target else "NO"
        table.append(row)
    print_table(header, table)

    print(f"\n-- forward+backward against the FMA peak ({threads} threads, probed among each case's samples)")
    header = ["case", "products", "peak", "ours", "% peak", "torch", "% peak", "target needs"]
    table = []
    for label, times, target, flops, peak in layers:
        ours = flops / times[1]
        row = [label, f"{flops / 1e9:.2f} GFLOP", "-" if np.isnan(peak) else f"{peak / 1e9:.0f} GFLOP/s",
               f"{ours / 1e9:.0f} GFLOP/s", share(ours, peak), "-", "-", "-"]
        if torch:
            theirs = flops / times[3]
            row[5], row[6] = f"{theirs / 1e9:.0f} GFLOP/s", share(theirs, peak)
            if target and not np.isnan(peak):
                row[7] = f"{share(target * theirs, peak)} of peak"
        table.append(row)
    print_table(header, table)
