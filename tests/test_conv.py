"""conv2d, conv_transpose2d, unfold/fold and locally connected layers: kernels against the NumPy float64
reference on both ISA paths, finite-difference gradients, torch.nn.functional, invalid configurations."""
import numpy as np
import pytest

import conv_reference as ref
import rosenblatt as rb
from conftest import assert_close, torch_or_skip
from rosenblatt import _C, nn
from rosenblatt.autograd import gradcheck

F = nn.functional

# N, C, H, W, O, kernel, stride, padding, dilation, groups: stride > kernel, padding up to half the
# kernel, dilation, groups (depthwise too), odd and prime sizes, batch 1, 1x1 outputs, pointwise.
CONFIGS = [
    (2, 3, 7, 9, 4, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 4, 11, 6, 6, (3, 2), (2, 3), (1, 1), (1, 1), 2),
    (3, 2, 5, 5, 3, (1, 1), (1, 1), (0, 0), (1, 1), 1),
    (2, 6, 8, 7, 6, (3, 3), (1, 1), (1, 1), (1, 1), 6),
    (1, 3, 9, 10, 5, (2, 2), (3, 3), (1, 0), (1, 1), 1),
    (2, 4, 10, 9, 4, (3, 3), (1, 2), (2, 1), (2, 3), 2),
    (4, 1, 5, 5, 2, (5, 5), (1, 1), (0, 0), (1, 1), 1),
    (1, 2, 3, 3, 7, (3, 3), (2, 2), (0, 0), (1, 1), 1),
    (5, 3, 13, 4, 2, (1, 3), (2, 1), (0, 1), (1, 1), 1),
    (2, 8, 6, 6, 4, (1, 1), (2, 2), (0, 0), (1, 1), 4),
    # stride 2 along rows of more than 8 outputs: im2col's vector gather, its tail, the image's end
    (1, 3, 9, 47, 5, (3, 3), (2, 2), (1, 1), (1, 1), 1),
    (1, 2, 5, 40, 3, (2, 2), (2, 2), (0, 0), (1, 1), 1),
    (2, 4, 12, 37, 4, (3, 3), (2, 2), (2, 2), (2, 2), 2),
    # 3x3 stride 1 with >= 16 channels: the Winograd path (full 8-tile blocks need rows >= 32 wide)
    (2, 16, 9, 41, 17, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (1, 17, 20, 19, 16, (3, 3), (1, 1), (0, 2), (1, 1), 1),
    (3, 16, 5, 4, 16, (3, 3), (1, 1), (2, 2), (1, 1), 1),
    (1, 16, 50, 70, 20, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # several chunks of tile rows per image
    # at most 32 output positions per image: one GEMM over the whole batch
    (5, 16, 4, 4, 24, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (250, 64, 4, 4, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # in chunks of images (3), dw summed over them
    # one output, stride 1, no dilation: the direct loops (rows shorter and longer than 8 lanes)
    (3, 32, 8, 8, 1, (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 5, 13, 21, 1, (5, 3), (1, 1), (2, 0), (1, 1), 1),
    (1, 3, 9, 40, 1, (2, 7), (1, 1), (1, 3), (1, 1), 1),
    (2, 2, 3, 5, 1, (3, 5), (1, 1), (2, 4), (1, 1), 1),  # padding wider than the image: whole taps outside
    (2, 5, 13, 21, 3, (5, 3), (1, 1), (2, 0), (1, 1), 1),  # three outputs: im2col and the GEMM
    (3, 6, 5, 3, 4, (2, 2), (2, 1), (1, 1), (1, 2), 1),
]
SMALL_IMAGE = 32  # output positions per image at or below which the batched GEMM path runs


def _random_conv(rng, config, dtype=np.float32):
    N, C, H, W, O, k, s, p, d, g = config
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((O, C // g) + k).astype(dtype)
    b = rng.standard_normal(O).astype(dtype)
    return x, w, b, s, p, d, g


@pytest.mark.parametrize("config", CONFIGS)
def test_conv2d_kernels_match_reference(isa, rng, config):
    x, w, b, s, p, d, g = _random_conv(rng, config)
    x = np.asfortranarray(x) if config[0] % 2 else x  # non-contiguous inputs are copied, not misread
    expected = ref.conv2d(x, w, b, s, p, d, g)
    y = _C.conv2d_forward(x, w, b, s, p, d, g)
    # Tolerances relative to the output's scale: Winograd F(4x4, 3x3) rounds to about 1e-6 of it.
    scale = lambda a: 2e-5 * max(1.0, float(np.abs(a).max()))  # noqa: E731
    assert_close(y, expected, scale(expected), 1e-4, "forward")
    assert _C.last_impl("conv2d") != "scalar_ref" or isa == "scalar"
    few_outputs = config[4] == 1 and g == 1 and s == (1, 1) and d == (1, 1) and config[5] != (1, 1)
    if isa != "scalar" and y.shape[2] * y.shape[3] <= SMALL_IMAGE and g == 1:
        assert _C.last_impl("conv2d") == "im2col_gemm_batched"
    elif isa != "scalar" and few_outputs:
        assert _C.last_impl("conv2d") == "direct_few_outputs"
    elif isa != "scalar" and config[1] >= 16:
        assert _C.last_impl("conv2d") == "winograd_f4x3"
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx_ref, dw_ref, db_ref = ref.conv2d_backward(x, w, dy, s, p, d, g)
    dx = _C.conv2d_backward_data(dy, w, x.shape[2:], s, p, d, g)
    assert_close(dx, dx_ref, scale(dx_ref), 1e-4, "backward data")
    assert_close(_C.conv2d_backward_weight(x, dy, w.shape[2:], s, p, d, g), dw_ref, scale(dw_ref), 1e-4, "backward weight")
    assert_close(_C.conv2d_backward_bias(dy), db_ref, 1e-4, 1e-4, "backward bias")


def test_conv2d_batch_split_and_sequential_paths_agree(rng):
    """Batch sizes that do and do not split images across threads give the same result per image."""
    x, w, b, s, p, d, g = _random_conv(rng, (8, 5, 9, 9, 6, (3, 3), (1, 1), (1, 1), (1, 1), 1))
    whole = _C.conv2d_forward(x, w, b, s, p, d, g)
    first = _C.conv2d_forward(x[:1].copy(), w, b, s, p, d, g)
    assert_close(whole[:1], first, 1e-5, 1e-5, "image 0")
    assert_close(whole, ref.conv2d(x, w, b, s, p, d, g), 1e-4, 1e-4, "batch")


@pytest.mark.parametrize("config", CONFIGS[:6])
def test_conv2d_gradcheck(rng, config):
    x, w, b, s, p, d, g = _random_conv(rng, config, np.float64)
    x, w, b = (rb.Tensor(a[:2], requires_grad=True) if a is x else rb.Tensor(a, requires_grad=True) for a in (x, w, b))
    assert gradcheck(lambda x, w, b: F.conv2d(x, w, b, s, p, d, g), [x, w, b], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("padding,dilation,kernel", [("same", 1, (3, 3)), ("same", 2, (4, 3)), ("valid", 1, (2, 5))])
def test_conv2d_string_padding(rng, padding, dilation, kernel):
    x = rb.Tensor(rng.standard_normal((2, 3, 7, 8)), requires_grad=True)
    w = rb.Tensor(rng.standard_normal((4, 3) + kernel), requires_grad=True)
    y = F.conv2d(x, w, None, 1, padding, dilation)
    if padding == "same":
        assert y.shape[2:] == x.shape[2:]
    assert gradcheck(lambda x, w: F.conv2d(x, w, None, 1, padding, dilation), [x, w], atol=1e-6, rtol=1e-5)


def test_conv2d_unbatched_input(rng):
    x, w = rng.standard_normal((3, 6, 5)).astype(np.float32), rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    y = F.conv2d(rb.Tensor(x), rb.Tensor(w), padding=1)
    assert_close(y.data, ref.conv2d(x[None], w, None, (1, 1), (1, 1), (1, 1), 1)[0], 1e-4, 1e-4, "unbatched")


TRANSPOSED = [  # N, C_in, H, W, C_out, kernel, stride, padding, output_padding, dilation, groups
    (2, 3, 5, 4, 2, (3, 3), (2, 2), (1, 1), (1, 0), (1, 1), 1),
    (1, 4, 6, 6, 6, (4, 4), (2, 2), (1, 1), (0, 0), (1, 1), 2),
    (3, 2, 3, 5, 3, (2, 3), (1, 3), (0, 1), (0, 2), (1, 1), 1),
    (1, 2, 4, 4, 2, (3, 3), (1, 1), (2, 0), (1, 1), (2, 2), 2),  # output_padding >= stride (< dilation)
    (2, 4, 1, 1, 4, (1, 1), (1, 1), (0, 0), (0, 0), (1, 1), 4),
    (1, 16, 6, 23, 16, (3, 3), (1, 1), (1, 0), (0, 0), (1, 1), 1),  # Winograd backward-data
    # stride 2 along W: col2im adds taps in even/odd pairs; odd kernels leave a last tap alone
    (1, 3, 5, 7, 2, (4, 4), (2, 2), (0, 2), (1, 1), (1, 1), 1),
    (2, 2, 4, 5, 3, (5, 5), (2, 2), (1, 2), (0, 1), (1, 1), 1),
]


def _random_transposed(rng, config, dtype):
    N, Ci, H, W, Co, k, s, p, op, d, g = config
    x = rng.standard_normal((N, Ci, H, W)).astype(dtype)
    w = rng.standard_normal((Ci, Co // g) + k).astype(dtype)
    return x, w, rng.standard_normal(Co).astype(dtype), s, p, op, d, g


@pytest.mark.parametrize("config", TRANSPOSED)
def test_conv_transpose2d_matches_reference(isa, rng, config):
    x, w, b, s, p, op, d, g = _random_transposed(rng, config, np.float32)
    y = F.conv_transpose2d(rb.Tensor(x), rb.Tensor(w), rb.Tensor(b), s, p, op, g, d)
    assert_close(y.data, ref.conv_transpose2d(x, w, b, s, p, op, d, g), 1e-4, 1e-4, "conv_transpose2d")


@pytest.mark.parametrize("config", TRANSPOSED)
def test_conv_transpose2d_backward_is_the_two_separate_passes(isa, rng, config):
    """dx and dW from one pass over grad's im2col columns: the bits of the convolution's forward of grad
    and of its weight gradient (the two passes it replaces), on the GEMM route and on every fallback."""
    x, w, _, s, p, op, d, g = _random_transposed(rng, config, np.float32)
    grad = rng.standard_normal(_C.conv_transpose2d_forward(x, w, None, s, p, op, d, g).shape).astype(np.float32)
    dx, dw = _C.conv_transpose2d_backward(grad, x, w, s, p, d, g)
    in_h, in_w = x.shape[2:]
    np.testing.assert_array_equal(dx, _C.conv2d_forward(grad, w, None, s, p, d, g)[:, :, :in_h, :in_w])
    np.testing.assert_array_equal(dw, _C.conv2d_backward_weight(grad, x, w.shape[2:], s, p, d, g))
    with pytest.raises(ValueError, match=r"conv_transpose2d_backward: grad_output \(.*\), input \(.*\) and weight"):
        _C.conv_transpose2d_backward(grad, x[:, :1], w, s, p, d, g)


@pytest.mark.parametrize("config", TRANSPOSED)
def test_conv_transpose2d_gradcheck(rng, config):
    x, w, b, s, p, op, d, g = _random_transposed(rng, config, np.float64)
    x, w, b = (rb.Tensor(a, requires_grad=True) for a in (x, w, b))
    assert gradcheck(lambda x, w, b: F.conv_transpose2d(x, w, b, s, p, op, g, d), [x, w, b], atol=1e-6, rtol=1e-5)


def test_unfold_fold_and_locally_connected(rng):
    x = rb.Tensor(rng.standard_normal((2, 3, 6, 5)), requires_grad=True)
    cols = F.unfold(x, (3, 2), dilation=(1, 2), padding=1, stride=(2, 1))
    assert cols.shape == (2, 3 * 6, 3 * 5)
    assert gradcheck(lambda x: F.unfold(x, (3, 2), (1, 2), 1, (2, 1)), [x])
    c = rb.Tensor(rng.standard_normal((2, 12, 12)), requires_grad=True)
    assert gradcheck(lambda c: F.fold(c, (4, 5), 2, 1, 0, 1), [c])
    # A locally connected layer whose filters are all equal is a convolution.
    w = rng.standard_normal((4, 3, 3, 3))
    lc = nn.LocallyConnected2d(3, 4, (6, 5), 3, padding=1, dtype=np.float64)
    lc.weight.data[...] = w
    lc.bias.data[...] = 0
    assert_close(lc(x).data, ref.conv2d(x.data, w, None, (1, 1), (1, 1), (1, 1), 1), 1e-10, 1e-10, "shared weights")
    wl = rb.Tensor(rng.standard_normal((3, 2, 4, 3, 2, 2)), requires_grad=True)
    bl = rb.Tensor(rng.standard_normal((4, 3, 2)), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.locally_connected2d(x, w, b, stride=2), [x, wl, bl])


@pytest.mark.parametrize("shape, k, s, p, d", [((1, 7, 97, 83), (3, 5), (2, 1), (1, 2), (1, 2)),
                                                 ((5, 3, 64, 61), (3, 3), (1, 1), (1, 1), (1, 1))])
def test_unfold_and_fold_split_over_threads(rng, shape, k, s, p, d):
    """Large enough to split (one image into bands of output rows; fold by images): the same bits as on
    one thread, and as torch's unfold / fold."""
    x = rng.standard_normal(shape).astype(np.float32)
    threads = rb.get_num_threads()
    try:
        rb.set_num_threads(1)
        cols_one = _C.im2col(x, k, s, p, d)
        x_one = _C.col2im(cols_one, shape[2:], k, s, p, d)
        rb.set_num_threads(3)
        cols, folded = _C.im2col(x, k, s, p, d), _C.col2im(cols_one, shape[2:], k, s, p, d)
    finally:
        rb.set_num_threads(threads)
    np.testing.assert_array_equal(cols, cols_one)
    np.testing.assert_array_equal(folded, x_one)
    torch = torch_or_skip()
    np.testing.assert_array_equal(cols, torch.nn.functional.unfold(torch.tensor(x), k, d, p, s).numpy())
    want = torch.nn.functional.fold(torch.tensor(cols_one), shape[2:], k, d, p, s).numpy()
    assert_close(folded, want, 1e-6, 1e-6, "fold")


def test_torch_agreement_over_random_configs(isa):
    torch = torch_or_skip()
    tf = torch.nn.functional
    rng = np.random.default_rng(7)
    for trial in range(25):
        groups = int(rng.choice([1, 1, 2, 3]))
        C, O = groups * int(rng.integers(1, 4)), groups * int(rng.integers(1, 4))
        k = tuple(int(v) for v in rng.integers(1, 5, 2))
        s = tuple(int(v) for v in rng.integers(1, 4, 2))
        d = tuple(int(v) for v in rng.integers(1, 3, 2))
        p = tuple(int(rng.integers(0, kk // 2 + 1)) for kk in k)
        H, W = (int(rng.integers(di * (ki - 1) + 1, 14)) for ki, di in zip(k, d))
        N = int(rng.integers(1, 4))
        transposed = trial % 3 == 2
        x = rng.standard_normal((N, C, H, W)).astype(np.float32)
        w = rng.standard_normal(((C, O // groups) if transposed else (O, C // groups)) + k).astype(np.float32)
        b = rng.standard_normal(O).astype(np.float32)
        op = tuple(int(rng.integers(0, max(si, di))) for si, di in zip(s, d)) if transposed else None
        xt, wt, bt = (rb.Tensor(a, requires_grad=True) for a in (x, w, b))
        tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        if transposed:
            y, ty = F.conv_transpose2d(xt, wt, bt, s, p, op, groups, d), tf.conv_transpose2d(tx, tw, tb, s, p, op, groups, d)
        else:
            y, ty = F.conv2d(xt, wt, bt, s, p, d, groups), tf.conv2d(tx, tw, tb, s, p, d, groups)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        ty.backward(torch.tensor(g))
        what = f"trial {trial} {'transposed' if transposed else 'conv'} x{x.shape} w{w.shape} s{s} p{p} d{d} g{groups}"
        scale = lambda a: 1e-4 * max(1.0, float(np.abs(a).max()))  # noqa: E731  relative to the output's size
        assert_close(y.data, ty.detach().numpy(), scale(ty.detach().numpy()), 1e-4, what + " output")
        for ours, theirs, name in ((xt, tx, "input"), (wt, tw, "weight"), (bt, tb, "bias")):
            expected = theirs.grad.numpy()
            assert_close(ours.grad.data, expected, scale(expected), 1e-4, f"{what} grad {name}")


@pytest.mark.parametrize("call,fragment", [
    (lambda x, w: _C.conv2d_forward(x, w[:, :2], None, (1, 1), (0, 0), (1, 1), 1), "input channels"),
    (lambda x, w: _C.conv2d_forward(x, w, None, (1, 1), (0, 0), (1, 1), 2), "not divisible by groups"),
    (lambda x, w: _C.conv2d_forward(x[:, :, :2], w, None, (1, 1), (0, 0), (1, 1), 1), "larger than the padded input"),
    (lambda x, w: _C.conv2d_forward(x, w, None, (0, 1), (0, 0), (1, 1), 1), "stride"),
    (lambda x, w: _C.conv2d_forward(x, w, np.zeros(4, np.float32), (1, 1), (0, 0), (1, 1), 1), "bias"),
    (lambda x, w: _C.conv2d_forward(x[0], w, None, (1, 1), (0, 0), (1, 1), 1), "4-D"),
    (lambda x, w: F.conv2d(rb.Tensor(x), rb.Tensor(w[0]), None), "weight must be 4-D"),
    (lambda x, w: F.conv2d(rb.Tensor(x), rb.Tensor(w), None, 2, "same"), "strided"),
    (lambda x, w: F.conv_transpose2d(rb.Tensor(x), rb.Tensor(w[:, :, :1, :1]), None, 1, 0, 1), "output_padding"),
    (lambda x, w: F.conv_transpose2d(rb.Tensor(x[:, :, :1, :1]), rb.Tensor(w), None, 1, 2), "not positive"),
    # only the height is not positive: the message gives the width too (it printed 0 before)
    (lambda x, w: F.conv_transpose2d(rb.Tensor(x[:, :, :1]), rb.Tensor(w[:, :, :2]), None, (1, 2), 1, 0, 1, (1, 2)),
     r"output size 0x11 is not positive \(input \(2, 3, 1, 5\), weight \(3, 3, 2, 3\)\)"),
    (lambda x, w: rb.nn.ConvTranspose2d(3, 3, 3, stride=2)(rb.Tensor(x), output_size=(7,)), "2 or 4 elements"),
    # an empty batch is named as this op's input (it was reported as the output's shape)
    (lambda x, w: F.conv_transpose2d(rb.Tensor(x[:0]), rb.Tensor(w), None), r"empty dimension \(input \(0, 3, 5, 5\)"),
])
def test_invalid_configurations_raise_value_error(rng, call, fragment):
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 3)).astype(np.float32)
    with pytest.raises(ValueError, match=fragment) as info:
        call(x, w)
    message = str(info.value)
    assert message.split(":")[0] in ("conv2d", "conv_transpose2d", "ConvTranspose2d")
    assert "(" in message  # names the shapes


def test_dtype_errors_are_type_errors(rng):
    x = rng.standard_normal((1, 3, 5, 5))
    with pytest.raises(TypeError, match="conv2d"):
        _C.conv2d_forward(x, x.astype(np.float32)[:, :, :3, :3], None, (1, 1), (0, 0), (1, 1), 1)
    with pytest.raises(TypeError, match="conv2d"):
        _C.conv2d_forward(x.astype(np.int32), x.astype(np.int32), None, (1, 1), (0, 0), (1, 1), 1)


def test_conv2d_module_init_and_state_dict():
    rb.manual_seed(0)
    conv = nn.Conv2d(6, 8, (3, 5), stride=2, padding=1, groups=2)
    assert list(conv.state_dict()) == ["weight", "bias"]
    assert conv.weight.shape == (8, 3, 3, 5) and conv.bias.shape == (8,)
    bound = 1 / np.sqrt(3 * 3 * 5)
    assert np.abs(conv.weight.data).max() <= bound and np.abs(conv.weight.data).max() > 0.8 * bound
    assert nn.Conv2d(2, 2, 1, bias=False).bias is None
    tconv = nn.ConvTranspose2d(4, 6, 4, stride=2, padding=1, groups=2)
    assert tconv.weight.shape == (4, 3, 4, 4)
    x = rb.Tensor(np.zeros((1, 4, 7, 7), np.float32))
    assert tconv(x).shape == (1, 6, 14, 14)
    assert tconv(x, output_size=(15, 15)).shape == (1, 6, 15, 15)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(1, 1, 3, padding_mode="reflect")


def test_conv_modules_match_torch_with_copied_weights(rng):
    torch = torch_or_skip()
    ours = nn.Conv2d(3, 5, 3, stride=1, padding="same", dilation=2)
    theirs = torch.nn.Conv2d(3, 5, 3, stride=1, padding="same", dilation=2)
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    x = rng.standard_normal((2, 3, 8, 9)).astype(np.float32)
    expected = theirs(torch.tensor(x)).detach().numpy()
    assert_close(ours(rb.Tensor(x)).data, expected, 1e-5, 1e-4, "Conv2d")


def test_bilinear_initialised_transposed_conv_upsamples_like_interpolate(rng):
    """FCN's learned up-sampling starts as bilinear interpolation: away from the border, a 4x4 stride-2
    transposed convolution filled by init.bilinear_ equals F.interpolate(scale 2, bilinear)."""
    up = nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, bias=False)
    nn.init.bilinear_(up.weight)
    x = rb.Tensor(rng.standard_normal((2, 3, 6, 7)).astype(np.float32))
    ours = up(x).data
    expected = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False).data
    assert ours.shape == expected.shape
    assert_close(ours[:, :, 1:-1, 1:-1], expected[:, :, 1:-1, 1:-1], 1e-5, 1e-5, "interior")


@pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")
def test_same_padding_with_even_kernels_matches_torch(rng):
    """An even kernel needs an odd total padding; torch puts the extra row/column at the bottom/right."""
    torch = torch_or_skip()
    x = rng.standard_normal((2, 3, 7, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 4, 2)).astype(np.float32)
    xt, wt = rb.Tensor(x, requires_grad=True), rb.Tensor(w, requires_grad=True)
    tx, tw = torch.tensor(x, requires_grad=True), torch.tensor(w, requires_grad=True)
    y, ty = F.conv2d(xt, wt, padding="same"), torch.nn.functional.conv2d(tx, tw, padding="same")
    g = rng.standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    ty.backward(torch.tensor(g))
    assert y.shape == x.shape[:1] + (4,) + x.shape[2:]
    assert_close(y.data, ty.detach().numpy(), 1e-4, 1e-4, "output")
    assert_close(xt.grad.data, tx.grad.numpy(), 1e-4, 1e-4, "grad input")
    assert_close(wt.grad.data, tw.grad.numpy(), 1e-4, 1e-4, "grad weight")


def test_conv2d_weight_gradient_keeps_its_own_copy_of_an_array_input():
    w = rb.tensor(np.ones((1, 1, 2, 2), np.float32), requires_grad=True)
    image = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    loss = F.conv2d(image, w).sum()
    image[...] = 0  # a reused input buffer
    loss.backward()
    assert w.grad.numpy().ravel().tolist() == [8.0, 12.0, 20.0, 24.0]
