"""nn.RNN / LSTM / GRU, the cells and Embedding: gradient checks through the layers (float64),
comparisons with torch.nn (outputs, final states and every gradient), and bad input."""
import numpy as np
import pytest

import rosenblatt as rb
from conftest import assert_close, torch_or_skip
from rosenblatt import nn
from rosenblatt.autograd import gradcheck
from rosenblatt.nn import functional as F


def weighted_sum(outputs, weights):
    total = None
    for o, w in zip(outputs, weights):
        term = (o * rb.Tensor(w)).sum()
        total = term if total is None else total + term
    return total


def flatten_outputs(result):
    """(output, h_n) or (output, (h_n, c_n)) -> list of Tensors."""
    output, state = result
    return [output, *(state if isinstance(state, tuple) else (state,))]


# ---- gradient checks (float64, the reference path) ---------------------------------------------------
LAYERS = [
    ("LSTM", {}),
    ("GRU", {}),
    ("GRU", {"linear_before_reset": False}),
    ("RNN", {"nonlinearity": "tanh"}),
    ("RNN", {"nonlinearity": "relu"}),
]


@pytest.mark.parametrize("name,kwargs", LAYERS)
def test_layer_gradcheck(rng, name, kwargs):
    """2 layers, bidirectional, variable lengths, initial states: every input and parameter."""
    rb.manual_seed(0)
    layer = getattr(nn, name)(3, 4, num_layers=2, bidirectional=True, dtype=np.float64, **kwargs)
    T, B = 4, 3
    x = rb.Tensor(rng.standard_normal((T, B, 3)), requires_grad=True)
    h0 = rb.Tensor(rng.standard_normal((4, B, 4)), requires_grad=True)
    c0 = rb.Tensor(rng.standard_normal((4, B, 4)), requires_grad=True)
    lengths = np.array([4, 2, 3])
    hx = (h0, c0) if name == "LSTM" else h0
    params = list(layer.parameters())

    def fn(x, *unused):
        return flatten_outputs(layer(x, hx, lengths=lengths))

    inputs = [x, h0] + ([c0] if name == "LSTM" else []) + params
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("name,kwargs", [("LSTMCell", {}), ("GRUCell", {}), ("GRUCell", {"linear_before_reset": False}),
                                         ("RNNCell", {"nonlinearity": "relu"})])
def test_cell_gradcheck(rng, name, kwargs):
    rb.manual_seed(1)
    cell = getattr(nn, name)(3, 5, dtype=np.float64, **kwargs)
    x = rb.Tensor(rng.standard_normal((2, 3)), requires_grad=True)
    h = rb.Tensor(rng.standard_normal((2, 5)), requires_grad=True)
    c = rb.Tensor(rng.standard_normal((2, 5)), requires_grad=True)
    hx = (h, c) if name == "LSTMCell" else h

    def fn(x, *unused):
        out = cell(x, hx)
        return list(out) if isinstance(out, tuple) else out

    inputs = [x, h] + ([c] if name == "LSTMCell" else []) + list(cell.parameters())
    assert gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


def test_batch_first_and_unbatched_agree_with_time_major(rng):
    rb.manual_seed(2)
    layer = nn.GRU(3, 4, num_layers=2, dtype=np.float64)
    x = rng.standard_normal((5, 2, 3))
    y, h = layer(rb.Tensor(x))
    layer.batch_first = True
    y_bf, h_bf = layer(rb.Tensor(x.swapaxes(0, 1).copy()))
    assert_close(y_bf.data, y.data.swapaxes(0, 1), 1e-14, 0, "batch_first output")
    assert_close(h_bf.data, h.data, 1e-14, 0, "batch_first h_n")
    layer.batch_first = False
    y1, h1 = layer(rb.Tensor(x[:, 0]))
    assert y1.shape == (5, 4) and h1.shape == (2, 4)
    assert_close(y1.data, y.data[:, 0], 1e-14, 0, "unbatched output")


def test_dropout_between_layers_only_in_training(rng):
    rb.manual_seed(3)
    layer = nn.LSTM(3, 6, num_layers=2, dropout=0.5)
    x = rb.Tensor(rng.standard_normal((4, 2, 3)).astype(np.float32))
    layer.eval()
    y_eval = layer(x)[0].data
    assert_close(layer(x)[0].data, y_eval, 0, 0, "eval is deterministic")
    layer.train()
    assert not np.allclose(layer(x)[0].data, y_eval)


