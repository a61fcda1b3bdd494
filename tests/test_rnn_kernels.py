"""Recurrent kernels (_C.rnn_forward / rnn_backward) against NumPy float64 step-by-step references,
on both kernel paths, and the float64 reference backward against finite differences."""
import numpy as np
import pytest

from conftest import assert_close
import rosenblatt as rb
from rosenblatt import _C, kernels

CELLS = [("lstm", True), ("gru", True), ("gru", False), ("rnn_tanh", True), ("rnn_relu", True)]
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
# (T, B, I, H): primes, batch 1, H not a multiple of 8, T = 1 (a call of under 4 steps at batch <= 4
# multiplies W_hh in place, on rb::gemm's direct path); (4, 1, 5, 24), (5, 3, 7, 13) and (6, 2, 3, 130)
# are sequences at batch <= 4, whose W_hh is packed once per call and multiplied one or a few rows at a
# time (130: backward's K = 4H = 520 spans two K blocks of the packed weight, the units split gives
# ragged panels); (4, 1, 3, 300) the same at batch 1 with H = 300 (an LSTM's backward K = 1200: three blocks);
# (3, 13, 4, 300) has batch > 4 (W_hh packed once per call) and an LSTM's backward K = 1200 in three blocks
# (forward's K spans two blocks in the tests of H = 520 below);
# (12, 7, 3, 6) has T * B > 2 (I + H), where the weight gradients are one product over [X | H_prev];
# (4, 17, 3, 360) has batch >= 16 and enough work for two threads (rnn.cpp runs smaller sequences on
# one): the threads split the steps by batch rows, 8 + 9 here.
SHAPES = [(5, 3, 7, 13), (4, 1, 5, 24), (1, 6, 2, 9), (3, 5, 1, 1), (3, 13, 4, 300), (12, 7, 3, 6), (6, 2, 3, 130),
          (4, 1, 3, 300), (4, 17, 3, 360)]


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths=None, reverse=False, linear_before_reset=True):
    """Step-by-step float64 reference, whole batch per step: returns (y, h_n, c_n)."""
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h, c = h0.copy(), None if c0 is None else c0.copy()
    y = np.zeros((T, B, H))
    lengths = np.full(B, T) if lengths is None else lengths
    for t in (range(T - 1, -1, -1) if reverse else range(T)):
        px, ph = x[t] @ w_ih.T + b_ih, h @ w_hh.T + b_hh
        if cell == "lstm":
            i, f, g, o = np.split(px + ph, 4, axis=1)
            c_new = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
            h_new = sigmoid(o) * np.tanh(c_new)
        elif cell == "gru":
            r, z = sigmoid(px[:, :H] + ph[:, :H]), sigmoid(px[:, H:2 * H] + ph[:, H:2 * H])
            if linear_before_reset:
                n = np.tanh(px[:, 2 * H:] + r * ph[:, 2 * H:])
            else:
                n = np.tanh(px[:, 2 * H:] + (r * h) @ w_hh[2 * H:].T + b_hh[2 * H:])
            h_new = (1 - z) * n + z * h
        else:
            v = px + ph
            h_new = np.tanh(v) if cell == "rnn_tanh" else np.maximum(v, 0)
        active = (t < lengths)[:, None]
        h = np.where(active, h_new, h)
        y[t] = np.where(active, h_new, 0)
        if cell == "lstm":
            c = np.where(active, c_new, c)
    return y, h, c


def make_problem(rng, cell, T, B, I, H, with_lengths):
    G = GATES[cell]
    bound = 1 / np.sqrt(H)
    arrays = dict(x=rng.standard_normal((T, B, I)), h0=rng.standard_normal((B, H)),
                  c0=rng.standard_normal((B, H)) if cell == "lstm" else None,
                  w_ih=rng.uniform(-bound, bound, (G * H, I)), w_hh=rng.uniform(-bound, bound, (G * H, H)),
                  b_ih=rng.uniform(-bound, bound, G * H), b_hh=rng.uniform(-bound, bound, G * H))
    lengths = rng.integers(1, T + 1, size=B).astype(np.int64) if with_lengths else None
    return arrays, lengths


def cast(arrays, dtype):
    return {k: None if v is None else v.astype(dtype) for k, v in arrays.items()}


