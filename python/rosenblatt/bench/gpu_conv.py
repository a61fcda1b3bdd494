"""Convolution and pooling on the GPU beside PyTorch (cuDNN, TF32 off), measured in the same run.

Convolution: the shapes of the CPU conv benchmark (bench/conv.py) at batch 32, forward and
forward + backward (input and weight gradients), ours against torch.nn.functional.conv2d /
conv_transpose2d. Pooling: GB/s (bytes read + written) against the device-to-device copy bandwidth
measured here. Inputs are made by torch on the GPU and shared with our kernels through DLPack.
Called from bench/gpu.py; `bench` returns one record per row and `report` prints them.
"""
from __future__ import annotations

from .common import geomean, print_table
from .conv import CONV_CASES, POOL_CASES, TRANSPOSED_CASES
from .gpu import _median_time, _relative_error

BATCH = 32


def _conv_records(torch, cuda, repeat: int, quick: bool) -> list:
    _cuda = cuda._cuda
    tf = torch.nn.functional
    cases = [(c, False) for c in CONV_CASES] + [(c, True) for c in TRANSPOSED_CASES]
    if quick:
        cases = cases[:3] + cases[-1:]
    records = []
    for (name, _, cin, cout, size, k, s, p), transposed in cases:
        stride, padding, dilation, kernel = (s, s), (p, p), (1, 1), (k, k)
        x = torch.randn(BATCH, cin, size, size, device="cuda")
        w_shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        w = torch.randn(*w_shape, device="cuda") / (cin * k * k) ** 0.5
        x.requires_grad_(True)
        w.requires_grad_(True)
        if transposed:
            theirs = lambda a, b: tf.conv_transpose2d(a, b, None, s, p)  # noqa: E731
        else:
            theirs = lambda a, b: tf.conv2d(a, b, None, s, p)  # noqa: E731
        with torch.no_grad():
            y_ref = theirs(x, w)
        g = torch.randn_like(y_ref)
        dx_ref, dw_ref = torch.autograd.grad(theirs(x, w), (x, w), g)
        torch.cuda.synchronize()
        dx_, dw_, dg = cuda.from_dlpack(x.detach()), cuda.from_dlpack(w.detach()), cuda.from_dlpack(g)
        in_hw = tuple(x.shape[2:])

        if transposed:  # forward: conv2d's backward-data; input gradient: conv2d forward; weight: roles swapped
            def ours_fwd():
                return _cuda.conv_transpose2d_forward(dx_, dw_, None, stride, padding, (0, 0), dilation, 1)

            def ours_bwd():
                return (_cuda.conv2d_forward(dg, dw_, None, stride, padding, dilation, 1),
                        _cuda.conv2d_backward_weight(dg, dx_, kernel, stride, padding, dilation, 1))
        else:
            def ours_fwd():
                return _cuda.conv2d_forward(dx_, dw_, None, stride, padding, dilation, 1)

            def ours_bwd():
                return (_cuda.conv2d_backward_data(dg, dw_, in_hw, stride, padding, dilation, 1),
                        _cuda.conv2d_backward_weight(dx_, dg, kernel, stride, padding, dilation, 1))

        def ours_step():
            ours_fwd()
            ours_bwd()

        def torch_fwd():
            with torch.no_grad():
                theirs(x, w)

        def torch_step():
            torch.autograd.grad(theirs(x, w), (x, w), g)

        y_ours = torch.from_dlpack(ours_fwd())
        dx_ours, dw_ours = (torch.from_dlpack(a) for a in ours_bwd())
        cuda.synchronize()
        errors = {"rel_error": _relative_error(y_ours, y_ref), "rel_error_dx": _relative_error(dx_ours, dx_ref),
                  "rel_error_dw": _relative_error(dw_ours, dw_ref)}
        t_fwd = _median_time(ours_fwd, cuda.synchronize, repeat)
        t_step = _median_time(ours_step, cuda.synchronize, repeat)
        t_torch_fwd = _median_time(torch_fwd, torch.cuda.synchronize, repeat)
        t_torch_step = _median_time(torch_step, torch.cuda.synchronize, repeat)
        out_pixels = y_ref.shape[2] * y_ref.shape[3]
        flops = 2.0 * BATCH * cin * cout * k * k * (size * size if transposed else out_pixels)
        records.append({"kind": "conv", "name": name.rsplit(" b", 1)[0] + f" b{BATCH}", "transposed": transposed,
                        "ours_s": t_fwd, "torch_s": t_torch_fwd, "ratio": t_torch_fwd / t_fwd,
                        "ours_gflops": flops / t_fwd / 1e9, "torch_gflops": flops / t_torch_fwd / 1e9,
                        "ours_step_s": t_step, "torch_step_s": t_torch_step, "step_ratio": t_torch_step / t_step,
                        **errors})
        del x, w, g, y_ref, dx_ref, dw_ref, y_ours, dx_ours, dw_ours, dx_, dw_, dg
    return records


