"""BatchNorm2d and Dropout2d: torch's statistics, state_dict and gradients; channel-wise dropout masks."""
import numpy as np
import pytest

import rosenblatt as rb
from conftest import assert_close, torch_or_skip
from rosenblatt import nn
from rosenblatt.autograd import gradcheck

F = nn.functional


def test_batch_norm_gradcheck_train_and_eval(rng):
    x = rb.Tensor(rng.standard_normal((3, 2, 4, 5)), requires_grad=True)
    w = rb.Tensor(rng.standard_normal(2), requires_grad=True)
    b = rb.Tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    rm, rv = rb.Tensor(rng.standard_normal(2)), rb.Tensor(rng.random(2) + 0.5)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])


def test_batchnorm2d_matches_torch(rng):
    torch = torch_or_skip()
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.weight.data[...] = rng.standard_normal(3)
    ours.bias.data[...] = rng.standard_normal(3)
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    for step in range(3):
        x = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(np.float32)
        xt, tx = rb.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        ty.backward(torch.tensor(g))
        assert_close(y.data, ty.detach().numpy(), 1e-5, 1e-4, f"train step {step}")
        assert_close(xt.grad.data, tx.grad.numpy(), 1e-5, 1e-4, "grad input")
        assert_close(ours.weight.grad.data, theirs.weight.grad.numpy(), 1e-4, 1e-4, "grad weight")
        ours.weight.grad = ours.bias.grad = None
        theirs.zero_grad()
    for name, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[name].data, value.numpy(), 1e-6, 1e-5, name)
    assert int(ours.num_batches_tracked.data) == 3
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert_close(ours(rb.Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), 1e-5, 1e-4, "eval")


def test_batchnorm2d_rejects_bad_shapes(rng):
    with pytest.raises(ValueError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(rb.Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="batch_norm"):
        nn.BatchNorm2d(4)(rb.Tensor(np.zeros((2, 3, 2, 2), np.float32)))


def test_dropout2d_zeroes_whole_channels():
    rb.manual_seed(0)
    x = rb.Tensor(np.ones((8, 16, 3, 3), np.float32), requires_grad=True)
    layer = nn.Dropout2d(0.5)
    y = layer(x)
    per_channel = y.data.reshape(8, 16, 9)
    assert np.all((per_channel == 0) | (per_channel == 2))
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # one draw per channel
    assert 0.2 < (per_channel[:, :, 0] == 0).mean() < 0.8
    y.backward(np.ones(y.shape, np.float32))
    assert np.array_equal(x.grad.data, y.data)
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="dropout2d"):
        F.dropout2d(x, 1.5)


# ---- the kernels (_C.batch_norm_forward / _backward) against a float64 NumPy reference ----------------
def reference_batch_norm(x, w, b, rm, rv, training, momentum, eps):
    x3 = x.astype(np.float64).reshape(x.shape[0], x.shape[1], -1)
    count = x3.shape[0] * x3.shape[2]
    if training:
        mean, var = x3.mean(axis=(0, 2)), x3.var(axis=(0, 2))
        new_rm = None if rm is None else (1 - momentum) * rm + momentum * mean
        new_rv = None if rv is None else (1 - momentum) * rv + momentum * var * count / (count - 1)
    else:
        mean, var, new_rm, new_rv = rm.astype(np.float64), rv.astype(np.float64), rm, rv
    x_hat = (x3 - mean[None, :, None]) / np.sqrt(var + eps)[None, :, None]
    y = x_hat * (1.0 if w is None else w[None, :, None]) + (0.0 if b is None else b[None, :, None])
    return y.reshape(x.shape), new_rm, new_rv


