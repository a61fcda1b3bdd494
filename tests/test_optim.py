"""Optimizers, schedulers and gradient clipping against torch.optim: the same parameters and
the same sequence of gradients must give the same parameters after every step."""
import math

import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.nn import Parameter
from rosenblatt.optim import lr_scheduler
from rosenblatt.tensor import Tensor
from conftest import assert_close, torch_or_skip

SHAPES = [(3, 4), (5,), (1,)]
STEPS = 6

OPTIMIZER_CASES = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.1, momentum=0.9)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.3)),
    ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True, maximize=True)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.9))),  # beta1 < 1/2: lerp's other rounding branch
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.5, amsgrad=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.8)),
    ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5, maximize=True)),
]


def _case_id(case):
    name, kwargs = case
    return name + "(" + ",".join(f"{k}={v}" for k, v in kwargs.items()) + ")"


def _gradient_sequence(rng, steps=STEPS):
    return [[rng.standard_normal(shape).astype(np.float32) for shape in SHAPES] for _ in range(steps)]


def _run_ours(optimizer_name, kwargs, initial, gradients):
    params = [Parameter(np.array(p)) for p in initial]
    optimizer = getattr(optim, optimizer_name)(params, **kwargs)
    history = []
    for grads in gradients:
        for param, grad in zip(params, grads):
            param.grad = Tensor(np.array(grad))
        optimizer.step()
        history.append([np.array(p.data) for p in params])
    return history, optimizer


def _run_torch(torch, optimizer_name, kwargs, initial, gradients):
    params = [torch.nn.Parameter(torch.tensor(p)) for p in initial]
    optimizer = getattr(torch.optim, optimizer_name)(params, **kwargs)
    history = []
    for grads in gradients:
        for param, grad in zip(params, grads):
            param.grad = torch.tensor(grad)
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=_case_id)
def test_optimizer_matches_torch(case, rng):
    torch = torch_or_skip()
    name, kwargs = case
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    gradients = _gradient_sequence(rng)
    ours, _ = _run_ours(name, kwargs, initial, gradients)
    theirs = _run_torch(torch, name, kwargs, initial, gradients)
    for step, (mine, reference) in enumerate(zip(ours, theirs)):
        for i, (a, b) in enumerate(zip(mine, reference)):
            assert a.dtype == np.float32
            assert_close(a, b, atol=2e-6, rtol=2e-6, what=f"{_case_id(case)} step {step} param {i}")


@pytest.mark.parametrize("case", [c for c in OPTIMIZER_CASES if c[0] != "SGD" and c[0] != "RMSprop"], ids=_case_id)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_adam_gives_the_numpy_update_bits(isa, case, dtype, rng, monkeypatch):
    """_C.adam_update (one pass in C++) against adam.py's NumPy lines (the spec, and the path for device
    arrays), bit for bit, over steps; the last shape is large enough for the threaded loop."""
    from rosenblatt.optim import adam
    name, kwargs = case
    shapes = SHAPES + [(700, 600)]
    initial = [rng.standard_normal(shape).astype(dtype) for shape in shapes]
    gradients = [[rng.standard_normal(shape).astype(dtype) for shape in shapes] for _ in range(4)]
    runs = []
    for fused in (True, False):
        monkeypatch.setattr(adam, "_fused_applies", (lambda *arrays: True) if fused else (lambda *arrays: False))
        history, optimizer = _run_ours(name, kwargs, initial, gradients)
        if fused:
            from rosenblatt import _C
            expected = "avx2" if isa != "scalar" and dtype == np.float32 else "scalar_ref"
            assert _C.last_impl("adam_update") == expected
        runs.append(history[-1] + [np.array(v.data) for state in optimizer.state.values() for v in state.values()
                                   if isinstance(v, Tensor)])
    for fused, spec in zip(*runs):
        assert fused.dtype == dtype
        np.testing.assert_array_equal(fused, spec)


def test_fused_adam_checks_its_arrays():
    from rosenblatt import _C
    a = np.zeros(4, np.float32)
    scalars = (1.0, 0.0, 0.1, 0.001, 0.999, 0.5, 1e-8, 0.01)
    with pytest.raises(ValueError, match="adam_update: exp_avg has dtype float64 and shape"):
        _C.adam_update(a, a.copy(), np.zeros(4), a.copy(), None, *scalars)
    with pytest.raises(ValueError, match="adam_update: param and exp_avg share memory"):
        _C.adam_update(a, a.copy(), a, a.copy(), None, *scalars)
    with pytest.raises(ValueError, match="adam_update: exp_avg_sq must be C-contiguous"):
        _C.adam_update(a, a.copy(), a.copy(), np.zeros(8, np.float32)[::2], None, *scalars)


