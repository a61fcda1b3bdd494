"""CUDA tensors on a real GPU: every op of the autograd layer, forward and backward, against the CPU;
training steps; device errors; DLPack zero copy with torch.cuda. Skipped without a GPU (the same
Python paths run on a NumPy stand-in for the backend in tests/test_device_layer.py)."""
import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn.functional as F
from rosenblatt import _device, cuda, nn

from test_device_layer import BINARY, UNARY, _train, batch_norm_run

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device")

# float32 on the GPU against float32 on the CPU: different summation orders and libm.
ATOL, RTOL = 1e-4, 1e-4


def assert_close(actual, expected, atol=ATOL, rtol=RTOL):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    assert np.array_equal(np.isnan(actual), np.isnan(expected))
    finite = ~np.isnan(expected)
    error = np.abs(actual[finite] - expected[finite])
    assert np.all(error <= atol + rtol * np.abs(expected[finite])), error.max()


def host(t):
    return t.cpu().numpy()


@pytest.fixture(autouse=True)
def real_backend():
    assert _device.DeviceArray is cuda.DeviceArray  # not the test stand-in
    yield
    cuda.synchronize()


def test_to_and_from_the_device():
    data = np.random.default_rng(0).standard_normal((5, 7)).astype(np.float32)
    for dtype in (np.float32, np.float64, np.int64, np.bool_):
        x = rb.tensor(data.astype(dtype))
        y = x.to("cuda")
        assert y.device == rb.device("cuda", 0) and y.dtype == dtype and isinstance(y.data, cuda.DeviceArray)
        np.testing.assert_array_equal(host(y), x.numpy())
    y = rb.tensor(data, device="cuda")
    assert y[2, 3].item() == data[2, 3]
    np.testing.assert_array_equal(host(y[1:4, ::-2]), data[1:4, ::-2])
    np.testing.assert_array_equal(host(y.T), data.T)
    with pytest.raises(TypeError, match=r"cpu\(\)"):
        y.numpy()
    with pytest.raises(TypeError):
        np.asarray(y.data)


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_matches_cpu(name):
    fn = UNARY[name]
    data = np.random.default_rng(0).standard_normal((3, 4, 5)).astype(np.float32)
    data[0, 0, 0] = data[0, 0, 1]  # a tie for max/min
    x_cpu, x_dev = rb.tensor(data, requires_grad=True), rb.tensor(data, device="cuda", requires_grad=True)
    y_cpu, y_dev = fn(x_cpu), fn(x_dev)
    assert y_dev.is_cuda and y_dev.shape == y_cpu.shape and y_dev.dtype == y_cpu.dtype
    assert_close(host(y_dev), y_cpu.numpy())
    weights = np.random.default_rng(1).standard_normal(y_cpu.shape).astype(np.float32)
    (y_cpu * rb.tensor(weights)).sum().backward()
    (y_dev * rb.tensor(weights, device="cuda")).sum().backward()
    assert x_dev.grad.is_cuda
    assert_close(host(x_dev.grad), x_cpu.grad.numpy())


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((2, 1, 4), (3, 1)),
                                    ((), (3, 2)), ((67, 1, 33), (5, 1)), ((2, 37, 19), (2, 37, 19))])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_with_broadcasting_matches_cpu(name, shapes):
    if name.startswith("matmul") and (len(shapes[0]) < 2 or len(shapes[1]) < 2 or shapes[0][-1] != shapes[1][-1]):
        pytest.skip("shapes do not multiply")
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal(s).astype(np.float32) + 0.1 for s in shapes)
    cpu = [rb.tensor(v, requires_grad=True) for v in (a, b)]
    dev = [rb.tensor(v, device="cuda", requires_grad=True) for v in (a, b)]
    y_cpu, y_dev = BINARY[name](*cpu), BINARY[name](*dev)
    assert_close(host(y_dev), y_cpu.numpy(), atol=1e-3)
    y_cpu.sum().backward()
    y_dev.sum().backward()
    for c, d in zip(cpu, dev):
        assert d.grad.is_cuda and d.grad.shape == c.shape
        assert_close(host(d.grad), c.grad.numpy(), atol=1e-3)


