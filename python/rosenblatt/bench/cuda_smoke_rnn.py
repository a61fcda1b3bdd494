"""The recurrent kernels' part of cuda_smoke: each cell once forward and backward on a small awkward
shape (partial tiles, variable lengths, both directions), checked against the CPU kernels (_C)."""
from __future__ import annotations

import numpy as np

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def run(cuda, close) -> bool:
    from rosenblatt import _C

    rng = np.random.default_rng(1)
    dev = cuda.from_numpy
    T, B, I, H = 3, 17, 5, 19
    lengths = np.array([3, 1, 2] * 5 + [3, 3], np.int64)
    ok = True
    for cell, lbr, reverse in (("lstm", True, False), ("gru", True, True), ("gru", False, False),
                               ("rnn_tanh", True, True), ("rnn_relu", True, False)):
        G = GATES[cell]
        r = lambda *shape: (rng.standard_normal(shape) * 0.5).astype(np.float32)  # noqa: E731
        x, h0, c0 = r(T, B, I), r(B, H), (r(B, H) if cell == "lstm" else None)
        w = [r(G * H, I), r(G * H, H), r(G * H), r(G * H)]
        dy, dh_n, dc_n = r(T, B, H), r(B, H), (r(B, H) if cell == "lstm" else None)
        name = f"{cell}{'' if cell != 'gru' else ' lbr' if lbr else ' cho'}{' reverse' if reverse else ''}"
        e = _C.rnn_forward(cell, x, h0, c0, *w, lengths, reverse, lbr)
        got = cuda.rnn_forward(cell, dev(x), dev(h0), None if c0 is None else dev(c0), *[dev(a) for a in w],
                               lengths, reverse, lbr)
        ok &= close(f"{name} forward y", got[0].to_numpy(), e[0], 1e-5)
        ok &= close(f"{name} forward h_n", got[1].to_numpy(), e[1], 1e-5)
        eg = _C.rnn_backward(cell, x, w[0], w[1], True, lengths, reverse, lbr, e[3], dy, dh_n, dc_n, 0.0)
        gg = cuda.rnn_backward(cell, dev(x), dev(w[0]), dev(w[1]), True, lengths, reverse, lbr, got[3], dev(dy),
                               dev(dh_n), None if dc_n is None else dev(dc_n), 0.0)
        for label, a, b in zip(("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"), gg, eg):
            if b is not None:
                ok &= close(f"{name} backward {label}", a.to_numpy(), b, 1e-4)
    return ok
