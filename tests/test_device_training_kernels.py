"""The CUDA backend's fused training kernels wired into the Python layer, run on the NumPy stand-in
(tests/fake_cuda.py), whose kernels compute with the real backend's host entry points (the CUDA
kernels' own per-element code) or, in a CPU-only build, NumPy:

- SGD / Adam / AdamW on device parameters run one `sgd_step_` / `adam_step_` per parameter and step,
  and give the CPU optimizer's parameters for every option;
- clip_grad_norm_ on device gradients runs `grad_norm` + `clip_by_total_norm_` (float32) without
  reading anything back to the host, and equals the CPU version;
- F.embedding / nn.Embedding on a device run `embedding_forward` / `embedding_backward`.

Each test also checks which kernels ran, so a silent fallback to the element-wise path fails."""
import itertools
import math

import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn.functional as F
from rosenblatt import nn, optim
from rosenblatt.tensor import Tensor, no_grad
from conftest import assert_close


SHAPES = [(3, 4), (5,), (1,), (0, 2)]
STEPS = 4


@pytest.fixture
def host_reads(fake_both, monkeypatch):
    """The shapes of the device arrays copied to the host (DeviceArray.to_numpy) while the test runs."""
    reads = []
    original = fake_both.DeviceArray.to_numpy
    monkeypatch.setattr(fake_both.DeviceArray, "to_numpy", lambda self: reads.append(self.shape) or original(self))
    return reads


def host(t):
    return t.cpu().numpy()


def tolerance(dtype):
    return dict(atol=1e-7, rtol=1e-6) if dtype == np.float32 else dict(atol=1e-14, rtol=1e-12)


# ---- optimizers ----------------------------------------------------------------------------------
def _sgd_cases():
    for momentum, dampening, nesterov, weight_decay, maximize in itertools.product(
            (0, 0.9), (0, 0.3), (False, True), (0, 0.01), (False, True)):
        if nesterov and (momentum == 0 or dampening != 0):
            continue
        yield "SGD", dict(lr=0.1, momentum=momentum, dampening=dampening, nesterov=nesterov,
                          weight_decay=weight_decay, maximize=maximize)


def _adam_cases():
    for name, betas, weight_decay, amsgrad, maximize in itertools.product(
            ("Adam", "AdamW"), ((0.9, 0.999), (0.3, 0.9)), (0, 0.1), (False, True), (False, True)):
        yield name, dict(lr=0.01, betas=betas, eps=1e-6, weight_decay=weight_decay, amsgrad=amsgrad,
                         maximize=maximize)
    yield "Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)  # Adam's own AdamW switch


CASES = list(_sgd_cases()) + list(_adam_cases())


def _run(name, kwargs, initial, gradients, device, fake_both=None):
    params = [rb.tensor(p, device=device, requires_grad=True) for p in initial]
    optimizer = getattr(optim, name)(params, **kwargs)
    kernel = "sgd_step_" if name == "SGD" else "adam_step_"
    for step, grads in enumerate(gradients):
        for param, grad in zip(params, grads):
            param.grad = rb.tensor(grad, device=device)
        if fake_both is not None:
            fake_both.calls.clear()
        optimizer.step()
        if fake_both is not None:
            # one fused kernel per parameter; nothing else but the zero-filled new state on the first step
            # (and Optimizer.step's negated gradient for maximize, which the fused path leaves unread)
            assert fake_both.calls.count(kernel) == len(params), fake_both.calls
            allowed = ({"full"} if step == 0 else set()) | ({"neg"} if kwargs.get("maximize") else set())
            assert set(fake_both.calls) - {kernel} <= allowed, fake_both.calls
    return params, optimizer


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=lambda c: c[0] + "-" + "-".join(f"{k}={v}" for k, v in c[1].items()))
def test_optimizer_steps_on_device_run_the_fused_kernel_and_equal_cpu(fake_both, case, dtype):
    name, kwargs = case
    rng = np.random.default_rng(7)
    initial = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    gradients = [[rng.standard_normal(s).astype(dtype) for s in SHAPES] for _ in range(STEPS)]
    cpu, _ = _run(name, kwargs, initial, gradients, "cpu")
    dev, optimizer = _run(name, kwargs, initial, gradients, "cuda", fake_both)
    for want, got in zip(cpu, dev):
        assert got.is_cuda and got.dtype == dtype
        assert_close(host(got), want.numpy(), **tolerance(dtype), what=f"{name} {kwargs}")
    for param in dev:  # the state is on the device, and a step counter counts the steps
        state = optimizer.state[param]
        assert all(v.is_cuda for v in state.values() if isinstance(v, Tensor))
        assert name == "SGD" or state["step"] == STEPS


