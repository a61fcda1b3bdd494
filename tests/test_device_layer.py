"""The Python device layer (rosenblatt._device, Tensor.to, dispatch, autograd on device) run on the
NumPy stand-in for the CUDA backend (tests/fake_cuda.py): no GPU needed. The fake refuses to turn
into a NumPy array, so an op that falls back to NumPy on a device tensor fails here.
tests/test_cuda_tensor.py runs the same kind of checks on a real GPU."""
import numpy as np
import pytest

import rosenblatt as rb
import rosenblatt.nn.functional as F
from rosenblatt import _device, nn


def assert_close(actual, expected, atol=1e-5, rtol=1e-5):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    assert np.all(np.abs(actual - expected) <= atol + rtol * np.abs(expected)), np.abs(actual - expected).max()


def host(t):
    return t.cpu().numpy()


# ---- device objects and moving tensors ------------------------------------------------------------
def test_device_object_parses_and_prints_like_torch():
    d = rb.device("cuda:1")
    assert (d.type, d.index) == ("cuda", 1) and str(d) == "cuda:1"
    assert repr(d) == "device(type='cuda', index=1)" and repr(rb.device("cpu")) == "device(type='cpu')"
    assert rb.device("cuda") == "cuda" and rb.device("cuda", 0) == rb.device("cuda:0") != rb.device("cuda")
    assert rb.tensor([1.0]).device == "cpu" and rb.tensor([1.0]).device.type == "cpu"
    for bad in ("gpu", "cuda:x", "cuda:-1"):
        with pytest.raises(ValueError):
            rb.device(bad)


def test_to_cuda_and_back(fake):
    x = rb.tensor([[1.0, 2.0], [3.0, 4.0]])
    for y in (x.to("cuda"), x.to("cuda:0"), x.to(rb.device("cuda")), x.cuda(), x.cuda(0)):
        assert y.device == rb.device("cuda", 0) and y.is_cuda and y.dtype == np.float32
        assert isinstance(y.data, fake.DeviceArray)
        np.testing.assert_array_equal(y.cpu().numpy(), x.numpy())
    y = x.cuda()
    assert y.cuda() is y and x.cpu() is x and x.to("cpu") is x
    assert y.to("cuda", dtype=rb.float64).dtype == np.float64
    assert "device='cuda:0'" in repr(y) and y[1, 0].item() == 3.0 and y.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    with pytest.raises(RuntimeError, match="no CUDA device 3"):
        x.to("cuda:3")


def test_numpy_of_a_cuda_tensor_raises_like_torch(fake):
    y = rb.ones(3, device="cuda")
    with pytest.raises(TypeError, match=r"use Tensor.cpu\(\)"):
        y.numpy()
    with pytest.raises(TypeError, match="cpu"):
        np.asarray(y)
    with pytest.raises(TypeError, match="implicitly"):
        np.asarray(y.data)  # a DeviceArray never turns into NumPy silently


def test_factories_take_a_device(fake):
    rb.manual_seed(3)
    expected = rb.randn(2, 3).numpy()
    rb.manual_seed(3)
    made = rb.randn(2, 3, device="cuda")
    assert made.is_cuda
    np.testing.assert_array_equal(host(made), expected)  # same seed, same values on every device
    for t in (rb.zeros(2, device="cuda"), rb.ones(2, 2, device="cuda"), rb.full((2,), 7.0, device="cuda"),
              rb.arange(5, device="cuda"), rb.tensor([1, 2], device="cuda"), rb.eye(3, device="cuda")):
        assert t.is_cuda
    assert rb.zeros_like(made).is_cuda and not rb.zeros_like(made, device="cpu").is_cuda
    assert rb.tensor([1, 2], device="cuda").dtype == np.int64
    t = rb.tensor(made)  # a copy on the same device
    assert t.is_cuda and t.data is not made.data


