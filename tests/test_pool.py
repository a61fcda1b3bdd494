"""Pooling, SPP, RoI pooling and up-sampling: kernels against NumPy float64 references on both ISA paths,
finite-difference gradients, torch.nn.functional, invalid configurations."""
import numpy as np
import pytest

import conv_reference as ref
import rosenblatt as rb
from conftest import assert_close, torch_or_skip
from rosenblatt import _C, nn
from rosenblatt.autograd import gradcheck

F = nn.functional

# shape, kernel, stride, padding, dilation, ceil_mode: wide rows run the 8-wide vector blocks and
# their borders, stride 1/2/3 cover both vector strides and the scalar one.
MAX_CONFIGS = [
    ((2, 3, 11, 37), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((1, 2, 17, 40), (3, 3), (2, 2), (1, 1), (1, 1), True),
    ((2, 2, 9, 29), (3, 2), (1, 1), (1, 1), (2, 1), False),
    ((1, 4, 8, 33), (2, 3), (3, 1), (1, 1), (1, 3), True),
    ((3, 1, 5, 5), (5, 5), (1, 1), (2, 2), (1, 1), False),
    ((1, 1, 1, 1), (1, 1), (1, 1), (0, 0), (1, 1), False),
    ((2, 2, 12, 50), (4, 4), (2, 2), (2, 1), (1, 1), True),
    ((1, 3, 10, 45), (3, 2), (2, 2), (1, 1), (1, 1), True),  # width-2 windows with padding: load_pairs
    ((1, 2, 9, 35), (2, 2), (2, 2), (0, 0), (1, 1), True),  # plain 2x2, ceil_mode clips the last row and column
    ((2, 1, 6, 10), (2, 2), (2, 2), (0, 0), (1, 1), False),  # plain 2x2 narrower than one vector
    # planes narrower than 8 outputs with every window inside: 8 outputs at a time, taps gathered
    ((2, 3, 8, 8), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 2, 13, 9), (3, 3), (1, 1), (0, 0), (1, 1), False),
    ((1, 3, 12, 12), (2, 3), (3, 3), (0, 0), (2, 1), False),
    ((1, 2, 4, 4), (2, 2), (2, 2), (0, 0), (1, 1), False),  # 4 outputs: too few for a block
    # planes of fewer than 8 outputs, 8 at a time as one sequence (indices made plane-relative), then the rest
    ((3, 4, 4, 6), (2, 2), (2, 2), (0, 0), (1, 1), False),
    ((2, 5, 5, 5), (2, 3), (2, 1), (0, 0), (1, 1), False),
    # 3x3 stride 2 (the AVX-512 loop where the CPU has it): rows of 3 steps of 16, the last partial;
    # a plane narrower than one step with ceil_mode's last window hanging over the edge
    ((1, 2, 6, 70), (3, 3), (2, 2), (1, 1), (1, 1), False),
    ((2, 3, 9, 7), (3, 3), (2, 2), (0, 0), (1, 1), True),
    ((1, 2, 6, 40), (3, 3), (2, 2), (1, 1), (1, 1), True),  # ceil_mode's last window holds one row
]


@pytest.mark.parametrize("config", MAX_CONFIGS)
def test_max_pool2d_matches_reference(isa, rng, config):
    shape, k, s, p, d, ceil = config
    x = rng.standard_normal(shape).astype(np.float32)
    x[0, 0, 0, : min(3, shape[3])] = x[0, 0, 0, 0]  # ties: the first maximum wins
    if shape[0] % 2:
        x = np.asfortranarray(x)  # non-contiguous input: copied, not misread
    values, indices = ref.max_pool2d(x, k, s, p, d, ceil)
    y, idx = _C.max_pool2d_forward(x, k, s, p, d, ceil, True)
    assert_close(y, values, 0, 0, "values")
    np.testing.assert_array_equal(idx, indices)
    y_only, none = _C.max_pool2d_forward(x, k, s, p, d, ceil, False)
    assert none is None and np.array_equal(y_only, y)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    expected = np.zeros(x.shape).reshape(shape[0] * shape[1], -1)
    np.add.at(expected, (np.arange(expected.shape[0])[:, None], indices.reshape(expected.shape[0], -1)),
              dy.reshape(expected.shape[0], -1))
    assert_close(_C.max_pool2d_backward(dy, idx, shape[2:]), expected.reshape(shape), 1e-6, 1e-6, "backward")


def test_max_pool2d_narrow_planes_nan_and_signed_zero(isa):
    """Planes narrower than a vector (taps gathered 8 outputs at a time): NaN, ties between -0 and +0
    and indices as the reference, with and without indices."""
    x = np.zeros((2, 3, 8, 8), np.float32)
    x[:, :, ::2, 1::3] = -0.0
    x[0, 1, 3, 4] = np.nan
    x[1, 2, 6, 1] = np.nan
    x[1, 0] = np.arange(64, dtype=np.float32).reshape(8, 8)[::-1]
    values, indices = ref.max_pool2d(x, (2, 2), (2, 2), (0, 0), (1, 1), False)
    y, idx = _C.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False, True)
    if _C.isa() == "avx2":
        assert _C.last_impl("max_pool2d") == "avx2_narrow_gathered"
    np.testing.assert_array_equal(y, values)
    np.testing.assert_array_equal(np.signbit(y), np.signbit(values))
    np.testing.assert_array_equal(idx, indices)
    y_only, _ = _C.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False, False)
    np.testing.assert_array_equal(y_only, values)
    np.testing.assert_array_equal(np.signbit(y_only), np.signbit(values))


