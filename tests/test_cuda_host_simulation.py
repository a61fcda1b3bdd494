"""The SGEMM kernel's own code (fetch, shared-memory layout, arithmetic, epilogue) run on the host,
barrier phase by barrier phase, against NumPy: its indexing is tested on machines without a GPU.

Unused storage (padding of the leading dimensions, C beyond its columns) holds NaN, so a read of
memory the kernel should not touch poisons the result, and a write outside C shows up as a lost NaN.
"""
import numpy as np
import pytest

from rosenblatt import cuda
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")

F32 = np.float32


def _storage(matrix, pad, offset):
    """A flat buffer holding `matrix` row-major with leading dimension cols + pad, starting `offset`
    floats in (an offset not a multiple of 4 misaligns it for float4), everything else NaN."""
    rows, cols = matrix.shape
    ld = cols + pad
    buffer = np.full(offset + max(rows * ld, 1), np.nan, F32)
    buffer[offset:offset + rows * ld].reshape(rows, ld)[:, :cols] = matrix
    return buffer[offset:], ld


def simulate(a, b, trans_a=False, trans_b=False, pad=0, offset=0, alpha=1.0, beta=0.0, c0=None):
    m, k = a.shape
    n = b.shape[1]
    buf_a, lda = _storage(np.ascontiguousarray(a.T) if trans_a else a, pad, offset)
    buf_b, ldb = _storage(np.ascontiguousarray(b.T) if trans_b else b, pad, offset)
    c_init = np.full((m, n), np.nan, F32) if c0 is None else c0
    buf_c, ldc = _storage(c_init, pad, offset)
    cuda._cuda._sgemm_host_simulation(buf_a, buf_b, buf_c, m, n, k, lda, ldb, ldc, trans_a, trans_b, alpha, beta)
    c_full = buf_c[:m * ldc].reshape(m, ldc) if m else np.zeros((0, ldc), F32)
    assert np.all(np.isnan(c_full[:, n:])), "written outside C"
    return c_full[:, :n]


SHAPES = [(1, 1, 1), (5, 7, 3), (130, 67, 33), (128, 128, 8), (129, 257, 17), (64, 200, 0), (3, 130, 9)]


@pytest.mark.parametrize("m,n,k", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_kernel_code_matches_numpy(rng, m, n, k, trans_a, trans_b):
    a = rng.standard_normal((m, k)).astype(F32)
    b = rng.standard_normal((k, n)).astype(F32)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    for pad, offset in ((0, 0), (4, 0), (3, 1)):  # float4 paths where aligned; scalar paths otherwise
        out = simulate(a, b, trans_a, trans_b, pad=pad, offset=offset)
        assert_close(out, expected, atol=1e-5, rtol=1e-5, what=f"{m}x{n}x{k} ta={trans_a} tb={trans_b} pad={pad}")


def test_alpha_beta(rng):
    a, b = rng.standard_normal((70, 20)).astype(F32), rng.standard_normal((20, 131)).astype(F32)
    c0 = rng.standard_normal((70, 131)).astype(F32)
    for pad, offset in ((0, 0), (1, 2)):
        out = simulate(a, b, alpha=0.5, beta=-2.0, c0=c0.copy(), pad=pad, offset=offset)
        assert_close(out, 0.5 * (a.astype(np.float64) @ b) - 2.0 * c0, atol=1e-5, rtol=1e-5)


def test_batched_strides(rng):
    batch, m, n, k = 3, 20, 9, 13
    a = rng.standard_normal((batch, m, k)).astype(F32)
    b = rng.standard_normal((batch, k, n)).astype(F32)
    c = np.full((batch, m, n), np.nan, F32)
    cuda._cuda._sgemm_host_simulation(a, b, c, m, n, k, k, n, n, batch=batch, stride_a=m * k, stride_b=k * n,
                                      stride_c=m * n)
    assert_close(c, a.astype(np.float64) @ b, atol=1e-5, rtol=1e-5)
    shared = b[:1]  # stride 0: one B for every batch
    cuda._cuda._sgemm_host_simulation(a, shared, c, m, n, k, k, n, n, batch=batch, stride_a=m * k, stride_b=0,
                                      stride_c=m * n)
    assert_close(c, a.astype(np.float64) @ shared, atol=1e-5, rtol=1e-5)


def test_buffers_too_small_are_refused():
    with pytest.raises(ValueError, match="too small"):
        cuda._cuda._sgemm_host_simulation(np.zeros(5, F32), np.zeros(5, F32), np.zeros(4, F32), 2, 2, 3, 3, 2, 2)


# ---- element-wise: the broadcast layout and the kernels' offset helper, run on the host ------------
def _expected_offsets(shapes, strides):
    """Offsets NumPy reads for each output element: an index array viewed through the strides."""
    out_shape = np.broadcast_shapes(*shapes)
    columns = []
    for shape, stride in zip(shapes, strides):
        extent = 1 + sum((s - 1) * abs(st) for s, st in zip(shape, stride))
        base = np.arange(2 * extent, dtype=np.int64) - extent  # room for negative strides
        start = extent
        view = np.lib.stride_tricks.as_strided(base[start:], shape=shape, strides=[st * 8 for st in stride])
        columns.append(np.broadcast_to(view, out_shape).ravel())
    return out_shape, np.stack(columns, axis=1) if columns else None


def _c_strides(shape):
    strides, step = [], 1
    for s in reversed(shape):
        strides.append(step)
        step *= max(s, 1)
    return list(reversed(strides))


BROADCAST_CASES = [
    [(3, 4), (4,)],
    [(2, 1, 5), (3, 1)],
    [(), (5,)],
    [(4, 1), (1, 6), (6,)],
    [(2, 3, 1, 4, 1, 2, 1, 3), (3, 1, 1, 2, 5, 1)],
    [(7,), (7,)],
]


@pytest.mark.parametrize("shapes", BROADCAST_CASES)
def test_broadcast_offsets_contiguous_inputs(shapes):
    strides = [_c_strides(s) for s in shapes]
    shape, contiguous, offsets = cuda._cuda._broadcast_offsets([list(s) for s in shapes], strides)
    expected_shape, expected = _expected_offsets(shapes, strides)
    assert shape == expected_shape
    assert contiguous == all(tuple(s) == expected_shape for s in shapes)
    np.testing.assert_array_equal(offsets, expected)


def test_broadcast_offsets_strided_inputs(rng):
    for _ in range(40):
        ndim = int(rng.integers(1, 6))
        shape = [int(rng.integers(1, 5)) for _ in range(ndim)]
        other = [s if rng.random() < 0.6 else 1 for s in shape][int(rng.integers(0, ndim)):]
        shapes = [shape, other]
        strides = [[int(rng.integers(-7, 8)) for _ in s] for s in shapes]  # negative, zero, any stride
        out_shape, contiguous, offsets = cuda._cuda._broadcast_offsets(shapes, strides)
        expected_shape, expected = _expected_offsets([tuple(s) for s in shapes], strides)
        assert out_shape == expected_shape
        np.testing.assert_array_equal(offsets, expected)


def test_broadcast_refuses_bad_shapes():
    with pytest.raises(ValueError, match="do not broadcast"):
        cuda._cuda._broadcast_offsets([[3, 4], [5]], [[4, 1], [1]])
    with pytest.raises(ValueError, match="at most 8 dimensions"):
        cuda._cuda._broadcast_offsets([[1] * 9], [[1] * 9])