def test_gradient_flows_back_across_to(fake):
    x = rb.randn(3, 4, requires_grad=True)
    (x.cuda() * 3.0).sum().backward()
    assert not x.grad.is_cuda
    assert_close(x.grad.numpy(), np.full((3, 4), 3.0))


# ---- errors: no backend, no device, mixed devices -------------------------------------------------
def test_without_a_backend_cuda_is_a_clear_runtime_error():
    previous = _device.set_backend(None)
    try:
        with pytest.raises(RuntimeError, match="built without CUDA"):
            rb.tensor([1.0]).cuda()
        with pytest.raises(RuntimeError, match="built without CUDA"):
            rb.zeros(2, device="cuda")
    finally:
        _device.set_backend(previous)


def test_without_a_device_cuda_is_a_clear_runtime_error(fake):
    fake.device_count_value = 0
    with pytest.raises(RuntimeError, match="no CUDA device"):
        rb.tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        nn.Linear(2, 2).cuda()


@pytest.mark.parametrize("op", [
    lambda a, b: a + b, lambda a, b: a * b, lambda a, b: rb.matmul(a, b), lambda a, b: rb.maximum(a, b),
    lambda a, b: rb.where(a > 0, a, b), lambda a, b: rb.cat([a, b]), lambda a, b: F.linear(a, b),
])
def test_mixing_devices_raises_value_error_naming_both(fake, op):
    a, b = rb.randn(3, 3), rb.randn(3, 3).cuda()
    with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        op(a, b)
    with pytest.raises(ValueError, match=r"cpu.*cuda:0|cuda:0.*cpu"):
        op(b, a)


def test_cross_entropy_with_targets_on_the_host_is_a_device_mix(fake):
    logits = rb.randn(4, 3).cuda()
    with pytest.raises(ValueError, match="cross_entropy.*cpu.*cuda:0|cross_entropy.*cuda:0.*cpu"):
        F.cross_entropy(logits, rb.tensor([0, 1, 2, 0]))


def test_unimplemented_numpy_function_is_not_a_silent_copy(fake):
    y = rb.randn(4).cuda()
    with pytest.raises(NotImplementedError, match="not implemented for CUDA tensors"):
        F.pad(y, (1, 1), mode="reflect")  # only constant padding has a device version
    with pytest.raises(NotImplementedError, match="advanced indexing"):  # x[rows] has a device version now
        rb.randn(2, 4).cuda()[:, rb.tensor([0, 2]).cuda()]


def test_kernel_dispatch_picks_the_module_by_the_arrays(fake):
    from rosenblatt import _C
    x, w = np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 2, 2), np.float32)
    assert _device.kernels("conv2d", x, w, None) is _C
    xd, wd = fake.from_numpy(x), fake.from_numpy(w)
    assert _device.kernels("conv2d", xd, wd, None) is fake
    with pytest.raises(ValueError, match="conv2d.*cpu.*cuda:0"):
        _device.kernels("conv2d", x, wd)
    out = _device.kernel_module.conv2d_forward(xd, wd, None, (1, 1), (0, 0), (1, 1), 1)
    assert isinstance(out, fake.DeviceArray) and "conv2d_forward" in fake.calls