@pytest.mark.parametrize("name,kwargs", [("SGD", dict(lr=0.1, momentum=0.9, dampening=0.2)),
                                         ("Adam", dict(lr=0.01, amsgrad=True))])
def test_state_loaded_from_a_cpu_optimizer_continues_on_device(fake_both, name, kwargs):
    """A momentum buffer / moments (and step count) loaded from a checkpoint: the fused step reads
    them (SGD's first_step is False), as the CPU optimizer does."""
    rng = np.random.default_rng(3)
    initial = [rng.standard_normal(s).astype(np.float32) for s in SHAPES[:3]]
    gradients = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES[:3]] for _ in range(4)]
    cpu, cpu_optimizer = _run(name, kwargs, initial, gradients[:2], "cpu")
    saved = cpu_optimizer.state_dict()
    dev = [rb.tensor(host(p), device="cuda", requires_grad=True) for p in cpu]
    dev_optimizer = getattr(optim, name)(dev, **kwargs)
    dev_optimizer.load_state_dict(saved)
    for grads in gradients[2:]:
        for p, q, g in zip(cpu, dev, grads):
            p.grad, q.grad = rb.tensor(g), rb.tensor(g, device="cuda")
        fake_both.calls.clear()
        cpu_optimizer.step()
        dev_optimizer.step()
        assert fake_both.calls.count("sgd_step_" if name == "SGD" else "adam_step_") == len(dev)
    for want, got in zip(cpu, dev):
        assert_close(host(got), want.numpy(), **tolerance(np.float32))


def test_a_gradient_of_another_dtype_takes_the_element_wise_path(fake_both):
    """The fused kernels want grad in param's dtype; otherwise the formulas run (same result)."""
    rng = np.random.default_rng(4)
    init, grad = rng.standard_normal(5).astype(np.float32), rng.standard_normal(5)
    results = []
    for device in ("cpu", "cuda"):
        p = rb.tensor(init, device=device, requires_grad=True)
        p.grad = rb.tensor(grad, device=device)  # float64
        fake_both.calls.clear()
        optim.SGD([p], lr=0.1, momentum=0.9).step()
        results.append(host(p))
    assert "sgd_step_" not in fake_both.calls
    assert_close(results[1], results[0], **tolerance(np.float32))


def test_the_fake_kernels_refuse_what_the_real_bindings_refuse(fake_both):
    p = rb.tensor(np.ones((3, 4), np.float32), device="cuda").data
    g = rb.tensor(np.ones((3, 4), np.float32), device="cuda").data
    with pytest.raises(ValueError, match="C-contiguous"):
        fake_both.sgd_step_(p.T, g.T, lr=0.1)
    with pytest.raises(TypeError, match="dtype"):
        fake_both.sgd_step_(p, g.astype(np.float64), lr=0.1)
    with pytest.raises(ValueError, match="needs a momentum_buffer"):
        fake_both.sgd_step_(p, g, lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="step counts from 1"):
        fake_both.adam_step_(p, g, p.copy(), p.copy(), step=0, lr=0.1)
    with pytest.raises(ValueError, match="C-contiguous"):
        fake_both.adam_step_(p, g, p.copy().T.copy().T, p.copy(), step=1, lr=0.1)
    with pytest.raises(ValueError, match="amsgrad needs"):
        fake_both.adam_step_(p, g, p.copy(), p.copy(), step=1, lr=0.1, amsgrad=True)
    with pytest.raises(TypeError, match="DeviceArray"):
        fake_both.sgd_step_(p, np.ones((3, 4), np.float32), lr=0.1)
    with pytest.raises(TypeError, match="int64"):
        fake_both.embedding_forward(p, g)
    with pytest.raises(TypeError, match="float32"):
        fake_both.clip_by_total_norm_([p], fake_both.full([], 1.0, "float64"), 1.0)
    with pytest.raises(ValueError, match="norm_type"):
        fake_both.grad_norm([p], 0.0)


# ---- clip_grad_norm_ -------------------------------------------------------------------------------
def _clip(grads, device, max_norm, norm_type, **kwargs):
    params = [rb.zeros(*g.shape, dtype=g.dtype, device=device, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = rb.tensor(g, device=device)
    total = nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type, **kwargs)
    return total, [p.grad for p in params]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, math.inf, 3.0])
