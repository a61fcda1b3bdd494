"""nll_loss / cross_entropy on a device run the backend's nll kernels: `nll_gather` (each position's target
log-probability and class weight, IndexError on a bad target) and, backward, `nll_scatter` (the gradient
at the target classes). Run on the NumPy stand-in (tests/fake_cuda.py), whose two kernels use the real
backend's own index map (`_nll_sources_on_host`, "kernel code") or, as in a CPU-only build, NumPy.

Every case compares the loss and the input's gradient with the CPU path (rtol 1e-6 float32, 1e-12
float64) and checks that both kernels ran, so a fallback to the one-hot mask fails."""
import itertools

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn.functional as F
from rosenblatt import nn
from rosenblatt.tensor import no_grad
from conftest import assert_close


DTYPES = [np.float32, np.float64]
REDUCTIONS = ["none", "mean", "sum"]
SHAPES = [(7,), (6, 5), (3, 4, 2, 3)]  # (C,) with a 0-d target, (N, C), (N, C, H, W)


def tolerance(dtype):
    return dict(atol=1e-7, rtol=1e-6) if dtype == np.float32 else dict(atol=1e-14, rtol=1e-12)


def _case(shape, dtype, ignore=None, seed=0):
    """(input, target, weight, upstream gradient seed): targets in range, some equal to `ignore`."""
    rng = np.random.default_rng(seed)
    classes = shape[0] if len(shape) == 1 else shape[1]
    target_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    x = rng.standard_normal(shape).astype(dtype)
    target = rng.integers(0, classes, size=target_shape).astype(np.int64)
    if ignore is not None and target.size > 1:
        target.reshape(-1)[::3] = ignore
    weight = rng.uniform(0.5, 2.0, classes).astype(dtype)
    return x, target, weight, rng


def _run(fn, x, target, device, upstream, weight=None, **kwargs):
    """fn on `device`: (loss, input gradient) as NumPy arrays; the loss is reduced with `upstream`
    (fixed random coefficients) so that reduction 'none' gets a non-uniform gradient."""
    xt = rb.tensor(x, device=device, requires_grad=True)
    w = None if weight is None else rb.tensor(weight, device=device)
    loss = fn(xt, rb.tensor(target, device=device), weight=w, **kwargs)
    coefficients = rb.tensor(upstream.astype(x.dtype).reshape(loss.shape), device=device)
    (loss * coefficients).sum().backward()
    return loss.cpu().numpy(), xt.grad.cpu().numpy()


def _compare(fake_both, fn, x, target, weight=None, **kwargs):
    reduction = kwargs.get("reduction", "mean")
    upstream = np.random.default_rng(1).uniform(0.5, 1.5, size=target.shape if reduction == "none" else ())
    expected_loss, expected_grad = _run(fn, x, target, "cpu", upstream, weight, **kwargs)
    fake_both.calls.clear()
    loss, grad = _run(fn, x, target, "cuda", upstream, weight, **kwargs)
    assert "nll_gather" in fake_both.calls and "nll_scatter" in fake_both.calls, fake_both.calls
    assert loss.dtype == expected_loss.dtype == x.dtype and grad.dtype == x.dtype
    assert_close(loss, expected_loss, **tolerance(x.dtype), what="loss")
    assert_close(grad, expected_grad, **tolerance(x.dtype), what="input gradient")
    return loss, grad


def _log_softmax(x):
    axis = 0 if x.ndim == 1 else 1
    shifted = x - x.max(axis=axis, keepdims=True)
    return (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).astype(x.dtype)


# ---- nll_loss and cross_entropy against the CPU ------------------------------------------------------
@pytest.mark.parametrize("shape,dtype,reduction,weighted,ignore",
                         list(itertools.product(SHAPES, DTYPES, REDUCTIONS, (False, True), (None, -100))))
def test_nll_loss_matches_cpu(fake_both, shape, dtype, reduction, weighted, ignore):
    x, target, weight, _ = _case(shape, dtype, ignore)
    _compare(fake_both, F.nll_loss, _log_softmax(x), target, weight if weighted else None, reduction=reduction)


@pytest.mark.parametrize("shape,dtype,reduction,weighted,ignore",
                         list(itertools.product(SHAPES, DTYPES, REDUCTIONS, (False, True), (None, -100))))
def test_cross_entropy_matches_cpu(fake_both, shape, dtype, reduction, weighted, ignore):
    x, target, weight, _ = _case(shape, dtype, ignore)
    _compare(fake_both, F.cross_entropy, x, target, weight if weighted else None, reduction=reduction)


@pytest.mark.parametrize("shape,reduction,weighted", list(itertools.product(SHAPES, REDUCTIONS, (False, True))))
@pytest.mark.parametrize("dtype", DTYPES)
def test_cross_entropy_label_smoothing_matches_cpu(fake_both, shape, dtype, reduction, weighted):
    """The nll part runs the kernels; 'mean' divides the smoothing term by nll_gather's summed weights."""
    x, target, weight, _ = _case(shape, dtype, ignore=-100)
    _compare(fake_both, F.cross_entropy, x, target, weight if weighted else None, reduction=reduction,
             label_smoothing=0.2)


