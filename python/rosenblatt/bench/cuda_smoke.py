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
    # the device tensor layer's kernels (tensor_ops.cu)
    ok &= _close("pow (broadcast)", cuda.pow(dev(x), dev(b)).to_numpy(), x ** b, 1e-5)
    ok &= _close("maximum (broadcast)", cuda.maximum(dev(a), dev(b)).to_numpy(), np.maximum(a, b), 0)
    ok &= _close("gt -> bool (broadcast)", cuda.gt(dev(a), dev(b)).to_numpy(), a > b, 0)
    ok &= _close("eq int64", cuda.eq(dev(i), dev(i.T.copy().T)).to_numpy(), np.ones(i.shape, bool), 0)
    mask = a > 0
    ok &= _close("where (3 inputs, broadcast)", cuda.where(dev(mask), dev(a), dev(b)).to_numpy(),
                 np.where(mask, a, b), 0)
    for dtype in ("float64", "int64", "bool", "float32"):
        ok &= _close(f"astype float32 -> {dtype} (transposed)", cuda.astype(dev(a).transpose(0, 1), dtype).to_numpy(),
                     a.T.astype(dtype), 0)
    ok &= _close("astype bool -> float32", cuda.astype(dev(mask), "float32").to_numpy(), mask.astype(np.float32), 0)
    ok &= _close("full", cuda.full([3, 5], 2.5).to_numpy(), np.full((3, 5), 2.5), 0)
    target, expected = dev(np.zeros((37, 19), np.float32)), np.zeros((37, 19), np.float32)
    view = cuda.as_strided(target, [12, 6], [57, -3], 1 * 19 + 18)  # rows 1, 4, ..., columns 18, 15, ... 3
    cuda.assign(view, dev(b[:6]))
    expected[1::3, 18::-3][:, :6] = b[:6]
    ok &= _close("assign into a strided view (broadcast source)", target.to_numpy(), expected, 0)
    for axis in (0, 1, -1):
        values, indices = cuda.max(dev(s), axis)
        ok &= _close(f"max over axis {axis}", values.to_numpy(), s.max(axis), 0)
        ok &= _close(f"argmax over axis {axis}", indices.to_numpy(), s.argmax(axis), 0)
    values, indices = cuda.min(dev(s), 1, True)
    ok &= _close("min over axis 1, keepdims", values.to_numpy(), s.min(1, keepdims=True), 0)
    A, B, C0 = f32(m, k), f32(k, n), f32(m, n)
    out = dev(C0)
    cuda.gemm(dev(np.ascontiguousarray(A.T)), dev(B), trans_a=True, alpha=0.5, beta=2.0, out=out)
    ok &= _close("gemm trans_a, alpha, beta, out", out.to_numpy(), 0.5 * A @ B + 2.0 * C0, 1e-5)
    ok &= _close("gemm trans_b of a transposed view", cuda.gemm(dev(A), dev(B).transpose(0, 1), trans_b=True)
                 .to_numpy(), A @ B, 1e-5)

    c = dev(a)
    ok &= _close("DLPack round trip", cuda.from_dlpack(c).to_numpy(), a, 0)

    from . import cuda_smoke_rnn
    ok &= cuda_smoke_rnn.run(cuda, _close)
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
