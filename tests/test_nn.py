"""nn: modules, containers, losses and initialisers; an MLP and a Maxout network against torch.nn."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import rosenblatt
import rosenblatt.nn.functional as F
from rosenblatt import nn
from rosenblatt.nn import init
from conftest import assert_close, torch_or_skip


def relative_error(actual, expected) -> float:
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    return float(np.linalg.norm(actual - expected) / max(np.linalg.norm(expected), 1e-30))


def mlp():
    return nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Linear(12, 4))


def torch_mlp(torch):
    tn = torch.nn
    return tn.Sequential(tn.Linear(10, 16), tn.ReLU(), tn.Linear(16, 12), tn.Tanh(), tn.Linear(12, 4))


# ---- a whole network against torch.nn ----------------------------------------------------------
def test_mlp_loss_and_gradients_equal_torch(isa):
    torch = torch_or_skip()
    torch.manual_seed(0)
    reference = torch_mlp(torch)
    model = mlp()
    model.load_state_dict({k: v.detach().numpy() for k, v in reference.state_dict().items()})
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 10)).astype(np.float32)
    y = rng.integers(0, 4, 32)

    loss = F.cross_entropy(model(rosenblatt.tensor(x)), rosenblatt.tensor(y))
    loss.backward()
    expected = torch.nn.functional.cross_entropy(reference(torch.tensor(x)), torch.tensor(y))
    expected.backward()

    assert relative_error(loss.item(), expected.item()) <= 1e-5
    theirs = dict(reference.named_parameters())
    assert [k for k, _ in model.named_parameters()] == list(theirs)
    for name, param in model.named_parameters():
        error = relative_error(param.grad.numpy(), theirs[name].grad.numpy())
        assert error <= 1e-5, f"{name}: relative gradient error {error:.2g}"


def test_maxout_network_equals_a_hand_built_torch_equivalent(isa):
    """Maxout(in, out, k) is Linear(in, out*k) followed by a max over groups of k consecutive outputs."""
    torch = torch_or_skip()
    torch.manual_seed(1)
    first, second, head = torch.nn.Linear(6, 5 * 3), torch.nn.Linear(5, 4 * 2), torch.nn.Linear(4, 3)

    def reference(x):
        h = first(x).view(-1, 5, 3).max(-1).values
        h = second(h).view(-1, 4, 2).max(-1).values
        return head(h)

    model = nn.Sequential(nn.Maxout(6, 5, pieces=3), nn.Maxout(5, 4, pieces=2), nn.Linear(4, 3))
    assert list(model.state_dict()) == ["0.linear.weight", "0.linear.bias", "1.linear.weight", "1.linear.bias",
                                        "2.weight", "2.bias"]
    torch_params = [first.weight, first.bias, second.weight, second.bias, head.weight, head.bias]
    model.load_state_dict({k: p.detach().numpy() for k, p in zip(model.state_dict(), torch_params)})
    rng = np.random.default_rng(1)
    x = rng.standard_normal((20, 6)).astype(np.float32)
    y = rng.integers(0, 3, 20)

    loss = F.cross_entropy(model(rosenblatt.tensor(x)), rosenblatt.tensor(y))
    loss.backward()
    expected = torch.nn.functional.cross_entropy(reference(torch.tensor(x)), torch.tensor(y))
    expected.backward()

    assert relative_error(loss.item(), expected.item()) <= 1e-5
    for (name, param), theirs in zip(model.named_parameters(), torch_params):
        error = relative_error(param.grad.numpy(), theirs.grad.numpy())
        assert error <= 1e-5, f"{name}: relative gradient error {error:.2g}"


def test_state_dict_keys_and_shapes_match_torch():
    torch = torch_or_skip()
    tn = torch.nn
    pairs = [
        (nn.Linear(3, 5), tn.Linear(3, 5)),
        (nn.Linear(3, 5, bias=False), tn.Linear(3, 5, bias=False)),
        (mlp(), torch_mlp(torch)),
        (nn.Sequential(nn.Sequential(nn.Linear(2, 3), nn.ReLU()), nn.Flatten(), nn.Dropout(), nn.Linear(3, 1)),
         tn.Sequential(tn.Sequential(tn.Linear(2, 3), tn.ReLU()), tn.Flatten(), tn.Dropout(), tn.Linear(3, 1))),
        (nn.Sequential(OrderedDict(fc=nn.Linear(2, 2), act=nn.LeakyReLU(), out=nn.Linear(2, 1))),
         tn.Sequential(OrderedDict(fc=tn.Linear(2, 2), act=tn.LeakyReLU(), out=tn.Linear(2, 1)))),
        (nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)]), tn.ModuleList([tn.Linear(2, 2), tn.Linear(2, 3)])),
        (nn.ModuleDict({"b": nn.Linear(1, 2), "a": nn.Linear(2, 1)}),
         tn.ModuleDict({"b": tn.Linear(1, 2), "a": tn.Linear(2, 1)})),
        (nn.CrossEntropyLoss(weight=rosenblatt.ones(3)), tn.CrossEntropyLoss(weight=torch.ones(3))),
        (nn.BCEWithLogitsLoss(pos_weight=rosenblatt.ones(3)), tn.BCEWithLogitsLoss(pos_weight=torch.ones(3))),
    ]
    for ours, theirs in pairs:
        assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == \
               [(k, tuple(v.shape)) for k, v in theirs.state_dict().items()], type(ours).__name__


@pytest.mark.parametrize("name,args", [
    ("ReLU", ()), ("Sigmoid", ()), ("Tanh", ()), ("LeakyReLU", ()), ("LeakyReLU", (0.2,)), ("Softmax", (1,)),
    ("LogSoftmax", (-1,)), ("Flatten", ()), ("Flatten", (0, 1)), ("Identity", (3, "ignored")), ("Softplus", ()),
    ("Hardtanh", (-0.5, 0.5)), ("ELU", ()),
])
def test_activation_and_shape_modules_equal_torch(name, args):
    torch = torch_or_skip()
    x = np.random.default_rng(2).standard_normal((4, 3, 2)).astype(np.float32)
    ours = getattr(nn, name)(*args)(rosenblatt.tensor(x)).numpy()
    theirs = getattr(torch.nn, name)(*args)(torch.tensor(x)).numpy()
    assert_close(ours, theirs, atol=1e-6, rtol=1e-6, what=name)


# ---- Linear ------------------------------------------------------------------------------------------
def test_linear_initialisation_follows_torch():
    """kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(in), 1/sqrt(in)) for the weight; the bias has the same bound."""
    rosenblatt.manual_seed(0)
    layer = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w, b = layer.weight.numpy(), layer.bias.numpy()
    assert w.shape == (300, 400) and b.shape == (300,) and w.dtype == np.float32
    assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound  # the std of U(-bound, bound)
    assert abs(w.mean()) < 0.01 * bound
    rosenblatt.manual_seed(0)
    assert np.array_equal(nn.Linear(400, 300).weight.numpy(), w)  # reproducible from the seed


def test_linear_forward_and_repr():
    layer = nn.Linear(3, 2, bias=False)
    assert layer.bias is None and len(list(layer.parameters())) == 1
    x = rosenblatt.randn(5, 7, 3)
    assert_close(layer(x).numpy(), x.numpy() @ layer.weight.numpy().T, atol=1e-6, rtol=1e-6, what="linear")
    assert repr(layer) == "Linear(in_features=3, out_features=2, bias=False)"
    assert repr(nn.Maxout(4, 3, 2)) == ("Maxout(in_features=4, out_features=3, pieces=2\n"
                                        "  (linear): Linear(in_features=4, out_features=6, bias=True)\n)")


def test_maxout_takes_the_max_of_consecutive_pieces():
    layer = nn.Maxout(2, 2, pieces=3)
    with rosenblatt.no_grad():
        layer.linear.weight.copy_(np.zeros((6, 2), np.float32))
        layer.linear.bias.copy_(np.array([1, 5, 2, -1, -3, -2], np.float32))
    assert layer(rosenblatt.ones(1, 2)).tolist() == [[5.0, -1.0]]


# ---- containers ------------------------------------------------------------------------------------
def test_sequential_indexing_len_iteration_and_slices():
    model = mlp()
    assert len(model) == 5 and isinstance(model[0], nn.Linear) and model[-1] is model[4]
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear", "Tanh", "Linear"]
    head = model[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is model[0]
    x = rosenblatt.randn(3, 10)
    assert_close(model[2:](model[:2](x)).numpy(), model(x).numpy(), atol=0, rtol=0, what="split sequential")
    model.append(nn.Sigmoid())
    assert len(model) == 6 and list(model.state_dict())[-1] == "4.bias"
    del model[1]
    assert [name for name, _ in model.named_children()] == ["0", "1", "2", "3", "4"]
    with pytest.raises(IndexError, match="Sequential"):
        model[10]
    with pytest.raises(TypeError, match="Sequential"):
        nn.Sequential(nn.ReLU(), "not a module")


def test_module_list_and_dict_register_their_parameters():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    layers.append(nn.Linear(2, 1))
    assert len(layers) == 4 and len(list(layers.parameters())) == 8 and layers[-1].out_features == 1
    heads = nn.ModuleDict({"a": nn.Linear(2, 3)})
    heads["b"] = nn.Linear(3, 1)
    assert list(heads) == ["a", "b"] and "b" in heads and list(heads.state_dict())[-1] == "b.bias"

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = layers
            self.heads = heads

    assert len(list(Net().parameters())) == 12


def test_train_and_eval_reach_every_submodule():
    model = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5)))
    model.eval()
    assert not model[1][0].training
    x = rosenblatt.randn(4, 2)
    assert model[1](x) is x  # dropout is the identity in eval mode
    model.train()
    assert model[1][0].training


# ---- dropout ------------------------------------------------------------------------------------------
def test_dropout_is_inverted_and_seeded():
    x = rosenblatt.ones(200, 500)
    rosenblatt.manual_seed(5)
    out = F.dropout(x, 0.3).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.7) < 0.01
    assert_close(out[kept], np.full(kept.sum(), 1 / 0.7), atol=0, rtol=1e-6, what="kept values")
    rosenblatt.manual_seed(5)
    assert np.array_equal(F.dropout(x, 0.3).numpy(), out)
    assert F.dropout(x, 0.3, training=False) is x and F.dropout(x, 0.0) is x
    assert not F.dropout(x, 1.0).numpy().any()


def test_dropout_gradient_uses_the_same_mask():
    x = rosenblatt.ones(50, 20, requires_grad=True)
    out = F.dropout(x, 0.5)
    out.sum().backward()
    assert_close(x.grad.numpy(), out.numpy(), atol=0, rtol=0, what="dropout grad")


# ---- losses ---------------------------------------------------------------------------------------------
LOSS_MODULES = [
    ("CrossEntropyLoss", {}, "classes"),
    ("CrossEntropyLoss", {"reduction": "sum", "label_smoothing": 0.1, "ignore_index": 1}, "classes"),
    ("CrossEntropyLoss", {"weight": [1.0, 2.0, 0.5, 1.0], "reduction": "none"}, "classes"),
    ("NLLLoss", {"weight": [1.0, 2.0, 0.5, 1.0]}, "log_probs"),
    ("MSELoss", {}, "same"),
    ("L1Loss", {"reduction": "sum"}, "same"),
    ("SmoothL1Loss", {"beta": 0.5}, "same"),
    ("HuberLoss", {"delta": 1.5, "reduction": "none"}, "same"),
    ("BCELoss", {}, "probabilities"),
    ("BCEWithLogitsLoss", {"pos_weight": [2.0, 1.0, 0.5, 3.0]}, "binary"),
    ("HingeEmbeddingLoss", {"margin": 0.7}, "signs"),
]


def _loss_inputs(kind, rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    if kind in ("classes", "log_probs"):
        target = rng.integers(0, 4, 6)
        if kind == "log_probs":
            x = x - np.log(np.exp(x).sum(1, keepdims=True))
        return x, target
    if kind == "probabilities":
        return 1 / (1 + np.exp(-x)), rng.uniform(0, 1, x.shape).astype(np.float32)
    if kind == "binary":
        return x, (rng.uniform(size=x.shape) > 0.5).astype(np.float32)
    if kind == "signs":
        return x, np.where(rng.uniform(size=x.shape) > 0.5, 1, -1).astype(np.float32)
    return x, rng.standard_normal(x.shape).astype(np.float32)


@pytest.mark.parametrize("name,options,kind", LOSS_MODULES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(LOSS_MODULES)])
def test_loss_modules_equal_torch(name, options, kind):
    torch = torch_or_skip()
    x, target = _loss_inputs(kind, np.random.default_rng(3))
    tensor_options = ("weight", "pos_weight")
    ours = getattr(nn, name)(**{k: rosenblatt.tensor(v) if k in tensor_options else v for k, v in options.items()})
    theirs = getattr(torch.nn, name)(**{k: torch.tensor(v) if k in tensor_options else v for k, v in options.items()})
    xo, xt = rosenblatt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo, lt = ours(xo, rosenblatt.tensor(target)), theirs(xt, torch.tensor(target))
    assert_close(lo.numpy(), lt.detach().numpy(), atol=1e-6, rtol=1e-5, what=f"{name} value")
    lo.sum().backward()
    lt.sum().backward()
    assert_close(xo.grad.numpy(), xt.grad.numpy(), atol=1e-6, rtol=1e-5, what=f"{name} gradient")


def test_perceptron_loss_counts_only_mistakes():
    scores = rosenblatt.tensor([2.0, -1.0, 0.5, -3.0], requires_grad=True)
    labels = rosenblatt.tensor([1.0, 1.0, -1.0, -1.0])
    loss = F.perceptron_loss(scores, labels)
    assert loss.item() == pytest.approx((1.0 + 0.5) / 4)
    loss.backward()
    assert scores.grad.tolist() == [0.0, -0.25, 0.25, 0.0]
    assert nn.PerceptronLoss(reduction="sum")(scores, labels).item() == pytest.approx(1.5)


def test_cross_entropy_with_every_target_ignored_is_nan_as_torch():
    torch = torch_or_skip()
    x = np.zeros((2, 3), np.float32)
    target = np.array([-100, -100])
    ours = F.cross_entropy(rosenblatt.tensor(x), rosenblatt.tensor(target)).item()
    theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(target)).item()
    assert math.isnan(ours) and math.isnan(theirs)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
@pytest.mark.parametrize("weighted", [False, True])
def test_every_target_ignored_gives_zero_gradients_not_nan(label_smoothing, weighted):
    """'mean' over no targets is 0/0 = NaN, but the ignored elements take no gradient (torch gives zeros):
    NaN gradients would poison the parameters on a batch that is all padding."""
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    target = np.array([[-100, -100], [-100, -100]])
    weight = np.array([0.5, 1.0, 2.0]) if weighted else None
    ours = rosenblatt.tensor(x, requires_grad=True)
    our_weight = None if weight is None else rosenblatt.tensor(weight)
    loss = F.cross_entropy(ours, rosenblatt.tensor(target), weight=our_weight, label_smoothing=label_smoothing)
    loss.backward()
    assert math.isnan(loss.item())
    assert ours.grad.tolist() == np.zeros_like(x).tolist()
    nll_input = rosenblatt.tensor(x, requires_grad=True)
    F.nll_loss(nll_input, rosenblatt.tensor(target)).backward()
    assert nll_input.grad.tolist() == np.zeros_like(x).tolist()
    torch = pytest.importorskip("torch")
    theirs = torch.tensor(x, requires_grad=True)
    torch.nn.functional.cross_entropy(theirs, torch.tensor(target), weight=None if weight is None else
                                      torch.tensor(weight), label_smoothing=label_smoothing).backward()
    assert theirs.grad.tolist() == ours.grad.tolist()


@pytest.mark.parametrize("fn,error,message", [
    (lambda x: F.cross_entropy(x, rosenblatt.tensor([0.0, 1.0, 1.0])), ValueError,
     r"^cross_entropy: probability targets .*\(3, 4\).*\(3,\)"),
    (lambda x: F.cross_entropy(x, rosenblatt.tensor([0, 1])), ValueError,
     r"^cross_entropy: input shape \(3, 4\) and target shape \(2,\)"),
    (lambda x: F.cross_entropy(x, rosenblatt.tensor([0, 1, 4])), IndexError, r"^cross_entropy: target 4"),
    (lambda x: F.cross_entropy(x, rosenblatt.tensor([0, 1, 2]), reduction="avg"), ValueError,
     r"^cross_entropy: reduction"),
    (lambda x: F.cross_entropy(x, rosenblatt.tensor([0, 1, 2]), weight=rosenblatt.ones(3)), ValueError,
     r"^cross_entropy: weight shape \(3,\)"),
    (lambda x: F.cross_entropy(x.long(), rosenblatt.tensor([0, 1, 2])), TypeError, r"^cross_entropy: input"),
    (lambda x: F.nll_loss(x, rosenblatt.tensor([0.0, 1.0, 2.0])), TypeError, r"^nll_loss: expected integer"),
    (lambda x: F.nll_loss(x, rosenblatt.tensor([[0, 1, 2]])), ValueError, r"^nll_loss: input shape \(3, 4\)"),
    (lambda x: F.mse_loss(x, rosenblatt.ones(4)), ValueError, r"^mse_loss: target shape \(4,\).*\(3, 4\)"),
    (lambda x: F.mse_loss(x, rosenblatt.ones(3, 4).long()), TypeError, r"^mse_loss: "),
    (lambda x: F.smooth_l1_loss(x, rosenblatt.ones(4)), ValueError, r"^smooth_l1_loss: target shape"),
    (lambda x: F.smooth_l1_loss(x, rosenblatt.ones(3, 4), beta=-1.0), ValueError, r"^smooth_l1_loss: beta"),
    (lambda x: F.huber_loss(x, rosenblatt.ones(3, 4), delta=float("nan")), ValueError, r"^huber_loss: "),
    (lambda x: F.huber_loss(x, rosenblatt.ones(3, 4), delta=0.0), ValueError, r"^huber_loss: delta must be positive"),
    (lambda x: F.smooth_l1_loss(x, rosenblatt.ones(3, 4), beta=None), TypeError,
     r"^smooth_l1_loss: beta must be a number, got NoneType \(input shape \(3, 4\)\)"),
    (lambda x: F.binary_cross_entropy(x, rosenblatt.ones(3, 4)), ValueError,
     r"^binary_cross_entropy: all elements of input \(shape \(3, 4\)\)"),
    (lambda x: F.binary_cross_entropy_with_logits(x, rosenblatt.ones(3, 3)), ValueError,
     r"^binary_cross_entropy_with_logits: target shape \(3, 3\)"),
    (lambda x: F.binary_cross_entropy_with_logits(x, rosenblatt.ones(3, 4), pos_weight=rosenblatt.ones(3)),
     ValueError, r"^binary_cross_entropy_with_logits: pos_weight shape \(3,\)"),
    (lambda x: F.hinge_embedding_loss(x, rosenblatt.ones(5)), ValueError, r"^hinge_embedding_loss: input shape"),
    (lambda x: F.perceptron_loss(x, rosenblatt.zeros(3, 4)), ValueError, r"^perceptron_loss: targets must be"),
    (lambda x: F.perceptron_loss(x, rosenblatt.ones(4)), ValueError, r"^perceptron_loss: scores shape \(3, 4\)"),
    (lambda x: nn.CrossEntropyLoss(reduction="mean_of_all"), ValueError, r"^CrossEntropyLoss: reduction"),
])
def test_loss_bad_input(fn, error, message):
    with pytest.raises(error, match=message):
        fn(rosenblatt.randn(3, 4) * 10)


# ---- init ---------------------------------------------------------------------------------------------
def test_calculate_gain_matches_torch():
    torch = torch_or_skip()
    for name, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert init.calculate_gain(name, param) == pytest.approx(torch.nn.init.calculate_gain(name, param))
    with pytest.raises(ValueError, match="calculate_gain"):
        init.calculate_gain("swish")


@pytest.mark.parametrize("fn,expected_std", [
    (lambda w: init.kaiming_uniform_(w, a=0, nonlinearity="relu"), math.sqrt(2 / (64 * 9))),
    (lambda w: init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"), math.sqrt(2 / (32 * 9))),
    (lambda w: init.kaiming_uniform_(w), math.sqrt(2 / 1.0001) / math.sqrt(64 * 9)),
    (lambda w: init.xavier_uniform_(w, gain=2.0), 2.0 * math.sqrt(2 / (64 * 9 + 32 * 9))),
    (lambda w: init.xavier_normal_(w), math.sqrt(2 / (64 * 9 + 32 * 9))),
    (lambda w: init.normal_(w, 0.0, 0.02), 0.02),
    (lambda w: init.uniform_(w, -0.1, 0.1), 0.1 / math.sqrt(3)),
    (lambda w: init.trunc_normal_(w, std=0.02, a=-0.04, b=0.04), 0.02 * 0.8796),  # std of N truncated at 2 sigma
])
def test_random_initialisers_have_torch_statistics(fn, expected_std):
    """On a (32, 64, 3, 3) conv weight: fan_in = 64*9, fan_out = 32*9, as torch computes them."""
    rosenblatt.manual_seed(0)
    weight = nn.Parameter(np.zeros((32, 64, 3, 3), np.float32))
    storage = weight.data
    assert fn(weight) is weight and weight.data is storage  # in place, returning the tensor
    assert abs(weight.numpy().std() - expected_std) < 0.02 * expected_std
    assert abs(weight.numpy().mean()) < 0.03 * expected_std


def test_uniform_initialisers_stay_inside_their_bound():
    w = rosenblatt.empty(50, 40)
    init.kaiming_uniform_(w, a=math.sqrt(5))
    assert np.abs(w.numpy()).max() <= 1 / math.sqrt(40)
    init.xavier_uniform_(w)
    assert np.abs(w.numpy()).max() <= math.sqrt(6 / 90)


@pytest.mark.parametrize("shape", [(6, 6), (4, 9), (9, 4), (3, 2, 2)])
def test_orthogonal_gives_orthonormal_rows_or_columns(shape):
    w = init.orthogonal_(rosenblatt.empty(*shape, dtype="float64"), gain=1.5)
    flat = w.numpy().reshape(shape[0], -1)
    gram = flat @ flat.T if flat.shape[0] <= flat.shape[1] else flat.T @ flat
    assert_close(gram, 2.25 * np.eye(gram.shape[0]), atol=1e-12, rtol=0, what="orthogonal")


def test_deterministic_initialisers():
    w = rosenblatt.empty(2, 3)
    assert init.eye_(w).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert init.constant_(w, 0.5).numpy().sum() == 3.0
    assert init.zeros_(w).numpy().sum() == 0 and init.ones_(w).numpy().sum() == 6
    dirac = init.dirac_(rosenblatt.empty(2, 2, 3, 3))
    assert dirac.numpy()[0, 0, 1, 1] == 1 and dirac.numpy()[1, 1, 1, 1] == 1 and dirac.numpy().sum() == 2


def _fcn_upsample_filt(size):
    """FCN's upsample_filt (surgery.py), the reference."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