@pytest.mark.parametrize("fn", [F.nll_loss, F.cross_entropy])
@pytest.mark.parametrize("ignore_index", [1, -1, 3])
def test_other_ignore_index(fake_both, fn, ignore_index):
    """ignore_index may be a valid class (1) or -1; an ignored target is never read, even when its
    value would be out of range (3 of 3 classes)."""
    x, target, weight, _ = _case((8, 3), np.float64)
    target[::2] = ignore_index
    for weighted, reduction in itertools.product((False, True), REDUCTIONS):
        _compare(fake_both, fn, x, target, weight if weighted else None, reduction=reduction, ignore_index=ignore_index)


@pytest.mark.parametrize("fn", [F.nll_loss, F.cross_entropy])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3), (4,)])
def test_all_targets_ignored(fake_both, fn, dtype, shape):
    """'mean' of nothing is NaN (0 / 0, as torch); 'sum' and 'none' are zeros; the gradient is zero."""
    x, target, weight, _ = _case(shape, dtype)
    target = np.full(target.shape, -100, np.int64)
    for weighted, reduction in itertools.product((False, True), REDUCTIONS):
        with np.errstate(invalid="ignore", divide="ignore"):
            loss, grad = _compare(fake_both, fn, x, target, weight if weighted else None, reduction=reduction)
        if reduction == "mean":
            assert np.isnan(loss)
        else:
            assert np.all(loss == 0)
        assert np.all(grad == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_targets_ignored_with_label_smoothing(fake_both, dtype):
    x, target, weight, _ = _case((4, 3), dtype)
    target[:] = -100
    for weighted, reduction in itertools.product((False, True), REDUCTIONS):
        with np.errstate(invalid="ignore", divide="ignore"):
            _compare(fake_both, F.cross_entropy, x, target, weight if weighted else None, reduction=reduction,
                     label_smoothing=0.1)


def test_float64_weight_with_float32_input(fake_both):
    """The class weights are rounded to the input's dtype, as on the CPU (the kernel wants one dtype)."""
    x, target, weight, _ = _case((6, 5), np.float32, ignore=-100)
    for fn in (F.nll_loss, F.cross_entropy):
        _compare(fake_both, fn, x, target, weight.astype(np.float64), reduction="mean")


def test_modules_run_the_kernels(fake_both):
    x, target, weight, _ = _case((6, 5, 2), np.float32, ignore=-100)
    for device in ("cpu", "cuda"):
        fake_both.calls.clear()
        losses = []
        for module in (nn.CrossEntropyLoss(weight=rb.tensor(weight, device=device)),
                       nn.NLLLoss(weight=rb.tensor(weight, device=device), reduction="sum")):
            xt = rb.tensor(x, device=device, requires_grad=True)
            loss = module(xt, rb.tensor(target, device=device))
            loss.backward()
            losses.append((loss.cpu().numpy(), xt.grad.cpu().numpy()))
        if device == "cpu":
            expected = losses
        else:
            assert fake_both.calls.count("nll_gather") == 2 and fake_both.calls.count("nll_scatter") == 2
            for (loss, grad), (loss_cpu, grad_cpu) in zip(losses, expected):
                assert_close(loss, loss_cpu, **tolerance(np.float32))
                assert_close(grad, grad_cpu, **tolerance(np.float32))


# ---- what the device path does besides the arithmetic ------------------------------------------------
@pytest.mark.parametrize("fn,name", [(F.nll_loss, "nll_loss"), (F.cross_entropy, "cross_entropy")])
@pytest.mark.parametrize("shape,bad", [((4, 3), 3), ((4, 3), -2), ((2, 3, 5), 7), ((3,), 3), ((3,), -1)])
def test_out_of_range_target_raises_index_error_naming_the_op(fake_both, fn, name, shape, bad):
    x, target, _, _ = _case(shape, np.float32)
    target.reshape(-1)[-1] = bad
    if target.ndim == 0:
        target = np.asarray(bad, np.int64)
    for device in ("cpu", "cuda"):
        fake_both.calls.clear()
        with pytest.raises(IndexError, match=rf"^{name}: .*out of bounds for 3 classes"):
            fn(rb.tensor(x, device=device, requires_grad=True), rb.tensor(target, device=device))
    assert "nll_gather" in fake_both.calls  # the kernel found it (one flag read back), not a host check


def test_no_gradient_needed_runs_only_the_gather(fake_both):
    x, target, _, _ = _case((5, 4), np.float64, ignore=-100)
    fake_both.calls.clear()
    with no_grad():
        loss = F.cross_entropy(rb.tensor(x, device="cuda", requires_grad=True), rb.tensor(target, device="cuda"))
    assert "nll_gather" in fake_both.calls and "nll_scatter" not in fake_both.calls
    assert loss.device.type == "cuda"
    expected = F.cross_entropy(rb.tensor(x), rb.tensor(target))
    assert_close(loss.cpu().numpy(), expected.numpy(), **tolerance(np.float64))


def test_backward_uses_the_targets_of_the_forward(fake_both):
    """The caller may overwrite its target array between forward and backward, as on the CPU."""
    x, target, _, _ = _case((5, 4), np.float64)
    grads = []
    for device in ("cpu", "cuda"):
        xt = rb.tensor(x, device=device, requires_grad=True)
        t = rb.tensor(target, device=device)
        loss = F.cross_entropy(xt, t, reduction="sum")
        t.data[...] = rb.tensor((target + 1) % 4, device=device).data
        loss.backward()
        grads.append(xt.grad.cpu().numpy())
    assert_close(grads[1], grads[0], **tolerance(np.float64))


def test_int32_targets(fake_both):
    x, target, _, _ = _case((6, 3), np.float32)
    _compare(fake_both, F.nll_loss, _log_softmax(x), target.astype(np.int32), reduction="mean")


def test_empty_batch(fake_both):
    x = np.zeros((0, 3), np.float64)
    target = np.zeros((0,), np.int64)
    for reduction in ("none", "sum"):
        _compare(fake_both, F.cross_entropy, x, target, reduction=reduction)
    with np.errstate(invalid="ignore", divide="ignore"):
        _compare(fake_both, F.cross_entropy, x, target, reduction="mean")


# ---- the stand-in kernels themselves: the bindings' argument checks ---------------------------------
def test_kernel_argument_checks(fake_both):
    d = fake_both.from_numpy
    lp = d(np.zeros((2, 3), np.float32))
    target = d(np.array([0, 2], np.int64))
    with pytest.raises(TypeError, match="int64"):
        fake_both.nll_gather(lp, d(np.array([0, 2], np.float32)))
    with pytest.raises(ValueError, match="do not match"):
        fake_both.nll_gather(lp, d(np.array([0, 2, 1], np.int64)))
    with pytest.raises(TypeError, match="dtype"):
        fake_both.nll_gather(lp, target, d(np.ones(3, np.float64)))
    with pytest.raises(ValueError, match="shape"):
        fake_both.nll_gather(lp, target, d(np.ones(4, np.float32)))
    with pytest.raises(TypeError):
        fake_both.nll_gather(np.zeros((2, 3), np.float32), target)  # a host array reaching the kernel
    with pytest.raises(IndexError, match="nll_gather: target 3 is out of bounds for 3 classes"):
        fake_both.nll_gather(lp, d(np.array([0, 3], np.int64)))
    with pytest.raises(ValueError, match="should match"):
        fake_both.nll_scatter(d(np.ones(3, np.float32)), target, 3)
    with pytest.raises(ValueError, match="num_classes"):
        fake_both.nll_scatter(d(np.ones(2, np.float32)), target, -1)
    with pytest.raises(IndexError, match="nll_scatter: target -5 is out of bounds for 3 classes"):
        fake_both.nll_scatter(d(np.ones(2, np.float32)), d(np.array([-5, 0], np.int64)), 3)


def test_kernel_results(fake_both):
    rng = np.random.default_rng(3)
    log_probs = rng.standard_normal((3, 4, 5)).astype(np.float64)
    target = rng.integers(0, 4, (3, 5)).astype(np.int64)
    target[0, 1] = -100
    weight = rng.uniform(size=4)
    picked, element_weight = fake_both.nll_gather(fake_both.from_numpy(log_probs), fake_both.from_numpy(target),
                                             fake_both.from_numpy(weight))
    n, l = np.indices(target.shape)
    safe = np.where(target == -100, 0, target)
    valid = target != -100
    np.testing.assert_array_equal(picked.to_numpy(), np.where(valid, log_probs[n, safe, l], 0))
    np.testing.assert_array_equal(element_weight.to_numpy(), np.where(valid, weight[safe], 0))
    coef = rng.standard_normal(target.shape)
    out = fake_both.nll_scatter(fake_both.from_numpy(coef), fake_both.from_numpy(target), 4).to_numpy()
    expected = np.zeros((3, 4, 5))
    expected[n[valid], safe[valid], l[valid]] = coef[valid]
    np.testing.assert_array_equal(out, expected)
    # (C,) with a 0-d target
    picked, element_weight = fake_both.nll_gather(fake_both.from_numpy(log_probs[0, :, 0].copy()),
                                             fake_both.from_numpy(np.asarray(2, np.int64)))
    assert picked.shape == () and picked.to_numpy() == log_probs[0, 2, 0] and element_weight.to_numpy() == 1
    out = fake_both.nll_scatter(fake_both.from_numpy(np.asarray(0.5)), fake_both.from_numpy(np.asarray(2, np.int64)), 4)
    np.testing.assert_array_equal(out.to_numpy(), [0, 0, 0.5, 0])