def test_max_pool2d_propagates_nan(isa):
    x = np.arange(64, dtype=np.float32).reshape(1, 1, 2, 32)
    x[0, 0, 1, 5] = np.nan
    y, idx = _C.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), (1, 1), False, True)
    assert np.isnan(y[0, 0, 0, 2]) and idx[0, 0, 0, 2] == 32 + 5
    assert not np.isnan(np.delete(y[0, 0, 0], 2)).any()


@pytest.mark.parametrize("k,s,p", [((3, 3), (2, 2), (1, 1)), ((3, 3), (2, 2), (0, 0)), ((2, 2), (2, 2), (0, 0)), ((5, 3), (1, 2), (2, 1)),
                                   ((3, 2), (2, 2), (1, 1))])
@pytest.mark.parametrize("width", [41, 113])
def test_max_pool2d_values_only_nan_and_signed_zero(isa, rng, k, s, p, width):
    """Without indices, stride 2 along W takes the row maxima once per input row: the same values,
    NaN and the sign of zero included, as the path with indices (which follows the reference).
    Width 113: the 3x3 stride-2 loop's unmasked steps, NaN on both sides of its vector boundaries."""
    x = rng.standard_normal((2, 3, 15, width)).astype(np.float32)
    for n, c, h, w in [(0, 0, 4, 10), (0, 1, 7, 21), (1, 0, 2, 5), (1, 1, 9, 30)]:  # every row and column parity
        x[n, c, h, w] = np.nan
    if width > 64:
        for h, w in enumerate([15, 16, 31, 32, 33, 47, 48, 63, 64, 65, 95, 96, 97, 112]):
            x[0, 2, h, w] = np.nan
    x[1, 2, :, :] = 0.0
    x[1, 2, ::2, ::3] = -0.0  # ties between -0 and +0: the first in row-major window order wins
    with_index, _ = _C.max_pool2d_forward(x, k, s, p, (1, 1), False, True)
    values, none = _C.max_pool2d_forward(x, k, s, p, (1, 1), False, False)
    if k == (3, 3) and isa != "scalar":
        assert _C.last_impl("max_pool2d") == ("avx512_3x3s2" if isa == "avx512" else "avx2_row_ring")
    assert none is None
    np.testing.assert_array_equal(values, with_index)
    np.testing.assert_array_equal(np.signbit(values), np.signbit(with_index))
    assert np.isnan(values[0, 0]).any()


AVG_CONFIGS = [  # shape, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
    ((2, 3, 11, 37), (2, 2), (2, 2), (0, 0), False, True, None),
    ((1, 2, 13, 41), (3, 3), (2, 2), (1, 1), True, False, None),
    ((2, 1, 9, 30), (3, 2), (1, 1), (1, 1), True, True, None),
    ((1, 2, 10, 27), (2, 4), (3, 2), (1, 2), False, False, 5),
    ((2, 2, 7, 7), (7, 7), (1, 1), (3, 3), True, False, None),
    ((2, 2, 9, 43), (2, 2), (2, 2), (1, 1), True, True, None),
    ((1, 2, 9, 35), (2, 2), (2, 2), (0, 0), True, True, None),  # plain 2x2, ceil_mode clips the last row and column
    ((2, 2, 8, 40), (2, 2), (2, 2), (0, 0), False, True, 3),  # plain 2x2 divided by 3
    ((2, 2, 8, 40), (2, 2), (2, 2), (0, 0), False, True, 8),  # ... by a power of two: its reciprocal
]


@pytest.mark.parametrize("config", AVG_CONFIGS)
def test_avg_pool2d_matches_reference(isa, rng, config):
    shape, k, s, p, ceil, count_pad, divisor = config
    x = rng.standard_normal(shape).astype(np.float32)
    y = _C.avg_pool2d_forward(x, k, s, p, ceil, count_pad, divisor)
    assert_close(y, ref.avg_pool2d(x, k, s, p, ceil, count_pad, divisor), 1e-6, 1e-5, "avg_pool2d")


@pytest.mark.parametrize("divisor", [None, 3, 8])
def test_avg_pool2d_plain_2x2_gives_the_reference_bits(rng, divisor):
    """The 2x2 loop sums in the reference's order and divides by a power of two as a product with its
    exact reciprocal: the scalar path's float32 bits, -0, subnormals, infinities and NaN included."""
    x = rng.standard_normal((2, 3, 6, 44)).astype(np.float32)
    x[0, 0, 0, :8] = -0.0
    x[0, 1, 2, :16] = np.float32(3e-45) * rng.integers(-3, 4, 16)  # subnormal sums and quotients
    x[1, 0, 1, 5], x[1, 2, 4, 30], x[1, 2, 5, 31] = np.nan, np.inf, -np.inf
    previous = _C.isa()
    try:
        results = []
        for name in ("avx2", "scalar"):
            _C.set_isa(name)
            results.append(_C.avg_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False, True, divisor))
            assert _C.last_impl("avg_pool2d") == ("avx2_2x2" if name == "avx2" else "scalar_ref")
    finally:
        _C.set_isa(previous)
    np.testing.assert_array_equal(results[0].view(np.uint32), results[1].view(np.uint32))