@pytest.mark.parametrize("shape", [(3, 3, 4, 4), (2, 5, 3, 3), (4, 2, 16, 16)])
def test_bilinear_fills_the_fcn_filter_on_the_channel_diagonal(shape):
    w = init.bilinear_(rosenblatt.empty(*shape))
    values = w.numpy()
    for c in range(min(shape[:2])):
        assert_close(values[c, c], _fcn_upsample_filt(shape[2]), atol=1e-7, rtol=0, what=f"channel {c}")
    off_diagonal = values.copy()
    off_diagonal[np.arange(min(shape[:2])), np.arange(min(shape[:2]))] = 0
    assert not off_diagonal.any()


def test_bilinear_kernel_interpolates_linearly():
    """Stride-2 transposed convolution with the 4x4 kernel: each weight pair sums to 1 per output phase,
    so a constant image stays constant away from the border."""
    k = init.bilinear_(rosenblatt.empty(1, 1, 4, 4)).numpy()[0, 0]
    for phase_y in range(2):
        for phase_x in range(2):
            assert k[phase_y::2, phase_x::2].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("fn,message", [
    (lambda: init.kaiming_uniform_(rosenblatt.empty(5)), r"fan in and fan out .*\(5,\)"),
    (lambda: init.kaiming_normal_(rosenblatt.empty(3, 3), mode="fan_avg"), "mode"),
    (lambda: init.eye_(rosenblatt.empty(2, 2, 2)), r"^eye_: .*\(2, 2, 2\)"),
    (lambda: init.bilinear_(rosenblatt.empty(2, 2)), r"^bilinear_: .*\(2, 2\)"),
    (lambda: init.orthogonal_(rosenblatt.empty(3)), r"^orthogonal_: .*\(3,\)"),
    (lambda: init.uniform_(np.zeros(3)), r"^init: expected a Tensor"),
])
def test_init_bad_input(fn, message):
    with pytest.raises((ValueError, TypeError), match=message):
        fn()


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # torch's, for its own layer
@pytest.mark.parametrize("in_features,out_features,batch", [(3, 6, 0), (3, 0, 4), (0, 6, 4)])
def test_linear_with_an_empty_dimension_matches_torch(in_features, out_features, batch):
    # Each failed: "gemm: out ... has elements that share memory" or NumPy's reshape(-1, 0).
    rosenblatt.manual_seed(0)
    layer = nn.Linear(in_features, out_features)
    x = rosenblatt.Tensor(np.ones((batch, in_features), np.float32), requires_grad=True)
    y = layer(x)
    assert y.shape == (batch, out_features)
    y.sum().backward()
    assert x.grad.shape == x.shape and layer.weight.grad.shape == layer.weight.shape
    torch = pytest.importorskip("torch")
    theirs = torch.nn.Linear(in_features, out_features)
    theirs.load_state_dict({k: torch.tensor(np.asarray(v.data)) for k, v in layer.state_dict().items()})
    tx = torch.ones((batch, in_features), requires_grad=True)
    ty = theirs(tx)
    ty.sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(layer.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad.data, theirs.bias.grad.numpy(), rtol=1e-6)
    assert rosenblatt.matmul(rosenblatt.zeros(5, 2, 0), rosenblatt.zeros(0, 4)).shape == (5, 2, 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beta", [1e-300, 1e-40, 1e-8, 1.0])
def test_smooth_l1_loss_with_a_tiny_beta_equals_torch(dtype, beta):
    # 1 / beta overflowed float32 (NaN loss and gradients); a beta that is 0 in float32 is l1_loss in torch.
    torch = torch_or_skip()
    x = np.array([-3.0, -1e-20, 0.0, 1e-30, 0.5, 2.0], dtype=dtype)
    ours, theirs = rosenblatt.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    lo = F.smooth_l1_loss(ours, rosenblatt.zeros(6, dtype=dtype), beta=beta, reduction="sum")
    lt = torch.nn.functional.smooth_l1_loss(theirs, torch.zeros(6, dtype=theirs.dtype), beta=beta, reduction="sum")
    lo.backward()
    lt.backward()
    assert_close(lo.numpy(), lt.detach().numpy(), atol=1e-12, rtol=1e-6, what="smooth_l1 value")
    assert_close(ours.grad.numpy(), theirs.grad.numpy(), atol=1e-12, rtol=1e-6, what="smooth_l1 grad")


def test_losses_keep_their_own_targets_and_weights_for_backward():
    """Arrays a caller reuses after the forward (a target or weight buffer) do not change the gradient;
    a Tensor weight changed in place before backward is refused, as torch's version counters do."""
    x0 = np.array([[0.2, 0.7], [0.9, 0.4]], np.float32)

    def grad_after(loss_fn, array, change):
        x = rosenblatt.tensor(x0, requires_grad=True)
        loss = loss_fn(x)
        change(array)
        loss.backward()
        return x.grad.numpy()

    def zero(a):
        a[...] = 0

    target, weight = np.array([[1, 0], [0, 1]], np.float32), np.array([[1, 2], [3, 4]], np.float32)
    cases = [
        (lambda x: F.binary_cross_entropy(x, target), target),
        (lambda x: F.binary_cross_entropy(x, target, weight=weight), weight),
        (lambda x: F.binary_cross_entropy_with_logits(x, target, weight=weight), weight),
        (lambda x: F.perceptron_loss(x - 0.5, target * 2 - 1), target),
        (lambda x: F.cross_entropy(x, np.array([0, 1]), weight=weight[0], label_smoothing=0.3), weight),
        (lambda x: F.cross_entropy(x, target), target),  # class-probability targets
    ]
    for loss_fn, array in cases:
        saved = array.copy()
        clean = grad_after(loss_fn, array, lambda a: None)
        assert_close(grad_after(loss_fn, array, zero), clean)
        array[...] = saved
    weight_tensor = rosenblatt.tensor(weight)
    loss = F.binary_cross_entropy(rosenblatt.tensor(x0, requires_grad=True), target, weight=weight_tensor)
    with rosenblatt.no_grad():
        weight_tensor.fill_(0.0)
    with pytest.raises(RuntimeError, match="BinaryCrossEntropyBackward"):
        loss.backward()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("slope", [0.01, 0.2, 1.0, 1e-30, 0.0, 2.0, -0.5])
def test_leaky_relu_is_exact_on_extremes(dtype, slope):
    """The fast form for slopes in (0, 1] (max(x, slope x), a multiplier chosen by bits) and np.where
    for the others give torch's values and gradients bit for bit: signed zeros, infinities, NaN, subnormals."""
    values = np.array([0.0, -0.0, 1.5, -2.5, np.inf, -np.inf, np.nan, 1e-40, -1e-40, 3e38, -3e38], dtype)
    grad = np.array([np.inf, np.nan, -0.0, 0.0, 1.0, -2.0, 3.0, 0.5, -0.5, 7.0, -7.0], dtype)
    x = rosenblatt.tensor(values, requires_grad=True)
    with np.errstate(invalid="ignore", over="ignore"):
        y = F.leaky_relu(x, slope)
        y.backward(rosenblatt.tensor(grad))
        expected_y = np.where(values > 0, values, values * dtype(slope))
        expected_grad = np.where(values > 0, grad, grad * dtype(slope))
    for actual, expected in ((y.detach().numpy(), expected_y), (x.grad.numpy(), expected_grad)):
        assert actual.dtype == dtype
        assert np.array_equal(actual, expected, equal_nan=True) and np.array_equal(np.signbit(actual),
                                                                                     np.signbit(expected))
    try:
        import torch
    except ImportError:
        return
    tx = torch.tensor(values, requires_grad=True)
    torch.nn.functional.leaky_relu(tx, slope).backward(torch.tensor(grad))
    assert np.array_equal(x.grad.numpy(), tx.grad.numpy(), equal_nan=True)
    assert np.array_equal(y.detach().numpy(), torch.nn.functional.leaky_relu(torch.tensor(values), slope).numpy(),
                          equal_nan=True)


def test_nll_ignored_positions_give_zero_where_class_zero_is_impossible():
    """An ignored target reads no log-probability: a -inf at class 0 (a masked padding class, say) made
    the CPU's loss NaN (0 * -inf) where torch gives +0 and a finite mean."""
    with np.errstate(divide="ignore"):
        log_probs = np.log(np.array([[0.0, 0.5, 0.5], [0.2, 0.3, 0.5]], np.float32))
    target = np.array([0, 2])
    x = rosenblatt.tensor(log_probs, requires_grad=True)
    losses = F.nll_loss(x, target, ignore_index=0, reduction="none").detach().numpy()
    assert losses.tolist() == [0.0, pytest.approx(-math.log(0.5))] and not np.signbit(losses[0])
    mean = F.nll_loss(x, target, ignore_index=0)
    mean.backward()
    assert mean.item() == pytest.approx(-math.log(0.5))
    assert x.grad.numpy().tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, -1.0]]