def test_parameter_names_shapes_and_init():
    rb.manual_seed(4)
    layer = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    keys = list(layer.state_dict().keys())
    assert keys[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert keys[4:8] == ["weight_ih_l0_reverse", "weight_hh_l0_reverse", "bias_ih_l0_reverse", "bias_hh_l0_reverse"]
    assert layer.weight_ih_l1.shape == (20, 10) and layer.weight_hh_l1_reverse.shape == (20, 5)
    bound = 1 / np.sqrt(5)
    for p in layer.parameters():
        assert p.dtype == np.float32 and np.abs(p.data).max() <= bound
    assert "bias_ih_l0" not in nn.GRU(3, 5, bias=False).state_dict()
    assert list(nn.GRUCell(2, 3).state_dict()) == ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]


# ---- bad input --------------------------------------------------------------------------------------
def test_bad_input_names_layer_and_shapes(rng):
    layer = nn.LSTM(4, 5, num_layers=2)
    x = rb.Tensor(rng.standard_normal((3, 2, 4)).astype(np.float32))
    with pytest.raises(ValueError, match=r"LSTM: input has shape \(3, 2, 7\).*input_size=4"):
        layer(rb.Tensor(np.zeros((3, 2, 7), np.float32)))
    with pytest.raises(ValueError, match=r"LSTM: lengths must lie in \[1, 3\].*max 4"):
        layer(x, lengths=[4, 1])
    with pytest.raises(ValueError, match=r"LSTM: lengths must lie in \[1, 3\].*min 0"):
        layer(x, lengths=[0, 1])
    with pytest.raises(ValueError, match=r"LSTM: lengths must be 2 integers.*shape \(3,\)"):
        layer(x, lengths=[1, 2, 3])
    h0 = rb.Tensor(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(ValueError, match=r"LSTM: c0 has shape \(1, 2, 5\), expected \(2, 2, 5\)"):
        layer(x, (h0, rb.Tensor(np.zeros((1, 2, 5), np.float32))))
    with pytest.raises(ValueError, match=r"GRU: h0 has shape \(2, 3, 5\), expected \(2, 2, 5\)"):
        nn.GRU(4, 5, bidirectional=True)(x, rb.Tensor(np.zeros((2, 3, 5), np.float32)))
    with pytest.raises(TypeError, match=r"RNN: input has dtype float64"):
        nn.RNN(4, 5)(rb.Tensor(np.zeros((3, 2, 4))))
    with pytest.raises(ValueError, match=r"GRUCell: input has shape \(2, 3\)"):
        nn.GRUCell(4, 5)(rb.Tensor(np.zeros((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"LSTMCell: h0 has shape \(2, 4\), expected \(2, 5\)"):
        nn.LSTMCell(4, 5)(rb.Tensor(np.zeros((2, 4), np.float32)),
                          (rb.Tensor(np.zeros((2, 4), np.float32)), rb.Tensor(np.zeros((2, 5), np.float32))))
    with pytest.raises(ValueError, match="RNN: nonlinearity"):
        nn.RNN(4, 5, nonlinearity="sigmoid")


# ---- Embedding ---------------------------------------------------------------------------------------
def test_embedding_lookup_and_gradient(rng):
    rb.manual_seed(5)
    emb = nn.Embedding(6, 3, padding_idx=-1)
    assert emb.padding_idx == 5 and np.all(emb.weight.data[5] == 0)
    idx = np.array([[0, 5, 2], [2, 2, 1]])
    out = emb(idx)
    assert_close(out.data, emb.weight.data[idx], 0, 0, "lookup")
    g = rng.standard_normal((2, 3, 3)).astype(np.float32)
    (out * rb.Tensor(g)).sum().backward()
    expected = np.zeros((6, 3), np.float32)
    for (i, j), k in np.ndenumerate(idx):
        if k != 5:
            expected[k] += g[i, j]
    assert_close(emb.weight.grad.data, expected, 1e-6, 1e-6, "embedding grad (padding row zero)")
    with pytest.raises(IndexError, match=r"embedding: index out of range \[0, 6\)"):
        emb(np.array([6]))
    with pytest.raises(TypeError, match="embedding: indices must be integers"):
        F.embedding(np.array([0.5]), emb.weight)
    frozen = nn.Embedding.from_pretrained(np.eye(3, dtype=np.float32))
    assert not frozen.weight.requires_grad and frozen(np.array([1])).data.tolist() == [[0, 1, 0]]


# ---- torch comparisons (float32, both kernel paths) -----------------------------------------------------
def load_from_torch(ours, theirs):
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})


def torch_packed_run(torch, module, x, hx, lengths, batch_first):
    xt = torch.tensor(x, requires_grad=True)
    if lengths is None:
        out, state = module(xt, hx)
    else:
        packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first,
                                                         enforce_sorted=False)
        out, state = module(packed, hx)
        out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=batch_first, total_length=x.shape[1 if batch_first else 0])
    return xt, out, state