@pytest.mark.parametrize("config", AVG_CONFIGS[1:4])
def test_avg_pool2d_gradcheck(rng, config):
    shape, k, s, p, ceil, count_pad, divisor = config
    x = rb.Tensor(rng.standard_normal((1, 1) + shape[2:]), requires_grad=True)
    assert gradcheck(lambda x: F.avg_pool2d(x, k, s, p, ceil, count_pad, divisor), [x])


@pytest.mark.parametrize("config", MAX_CONFIGS[1:5])
def test_max_pool2d_gradcheck(rng, config):
    shape, k, s, p, d, ceil = config
    x = rb.Tensor(rng.permutation(np.prod(shape[2:]) * 2)[: np.prod(shape[2:])].reshape((1, 1) + shape[2:]) / 7.0,
                  requires_grad=True)  # distinct values: no ties for the finite differences to straddle
    assert gradcheck(lambda x: F.max_pool2d(x, k, s, p, d, ceil), [x], eps=1e-4)


@pytest.mark.parametrize("size", [(1, 1), (3, 2), (5, 7), (4, 4)])
def test_adaptive_pooling(isa, rng, size):
    x = rng.standard_normal((2, 3, 9, 7)).astype(np.float32)
    for mode in ("max", "avg"):
        y = F.adaptive_max_pool2d(rb.Tensor(x), size) if mode == "max" else F.adaptive_avg_pool2d(rb.Tensor(x), size)
        assert_close(y.data, ref.adaptive_pool2d(x, size, mode), 1e-6, 1e-5, f"adaptive {mode} {size}")
    x64 = rb.Tensor(rng.permutation(2 * 9 * 7)[:63].reshape(1, 1, 9, 7) / 5.0, requires_grad=True)
    assert gradcheck(lambda x: F.adaptive_max_pool2d(x, size), [x64], eps=1e-4)
    assert gradcheck(lambda x: F.adaptive_avg_pool2d(x, size), [x64])


def test_spp_layout_and_gradient(rng):
    x = rng.standard_normal((2, 3, 13, 11))
    y = nn.SpatialPyramidPooling((1, 2, 4))(rb.Tensor(x))
    assert y.shape == (2, 3 * (1 + 4 + 16))
    expected = np.concatenate([ref.adaptive_pool2d(x, (l, l), "max").reshape(2, -1) for l in (1, 2, 4)], axis=1)
    assert_close(y.data, expected, 0, 0, "spp")
    # Feature maps of any size give the same length.
    assert F.spp(rb.Tensor(rng.standard_normal((2, 3, 6, 9))), (1, 2, 4)).shape == y.shape
    xs = rb.Tensor(rng.permutation(200)[:60].reshape(1, 2, 5, 6) / 3.0, requires_grad=True)
    assert gradcheck(lambda x: F.spp(x, (1, 2, 3)), [xs], eps=1e-4)
    assert gradcheck(lambda x: F.spp(x, (2, 1), mode="avg"), [xs])


def _boxes(rng, N, H, W, K, scale):
    x1 = rng.integers(-2, int(W / scale), K)
    y1 = rng.integers(-2, int(H / scale), K)
    x2 = x1 + rng.integers(0, int(W / scale), K)
    y2 = y1 + rng.integers(0, int(H / scale), K)
    return np.stack([rng.integers(0, N, K), x1, y1, x2, y2], axis=1).astype(np.float64)


