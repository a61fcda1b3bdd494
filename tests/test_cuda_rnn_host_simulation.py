"""The CUDA recurrent kernels' own code run on the host, against the CPU kernels (rosenblatt._C).

`_rnn_forward_host_simulation` / `_rnn_backward_host_simulation` run the GPU drivers' exact sequence
of launches with each step kernel simulated block by block, barrier phase by barrier phase (shared
memory starts as NaN, so a read of an element no thread stored poisons the result; outputs and
scratch start as NaN too). Only the large GEMMs are replaced by host loops (the SGEMM has its own
simulation in test_cuda_host_simulation.py). So the tiling, the chunking of the reduction, the
epilogues and the per-step pointer arithmetic are all tested without a GPU.
"""
import numpy as np
import pytest

from rosenblatt import _C, cuda
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _inputs(rng, cell, T, B, I, H, dtype, bias=True):
    G = GATES[cell]

    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    # Weights scaled as PyTorch initialises them (~1/sqrt(fan-in)): well-conditioned at any size,
    # so that float32 rounding stays near 1e-6 relative.
    w = min(0.5, 1.5 / np.sqrt(max(I, H)))
    weights = (r(G * H, I, scale=w), r(G * H, H, scale=w), r(G * H) if bias else None, r(G * H) if bias else None)
    return r(T, B, I), r(B, H), (r(B, H) if cell == "lstm" else None), weights, r(T, B, H), r(B, H), r(B, H)


def _check(rng, cell, T, B, I, H, dtype=np.float32, lbr=True, reverse=False, lengths=None, bias=True, clip=0.0):
    x, h0, c0, (w_ih, w_hh, b_ih, b_hh), dy, dh_n, dc_n = _inputs(rng, cell, T, B, I, H, dtype, bias)
    if lengths is not None:
        lengths = np.asarray(lengths, np.int64)
    lstm = cell == "lstm"
    args = (cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, lbr)
    expected = _C.rnn_forward(*args)
    got = cuda._cuda._rnn_forward_host_simulation(*args)
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-12)
    what = f"{cell} T={T} B={B} I={I} H={H} {np.dtype(dtype).name} lbr={lbr} reverse={reverse} lengths={lengths}"
    for name, e, g in zip(("y", "h_n", "c_n"), expected[:3], got[:3]):
        if e is None:
            assert g is None
        else:
            assert_close(g, e, **tol, what=f"{what}: {name}")

    back = (cell, x, w_ih, w_hh, bias, lengths, reverse, lbr)
    expected_grads = _C.rnn_backward(*back, expected[3], dy, dh_n, dc_n if lstm else None, clip)
    grads = cuda._cuda._rnn_backward_host_simulation(*back, got[3], dy, dh_n, dc_n if lstm else None, clip)
    gtol = dict(atol=2e-5, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-11, rtol=1e-11)
    names = ("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh")
    for name, e, g in zip(names, expected_grads, grads):
        if e is None:
            assert g is None, f"{what}: {name}"
        else:
            assert_close(g, e, **gtol, what=f"{what}: {name}")


# Sizes around the tiles (16 batch rows x 16 units) and the reduction chunks (see test_several_chunks).
SHAPES = [(3, 5, 7, 19), (2, 17, 3, 70), (1, 1, 1, 1), (2, 16, 64, 16)]


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,I,H", SHAPES)
def test_forward_and_backward_match_cpu(rng, cell, dtype, T, B, I, H):
    _check(rng, cell, T, B, I, H, dtype)


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("reverse", [False, True])
def test_lengths_and_direction(rng, cell, reverse):
    lengths = [4, 1, 3, 2, 4, 4, 1, 2, 3, 4, 4, 4, 1, 1, 2, 3, 4]
    _check(rng, cell, 4, 17, 3, 21, reverse=reverse, lengths=lengths)


@pytest.mark.parametrize("lbr", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_forms(rng, lbr, dtype):
    _check(rng, "gru", 3, 18, 5, 37, dtype, lbr=lbr, lengths=[3, 1, 2] * 6)
    _check(rng, "gru", 2, 3, 4, 5, dtype, lbr=lbr, reverse=True, bias=False)


def test_lstm_clip_and_no_bias(rng):
    _check(rng, "lstm", 5, 3, 4, 9, clip=0.05, lengths=[5, 2, 3])
    _check(rng, "lstm", 3, 2, 3, 6, np.float64, bias=False)


@pytest.mark.parametrize("cell,lbr", [("lstm", True), ("gru", True), ("gru", False), ("rnn_tanh", True)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_several_chunks(rng, cell, lbr, dtype):
    # Chunks of the reduction are 32 to 256 indices (by dtype and product width): H = 300 takes
    # two to ten chunks per gate block, the last partial; B = 33 is three row tiles, the last of one row.
    _check(rng, cell, 2, 33, 5, 300, dtype, lbr=lbr, lengths=[2, 1, 2] * 11)


# ---- grid recurrence: one step kernel per anti-diagonal -------------------------------------------------
GRID_SHAPES = [(1, 1, 1, 1, 1), (3, 4, 2, 5, 7), (5, 2, 17, 3, 19), (2, 7, 3, 4, 70), (4, 3, 1, 6, 300)]


@pytest.mark.parametrize("R,C,B,I,H", GRID_SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bias", [True, False])
def test_grid_matches_cpu(rng, R, C, B, I, H, dtype, bias):
    w = min(0.5, 1.5 / np.sqrt(max(I, H)))
    x = rng.standard_normal((R, C, B, I)).astype(dtype)
    w_ih, w_left, w_up = ((rng.standard_normal(s) * w).astype(dtype) for s in ((H, I), (H, H), (H, H)))
    b = (rng.standard_normal(H) * 0.5).astype(dtype) if bias else None
    dh = rng.standard_normal((R, C, B, H)).astype(dtype)
    h = _C.grid_rnn_forward(x, w_ih, w_left, w_up, b)
    expected = _C.grid_rnn_backward(x, w_ih, w_left, w_up, bias, h, dh)
    got = cuda._cuda._grid_rnn_host_simulation(x, w_ih, w_left, w_up, b, dh)
    tol = dict(atol=2e-5, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-11, rtol=1e-11)
    what = f"grid R={R} C={C} B={B} I={I} H={H} {np.dtype(dtype).name} bias={bias}"
    assert_close(got[0], h, **tol, what=f"{what}: h")
    for name, e, g in zip(("dx", "dw_ih", "dw_left", "dw_up", "db"), expected, got[1:]):
        if e is None:
            assert g is None
        else:
            # Gradients gather along every path through the grid (values up to ~50 here): float32
            # rounding scales with the array's magnitude, as on the CPU path.
            scale = max(1.0, float(np.abs(e).max())) if dtype == np.float32 else 1.0
            assert_close(g, e, atol=tol["atol"] * scale, rtol=tol["rtol"], what=f"{what}: {name}")