TORCH_CASES = [
    ("LSTM", {}, dict(num_layers=2, bidirectional=True, batch_first=True), True),
    ("LSTM", {}, dict(num_layers=1), False),
    ("GRU", {}, dict(num_layers=2, bidirectional=True), True),
    ("GRU", {}, dict(num_layers=1, batch_first=True), False),
    ("RNN", {"nonlinearity": "tanh"}, dict(num_layers=2, bidirectional=True), True),
    ("RNN", {"nonlinearity": "relu"}, dict(num_layers=1), True),
]


@pytest.mark.parametrize("name,cell_kwargs,layout,with_lengths", TORCH_CASES)
def test_layer_matches_torch(isa, rng, name, cell_kwargs, layout, with_lengths):
    torch = torch_or_skip()
    torch.manual_seed(0)
    I, H, T, B = 13, 24, 7, 5
    theirs = getattr(torch.nn, name)(I, H, **cell_kwargs, **layout)
    ours = getattr(nn, name)(I, H, **cell_kwargs, **layout)
    load_from_torch(ours, theirs)
    batch_first = layout.get("batch_first", False)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
    D = 2 if layout.get("bidirectional") else 1
    states = [rng.standard_normal((layout["num_layers"] * D, B, H)).astype(np.float32)
              for _ in range(2 if name == "LSTM" else 1)]
    lengths = np.array([7, 3, 5, 1, 6]) if with_lengths else None

    t_states = [torch.tensor(s, requires_grad=True) for s in states]
    xt, t_out, t_state = torch_packed_run(torch, theirs, x, tuple(t_states) if name == "LSTM" else t_states[0],
                                          lengths, batch_first)
    t_outputs = [t_out, *(t_state if isinstance(t_state, tuple) else (t_state,))]

    r_states = [rb.Tensor(s, requires_grad=True) for s in states]
    xr = rb.Tensor(x, requires_grad=True)
    r_outputs = flatten_outputs(ours(xr, tuple(r_states) if name == "LSTM" else r_states[0], lengths=lengths))

    weights = [rng.standard_normal(o.shape) for o in t_outputs]
    sum((o * torch.tensor(w, dtype=torch.float32)).sum() for o, w in zip(t_outputs, weights)).backward()
    weighted_sum(r_outputs, [w.astype(np.float32) for w in weights]).backward()

    def check(what, got, want):
        scale = np.abs(want).max() + 1e-6
        assert_close(got / scale, want / scale, 1e-4, 0, f"{name} {layout} {what}")

    for i, (r, t) in enumerate(zip(r_outputs, t_outputs)):
        check(f"output {i}", r.data, t.detach().numpy())
    check("dx", xr.grad.data, xt.grad.numpy())
    for i, (r, t) in enumerate(zip(r_states, t_states)):
        check(f"d state {i}", r.grad.data, t.grad.numpy())
    for (key, p), (tkey, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert key == tkey
        check(f"d {key}", p.grad.data, tp.grad.numpy())


@pytest.mark.parametrize("name", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("batch", [1, 6])
def test_cell_matches_torch(isa, rng, name, batch):
    torch = torch_or_skip()
    torch.manual_seed(1)
    theirs, ours = getattr(torch.nn, name)(11, 17), getattr(nn, name)(11, 17)
    load_from_torch(ours, theirs)
    x = rng.standard_normal((batch, 11)).astype(np.float32)
    states = [rng.standard_normal((batch, 17)).astype(np.float32) for _ in range(2 if name == "LSTMCell" else 1)]
    xt, t_states = torch.tensor(x, requires_grad=True), [torch.tensor(s, requires_grad=True) for s in states]
    xr, r_states = rb.Tensor(x, requires_grad=True), [rb.Tensor(s, requires_grad=True) for s in states]
    t_out = theirs(xt, tuple(t_states) if name == "LSTMCell" else t_states[0])
    r_out = ours(xr, tuple(r_states) if name == "LSTMCell" else r_states[0])
    t_out, r_out = (list(t_out), list(r_out)) if name == "LSTMCell" else ([t_out], [r_out])
    weights = [rng.standard_normal(o.shape).astype(np.float32) for o in t_out]
    sum((o * torch.tensor(w)).sum() for o, w in zip(t_out, weights)).backward()
    weighted_sum(r_out, weights).backward()
    for r, t in zip(r_out, t_out):
        assert_close(r.data, t.detach().numpy(), 1e-5, 1e-4, f"{name} output")
    assert_close(xr.grad.data, xt.grad.numpy(), 1e-5, 1e-4, f"{name} dx")
    for r, t in zip(r_states, t_states):
        assert_close(r.grad.data, t.grad.numpy(), 1e-5, 1e-4, f"{name} dstate")
    for (key, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad.data, tp.grad.numpy(), 1e-5, 1e-4, f"{name} d{key}")


def test_embedding_backward_keeps_its_own_indices():
    """A decoder that reuses its ids array after the forward does not change the gradient."""
    emb = nn.Embedding(4, 2)
    ids = np.array([1, 1, 3])
    out = emb(ids)
    ids[:] = 0
    out.sum().backward()
    assert emb.weight.grad.tolist() == [[0.0, 0.0], [2.0, 2.0], [0.0, 0.0], [1.0, 1.0]]


def test_embedding_matches_torch(rng):
    torch = torch_or_skip()
    theirs = torch.nn.Embedding(7, 4, padding_idx=2)
    ours = nn.Embedding(7, 4, padding_idx=2)
    load_from_torch(ours, theirs)
    idx = rng.integers(0, 7, size=(3, 5))
    g = rng.standard_normal((3, 5, 4)).astype(np.float32)
    (theirs(torch.tensor(idx)) * torch.tensor(g)).sum().backward()
    out = ours(idx)
    (out * rb.Tensor(g)).sum().backward()
    assert_close(out.data, theirs(torch.tensor(idx)).detach().numpy(), 0, 0, "embedding output")
    assert_close(ours.weight.grad.data, theirs.weight.grad.numpy(), 1e-6, 1e-6, "embedding grad")


# ---- GridRNN2d ----------------------------------------------------------------------------------------
def numpy_grid_rnn(x, w_ih, w_left, w_up, b):
    """Position-by-position float64 reference of GridRNN2d's equations; x (N, C, R, W)."""
    N, _, R, W = x.shape
    h = np.zeros((N, w_ih.shape[0], R, W))
    for i in range(R):
        for j in range(W):
            pre = x[:, :, i, j] @ w_ih.T + b
            if j > 0:
                pre += h[:, :, i, j - 1] @ w_left.T
            if i > 0:
                pre += h[:, :, i - 1, j] @ w_up.T
            h[:, :, i, j] = np.tanh(pre)
    return h


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 3), (3, 2, 5, 1)])
def test_grid_rnn_matches_numpy(isa, rng, shape):
    rb.manual_seed(6)
    layer = nn.GridRNN2d(shape[1], 11)
    x = rng.standard_normal(shape).astype(np.float32)
    expected = numpy_grid_rnn(x.astype(np.float64), *(p.data.astype(np.float64) for p in
                                                       (layer.weight_ih, layer.weight_left, layer.weight_up, layer.bias)))
    out = layer(rb.Tensor(x))
    assert out.shape == (shape[0], 11, shape[2], shape[3])
    assert_close(out.data, expected, 2e-6, 2e-5, f"grid rnn {shape}")
    assert rb._C.last_impl("grid_rnn_forward") == ("avx2_gemm" if isa != "scalar" else "scalar_ref")


