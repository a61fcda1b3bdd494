"""The training kernels once each for cuda_smoke (small awkward shapes, results against NumPy),
including the bad-index paths, so that compute-sanitizer sees them."""
from __future__ import annotations

import numpy as np


def run(cuda, close, rng) -> bool:
    _C = cuda._cuda
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    dev = cuda.from_numpy
    ok = True

    x = f32(37, 19)
    keep = _C._dropout_keep_on_host(x.size, 0.3, 7, 2).reshape(x.shape)
    ok &= close("dropout_forward", _C.dropout_forward(dev(x), 0.3, 7, 2).to_numpy(),
                x * np.where(keep, np.float32(1) / np.float32(0.7), np.float32(0)), 0)
    keep = np.repeat(_C._dropout_keep_on_host(37, 0.5, 7, 3), 19).reshape(x.shape)
    ok &= close("dropout_backward (planes of 19)", _C.dropout_backward(dev(x), 0.5, 7, 3, 19).to_numpy(),
                x * np.where(keep, np.float32(2), np.float32(0)), 0)

    weight, indices = f32(11, 5), rng.integers(0, 11, size=(3, 7))
    ok &= close("embedding_forward", _C.embedding_forward(dev(weight), dev(indices)).to_numpy(), weight[indices], 0)
    grad = f32(3, 7, 5)
    expected = np.zeros((11, 5))
    np.add.at(expected, indices.reshape(-1), grad.reshape(-1, 5).astype(np.float64))
    expected[2] = 0
    ok &= close("embedding_backward (padding_idx 2)",
                _C.embedding_backward(dev(grad), dev(indices), 11, 2).to_numpy(), expected, 1e-5)
    indices[1, 3] = 11
    for name, call in (("embedding_forward", lambda: _C.embedding_forward(dev(weight), dev(indices))),
                       ("embedding_backward", lambda: _C.embedding_backward(dev(grad), dev(indices), 11))):
        try:
            call()
            ok &= close(f"{name}: bad index refused", np.zeros(1), np.ones(1), 0)
        except IndexError:
            ok &= close(f"{name}: bad index refused", np.zeros(1), np.zeros(1), 0)

    images = f32(5, 3, 7) * 2 + 1
    w, b = f32(3), f32(3)
    rm, rv = dev(np.zeros(3, np.float32)), dev(np.ones(3, np.float32))
    y, mean, invstd = _C.batch_norm_forward(dev(images), dev(w), dev(b), rm, rv, True, 0.1, 1e-5)
    x64 = images.astype(np.float64)
    mu, var = x64.mean(axis=(0, 2)), x64.var(axis=(0, 2))
    x_hat = (x64 - mu[:, None]) / np.sqrt(var[:, None] + 1e-5)
    ok &= close("batch_norm_forward (training)", y.to_numpy(), x_hat * w[:, None] + b[:, None], 1e-5)
    ok &= close("batch_norm running_var", rv.to_numpy(), 0.9 + 0.1 * var * 35 / 34, 1e-5)
    g = f32(5, 3, 7).astype(np.float64)
    s = w / np.sqrt(var + 1e-5)
    dx_ref = s[:, None] * (g - x_hat * (g * x_hat).sum(axis=(0, 2))[:, None] / 35 - g.sum(axis=(0, 2))[:, None] / 35)
    dx, dw, db = _C.batch_norm_backward(dev(g.astype(np.float32)), dev(images), dev(w), mean, invstd, True)
    ok &= close("batch_norm_backward dx", dx.to_numpy(), dx_ref, 1e-4)
    ok &= close("batch_norm_backward dweight", dw.to_numpy(), (g * x_hat).sum(axis=(0, 2)), 1e-4)

    p0, g0 = f32(13, 3), f32(13, 3)
    p, buf = dev(p0), _C.empty([13, 3])
    _C.sgd_step_(p, dev(g0), buf, lr=0.1, momentum=0.9, nesterov=True, first_step=True)
    ok &= close("sgd_step_ (nesterov, first step)", p.to_numpy(), p0 - np.float32(0.1) * (g0 + np.float32(0.9) * g0),
                1e-6)
    p, m, v, vmax = dev(p0), dev(np.zeros((13, 3), np.float32)), dev(np.zeros((13, 3), np.float32)), \
        dev(np.zeros((13, 3), np.float32))
    _C.adam_step_(p, dev(g0), m, v, vmax, step=1, lr=0.01, amsgrad=True)
    ok &= close("adam_step_ (amsgrad, step 1)", p.to_numpy(), p0 - 0.01 * g0 / (np.abs(g0) + 1e-8), 1e-5)

    grads = [f32(300), f32(3, 5)]
    arrays = [dev(a) for a in grads]
    total = _C.grad_norm(arrays, 2.0)
    exact = np.sqrt(sum((a.astype(np.float64) ** 2).sum() for a in grads))
    ok &= close("grad_norm", total.to_numpy(), exact, 1e-6)
    _C.clip_by_total_norm_(arrays, total, 1.0)
    ok &= close("clip_by_total_norm_", arrays[1].to_numpy(), grads[1] / exact, 1e-5)

    log_probs, target = f32(6, 4, 3), rng.integers(0, 4, size=(6, 3))
    target[2, 1] = -100
    picked, _ = _C.nll_gather(dev(log_probs), dev(target))
    safe = np.where(target == -100, 0, target)
    expected = np.where(target == -100, 0, np.take_along_axis(log_probs, safe[:, None, :], axis=1)[:, 0, :])
    ok &= close("nll_gather", picked.to_numpy(), expected, 0)
    scattered = _C.nll_scatter(dev(np.ones((6, 3), np.float32)), dev(target), 4).to_numpy()
    ok &= close("nll_scatter", scattered.sum(axis=1), (target != -100).astype(np.float64), 0)
    target[0, 0] = 4
    try:
        _C.nll_gather(dev(log_probs), dev(target))
        ok &= close("nll_gather: bad target refused", np.zeros(1), np.ones(1), 0)
    except IndexError:
        ok &= close("nll_gather: bad target refused", np.zeros(1), np.zeros(1), 0)

    z = f32(9, 333)
    values, where = _C.max_last_axis(dev(z))
    ok &= close("max_last_axis values", values.to_numpy(), z.max(-1), 0)
    ok &= close("max_last_axis indices", where.to_numpy().astype(np.float64), z.argmax(-1), 0)
    return ok