def test_param_groups_have_their_own_hyperparameters(rng):
    torch = torch_or_skip()
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    gradients = _gradient_sequence(rng)
    ours = [Parameter(np.array(p)) for p in initial]
    theirs = [torch.nn.Parameter(torch.tensor(p)) for p in initial]
    opt = optim.SGD([{"params": ours[:2]}, {"params": ours[2:], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    ref = torch.optim.SGD([{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.5, "momentum": 0.9}], lr=0.1)
    torch_only = {"foreach", "fused", "differentiable", "capturable"}  # implementation switches
    assert [sorted(g) for g in opt.param_groups] == [sorted(set(g) - torch_only) for g in ref.param_groups]
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    for grads in gradients:
        for a, b, g in zip(ours, theirs, grads):
            a.grad, b.grad = Tensor(np.array(g)), torch.tensor(g)
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        assert_close(a.data, b.detach().numpy(), atol=1e-6, rtol=1e-6, what="param groups")


def test_parameters_without_gradient_are_left_alone():
    frozen, trained = Parameter(np.ones(3, np.float32)), Parameter(np.ones(3, np.float32))
    trained.grad = Tensor(np.ones(3, np.float32))
    optimizer = optim.Adam([frozen, trained], lr=0.1)
    optimizer.step()
    assert np.all(frozen.data == 1) and np.all(trained.data < 1)
    assert frozen not in optimizer.state and trained in optimizer.state


def test_zero_grad():
    param = Parameter(np.ones(2, np.float32))
    param.grad = Tensor(np.ones(2, np.float32))
    optimizer = optim.SGD([param], lr=0.1)
    optimizer.zero_grad(set_to_none=False)
    assert np.all(param.grad.data == 0)
    optimizer.zero_grad()
    assert param.grad is None


def test_update_is_in_place():
    param = Parameter(np.ones(4, np.float32))
    storage = param.data
    param.grad = Tensor(np.ones(4, np.float32))
    optim.SGD([param], lr=0.5, momentum=0.9).step()
    assert param.data is storage and np.all(storage == 0.5)


@pytest.mark.parametrize("case", [c for c in OPTIMIZER_CASES if c[1].get("momentum") or c[0] != "SGD"],
                         ids=_case_id)
def test_state_dict_resume_continues_identically(case, rng):
    name, kwargs = case
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    gradients = _gradient_sequence(rng)
    straight, _ = _run_ours(name, kwargs, initial, gradients)

    first, optimizer = _run_ours(name, kwargs, initial, gradients[:3])
    saved = optimizer.state_dict()
    assert sorted(saved["state"]) == [0, 1, 2] and saved["param_groups"][0]["params"] == [0, 1, 2]
    params = [Parameter(np.array(p)) for p in first[-1]]  # fresh parameters at step 3
    fresh = getattr(optim, name)(params, **kwargs)
    fresh.load_state_dict(saved)
    for grads in gradients[3:]:
        for param, grad in zip(params, grads):
            param.grad = Tensor(np.array(grad))
        fresh.step()
    for a, b in zip(params, straight[-1]):
        assert_close(a.data, b, atol=0, rtol=0, what=f"{_case_id(case)} resumed")


def test_state_dict_layout_matches_torch(rng):
    torch = torch_or_skip()
    initial = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    gradients = _gradient_sequence(rng, 2)
    _, ours = _run_ours("Adam", dict(lr=0.01, amsgrad=True), initial, gradients)
    params = [torch.nn.Parameter(torch.tensor(p)) for p in initial]
    reference = torch.optim.Adam(params, lr=0.01, amsgrad=True)
    for grads in gradients:
        for param, grad in zip(params, grads):
            param.grad = torch.tensor(grad)
        reference.step()
    mine, theirs = ours.state_dict(), reference.state_dict()
    assert sorted(mine["state"]) == sorted(theirs["state"])
    for index in theirs["state"]:
        assert sorted(mine["state"][index]) == sorted(theirs["state"][index])
        assert mine["state"][index]["step"] == int(theirs["state"][index]["step"])
        assert_close(mine["state"][index]["exp_avg"].data, theirs["state"][index]["exp_avg"].numpy(),
                     atol=1e-6, rtol=1e-6, what="exp_avg")
    assert set(theirs["param_groups"][0]) - set(mine["param_groups"][0]) <= {
        "foreach", "capturable", "differentiable", "fused"}  # torch's implementation switches

    # a torch optimizer's state_dict loads into ours (0-d step tensors become numbers)
    fresh = optim.Adam([Parameter(np.array(p)) for p in initial], lr=0.01, amsgrad=True)
    fresh.load_state_dict(theirs)
    assert fresh.state_dict()["state"][0]["step"] == 2


def test_load_state_dict_rejects_mismatches():
    a, b = Parameter(np.zeros((2, 3), np.float32)), Parameter(np.zeros(4, np.float32))
    a.grad, b.grad = Tensor(np.ones((2, 3), np.float32)), Tensor(np.ones(4, np.float32))
    optimizer = optim.Adam([a, b])
    optimizer.step()
    saved = optimizer.state_dict()
    with pytest.raises(ValueError, match="groups"):
        optim.Adam([a]).load_state_dict(saved)
    with pytest.raises(ValueError, match="groups"):
        optim.Adam([{"params": [a]}, {"params": [b]}]).load_state_dict(saved)
    swapped = optim.Adam([b, a])
    with pytest.raises(ValueError, match=r"shape \(2, 3\).*\(4,\)"):
        swapped.load_state_dict(saved)
    with pytest.raises(ValueError, match="'state'"):
        optimizer.load_state_dict({"weights": 1})


@pytest.mark.parametrize("make, message", [
    (lambda p: optim.SGD(p, lr=-1), "learning rate"),
    (lambda p: optim.SGD(p, momentum=0, nesterov=True), "Nesterov"),
    (lambda p: optim.Adam(p, betas=(1.0, 0.9)), "beta"),
    (lambda p: optim.RMSprop(p, alpha=-0.1), "alpha"),
    (lambda p: optim.SGD([], lr=0.1), "empty"),
])
def test_invalid_hyperparameters_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make([Parameter(np.zeros(2, np.float32))] if "empty" not in message else [])


def test_params_must_be_tensors_and_not_repeated():
    param = Parameter(np.zeros(2, np.float32))
    with pytest.raises(TypeError):
        optim.SGD([np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError):
        optim.SGD(param, lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": [param]}, {"params": [param]}], lr=0.1)


# ---- schedulers ----------------------------------------------------------------------------------
def _lr_sequences(torch, make_ours, make_theirs, epochs, metrics=None):
    ours_opt = optim.SGD([Parameter(np.zeros(1, np.float32))], lr=0.5)
    theirs_opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.5)
    ours, theirs = make_ours(ours_opt), make_theirs(theirs_opt)
    mine, reference = [], []
    for epoch in range(epochs):
        ours_opt.step()
        theirs_opt.step()
        if metrics is None:
            ours.step()
            theirs.step()
        else:
            ours.step(metrics[epoch])
            theirs.step(metrics[epoch])
        mine.append(ours_opt.param_groups[0]["lr"])
        reference.append(theirs_opt.param_groups[0]["lr"])
        assert ours.get_last_lr() == [mine[-1]]
    return mine, reference


@pytest.mark.parametrize("name, kwargs", [
    ("StepLR", dict(step_size=3)),
    ("StepLR", dict(step_size=2, gamma=0.5)),
    ("CosineAnnealingLR", dict(T_max=5)),
    ("CosineAnnealingLR", dict(T_max=4, eta_min=0.01)),
])
def test_scheduler_matches_torch(name, kwargs):
    torch = torch_or_skip()
    mine, reference = _lr_sequences(
        torch, lambda o: getattr(lr_scheduler, name)(o, **kwargs),
        lambda o: getattr(torch.optim.lr_scheduler, name)(o, **kwargs), epochs=14)
    assert_close(mine, reference, atol=1e-12, rtol=1e-12, what=name)


@pytest.mark.parametrize("kwargs", [
    dict(patience=2), dict(mode="max", factor=0.5, patience=1, cooldown=2),
    dict(patience=0, threshold=0.1, threshold_mode="abs", min_lr=0.01),
])
def test_reduce_lr_on_plateau_matches_torch(kwargs):
    torch = torch_or_skip()
    metrics = [1.0, 0.9, 0.9, 0.91, 0.95, 0.8, 0.85, 0.85, 0.85, 0.7, 0.71, 0.72, 0.73, 0.74]
    mine, reference = _lr_sequences(
        torch, lambda o: lr_scheduler.ReduceLROnPlateau(o, **kwargs),
        lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o, **kwargs), len(metrics), metrics)
    assert_close(mine, reference, atol=1e-12, rtol=1e-12, what=str(kwargs))
    assert len(set(mine)) > 1  # the schedule did reduce


def test_scheduler_state_dict_resume():
    def run(epochs, resume_from=None):
        optimizer = optim.SGD([Parameter(np.zeros(1, np.float32))], lr=1.0)
        scheduler = lr_scheduler.CosineAnnealingLR(optimizer, T_max=6)
        if resume_from is not None:
            optimizer.load_state_dict(resume_from[0])
            scheduler.load_state_dict(resume_from[1])
        lrs = []
        for _ in range(epochs):
            optimizer.step()
            scheduler.step()
            lrs.append(optimizer.param_groups[0]["lr"])
        return lrs, (optimizer.state_dict(), scheduler.state_dict())

    straight, _ = run(8)
    first, saved = run(3)
    rest, _ = run(5, resume_from=saved)
    assert first + rest == straight


# ---- gradient clipping -------------------------------------------------------------------------
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("max_norm", [0.5, 100.0])
def test_clip_grad_norm_matches_torch(norm_type, max_norm, rng):
    torch = torch_or_skip()
    grads = [rng.standard_normal(shape).astype(np.float32) for shape in SHAPES]
    ours = [Parameter(np.zeros(s, np.float32)) for s in SHAPES]
    theirs = [torch.nn.Parameter(torch.zeros(s)) for s in SHAPES]
    for a, b, g in zip(ours, theirs, grads):
        a.grad, b.grad = Tensor(np.array(g)), torch.tensor(g)
    total = nn.utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    reference = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, Tensor) and total.shape == ()
    assert_close(total.data, reference.numpy(), atol=1e-5, rtol=1e-5, what="total norm")
    for a, b in zip(ours, theirs):
        assert_close(a.grad.data, b.grad.numpy(), atol=1e-6, rtol=1e-5, what="clipped grad")


@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf])
def test_clip_grad_norm_of_float64_gradients_stays_float64(norm_type, rng):
    """The total norm and the scale were rounded to float32 whatever the gradients' dtype (errors of 1e-7
    in a float64 model's gradients); torch keeps the gradients' dtype."""
    grads = [3 * rng.standard_normal(shape) for shape in SHAPES]
    ours = [Parameter(np.zeros(s)) for s in SHAPES]
    for p, g in zip(ours, grads):
        p.grad = Tensor(np.array(g))
    total = nn.utils.clip_grad_norm_(ours, 0.5, norm_type=norm_type)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = np.max(np.abs(flat)) if norm_type == math.inf else np.sum(np.abs(flat) ** norm_type) ** (1 / norm_type)
    assert total.dtype == np.float64
    assert_close(total.data, expected, atol=0, rtol=1e-14, what="total norm")
    for p, g in zip(ours, grads):
        assert_close(p.grad.data, g * (0.5 / (expected + 1e-6)), atol=0, rtol=1e-14, what="clipped grad")
    torch = pytest.importorskip("torch")
    theirs = [torch.nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in SHAPES]
    for p, g in zip(theirs, grads):
        p.grad = torch.tensor(g)
    reference = torch.nn.utils.clip_grad_norm_(theirs, 0.5, norm_type=norm_type)
    assert_close(total.data, reference.numpy(), atol=0, rtol=1e-14, what="total norm vs torch")
    for a, b in zip(ours, theirs):
        assert_close(a.grad.data, b.grad.numpy(), atol=0, rtol=1e-14, what="clipped grad vs torch")