@pytest.mark.parametrize("scale,size", [(1.0, (2, 2)), (0.5, (3, 2)), (0.25, (7, 7))])
def test_roi_pool_matches_torchvision_rules(rng, scale, size):
    x = rng.standard_normal((2, 3, 10, 12))
    boxes = _boxes(rng, 2, 10, 12, 6, scale)
    y = F.roi_pool(rb.Tensor(x), boxes, size, scale)
    assert_close(y.data, ref.roi_pool(x, boxes, size, scale), 0, 0, "roi_pool")
    y32 = nn.RoIPool(size, scale)(rb.Tensor(x.astype(np.float32)), boxes.astype(np.float32))
    assert_close(y32.data, y.data, 1e-6, 1e-6, "float32")
    # The list-of-boxes-per-image form gives the same result.
    per_image = [boxes[boxes[:, 0] == i, 1:] for i in range(2)]
    order = np.argsort(boxes[:, 0], kind="stable")
    assert_close(F.roi_pool(rb.Tensor(x), per_image, size, scale).data, y.data[order], 0, 0, "list form")
    xg = rb.Tensor(rng.permutation(1000)[:2 * 3 * 10 * 12 // 4].reshape(2, 3, 5, 6) / 9.0, requires_grad=True)
    assert gradcheck(lambda x: F.roi_pool(x, _boxes(np.random.default_rng(3), 2, 5, 6, 4, 1.0), size, 1.0), [xg],
                     eps=1e-4)


def _on_both_paths(call, op):
    """call() on the AVX2 path and on the scalar reference -> (results, the implementation the AVX2 path ran)."""
    previous = _C.isa()
    try:
        results, impls = [], []
        for name in ("avx2", "scalar"):
            _C.set_isa(name)
            results.append(call())
            impls.append(_C.last_impl(op))
    finally:
        _C.set_isa(previous)
    assert impls[1] == "scalar_ref"
    return results, impls[0]


def _assert_same_bits(fast, reference, what):
    (y, idx), (y_ref, idx_ref) = fast, reference
    np.testing.assert_array_equal(y.view(np.uint32), y_ref.view(np.uint32), what + ": values")
    if idx_ref is not None:
        np.testing.assert_array_equal(idx, idx_ref, what + ": indices")


# NaN with distinct payloads and signs: a result's bits tell which element it came from.
_NANS = np.array([0x7FC00001, 0xFFC00002, 0x7FA00003, 0x7FC00004], np.uint32).view(np.float32)


def _awkward_values(rng, shape):
    """Random values with ties (constant planes, +0 against -0, repeated values), NaN, +-inf and -FLT_MAX."""
    x = rng.standard_normal(shape).astype(np.float32)
    flat = x.reshape(-1, shape[-2] * shape[-1])
    for p in range(flat.shape[0]):
        kind = rng.integers(0, 6)
        if kind == 0:
            flat[p] = rng.choice([0.0, 1.5, -2.0, -np.inf])  # a constant plane: every bin a tie
        elif kind == 1:
            flat[p] = rng.choice(np.array([0.0, -0.0], np.float32), flat.shape[1])
        elif kind == 2:
            flat[p] = np.round(flat[p])  # many ties among few values
        elif kind == 3:
            n = flat.shape[1]
            spots = rng.integers(0, n, max(1, n // 6))
            specials = np.concatenate([_NANS, np.array([np.inf, -np.inf, np.finfo(np.float32).min], np.float32)])
            flat[p, spots] = specials[rng.integers(0, len(specials), len(spots))]
        elif kind == 4:
            flat[p] = np.nan  # every bin NaN
    return x


def _awkward_boxes(rng, N, H, W, K, scale):
    """(K, 5) float32 boxes in image coordinates: inside, partly and fully outside the feature map,
    reversed (x2 < x1: one pixel after rounding), of one pixel, and spanning far past the map."""
    h, w = H / scale, W / scale
    x1, y1 = rng.uniform(-0.5 * w, 1.3 * w, K), rng.uniform(-0.5 * h, 1.3 * h, K)
    x2, y2 = x1 + rng.uniform(-0.2 * w, 1.2 * w, K), y1 + rng.uniform(-0.2 * h, 1.2 * h, K)
    kind = rng.integers(0, 5, K)
    x2 = np.where(kind == 1, x1, x2)  # one pixel wide
    y2 = np.where(kind == 1, y1, y2)
    x1, x2 = np.where(kind == 2, -5 * w, x1), np.where(kind == 2, 6 * w, x2)  # the whole map and beyond
    y1, y2 = np.where(kind == 3, 2 * h, y1), np.where(kind == 3, 3 * h, y2)  # wholly below the map
    return np.stack([rng.integers(0, N, K), x1, y1, x2, y2], axis=1).astype(np.float32)


def test_roi_pool_channel_lanes_give_the_reference_bits():
    """The AVX2 path (bins computed once per RoI, channels in the lanes of a channels-last copy of the
    covered part of each image) against the scalar reference, bit for bit, argmax included: channel
    counts around the 8-lane vectors and 32-channel blocks, boxes in and out of the map, bins larger
    and smaller than a pixel, huge and tiny scales, NaN, infinities and ties, non-contiguous input."""
    rng = np.random.default_rng(21)
    lanes = 0
    for trial in range(150):
        N = int(rng.integers(1, 4))
        C = int(rng.choice([1, 3, 8, 9, 16, 31, 32, 33, 70]))
        H, W = (int(v) for v in rng.integers(1, 21, 2))
        K = int(rng.integers(1, 40))
        PH, PW = (int(v) for v in rng.integers(1, 10, 2))
        scale = float(rng.choice([1.0, 0.5, 1 / 16, 3.7, 1000.0]))
        if trial == 0:  # threads split the RoIs; 72 bins: more than one tile of outputs
            N, C, H, W, K, PH, PW, scale = 2, 70, 19, 23, 60, 9, 8, 0.5
        x = _awkward_values(rng, (N, C, H, W))
        if trial % 3 == 0:
            x = np.asfortranarray(x)
        elif trial % 3 == 1:
            x = np.concatenate([x, x], axis=3)[:, :, :, ::2]  # strided view
        boxes = _awkward_boxes(rng, N, H, W, K, scale)
        what = f"trial {trial}: x {x.shape}, {K} boxes, output {PH}x{PW}, scale {scale}"
        (fast, reference), impl = _on_both_paths(lambda: _C.roi_pool_forward(x, boxes, (PH, PW), scale), "roi_pool")
        _assert_same_bits(fast, reference, what)
        _assert_values_without_indices(lambda: _C.roi_pool_forward(x, boxes, (PH, PW), scale, False), reference[0],
                                       impl, what)
        lanes += impl == "avx2_channel_lanes"
    # (The AVX2 dispatcher leaves a few sparse configurations to the reference: see the next test.)
    assert lanes >= 140, f"the AVX2 path ran in only {lanes} of 150 trials"
    # no boxes at all
    (fast, reference), impl = _on_both_paths(
        lambda: _C.roi_pool_forward(x, np.zeros((0, 5), np.float32), (2, 2), 1.0), "roi_pool")
    assert fast[0].shape == (0, x.shape[1], 2, 2) and impl == "avx2_channel_lanes"
    _assert_same_bits(fast, reference, "no boxes")
    _assert_values_without_indices(lambda: _C.roi_pool_forward(x, np.zeros((0, 5), np.float32), (2, 2), 1.0, False),
                                   reference[0], impl, "no boxes")


def _assert_values_without_indices(call, values, impl, what):
    """call() (roi_pool_forward with return_indices=False) on both paths gives (values, None), bit for bit,
    and the AVX2 path runs the implementation `impl` it ran with indices."""
    (fast, reference), fast_impl = _on_both_paths(call, "roi_pool")
    assert fast[1] is None and reference[1] is None, what
    assert fast_impl == impl, f"{what}: {fast_impl} without indices, {impl} with"
    for y in (fast[0], reference[0]):
        np.testing.assert_array_equal(y.view(np.uint32), values.view(np.uint32), what + ": values without indices")


def test_roi_pool_leaves_sparse_small_boxes_to_the_reference(rng):
    """Copying the covered part of the map channels-last costs more than the reference's whole work when a
    few small boxes lie far apart: the AVX2 dispatcher hands those to the reference (same results)."""
    x = rng.standard_normal((1, 64, 60, 60)).astype(np.float32)
    corners = np.array([[0, 0, 0, 1, 1], [0, 58, 58, 59, 59]], np.float32)
    (fast, reference), impl = _on_both_paths(lambda: _C.roi_pool_forward(x, corners, (2, 2), 1.0), "roi_pool")
    assert impl == "scalar_ref"
    _assert_same_bits(fast, reference, "corners")
    _assert_values_without_indices(lambda: _C.roi_pool_forward(x, corners, (2, 2), 1.0, False), reference[0], impl,
                                   "corners")
    many = np.concatenate([corners, [[0, 5, 5, 50, 40]] * 20]).astype(np.float32)
    (fast, reference), impl = _on_both_paths(lambda: _C.roi_pool_forward(x, many, (7, 7), 1.0), "roi_pool")
    assert impl == "avx2_channel_lanes"
    _assert_same_bits(fast, reference, "many boxes")
    _assert_values_without_indices(lambda: _C.roi_pool_forward(x, many, (7, 7), 1.0, False), reference[0], impl,
                                   "many boxes")


def test_roi_pool_reference_rule_for_nan_inf_and_ties(isa):
    """torchvision's rule on both paths: NaN is never taken, a bin of only NaN or -inf gives -FLT_MAX
    with argmax -1, an empty bin 0 with -1, and of equal values (+0 and -0 included) the first wins."""
    x = np.array([[np.nan, np.nan, 1.0, 5.0],
                  [-np.inf, np.nan, 5.0, 2.0],
                  [-0.0, 0.0, 7.0, 7.0],
                  [0.0, -0.0, 7.0, 7.0]], np.float32)
    x = np.broadcast_to(x, (1, 11, 4, 4)).copy()  # 11 channels: one vector and a partial one
    boxes = np.array([[0, 0, 0, 3, 3], [0, 8, 8, 9, 9]], np.float32)
    y, argmax = _C.roi_pool_forward(x, boxes, (2, 2), 1.0)
    np.testing.assert_array_equal(y[0, :, 0, 0], np.finfo(np.float32).min)
    np.testing.assert_array_equal(argmax[0, :, 0, 0], -1)
    np.testing.assert_array_equal(argmax[0, :, 0, 1], 3)  # 5.0 at (0, 3) before (1, 2)
    np.testing.assert_array_equal(np.signbit(y[0, :, 1, 0]), True)  # -0.0 first
    np.testing.assert_array_equal(argmax[0, :, 1, 0], 8)
    np.testing.assert_array_equal(argmax[0, :, 1, 1], 10)
    np.testing.assert_array_equal(y[1], 0.0)  # outside the map: every bin empty
    np.testing.assert_array_equal(argmax[1], -1)
    y_only, none = _C.roi_pool_forward(x, boxes, (2, 2), 1.0, return_indices=False)
    assert none is None
    np.testing.assert_array_equal(y_only.view(np.uint32), y.view(np.uint32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_roi_pool_without_indices_gives_the_same_values(isa, rng, dtype):
    """return_indices=False (F.roi_pool's choice when no gradient is wanted) skips the argmax and gives the
    same values, bit for bit, on random configurations of either dtype and every path."""
    for trial in range(30):
        N, C = int(rng.integers(1, 3)), int(rng.choice([1, 5, 8, 33]))
        H, W = (int(v) for v in rng.integers(1, 16, 2))
        PH, PW = (int(v) for v in rng.integers(1, 8, 2))
        scale = float(rng.choice([1.0, 0.5, 1 / 16]))
        with np.errstate(invalid="ignore"):  # the signalling NaN among the awkward values
            x = _awkward_values(rng, (N, C, H, W)).astype(dtype)
        boxes = _awkward_boxes(rng, N, H, W, int(rng.integers(1, 20)), scale).astype(dtype)
        y, argmax = _C.roi_pool_forward(x, boxes, (PH, PW), scale)
        y_only, none = _C.roi_pool_forward(x, boxes, (PH, PW), scale, False)
        bits = np.uint32 if dtype == np.float32 else np.uint64
        assert none is None and argmax.shape == y.shape
        np.testing.assert_array_equal(y_only.view(bits), y.view(bits), f"trial {trial}")


def test_f_roi_pool_asks_for_indices_only_for_a_gradient(monkeypatch, rng):
    """F.roi_pool requests the argmax only when grad mode is on and the input requires grad."""
    from rosenblatt import _device
    calls = []
    forward = _device.kernel_module.roi_pool_forward

    def spy(*args):
        calls.append(args[4])
        return forward(*args)

    monkeypatch.setattr(_device.kernel_module, "roi_pool_forward", spy)
    x = rng.standard_normal((1, 3, 8, 8))
    boxes = np.array([[0, 1, 1, 6, 5], [0, 0, 2, 7, 7]], np.float64)
    plain = F.roi_pool(rb.Tensor(x), boxes, (2, 3))
    with rb.no_grad():
        F.roi_pool(rb.Tensor(x, requires_grad=True), boxes, (2, 3))
    xg = rb.Tensor(x, requires_grad=True)
    y = F.roi_pool(xg, boxes, (2, 3))
    assert calls == [False, False, True]
    np.testing.assert_array_equal(plain.data, y.data)
    y.sum().backward()
    _, argmax = _C.roi_pool_forward(x, boxes, (2, 3), 1.0)
    expected = _C.roi_pool_backward(np.ones(y.shape), boxes, argmax, list(x.shape))
    np.testing.assert_array_equal(xg.grad.data, expected)


def test_adaptive_max_pool2d_plane_lanes_give_the_reference_bits():
    """The AVX2 path (8 planes transposed into the lanes of a tile) against the scalar reference, bit for
    bit with and without indices: plane counts that are not multiples of 8, windows larger and smaller
    than a pixel, the last NaN taken with its own bits, +-inf and ties, non-contiguous input."""
    rng = np.random.default_rng(22)
    for trial in range(80):
        N, C = int(rng.integers(1, 4)), int(rng.choice([1, 3, 8, 13, 17]))
        H, W = (int(v) for v in rng.integers(1, 19, 2))
        OH, OW = (int(v) for v in rng.integers(1, 2 * max(H, W) + 1, 2))
        x = _awkward_values(rng, (N, C, H, W))
        if trial % 2:
            x = np.asfortranarray(x)
        for with_indices in (True, False):
            what = f"trial {trial}: x {x.shape} -> {OH}x{OW}, indices {with_indices}"
            (fast, reference), impl = _on_both_paths(
                lambda: _C.adaptive_max_pool2d_forward(x, (OH, OW), with_indices), "adaptive_max_pool2d")
            assert impl == "avx2_plane_lanes"
            _assert_same_bits(fast, reference, what)


@pytest.mark.parametrize("mode,align", [("nearest", None), ("bilinear", False), ("bilinear", True)])
def test_interpolate_gradcheck_and_torch(rng, mode, align):
    x = rb.Tensor(rng.standard_normal((1, 2, 4, 5)), requires_grad=True)
    assert gradcheck(lambda x: F.interpolate(x, size=(7, 3), mode=mode, align_corners=align), [x])
    torch = pytest.importorskip("torch")
    for kwargs in (dict(size=(9, 11)), dict(size=(3, 2)), dict(scale_factor=2), dict(scale_factor=(1.5, 0.7))):
        xt = rb.Tensor(x.data.astype(np.float32), requires_grad=True)
        y = nn.Upsample(mode=mode, align_corners=align, **kwargs)(xt)
        tx = torch.tensor(xt.data, requires_grad=True)
        ty = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align, **kwargs)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        ty.backward(torch.tensor(g))
        assert_close(y.data, ty.detach().numpy(), 1e-5, 1e-4, f"{mode} {kwargs}")
        assert_close(xt.grad.data, tx.grad.numpy(), 1e-5, 1e-4, f"{mode} {kwargs} grad")



# input shape, output size, ratios (torch's in / out ratios: 1 / scale_factor where a factor was given)
UPSAMPLE_KERNEL_CASES = [
    ((2, 3, 5, 7), (10, 14), (0.5, 0.5)),          # twice the size: nearest halves the index
    ((1, 2, 5, 7), (11, 4), (5 / 11, 7 / 4)),      # up along H, down along W
    ((1, 1, 1, 1), (3, 5), (1 / 3, 1 / 5)),        # a single input pixel
    ((1, 2, 1, 9), (1, 4), (1.0, 9 / 4)),          # one row, kept: the equal-size rule along H
    ((2, 1, 3, 3), (3, 3), (1 / 1.3, 1 / 1.3)),    # factor 1.3 on 3 pixels: the factor is ignored, as torch
    ((1, 2, 9, 8), (4, 3), (9 / 4, 8 / 3)),        # down-sampling
    ((1, 1, 6, 5), (13, 1), (6 / 13, 5.0)),        # a single output column
    ((1, 1, 4, 6), (9, 13), (1 / 2.3, 1 / 2.2)),   # factors whose sizes are not a ratio of integers
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("mode,align", [("nearest", False), ("bilinear", False), ("bilinear", True)])
@pytest.mark.parametrize("shape,out_hw,ratios", UPSAMPLE_KERNEL_CASES)
def test_upsample_kernel_matches_reference(rng, shape, out_hw, ratios, mode, align, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    dy = rng.standard_normal(shape[:2] + out_hw).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    y = _C.upsample2d_forward(np.asfortranarray(x), out_hw, ratios, mode, align)  # any layout
    assert y.dtype == dtype and y.shape == shape[:2] + out_hw
    assert_close(y, ref.interpolate(x, out_hw, ratios, mode, align), tol, tol, "upsample2d_forward")
    dx = _C.upsample2d_backward(dy, shape[2:], ratios, mode, align)
    assert_close(dx, ref.interpolate_backward(dy, shape[2:], ratios, mode, align), tol, tol, "upsample2d_backward")


def _nonfinite_pattern(a):
    return np.isnan(a), np.isposinf(a), np.isneginf(a)


def test_interpolate_matches_torch_with_nonfinite_values():
    """Each output reads only its (at most 2 x 2) taps: a NaN or inf reaches the outputs and input
    gradients that torch's reach, and every other value stays finite. (Interpolation matrices, used
    before, spread 0 * inf = NaN over whole rows.)"""
    torch = torch_or_skip()
    rng = np.random.default_rng(5)
    for trial in range(300):
        dtype = (np.float32, np.float64)[trial % 2]
        mode = ("nearest", "bilinear")[trial // 2 % 2]
        align = bool(rng.integers(0, 2)) if mode == "bilinear" else None
        H, W = (int(v) for v in rng.integers(1, 9, 2))
        x = rng.standard_normal((1, 2, H, W)).astype(dtype)
        x.reshape(-1)[rng.integers(0, x.size, 2)] = rng.choice([np.nan, np.inf, -np.inf], 2)
        if trial % 3:
            kwargs = dict(size=tuple(int(v) for v in rng.integers(1, 17, 2)))
        else:
            kwargs = dict(scale_factor=tuple(float(v) for v in np.round(rng.uniform(0.6, 3.5, 2), 1)))
            if min(np.floor(np.multiply((H, W), kwargs["scale_factor"]))) < 1:
                continue
        what = f"trial {trial} {dtype.__name__} {mode} align={align} x{x.shape} {kwargs}"
        xt, tx = rb.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y = F.interpolate(xt, mode=mode, align_corners=align, **kwargs)
        ty = torch.nn.functional.interpolate(tx, mode=mode, align_corners=align, **kwargs)
        g = rng.standard_normal(y.shape).astype(dtype)
        g.reshape(-1)[rng.integers(0, g.size)] = np.nan
        y.backward(g)
        ty.backward(torch.tensor(g))
        for ours, theirs, name in ((y.data, ty.detach().numpy(), "output"), (xt.grad.data, tx.grad.numpy(), "grad")):
            for a, b in zip(_nonfinite_pattern(ours), _nonfinite_pattern(theirs)):
                np.testing.assert_array_equal(a, b, f"{what}: {name} non-finite pattern")
            finite = np.isfinite(theirs)
            assert_close(ours[finite], theirs[finite], 1e-5, 1e-4, f"{what}: {name}")


def test_interpolate_refuses_empty_and_integer_input():
    with pytest.raises(ValueError, match=r"interpolate: input is empty, shape \(1, 1, 0, 3\)"):
        F.interpolate(rb.Tensor(np.zeros((1, 1, 0, 3), np.float32)), size=5)
    with pytest.raises(TypeError, match="interpolate: input must be floating point"):
        F.interpolate(rb.Tensor(np.arange(4).reshape(1, 1, 1, 4)), scale_factor=2, mode="bilinear")


def test_pooling_matches_torch_over_random_configs(isa):
    torch = torch_or_skip()
    tf = torch.nn.functional
    rng = np.random.default_rng(11)
    for trial in range(30):
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        d = tuple(int(v) for v in rng.integers(1, 3, 2)) if trial % 2 else (1, 1)
        ceil = bool(rng.integers(0, 2))
        H, W = (int(rng.integers(di * (ki - 1) + 1, 30)) for ki, di in zip(k, d))
        x = rng.standard_normal((int(rng.integers(1, 3)), int(rng.integers(1, 4)), H, W)).astype(np.float32)
        what = f"trial {trial} x{x.shape} k{k} s{s} p{p} d{d} ceil={ceil}"
        xt, tx = rb.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        if trial % 3 == 0:
            y, idx = F.max_pool2d(xt, k, s, p, d, ceil, return_indices=True)
            ty, tidx = tf.max_pool2d(tx, k, s, p, d, ceil, return_indices=True)
            np.testing.assert_array_equal(idx.data, tidx.numpy(), what)
        elif trial % 3 == 1:
            y, ty = F.max_pool2d(xt, k, s, p, d, ceil), tf.max_pool2d(tx, k, s, p, d, ceil)
        else:
            count_pad, divisor = bool(trial % 4), (None if trial % 5 else 3)
            y = F.avg_pool2d(xt, k, s, p, ceil, count_pad, divisor)
            ty = tf.avg_pool2d(tx, k, s, p, ceil, count_pad, divisor)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        ty.backward(torch.tensor(g))
        assert_close(y.data, ty.detach().numpy(), 1e-5, 1e-4, what)
        assert_close(xt.grad.data, tx.grad.numpy(), 1e-5, 1e-4, what + " grad")


@pytest.mark.parametrize("call,op,fragment", [
    (lambda x: F.max_pool2d(x, 2, 2, 2), "max_pool2d", "at most half"),
    (lambda x: F.max_pool2d(x, 9), "max_pool2d", "too small"),
    (lambda x: F.max_pool2d(x, 2, 0), "max_pool2d", "stride"),
    (lambda x: F.avg_pool2d(x, 3, 1, 2), "avg_pool2d", "at most half"),
    (lambda x: F.avg_pool2d(x, 2, divisor_override=0), "avg_pool2d", "divisor_override"),
    (lambda x: F.adaptive_avg_pool2d(x, 0), "adaptive_avg_pool2d", "output_size"),
    (lambda x: F.roi_pool(x, np.array([[2, 0, 0, 3, 3]], np.float32), 2), "roi_pool", "batch index"),
    (lambda x: F.roi_pool(x, np.array([[0, 0, 0, 3]], np.float32), 2), "roi_pool", r"\(K, 5\)"),
    (lambda x: F.roi_pool(x, np.array([[0, np.nan, 0, 3, 3]], np.float32), 2), "roi_pool", "non-finite"),
    (lambda x: _C.max_pool2d_backward(np.ones((2, 3, 3, 3), np.float32), np.full((2, 3, 3, 3), 99), (5, 5)),
     "max_pool2d_backward", "outside"),
    (lambda x: F.interpolate(x, size=(0, 3)), "interpolate", "positive"),
    (lambda x: F.spp(x, (0, 1)), "spp", "levels"),
])
def test_invalid_pooling_configurations(rng, call, op, fragment):
    x = rb.Tensor(rng.standard_normal((2, 3, 6, 7)).astype(np.float32))
    with pytest.raises(ValueError, match=fragment) as info:
        call(x)
    assert str(info.value).startswith(op)


def test_pool_modules(rng):
    x = rb.Tensor(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    out, idx = nn.MaxPool2d(2, return_indices=True)(x)
    assert out.shape == idx.shape == (2, 3, 4, 4) and idx.dtype == np.int64
    assert nn.AvgPool2d(3, 2, 1, ceil_mode=True)(x).shape == (2, 3, 5, 5)
    assert nn.AdaptiveAvgPool2d((1, None))(x).shape == (2, 3, 1, 8)
    assert nn.AdaptiveMaxPool2d(3)(x).shape == (2, 3, 3, 3)
    assert nn.MaxPool2d(2)(rb.Tensor(x.data[0])).shape == (3, 4, 4)  # unbatched


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_upsample_kernel_with_an_absurd_ratio_reads_the_last_row(mode):
    # A source position past int64's range was cast to INT64_MIN (undefined behaviour) and read row 0.
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    expected = _C.upsample2d_forward(x, (2, 2), [1e18, 1e18], mode, False)
    for ratio in (1e20, 1e30):
        np.testing.assert_array_equal(_C.upsample2d_forward(x, (2, 2), [ratio, ratio], mode, False), expected)
    np.testing.assert_array_equal(expected[0, 0, 1], [12, 15] if mode == "nearest" else [15, 15])


def test_roi_pool_backward_keeps_its_own_boxes():
    """Boxes changed by the caller after the forward (a reused proposal buffer) do not move the gradient."""
    x = rb.tensor(np.arange(2 * 1 * 4 * 4, dtype=np.float32).reshape(2, 1, 4, 4), requires_grad=True)
    boxes = np.array([[1, 0, 0, 3, 3]], np.float32)
    out = F.roi_pool(x, boxes, 1)
    boxes[:, 0] = 0
    out.sum().backward()
    assert x.grad.numpy()[1, 0, 3, 3] == 1.0 and x.grad.numpy().sum() == 1.0