def run_forward(cell, a, lengths, reverse, lbr, out=None):
    return _C.rnn_forward(cell, a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], a["b_ih"], a["b_hh"], lengths,
                          reverse, lbr, out)


@pytest.mark.parametrize("cell,lbr", CELLS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("with_lengths", [False, True])
def test_forward_matches_numpy(isa, rng, cell, lbr, shape, reverse, with_lengths):
    arrays, lengths = make_problem(rng, cell, *shape, with_lengths)
    y_ref, h_ref, c_ref = numpy_forward(cell, **arrays, lengths=lengths, reverse=reverse, linear_before_reset=lbr)
    for dtype, tol in ((np.float32, 2e-5), (np.float64, 1e-12)):
        y, h_n, c_n, _ = run_forward(cell, cast(arrays, dtype), lengths, reverse, lbr)
        what = f"{cell} lbr={lbr} {shape} reverse={reverse} {np.dtype(dtype)}"
        assert_close(y, y_ref, tol, tol, what + " y")
        assert_close(h_n, h_ref, tol, tol, what + " h_n")
        if cell == "lstm":
            assert_close(c_n, c_ref, tol, tol, what + " c_n")
    expected = "avx2_fused_gemm" if isa != "scalar" else "scalar_ref"
    assert _C.last_impl("rnn_forward") == "scalar_ref"  # float64 ran last
    run_forward(cell, cast(arrays, np.float32), lengths, reverse, lbr)
    assert _C.last_impl("rnn_forward") == expected


def run_backward(cell, a, lengths, reverse, lbr, dy, dh_n, dc_n, clip=0.0):
    _, _, _, saved = run_forward(cell, a, lengths, reverse, lbr)
    dtype = a["x"].dtype
    return _C.rnn_backward(cell, a["x"], a["w_ih"], a["w_hh"], True, lengths, reverse, lbr, saved,
                           dy.astype(dtype), dh_n.astype(dtype), None if dc_n is None else dc_n.astype(dtype), clip)


def loss(cell, a, lengths, reverse, lbr, dy, dh_n, dc_n):
    y, h_n, c_n, _ = run_forward(cell, a, lengths, reverse, lbr)
    return (y * dy).sum() + (h_n * dh_n).sum() + (0 if c_n is None else (c_n * dc_n).sum())


GRAD_NAMES = ["x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"]


@pytest.mark.parametrize("cell,lbr", CELLS)
@pytest.mark.parametrize("reverse", [False, True])
def test_reference_backward_matches_finite_differences(rng, cell, lbr, reverse):
    """The float64 reference backward (the spec every path is compared with) against central differences."""
    arrays, lengths = make_problem(rng, cell, 4, 3, 3, 5, with_lengths=True)
    dy, dh_n = rng.standard_normal((4, 3, 5)), rng.standard_normal((3, 5))
    dc_n = rng.standard_normal((3, 5)) if cell == "lstm" else None
    grads = dict(zip(GRAD_NAMES, run_backward(cell, arrays, lengths, reverse, lbr, dy, dh_n, dc_n)))
    eps = 1e-6
    for name in GRAD_NAMES:
        if arrays[name] is None:
            continue
        flat = arrays[name].reshape(-1)
        numeric = np.zeros(flat.size)
        for i in range(flat.size):
            original = flat[i]
            flat[i] = original + eps
            plus = loss(cell, arrays, lengths, reverse, lbr, dy, dh_n, dc_n)
            flat[i] = original - eps
            minus = loss(cell, arrays, lengths, reverse, lbr, dy, dh_n, dc_n)
            flat[i] = original
            numeric[i] = (plus - minus) / (2 * eps)
        assert_close(grads[name], numeric.reshape(arrays[name].shape), 1e-7, 1e-6, f"{cell} lbr={lbr} d{name}")


@pytest.mark.parametrize("cell,lbr", CELLS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("with_lengths", [False, True])
def test_backward_float32_matches_reference(isa, rng, cell, lbr, shape, with_lengths):
    arrays, lengths = make_problem(rng, cell, *shape, with_lengths)
    T, B, _, H = shape
    dy, dh_n = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    dc_n = rng.standard_normal((B, H)) if cell == "lstm" else None
    for reverse in (False, True):
        expected = run_backward(cell, arrays, lengths, reverse, lbr, dy, dh_n, dc_n)
        actual = run_backward(cell, cast(arrays, np.float32), lengths, reverse, lbr, dy, dh_n, dc_n)
        assert _C.last_impl("rnn_backward") == ("avx2_fused_gemm" if isa != "scalar" else "scalar_ref")
        for name, got, want in zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"], actual, expected):
            if want is None:
                assert got is None
                continue
            scale = np.abs(want).max() + 1e-3
            assert_close(got / scale, want / scale, 2e-5, 0, f"{cell} lbr={lbr} {shape} reverse={reverse} {name}")


def check_on_threads(rng, cell, lbr, T, B, H, threads, with_lengths):
    """The float32 kernels on `threads` threads against the float64 references, forward and backward."""
    arrays, lengths = make_problem(rng, cell, T, B, 3, H, with_lengths=with_lengths)
    a32 = cast(arrays, np.float32)
    dy, dh_n = rng.standard_normal((T, B, H)), rng.standard_normal((B, H))
    dc_n = rng.standard_normal((B, H)) if cell == "lstm" else None
    expected = [numpy_forward(cell, **arrays, lengths=lengths, linear_before_reset=lbr)[0]]
    expected += list(run_backward(cell, arrays, lengths, False, lbr, dy, dh_n, dc_n))
    saved = rb.get_num_threads()
    rb.set_num_threads(threads)
    try:
        actual = [run_forward(cell, a32, lengths, False, lbr)[0]]
        actual += list(run_backward(cell, a32, lengths, False, lbr, dy, dh_n, dc_n))
    finally:
        rb.set_num_threads(saved)
    for name, got, want in zip(["y", "dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"], actual, expected):
        if want is None:
            assert got is None
            continue
        scale = np.abs(want).max() + 1e-3
        assert_close(got / scale, want / scale, 2e-5, 0, f"{cell} lbr={lbr} B={B} threads={threads} {name}")


@pytest.mark.parametrize("cell,lbr", CELLS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_step_splits_agree(rng, cell, lbr, threads):
    """Batch 26 on one thread, and split by batch rows over two (13 + 13) and three threads (8 + 9 + 9):
    every row's recurrence and the summed bias gradients. (H = 360: enough work that rnn.cpp does not
    run the call on one thread; the shared packed W_hh, 23 panels per gate forward and three K blocks
    backward, is packed by the team.)"""
    check_on_threads(rng, cell, lbr, T=4, B=26, H=360, threads=threads, with_lengths=True)


@pytest.mark.parametrize("cell,lbr", CELLS)
@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("B", [1, 2])
def test_small_batch_units_split(rng, cell, lbr, threads, B):
    """A sequence at batch 1 and 2 split by hidden units over two and three threads (8-aligned slices
    of H = 520: 256 + 264, and 168 + 176 + 176), each thread multiplying by its own packed columns of
    W_hh. (T = 32: enough work that rnn.cpp uses the threads.)"""
    check_on_threads(rng, cell, lbr, T=32, B=B, H=520, threads=threads, with_lengths=False)


@pytest.mark.parametrize("cell,lbr", CELLS)
@pytest.mark.parametrize("threads", [2, 3])
def test_single_step_splits_by_units(rng, cell, lbr, threads):
    """One step at batch 32, where the rows split gives way to the units split (a cell step): each thread
    packs its own columns of W_hh. (H = 520: enough work for the threads.)"""
    check_on_threads(rng, cell, lbr, T=1, B=32, H=520, threads=threads, with_lengths=False)


def numpy_lstm_backward_dc0(x, h0, c0, w_ih, w_hh, b_ih, b_hh, dy, clip):
    """BPTT of an LSTM in float64 with dL/dc clipped to [-clip, clip] at every step; returns dc0, dh0."""
    T = x.shape[0]
    H = w_hh.shape[1]
    h, c, cache = h0, c0, []
    for t in range(T):
        pre = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i, f, g, o = sigmoid(pre[:, :H]), sigmoid(pre[:, H:2 * H]), np.tanh(pre[:, 2 * H:3 * H]), sigmoid(pre[:, 3 * H:])
        c_new = f * c + i * g
        cache.append((h, c, i, f, g, o, np.tanh(c_new)))
        h, c = o * np.tanh(c_new), c_new
    dh, dc = np.zeros_like(h0), np.zeros_like(c0)
    for t in reversed(range(T)):
        h_prev, c_prev, i, f, g, o, tc = cache[t]
        dh = dh + dy[t]
        dct = np.clip(dc + dh * o * (1 - tc ** 2), -clip, clip)
        dpre = np.concatenate([dct * g * i * (1 - i), dct * c_prev * f * (1 - f), dct * i * (1 - g ** 2),
                               dh * tc * o * (1 - o)], axis=1)
        dc, dh = dct * f, dpre @ w_hh
    return dc, dh


def test_lstm_cell_gradient_clipping(isa, rng):
    arrays, _ = make_problem(rng, "lstm", 6, 3, 4, 10, with_lengths=False)
    dy = rng.standard_normal((6, 3, 10)) * 5
    clip = 0.3
    dc_ref, dh_ref = numpy_lstm_backward_dc0(**{k: v for k, v in arrays.items()}, dy=dy, clip=clip)
    a32 = cast(arrays, np.float32)
    _, _, _, saved = run_forward("lstm", a32, None, False, True)
    grads = _C.rnn_backward("lstm", a32["x"], a32["w_ih"], a32["w_hh"], True, None, False, True, saved,
                            dy.astype(np.float32), None, None, clip)
    assert_close(grads[2], dc_ref, 1e-5, 1e-4, "clipped dc0")
    assert_close(grads[1], dh_ref, 1e-5, 1e-4, "clipped dh0")
    assert np.abs(grads[2]).max() < clip  # dc0 = clipped dc * f, |f| < 1


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_nan_comes_out_as_nan(isa, rng, cell):
    """A NaN in x reaches every later output of its row, and a NaN in dy the clipped cell gradient, as in
    the reference and in torch. (min/max instructions return one operand when the other is NaN: the
    exp clamp, relu and the clip turned NaN into a bound, and a NaN input gave finite outputs.)"""
    T, B, H = 5, 3, 16
    arrays, _ = make_problem(rng, cell, T, B, 4, H, with_lengths=False)
    a = cast(arrays, np.float32)
    a["x"][2, 1, 0] = np.nan
    y, _, _, saved = run_forward(cell, a, None, False, True)
    assert np.isnan(y[2:, 1]).all(), "the NaN row must stay NaN"
    assert not np.isnan(y[:2]).any() and not np.isnan(y[:, [0, 2]]).any(), "other rows and steps stay finite"
    assert np.isnan(_C.rnn_activation("sigmoid", np.full(9, np.nan, np.float32))).all()
    assert np.isnan(_C.rnn_activation("tanh", np.full(9, np.nan, np.float32))).all()
    if cell == "lstm":
        a["x"][2, 1, 0] = 0.0
        _, _, _, saved = run_forward(cell, a, None, False, True)
        dy = rng.standard_normal((T, B, H)).astype(np.float32)
        dy[4, 1, 3] = np.nan
        dc0 = _C.rnn_backward(cell, a["x"], a["w_ih"], a["w_hh"], True, None, False, True, saved, dy, None, None,
                              0.3)[2]
        assert np.isnan(dc0[1]).any() and not np.isnan(dc0[[0, 2]]).any()


def test_output_into_column_slice_and_dx_accumulation(isa, rng):
    """A bidirectional layer writes each direction into half of one (T, B, 2H) array and sums dx."""
    arrays, lengths = make_problem(rng, "gru", 4, 3, 5, 6, with_lengths=True)
    a = cast(arrays, np.float32)
    out = np.full((4, 3, 12), np.nan, np.float32)
    y_fwd, _, _, saved_f = run_forward("gru", a, lengths, False, True, out[:, :, :6])
    y_bwd, _, _, saved_b = run_forward("gru", a, lengths, True, True, out[:, :, 6:])
    assert y_fwd.base is not None and np.shares_memory(y_fwd, out)
    ref_f = numpy_forward("gru", **arrays, lengths=lengths)[0]
    ref_b = numpy_forward("gru", **arrays, lengths=lengths, reverse=True)[0]
    assert_close(out, np.concatenate([ref_f, ref_b], axis=2), 2e-5, 2e-5, "bidirectional output")

    dy = rng.standard_normal((4, 3, 12)).astype(np.float32)
    args = (a["x"], a["w_ih"], a["w_hh"], True, lengths)
    dx_f = _C.rnn_backward("gru", *args, False, True, saved_f, dy[:, :, :6], None, None)[0]
    dx_b = _C.rnn_backward("gru", *args, True, True, saved_b, dy[:, :, 6:], None, None)[0]
    dx = dx_f.copy()
    _C.rnn_backward("gru", *args, True, True, saved_b, dy[:, :, 6:], None, None, 0.0, dx)
    assert_close(dx, dx_f + dx_b, 1e-6, 1e-6, "accumulated dx")
    with pytest.raises(TypeError, match="^gru_backward: dx has dtype float64"):  # it said "out"
        _C.rnn_backward("gru", *args, True, True, saved_b, dy[:, :, 6:], None, None, 0.0, dx.astype(np.float64))


def test_recycled_results_are_never_shared_while_alive(rng):
    """Results of 1 MiB and more come from a pool of freed blocks (bindings/arrays.cpp): a live result
    never shares memory with another, and a block freed and handed out again gives correct results."""
    arrays, _ = make_problem(rng, "lstm", 32, 16, 8, 136, with_lengths=False)  # gates: 32*16*544 floats > 1 MiB
    a = cast(arrays, np.float32)
    first = run_forward("lstm", a, None, False, True)
    second = run_forward("lstm", a, None, False, True)
    big = lambda result: [result[0], *result[3]]  # y and the saved activations
    assert big(first)[1].nbytes >= 1 << 20
    for p in big(first):
        for q in big(second):
            assert not np.shares_memory(p, q)
    expected = [p.copy() for p in big(second)]
    freed_gates = first[3][0].ctypes.data
    del first  # its blocks go back to the pool
    third = run_forward("lstm", a, None, False, True)
    assert third[3][0].ctypes.data == freed_gates  # the gates' block of that size was handed out again
    for p, q, e in zip(big(third), big(second), expected):
        assert not np.shares_memory(p, q)
        np.testing.assert_array_equal(q, e)  # the live result was not written over
        np.testing.assert_array_equal(p, e)  # the same problem gives the same result in a reused block


def test_recycled_empty_and_gemm_results(rng):
    """_C.recycled_empty and kernels.gemm's results draw on the same pool: live arrays never share
    memory, a freed block is handed out again, and bad arguments raise."""
    n = 1 << 19  # 2 MiB of float32
    first, second = _C.recycled_empty(n, "float32"), _C.recycled_empty(n, "float32")
    assert first.shape == (n,) and first.dtype == np.float32 and not np.shares_memory(first, second)
    freed = first.ctypes.data
    del first
    third = _C.recycled_empty(n, "float32")
    assert third.ctypes.data == freed
    a, b = rng.standard_normal((512, 300)).astype(np.float32), rng.standard_normal((300, 1024)).astype(np.float32)
    products = [kernels.gemm(a, b) for _ in range(2)]  # 2 MiB each
    assert not np.shares_memory(products[0], products[1]) and not np.shares_memory(products[0], third)
    np.testing.assert_array_equal(products[0], products[1])
    with pytest.raises(TypeError, match="recycled_empty: dtype must be float32 or float64, got int64"):
        _C.recycled_empty(4, "int64")
    with pytest.raises(ValueError, match="recycled_empty: count must be >= 0, got -1"):
        _C.recycled_empty(-1, "float32")


def test_recycled_blocks_across_the_huge_page_threshold():
    """Pool blocks from 1 MiB up are whole huge pages aligned to one (common/large_block.cpp), the data
    64 bytes in: arrays just below and at the threshold and across huge pages are fully writable and
    never overlap."""
    # float32 counts: 1 MiB - 64 B (a plain NumPy array), 1 MiB, 2 MiB + 4 B, 3 MiB
    counts = [(1 << 18) - 16, 1 << 18, (1 << 19) + 1, 3 << 18]
    arrays = [_C.recycled_empty(n, "float32") for n in counts]
    for k, a in enumerate(arrays):
        a[:] = k
    for k, a in enumerate(arrays):
        assert (a == k).all()
        assert not any(np.shares_memory(a, b) for b in arrays[k + 1:])
    assert all(a.ctypes.data % (2 << 20) == 64 for a in arrays[1:])


def test_activations_accuracy(isa):
    """sigmoid and tanh as the fused passes compute them: max relative error vs float64 <= 1e-6."""
    x = np.concatenate([np.linspace(-30, 30, 200001), np.linspace(-1e-3, 1e-3, 2001), np.geomspace(1e-30, 1e-4, 500),
                        -np.geomspace(1e-30, 1e-4, 500), [0.0, 0.625, -0.625, 0.6249999, 87.0, -87.0]])
    x32 = x.astype(np.float32)
    exact = {"sigmoid": 1 / (1 + np.exp(-x32.astype(np.float64))), "tanh": np.tanh(x32.astype(np.float64))}
    for name, want in exact.items():
        got = _C.rnn_activation(name, x32)
        rel = np.abs(got - want) / np.maximum(np.abs(want), 1e-300)
        assert rel.max() <= 1e-6, f"{name}: max relative error {rel.max():.3g} at x={x32[np.argmax(rel)]}"
    assert _C.last_impl("rnn_tanh") == ("avx2" if isa != "scalar" else "scalar_ref")
    big = np.array([100.0, -100.0, 1e30, -1e30], np.float32)
    assert_close(_C.rnn_activation("sigmoid", big), [1, 0, 1, 0], 1e-30, 0, "sigmoid saturation")
    assert_close(_C.rnn_activation("tanh", big), [1, -1, 1, -1], 0, 0, "tanh saturation")


def test_kernel_rejects_bad_arguments(rng):
    arrays, _ = make_problem(rng, "lstm", 3, 2, 4, 5, with_lengths=False)
    a = cast(arrays, np.float32)
    with pytest.raises(ValueError, match=r"lstm_forward: w_ih has shape \(20, 4\), expected \(20, 3\)"):
        _C.rnn_forward("lstm", a["x"][:, :, :3].copy(), a["h0"], a["c0"], a["w_ih"], a["w_hh"], None, None, None,
                       False, True)
    with pytest.raises(ValueError, match=r"lstm_forward: lengths\[1\] = 4 is outside \[1, 3\]"):
        run_forward("lstm", a, np.array([1, 4]), False, True)
    with pytest.raises(ValueError, match=r"lstm_forward: lengths\[0\] = 0"):
        run_forward("lstm", a, np.array([0, 1]), False, True)
    with pytest.raises(ValueError, match=r"lstm_forward: c0 has shape \(3, 5\), expected \(2, 5\)"):
        _C.rnn_forward("lstm", a["x"], a["h0"], np.zeros((3, 5), np.float32), a["w_ih"], a["w_hh"], None, None,
                       None, False, True)
    with pytest.raises(TypeError, match="lstm_forward: h0 has dtype float64"):
        _C.rnn_forward("lstm", a["x"], arrays["h0"], a["c0"], a["w_ih"], a["w_hh"], None, None, None, False, True)
    with pytest.raises(ValueError, match="must have contiguous rows"):
        run_forward("lstm", a, None, False, True, out=np.zeros((3, 2, 10), np.float32)[:, :, ::2])
    with pytest.raises(ValueError, match="unknown cell"):
        _C.rnn_forward("lstn", a["x"], a["h0"], a["c0"], a["w_ih"], a["w_hh"], None, None, None, False, True)
    _, _, _, saved = run_forward("lstm", a, None, False, True)
    with pytest.raises(ValueError, match=r"lstm_backward: saved gates has shape"):
        _C.rnn_backward("lstm", a["x"], a["w_ih"], a["w_hh"], True, None, False, True,
                        (saved[0][:2], *saved[1:]), None, None, None)
    with pytest.raises(ValueError, match=r"lstm_backward: dy has shape \(3, 2, 4\), expected \(3, 2, 5\)"):
        _C.rnn_backward("lstm", a["x"], a["w_ih"], a["w_hh"], True, None, False, True, saved,
                        np.zeros((3, 2, 4), np.float32), None, None)