# ---- every op: forward and backward on the device equal the CPU ------------------------------------
UNARY = {
    "neg": lambda x: -x, "exp": rb.exp, "log": lambda x: rb.log(rb.abs(x) + 0.5), "tanh": rb.tanh,
    "sigmoid": rb.sigmoid, "relu": rb.relu, "sqrt": lambda x: rb.sqrt(rb.abs(x) + 0.1), "abs": rb.abs,
    "sin": rb.sin, "cos": rb.cos, "log1p": lambda x: rb.log1p(rb.abs(x)), "clamp": lambda x: rb.clamp(x, -0.5, 0.7),
    "pow2": lambda x: x ** 2, "pow_scalar_base": lambda x: 2.0 ** x, "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "softplus": F.softplus, "elu": F.elu, "scalar_ops": lambda x: (1.0 - x) * 3 / 2 + 1,
    "rdiv": lambda x: 1.0 / (rb.abs(x) + 1), "sum_all": lambda x: x.sum(), "sum_dim": lambda x: x.sum(1),
    "sum_dims_keep": lambda x: x.sum((0, 2), keepdim=True), "mean": lambda x: x.mean(-1), "var": lambda x: x.var(1),
    "std": lambda x: x.std(), "max_all": lambda x: x.max(), "max_dim": lambda x: x.max(1).values,
    "min_dim_keep": lambda x: x.min(-1, keepdim=True).values, "amax": lambda x: rb.amax(x, (0, 1)),
    "logsumexp": lambda x: rb.logsumexp(x, 1), "softmax": lambda x: rb.softmax(x, 1),
    "softmax_last": lambda x: rb.softmax(x, -1), "log_softmax": lambda x: rb.log_softmax(x, 0),
    "reshape": lambda x: x.reshape(-1, 5) * 2, "permute": lambda x: x.permute(2, 0, 1) * 2,
    "transpose": lambda x: x.transpose(0, 2) * 2, "slice": lambda x: x[1:, ::2, 1] * 2,
    "neg_step_index": lambda x: x[:, -1, None] * 2, "expand": lambda x: x[:, :1].expand(3, 4, 5) * 2,
    "unsqueeze_squeeze": lambda x: x.unsqueeze(1).squeeze(1) * 2, "flatten": lambda x: x.flatten(1) * 2,
    "split": lambda x: rb.split(x, [1, 3], 1)[1] * 2, "chunk_cat": lambda x: rb.cat(rb.chunk(x, 2, 2)[::-1], 2),
    "stack": lambda x: rb.stack([x, x * 2], 1), "unbind": lambda x: x.unbind(0)[2] * 2,
    "contiguous": lambda x: x.transpose(0, 1).contiguous() * 2, "clone": lambda x: x.clone() * 2,
    "where": lambda x: rb.where(x > 0, x, x * 0.1), "masked_fill": lambda x: x.masked_fill(x < 0, 0.5),
    "maximum_self": lambda x: rb.maximum(x, x[:1]), "normalize": lambda x: F.normalize(x, dim=1),
    "gather": lambda x: rb.gather(x, 1, rb.tensor(np.array([[[3, 0, 1, 1, 2]], [[0, 0, 0, -1, 3]],
                                                           [[2, 2, 1, 0, 0]]]), device=x.device)),
    "index_select": lambda x: rb.index_select(x, 2, rb.tensor([4, 0, 4, -1])),
    "flip": lambda x: rb.flip(x, (0, 2)) * 2,
    "interpolate": lambda x: F.interpolate(x[None], scale_factor=2, mode="bilinear", align_corners=False),
    "interpolate_nearest": lambda x: F.interpolate(x[None], size=(5, 3)), "pad": lambda x: F.pad(x, (1, 2, 0, 1), value=0.5) * 2,
}


@pytest.mark.parametrize("name", sorted(UNARY))
def test_unary_op_matches_cpu(fake, name):
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


def test_extremes_with_nan_on_device_match_cpu(fake):
    """The NaN rules of max/min/amax gradients (see test_autograd) on the device path too."""
    data = np.array([[1.0, np.nan, 2.0, np.nan], [3.0, 1.0, 3.0, 0.0]], np.float32)
    for fn in (lambda x: x.max(), lambda x: x.amax(1).sum(), lambda x: x.amin(0).sum()):
        x_cpu, x_dev = rb.tensor(data, requires_grad=True), rb.tensor(data, device="cuda", requires_grad=True)
        fn(x_cpu).backward()
        fn(x_dev).backward()
        np.testing.assert_array_equal(host(x_dev.grad), x_cpu.grad.numpy())


BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b, "div": lambda a, b: a / b,
    "pow": lambda a, b: rb.abs(a) ** b, "maximum": rb.maximum, "minimum": rb.minimum,
    "matmul_broadcast": lambda a, b: rb.matmul(a, b.transpose(-1, -2)),
}


@pytest.mark.parametrize("shapes", [((3, 4), (3, 4)), ((2, 3, 4), (4,)), ((3, 1), (1, 5)), ((2, 1, 4), (3, 1)),
                                    ((), (3, 2))])
@pytest.mark.parametrize("name", sorted(BINARY))
def test_binary_op_with_broadcasting_matches_cpu(fake, name, shapes):
    if name.startswith("matmul") and (len(shapes[0]) < 2 or len(shapes[1]) < 2 or shapes[0][-1] != shapes[1][-1]):
        pytest.skip("shapes do not multiply")
    rng = np.random.default_rng(2)
    a, b = (rng.standard_normal(s).astype(np.float32) + 0.1 for s in shapes)
    cpu = [rb.tensor(v, requires_grad=True) for v in (a, b)]
    dev = [rb.tensor(v, device="cuda", requires_grad=True) for v in (a, b)]
    y_cpu, y_dev = BINARY[name](*cpu), BINARY[name](*dev)
    assert_close(host(y_dev), y_cpu.numpy(), atol=1e-4)
    y_cpu.sum().backward()
    y_dev.sum().backward()
    for c, d in zip(cpu, dev):
        assert d.grad.is_cuda and d.grad.shape == c.shape
        assert_close(host(d.grad), c.grad.numpy(), atol=1e-4)


def test_comparisons_argmax_and_dtypes(fake):
    data = np.random.default_rng(3).standard_normal((4, 6)).astype(np.float32)
    x, y = rb.tensor(data), rb.tensor(data, device="cuda")
    for op in (lambda t: t > 0, lambda t: t <= 0.2, lambda t: t == t[0], lambda t: (t > 0) & (t < 1),
               lambda t: ~(t > 0), lambda t: rb.isnan(t), lambda t: rb.isfinite(t / (t > 0).float())):
        assert op(y).dtype == np.bool_
        with np.errstate(divide="ignore"):
            np.testing.assert_array_equal(host(op(y)), op(x).numpy())
    for op in (lambda t: t.argmax(1), lambda t: t.argmin(0), lambda t: t.argmax(), lambda t: (t > 0).sum(),
               lambda t: t.max(1).indices, lambda t: (t > 0).long() + 1, lambda t: t.double() * 2):
        assert op(y).dtype == op(x).dtype
        np.testing.assert_array_equal(host(op(y)), op(x).numpy())


def test_inplace_updates_write_through_views(fake):
    x = rb.zeros(3, 4, device="cuda")
    with rb.no_grad():
        x.add_(1.0)
        x.mul_(rb.full((4,), 3.0, device="cuda"))
        x[1] = 5.0
        x[:, 2:] = rb.tensor([[7.0, 8.0]], device="cuda")
        x.clamp_(max=7.5)
    np.testing.assert_array_equal(host(x), [[3, 3, 7, 7.5], [5, 5, 7, 7.5], [3, 3, 7, 7.5]])
    np.testing.assert_array_equal(host(x[rb.tensor(1, device="cuda")]), [5, 5, 7, 7.5])  # a 0-d index tensor
    x.zero_()
    assert host(x).sum() == 0 and x._version > 0


