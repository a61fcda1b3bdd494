"""DLPack exchange on the CPU: zero copy both ways (a write through one side is seen by the other)."""
import numpy as np
import pytest

import rosenblatt
from conftest import torch_or_skip

DTYPES = [np.float32, np.float64, np.int64]


def _values(rng, shape, dtype):
    return (rng.standard_normal(shape) * 100).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_from_numpy_producer_shares_memory(rng, dtype):
    array = _values(rng, (3, 5), dtype)
    t = rosenblatt.from_dlpack(array)
    assert t.dtype == array.dtype and t.shape == (3, 5)
    assert np.shares_memory(t.data, array)
    array[1, 2] = 7
    assert t.data[1, 2] == 7
    t.data[0, 0] = -3
    assert array[0, 0] == -3


@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_consumer_shares_memory(rng, dtype):
    t = rosenblatt.tensor(_values(rng, (4, 2), dtype))
    array = np.from_dlpack(t)
    assert np.shares_memory(array, t.data)
    t.data[3, 1] = 11
    assert array[3, 1] == 11


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_cpu_producer_zero_copy(rng, dtype):
    torch = torch_or_skip()
    source = torch.from_numpy(_values(rng, (6, 7), dtype))
    t = rosenblatt.from_dlpack(source)
    assert t.shape == (6, 7) and t.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(t.data, source.numpy())
    source[2, 3] = 5
    assert t.data[2, 3] == 5
    t.data[5, 6] = -9
    assert source[5, 6].item() == -9


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_consumer_zero_copy(rng, dtype):
    torch = torch_or_skip()
    t = rosenblatt.tensor(_values(rng, (5, 3), dtype))
    view = torch.from_dlpack(t)
    assert tuple(view.shape) == (5, 3)
    assert view.dtype == {np.float32: torch.float32, np.float64: torch.float64, np.int64: torch.int64}[dtype]
    np.testing.assert_array_equal(view.numpy(), t.data)
    view[0, 1] = 4
    assert t.data[0, 1] == 4
    t.data[4, 2] = 8
    assert view[4, 2].item() == 8


def test_non_contiguous_producers(rng):
    torch = torch_or_skip()
    base = torch.from_numpy(_values(rng, (6, 8), np.float32))
    for view in (base.t(), base[::2, 1::3], base[:, 5]):
        t = rosenblatt.from_dlpack(view)
        np.testing.assert_array_equal(t.data, view.numpy())
        t.data[...] = 0.5  # writes land in the producer's memory, through its strides
        assert bool((view == 0.5).all())
    strided = _values(rng, (5, 9), np.float64)[1::2, ::-3]
    t = rosenblatt.from_dlpack(strided)
    assert np.shares_memory(t.data, strided)
    np.testing.assert_array_equal(t.data, strided)


def test_non_contiguous_tensor_exports_strides(rng):
    torch = torch_or_skip()
    t = rosenblatt.Tensor(_values(rng, (4, 6), np.float32).T)  # a transposed view
    view = torch.from_dlpack(t)
    assert tuple(view.stride()) == (1, 6)
    np.testing.assert_array_equal(view.numpy(), t.data)


def test_versioned_and_legacy_capsules(rng):
    t = rosenblatt.tensor(_values(rng, (2, 3), np.float32))
    assert t.__dlpack_device__() == (1, 0)
    assert "dltensor_versioned" in repr(t.__dlpack__(max_version=(1, 0)))
    assert "dltensor" in repr(t.__dlpack__())
    with pytest.raises(BufferError):
        t.__dlpack__(stream=1)  # a stream means nothing on the CPU


def test_from_dlpack_result_works_with_autograd(rng):
    a = _values(rng, (3, 4), np.float64)
    t = rosenblatt.from_dlpack(a).requires_grad_()
    (t * 2).sum().backward()
    np.testing.assert_array_equal(t.grad.data, np.full((3, 4), 2.0))


class _FakeCudaProducer:
    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kwargs):
        raise AssertionError("must not be asked for its capsule")


def test_cuda_producer_is_refused_clearly():
    with pytest.raises(RuntimeError, match="CUDA device 0"):
        rosenblatt.from_dlpack(_FakeCudaProducer())


def test_non_producer_is_refused():
    with pytest.raises(TypeError, match="from_dlpack"):
        rosenblatt.from_dlpack([1.0, 2.0])


def test_flipped_tensor_is_exported_as_a_copy():
    # Negative strides (rb.flip, x[::-1]) went out as they were, and torch's importer aborted the process.
    x = rosenblatt.flip(rosenblatt.arange(6, dtype=rosenblatt.float32).reshape(2, 3), 1)
    assert any(step < 0 for step in x.data.strides)
    np.testing.assert_array_equal(np.from_dlpack(x), [[2, 1, 0], [5, 4, 3]])
    with pytest.raises(BufferError, match="negative strides"):
        x.__dlpack__(copy=False)
    torch = torch_or_skip()
    np.testing.assert_array_equal(torch.from_dlpack(x).numpy(), [[2, 1, 0], [5, 4, 3]])
