"""The training kernels' per-element code (cuda/train_math.h, `__host__ __device__`) run on the host
over NumPy arrays: the optimizer updates against the CPU optimizers, batch norm's element-wise
passes against float64 formulas, and the index maps of the embedding and nll gathers and scatters.
Checks the arithmetic and indexing without a GPU; the reductions and launches need tests/test_cuda_train.py.
"""
import math

import numpy as np
import pytest

from rosenblatt import cuda, optim
from rosenblatt.nn import Parameter
from rosenblatt.tensor import Tensor
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")

_C = cuda._cuda if cuda.is_compiled() else None

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
]


def _host_steps(name, kwargs, initial, gradients):
    params = [np.array(p) for p in initial]
    states = [{} for _ in params]
    for grads in gradients:
        for param, grad, state in zip(params, grads, states):
            if name == "SGD":
                momentum = kwargs.get("momentum", 0)
                first = "buffer" not in state
                if momentum and first:
                    state["buffer"] = np.full_like(param, np.nan)  # first_step must not read it
                _C._sgd_step_on_host(param, grad, state.get("buffer"), kwargs["lr"], momentum,
                                     kwargs.get("dampening", 0), kwargs.get("weight_decay", 0),
                                     kwargs.get("nesterov", False), kwargs.get("maximize", False), first)
            else:
                amsgrad = kwargs.get("amsgrad", False)
                if not state:
                    state.update(step=0, m=np.zeros_like(param), v=np.zeros_like(param),
                                 vmax=np.zeros_like(param) if amsgrad else None)
                state["step"] += 1
                beta1, beta2 = kwargs.get("betas", (0.9, 0.999))
                _C._adam_step_on_host(param, grad, state["m"], state["v"], state["vmax"], state["step"], kwargs["lr"],
                                      beta1, beta2, kwargs.get("eps", 1e-8),
                                      kwargs.get("weight_decay", 1e-2 if name == "AdamW" else 0), amsgrad,
                                      kwargs.get("maximize", False), name == "AdamW")
    return params


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", OPTIMIZER_CASES, ids=lambda c: c[0] + str(sorted(c[1].items())))
def test_optimizer_update_matches_cpu_optimizer(rng, case, dtype):
    name, kwargs = case
    shapes = [(3, 4), (5,), (1,)]
    initial = [rng.standard_normal(s).astype(dtype) for s in shapes]
    gradients = [[rng.standard_normal(s).astype(dtype) for s in shapes] for _ in range(5)]
    params = [Parameter(np.array(p)) for p in initial]
    optimizer = getattr(optim, name)(params, **kwargs)
    for grads in gradients:
        for param, grad in zip(params, grads):
            param.grad = Tensor(np.array(grad))
        optimizer.step()
    ours = _host_steps(name, kwargs, initial, gradients)
    tol = dict(atol=1e-6, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-14, rtol=1e-12)
    for got, want in zip(ours, params):
        assert_close(got, want.data, **tol, what=f"{name} {kwargs}")


def test_host_runner_refuses_mismatched_arrays():
    p = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="sizes differ"):
        _C._sgd_step_on_host(p, np.zeros(4, np.float32), None, 0.1, 0, 0, 0, False, False, False)
    with pytest.raises(TypeError):  # a float64 gradient for a float32 parameter matches neither overload
        _C._sgd_step_on_host(p, np.zeros(3), None, 0.1, 0, 0, 0, False, False, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 7, 9), (2, 5, 33), (1, 2, 3)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_element_passes(rng, dtype, shape, affine):
    C = shape[1]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dtype)
    mean = rng.standard_normal(C).astype(dtype)
    invstd = (np.abs(rng.standard_normal(C)) + 0.5).astype(dtype)
    weight = rng.standard_normal(C).astype(dtype) if affine else None
    bias = rng.standard_normal(C).astype(dtype) if affine else None
    col = (1, C) + (1,) * (len(shape) - 2)
    x64 = x.astype(np.float64)
    x_hat = (x64 - mean.reshape(col)) * invstd.reshape(col)
    y_ref = x_hat * (1 if weight is None else weight.reshape(col)) + (0 if bias is None else bias.reshape(col))
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == np.float32 else dict(atol=1e-12, rtol=1e-12)
    assert_close(_C._batch_norm_normalize_on_host(x, mean, invstd, weight, bias), y_ref, **tol, what="normalize")

    g = rng.standard_normal(shape).astype(dtype)
    axes = (0,) + tuple(range(2, len(shape)))
    sum_g, sum_gx = g.astype(np.float64).sum(axis=axes), (g * x_hat).sum(axis=axes)
    count = x.size // C
    s = invstd.astype(np.float64) * (1 if weight is None else weight)
    for training in (False, True):
        dx_ref = g * s.reshape(col)
        if training:
            dx_ref = dx_ref - x_hat * (s * sum_gx / count).reshape(col) - (s * sum_g / count).reshape(col)
        dx = _C._batch_norm_dx_on_host(g, x, mean, invstd, weight, training, np.concatenate([sum_g, sum_gx]))
        assert_close(dx, dx_ref, **tol, what=f"dx training={training}")


