"""The training kernels (cuda/dropout.cu, embedding.cu, batch_norm.cu, optim.cu, nll.cu) against
NumPy float64 references and the CPU optimizers, on shapes that divide no block size.

Needs a GPU; tests/test_cuda_philox.py checks the dropout random numbers without one. Outputs are
poisoned with NaN first (see test_cuda.poisoned), so an element a kernel fails to write shows up.
"""
import math

import numpy as np
import pytest

from rosenblatt import cuda, optim
from rosenblatt.nn import Parameter
from rosenblatt.nn import functional as F
from rosenblatt.nn.utils import clip_grad_norm_
from rosenblatt.tensor import Tensor
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device")

_C = cuda._cuda


def dev(array):
    return cuda.from_numpy(np.asarray(array))  # keeps 0-d arrays 0-d (np.ascontiguousarray would not)


def poisoned(nbytes):
    """Leave a NaN-filled block of nbytes' size class on top of the allocator's free list."""
    filler = cuda.from_numpy(np.full(max(nbytes // 4, 1), np.nan, np.float32))
    cuda.synchronize()
    del filler


def randn(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---- dropout -------------------------------------------------------------------------------------------
def _dropout_reference(x, p, seed, offset, plane=1):
    keep = _C._dropout_keep_on_host(x.size, p, seed, offset, plane).reshape(x.shape)
    scale = x.dtype.type(1) / x.dtype.type(1 - p) if p < 1 else x.dtype.type(0)
    return x * np.where(keep, scale, x.dtype.type(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(1,), (7,), (13, 11), (3, 5, 7), (1000003,)])
@pytest.mark.parametrize("p", [0.0, 0.25, 0.5, 1.0])
def test_dropout_forward_backward(rng, dtype, shape, p):
    x = randn(rng, shape, dtype)
    for seed, offset in ((0, 0), (12345, 3), (2 ** 64 - 1, 2 ** 33 + 1)):
        expected = _dropout_reference(x, p, seed, offset)
        x_dev = dev(x)
        poisoned(x.nbytes)
        np.testing.assert_array_equal(_C.dropout_forward(x_dev, p, seed, offset).to_numpy(), expected)
        poisoned(x.nbytes)  # the backward pass is the same mask on the gradient
        np.testing.assert_array_equal(_C.dropout_backward(x_dev, p, seed, offset).to_numpy(), expected)


def test_dropout2d_planes(rng):
    x = randn(rng, (4, 5, 3, 7))
    expected = _dropout_reference(x, 0.4, 77, 5, plane=21)
    x_dev = dev(x)
    poisoned(x.nbytes)
    out = _C.dropout_forward(x_dev, 0.4, 77, 5, 21).to_numpy()
    np.testing.assert_array_equal(out, expected)
    kept = (out != 0).reshape(20, 21)
    assert np.all(kept.all(axis=1) | ~kept.any(axis=1)), "a plane is partly dropped"


def test_dropout_non_contiguous_input(rng):
    x = randn(rng, (9, 6))
    view = dev(x).transpose(0, 1)
    expected = _dropout_reference(np.ascontiguousarray(x.T), 0.5, 3, 0)
    np.testing.assert_array_equal(_C.dropout_forward(view, 0.5, 3).to_numpy(), expected)


def test_dropout_bad_arguments(rng):
    x = dev(randn(rng, (3, 7)))
    with pytest.raises(ValueError, match="dropout_forward: probability"):
        _C.dropout_forward(x, 1.5, 0)
    with pytest.raises(ValueError, match="dropout_forward: plane"):
        _C.dropout_forward(x, 0.5, 0, 0, 4)
    with pytest.raises(TypeError, match="dropout_backward"):
        _C.dropout_backward(dev(np.arange(4)), 0.5, 0)


# ---- embedding -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("num,dim,index_shape", [(50, 7, (3, 5)), (1, 1, (4,)), (1000, 129, (33, 7)), (5, 3, ())])
def test_embedding_forward(rng, dtype, num, dim, index_shape):
    weight = randn(rng, (num, dim), dtype)
    indices = rng.integers(0, num, size=index_shape).astype(np.int64)
    weight_dev, indices_dev = dev(weight), dev(indices)
    poisoned(indices.size * dim * weight.itemsize)
    out = _C.embedding_forward(weight_dev, indices_dev).to_numpy()
    np.testing.assert_array_equal(out, weight[indices])


@pytest.mark.parametrize("padding_idx", [None, 3, -1])
def test_embedding_backward(rng, padding_idx):
    num, dim = 40, 9
    indices = rng.integers(0, num, size=(6, 7)).astype(np.int64)
    indices[0, :3] = [3, num - 1, 3]  # the padding rows are present
    grad = randn(rng, (6, 7, dim), np.float64)
    expected = np.zeros((num, dim))
    np.add.at(expected, indices.reshape(-1), grad.reshape(-1, dim))
    if padding_idx is not None:
        expected[padding_idx] = 0
    poisoned(num * dim * 8)
    out = _C.embedding_backward(dev(grad), dev(indices), num, padding_idx).to_numpy()
    assert_close(out, expected, atol=1e-12, rtol=1e-12, what="embedding_backward")


def test_embedding_backward_one_hot_row(rng):
    """Thousands of atomic additions into one row (float32)."""
    num, dim, n = 3, 33, 5000
    indices = np.full(n, 1, np.int64)
    grad = randn(rng, (n, dim))
    out = _C.embedding_backward(dev(grad), dev(indices), num).to_numpy()
    expected = np.zeros((num, dim))
    expected[1] = grad.astype(np.float64).sum(axis=0)
    assert_close(out, expected, atol=1e-3, rtol=1e-4, what="embedding_backward one row")


def test_embedding_empty_and_bad_indices(rng):
    weight = dev(randn(rng, (10, 4)))
    assert _C.embedding_forward(weight, dev(np.zeros(0, np.int64))).shape == (0, 4)
    for bad in (10, -1, 2 ** 40):
        indices = np.array([[1, 2], [bad, 3]], np.int64)
        with pytest.raises(IndexError, match=f"embedding_forward: index {bad} is out of range"):
            _C.embedding_forward(weight, dev(indices))
        with pytest.raises(IndexError, match=f"embedding_backward: index {bad}"):
            _C.embedding_backward(dev(randn(rng, (2, 2, 4))), dev(indices), 10)
    with pytest.raises(ValueError, match="padding_idx"):
        _C.embedding_backward(dev(randn(rng, (2, 4))), dev(np.array([1, 2])), 10, 10)
    with pytest.raises(TypeError, match="indices must be int64"):
        _C.embedding_forward(weight, dev(np.zeros(3, np.float32)))
    with pytest.raises(ValueError, match="grad"):
        _C.embedding_backward(dev(randn(rng, (3, 4))), dev(np.array([1, 2])), 10)
    # the device is still usable after the errors
    np.testing.assert_array_equal(_C.embedding_forward(weight, dev(np.array([9]))).to_numpy().shape, (1, 4))


# ---- batch norm -------------------------------------------------------------------------------------------
def _bn_reference(x, weight, bias, rm, rv, training, momentum, eps):
    x = x.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    count = x.size // x.shape[1]
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        rm = rm * (1 - momentum) + momentum * mean
        rv = rv * (1 - momentum) + momentum * var * count / (count - 1)
    else:
        mean, var = rm.astype(np.float64), rv.astype(np.float64)
    invstd = 1 / np.sqrt(var + eps)
    x_hat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    y = x_hat * (1 if weight is None else weight.reshape(shape)) + (0 if bias is None else bias.reshape(shape))
    return y, mean, invstd, rm, rv, x_hat


# the last three split each channel into chunks (9, 16 and 9 of them; see batch_norm_chunks)
BN_SHAPES = [(5, 3), (4, 3, 7, 9), (2, 5, 33), (1, 2, 3), (70, 1, 1), (3, 17, 1, 257), (16, 3, 33, 35),
             (8, 2, 64, 64), (20000, 3)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", BN_SHAPES)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(rng, dtype, shape, training, affine):
    C = shape[1]
    x = (randn(rng, shape, np.float64) * 3 + 2).astype(dtype)
    weight = randn(rng, (C,), dtype) if affine else None
    bias = randn(rng, (C,), dtype) if affine else None
    rm, rv = randn(rng, (C,), dtype), (np.abs(randn(rng, (C,))) + 0.5).astype(dtype)
    momentum, eps = 0.1, 1e-5
    y_ref, mean_ref, invstd_ref, rm_ref, rv_ref, x_hat = _bn_reference(x, weight, bias, rm, rv, training, momentum, eps)
    rm_dev, rv_dev = dev(rm), dev(rv)
    x_dev, w_dev, b_dev = dev(x), None if weight is None else dev(weight), None if bias is None else dev(bias)
    poisoned(x.nbytes)
    y, mean, invstd = _C.batch_norm_forward(x_dev, w_dev, b_dev, rm_dev, rv_dev, training, momentum, eps)
    tol = dict(atol=2e-5, rtol=2e-5) if dtype == np.float32 else dict(atol=1e-11, rtol=1e-11)
    assert_close(y.to_numpy(), y_ref, **tol, what="y")
    assert_close(mean.to_numpy(), mean_ref, **tol, what="save_mean")
    assert_close(invstd.to_numpy(), invstd_ref, **tol, what="save_invstd")
    assert_close(rm_dev.to_numpy(), rm_ref, **tol, what="running_mean")
    assert_close(rv_dev.to_numpy(), rv_ref, **tol, what="running_var")

    g = randn(rng, shape, dtype)
    g64 = g.astype(np.float64)
    axes = (0,) + tuple(range(2, x.ndim))
    pshape = (1, -1) + (1,) * (x.ndim - 2)
    count = x.size // C
    sum_g, sum_gx = g64.sum(axis=axes), (g64 * x_hat).sum(axis=axes)
    s = invstd_ref * (1 if weight is None else weight)
    dx_ref = g64 * s.reshape(pshape)
    if training:
        dx_ref = dx_ref - x_hat * (s * sum_gx / count).reshape(pshape) - (s * sum_g / count).reshape(pshape)
    g_dev = dev(g)
    poisoned(x.nbytes)
    dx, dweight, dbias = _C.batch_norm_backward(g_dev, x_dev, w_dev, mean, invstd, training)
    tol = dict(atol=1e-4, rtol=1e-4) if dtype == np.float32 else dict(atol=1e-10, rtol=1e-10)
    assert_close(dx.to_numpy(), dx_ref, **tol, what="dx")
    assert_close(dweight.to_numpy(), sum_gx, **tol, what="dweight")
    assert_close(dbias.to_numpy(), sum_g, **tol, what="dbias")


def test_batch_norm_bad_arguments(rng):
    x = dev(randn(rng, (4, 3, 5)))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        _C.batch_norm_forward(dev(randn(rng, (1, 3))), training=True)
    with pytest.raises(ValueError, match="weight"):
        _C.batch_norm_forward(x, dev(randn(rng, (4,))), training=True)
    with pytest.raises(ValueError, match="evaluation mode"):
        _C.batch_norm_forward(x, training=False)
    with pytest.raises(ValueError, match="at least 2 dims"):
        _C.batch_norm_forward(dev(randn(rng, (4,))), training=True)
    with pytest.raises(TypeError, match="dtype"):
        _C.batch_norm_forward(x, None, None, dev(np.zeros(3)), dev(np.ones(3)), False)


# ---- optimizers -------------------------------------------------------------------------------------------
SHAPES = [(3, 4), (5,), (1,), (1000003,)]
STEPS = 4

OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9))),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
]


def _device_steps(name, kwargs, initial, gradients):
    """The same updates through sgd_step_ / adam_step_, the state kept as the CPU optimizers keep it."""
    params = [dev(p) for p in initial]
    states = [{} for _ in params]
    for grads in gradients:
        for param, grad, state in zip(params, grads, states):
            if name == "SGD":
                momentum = kwargs.get("momentum", 0)
                first = "buffer" not in state
                if momentum and first:
                    state["buffer"] = _C.empty(list(param.shape), param.dtype)
                _C.sgd_step_(param, dev(grad), state.get("buffer"), lr=kwargs["lr"], momentum=momentum,
                             dampening=kwargs.get("dampening", 0), weight_decay=kwargs.get("weight_decay", 0),
                             nesterov=kwargs.get("nesterov", False), maximize=kwargs.get("maximize", False),
                             first_step=first)
            else:
                amsgrad = kwargs.get("amsgrad", False)
                if not state:
                    zeros = np.zeros(param.shape, np.float32)
                    state.update(step=0, m=dev(zeros), v=dev(zeros), vmax=dev(zeros) if amsgrad else None)
                state["step"] += 1
                beta1, beta2 = kwargs.get("betas", (0.9, 0.999))
                _C.adam_step_(param, dev(grad), state["m"], state["v"], state["vmax"], step=state["step"],
                              lr=kwargs["lr"], beta1=beta1, beta2=beta2, eps=kwargs.get("eps", 1e-8),
                              weight_decay=kwargs.get("weight_decay", 1e-2 if name == "AdamW" else 0),
                              amsgrad=amsgrad, maximize=kwargs.get("maximize", False),
                              decoupled_weight_decay=name == "AdamW")
    return [p.to_numpy() for p in params]


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda c: c[0] + str(sorted(c[1].items())))
def test_optimizer_matches_cpu(rng, case):
    name, kwargs = case
    initial = [randn(rng, s) for s in SHAPES]
    gradients = [[randn(rng, s) for s in SHAPES] for _ in range(STEPS)]
    params = [Parameter(np.array(p)) for p in initial]
    optimizer = getattr(optim, name)(params, **kwargs)
    for grads in gradients:
        for param, grad in zip(params, grads):
            param.grad = Tensor(np.array(grad))
        optimizer.step()
    ours = _device_steps(name, kwargs, initial, gradients)
    for got, want, shape in zip(ours, params, SHAPES):  # same float32 formulas; FMA contraction may differ by ulps
        assert_close(got, want.data, atol=1e-6, rtol=1e-5, what=f"{name} {kwargs} {shape}")