def test_clip_grad_norm_bounds_the_norm(rng):
    params = [Parameter(np.zeros(s, np.float32)) for s in SHAPES]
    for p in params:
        p.grad = Tensor(10 * rng.standard_normal(p.shape).astype(np.float32))
    params.append(Parameter(np.zeros(2, np.float32)))  # no gradient: ignored
    before = nn.utils.clip_grad_norm_(params, 1.0).item()
    assert before > 1.0
    after = math.sqrt(sum(float(np.sum(p.grad.data.astype(np.float64) ** 2)) for p in params[:-1]))
    assert after == pytest.approx(1.0, rel=1e-4)
    nan_param = Parameter(np.zeros(2, np.float32))
    nan_param.grad = Tensor(np.array([np.nan, 1], np.float32))
    with pytest.raises(RuntimeError, match="non|nan|finite"):
        nn.utils.clip_grad_norm_(nan_param, 1.0, error_if_nonfinite=True)
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.clip_grad_norm_(params, 1.0, norm_type=0)
    assert nn.utils.clip_grad_norm_([Parameter(np.zeros(2, np.float32))], 1.0).item() == 0.0


def test_clip_grad_value(rng):
    param = Parameter(np.zeros((4, 5), np.float32))
    grad = 3 * rng.standard_normal((4, 5)).astype(np.float32)
    param.grad = Tensor(np.array(grad))
    nn.utils.clip_grad_value_(param, 0.5)
    assert np.array_equal(param.grad.data, np.clip(grad, -0.5, 0.5))