def test_float64_ops_on_device():
    data = np.random.default_rng(3).standard_normal((6, 9))
    x = rb.tensor(data, device="cuda", requires_grad=True)
    y = (rb.exp(x) * 2 - x.max(1, keepdim=True).values).softmax(1).sum()
    y.backward()
    xc = rb.tensor(data, requires_grad=True)
    yc = (rb.exp(xc) * 2 - xc.max(1, keepdim=True).values).softmax(1).sum()
    yc.backward()
    assert x.grad.dtype == np.float64
    assert_close(host(x.grad), xc.grad.numpy(), atol=1e-10, rtol=1e-10)


def test_comparisons_argmax_and_dtypes():
    data = np.random.default_rng(3).standard_normal((40, 67)).astype(np.float32)
    data[3, 5] = np.nan
    x, y = rb.tensor(data), rb.tensor(data, device="cuda")
    for op in (lambda t: t > 0, lambda t: t <= 0.2, lambda t: t == t[0], lambda t: (t > 0) & (t < 1),
               lambda t: ~(t > 0), lambda t: rb.isnan(t), lambda t: rb.isfinite(t)):
        assert op(y).dtype == np.bool_
        np.testing.assert_array_equal(host(op(y)), op(x).numpy())
    for op in (lambda t: t.argmax(1), lambda t: t.argmin(0), lambda t: t.argmax(), lambda t: (t > 0).sum(),
               lambda t: t.max(1).indices, lambda t: (t > 0).long() + 1, lambda t: t.double() * 2,
               lambda t: t.max(0).values, lambda t: rb.amin(t, 1)):
        assert op(y).dtype == op(x).dtype
        np.testing.assert_array_equal(host(op(y)), op(x).numpy())


def test_inplace_updates_write_through_views():
    x = rb.zeros(3, 4, device="cuda")
    with rb.no_grad():
        x.add_(1.0)
        x.mul_(rb.full((4,), 3.0, device="cuda"))
        x[1] = 5.0
        x[:, 2:] = rb.tensor([[7.0, 8.0]], device="cuda")
        x.clamp_(max=7.5)
        x[::2, ::-3] += 1.0
    np.testing.assert_array_equal(host(x), [[4, 3, 7, 8.5], [5, 5, 7, 7.5], [4, 3, 7, 8.5]])


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_mlp_training_steps_on_device_equal_cpu(optimizer):
    make = {"sgd": lambda p: rb.optim.SGD(p, lr=0.1), "momentum": lambda p: rb.optim.SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda p: rb.optim.Adam(p, lr=0.01)}[optimizer]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((67, 33)).astype(np.float32), rng.integers(0, 10, 67)

    def mlp():
        return nn.Sequential(nn.Linear(33, 130), nn.ReLU(), nn.Linear(130, 10))

    params_cpu, loss_cpu, _ = _train(mlp, make, x, y, "cpu")
    params_dev, loss_dev, model = _train(mlp, make, x, y, "cuda")
    assert all(p.is_cuda for p in model.parameters())
    assert abs(loss_cpu - loss_dev) < 1e-4
    for a, b in zip(params_cpu, params_dev):
        assert_close(b, a, atol=1e-4, rtol=1e-3)


