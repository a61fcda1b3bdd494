"""The implicit-GEMM convolution kernel's own code (gathers, shared-memory tiles, arithmetic, output
stores) run on the host, barrier phase by barrier phase, against the CPU module's kernels: the index
arithmetic of forward, backward-data (also transposed convolution) and backward-weight (with its
split reduction) is tested on machines without a GPU. Results start as NaN, so a missed output shows.
"""
import numpy as np
import pytest

from rosenblatt import _C, cuda
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")

# N, C, H, W, O, kernel, stride, padding, dilation, groups: tiles of 64 rows x 128 columns x 8 deep
# are left partial in every direction, and several cover more than one tile or step.
CASES = [
    (1, 3, 7, 9, 5, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 4, 11, 6, 6, (3, 2), (2, 1), (1, 0), (1, 2), 2),
    (1, 6, 9, 9, 6, (3, 3), (2, 2), (1, 1), (1, 1), 6),      # depthwise
    (3, 5, 5, 7, 70, (1, 1), (1, 1), (0, 0), (1, 1), 1),     # 1x1, two row tiles
    (1, 2, 13, 17, 3, (5, 4), (3, 2), (2, 1), (2, 1), 1),    # stride 3 with dilation
    (2, 16, 12, 12, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1),   # 288 columns, 18 reduction steps
    (1, 4, 6, 5, 4, (2, 2), (2, 2), (1, 1), (1, 1), 4),      # every tap of dx from at most one dy
    (3, 3, 10, 1, 4, (3, 1), (1, 1), (1, 0), (1, 1), 1),     # width 1: radices of 1 in the digit counters
    (1, 2, 9, 9, 3, (7, 7), (2, 2), (3, 3), (1, 1), 1),      # more taps than a reduction step
    (2, 3, 7, 8, 6, (3, 3), (2, 1), (1, 1), (1, 2), 3),      # depthwise with channel multiplier 2
    (1, 40, 5, 6, 36, (3, 3), (1, 1), (1, 1), (1, 1), 1),    # over 32 rows in every pass
]


