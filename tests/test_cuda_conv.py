"""CUDA convolution and pooling kernels against the CPU module's (rosenblatt._C), called with the
same names and arguments, on awkward configurations in float32 and float64.

The whole module needs a GPU (tests/test_cuda_conv_host_simulation.py runs the convolution kernel's
code on the host without one). Each result buffer is poisoned with NaN first (see `poisoned`), so an
element a kernel fails to write shows up as NaN.
"""
import numpy as np
import pytest

from rosenblatt import _C, cuda
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device")

_cuda = cuda._cuda


def dev(array):
    return cuda.from_numpy(np.ascontiguousarray(array))


def poisoned(nbytes):
    """Leave a NaN-filled block of the size class of `nbytes` on top of the allocator's free list,
    so that the next allocation of that size (the kernel's output) starts as NaN."""
    filler = cuda.from_numpy(np.full(max(nbytes // 4, 1), np.nan, np.float32))
    cuda.synchronize()
    del filler


def host(result):
    """DeviceArrays (possibly in a tuple, possibly None) to NumPy."""
    if isinstance(result, tuple):
        return tuple(host(r) for r in result)
    return None if result is None else result.to_numpy()


def tolerance(dtype, depth=1):
    """atol/rtol for sums of `depth` products of standard normals."""
    if dtype == np.float64:
        return dict(atol=1e-11, rtol=1e-11)
    return dict(atol=2e-6 * np.sqrt(depth), rtol=1e-5)


# ---- convolution -----------------------------------------------------------------------------------
# N, C, H, W, O, kernel, stride, padding, dilation, groups
CONV_CASES = [
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0), (1, 1), 1),       # everything 1
    (2, 3, 7, 9, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (4, 16, 33, 35, 70, (3, 3), (1, 1), (1, 1), (1, 1), 1),   # many column tiles, two row tiles, split backward-weight
    (2, 6, 11, 13, 9, (3, 2), (2, 1), (1, 0), (1, 2), 3),     # groups, strides and dilation differ per axis
    (2, 32, 17, 17, 32, (3, 3), (2, 2), (1, 1), (1, 1), 32),  # depthwise, strided
    (3, 64, 9, 9, 130, (1, 1), (1, 1), (0, 0), (1, 1), 1),    # 1x1, O over two tiles
    (1, 5, 23, 19, 7, (5, 4), (3, 2), (2, 1), (2, 1), 1),     # stride 3, dilation 2
    (3, 4, 19, 21, 12, (5, 3), (1, 2), (2, 1), (1, 2), 4),    # depthwise, channel multiplier 3
    (1, 3, 224, 224, 64, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # the benchmark's first layer
]


# (case, kernel choice): depthwise cases run the direct kernels and, forced, the implicit GEMM.
CONV_RUNS = [(c, None) for c in CONV_CASES] + [(c, "igemm") for c in CONV_CASES if c[1] == c[-1]]


@pytest.mark.parametrize("case,forced", CONV_RUNS, ids=[f"conv{i}" for i in range(len(CONV_RUNS))])
def test_conv2d_forward_and_backward(rng, monkeypatch, case, forced):
    N, C, H, W, O, k, s, p, d, groups = case
    if forced:
        monkeypatch.setenv("ROSENBLATT_CUDA_CONV", forced)
    else:
        monkeypatch.delenv("ROSENBLATT_CUDA_CONV", raising=False)
    expected_impl = "depthwise_direct" if C == groups and not forced else "implicit_gemm"
    for dtype in (np.float32, np.float64):
        if dtype == np.float64 and N * C * H * W > 100_000:
            continue  # float64 runs the same kernel; the large case is covered once
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((O, C // groups) + k).astype(dtype)
        b = rng.standard_normal(O).astype(dtype)
        depth = C // groups * k[0] * k[1]
        expected = _C.conv2d_forward(x, w, b, s, p, d, groups)
        poisoned(expected.nbytes)
        y = _cuda.conv2d_forward(dev(x), dev(w), dev(b), s, p, d, groups).to_numpy()
        assert_close(y, expected, **tolerance(dtype, depth), what=f"conv2d {case} {dtype.__name__}")
        assert _cuda.conv_last_impl("conv2d") == expected_impl
        y0 = _cuda.conv2d_forward(dev(x), dev(w), None, s, p, d, groups).to_numpy()
        assert_close(y0, _C.conv2d_forward(x, w, None, s, p, d, groups), **tolerance(dtype, depth),
                     what=f"conv2d without bias {case}")

        dy = rng.standard_normal(expected.shape).astype(dtype)
        expected_dx = _C.conv2d_backward_data(dy, w, (H, W), s, p, d, groups)
        poisoned(expected_dx.nbytes)
        dx = _cuda.conv2d_backward_data(dev(dy), dev(w), (H, W), s, p, d, groups).to_numpy()
        assert_close(dx, expected_dx, **tolerance(dtype, O // groups * k[0] * k[1]), what=f"backward data {case}")

        expected_dw = _C.conv2d_backward_weight(x, dy, k, s, p, d, groups)
        poisoned(expected_dw.nbytes)
        dw = _cuda.conv2d_backward_weight(dev(x), dev(dy), k, s, p, d, groups).to_numpy()
        assert_close(dw, expected_dw, **tolerance(dtype, N * y.shape[2] * y.shape[3]), what=f"backward weight {case}")
        assert _cuda.conv_last_impl("conv2d_backward_data") == _cuda.conv_last_impl("conv2d_backward_weight") \
            == expected_impl

        expected_db = _C.conv2d_backward_bias(dy)
        poisoned(expected_db.nbytes)
        db = _cuda.conv2d_backward_bias(dev(dy)).to_numpy()
        assert_close(db, expected_db, **tolerance(dtype, dy.size // O), what=f"backward bias {case}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_backward_with_a_smaller_output_than_the_formula(rng, dtype):
    # conv_transpose2d's backward passes give conv2d an output smaller than its formula's (the
    # output_padding rows): taps beyond the given OH, OW read as zero.
    N, C, H, W, O, k, s, p = 2, 4, 10, 9, 6, (3, 3), (2, 2), (1, 1)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C) + k).astype(dtype)
    dy = rng.standard_normal((N, O, 4, 4)).astype(dtype)  # the formula gives 5 x 5
    dx = _cuda.conv2d_backward_data(dev(dy), dev(w), (H, W), s, p, (1, 1), 1).to_numpy()
    assert_close(dx, _C.conv2d_backward_data(dy, w, (H, W), s, p, (1, 1), 1), **tolerance(dtype, 54))
    dw = _cuda.conv2d_backward_weight(dev(x), dev(dy), k, s, p, (1, 1), 1).to_numpy()
    assert_close(dw, _C.conv2d_backward_weight(x, dy, k, s, p, (1, 1), 1), **tolerance(dtype, 32))


# N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups
TRANSPOSED_CASES = [
    (2, 8, 7, 7, 6, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 1),
    (1, 6, 5, 8, 9, (3, 2), (2, 3), (1, 0), (1, 2), (1, 1), 3),
    (3, 4, 6, 6, 4, (3, 3), (1, 1), (2, 2), (0, 0), (2, 2), 4),
]


@pytest.mark.parametrize("case", TRANSPOSED_CASES, ids=[f"transposed{i}" for i in range(len(TRANSPOSED_CASES))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose2d_forward(rng, case, dtype):
    N, C_in, H, W, C_out, k, s, p, op, d, groups = case
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_in, C_out // groups) + k).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    for bias in (b, None):
        expected = _C.conv_transpose2d_forward(x, w, bias, s, p, op, d, groups)
        poisoned(expected.nbytes)
        got = _cuda.conv_transpose2d_forward(dev(x), dev(w), None if bias is None else dev(bias), s, p, op, d,
                                             groups).to_numpy()
        assert_close(got, expected, **tolerance(dtype, C_in * k[0] * k[1]), what=f"conv_transpose2d {case}")


def test_conv2d_reads_non_contiguous_inputs(rng):
    x = rng.standard_normal((2, 3, 8, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    x_view = dev(np.ascontiguousarray(x.transpose(0, 1, 3, 2))).transpose(2, 3)  # (2, 3, 8, 6), strided
    assert not x_view.is_contiguous()
    got = _cuda.conv2d_forward(x_view, dev(w), None, (1, 1), (1, 1), (1, 1), 1).to_numpy()
    assert_close(got, _C.conv2d_forward(x, w, None, (1, 1), (1, 1), (1, 1), 1), **tolerance(np.float32, 27))


def test_conv2d_arguments_are_checked(rng):
    x = dev(np.zeros((2, 4, 8, 8), np.float32))
    w = dev(np.zeros((6, 2, 3, 3), np.float32))
    ok = ((1, 1), (1, 1), (1, 1))
    with pytest.raises(ValueError, match=r"conv2d: weight must have C / groups = 4"):
        _cuda.conv2d_forward(x, w, None, *ok, 1)
    with pytest.raises(ValueError, match=r"conv2d: out_channels 6 is not divisible by groups 4"):
        _cuda.conv2d_forward(x, w, None, *ok, 4)
    with pytest.raises(ValueError, match=r"conv2d: input must be 4-D"):
        _cuda.conv2d_forward(dev(np.zeros((4, 8, 8), np.float32)), w, None, *ok, 2)
    with pytest.raises(TypeError, match=r"conv2d: weight has dtype float64"):
        _cuda.conv2d_forward(x, dev(np.zeros((6, 2, 3, 3))), None, *ok, 2)
    with pytest.raises(TypeError, match=r"conv2d: input has dtype int64"):
        _cuda.conv2d_forward(dev(np.zeros((2, 4, 8, 8), np.int64)), w, None, *ok, 2)
    with pytest.raises(ValueError, match=r"conv2d: bias must have shape \(6,\)"):
        _cuda.conv2d_forward(x, w, dev(np.zeros(5, np.float32)), *ok, 2)
    with pytest.raises(ValueError, match=r"conv2d: stride must be >= 1"):
        _cuda.conv2d_forward(x, w, None, (0, 1), (1, 1), (1, 1), 2)
    with pytest.raises(ValueError, match=r"conv2d: the dilated kernel"):
        _cuda.conv2d_forward(x, w, None, (1, 1), (0, 0), (5, 5), 2)
    with pytest.raises(ValueError, match=r"conv2d_backward_data: output size"):
        _cuda.conv2d_backward_data(dev(np.zeros((2, 6, 9, 9), np.float32)), w, (8, 8), *ok, 2)
    with pytest.raises(ValueError, match=r"conv2d_backward_weight: input .* do not match"):
        _cuda.conv2d_backward_weight(x, dev(np.zeros((3, 6, 8, 8), np.float32)), (3, 3), *ok, 2)
    with pytest.raises(ValueError, match=r"conv_transpose2d: output_padding"):
        _cuda.conv_transpose2d_forward(dev(np.zeros((2, 6, 4, 4), np.float32)), w, None, (1, 1), (0, 0), (1, 1),
                                       (1, 1), 2)
    with pytest.raises(TypeError):
        _cuda.conv2d_forward(np.zeros((2, 4, 8, 8), np.float32), w, None, *ok, 2)  # a NumPy array is not on the device


@pytest.mark.parametrize("case", [c for c in CONV_CASES if c[-1] == 1], ids=lambda c: f"unfold{c[:4]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_unfold_and_fold(rng, case, dtype):
    N, C, H, W, _, k, s, p, d, _ = case
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    expected = _C.im2col(x, k, s, p, d)
    poisoned(expected.nbytes)
    assert_close(_cuda.im2col(dev(x), k, s, p, d).to_numpy(), expected, atol=0, rtol=0, what=f"unfold {case}")
    cols = rng.standard_normal(expected.shape).astype(dtype)
    expected_x = _C.col2im(cols, (H, W), k, s, p, d)
    poisoned(expected_x.nbytes)
    assert_close(_cuda.col2im(dev(cols), (H, W), k, s, p, d).to_numpy(), expected_x, **tolerance(dtype, 9),
                 what=f"fold {case}")


def test_fold_arguments_are_checked():
    with pytest.raises(ValueError, match=r"fold: input .* has 10 columns, expected 9 blocks"):
        _cuda.col2im(dev(np.zeros((1, 18, 10), np.float32)), (5, 5), (3, 3), (1, 1), (0, 0), (1, 1))
    with pytest.raises(ValueError, match=r"fold: input .* dim 1 is not a multiple of kH\*kW = 9"):
        _cuda.col2im(dev(np.zeros((1, 17, 9), np.float32)), (5, 5), (3, 3), (1, 1), (0, 0), (1, 1))


# ---- pooling ---------------------------------------------------------------------------------------
# shape, kernel, stride, padding, dilation, ceil_mode
MAX_CASES = [
    ((2, 3, 9, 11), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), (1, 1), True),   # overlapping windows, ceil mode
    ((1, 2, 13, 10), (3, 2), (2, 3), (1, 1), (2, 1), True),
    ((3, 5, 7, 7), (1, 1), (1, 1), (0, 0), (1, 1), False),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), True),
    ((4, 64, 56, 56), (3, 3), (2, 2), (1, 1), (1, 1), False),
]


@pytest.mark.parametrize("case", MAX_CASES, ids=[f"max{i}" for i in range(len(MAX_CASES))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool2d(rng, case, dtype):
    shape, k, s, p, d, ceil = case
    x = rng.standard_normal(shape).astype(dtype)
    if x.size > 5:
        x.flat[5] = np.nan  # NaN propagates and is its window's index
    y_ref, idx_ref = _C.max_pool2d_forward(x, k, s, p, d, ceil, True)
    poisoned(y_ref.nbytes)
    y, idx = host(_cuda.max_pool2d_forward(dev(x), k, s, p, d, ceil, True))
    assert_close(y, y_ref, atol=0, rtol=0, what=f"max_pool2d {case}")
    np.testing.assert_array_equal(idx, idx_ref)
    y2, none = _cuda.max_pool2d_forward(dev(x), k, s, p, d, ceil, False)
    assert none is None
    assert_close(y2.to_numpy(), y_ref, atol=0, rtol=0)

    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    expected = _C.max_pool2d_backward(dy, idx_ref, shape[2:])
    poisoned(expected.nbytes)
    dx = _cuda.max_pool2d_backward(dev(dy), dev(idx_ref), shape[2:]).to_numpy()
    assert_close(dx, expected, **tolerance(dtype, 9), what=f"max_pool2d_backward {case}")


# shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
AVG_CASES = [
    ((2, 3, 9, 11), (2, 2), (2, 2), (0, 0), False, True, None),
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), True, True, None),
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 2, 13, 10), (4, 3), (3, 2), (2, 1), True, False, 5),
    ((1, 2, 8, 8), (3, 3), (1, 1), (1, 1), False, True, -3),
    ((3, 4, 7, 6), (2, 4), (1, 3), (1, 2), False, False, None),
    ((4, 64, 56, 56), (2, 2), (2, 2), (0, 0), False, True, None),
]


@pytest.mark.parametrize("case", AVG_CASES, ids=[f"avg{i}" for i in range(len(AVG_CASES))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool2d(rng, case, dtype):
    shape, k, s, p, ceil, include_pad, divisor = case
    x = rng.standard_normal(shape).astype(dtype)
    expected = _C.avg_pool2d_forward(x, k, s, p, ceil, include_pad, divisor)
    poisoned(expected.nbytes)
    y = _cuda.avg_pool2d_forward(dev(x), k, s, p, ceil, include_pad, divisor).to_numpy()
    assert_close(y, expected, **tolerance(dtype, 12), what=f"avg_pool2d {case}")

    dy = rng.standard_normal(expected.shape).astype(dtype)
    expected_dx = _C.avg_pool2d_backward(dy, shape[2:], k, s, p, ceil, include_pad, divisor)
    poisoned(expected_dx.nbytes)
    dx = _cuda.avg_pool2d_backward(dev(dy), shape[2:], k, s, p, ceil, include_pad, divisor).to_numpy()
    assert_close(dx, expected_dx, **tolerance(dtype, 12), what=f"avg_pool2d_backward {case}")


# input shape, output size: windows that overlap (output larger than a divisor of the input),
# that do not divide the input, and output larger than the input
ADAPTIVE_CASES = [((2, 3, 9, 11), (4, 5)), ((1, 2, 7, 5), (3, 8)), ((2, 2, 6, 6), (1, 1)), ((1, 3, 5, 13), (5, 13)),
                  ((1, 1, 3, 2), (7, 5))]


@pytest.mark.parametrize("case", ADAPTIVE_CASES, ids=[f"adaptive{i}" for i in range(len(ADAPTIVE_CASES))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_pooling(rng, case, dtype):
    shape, size = case
    x = rng.standard_normal(shape).astype(dtype)
    y_ref, idx_ref = _C.adaptive_max_pool2d_forward(x, size, True)
    poisoned(y_ref.nbytes)
    y, idx = host(_cuda.adaptive_max_pool2d_forward(dev(x), size, True))
    assert_close(y, y_ref, atol=0, rtol=0, what=f"adaptive_max_pool2d {case}")
    np.testing.assert_array_equal(idx, idx_ref)
    assert _cuda.adaptive_max_pool2d_forward(dev(x), size, False)[1] is None

    expected = _C.adaptive_avg_pool2d_forward(x, size)
    poisoned(expected.nbytes)
    y = _cuda.adaptive_avg_pool2d_forward(dev(x), size).to_numpy()
    assert_close(y, expected, **tolerance(dtype, 12), what=f"adaptive_avg_pool2d {case}")

    dy = rng.standard_normal(expected.shape).astype(dtype)
    expected_dx = _C.adaptive_avg_pool2d_backward(dy, shape[2:])
    poisoned(expected_dx.nbytes)
    dx = _cuda.adaptive_avg_pool2d_backward(dev(dy), shape[2:]).to_numpy()
    assert_close(dx, expected_dx, **tolerance(dtype, 12), what=f"adaptive_avg_pool2d_backward {case}")

    expected_dx = _C.max_pool2d_backward(dy, idx_ref, shape[2:])
    dx = _cuda.max_pool2d_backward(dev(dy), dev(idx_ref), shape[2:]).to_numpy()
    assert_close(dx, expected_dx, **tolerance(dtype, 12), what=f"adaptive max backward {case}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roi_pool(rng, dtype):
    x = rng.standard_normal((2, 3, 12, 15)).astype(dtype)
    boxes = np.array([[0, 1, 1, 10, 8], [1, 0, 0, 29, 23], [1, 5.6, 3.2, 7.1, 4.4], [0, 20, 20, 40, 40],
                      [0, -4, -2, 3, 5], [1, 9, 2, 2, 9]], dtype)
    for size, scale in (((3, 4), 0.5), ((2, 2), 1.0), ((5, 3), 0.25)):
        y_ref, arg_ref = _C.roi_pool_forward(x, boxes, size, scale)
        poisoned(y_ref.nbytes)
        y, arg = host(_cuda.roi_pool_forward(dev(x), dev(boxes), size, scale))
        assert_close(y, y_ref, atol=0, rtol=0, what=f"roi_pool {size} {scale}")
        np.testing.assert_array_equal(arg, arg_ref)
        poisoned(y_ref.nbytes)
        y_only, none = _cuda.roi_pool_forward(dev(x), dev(boxes), size, scale, False)
        assert none is None
        assert_close(y_only.to_numpy(), y_ref, atol=0, rtol=0, what=f"roi_pool without indices {size} {scale}")
        dy = rng.standard_normal(y_ref.shape).astype(dtype)
        expected = _C.roi_pool_backward(dy, boxes, arg_ref, list(x.shape))
        poisoned(expected.nbytes)
        dx = _cuda.roi_pool_backward(dev(dy), dev(boxes), dev(arg_ref), list(x.shape)).to_numpy()
        assert_close(dx, expected, **tolerance(dtype, 6), what=f"roi_pool_backward {size} {scale}")


def test_pooling_arguments_are_checked():
    x = dev(np.zeros((1, 2, 6, 6), np.float32))
    with pytest.raises(ValueError, match=r"max_pool2d: padding .2, 2. must be at most half"):
        _cuda.max_pool2d_forward(x, (3, 3), (1, 1), (2, 2), (1, 1), False, False)
    with pytest.raises(ValueError, match=r"avg_pool2d: divisor_override must be None or a non-zero int"):
        _cuda.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True, 0)
    with pytest.raises(ValueError, match=r"avg_pool2d_backward: grad_output .* does not match"):
        _cuda.avg_pool2d_backward(dev(np.zeros((1, 2, 4, 4), np.float32)), (6, 6), (2, 2), (2, 2), (0, 0), False,
                                  True, None)
    with pytest.raises(ValueError, match=r"max_pool2d_backward: indices .* differ in shape"):
        _cuda.max_pool2d_backward(dev(np.zeros((1, 2, 3, 3), np.float32)), dev(np.zeros((1, 2, 3, 2), np.int64)),
                                  (6, 6))
    with pytest.raises(TypeError, match=r"max_pool2d_backward: indices must be int64"):
        _cuda.max_pool2d_backward(dev(np.zeros((1, 2, 3, 3), np.float32)), dev(np.zeros((1, 2, 3, 3), np.float32)),
                                  (6, 6))
    with pytest.raises(ValueError, match=r"adaptive_avg_pool2d: output_size must be >= 1"):
        _cuda.adaptive_avg_pool2d_forward(x, (0, 2))
    with pytest.raises(ValueError, match=r"roi_pool: box 0 has batch index"):
        _cuda.roi_pool_forward(x, dev(np.array([[1, 0, 0, 2, 2]], np.float32)), (2, 2), 1.0)
    with pytest.raises(ValueError, match=r"roi_pool: box 0 has a non-finite"):
        _cuda.roi_pool_forward(x, dev(np.array([[0, np.nan, 0, 2, 2]], np.float32)), (2, 2), 1.0)
    with pytest.raises(TypeError, match=r"roi_pool: boxes has dtype float64"):
        _cuda.roi_pool_forward(x, dev(np.array([[0, 0, 0, 2, 2]], np.float64)), (2, 2), 1.0)


def test_max_pool2d_backward_skips_indices_outside_the_plane(rng):
    dy = rng.standard_normal((1, 1, 2, 2)).astype(np.float32)
    idx = np.array([[[[0, -1], [99, 3]]]], np.int64)  # -1: no tap; 99: outside a 2 x 2 plane
    dx = _cuda.max_pool2d_backward(dev(dy), dev(idx), (2, 2)).to_numpy()
    np.testing.assert_array_equal(dx.ravel(), [dy[0, 0, 0, 0], 0, 0, dy[0, 0, 1, 1]])


# ---- up-sampling -----------------------------------------------------------------------------------
from test_cuda_conv_host_simulation import UPSAMPLE_CASES, interpolate_reference, upsample_geometry  # noqa: E402


@pytest.mark.parametrize("case", UPSAMPLE_CASES + [((4, 16, 28, 28), None, 2, "bilinear", False)],
                         ids=[f"upsample{i}" for i in range(len(UPSAMPLE_CASES) + 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_upsample2d(rng, case, dtype):
    shape, size, factor, mode, align = case
    x = rng.standard_normal(shape).astype(dtype)
    out_hw, scales = upsample_geometry(shape[2:], size, factor)
    dy = rng.standard_normal(shape[:2] + out_hw).astype(dtype)
    y_ref, dx_ref = interpolate_reference(x, dy, size, factor, mode, align)
    poisoned(y_ref.nbytes)
    y = _cuda.upsample2d_forward(dev(x), out_hw, scales, mode, bool(align)).to_numpy()
    assert_close(y, y_ref, **tolerance(dtype, 4), what=f"upsample2d {case}")
    poisoned(dx_ref.nbytes)
    dx = _cuda.upsample2d_backward(dev(dy), shape[2:], scales, mode, bool(align)).to_numpy()
    assert_close(dx, dx_ref, **tolerance(dtype, 16), what=f"upsample2d_backward {case}")


def test_upsample2d_arguments_are_checked():
    x = dev(np.zeros((1, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match="upsample2d: mode must be 'nearest' or 'bilinear'"):
        _cuda.upsample2d_forward(x, (8, 8), [0.5, 0.5], "bicubic", False)
    with pytest.raises(ValueError, match="upsample2d: scales must be two positive numbers"):
        _cuda.upsample2d_forward(x, (8, 8), [0.5], "nearest", False)
    with pytest.raises(ValueError, match="upsample2d: output size must be >= 1"):
        _cuda.upsample2d_forward(x, (0, 8), [0.5, 0.5], "nearest", False)