@pytest.mark.parametrize("max_norm", [1.5, 1e6])  # clipped, and a coefficient clamped at 1
def test_clip_grad_norm_on_device_equals_cpu_without_a_host_read(fake_both, host_reads, dtype, norm_type, max_norm):
    rng = np.random.default_rng(9)
    grads = [(rng.standard_normal(s) * 3).astype(dtype) for s in ((4, 5), (7,), (0, 3), (1,))]
    total_cpu, grads_cpu = _clip(grads, "cpu", max_norm, norm_type)
    fake_both.calls.clear()
    host_reads.clear()
    total_dev, grads_dev = _clip(grads, "cuda", max_norm, norm_type)
    assert host_reads == [], "clip_grad_norm_ read a device array back to the host"
    if dtype == np.float32:
        assert fake_both.calls.count("grad_norm") == 1 and fake_both.calls.count("clip_by_total_norm_") == 1, fake_both.calls
    else:  # float64: the norm in float64 (grad_norm's result is float32), through element-wise device ops
        assert "grad_norm" not in fake_both.calls
    assert total_dev.is_cuda and total_dev.shape == () and total_dev.dtype == total_cpu.dtype == dtype
    assert_close(host(total_dev), total_cpu.numpy(), **tolerance(dtype))
    for want, got in zip(grads_cpu, grads_dev):
        assert_close(host(got), want.numpy(), **tolerance(dtype))


@pytest.mark.filterwarnings("ignore:invalid value encountered in multiply")  # inf * 0, on the CPU too
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_norm_error_if_nonfinite_on_device(fake_both, host_reads, dtype):
    grads = [np.array([1.0, np.inf], dtype), np.ones(3, dtype)]
    for device in ("cpu", "cuda"):
        with pytest.raises(RuntimeError, match="cannot be clipped"):
            _clip(grads, device, 1.0, 2.0, error_if_nonfinite=True)
    finite = [np.array([3.0, 4.0], dtype), np.full(2, 12.0, dtype)]
    total_cpu, grads_cpu = _clip(finite, "cpu", 1.0, 2.0, error_if_nonfinite=True)
    host_reads.clear()
    total_dev, grads_dev = _clip(finite, "cuda", 1.0, 2.0, error_if_nonfinite=True)
    assert host_reads == [()]  # the one number the check needs
    assert_close(host(total_dev), total_cpu.numpy(), **tolerance(dtype))
    for want, got in zip(grads_cpu, grads_dev):
        assert_close(host(got), want.numpy(), **tolerance(dtype))
    # without the check an infinite norm scales by max_norm / inf = 0 on both devices, as torch
    total_cpu, grads_cpu = _clip(grads, "cpu", 1.0, 2.0)
    total_dev, grads_dev = _clip(grads, "cuda", 1.0, 2.0)
    assert host(total_dev) == total_cpu.numpy() == np.inf
    for want, got in zip(grads_cpu, grads_dev):
        np.testing.assert_array_equal(host(got), want.numpy())


def test_clip_grad_norm_of_strided_and_mixed_dtype_gradients_on_device(fake_both, host_reads):
    """A non-contiguous gradient (clip_by_total_norm_ updates C-contiguous arrays only) and a
    float32/float64 mix (the norm in float64, as the CPU's promotion) are scaled on the device too."""
    rng = np.random.default_rng(2)
    base = (rng.standard_normal((5, 4)) * 2).astype(np.float32)
    other = rng.standard_normal(6)
    results = []
    for device in ("cpu", "cuda"):
        p, q = rb.zeros(4, 5, device=device, requires_grad=True), rb.zeros(6, dtype=np.float64, device=device,
                                                                           requires_grad=True)
        p.grad = Tensor(rb.tensor(base, device=device).data.T)
        q.grad = rb.tensor(other, device=device)
        host_reads.clear()
        total = nn.utils.clip_grad_norm_([p, q], 0.5)
        if device == "cuda":
            assert not p.grad.data.is_contiguous() and host_reads == []
        results.append((total, host(p.grad), host(q.grad)))
    (t_cpu, p_cpu, q_cpu), (t_dev, p_dev, q_dev) = results
    assert t_dev.dtype == t_cpu.dtype == np.float64
    assert_close(host(t_dev), t_cpu.numpy(), atol=1e-7, rtol=1e-6)
    assert_close(p_dev, p_cpu, **tolerance(np.float32))
    assert_close(q_dev, q_cpu, atol=1e-7, rtol=1e-6)
    for p in ([rb.zeros(4, 5, device="cuda", requires_grad=True)]):
        p.grad = Tensor(rb.tensor(base, device="cuda").data.T)
        total = nn.utils.clip_grad_norm_([p], 0.5)  # float32 strided: grad_norm, then element-wise scaling
        assert_close(host(total), np.linalg.norm(base), atol=1e-6, rtol=1e-6)
        assert_close(host(p.grad), base.T * np.float32(0.5 / (np.linalg.norm(base) + 1e-6)), atol=1e-6, rtol=1e-6)