# ---- training on the device equals training on the CPU ---------------------------------------------
def _train(model_fn, optimizer_fn, x, y, device, steps=3):
    rb.manual_seed(0)
    model = model_fn().to(device)
    optimizer = optimizer_fn(model.parameters())
    for _ in range(steps):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(rb.tensor(x, device=device)), rb.tensor(y, device=device))
        loss.backward()
        optimizer.step()
    return [host(p) for p in model.parameters()], loss.item(), model


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_mlp_training_steps_on_device_equal_cpu(fake, optimizer):
    make = {"sgd": lambda p: rb.optim.SGD(p, lr=0.1), "momentum": lambda p: rb.optim.SGD(p, lr=0.1, momentum=0.9),
            "adam": lambda p: rb.optim.Adam(p, lr=0.01)}[optimizer]
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((13, 7)).astype(np.float32), rng.integers(0, 5, 13)

    def mlp():
        return nn.Sequential(nn.Linear(7, 16), nn.ReLU(), nn.Linear(16, 5))

    params_cpu, loss_cpu, _ = _train(mlp, make, x, y, "cpu")
    params_dev, loss_dev, model = _train(mlp, make, x, y, "cuda")
    assert all(p.is_cuda for p in model.parameters())
    assert abs(loss_cpu - loss_dev) < 1e-5
    for a, b in zip(params_cpu, params_dev):
        assert_close(b, a)
    assert "gemm" in fake.calls and "log_softmax" in fake.calls


def test_cnn_training_step_on_device_equals_cpu(fake):
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((2, 3, 7, 7)).astype(np.float32), rng.integers(0, 5, 2)

    def cnn():
        return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                             nn.Linear(4 * 3 * 3, 5))

    params_cpu, loss_cpu, _ = _train(cnn, lambda p: rb.optim.SGD(p, lr=0.1), x, y, "cpu", steps=2)
    params_dev, loss_dev, _ = _train(cnn, lambda p: rb.optim.SGD(p, lr=0.1), x, y, "cuda", steps=2)
    assert abs(loss_cpu - loss_dev) < 1e-5
    for a, b in zip(params_cpu, params_dev):
        assert_close(b, a)
    assert {"conv2d_forward", "conv2d_backward_weight", "max_pool2d_forward"} <= set(fake.calls)


def test_cross_entropy_options_on_device(fake):
    rng = np.random.default_rng(4)
    logits, target = rng.standard_normal((6, 4)).astype(np.float32), np.array([0, 3, -100, 1, 2, 3])
    weight = rng.random(4).astype(np.float32)
    for kwargs in ({}, {"reduction": "sum"}, {"reduction": "none"}, {"weight": weight}, {"label_smoothing": 0.1}):
        results = []
        for device in ("cpu", "cuda"):
            x = rb.tensor(logits, device=device, requires_grad=True)
            extra = {k: rb.tensor(v, device=device) if k == "weight" else v for k, v in kwargs.items()}
            loss = F.cross_entropy(x, rb.tensor(target, device=device), **extra)
            loss.sum().backward()
            results.append((host(loss), host(x.grad)))
        assert_close(results[1][0], results[0][0])
        assert_close(results[1][1], results[0][1])
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(rb.tensor(logits, device="cuda"), rb.tensor([0, 1, 2, 9, 0, 0], device="cuda"))


def test_module_to_moves_parameters_buffers_and_grads_in_place(fake):
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4))
    params = list(model.parameters())
    params[0].grad = rb.zeros(4, 3, 1, 1)
    assert model.cuda() is model
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(p.is_cuda for p in model.parameters()) and all(b.is_cuda for b in model.buffers())
    assert params[0].grad.is_cuda
    model.cpu()
    assert not any(p.is_cuda for p in model.parameters()) and not params[0].grad.is_cuda
    model.to(rb.float64)
    assert params[0].dtype == np.float64


def test_optimizer_state_follows_its_parameter(fake):
    model = nn.Linear(3, 2)
    optimizer = rb.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(rb.randn(4, 3)).sum().backward()
    optimizer.step()
    model.cuda()
    optimizer.zero_grad()
    model(rb.randn(4, 3).cuda()).sum().backward()
    optimizer.step()
    for p in model.parameters():
        assert optimizer.state[p]["momentum_buffer"].is_cuda


