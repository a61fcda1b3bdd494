"""Every CUDA kernel once, on small awkward shapes, each result checked against NumPy.

Small enough to run under compute-sanitizer (memcheck, racecheck) in seconds:

    compute-sanitizer --tool memcheck --error-exitcode 1 python -m rosenblatt.bench.cuda_smoke

Exits 0 when every check passes, 1 on a mismatch or a CUDA error, 2 when there is no device.
"""
from __future__ import annotations

import sys

import numpy as np


def _close(name, got, expected, tol):
    expected = np.asarray(expected, dtype=np.float64)
    error = np.max(np.abs(got - expected) / (1.0 + np.abs(expected))) if expected.size else 0.0
    ok = got.shape == expected.shape and bool(np.all(np.isfinite(got) == np.isfinite(expected))) and error <= tol
    print(f"{'ok ' if ok else 'BAD'} {name:<34} max scaled error {error:.2e}")
    return ok


def run() -> bool:
    from rosenblatt import cuda

    rng = np.random.default_rng(0)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    dev = cuda.from_numpy
    ok = True

    a, b = f32(37, 19), f32(19)
    x = np.abs(f32(37, 19)) + 0.5
    ok &= _close("add (broadcast, strided kernel)", cuda.add(dev(a), dev(b)).to_numpy(), a + b, 1e-6)
    ok &= _close("mul (contiguous kernel)", cuda.mul(dev(a), dev(x)).to_numpy(), a * x, 1e-6)
    for name, ref in (("exp", np.exp(a)), ("log", np.log(x)), ("tanh", np.tanh(a)), ("neg", -a),
                      ("sigmoid", 1 / (1 + np.exp(-a.astype(np.float64)))), ("relu", np.maximum(a, 0))):
        arg = x if name == "log" else a
        ok &= _close(name, getattr(cuda, name)(dev(arg)).to_numpy(), ref, 1e-6)
    ok &= _close("div_backward_b (3 inputs, broadcast)", cuda.div_backward_b(dev(a), dev(b), dev(x)).to_numpy(),
                 -a * b / x ** 2, 1e-5)
    ok &= _close("copy of a transposed view", dev(a).transpose(0, 1).to_numpy(), a.T, 0)
    i = np.arange(-6, 6).reshape(3, 4)
    ok &= _close("int64 transposed copy", dev(i).transpose(0, 1).to_numpy(), i.T, 0)

    s = f32(5, 300, 3)
    ok &= _close("sum rows (axis -1)", cuda.sum(dev(s), -1).to_numpy(), s.sum(-1), 1e-5)
    ok &= _close("sum columns (axis 1)", cuda.sum(dev(s), 1).to_numpy(), s.sum(1), 1e-5)
    z = f32(6, 333) * 10
    e = np.exp(z - z.max(-1, keepdims=True))
    y = e / e.sum(-1, keepdims=True)
    ok &= _close("softmax", cuda.softmax(dev(z)).to_numpy(), y, 1e-5)
    ok &= _close("log_softmax", cuda.log_softmax(dev(z)).to_numpy(), np.log(y), 1e-5)
    g = f32(6, 333)
    ok &= _close("softmax_backward", cuda.softmax_backward(dev(g), dev(y.astype(np.float32))).to_numpy(),
                 y * (g - (g * y).sum(-1, keepdims=True)), 1e-5)
    ok &= _close("log_softmax_backward",
                 cuda.log_softmax_backward(dev(g), dev(np.log(y).astype(np.float32))).to_numpy(),
                 g - y * g.sum(-1, keepdims=True), 1e-5)

    m, n, k = 130, 67, 33  # partial tiles in every direction, K not a multiple of 8
    A, B = f32(m, k), f32(k, n)
    for ta in (False, True):
        for tb in (False, True):
            da = dev(np.ascontiguousarray(A.T)).transpose(0, 1) if ta else dev(A)
            db = dev(np.ascontiguousarray(B.T)).transpose(0, 1) if tb else dev(B)
            ok &= _close(f"matmul trans_a={ta:d} trans_b={tb:d}", cuda.matmul(da, db).to_numpy(), A @ B, 1e-5)
    A, B = f32(256, 64), f32(64, 256)  # whole tiles: the float4 paths
    ok &= _close("matmul 256x256x64 (float4 paths)", cuda.matmul(dev(A), dev(B)).to_numpy(), A @ B, 1e-5)
    A3, B3 = f32(3, 20, 9), f32(3, 9, 5)
    ok &= _close("matmul batched", cuda.matmul(dev(A3), dev(B3)).to_numpy(), A3 @ B3, 1e-5)

    from .cuda_smoke_train import run as run_train
    ok &= run_train(cuda, _close, rng)

    c = dev(a)
    ok &= _close("DLPack round trip", cuda.from_dlpack(c).to_numpy(), a, 0)
    from .cuda_smoke_conv import run as run_conv
    ok &= run_conv(_close)
    cuda.synchronize()
    return ok


def main() -> int:
    from rosenblatt import cuda
    if not cuda.is_available():
        print("cuda_smoke: no CUDA device (is_compiled=%s); nothing to check" % cuda.is_compiled())
        return 2
    try:
        ok = run()
    except RuntimeError as error:  # a CUDA error, reported by the module
        print(f"cuda_smoke: {error}")
        return 1
    print("cuda_smoke: all checks passed" if ok else "cuda_smoke: MISMATCHES above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