def test_clip_grad_norm_refuses_a_bad_norm_type_on_device(fake_both):
    p = rb.zeros(3, device="cuda", requires_grad=True)
    p.grad = rb.ones(3, device="cuda")
    with pytest.raises(ValueError, match="norm_type"):
        nn.utils.clip_grad_norm_([p], 1.0, norm_type=0)


# ---- embedding ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("padding_idx", [None, 0, 3, -1])
@pytest.mark.parametrize("index_shape", [(7,), (3, 4), (2, 0), ()])
def test_embedding_on_device_runs_the_kernels_and_equals_cpu(fake_both, dtype, padding_idx, index_shape):
    rng = np.random.default_rng(11)
    table = rng.standard_normal((6, 5)).astype(dtype)
    indices = rng.integers(0, 6, index_shape)
    if indices.size >= 3:
        indices.reshape(-1)[:3] = [3, 3, 0]  # repeated rows (the scatter adds), the padding rows too
    upstream = rng.standard_normal(index_shape + (5,)).astype(dtype)
    results = []
    for device in ("cpu", "cuda"):
        weight = rb.tensor(table, device=device, requires_grad=True)
        fake_both.calls.clear()
        out = F.embedding(rb.tensor(indices, device=device), weight, padding_idx=padding_idx)
        (out * rb.tensor(upstream, device=device)).sum().backward()
        results.append((host(out), host(weight.grad)))
    assert "embedding_forward" in fake_both.calls and "embedding_backward" in fake_both.calls
    assert "gemm" not in fake_both.calls and "matmul" not in fake_both.calls
    (out_cpu, grad_cpu), (out_dev, grad_dev) = results
    assert out_dev.shape == out_cpu.shape == index_shape + (5,) and out_dev.dtype == dtype
    np.testing.assert_array_equal(out_dev, out_cpu)
    assert_close(grad_dev, grad_cpu, **tolerance(dtype))
    if padding_idx is not None:
        assert not grad_dev[padding_idx].any()


def test_embedding_module_training_step_on_device_equals_cpu(fake_both):
    rng = np.random.default_rng(12)
    tokens = rng.integers(0, 9, (4, 3))
    results = []
    for device in ("cpu", "cuda"):
        rb.manual_seed(0)
        model = nn.Sequential(nn.Embedding(9, 4, padding_idx=2), nn.Flatten(), nn.Linear(12, 3)).to(device)
        optimizer = optim.Adam(model.parameters(), lr=0.05)
        for _ in range(2):
            optimizer.zero_grad()
            loss = F.cross_entropy(model(rb.tensor(tokens, device=device)), rb.tensor([0, 2, 1, 1], device=device))
            loss.backward()
            optimizer.step()
        results.append([host(p) for p in model.parameters()])
    assert {"embedding_forward", "embedding_backward", "adam_step_"} <= set(fake_both.calls)
    for want, got in zip(*results):
        assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_embedding_out_of_range_index_on_device_raises_index_error(fake_both):
    weight = rb.randn(5, 3, device="cuda", requires_grad=True)
    for bad in ([0, 5], [[1, -1]], [7]):
        with pytest.raises(IndexError, match=r"embedding: index out of range \[0, 5\)"):
            F.embedding(rb.tensor(bad, device="cuda"), weight)
    with pytest.raises(IndexError):
        nn.Embedding(5, 3).cuda()(rb.tensor([[0, 9]], device="cuda"))
    with pytest.raises(TypeError, match="integers"):
        F.embedding(rb.tensor([0.0, 1.0], device="cuda"), weight)
    with pytest.raises(ValueError, match="same device"):
        F.embedding(np.array([0, 1]), weight)


def test_embedding_backward_on_device_reads_the_indices_of_the_forward(fake_both):
    """The caller may overwrite its index array before backward (a decoder reusing its ids)."""
    table = np.arange(12, dtype=np.float32).reshape(4, 3)
    weight = rb.tensor(table, device="cuda", requires_grad=True)
    ids = rb.tensor([1, 1, 2], device="cuda")
    out = F.embedding(ids, weight)
    ids.data[...] = 0
    out.sum().backward()
    np.testing.assert_array_equal(host(weight.grad), [[0, 0, 0], [2, 2, 2], [1, 1, 1], [0, 0, 0]])
    with no_grad():  # no graph: no copy of the indices
        fake_both.calls.clear()
        F.embedding(ids, weight)
        assert fake_both.calls == ["embedding_forward"]