def test_grid_rnn_gradcheck(rng):
    rb.manual_seed(7)
    layer = nn.GridRNN2d(2, 3, dtype=np.float64)
    x = rb.Tensor(rng.standard_normal((2, 2, 3, 4)), requires_grad=True)
    assert gradcheck(lambda x, *unused: layer(x), [x, *layer.parameters()], eps=1e-6, atol=1e-7, rtol=1e-5)


def test_grid_rnn_float32_gradients_match_reference(isa, rng):
    """The fast path's backward against the float64 reference on an awkward grid."""
    rb.manual_seed(8)
    layer64 = nn.GridRNN2d(3, 13, dtype=np.float64)
    layer32 = nn.GridRNN2d(3, 13)
    layer32.load_state_dict(layer64.state_dict())
    x = rng.standard_normal((3, 3, 5, 7))
    g = rng.standard_normal((3, 13, 5, 7))
    grads = []
    for layer, dtype in ((layer64, np.float64), (layer32, np.float32)):
        xt = rb.Tensor(x.astype(dtype), requires_grad=True)
        (layer(xt) * rb.Tensor(g.astype(dtype))).sum().backward()
        grads.append([xt.grad.data] + [p.grad.data for p in layer.parameters()])
    for want, got in zip(*grads):
        scale = np.abs(want).max()
        assert_close(got / scale, want / scale, 2e-5, 0, "grid rnn gradient")


