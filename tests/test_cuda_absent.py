"""What must hold on a machine without a GPU (CI): the CUDA module imports, reports no device,
and everything that needs one raises RuntimeError naming the op instead of crashing."""
import numpy as np
import pytest

import rosenblatt
from rosenblatt import cuda

no_gpu = pytest.mark.skipif(cuda.is_available(), reason="a CUDA device is present")


def test_module_imports_and_answers_queries():
    assert isinstance(cuda.is_compiled(), bool)
    assert cuda.device_count() >= 0
    assert cuda.is_available() == (cuda.device_count() > 0)


@no_gpu
def test_no_device_reported():
    assert not cuda.is_available() and cuda.device_count() == 0
    assert cuda.memory_allocated() == 0 and cuda.max_memory_allocated() == 0
    cuda.empty_cache()  # nothing cached: a no-op, not an error


@no_gpu
@pytest.mark.parametrize("make", [
    lambda: cuda.from_numpy(np.ones(3, np.float32)),
    lambda: cuda.empty((4, 4)),
    lambda: cuda.synchronize(),
])
def test_device_work_raises_runtime_error(make):
    match = "no CUDA device" if cuda.is_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=match):
        make()


class _FakeCudaProducer:
    def __dlpack_device__(self):
        return (2, 0)

    def __dlpack__(self, **kwargs):
        raise AssertionError("must not be asked for its capsule")


@no_gpu
def test_cuda_dlpack_producer_is_refused():
    with pytest.raises(RuntimeError, match="not available|no CUDA device|built without CUDA"):
        rosenblatt.from_dlpack(_FakeCudaProducer())
    match = "no CUDA device" if cuda.is_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=match):
        cuda.from_dlpack(_FakeCudaProducer())


@no_gpu
def test_kernels_without_cuda_raise_or_refuse_arguments():
    # With the module built, a kernel gets no DeviceArray to work on; without it, it names the op.
    if cuda.is_compiled():
        with pytest.raises(TypeError):
            cuda.add(np.ones(3), np.ones(3))
    else:
        with pytest.raises(RuntimeError, match="add: rosenblatt was built without CUDA"):
            cuda.add(None, None)


@pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")
def test_allocator_size_classes():
    round_size = cuda._cuda.round_size
    assert round_size(0) == 512 and round_size(1) == 512 and round_size(512) == 512 and round_size(513) == 1024
    assert round_size(1 << 20) == 1 << 20
    assert round_size((1 << 20) + 1) == 2 << 20 and round_size(5 << 20) == 6 << 20


@no_gpu
def test_tensor_to_cuda_without_a_gpu_is_a_clear_runtime_error():
    match = "no CUDA device" if cuda.is_compiled() else "built without CUDA"
    with pytest.raises(RuntimeError, match=match):
        rosenblatt.tensor([1.0, 2.0]).to("cuda")
    with pytest.raises(RuntimeError, match=match):
        rosenblatt.zeros(3, device="cuda")
    with pytest.raises(RuntimeError, match=match):
        rosenblatt.nn.Linear(2, 2).cuda()
    assert rosenblatt.tensor([1.0]).device == rosenblatt.device("cpu")
