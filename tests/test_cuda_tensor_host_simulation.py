"""The device tensor layer's kernels (tensor_ops.cu) address memory only through the element-wise
kernels' `broadcast_offsets`, which `_cuda._broadcast_offsets` runs on the host. These tests drive it
with the layouts the layer builds (negative strides of flipped views, offsets of slices, broadcast
sources of assignments, three inputs of where) and replay each kernel's load/store with NumPy on a flat
buffer, against NumPy's own view semantics: the index arithmetic is checked without a GPU."""
import numpy as np
import pytest

from rosenblatt import cuda

pytestmark = pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")


def offsets(*views):
    """Each input's element offsets, for every output element in C order (as the kernels compute)."""
    shape, _, table = cuda._cuda._broadcast_offsets([list(v.shape) for v in views],
                                                    [[s // v.itemsize for s in v.strides] for v in views])
    return tuple(shape), table


def element_offset(view, base):
    """Where element (0, ..., 0) of a view of `base` lies, in elements (the DeviceArray's offset)."""
    return (view.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // base.itemsize


def test_assign_into_a_strided_view_from_a_broadcast_source():
    # dst: rows 1, 4, ..., columns 18, 15, ..., 3 of a (37, 19) array (a negative stride); src: one row.
    storage = np.zeros(37 * 19, np.float32)
    dst = storage.reshape(37, 19)[1::3, 18::-3][:, :6]
    src = np.arange(1, 7, dtype=np.float32)
    shape, table = offsets(dst, src)
    assert shape == dst.shape
    result = np.zeros_like(storage)
    result[element_offset(dst, storage) + table[:, 0]] = src[table[:, 1]]  # assign_kernel's store
    expected = np.zeros((37, 19), np.float32)
    expected[1::3, 18::-3][:, :6] = src
    np.testing.assert_array_equal(result.reshape(37, 19), expected)


@pytest.mark.parametrize("make", [
    lambda a: a[::-1, 2:], lambda a: a.T[1:, ::-2], lambda a: a[:, None, 3], lambda a: np.flip(a, (0, 1)),
])
def test_cast_reads_views_in_c_order(make):
    storage = np.arange(5 * 7, dtype=np.float64)
    view = make(storage.reshape(5, 7))
    _, table = offsets(view)
    got = storage[element_offset(view, storage) + table[:, 0]].reshape(view.shape)  # cast_kernel's load
    np.testing.assert_array_equal(got, np.ascontiguousarray(view))


def test_where_and_compare_broadcast_three_inputs():
    rng = np.random.default_rng(0)
    cond = rng.random((4, 1, 5)) > 0.5
    a, b = rng.standard_normal((3, 1)), rng.standard_normal((1, 3, 5))[:, :, ::-1]
    shape, table = offsets(cond, a, b)
    assert shape == (4, 3, 5)
    flat_b = b.base.reshape(-1) if b.base is not None else b.reshape(-1)
    got = np.where(cond.reshape(-1)[table[:, 0]], a.reshape(-1)[table[:, 1]],
                   flat_b[element_offset(b, flat_b) + table[:, 2]]).reshape(shape)
    np.testing.assert_array_equal(got, np.where(cond, a, b))