def test_optimizer_bad_arguments(rng):
    p, g = dev(randn(rng, (3, 4))), dev(randn(rng, (3, 4)))
    with pytest.raises(ValueError, match="sgd_step_: grad"):
        _C.sgd_step_(p, dev(randn(rng, (4, 3))), lr=0.1)
    with pytest.raises(ValueError, match="needs a momentum_buffer"):
        _C.sgd_step_(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="Nesterov"):
        _C.sgd_step_(p, g, dev(randn(rng, (3, 4))), lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.sgd_step_(p.transpose(0, 1), g.transpose(0, 1), lr=0.1)
    with pytest.raises(TypeError, match="dtype"):
        _C.sgd_step_(p, dev(randn(rng, (3, 4), np.float64)), lr=0.1)
    m, v = dev(np.zeros((3, 4), np.float32)), dev(np.zeros((3, 4), np.float32))
    with pytest.raises(ValueError, match="step counts from 1"):
        _C.adam_step_(p, g, m, v, step=0, lr=0.1)
    with pytest.raises(ValueError, match="amsgrad needs"):
        _C.adam_step_(p, g, m, v, step=1, lr=0.1, amsgrad=True)
    with pytest.raises(ValueError, match="beta parameter at index 1"):
        _C.adam_step_(p, g, m, v, step=1, lr=0.1, beta2=1.0)


def test_sgd_strided_gradient(rng):
    p0, g = randn(rng, (4, 6)), randn(rng, (6, 4))
    p = dev(p0)
    _C.sgd_step_(p, dev(g).transpose(0, 1), lr=0.5)
    assert_close(p.to_numpy(), p0 - np.float32(0.5) * g.T, atol=1e-6)


# ---- gradient norms and clipping -------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_grad_norm_and_clip(rng, norm_type):
    shapes = [(3, 4), (1,), (1000003,), (7, 9, 11)]
    grads = [randn(rng, s) for s in shapes]
    grads[1] = grads[1].astype(np.float64)  # dtypes may differ between arrays
    params = [Parameter(np.zeros(s, g.dtype)) for s, g in zip(shapes, grads)]
    for param, g in zip(params, grads):
        param.grad = Tensor(g.copy())
    max_norm = 5.0
    cpu_total = clip_grad_norm_(params, max_norm, norm_type).data
    magnitudes = np.concatenate([np.abs(g.astype(np.float64)).ravel() for g in grads])
    exact = magnitudes.max() if norm_type == math.inf else (magnitudes ** norm_type).sum() ** (1 / norm_type)
    arrays = [dev(g) for g in grads]
    total = _C.grad_norm(arrays, norm_type)
    assert total.shape == () and total.dtype == "float32"
    assert_close(total.to_numpy(), exact, atol=0, rtol=1e-6, what=f"grad_norm p={norm_type}")
    assert_close(total.to_numpy(), cpu_total, atol=0, rtol=1e-4, what=f"grad_norm p={norm_type} vs CPU")
    _C.clip_by_total_norm_(arrays, total, max_norm)
    coefficient = np.float32(min(max_norm / (float(total.to_numpy()) + 1e-6), 1.0))  # torch's, as the CPU version
    for got, g, param in zip(arrays, grads, params):
        np.testing.assert_array_equal(got.to_numpy(), g * coefficient)
        assert_close(got.to_numpy(), param.grad.data, atol=1e-7, rtol=1e-4, what=f"clipped p={norm_type} vs CPU")


def test_grad_norm_propagates_nan_and_is_deterministic(rng):
    g = randn(rng, (100001,))
    first = _C.grad_norm([dev(g)]).to_numpy()
    assert first == _C.grad_norm([dev(g)]).to_numpy()  # fixed reduction order
    g[5] = np.nan
    assert np.isnan(_C.grad_norm([dev(g)]).to_numpy())
    assert np.isnan(_C.grad_norm([dev(g)], math.inf).to_numpy())
    with pytest.raises(ValueError, match="norm_type"):
        _C.grad_norm([dev(g)], 0.0)
    with pytest.raises(ValueError, match="at least one"):
        _C.grad_norm([])


def test_scale_(rng):
    x0 = randn(rng, (33, 17))
    x = dev(x0)
    _C.scale_(x, 0.25)
    np.testing.assert_array_equal(x.to_numpy(), x0 * np.float32(0.25))
    with pytest.raises(ValueError, match="C-contiguous"):
        _C.scale_(x.transpose(0, 1), 2.0)


# ---- nll / cross-entropy pieces ------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 5, 2), (5,), (1, 1), (1000, 33)])
@pytest.mark.parametrize("weighted", [False, True])
def test_nll_gather_and_scatter(rng, dtype, shape, weighted):
    C = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    log_probs = randn(rng, shape, dtype)
    target = rng.integers(0, C, size=target_shape).astype(np.int64)
    if target.size > 1:
        target.reshape(-1)[1] = -100  # ignored
    weight = (np.abs(randn(rng, (C,))) + 0.1).astype(dtype) if weighted else None
    # references: (N, C, L) views
    lp3 = log_probs.reshape(1, C, 1) if len(shape) == 1 else log_probs.reshape(shape[0], C, -1)
    t2 = target.reshape(lp3.shape[0], lp3.shape[2])
    valid = t2 != -100
    safe = np.where(valid, t2, 0)
    picked_ref = np.where(valid, np.take_along_axis(lp3, safe[:, None, :], axis=1)[:, 0, :], 0)
    w_ref = np.where(valid, 1 if weight is None else weight[safe], 0)
    lp_dev, target_dev, w_dev = dev(log_probs), dev(target), None if weight is None else dev(weight)
    poisoned(target.size * log_probs.itemsize)
    picked, element_weight = _C.nll_gather(lp_dev, target_dev, w_dev)
    np.testing.assert_array_equal(picked.to_numpy(), picked_ref.reshape(target_shape).astype(dtype))
    np.testing.assert_array_equal(element_weight.to_numpy(), w_ref.reshape(target_shape).astype(dtype))

    coef = randn(rng, target_shape, dtype)
    expected = np.zeros(lp3.shape, dtype)
    c2 = coef.reshape(t2.shape)
    for n, l in zip(*np.nonzero(valid)):
        expected[n, t2[n, l], l] = c2[n, l]
    coef_dev = dev(coef)
    poisoned(log_probs.nbytes)
    out = _C.nll_scatter(coef_dev, target_dev, C).to_numpy()
    np.testing.assert_array_equal(out, expected.reshape(shape))


def test_nll_bad_targets(rng):
    log_probs = dev(randn(rng, (4, 3)))
    for bad in (3, -1, -101):
        target = np.array([0, bad, 2, 1], np.int64)
        with pytest.raises(IndexError, match=f"nll_gather: target {bad} is out of bounds for 3 classes"):
            _C.nll_gather(log_probs, dev(target))
        with pytest.raises(IndexError, match=f"nll_scatter: target {bad}"):
            _C.nll_scatter(dev(randn(rng, (4,))), dev(target), 3)
    with pytest.raises(ValueError, match="do not match"):
        _C.nll_gather(log_probs, dev(np.zeros(5, np.int64)))
    with pytest.raises(ValueError, match="weight"):
        _C.nll_gather(log_probs, dev(np.zeros(4, np.int64)), dev(randn(rng, (4,))))
    picked, _ = _C.nll_gather(log_probs, dev(np.array([7, 7, 7, 7])), ignore_index=7)  # all ignored
    np.testing.assert_array_equal(picked.to_numpy(), np.zeros(4, np.float32))


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_cross_entropy_composed_from_pieces(rng, weighted, reduction):
    """cross_entropy and its gradient as the Python layer can compose them on the device (log_softmax,
    nll_gather, sums, nll_scatter, log_softmax_backward), against the CPU F.cross_entropy."""
    N, C = 37, 11
    x = randn(rng, (N, C), np.float64)
    target = rng.integers(0, C, size=N)
    target[3] = -100
    weight = np.abs(randn(rng, (C,), np.float64)) + 0.1 if weighted else None
    xt = Tensor(x, requires_grad=True)
    loss = F.cross_entropy(xt, Tensor(target), weight=None if weight is None else Tensor(weight), reduction=reduction)
    loss.backward()

    log_probs = cuda.log_softmax(dev(x))
    picked, element_weight = _C.nll_gather(log_probs, dev(target), None if weight is None else dev(weight))
    # loss = -sum(w * picked) / (sum(w) for 'mean', 1 for 'sum'); upstream gradient 1
    total = cuda.sum(element_weight, 0) if reduction == "mean" else dev(np.array(1.0))
    loss_dev = cuda.div(cuda.neg(cuda.sum(cuda.mul(picked, element_weight), 0)), total)
    coef = cuda.div(cuda.neg(element_weight), total)
    grad_x = cuda.log_softmax_backward(_C.nll_scatter(coef, dev(target), C), log_probs)
    assert_close(loss_dev.to_numpy(), loss.data, atol=1e-12, rtol=1e-12, what="loss")
    assert_close(grad_x.to_numpy(), xt.grad.data, atol=1e-12, rtol=1e-10, what="grad")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(13, 1000), (5, 1), (3, 4, 33), (7,), (2, 70000)])
def test_max_last_axis(rng, dtype, shape):
    x = rng.integers(-5, 5, size=shape).astype(dtype)  # many ties: the first index wins, as NumPy
    values, indices = _C.max_last_axis(dev(x))
    np.testing.assert_array_equal(values.to_numpy(), x.max(axis=-1))
    np.testing.assert_array_equal(indices.to_numpy(), x.argmax(axis=-1))


def test_max_last_axis_nan_and_errors(rng):
    x = randn(rng, (4, 300))
    x[1, 17] = x[1, 250] = np.nan
    x[3, 299] = np.nan
    values, indices = _C.max_last_axis(dev(x))
    np.testing.assert_array_equal(indices.to_numpy(), x.argmax(axis=-1))
    assert_close(values.to_numpy(), x.max(axis=-1))
    with pytest.raises(ValueError, match="empty"):
        _C.max_last_axis(dev(np.zeros((3, 0), np.float32)))