def test_layers_with_cuda_kernels_match_cpu_or_say_they_are_missing():
    """conv / pooling run on the device once their `_cuda` kernels exist (same names as `_C`'s);
    until then they raise NotImplementedError naming the kernel, never a silent host copy."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)

    def cnn():
        rb.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 4 * 4, 5))

    expected = cnn()(rb.tensor(x)).numpy()
    try:
        got = cnn().cuda()(rb.tensor(x, device="cuda"))
    except NotImplementedError as error:
        assert "not implemented for CUDA tensors" in str(error)
        pytest.skip(f"a kernel is missing on the device: {error}")
    assert_close(host(got), expected)


def test_mixing_devices_raises_value_error_naming_both():
    a, b = rb.randn(3, 3), rb.randn(3, 3).cuda()
    for op in (lambda p, q: p + q, lambda p, q: rb.matmul(p, q), lambda p, q: F.linear(p, q),
               lambda p, q: rb.cat([p, q])):
        with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
            op(a, b)
        with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
            op(b, a)


def test_module_to_and_optimizer_state_follow():
    model = nn.Linear(5, 3)
    optimizer = rb.optim.Adam(model.parameters(), lr=0.01)
    model(rb.randn(4, 5)).sum().backward()
    optimizer.step()
    model.cuda()
    optimizer.zero_grad()
    model(rb.randn(4, 5).cuda()).sum().backward()
    optimizer.step()
    assert model.weight.is_cuda and optimizer.state[model.weight]["exp_avg"].is_cuda


def test_dlpack_zero_copy_with_torch_cuda():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch without CUDA")
    t = torch.arange(12, dtype=torch.float32, device="cuda").reshape(3, 4)
    r = rb.from_dlpack(t)
    assert r.is_cuda and r.shape == (3, 4) and r.data.data_ptr == t.data_ptr()
    t[0, 0] = 42.0  # a write through torch is seen here
    torch.cuda.synchronize()
    assert host(r)[0, 0] == 42.0
    with rb.no_grad():
        r[2, 3] = -1.0  # and a write here is seen by torch
    cuda.synchronize()
    assert t[2, 3].item() == -1.0

    mine = rb.arange(6, device="cuda").float().reshape(2, 3)
    back = torch.from_dlpack(mine)
    assert back.device.type == "cuda" and back.data_ptr() == mine.data.data_ptr
    assert mine.__cuda_array_interface__["data"][0] == mine.data.data_ptr
    assert mine.__dlpack_device__() == (2, 0)
    torch.testing.assert_close(back.cpu(), torch.arange(6, dtype=torch.float32).reshape(2, 3))


def test_embedding_matches_cpu():
    rng = np.random.default_rng(6)
    table = rng.standard_normal((37, 19)).astype(np.float32)
    tokens = rng.integers(0, 37, (5, 7))
    tokens[0, :3] = 4  # repeated rows accumulate their gradients
    grads = []
    for device in ("cpu", "cuda"):
        weight = rb.tensor(table, device=device, requires_grad=True)
        out = F.embedding(rb.tensor(tokens, device=device), weight, padding_idx=2)
        (out * rb.tensor(np.arange(19, dtype=np.float32), device=device)).sum().backward()
        grads.append((host(out), host(weight.grad)))
    assert_close(grads[1][0], grads[0][0])
    assert_close(grads[1][1], grads[0][1])
    with pytest.raises(IndexError, match="out of range"):
        F.embedding(rb.tensor([[37]], device="cuda"), rb.tensor(table, device="cuda"))


def test_recurrent_layer_matches_cpu_or_says_it_is_missing():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 3, 8)).astype(np.float32)
    outs = []
    for device in ("cpu", "cuda"):
        rb.manual_seed(0)
        lstm = nn.LSTM(8, 7, num_layers=2, bidirectional=True).to(device)
        inp = rb.tensor(x, device=device, requires_grad=True)
        try:
            out, (h, c) = lstm(inp)
        except NotImplementedError as error:
            assert "not implemented for CUDA tensors" in str(error)
            pytest.skip(f"a kernel is missing on the device: {error}")
        (out.sum() + h.sum() * 2 + c.sum()).backward()
        outs.append((host(out), host(inp.grad), host(lstm.weight_hh_l1_reverse.grad)))
    for a, b in zip(*outs):
        assert_close(b, a, atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_matches_cpu(training):
    for a, b in zip(batch_norm_run("cpu", training), batch_norm_run("cuda", training)):
        assert_close(b, a)