def test_load_state_dict_keeps_parameters_on_their_device(fake):
    source = nn.Linear(3, 2)
    target = nn.Linear(3, 2).cuda()
    target.load_state_dict(source.cuda().state_dict())
    assert target.weight.is_cuda
    np.testing.assert_array_equal(host(target.weight), host(source.weight))


def test_embedding_and_lstm_training_step_on_device_equals_cpu(fake):
    """The recurrent layer's Python glue (state allocation, output pieces, lengths) on the device; the
    stand-in forwards rnn_forward / rnn_backward to _C, as the CUDA kernels mirror them."""
    rng = np.random.default_rng(5)
    tokens, targets = rng.integers(0, 11, (6, 3)), rng.integers(0, 11, (6, 3))

    class CharModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(11, 8, padding_idx=0)
            self.lstm = nn.LSTM(8, 7, num_layers=2, bidirectional=True)
            self.head = nn.Linear(14, 11)

        def forward(self, x):
            out, _ = self.lstm(self.embed(x))
            return self.head(out)

    results = []
    for device in ("cpu", "cuda"):
        rb.manual_seed(0)
        model = CharModel().to(device)
        optimizer = rb.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(2):
            optimizer.zero_grad()
            logits = model(rb.tensor(tokens, device=device))
            loss = F.cross_entropy(logits.reshape(-1, 11), rb.tensor(targets.reshape(-1), device=device))
            loss.backward()
            optimizer.step()
        results.append(([host(p) for p in model.parameters()], loss.item()))
    assert abs(results[0][1] - results[1][1]) < 1e-5
    for a, b in zip(results[0][0], results[1][0]):
        assert_close(b, a)
    assert {"rnn_forward", "rnn_backward", "gemm"} <= set(fake.calls)


def test_fit_moves_batches_to_the_models_device_and_clips_there(fake):
    from rosenblatt.data import DataLoader, TensorDataset
    from rosenblatt.train import fit
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((24, 5)).astype(np.float32), rng.integers(0, 3, 24)
    histories = []
    for device in ("cpu", "cuda"):
        rb.manual_seed(0)
        model = nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).to(device)
        optimizer = rb.optim.SGD(model.parameters(), lr=0.5)
        loader = DataLoader(TensorDataset(rb.tensor(x), rb.tensor(y)), batch_size=8)
        history = fit(model, F.cross_entropy, optimizer, loader, val_loader=loader, epochs=2,
                      metrics=["accuracy"], clip_grad_norm=0.5, progress=False)
        histories.append(history.history)
        assert all(p.is_cuda == (device == "cuda") for p in model.parameters())
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert_close(histories[1][key], histories[0][key])


@pytest.mark.parametrize("norm_type", [2.0, 1.0, float("inf")])
def test_clip_grad_norm_on_device_equals_cpu(fake, norm_type):
    rng = np.random.default_rng(9)
    grads = [rng.standard_normal(s).astype(np.float32) * 3 for s in ((4, 5), (7,), (0, 3))]
    results = []
    for device in ("cpu", "cuda"):
        params = [rb.zeros(*g.shape, device=device, requires_grad=True) for g in grads]
        for p, g in zip(params, grads):
            p.grad = rb.tensor(g, device=device)
        total = nn.utils.clip_grad_norm_(params, 1.5, norm_type=norm_type)
        results.append((total.item(), [host(p.grad) for p in params]))
    assert abs(results[0][0] - results[1][0]) <= 1e-5 * results[0][0]
    for a, b in zip(results[0][1], results[1][1]):
        assert_close(b, a)