def test_grid_rnn_bad_input():
    layer = nn.GridRNN2d(3, 4)
    with pytest.raises(ValueError, match=r"GridRNN2d: input has shape \(2, 5, 4, 4\)"):
        layer(rb.Tensor(np.zeros((2, 5, 4, 4), np.float32)))


@pytest.mark.parametrize("isa", ["avx2", "scalar"], indirect=True)
def test_relu_passes_the_gradient_at_nan_like_torch(isa):
    """torch's threshold_backward zeroes the gradient where the output is <= 0, so a NaN output passes it;
    `output > 0` dropped it (the element-wise relu and the recurrences' relu)."""
    x = rb.Tensor(np.array([np.nan, -1.0, 2.0], np.float32), requires_grad=True)
    rb.sum(F.relu(x)).backward()
    np.testing.assert_array_equal(x.grad.data, [1.0, 0.0, 1.0])
    cell = nn.RNNCell(2, 3, nonlinearity="relu")
    x = rb.Tensor(np.array([[np.nan, 1.0], [0.5, -1.0]], np.float32), requires_grad=True)
    rb.sum(cell(x)).backward()
    # row 0: every pre-activation is NaN and passes the gradient, dx = W_ih^T . 1
    assert_close(x.grad.data[0], cell.weight_ih.data.sum(axis=0), 1e-6, 1e-6, "dx of the NaN row")
    torch = torch_or_skip()
    theirs = torch.nn.RNNCell(2, 3, nonlinearity="relu")
    theirs.load_state_dict({k: torch.tensor(np.asarray(v.data)) for k, v in cell.state_dict().items()})
    tx = torch.tensor(x.data, requires_grad=True)
    theirs(tx).sum().backward()
    assert_close(x.grad.data, tx.grad.numpy(), 1e-6, 1e-5, "dx against torch")


def test_recurrent_backward_keeps_its_own_lengths_and_array_input():
    """lengths and an array input reused by the caller after the forward do not change the gradients."""
    x0 = np.linspace(-1, 1, 5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3)

    def grads(change_lengths, change_input, lengths_as_tensor=False):
        rb.manual_seed(0)
        gru = nn.GRU(3, 4)
        x, lengths = x0.copy(), np.array([5, 3], np.int64)
        out, _ = gru(x, None, lengths=rb.tensor(lengths) if lengths_as_tensor else lengths)
        if change_lengths:
            lengths[:] = 1
        if change_input:
            x[...] = 0
        out.sum().backward()
        return gru.weight_ih_l0.grad.numpy()

    clean = grads(False, False)
    assert_close(grads(True, False), clean)
    assert_close(grads(False, True), clean)
    rb.manual_seed(0)
    gru = nn.GRU(3, 4)
    lengths = rb.tensor(np.array([5, 3], np.int64))
    out, _ = gru(x0, None, lengths=lengths)
    with rb.no_grad():
        lengths.fill_(1)  # a Tensor's lengths are copied too (B ints)
    out.sum().backward()
    assert_close(gru.weight_ih_l0.grad.numpy(), clean)
