"""CUDA kernels against NumPy references, DLPack with torch.cuda, the allocator and OOM behaviour.

The whole module needs a GPU; tests/test_cuda_absent.py covers what must hold without one.
Every result buffer is poisoned with NaN before the kernel runs (see `poisoned`), so an element the
kernel fails to write shows up as NaN.
"""
import numpy as np
import pytest

import rosenblatt
from rosenblatt import cuda
from conftest import assert_close

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device")


def dev(array):
    return cuda.from_numpy(np.ascontiguousarray(array))


def poisoned(nbytes):
    """Leave a NaN-filled block of the size class of `nbytes` on top of the allocator's free list,
    so that the next allocation of that size (the kernel's output) starts as NaN."""
    filler = cuda.from_numpy(np.full(max(nbytes // 4, 1), np.nan, np.float32))
    cuda.synchronize()
    del filler


def run(kernel, *args, out_nbytes, **kwargs):
    poisoned(out_nbytes)
    return kernel(*args, **kwargs).to_numpy()


def randn(rng, shape, dtype=np.float32):
    return rng.standard_normal(shape).astype(dtype)


# ---- host <-> device -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(), (1,), (7,), (3, 5), (2, 3, 4, 5), (0, 3)])
def test_round_trip(rng, dtype, shape):
    host = (rng.standard_normal(shape) * 1000).astype(dtype)
    x = cuda.from_numpy(host)
    assert x.shape == shape and x.dtype == np.dtype(dtype).name and x.device == 0
    np.testing.assert_array_equal(x.to_numpy(), host)


def test_non_contiguous_source_and_view(rng):
    host = randn(rng, (6, 9))
    np.testing.assert_array_equal(cuda.from_numpy(host[:, ::2]).to_numpy(), host[:, ::2])
    x = dev(host).transpose(0, 1)
    assert not x.is_contiguous() and x.strides == (1, 9)
    np.testing.assert_array_equal(x.to_numpy(), host.T)
    np.testing.assert_array_equal(x.contiguous().to_numpy(), host.T)


def test_unsupported_dtype_is_refused():
    with pytest.raises(TypeError, match="from_numpy"):
        cuda.from_numpy(np.zeros(3, np.float16))


# ---- element-wise ----------------------------------------------------------------------------------
UNARY = {
    "neg": np.negative, "exp": np.exp, "log": np.log, "tanh": np.tanh,
    "sigmoid": lambda x: 1 / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
}
BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
SHAPES = [(1,), (5,), (33, 17), (2, 3, 129), (1000003,)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary(rng, name, dtype):
    for shape in SHAPES:
        host = randn(rng, shape, dtype)
        if name == "log":
            host = np.abs(host) + 0.1
        out = run(getattr(cuda, name), dev(host), out_nbytes=host.nbytes)
        assert_close(out, UNARY[name](host.astype(np.float64)), atol=1e-6, rtol=2e-6, what=f"{name}{shape}")


BROADCASTS = [((3, 4), (4,)), ((2, 1, 5), (3, 1)), ((7,), (1,)), ((), (5,)), ((4, 1), (1, 6)),
              ((2, 3, 1, 4, 1, 2, 1, 3), (3, 1, 1, 2, 5, 1)), ((1000003,), (1000003,))]


@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_broadcasting(rng, name):
    for shape_a, shape_b in BROADCASTS:
        a, b = randn(rng, shape_a), randn(rng, shape_b) + (3 if name == "div" else 0)
        expected = BINARY[name](a.astype(np.float64), b.astype(np.float64))
        out = run(getattr(cuda, name), dev(a), dev(b), out_nbytes=expected.size * 4)
        assert_close(out, expected, atol=1e-6, rtol=1e-6, what=f"{name}{shape_a}{shape_b}")


def test_binary_on_non_contiguous_views(rng):
    a, b = randn(rng, (5, 8)), randn(rng, (8, 5))
    out = cuda.add(dev(a), dev(b).transpose(0, 1)).to_numpy()
    assert_close(out, a + b.T)
    out = cuda.mul(dev(a).transpose(0, 1), dev(np.arange(5, dtype=np.float32))).to_numpy()
    assert_close(out, a.T * np.arange(5))


def test_backward_ops(rng):
    g, x = randn(rng, (37, 11), np.float64), randn(rng, (37, 11), np.float64)
    y_exp, y_tanh, y_sig = np.exp(x), np.tanh(x), 1 / (1 + np.exp(-x))
    cases = {
        "exp_backward": ((g, y_exp), g * y_exp),
        "tanh_backward": ((g, y_tanh), g * (1 - y_tanh ** 2)),
        "sigmoid_backward": ((g, y_sig), g * y_sig * (1 - y_sig)),
        "log_backward": ((g, np.abs(x) + 0.5), g / (np.abs(x) + 0.5)),
        "relu_backward": ((g, x), np.where(x > 0, g, 0.0)),
        "div_backward_b": ((g, x, np.abs(x) + 0.5), -g * x / (np.abs(x) + 0.5) ** 2),
    }
    for name, (args, expected) in cases.items():
        out = run(getattr(cuda, name), *map(dev, args), out_nbytes=expected.nbytes)
        assert_close(out, expected, atol=1e-12, rtol=1e-12, what=name)


def test_elementwise_bad_input(rng):
    with pytest.raises(ValueError, match="add: shapes"):
        cuda.add(dev(randn(rng, (3, 4))), dev(randn(rng, (5,))))
    with pytest.raises(TypeError, match="exp"):
        cuda.exp(dev(np.arange(4)))
    with pytest.raises(TypeError, match="dtypes differ"):
        cuda.add(dev(randn(rng, (3,))), dev(randn(rng, (3,), np.float64)))


# ---- reductions and softmax ------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(1,), (4097,), (3, 5), (2, 3, 4), (3, 1000, 5), (70000, 3), (1, 1, 1)])
def test_sum(rng, shape):
    host = randn(rng, shape)
    for axis in range(-len(shape), len(shape)):
        for keepdims in (False, True):
            expected = host.astype(np.float64).sum(axis=axis, keepdims=keepdims)
            out = run(cuda.sum, dev(host), axis, keepdims, out_nbytes=expected.size * 4)
            n = shape[axis]  # float32 rounding grows with the number of terms
            assert_close(out, expected, atol=1e-5 + 1e-6 * n, rtol=1e-5, what=f"sum{shape} axis {axis}")


def _softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("n", [1, 7, 32, 33, 100, 1000, 5001])
def test_softmax_and_log_softmax(rng, n):
    host = randn(rng, (13, n)) * 20 + 500  # large values: must not overflow
    x = dev(host)
    y = _softmax(host.astype(np.float64))
    assert_close(run(cuda.softmax, x, out_nbytes=host.nbytes), y, atol=1e-6, rtol=1e-5, what="softmax")
    log_y = np.log(np.maximum(y, 1e-300))
    assert_close(run(cuda.log_softmax, x, out_nbytes=host.nbytes), log_y, atol=2e-4, rtol=1e-5, what="log_softmax")

    g = randn(rng, (13, n)).astype(np.float64)
    dx = y * (g - (g * y).sum(axis=-1, keepdims=True))
    out = run(cuda.softmax_backward, dev(g), dev(y), out_nbytes=g.nbytes)
    assert_close(out, dx, atol=1e-12, rtol=1e-10, what="softmax_backward")
    dx = g - np.exp(log_y) * g.sum(axis=-1, keepdims=True)
    out = run(cuda.log_softmax_backward, dev(g), dev(log_y), out_nbytes=g.nbytes)
    assert_close(out, dx, atol=1e-10, rtol=1e-10, what="log_softmax_backward")


def test_softmax_batched_rows(rng):
    host = randn(rng, (3, 4, 10))
    assert_close(cuda.softmax(dev(host)).to_numpy(), _softmax(host.astype(np.float64)), atol=1e-6)


# ---- SGEMM -------------------------------------------------------------------------------------------
GEMM_SHAPES = [(1, 1, 1), (1, 7, 3), (5, 300, 7), (127, 129, 130), (128, 128, 128), (128, 128, 8),
               (257, 3, 1025), (3, 257, 1025), (200, 1000, 1), (64, 3136, 576), (513, 511, 509), (130, 132, 0)]


def _check_gemm(a, b, out):
    expected = a.astype(np.float64) @ b.astype(np.float64)
    k = a.shape[-1]
    assert_close(out, expected, atol=1e-5 * max(k, 1) ** 0.5, rtol=1e-4, what=f"matmul {a.shape} @ {b.shape}")


@pytest.mark.parametrize("m,n,k", GEMM_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul(rng, m, n, k, trans_a, trans_b):
    a, b = randn(rng, (m, k)), randn(rng, (k, n))
    # a transposed operand is a transposed view of the transposed matrix: the kernel reads it in place
    da = dev(a.T).transpose(0, 1) if trans_a else dev(a)
    db = dev(b.T).transpose(0, 1) if trans_b else dev(b)
    _check_gemm(a, b, run(cuda.matmul, da, db, out_nbytes=m * n * 4))


def test_matmul_batched(rng):
    a, b = randn(rng, (3, 65, 33)), randn(rng, (3, 33, 17))
    _check_gemm(a, b, run(cuda.matmul, dev(a), dev(b), out_nbytes=3 * 65 * 17 * 4))
    one = randn(rng, (1, 33, 17))  # batch 1 broadcasts
    _check_gemm(a, np.broadcast_to(one, (3, 33, 17)), cuda.matmul(dev(a), dev(one)).to_numpy())


def test_matmul_large(rng):
    a, b = randn(rng, (1024, 1024)), randn(rng, (1024, 1024))
    _check_gemm(a, b, run(cuda.matmul, dev(a), dev(b), out_nbytes=a.nbytes))


def test_matmul_bad_input(rng):
    with pytest.raises(ValueError, match="matmul: shapes"):
        cuda.matmul(dev(randn(rng, (3, 4))), dev(randn(rng, (5, 6))))
    with pytest.raises(TypeError, match="float32"):
        cuda.matmul(dev(randn(rng, (3, 4), np.float64)), dev(randn(rng, (4, 2), np.float64)))


# ---- DLPack and the CUDA array interface ---------------------------------------------------------------
def test_own_dlpack_round_trip(rng):
    host = randn(rng, (4, 6))
    x = dev(host)
    assert x.__dlpack_device__() == (2, 0)
    assert "dltensor_versioned" in repr(x.__dlpack__(max_version=(1, 0)))
    y = cuda.from_dlpack(x)
    assert y.data_ptr == x.data_ptr
    np.testing.assert_array_equal(y.to_numpy(), host)
    t = cuda.from_dlpack(x.transpose(0, 1))  # strides travel
    np.testing.assert_array_equal(t.to_numpy(), host.T)


def test_cuda_array_interface(rng):
    x = dev(randn(rng, (3, 5)))
    cai = x.__cuda_array_interface__
    assert cai["version"] == 3 and cai["shape"] == (3, 5) and cai["typestr"] == "<f4"
    assert cai["data"] == (x.data_ptr, False) and cai["strides"] is None and cai["stream"] not in (0, None)
    assert x.transpose(0, 1).__cuda_array_interface__["strides"] == (4, 20)


def _torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    return torch


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_torch_zero_copy_both_ways(rng, dtype):
    torch = _torch_cuda()
    t = torch.from_numpy((rng.standard_normal((5, 7)) * 100).astype(dtype)).cuda()
    x = cuda.from_dlpack(t)
    assert x.data_ptr == t.data_ptr() and x.dtype == dtype
    np.testing.assert_array_equal(x.to_numpy(), t.cpu().numpy())
    t[1, 2] = 5
    torch.cuda.synchronize()
    assert x.to_numpy()[1, 2] == 5

    host = (rng.standard_normal((4, 3)) * 100).astype(dtype)
    y = cuda.from_numpy(host)
    ty = torch.from_dlpack(y)
    assert ty.data_ptr() == y.data_ptr and ty.device.type == "cuda"
    np.testing.assert_array_equal(ty.cpu().numpy(), host)
    ty.mul_(2)
    torch.cuda.synchronize()
    np.testing.assert_array_equal(y.to_numpy(), host * 2)


def test_torch_sees_kernel_results_and_non_contiguous(rng):
    torch = _torch_cuda()
    a, b = randn(rng, (300, 200)), randn(rng, (200, 100))
    c = cuda.matmul(dev(a), dev(b))  # queued on our stream; torch must wait for it through the stream argument
    _check_gemm(a, b, torch.from_dlpack(c).cpu().numpy())
    t = torch.randn(6, 8, device="cuda").t()
    np.testing.assert_array_equal(cuda.from_dlpack(t).to_numpy(), t.cpu().numpy())
    z = torch.as_tensor(c, device="cuda")  # through __cuda_array_interface__
    assert z.data_ptr() == c.data_ptr


def test_imported_memory_outlives_the_producer(rng):
    torch = _torch_cuda()
    t = torch.arange(12, device="cuda", dtype=torch.float32)
    x = cuda.from_dlpack(t)
    del t
    torch.cuda.empty_cache()
    np.testing.assert_array_equal(x.to_numpy(), np.arange(12, dtype=np.float32))


# ---- allocator -------------------------------------------------------------------------------------------
def test_allocator_stats():
    cuda.synchronize()
    before = cuda.memory_allocated()
    x = cuda.empty((1000,), "float32")
    assert cuda.memory_allocated() - before == cuda._cuda.round_size(4000)
    assert cuda.max_memory_allocated() >= cuda.memory_allocated()
    del x
    assert cuda.memory_allocated() == before
    reserved = cuda.memory_reserved()
    cuda.empty_cache()
    assert cuda.memory_reserved() <= reserved


def test_warm_training_step_does_not_call_cudamalloc(rng):
    w, x, target = dev(randn(rng, (64, 10))), dev(randn(rng, (32, 64))), dev(randn(rng, (32, 10)))

    def step():
        logits = cuda.matmul(x, w)
        loss_grad = cuda.sub(cuda.softmax(logits), target)
        grad_w = cuda.matmul(x.transpose(0, 1), loss_grad)
        return cuda.sum(cuda.mul(grad_w, grad_w), 0)

    step()
    calls = cuda.memory_stats()["malloc_calls"]
    for _ in range(3):
        step()
    assert cuda.memory_stats()["malloc_calls"] == calls


def test_out_of_memory_is_an_exception_and_recoverable():
    with pytest.raises(RuntimeError, match="out of CUDA memory"):
        cuda.empty((1 << 45,), "float32")  # 128 TiB
    x = cuda.from_numpy(np.arange(10, dtype=np.float32))
    np.testing.assert_array_equal(x.to_numpy(), np.arange(10, dtype=np.float32))


def test_bad_device_index():
    with pytest.raises(RuntimeError, match="no CUDA device 99"):
        cuda.empty((3,), device=99)