def test_save_and_load_a_model_and_optimizer_trained_on_device(fake, tmp_path):
    model = nn.Linear(4, 3).cuda()
    optimizer = rb.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(rb.randn(2, 4).cuda()).sum().backward()
    optimizer.step()
    rb.save({"model": model.state_dict(), "optimizer": optimizer.state_dict()}, tmp_path / "ckpt.safetensors")
    loaded = rb.load(tmp_path / "ckpt.safetensors")
    restored = nn.Linear(4, 3).cuda()
    restored.load_state_dict(loaded["model"])
    assert restored.weight.is_cuda
    np.testing.assert_array_equal(host(restored.weight), host(model.weight))
    optimizer2 = rb.optim.SGD(restored.parameters(), lr=0.1, momentum=0.9)
    optimizer2.load_state_dict(loaded["optimizer"])
    assert optimizer2.state[restored.weight]["momentum_buffer"].is_cuda


def test_numpy_level_device_mix_names_both_devices(fake):
    host_array, device_array = np.ones((2, 3), np.float32), fake.from_numpy(np.ones((2, 3), np.float32))
    for op in (lambda a, b: np.concatenate([a, b]), lambda a, b: np.where(b > 0, a, b), lambda a, b: a + b,
               lambda a, b: np.maximum(a, b)):
        with pytest.raises(ValueError, match="cpu and cuda:0"):
            op(host_array, device_array)


def test_initialisers_and_reset_parameters_keep_parameters_on_the_device(fake):
    linear = nn.Linear(6, 4).cuda()
    for init in (nn.init.kaiming_uniform_, nn.init.xavier_normal_, nn.init.zeros_,
                 lambda t: nn.init.constant_(t, 0.25), nn.init.orthogonal_):
        init(linear.weight)
        assert linear.weight.is_cuda
    np.testing.assert_allclose(host(linear.weight) @ host(linear.weight).T, np.eye(4), atol=1e-5)
    for module in (nn.LSTM(3, 5).cuda(), nn.Embedding(7, 3, padding_idx=1).cuda()):
        module.reset_parameters()
        assert all(p.is_cuda for p in module.parameters())


def test_dropout_variants_and_one_hot_on_device(fake):
    x = rb.randn(2, 3, 4, 5).cuda()
    for fn in (lambda t: F.dropout(t, 0.3), lambda t: F.dropout2d(t, 0.5), lambda t: F.dropout2d(t, 1.0),
               lambda t: nn.Dropout(0.2)(t)):
        assert fn(x).is_cuda
    rb.manual_seed(4)
    expected = F.dropout(x.cpu(), 0.3).numpy()
    rb.manual_seed(4)
    np.testing.assert_array_equal(host(F.dropout(x, 0.3)), expected)  # the mask is drawn on the host
    labels = rb.tensor([2, 0, 1, 2])
    np.testing.assert_array_equal(host(F.one_hot(labels.cuda())), F.one_hot(labels).numpy())


def test_numpy_subclasses_are_host_arrays(fake, tmp_path):
    from rosenblatt import _C
    weights = np.memmap(tmp_path / "w.bin", dtype=np.float32, mode="w+", shape=(1, 1, 2, 2))
    assert _device.kernels("conv2d", np.ones((1, 1, 3, 3), np.float32), weights) is _C
    _device.same_device("op", np.ones(2), weights)


def batch_norm_run(device, training):
    """Output, gradients and running statistics of one BatchNorm2d step on `device`."""
    data = np.random.default_rng(10).standard_normal((3, 4, 5, 2)).astype(np.float32) * 2 + 1
    rb.manual_seed(0)
    bn = nn.BatchNorm2d(4).to(device)
    bn.running_mean.data[...] = 0.5
    bn.train(training)
    x = rb.tensor(data, device=device, requires_grad=True)
    y = bn(x)
    (y * rb.tensor(np.arange(y.numel(), dtype=np.float32).reshape(y.shape) % 7, device=device)).sum().backward()
    return [host(t) for t in (y, x.grad, bn.weight.grad, bn.bias.grad, bn.running_mean, bn.running_var)]


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_on_device_equals_cpu(fake, training):
    for a, b in zip(batch_norm_run("cpu", training), batch_norm_run("cuda", training)):
        assert_close(b, a, atol=1e-5, rtol=1e-4)
