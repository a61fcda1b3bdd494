"""BatchNorm2d and Dropout2d: torch's statistics, state_dict and gradients; channel-wise dropout masks."""
import numpy as np
import pytest

import rosenblatt as rb
from conftest import assert_close, torch_or_skip
from rosenblatt import nn
from rosenblatt.autograd import gradcheck

F = nn.functional


def test_batch_norm_gradcheck_train_and_eval(rng):
    x = rb.Tensor(rng.standard_normal((3, 2, 4, 5)), requires_grad=True)
    w = rb.Tensor(rng.standard_normal(2), requires_grad=True)
    b = rb.Tensor(rng.standard_normal(2), requires_grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [x, w, b])
    rm, rv = rb.Tensor(rng.standard_normal(2)), rb.Tensor(rng.random(2) + 0.5)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b, training=False), [x, w, b])


def test_batchnorm2d_matches_torch(rng):
    torch = torch_or_skip()
    ours, theirs = nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.weight.data[...] = rng.standard_normal(3)
    ours.bias.data[...] = rng.standard_normal(3)
    theirs.load_state_dict({k: torch.tensor(v.data) for k, v in ours.state_dict().items()})
    for step in range(3):
        x = (rng.standard_normal((4, 3, 5, 6)) * 2 + 1).astype(np.float32)
        xt, tx = rb.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        y, ty = ours(xt), theirs(tx)
        g = rng.standard_normal(y.shape).astype(np.float32)
        y.backward(g)
        ty.backward(torch.tensor(g))
        assert_close(y.data, ty.detach().numpy(), 1e-5, 1e-4, f"train step {step}")
        assert_close(xt.grad.data, tx.grad.numpy(), 1e-5, 1e-4, "grad input")
        assert_close(ours.weight.grad.data, theirs.weight.grad.numpy(), 1e-4, 1e-4, "grad weight")
        ours.weight.grad = ours.bias.grad = None
        theirs.zero_grad()
    for name, value in theirs.state_dict().items():
        assert_close(ours.state_dict()[name].data, value.numpy(), 1e-6, 1e-5, name)
    assert int(ours.num_batches_tracked.data) == 3
    ours.eval()
    theirs.eval()
    x = rng.standard_normal((2, 3, 4, 4)).astype(np.float32)
    assert_close(ours(rb.Tensor(x)).data, theirs(torch.tensor(x)).detach().numpy(), 1e-5, 1e-4, "eval")


def test_batchnorm2d_rejects_bad_shapes(rng):
    with pytest.raises(ValueError, match="BatchNorm2d"):
        nn.BatchNorm2d(3)(rb.Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match="batch_norm"):
        nn.BatchNorm2d(4)(rb.Tensor(np.zeros((2, 3, 2, 2), np.float32)))


def test_dropout2d_zeroes_whole_channels():
    rb.manual_seed(0)
    x = rb.Tensor(np.ones((8, 16, 3, 3), np.float32), requires_grad=True)
    layer = nn.Dropout2d(0.5)
    y = layer(x)
    per_channel = y.data.reshape(8, 16, 9)
    assert np.all((per_channel == 0) | (per_channel == 2))
    assert np.all(per_channel.min(axis=2) == per_channel.max(axis=2))  # one draw per channel
    assert 0.2 < (per_channel[:, :, 0] == 0).mean() < 0.8
    y.backward(np.ones(y.shape, np.float32))
    assert np.array_equal(x.grad.data, y.data)
    layer.eval()
    assert layer(x) is x
    with pytest.raises(ValueError, match="dropout2d"):
        F.dropout2d(x, 1.5)