def _pool_records(torch, cuda, repeat: int, quick: bool) -> list:
    _cuda = cuda._cuda
    tf = torch.nn.functional
    n = (1 << 24) if quick else (1 << 26)
    src = torch.randn(n, device="cuda")
    dst = torch.empty_like(src)
    t_copy = _median_time(lambda: dst.copy_(src), torch.cuda.synchronize, repeat)
    copy_gbs = 2 * src.numel() * 4 / t_copy / 1e9
    del src, dst
    records = [{"kind": "pool", "name": "copy (D2D ceiling)", "torch_gbs": copy_gbs, "torch_s": t_copy}]
    for name, kind, shape, k, s, p in POOL_CASES:
        x = torch.randn(*shape, device="cuda")
        torch.cuda.synchronize()
        dx = cuda.from_dlpack(x)
        kernel, stride, padding = (k, k), (s, s), (p, p)
        variants = []
        if kind == "max":
            variants.append((name, lambda: _cuda.max_pool2d_forward(dx, kernel, stride, padding, (1, 1), False, False)[0],
                             lambda: tf.max_pool2d(x, k, s, p), False))
            variants.append((name + " +indices",
                             lambda: _cuda.max_pool2d_forward(dx, kernel, stride, padding, (1, 1), False, True)[0],
                             lambda: tf.max_pool2d(x, k, s, p, return_indices=True)[0], True))
        else:
            variants.append((name, lambda: _cuda.avg_pool2d_forward(dx, kernel, stride, padding, False, True, None),
                             lambda: tf.avg_pool2d(x, k, s, p), False))
        for row_name, ours, theirs, with_indices in variants:
            with torch.no_grad():
                ref = theirs()
                error = _relative_error(torch.from_dlpack(ours()), ref)
                t_ours = _median_time(ours, cuda.synchronize, repeat)
                t_torch = _median_time(theirs, torch.cuda.synchronize, repeat)
            nbytes = x.numel() * 4 + ref.numel() * (4 + (8 if with_indices else 0))
            records.append({"kind": "pool", "name": row_name, "bytes": nbytes, "ours_s": t_ours, "torch_s": t_torch,
                            "ours_gbs": nbytes / t_ours / 1e9, "torch_gbs": nbytes / t_torch / 1e9,
                            "ratio": t_torch / t_ours, "fraction_of_copy": nbytes / t_ours / 1e9 / copy_gbs,
                            "rel_error": error})
        del x, dx
    return records


def bench(torch, cuda, repeat: int, quick: bool) -> list:
    """Records for every convolution and pooling row (see the module's docstring)."""
    repeat = min(repeat, 5)  # the section must leave time for the rest of bench/gpu.py
    return _conv_records(torch, cuda, repeat, quick) + _pool_records(torch, cuda, repeat, quick)


def report(records: list) -> None:
    conv = [r for r in records if r["kind"] == "conv"]
    print(f"\nConvolution (fp32, TF32 off), batch {BATCH}: ours vs torch (cuDNN); ratio = torch time / ours")
    print_table(["case", "fwd ms", "GFLOP/s", "torch ms", "ratio", "fwd+bwd ms", "torch ms", "ratio", "rel err y/dx/dw"],
                [[r["name"], f"{r['ours_s'] * 1e3:.3f}", f"{r['ours_gflops']:.0f}", f"{r['torch_s'] * 1e3:.3f}",
                  f"{r['ratio']:.2f}", f"{r['ours_step_s'] * 1e3:.3f}", f"{r['torch_step_s'] * 1e3:.3f}",
                  f"{r['step_ratio']:.2f}",
                  f"{r['rel_error']:.0e}/{r['rel_error_dx']:.0e}/{r['rel_error_dw']:.0e}"] for r in conv])
    plain = [r for r in conv if not r["transposed"]]
    if plain:
        print(f"convolution geomean ours/torch: forward {geomean([r['ratio'] for r in plain]):.2f}, forward+backward "
              f"{geomean([r['step_ratio'] for r in plain]):.2f}")
    pool = [r for r in records if r["kind"] == "pool"]
    copy = pool[0]["torch_gbs"]
    print(f"\nPooling forward, GB/s (bytes read + written); device-to-device copy: {copy:.0f} GB/s")
    print_table(["case", "ours GB/s", "torch GB/s", "ours/torch", "ours / copy", "rel err"],
                [[r["name"], f"{r['ours_gbs']:.0f}", f"{r['torch_gbs']:.0f}", f"{r['ratio']:.2f}",
                  f"{r['fraction_of_copy']:.2f}", f"{r['rel_error']:.0e}"] for r in pool[1:]])