@pytest.mark.parametrize("shape", [(5, 3), (4, 7, 9), (3, 2, 5, 6), (1, 4, 13, 1)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_kernels_match_reference(rng, shape, training, dtype, affine):
    from rosenblatt import _C
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 5).astype(dtype)  # an offset mean: centring matters
    w = rng.standard_normal(C).astype(dtype) if affine else None
    b = rng.standard_normal(C).astype(dtype) if affine else None
    rm, rv = rng.standard_normal(C).astype(dtype), (rng.random(C) + 0.5).astype(dtype)
    y_ref, rm_ref, rv_ref = reference_batch_norm(x, w, b, rm.astype(np.float64), rv.astype(np.float64), training,
                                                 0.1, 1e-5)
    y, save_mean, save_invstd = _C.batch_norm_forward(x, w, b, rm, rv, training, 0.1, 1e-5)
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(y, y_ref, tol, tol, "y")
    assert_close(rm, rm_ref, tol, tol, "running_mean")
    assert_close(rv, rv_ref, tol, tol, "running_var")
    # Backward: against the float64 autograd of the reference formula (finite differences of a sum).
    g = rng.standard_normal(shape).astype(dtype)
    dx, dw, db = _C.batch_norm_backward(g, x, w, save_mean, save_invstd, training)
    x3, g3 = x.astype(np.float64).reshape(shape[0], C, -1), g.astype(np.float64).reshape(shape[0], C, -1)
    mean, invstd = save_mean.astype(np.float64), save_invstd.astype(np.float64)
    x_hat = (x3 - mean[None, :, None]) * invstd[None, :, None]
    sum_g, sum_gx = g3.sum(axis=(0, 2)), (g3 * x_hat).sum(axis=(0, 2))
    scale = invstd * (1.0 if w is None else w.astype(np.float64))
    dx_ref = g3 * scale[None, :, None]
    if training:
        count = x3.shape[0] * x3.shape[2]
        dx_ref = dx_ref - scale[None, :, None] * (sum_g[None, :, None] + x_hat * sum_gx[None, :, None]) / count
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_close(dx, dx_ref.reshape(shape), tol, tol, "dx")
    assert_close(dw, sum_gx, tol, tol, "dweight")
    assert_close(db, sum_g, tol, tol, "dbias")


def test_batch_norm_running_stats_of_another_dtype_are_updated(rng):
    x = rb.Tensor(rng.standard_normal((6, 3, 4)))  # float64 input, float32 running statistics
    rm, rv = np.zeros(3, np.float32), np.ones(3, np.float32)
    F.batch_norm(x, rm, rv, training=True, momentum=0.5)
    _, rm_ref, rv_ref = reference_batch_norm(x.data, None, None, np.zeros(3), np.ones(3), True, 0.5, 1e-5)
    assert_close(rm, rm_ref, 1e-6, 1e-6, "running_mean")
    assert_close(rv, rv_ref, 1e-6, 1e-6, "running_var")


def test_batch_norm_kernel_rejects_bad_arguments(rng):
    from rosenblatt import _C
    x = rng.standard_normal((4, 3, 2)).astype(np.float32)
    with pytest.raises(ValueError, match=r"batch_norm_forward: weight must have shape \(3,\)"):
        _C.batch_norm_forward(x, np.ones(4, np.float32))
    with pytest.raises(TypeError, match="batch_norm_forward: bias has dtype float64 but x has float32"):
        _C.batch_norm_forward(x, None, np.ones(3))
    with pytest.raises(ValueError, match="needed in evaluation mode"):
        _C.batch_norm_forward(x, training=False)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _C.batch_norm_forward(x[:1, :, :1], training=True)
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="running_mean is read-only"):
        _C.batch_norm_forward(x, None, None, frozen, np.ones(3, np.float32), True)
    with pytest.raises(ValueError, match="at least 2 dims"):
        _C.batch_norm_forward(np.ones(3, np.float32))
    with pytest.raises(TypeError, match="expected float32 or float64"):
        _C.batch_norm_forward(np.ones((2, 3), np.int64))
    y, mean, invstd = _C.batch_norm_forward(x, training=True)
    with pytest.raises(ValueError, match="batch_norm_backward: grad"):
        _C.batch_norm_backward(np.ones((4, 3), np.float32), x, None, mean, invstd, True)


def test_batch_norm_1d_matches_torch(rng):
    torch = torch_or_skip()
    ours, theirs = nn.BatchNorm1d(5), torch.nn.BatchNorm1d(5)
    x = (rng.standard_normal((8, 5)) * 2 - 3).astype(np.float32)
    xt, tx = rb.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    y, ty = ours(xt), theirs(tx)
    y.sum().backward()
    ty.sum().backward()
    assert_close(y.data, ty.detach().numpy(), 1e-5, 1e-4, "y")
    assert_close(xt.grad.data, tx.grad.numpy(), 1e-5, 1e-4, "grad input")
    assert_close(ours.running_var.data, theirs.running_var.numpy(), 1e-6, 1e-5, "running_var")


def test_batchnorm_eval_gradient_does_not_read_the_input():
    # In evaluation dx = g * weight / sqrt(running_var + eps): a NaN in x gave NaN through (x - mean) * 0.
    x = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1)
    x[0, 0, 0, 0] = np.nan
    bn = nn.BatchNorm2d(2).eval()
    xt = rb.Tensor(x, requires_grad=True)
    bn(xt).backward(np.ones(x.shape, np.float32))
    assert_close(xt.grad.data, np.full(x.shape, 1 / np.sqrt(1 + 1e-5), np.float32), 1e-7, 1e-6, "dx")
    assert np.isnan(bn.weight.grad.data[0]) and np.isfinite(bn.weight.grad.data[1])  # dw reads x: NaN, as torch
