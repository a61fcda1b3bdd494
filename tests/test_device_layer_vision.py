"""Device paths the vision examples (segment, localize) need, run on the NumPy stand-in for the CUDA
backend (tests/fake_cuda.py; no GPU needed): F.roi_pool with boxes given on the host or on the device,
and x[rows] (an index array or mask along the first dim) of a CUDA tensor, forward and backward,
against the CPU."""
import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn.functional as F


def host(t):
    return t.cpu().numpy()


def _grad_on(device, x, fn):
    """(fn(x) on device, the gradient of a fixed weighted sum of it with respect to x), both on the host."""
    leaf = rb.tensor(x).to(device).requires_grad_(True)
    y = fn(leaf)
    weights = rb.tensor(np.random.default_rng(7).standard_normal(y.shape).astype(np.float32)).to(device)
    (y * weights).sum().backward()
    return host(y), host(leaf.grad)


# ---- roi_pool: the CUDA kernels take the boxes as a DeviceArray of the input's dtype ------------------
FEATURES = np.random.default_rng(0).standard_normal((2, 3, 9, 11)).astype(np.float32)
BOXES = np.array([[0, 0, 0, 20, 16], [1, 4, 2, 40, 30], [0, 8, 8, 9, 9], [1, -3, 5, 12, 33]], np.float32)


@pytest.mark.parametrize("given", ["host array", "host tensor", "device tensor", "float64 device tensor",
                                   "per-image host list", "per-image device list"])
def test_roi_pool_on_a_device_takes_boxes_from_the_host_or_the_device(fake, given):
    per_image = [BOXES[BOXES[:, 0] == i, 1:] for i in range(2)]
    make = {"host array": lambda: BOXES, "host tensor": lambda: rb.tensor(BOXES),
            "device tensor": lambda: rb.tensor(BOXES, device="cuda"),
            "float64 device tensor": lambda: rb.tensor(BOXES.astype(np.float64), device="cuda"),
            "per-image host list": lambda: per_image,
            "per-image device list": lambda: [rb.tensor(b, device="cuda") for b in per_image]}[given]
    expected_boxes = BOXES if "list" not in given else np.concatenate(
        [np.concatenate([np.full((len(b), 1), i, np.float32), b], 1) for i, b in enumerate(per_image)])
    cpu_y, cpu_grad = _grad_on("cpu", FEATURES, lambda x: F.roi_pool(x, expected_boxes, (2, 3), 0.25))
    fake.calls.clear()
    y, grad = _grad_on("cuda", FEATURES, lambda x: F.roi_pool(x, make(), (2, 3), 0.25))
    assert {"roi_pool_forward", "roi_pool_backward"} <= set(fake.calls)
    np.testing.assert_array_equal(y, cpu_y)          # max pooling picks values: exact
    np.testing.assert_allclose(grad, cpu_grad, rtol=1e-6, atol=1e-6)


def test_roi_pool_boxes_on_another_device_than_the_input_are_refused(fake):
    with pytest.raises(ValueError, match="roi_pool: expected all tensors to be on the same device"):
        F.roi_pool(rb.tensor(FEATURES), rb.tensor(BOXES, device="cuda"), 2)
    with pytest.raises(ValueError, match="roi_pool: expected all tensors to be on the same device"):
        F.roi_pool(rb.tensor(FEATURES), [rb.tensor(BOXES[:, 1:], device="cuda")], 2)


def test_roi_pool_keeps_its_own_copy_of_host_boxes(fake):
    boxes = BOXES.copy()
    x = rb.tensor(FEATURES, device="cuda").requires_grad_(True)
    y = F.roi_pool(x, boxes, 2, 0.25)
    boxes[:, 0] = 7  # reused by the caller before the backward
    y.sum().backward()
    expected = rb.tensor(FEATURES).requires_grad_(True)
    F.roi_pool(expected, BOXES, 2, 0.25).sum().backward()
    np.testing.assert_allclose(host(x.grad), expected.grad.numpy())


# ---- x[rows] on a device: index_select (a gather on the device) -------------------------------------
X = np.random.default_rng(1).standard_normal((5, 3, 2)).astype(np.float32)


@pytest.mark.parametrize("index", [np.array([4, 0, 4, 2]), [1, 3], np.array([[0, 1], [4, 4]]), np.array([-1, 0]),
                                   np.array([True, False, True, True, False]), np.array([], np.int64)],
                         ids=["repeated", "list", "2-d", "negative", "mask", "empty"])
@pytest.mark.parametrize("where", ["host", "device"])
def test_indexing_rows_of_a_cuda_tensor_matches_the_cpu(fake, index, where):
    if where == "device" and isinstance(index, list):
        pytest.skip("a list is a host index")

    def pick(x):
        i = rb.tensor(index).to(x.device) if where == "device" else index
        return x[i] * 1.0

    cpu_y, cpu_grad = _grad_on("cpu", X, pick)
    fake.calls.clear()
    y, grad = _grad_on("cuda", X, pick)
    assert fake.calls  # it ran on the device
    np.testing.assert_array_equal(y, cpu_y)
    np.testing.assert_allclose(grad, cpu_grad, rtol=1e-6, atol=1e-6)  # repeated rows accumulate


def test_indexing_rows_then_gather_as_the_box_loss_does(fake):
    """localize's box loss: the object windows' rows, then each one's own class's 4 offsets."""
    rows = np.array([0, 3, 4])
    classes = np.repeat(np.array([1, 0, 2])[:, None, None], 2, axis=2)

    def picked(x):
        return x[rows].gather(1, rb.tensor(classes).to(x.device))

    cpu_y, cpu_grad = _grad_on("cpu", X, picked)
    y, grad = _grad_on("cuda", X, picked)
    np.testing.assert_array_equal(y, cpu_y)
    np.testing.assert_allclose(grad, cpu_grad, rtol=1e-6, atol=1e-6)


def test_other_advanced_indexing_of_a_cuda_tensor_is_named_not_implemented(fake):
    x = rb.tensor(X, device="cuda")
    for index in [(slice(None), np.array([0, 1])), (np.array([0]), np.array([1])), np.ones((5, 3), bool)]:
        with pytest.raises(NotImplementedError, match="getitem"):
            x[index]
    with pytest.raises(IndexError):
        x[np.array([5])]
    with pytest.raises(IndexError):
        x[np.array([True, False])]
    np.testing.assert_array_equal(host(x[np.array(2)]), X[2])  # a 0-d integer array is an integer