def test_embedding_index_map(rng):
    num, dim = 11, 5
    indices = rng.integers(0, num, size=(4, 6))
    indices[2, 3], indices[0, 0] = num, -1
    sources = _C._embedding_sources_on_host(indices, num, dim).reshape(4, 6, dim)
    rows, cols = np.meshgrid(np.arange(num), np.arange(dim), indexing="ij")
    flat = (rows * dim + cols)  # the weight's flat offsets
    valid = (indices >= 0) & (indices < num)
    np.testing.assert_array_equal(sources[valid], flat[indices[valid]])
    assert np.all(sources[~valid] == -1)


@pytest.mark.parametrize("shape", [(7, 5), (3, 4, 5, 2), (5,), (1000, 33)])
def test_nll_index_map(rng, shape):
    C = shape[0] if len(shape) == 1 else shape[1]
    N = 1 if len(shape) == 1 else shape[0]
    L = int(np.prod(shape[2:], dtype=np.int64)) if len(shape) > 2 else 1
    target = rng.integers(0, C, size=(N, L))
    target[0, 0] = -100
    if target.size > 2:
        target.reshape(-1)[2] = C  # out of range
    sources = _C._nll_sources_on_host(target.reshape(-1), C, L, -100).reshape(N, L)
    offsets = np.arange(N * C * L).reshape(N, C, L)
    for n in range(N):
        for l in range(L):
            t = target[n, l]
            want = -1 if t == -100 else -2 if not 0 <= t < C else offsets[n, t, l]
            assert sources[n, l] == want, (n, l, t)


def test_adam_bias_correction_scalars_match_math():
    """One element, step 3, against the update written out in float64 arithmetic."""
    p, g = np.array([0.5]), np.array([-0.25])
    m, v = np.array([0.1]), np.array([0.02])
    lr, b1, b2, eps, t = 0.01, 0.9, 0.999, 1e-8, 3
    m_ref = b1 * m + (1 - b1) * g
    v_ref = b2 * v + (1 - b2) * g * g
    p_ref = p - lr / (1 - b1 ** t) * m_ref / (np.sqrt(v_ref) / math.sqrt(1 - b2 ** t) + eps)
    _C._adam_step_on_host(p, g, m, v, None, t, lr, b1, b2, eps, 0.0, False, False, False)
    assert_close(p, p_ref, atol=1e-15, rtol=1e-14)
    assert_close(m, m_ref, atol=1e-15, rtol=1e-14)


@pytest.mark.parametrize("C,count", [(1, 1), (3, 252), (3, 18480), (2, 32768), (3, 20000), (64, 200704),
                                     (1, 10 ** 8), (5000, 64), (1024, 4096)])
def test_batch_norm_chunks_cover_each_channel(C, count):
    """Chunk j of a channel covers [j * per, min((j + 1) * per, count)), per = ceil(count / chunks):
    every element once, no empty chunk, at least 2048 elements a chunk when split, about 1024 blocks."""
    chunks = _C._batch_norm_chunks(C, count)
    per = -(-count // chunks)
    assert 1 <= chunks and (chunks - 1) * per < count <= chunks * per
    assert chunks == 1 or (count // chunks >= 2048 and C * chunks <= 1024 + C)
