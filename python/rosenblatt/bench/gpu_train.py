"""Training-step kernels beside PyTorch, GB/s (bytes read plus written once, the minimum traffic):
the fused Adam update, dropout, and batch norm in training. Called from rosenblatt.bench.gpu."""
from __future__ import annotations

from .gpu import _median_time


def bench(torch, cuda, repeat: int, quick: bool) -> list:
    n = (1 << 22) if quick else (1 << 24)
    f = 4  # bytes per float32
    cases = []

    # Adam: reads param, grad, exp_avg, exp_avg_sq; writes param, exp_avg, exp_avg_sq.
    param = torch.randn(n, device="cuda", requires_grad=True)
    param.grad = torch.randn(n, device="cuda")
    adam = torch.optim.Adam([param], lr=1e-3, fused=True)
    ours = [cuda.from_dlpack(t) for t in (torch.randn(n, device="cuda"), torch.randn(n, device="cuda"),
                                           torch.zeros(n, device="cuda"), torch.zeros(n, device="cuda"))]
    p, g, m, v = ours
    cases.append(("adam_step_ (fused; torch fused=True)", lambda: cuda.adam_step_(p, g, m, v, step=1, lr=1e-3),
                  adam.step, 7 * n * f))

    x = torch.randn(n, device="cuda")
    dx = cuda.from_dlpack(x)
    cases.append(("dropout p=0.5 (torch also writes a mask)", lambda: cuda.dropout_forward(dx, 0.5, 1234, 0),
                  lambda: torch.nn.functional.dropout(x, 0.5, training=True), 2 * n * f))

    batch, channels, side = (16, 64, 32) if quick else (64, 64, 56)
    images = torch.randn(batch, channels, side, side, device="cuda")
    rm, rv = torch.zeros(channels, device="cuda"), torch.ones(channels, device="cuda")
    w, b = torch.ones(channels, device="cuda"), torch.zeros(channels, device="cuda")
    d_images, d_rm, d_rv, d_w, d_b = (cuda.from_dlpack(t.clone()) for t in (images, rm, rv, w, b))
    cases.append((f"batch_norm training ({batch}, {channels}, {side}, {side})",
                  lambda: cuda.batch_norm_forward(d_images, d_w, d_b, d_rm, d_rv, True),
                  lambda: torch.nn.functional.batch_norm(images, rm, rv, w, b, training=True),
                  2 * images.numel() * f))

    records = []
    for name, ours_fn, theirs_fn, nbytes in cases:
        t_ours = _median_time(ours_fn, cuda.synchronize, repeat)
        t_torch = _median_time(theirs_fn, torch.cuda.synchronize, repeat)
        records.append({"kind": "train", "name": name, "bytes": nbytes, "ours_s": t_ours, "torch_s": t_torch,
                        "ours_gbs": nbytes / t_ours / 1e9, "torch_gbs": nbytes / t_torch / 1e9,
                        "ratio": t_torch / t_ours})
    return records
