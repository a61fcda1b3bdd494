"""CUDA recurrent kernels (cuda.rnn_forward / rnn_backward) against the CPU kernels (rosenblatt._C).

Same names, arguments and return tuples as _C; DeviceArrays in place of NumPy arrays. Before every
kernel call the allocator's cache is filled with NaN blocks of every size the call allocates (see
`poison_cache`), so an output element the kernels fail to write shows up as NaN.
"""
import numpy as np
import pytest

from rosenblatt import _C, cuda
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device")

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def dev(array):
    return None if array is None else cuda.from_numpy(np.ascontiguousarray(array))


def host(array):
    return None if array is None else array.to_numpy()


def poison_cache(nbytes_list, copies=3):
    """Leave NaN-filled blocks of each size class on the allocator's free lists, so that the next
    allocations of those sizes (the kernels' outputs and scratch) start as NaN."""
    fillers = [cuda.from_numpy(np.full(max(n // 4, 1), np.nan, np.float32)) for n in nbytes_list for _ in range(copies)]
    cuda.synchronize()
    del fillers


def _sizes(cell, T, B, I, H, itemsize):
    G = GATES[cell]
    return [n * itemsize for n in (T * B * H, B * H, T * B * G * H, H * G * H, T * B * I, G * H * I, G * H)]


def _inputs(rng, cell, T, B, I, H, dtype, bias=True):
    G = GATES[cell]

    def r(*shape, scale=0.5):
        return (rng.standard_normal(shape) * scale).astype(dtype)

    # Weights scaled as PyTorch initialises them (~1/sqrt(fan-in)): well-conditioned at any size,
    # so that float32 rounding stays near 1e-6 relative.
    w = min(0.5, 1.5 / np.sqrt(max(I, H)))
    weights = (r(G * H, I, scale=w), r(G * H, H, scale=w), r(G * H) if bias else None, r(G * H) if bias else None)
    return r(T, B, I), r(B, H), (r(B, H) if cell == "lstm" else None), weights, r(T, B, H), r(B, H), r(B, H)


def _tolerances(dtype, cell):
    if dtype == np.float64:
        return dict(atol=1e-11, rtol=1e-10), dict(atol=1e-10, rtol=1e-9)
    loose = 3 if cell == "rnn_relu" else 1  # relu does not squash: larger values, larger rounding
    return dict(atol=2e-5 * loose, rtol=1e-4 * loose), dict(atol=5e-5 * loose, rtol=3e-4 * loose)


def check(rng, cell, T, B, I, H, dtype=np.float32, lbr=True, reverse=False, lengths=None, bias=True, clip=0.0,
          lengths_on_device=False):
    x, h0, c0, (w_ih, w_hh, b_ih, b_hh), dy, dh_n, dc_n = _inputs(rng, cell, T, B, I, H, dtype, bias)
    lstm = cell == "lstm"
    if lengths is not None:
        lengths = np.asarray(lengths, np.int64)
    d_lengths = dev(lengths) if lengths_on_device else lengths
    what = f"{cell} T={T} B={B} I={I} H={H} {np.dtype(dtype).name} lbr={lbr} reverse={reverse} lengths={lengths}"
    ftol, gtol = _tolerances(dtype, cell)

    expected = _C.rnn_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, lbr)
    dx_, dh0_, dc0_ = dev(x), dev(h0), dev(c0)
    dw = [dev(w) for w in (w_ih, w_hh, b_ih, b_hh)]
    poison_cache(_sizes(cell, T, B, I, H, np.dtype(dtype).itemsize))
    y, h_n, c_n, saved = cuda.rnn_forward(cell, dx_, dh0_, dc0_, *dw, d_lengths, reverse, lbr)
    assert isinstance(saved, tuple) and len(saved) == 4
    for name, e, g in zip(("y", "h_n", "c_n"), expected[:3], (y, h_n, c_n)):
        if e is None:
            assert g is None, f"{what}: {name}"
        else:
            assert g.dtype == np.dtype(dtype).name
            assert_close(host(g), e, **ftol, what=f"{what}: {name}")

    expected_grads = _C.rnn_backward(cell, x, w_ih, w_hh, bias, lengths, reverse, lbr, expected[3], dy, dh_n,
                                     dc_n if lstm else None, clip)
    poison_cache(_sizes(cell, T, B, I, H, np.dtype(dtype).itemsize))
    grads = cuda.rnn_backward(cell, dx_, dw[0], dw[1], bias, d_lengths, reverse, lbr, saved, dev(dy), dev(dh_n),
                              dev(dc_n) if lstm else None, clip)
    assert len(grads) == 7
    for name, e, g in zip(("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"), expected_grads, grads):
        if e is None:
            assert g is None, f"{what}: {name}"
        else:
            assert_close(host(g), e, **gtol, what=f"{what}: {name}")
    return x, saved, expected_grads


# Around the step tiles (16 rows x 16 units), the reduction chunks (64 / 32) and the SGEMM's 128.
SHAPES = [(3, 5, 7, 19), (5, 1, 13, 37), (2, 17, 3, 70), (1, 1, 1, 1), (4, 33, 65, 130)]


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("T,B,I,H", SHAPES)
def test_matches_cpu(rng, cell, dtype, T, B, I, H):
    check(rng, cell, T, B, I, H, dtype)


@pytest.mark.parametrize("cell", sorted(GATES))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lengths_and_direction(rng, cell, reverse, dtype):
    lengths = [6, 1, 3, 2, 6, 5, 1, 2, 3, 4, 6, 6, 1, 1, 2, 3, 4]
    check(rng, cell, 6, 17, 5, 23, dtype, reverse=reverse, lengths=lengths)


def test_lengths_as_device_array(rng):
    check(rng, "lstm", 4, 3, 5, 7, lengths=[4, 1, 2], lengths_on_device=True)


@pytest.mark.parametrize("lbr", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gru_forms(rng, lbr, dtype):
    check(rng, "gru", 5, 18, 9, 37, dtype, lbr=lbr, lengths=[5, 1, 2] * 6)
    check(rng, "gru", 3, 2, 4, 5, dtype, lbr=lbr, reverse=True, bias=False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lstm_clip_and_no_bias(rng, dtype):
    check(rng, "lstm", 6, 3, 4, 9, dtype, clip=0.05, lengths=[6, 2, 3])
    check(rng, "lstm", 3, 2, 3, 6, dtype, bias=False)


def test_benchmark_shape_float32(rng):
    # The shape of the GPU benchmark, shortened in time: many blocks, full tiles and chunks.
    check(rng, "lstm", 3, 64, 512, 512)
    check(rng, "gru", 3, 64, 512, 512)


def test_missing_gradients_and_dx_accumulation(rng):
    cell, T, B, I, H = "lstm", 4, 3, 5, 7
    x, h0, c0, (w_ih, w_hh, b_ih, b_hh), dy, dh_n, dc_n = _inputs(rng, cell, T, B, I, H, np.float32)
    expected = _C.rnn_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, None, False, True)
    _, _, _, saved = cuda.rnn_forward(cell, dev(x), dev(h0), dev(c0), dev(w_ih), dev(w_hh), dev(b_ih), dev(b_hh),
                                      None, False, True)
    # No dy, dh_n, dc_n: only zeros flow back.
    e = _C.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, expected[3], dy, None, None)
    start = rng.standard_normal((T, B, I)).astype(np.float32)
    d_start = dev(start)
    g = cuda.rnn_backward(cell, dev(x), dev(w_ih), dev(w_hh), True, None, False, True, saved, dev(dy), None, None,
                          dx=d_start)
    assert g[0] is d_start
    assert_close(host(g[0]), start + e[0], atol=2e-5, rtol=1e-4, what="dx accumulated")
    for name, a, b in zip(("dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"), g[1:], e[1:]):
        assert_close(host(a), b, atol=2e-5, rtol=1e-4, what=name)
    zero = cuda.rnn_backward(cell, dev(x), dev(w_ih), dev(w_hh), True, None, False, True, saved, None, None, None)
    for a in zero:
        assert np.all(host(a) == 0)


def test_column_slices_as_out_and_dy(rng):
    """The bidirectional layer passes y[:, :, d*H:(d+1)*H] of a (T, B, 2H) array as out and dy."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    cell, T, B, I, H = "gru", 4, 3, 5, 6
    x, h0, _, (w_ih, w_hh, b_ih, b_hh), dy, dh_n, _ = _inputs(rng, cell, T, B, I, H, np.float32)
    both = torch.full((T, B, 2 * H), float("nan"), device="cuda")
    out = cuda.from_dlpack(both[:, :, H:])
    args = [dev(a) for a in (x, h0)] + [None] + [dev(a) for a in (w_ih, w_hh, b_ih, b_hh)]
    y, h_n, c_n, saved = cuda.rnn_forward(cell, *args, None, True, True, out)
    assert y is out and c_n is None
    e = _C.rnn_forward(cell, x, h0, None, w_ih, w_hh, b_ih, b_hh, None, True, True)
    cuda.synchronize()
    assert_close(both[:, :, H:].cpu().numpy(), e[0], atol=2e-5, rtol=1e-4, what="out slice")
    assert torch.isnan(both[:, :, :H]).all(), "written outside the slice"
    dy_both = torch.from_numpy(np.concatenate([dy, dy * 3], axis=2)).cuda()
    g = cuda.rnn_backward(cell, dev(x), dev(w_ih), dev(w_hh), True, None, True, True, saved,
                          cuda.from_dlpack(dy_both[:, :, H:]), dev(dh_n), None)
    eg = _C.rnn_backward(cell, x, w_ih, w_hh, True, None, True, True, e[3], np.ascontiguousarray(dy * 3), dh_n, None)
    for a, b in zip(g, eg):
        if b is not None:
            assert_close(host(a), b, atol=5e-5, rtol=3e-4)


def test_layer_sequence_through_dispatch_signature(rng):
    """Called positionally and by keyword exactly as _rnn_functional calls _C."""
    cell, T, B, I, H = "rnn_tanh", 3, 2, 4, 5
    x, h0, _, (w_ih, w_hh, b_ih, b_hh), dy, dh_n, _ = _inputs(rng, cell, T, B, I, H, np.float64)
    _, h_last, c_last, kept = cuda.rnn_forward(cell, dev(x), dev(h0), None, dev(w_ih), dev(w_hh), dev(b_ih),
                                               dev(b_hh), None, False, True, None)
    assert c_last is None
    dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh = cuda.rnn_backward(
        cell, dev(x), dev(w_ih), dev(w_hh), True, None, False, True, kept, dev(dy), dev(dh_n), None,
        cell_grad_clip=0.0, dx=None)
    assert dc0 is None and dx.shape == (T, B, I) and db_hh.shape == (H,)


# ---- bad arguments: exceptions naming the op and the shapes, nothing launched ------------------------
def _good(rng, cell="lstm", T=3, B=2, I=4, H=5):
    x, h0, c0, (w_ih, w_hh, b_ih, b_hh), *_ = _inputs(rng, cell, T, B, I, H, np.float32)
    return [cell, dev(x), dev(h0), dev(c0), dev(w_ih), dev(w_hh), dev(b_ih), dev(b_hh), None, False, True]


def test_forward_bad_arguments(rng):
    args = _good(rng)
    with pytest.raises(ValueError, match="unknown cell"):
        cuda.rnn_forward("lstmx", *args[1:])
    bad = list(args)
    bad[2] = dev(np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match=r"lstm_forward: h0 has shape \[3, 5\], expected \[2, 5\]"):
        cuda.rnn_forward(*bad)
    bad = list(args)
    bad[4] = dev(np.zeros((20, 4), np.float64))
    with pytest.raises(TypeError, match="lstm_forward: w_ih has dtype float64"):
        cuda.rnn_forward(*bad)
    bad = list(args)
    bad[1] = np.zeros((3, 2, 4), np.float32)
    with pytest.raises(TypeError, match="x must be a DeviceArray"):
        cuda.rnn_forward(*bad)
    bad = list(args)
    bad[1] = dev(np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match=r"x must be \(T, B, I\)"):
        cuda.rnn_forward(*bad)
    bad = list(args)
    bad[3] = None
    with pytest.raises(TypeError, match="c0 must be a DeviceArray"):
        cuda.rnn_forward(*bad)
    for lengths in ([3, 0], [4, 1], [1, 2, 3]):
        bad = list(args)
        bad[8] = np.array(lengths)
        with pytest.raises(ValueError, match="lengths"):
            cuda.rnn_forward(*bad)
    bad = list(args)
    bad[1] = dev(np.zeros((0, 2, 4), np.float32))
    with pytest.raises(ValueError, match="empty"):
        cuda.rnn_forward(*bad)
    with pytest.raises(ValueError, match="out has shape"):
        cuda.rnn_forward(*args, dev(np.zeros((3, 2, 6), np.float32)))
    square = _good(rng, I=5)  # x (3, 2, 5) has the shape of y: passing it as out must be refused
    with pytest.raises(ValueError, match="out .* overlaps an input"):
        cuda.rnn_forward(*square, square[1])


def test_backward_bad_arguments(rng):
    args = _good(rng)
    _, _, _, saved = cuda.rnn_forward(*args)
    cell, x, _, _, w_ih, w_hh = args[:6]
    with pytest.raises(ValueError, match="saved must be the 4-tuple"):
        cuda.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, saved[:3], None, None, None)
    with pytest.raises(ValueError, match=r"lstm_backward: saved gates has shape"):
        cuda.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, (saved[1],) + saved[1:], None, None, None)
    with pytest.raises(ValueError, match="dy has shape"):
        cuda.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, saved, dev(np.zeros((3, 2, 4), np.float32)),
                          None, None)
    with pytest.raises(ValueError, match="dx has shape"):
        cuda.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, saved, None, None, None,
                          dx=dev(np.zeros((3, 2, 5), np.float32)))
    with pytest.raises(ValueError, match="dx .* overlaps an input"):
        cuda.rnn_backward(cell, x, w_ih, w_hh, True, None, False, True, saved, None, None, None, dx=x)


# ---- grid recurrence ---------------------------------------------------------------------------------
GRID_SHAPES = [(1, 1, 1, 1, 1), (3, 4, 2, 5, 7), (5, 2, 17, 3, 19), (2, 7, 3, 4, 70), (4, 3, 1, 6, 300),
               (6, 6, 8, 20, 64)]


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
    size = np.dtype(dtype).itemsize
    poison_cache([R * C * B * H * size, 2 * H * H * size, R * C * B * I * size, H * I * size, H * H * size])
    d_h = cuda.grid_rnn_forward(dev(x), dev(w_ih), dev(w_left), dev(w_up), dev(b))
    ftol, gtol = _tolerances(dtype, "grid")
    what = f"grid R={R} C={C} B={B} I={I} H={H} {np.dtype(dtype).name} bias={bias}"
    assert_close(host(d_h), h, **ftol, what=f"{what}: h")
    poison_cache([R * C * B * H * size, R * C * B * I * size, H * I * size, H * H * size])
    got = cuda.grid_rnn_backward(dev(x), dev(w_ih), dev(w_left), dev(w_up), bias, d_h, dev(dh))
    assert len(got) == 5
    for name, e, g in zip(("dx", "dw_ih", "dw_left", "dw_up", "db"), expected, got):
        if e is None:
            assert g is None
        else:
            # Gradients gather along every path through the grid (values up to ~50 here): float32
            # rounding scales with the array's magnitude, as on the CPU path.
            scale = max(1.0, float(np.abs(e).max())) if dtype == np.float32 else 1.0
            assert_close(host(g), e, atol=gtol["atol"] * scale, rtol=gtol["rtol"], what=f"{what}: {name}")


def test_grid_bad_arguments(rng):
    x = dev(np.zeros((2, 3, 1, 4), np.float32))
    w_ih, w = dev(np.zeros((5, 4), np.float32)), dev(np.zeros((5, 5), np.float32))
    with pytest.raises(ValueError, match=r"grid_rnn_forward: x must be \(R, C, B, I\)"):
        cuda.grid_rnn_forward(dev(np.zeros((2, 3, 4), np.float32)), w_ih, w, w, None)
    with pytest.raises(ValueError, match=r"grid_rnn_forward: w_up has shape \[4, 4\], expected \[5, 5\]"):
        cuda.grid_rnn_forward(x, w_ih, w, dev(np.zeros((4, 4), np.float32)), None)
    with pytest.raises(TypeError, match="grid_rnn_forward: bias has dtype float64"):
        cuda.grid_rnn_forward(x, w_ih, w, w, dev(np.zeros(5)))
    h = cuda.grid_rnn_forward(x, w_ih, w, w, None)
    with pytest.raises(ValueError, match=r"grid_rnn_backward: dh has shape"):
        cuda.grid_rnn_backward(x, w_ih, w, w, False, h, dev(np.zeros((2, 3, 1, 4), np.float32)))