def _out(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _dims(N, C, H, W, O, k, s, p, d, groups, out_hw=None):
    oh, ow = out_hw or (_out(H, k[0], s[0], p[0], d[0]), _out(W, k[1], s[1], p[1], d[1]))
    return [N, C, H, W, O, k[0], k[1], oh, ow, s[0], s[1], p[0], p[1], d[0], d[1], groups]


def _simulate(pass_name, a, b, bias, dims, splits=1, direct=False, rows_per_tile=0):
    return cuda._cuda._conv2d_host_simulation(pass_name, a, b, bias, dims, splits, direct, rows_per_tile)


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("rows_per_tile", [32, 64])
def test_kernel_code_matches_cpu(rng, case, dtype, rows_per_tile):
    N, C, H, W, O, k, s, p, d, groups = case
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-12)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // groups) + k).astype(dtype)
    bias = rng.standard_normal(O).astype(dtype)
    dims = _dims(N, C, H, W, O, k, s, p, d, groups)
    y = _simulate("forward", x, w, bias, dims, rows_per_tile=rows_per_tile)
    assert_close(y, _C.conv2d_forward(x, w, bias, s, p, d, groups), **tol, what=f"forward {case}")
    y0 = _simulate("forward", x, w, None, dims, rows_per_tile=rows_per_tile)
    assert_close(y0, _C.conv2d_forward(x, w, None, s, p, d, groups), **tol, what=f"forward no bias {case}")

    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = _simulate("backward_data", dy, w, None, dims, rows_per_tile=rows_per_tile)
    assert_close(dx, _C.conv2d_backward_data(dy, w, (H, W), s, p, d, groups), **tol, what=f"backward data {case}")

    expected_dw = _C.conv2d_backward_weight(x, dy, k, s, p, d, groups)
    for splits in (1, 3):
        dw = _simulate("backward_weight", x, dy, None, dims, splits, rows_per_tile=rows_per_tile)
        assert_close(dw, expected_dw, **tol, what=f"backward weight {case} splits={splits}")


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == c[-1]], ids=lambda c: f"depthwise{c[:5]}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_depthwise_direct_code_matches_cpu(rng, case, dtype):
    N, C, H, W, O, k, s, p, d, groups = case
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-12)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, 1) + k).astype(dtype)
    bias = rng.standard_normal(O).astype(dtype)
    dims = _dims(N, C, H, W, O, k, s, p, d, groups)
    y = _simulate("forward", x, w, bias, dims, direct=True)
    assert_close(y, _C.conv2d_forward(x, w, bias, s, p, d, groups), **tol, what=f"forward {case}")
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = _simulate("backward_data", dy, w, None, dims, direct=True)
    assert_close(dx, _C.conv2d_backward_data(dy, w, (H, W), s, p, d, groups), **tol, what=f"backward data {case}")
    dw = _simulate("backward_weight", x, dy, None, dims, direct=True)
    assert_close(dw, _C.conv2d_backward_weight(x, dy, k, s, p, d, groups), **tol, what=f"backward weight {case}")
    b_c = rng.standard_normal(C).astype(dtype)  # backward-data with a bias: conv_transpose2d's
    dx_b = _simulate("backward_data", dy, w, b_c, dims, direct=True)
    assert_close(dx_b, dx + b_c[None, :, None, None], **tol, what=f"backward data + bias {case}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transposed_convolution_through_backward_data(rng, dtype):
    # conv_transpose2d(x) is conv2d's backward-data with dy = x; output_padding makes the output one
    # larger than the conv2d whose input it is would give, so OH is smaller than the formula's.
    N, C_in, H, W, C_out, groups = 2, 4, 5, 6, 6, 2
    k, s, p, op, d = (3, 3), (2, 2), (1, 1), (1, 1), (1, 1)
    x = rng.standard_normal((N, C_in, H, W)).astype(dtype)
    w = rng.standard_normal((C_in, C_out // groups) + k).astype(dtype)
    b = rng.standard_normal(C_out).astype(dtype)
    expected = _C.conv_transpose2d_forward(x, w, b, s, p, op, d, groups)
    out_h, out_w = expected.shape[2:]
    dims = _dims(N, C_out, out_h, out_w, C_in, k, s, p, d, groups, out_hw=(H, W))
    for rows_per_tile in (0, 32, 64):
        got = _simulate("backward_data", x, w, b, dims, rows_per_tile=rows_per_tile)
        assert_close(got, expected, atol=1e-5, rtol=1e-5, what=f"conv_transpose2d, {rows_per_tile} rows per tile")


def test_bad_arguments_are_refused():
    x = np.zeros((1, 2, 4, 4), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    dims = _dims(1, 2, 4, 4, 3, (3, 3), (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(ValueError, match="sizes"):
        _simulate("forward", x[:, :1], w, None, dims)
    with pytest.raises(ValueError, match="pass"):
        _simulate("sideways", x, w, None, dims)
    with pytest.raises(ValueError, match="geometry"):
        _simulate("forward", x, w, None, dims[:-1] + [0])
    with pytest.raises(ValueError, match="geometry"):
        _simulate("forward", x, w, None, dims, rows_per_tile=16)


# ---- pooling: each kernel's per-element function run for every element on the host ----------------
def _pool_dims(shape, out_hw, k=(1, 1), s=(1, 1), p=(0, 0), d=(1, 1)):
    return [shape[0] * shape[1], shape[2], shape[3], out_hw[0], out_hw[1], *k, *s, *p, *d]


def _simulate_pool(pass_name, array, dims, count_include_pad=True, divisor_override=0):
    out, idx = cuda._cuda._pool_host_simulation(pass_name, array, dims, count_include_pad, divisor_override)
    return out, idx


# shape, kernel, stride, padding, dilation, ceil_mode
MAX_CASES = [
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((1, 2, 13, 10), (3, 2), (2, 3), (1, 1), (2, 1), True),
    ((1, 1, 5, 4), (2, 2), (2, 2), (0, 0), (1, 1), False),
]


@pytest.mark.parametrize("case", MAX_CASES)
def test_max_pool_code_matches_cpu(rng, case):
    shape, k, s, p, d, ceil = case
    x = rng.standard_normal(shape)
    x.flat[7] = np.nan
    y_ref, idx_ref = _C.max_pool2d_forward(x, k, s, p, d, ceil, True)
    y, idx = _simulate_pool("max", x, _pool_dims(shape, y_ref.shape[2:], k, s, p, d))
    assert_close(y.reshape(y_ref.shape), y_ref, atol=0, rtol=0)
    np.testing.assert_array_equal(idx.reshape(idx_ref.shape), idx_ref)


# shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
AVG_CASES = [
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), True, True, None),
    ((2, 3, 9, 11), (3, 3), (2, 2), (1, 1), True, False, None),
    ((1, 2, 13, 10), (4, 3), (3, 2), (2, 1), True, False, 5),
    ((1, 2, 8, 8), (3, 3), (1, 1), (1, 1), False, True, -3),
    ((3, 4, 7, 6), (2, 4), (1, 3), (1, 2), False, False, None),
    ((1, 1, 10, 10), (2, 2), (3, 3), (1, 0), True, True, None),  # stride > kernel: inputs in no window
]


@pytest.mark.parametrize("case", AVG_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_avg_pool_code_matches_cpu(rng, case, dtype):
    shape, k, s, p, ceil, include_pad, divisor = case
    x = rng.standard_normal(shape).astype(dtype)
    expected = _C.avg_pool2d_forward(x, k, s, p, ceil, include_pad, divisor)
    dims = _pool_dims(shape, expected.shape[2:], k, s, p)
    y, _ = _simulate_pool("avg", x, dims, include_pad, divisor or 0)
    assert_close(y.reshape(expected.shape), expected, atol=1e-6, rtol=1e-6, what=f"avg {case}")
    dy = rng.standard_normal(expected.shape).astype(dtype)
    expected_dx = _C.avg_pool2d_backward(dy, shape[2:], k, s, p, ceil, include_pad, divisor)
    dx, _ = _simulate_pool("avg_backward", dy, dims, include_pad, divisor or 0)
    assert_close(dx.reshape(expected_dx.shape), expected_dx, atol=1e-6, rtol=1e-6, what=f"avg backward {case}")


@pytest.mark.parametrize("case", [((2, 3, 9, 11), (4, 5)), ((1, 2, 7, 5), (3, 8)), ((1, 1, 3, 2), (7, 5)),
                                  ((1, 3, 5, 13), (5, 13)), ((2, 2, 6, 6), (1, 1))])
def test_adaptive_pool_code_matches_cpu(rng, case):
    shape, size = case
    x = rng.standard_normal(shape)
    dims = _pool_dims(shape, size)
    y_ref, idx_ref = _C.adaptive_max_pool2d_forward(x, size, True)
    y, idx = _simulate_pool("adaptive_max", x, dims)
    assert_close(y.reshape(y_ref.shape), y_ref, atol=0, rtol=0)
    np.testing.assert_array_equal(idx.reshape(idx_ref.shape), idx_ref)
    expected = _C.adaptive_avg_pool2d_forward(x, size)
    y, _ = _simulate_pool("adaptive_avg", x, dims)
    assert_close(y.reshape(expected.shape), expected, atol=1e-12, rtol=1e-12)
    dy = rng.standard_normal(expected.shape)
    expected_dx = _C.adaptive_avg_pool2d_backward(dy, shape[2:])
    dx, _ = _simulate_pool("adaptive_avg_backward", dy, dims)
    assert_close(dx.reshape(expected_dx.shape), expected_dx, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roi_pool_code_matches_cpu(rng, dtype):
    x = rng.standard_normal((2, 3, 12, 15)).astype(dtype)
    boxes = np.array([[0, 1, 1, 10, 8], [1, 0, 0, 29, 23], [1, 5.6, 3.2, 7.1, 4.4], [0, 20, 20, 40, 40],
                      [0, -4, -2, 3, 5], [1, 9, 2, 2, 9]], dtype)
    for size, scale in (((3, 4), 0.5), ((2, 2), 1.0), ((5, 3), 0.25)):
        y_ref, arg_ref = _C.roi_pool_forward(x, boxes, size, scale)
        y, arg = cuda._cuda._roi_pool_host_simulation(x, boxes, size, scale)
        assert_close(y, y_ref, atol=0, rtol=0)
        np.testing.assert_array_equal(arg, arg_ref)
        y_only, none = cuda._cuda._roi_pool_host_simulation(x, boxes, size, scale, False)  # no argmax written
        assert none is None
        np.testing.assert_array_equal(y_only, y_ref)


# ---- up-sampling: the kernels' per-element code against the CPU path (F.interpolate) -------------
def upsample_geometry(in_hw, size=None, scale_factor=None):
    """(output size, scales) as F.interpolate computes them; scales are torch's in / out ratios."""
    if size is not None:
        out_hw = (size, size) if isinstance(size, int) else tuple(size)
        return out_hw, [i / o for i, o in zip(in_hw, out_hw)]
    factors = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
    return tuple(int(np.floor(i * f)) for i, f in zip(in_hw, factors)), [1.0 / f for f in factors]


def interpolate_reference(x, dy, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """(y, dx) from rosenblatt's CPU F.interpolate and its backward."""
    from rosenblatt import nn
    from rosenblatt.tensor import Tensor
    t = Tensor(x, requires_grad=True)
    y = nn.functional.interpolate(t, size=size, scale_factor=scale_factor, mode=mode, align_corners=align_corners)
    y.backward(dy)
    return y.data, np.asarray(getattr(t.grad, "data", t.grad))


# input shape, size, scale_factor, mode, align_corners
UPSAMPLE_CASES = [
    ((2, 3, 5, 7), None, 2, "nearest", None),
    ((1, 2, 5, 7), (11, 4), None, "nearest", None),
    ((2, 3, 5, 7), None, (2, 3), "bilinear", False),
    ((1, 2, 6, 5), (13, 9), None, "bilinear", True),
    ((1, 2, 9, 8), (4, 3), None, "bilinear", False),   # down-sampling
    ((1, 1, 4, 4), (1, 5), None, "bilinear", True),    # one output row with align_corners
    ((1, 2, 5, 7), None, 1.5, "bilinear", False),
]


@pytest.mark.parametrize("case", UPSAMPLE_CASES)
def test_upsample_code_matches_cpu(rng, case):
    shape, size, factor, mode, align = case
    x = rng.standard_normal(shape)
    out_hw, scales = upsample_geometry(shape[2:], size, factor)
    dy = rng.standard_normal(shape[:2] + out_hw)
    y_ref, dx_ref = interpolate_reference(x, dy, size, factor, mode, align)
    y, dx = cuda._cuda._upsample_host_simulation(x, dy, out_hw, scales, mode == "bilinear", bool(align))
    assert_close(y, y_ref, atol=1e-12, rtol=1e-12, what=f"upsample {case}")
    assert_close(dx, dx_ref, atol=1e-12, rtol=1e-12, what=f"upsample backward {case}")


# ---- im2col / col2im (unfold / fold) -----------------------------------------------------------------
@pytest.mark.parametrize("case", [c for c in CASES if c[-1] == 1])
def test_unfold_code_matches_cpu(rng, case):
    N, C, H, W, _, k, s, p, d, _ = case
    x = rng.standard_normal((N, C, H, W))
    expected_cols = _C.im2col(x, k, s, p, d)
    cols_in = rng.standard_normal(expected_cols.shape)
    dims = _dims(N, C, H, W, 1, k, s, p, d, 1)
    cols, folded = cuda._cuda._unfold_host_simulation(x, cols_in, dims)
    assert_close(cols, expected_cols, atol=0, rtol=0, what=f"im2col {case}")
    assert_close(folded, _C.col2im(cols_in, (H, W), k, s, p, d), atol=1e-12, rtol=1e-12, what=f"col2im {case}")


# ---- the interface rule: each _cuda twin of a _C kernel takes the same arguments ---------------------
TWINS = ["conv2d_forward", "conv2d_backward_data", "conv2d_backward_weight", "conv2d_backward_bias",
         "conv_transpose2d_forward", "im2col", "col2im", "max_pool2d_forward", "max_pool2d_backward",
         "avg_pool2d_forward", "avg_pool2d_backward", "adaptive_max_pool2d_forward", "adaptive_avg_pool2d_forward",
         "adaptive_avg_pool2d_backward", "roi_pool_forward", "roi_pool_backward"]


def _arguments(function):
    """[(name, has_default)] from a pybind11 signature line: name(a: type, b: type = default) -> result."""
    line = function.__doc__.splitlines()[0]
    inner, depth, parts, current = line[line.index("(") + 1:], 0, [], ""
    for ch in inner:
        if ch in "([":
            depth += 1
        elif ch in ")]":
            if depth == 0:
                break
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [(p.split(":")[0].split("=")[0].strip(), "=" in p) for p in parts if p.strip()]


@pytest.mark.parametrize("name", TWINS)
def test_cuda_twin_has_the_cpu_kernels_arguments(name):
    assert _arguments(getattr(cuda._cuda, name)) == _arguments(getattr(_C, name))
