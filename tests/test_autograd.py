"""Every differentiable op: finite-difference gradcheck in float64, and (when torch is importable)
forward values and gradients against torch on the same inputs.

Each case is written once as fn(lib, F, *inputs), where (lib, F) is (rosenblatt, rosenblatt.nn.functional)
or (torch, torch.nn.functional): the two libraries share names and signatures, so one table drives
both checks.
"""
from dataclasses import dataclass, field

import numpy as np
import pytest

import rosenblatt
from rosenblatt import _C
import rosenblatt.nn.functional as RF
from rosenblatt.autograd import gradcheck
from conftest import assert_close, torch_or_skip


@dataclass
class Case:
    name: str
    fn: object  # fn(lib, F, *inputs) -> tensor
    shapes: list  # one shape per differentiable input
    domain: str = "normal"  # "normal", "positive" (>= 0.5) or "unit" (in [0.1, 0.9])
    torch: bool = True  # False where torch has no equal (random masks)
    consts: dict = field(default_factory=dict)


def targets(lib, values, dtype=None):
    """A constant tensor (class targets, masks, indices) in either library."""
    array = np.asarray(values)
    if dtype is not None:
        array = array.astype(dtype)
    return lib.tensor(array)


CLASS_T = np.array([2, 0, 4, 4, 1, 3])
IGNORED_T = np.array([2, -100, 4, 4, -100, 3])
SPATIAL_T = np.array([[[0, 2, 1], [1, 1, -100]], [[2, 2, 0], [0, 1, 2]]])  # (N=2, d1=2, d2=3), C=3
CLASS_W = np.array([0.5, 1.0, 2.0, 0.25, 1.5])
SIGNS = np.array([[1, -1, 1], [-1, -1, 1], [1, 1, -1], [-1, 1, 1]], dtype=np.float64)
MASK = np.array([[True, False, True, True], [False, False, True, False], [True, True, True, False]])

CASES = [
    # arithmetic with broadcasting, scalars on both sides, and reuse of one input
    Case("add_broadcast", lambda lib, F, a, b: a + b, [(3, 4), (4,)]),
    Case("add_broadcast_both", lambda lib, F, a, b: a + b, [(2, 1, 3), (4, 1)]),
    Case("sub_broadcast", lambda lib, F, a, b: a - b, [(3, 1), (1, 5)]),
    Case("mul_broadcast", lambda lib, F, a, b: a * b, [(2, 3, 4), (3, 1)]),
    Case("div_broadcast", lambda lib, F, a, b: a / b, [(3, 4), (4,)], domain="positive"),
    Case("scalar_reflected", lambda lib, F, a: (2.0 - a) * 3.0 + 1.0 / (a + 5.0) - a / 4.0, [(3, 4)], "positive"),
    Case("zero_dim_operand", lambda lib, F, a, b: a * b + b, [(3, 2), ()]),
    Case("neg", lambda lib, F, a: -a, [(5,)]),
    Case("reuse_accumulates", lambda lib, F, a: a * a + a.exp() * a - a.sum(), [(3, 3)]),
    Case("pow_scalar", lambda lib, F, a: a ** 3 + a ** 2, [(3, 4)]),
    Case("pow_fractional", lambda lib, F, a: a ** 0.5 + a ** -1.5, [(3, 4)], "positive"),
    Case("pow_tensor", lambda lib, F, a, b: lib.pow(a, b), [(3, 4), (4,)], "positive"),
    Case("rpow", lambda lib, F, a: 2.0 ** a, [(6,)]),
    Case("maximum", lambda lib, F, a, b: lib.maximum(a, b), [(3, 4), (4,)]),
    Case("minimum", lambda lib, F, a, b: lib.minimum(a, b), [(3, 4), (3, 1)]),
    # reductions
    Case("sum_all", lambda lib, F, a: a.sum(), [(3, 4)]),
    Case("sum_dims", lambda lib, F, a: a.sum((0, 2)), [(2, 3, 4)]),
    Case("sum_keepdim", lambda lib, F, a: a.sum(-1, keepdim=True), [(2, 3, 4)]),
    Case("mean_all", lambda lib, F, a: a.mean(), [(3, 4)]),
    Case("mean_dim", lambda lib, F, a: a.mean(1), [(2, 3, 4)]),
    Case("mean_keepdim", lambda lib, F, a: a.mean((0, 1), keepdim=True), [(2, 3, 4)]),
    Case("max_all", lambda lib, F, a: a.max(), [(3, 4)]),
    Case("min_all", lambda lib, F, a: a.min(), [(3, 4)]),
    Case("max_dim", lambda lib, F, a: a.max(1).values, [(3, 4, 2)]),
    Case("max_dim_keepdim", lambda lib, F, a: lib.max(a, 0, keepdim=True)[0], [(3, 4)]),
    Case("min_dim", lambda lib, F, a: a.min(-1).values, [(3, 5)]),
    Case("amax", lambda lib, F, a: lib.amax(a, (0, 2)), [(3, 4, 2)]),
    Case("empty_dim_list_reduces_all", lambda lib, F, a: a.sum(()) + a.mean([]) + a.sum((), keepdim=True), [(2, 3)]),
    Case("reductions_of_a_0d_tensor_along_dim", lambda lib, F, a: a.sum(0) * a.mean(-1, keepdim=True)
         + lib.logsumexp(a, 0) * a.flip(0) + lib.amax(a, -1), [()]),
    Case("var", lambda lib, F, a: a.var(1), [(3, 5)]),
    Case("std_biased", lambda lib, F, a: a.std(0, unbiased=False, keepdim=True), [(4, 3)]),
    Case("logsumexp", lambda lib, F, a: lib.logsumexp(a * 30, 1), [(3, 5)]),
    # shapes
    Case("reshape", lambda lib, F, a: a.reshape(4, -1) * lib.arange(4.0).reshape(4, 1), [(2, 3, 2)]),
    Case("view", lambda lib, F, a: a.view(-1), [(2, 3)]),
    Case("flatten", lambda lib, F, a: lib.flatten(a, 1) ** 2, [(2, 3, 2)]),
    Case("squeeze_unsqueeze", lambda lib, F, a: a.squeeze(1).unsqueeze(0).unsqueeze(-1) ** 2, [(3, 1, 2)]),
    Case("squeeze_all", lambda lib, F, a: a.squeeze() ** 2, [(1, 3, 1)]),
    Case("transpose", lambda lib, F, a: a.transpose(0, 2) * lib.arange(8.0).reshape(4, 1, 2), [(2, 3, 4)]),
    Case("permute", lambda lib, F, a: a.permute(2, 0, 1) ** 2, [(2, 3, 4)]),
    Case("T", lambda lib, F, a: a.T @ a, [(3, 4)]),
    Case("expand", lambda lib, F, a: a.expand(2, 3, 4) * lib.arange(24.0).reshape(2, 3, 4), [(3, 1)]),
    # indexing and slicing
    Case("index_int", lambda lib, F, a: a[1] ** 2, [(3, 4)]),
    Case("index_to_scalars", lambda lib, F, a: a[1, 2] * a[-1, 0] * 2.0, [(3, 4)]),  # 0-d products: NumPy scalars
    Case("index_0d_bool_tensor", lambda lib, F, a: a[targets(lib, True)] ** 2 + a[targets(lib, False)].sum(), [(3, 4)]),
    Case("index_slices", lambda lib, F, a: a[1:, ::2] ** 2, [(4, 5)]),
    Case("index_negative_step",  # torch has no negative steps: flip is its equal
         lambda lib, F, a: (a[::-1] if lib is rosenblatt else a.flip(0))[:, 1:-1] * lib.arange(6.0).reshape(2, 3),
         [(2, 5)]),
    Case("index_none_ellipsis", lambda lib, F, a: a[None, ..., 1] ** 2, [(2, 3, 4)]),
    Case("index_int_array_repeats", lambda lib, F, a: a[targets(lib, [0, 2, 0, 0])] ** 2, [(3, 4)]),
    Case("index_two_arrays_repeats", lambda lib, F, a: a[targets(lib, [0, 1, 0]), targets(lib, [2, 2, 2])] ** 2,
         [(2, 4)]),
    Case("index_array_with_slice", lambda lib, F, a: a[:, targets(lib, [3, 0, 3])] ** 2, [(2, 4)]),
    Case("index_bool_mask", lambda lib, F, a: a[targets(lib, MASK)] ** 2, [(3, 4)]),
    Case("index_bool_rows", lambda lib, F, a: a[targets(lib, [True, False, True])] ** 2, [(3, 4)]),
    Case("index_select_repeats", lambda lib, F, a: lib.index_select(a, 1, targets(lib, [2, 0, 2, 3])) ** 2,
         [(2, 4, 3)]),
    Case("index_select_negative_dim", lambda lib, F, a: a.index_select(-1, targets(lib, [1])) ** 2, [(2, 3)]),
    Case("gather_repeats", lambda lib, F, a: a.gather(1, targets(lib, [[0, 0, 2], [1, 1, 1]])) ** 2, [(2, 3)]),
    # an index smaller than the input outside dim reads only the part it covers (NumPy would broadcast it)
    Case("gather_smaller_index", lambda lib, F, a: a.gather(1, targets(lib, [[0, 3]])) ** 2
         + a.gather(0, targets(lib, [[2], [0]])).sum(), [(3, 4)]),
    Case("masked_fill", lambda lib, F, a: a.masked_fill(targets(lib, MASK), 2.0) ** 2, [(3, 4)]),
    Case("clone_contiguous", lambda lib, F, a: a.T.contiguous().clone() ** 2, [(3, 4)]),
    Case("unflatten", lambda lib, F, a: a.unflatten(1, (2, 3)) * lib.arange(12.0).reshape(2, 2, 3), [(2, 6)]),
    Case("amin", lambda lib, F, a: lib.amin(a, 1, keepdim=True), [(3, 4)]),
    Case("clamp_tensor_bounds", lambda lib, F, a, lo, hi: lib.clamp(a, lo - 1, hi + 1), [(3, 4), (4,), (3, 1)]),
    # joining
    Case("cat", lambda lib, F, a, b: lib.cat([a, b, a], 1) ** 2, [(2, 3), (2, 1)]),
    Case("stack", lambda lib, F, a, b: lib.stack([a, b, a], -1) ** 2, [(2, 3), (2, 3)]),
    Case("chunk", lambda lib, F, a: lib.chunk(a, 3, 1)[1] ** 2 + lib.chunk(a, 3, 1)[2].sum(), [(2, 5)]),
    Case("split", lambda lib, F, a: lib.split(a, [1, 3], 1)[1] ** 2 + lib.split(a, 2, 1)[0].sum(), [(2, 4)]),
    Case("unbind", lambda lib, F, a: lib.unbind(a, 1)[2] * lib.unbind(a, 1)[0], [(2, 3)]),
    Case("flip", lambda lib, F, a: lib.flip(a, (0, 2)) * lib.arange(24.0).reshape(2, 3, 4), [(2, 3, 4)]),
    *[Case(f"pad_{mode}", (lambda mode: lambda lib, F, a: F.pad(a, (2, 1, 1, 2), mode=mode) ** 2)(mode),
           [(2, 3, 4)]) for mode in ("constant", "reflect", "replicate", "circular")],
    Case("pad_value_last_dim", lambda lib, F, a: F.pad(a, (0, 3), value=1.5) ** 2, [(2, 3)]),
    Case("where", lambda lib, F, a, b: lib.where(targets(lib, MASK), a, b), [(3, 4), (4,)]),
    Case("where_scalar", lambda lib, F, a: lib.where(a > 0, a, 0.5 * a), [(3, 4)]),
    # elementwise functions and activations
    Case("exp", lambda lib, F, a: lib.exp(a), [(3, 4)]),
    Case("log", lambda lib, F, a: lib.log(a), [(3, 4)], "positive"),
    Case("log1p", lambda lib, F, a: lib.log1p(a), [(3, 4)], "positive"),
    Case("sqrt", lambda lib, F, a: lib.sqrt(a), [(3, 4)], "positive"),
    Case("abs", lambda lib, F, a: lib.abs(a), [(3, 4)]),
    Case("clamp", lambda lib, F, a: lib.clamp(a, -0.5, 0.7), [(4, 5)]),
    Case("clamp_min_only", lambda lib, F, a: a.clamp(min=0.1), [(4, 5)]),
    Case("sin_cos", lambda lib, F, a: lib.sin(a) * lib.cos(a), [(4,)]),
    Case("sigmoid", lambda lib, F, a: lib.sigmoid(a * 10), [(3, 4)]),
    Case("tanh", lambda lib, F, a: lib.tanh(a), [(3, 4)]),
    Case("relu", lambda lib, F, a: F.relu(a), [(3, 4)]),
    Case("leaky_relu", lambda lib, F, a: F.leaky_relu(a, 0.2), [(3, 4)]),
    Case("leaky_relu_default", lambda lib, F, a: F.leaky_relu(a), [(3, 4)]),
    Case("softplus", lambda lib, F, a: F.softplus(a * 10), [(3, 4)]),
    Case("elu", lambda lib, F, a: F.elu(a, 0.7), [(3, 4)]),
    Case("hardtanh", lambda lib, F, a: F.hardtanh(a, -0.5, 0.8), [(3, 4)]),
    Case("normalize", lambda lib, F, a: F.normalize(a, dim=1), [(3, 4)]),
    Case("normalize_p", lambda lib, F, a: F.normalize(a, 3, 0) + F.normalize(a, 1, -1) + F.normalize(a, np.inf, 1),
         [(3, 4)]),
    Case("expm1", lambda lib, F, a: lib.expm1(a), [(3, 4)]),
    Case("softmax", lambda lib, F, a: F.softmax(a, 1), [(3, 4)]),
    Case("softmax_dim0_3d", lambda lib, F, a: F.softmax(a * 50, 0), [(3, 2, 2)]),
    Case("log_softmax", lambda lib, F, a: F.log_softmax(a, -1), [(3, 4)]),
    Case("softmax_over_an_empty_dim", lambda lib, F, a: F.softmax(a, 0) + F.log_softmax(a, -2), [(0, 3)]),
    Case("log_softmax_large", lambda lib, F, a: F.log_softmax(a * 1000, 1), [(2, 3, 2)]),
    # matrix products in every torch form
    Case("matmul_1d_1d", lambda lib, F, a, b: a @ b, [(5,), (5,)]),
    Case("matmul_1d_2d", lambda lib, F, a, b: a @ b, [(4,), (4, 3)]),
    Case("matmul_2d_1d", lambda lib, F, a, b: a @ b, [(3, 4), (4,)]),
    Case("matmul_2d_2d", lambda lib, F, a, b: a @ b, [(3, 4), (4, 5)]),
    Case("matmul_transposed_views", lambda lib, F, a, b: a.T @ b.T, [(4, 3), (5, 4)]),
    Case("matmul_3d_2d", lambda lib, F, a, b: a @ b, [(2, 3, 4), (4, 5)]),
    Case("matmul_2d_3d", lambda lib, F, a, b: a @ b, [(3, 4), (2, 4, 5)]),
    Case("matmul_batched", lambda lib, F, a, b: lib.matmul(a, b), [(2, 3, 4), (2, 4, 5)]),
    Case("matmul_batch_broadcast", lambda lib, F, a, b: a @ b, [(2, 1, 3, 4), (3, 4, 2)]),
    Case("matmul_1d_3d", lambda lib, F, a, b: a @ b, [(4,), (2, 4, 3)]),
    Case("matmul_3d_1d", lambda lib, F, a, b: a @ b, [(2, 3, 4), (4,)]),
    Case("bmm_mm", lambda lib, F, a, b, c: lib.bmm(a, b).sum(0) + lib.mm(c, c.T), [(2, 3, 4), (2, 4, 3), (3, 2)]),
    Case("matmul_same_operand", lambda lib, F, a: a @ a, [(4, 4)]),
    Case("linear", lambda lib, F, x, w, b: F.linear(x, w, b), [(5, 4), (3, 4), (3,)]),
    Case("linear_no_bias_3d", lambda lib, F, x, w: F.linear(x, w), [(2, 5, 4), (3, 4)]),
    Case("linear_1d_input", lambda lib, F, x, w, b: F.linear(x, w, b), [(4,), (3, 4), (3,)]),
    # layers built from ops
    Case("maxout", lambda lib, F, x: RF.maxout(x, 3) if lib is rosenblatt else x.view(4, 2, 3).max(-1).values,
         [(4, 6)]),
    Case("dropout", lambda lib, F, x: _seeded_dropout(x), [(20, 10)], torch=False),
    # losses, every reduction and option
    *[Case(f"cross_entropy_{r}", (lambda r: lambda lib, F, x: F.cross_entropy(x, targets(lib, CLASS_T),
                                                                                reduction=r))(r), [(6, 5)])
      for r in ("mean", "sum", "none")],
    *[Case(f"cross_entropy_weight_ignore_{r}", (lambda r: lambda lib, F, x: F.cross_entropy(
        x, targets(lib, IGNORED_T), weight=targets(lib, CLASS_W), reduction=r))(r), [(6, 5)])
      for r in ("mean", "sum", "none")],
    *[Case(f"cross_entropy_smoothing_{r}", (lambda r: lambda lib, F, x: F.cross_entropy(
        x, targets(lib, IGNORED_T), weight=targets(lib, CLASS_W), reduction=r, label_smoothing=0.2))(r), [(6, 5)])
      for r in ("mean", "sum", "none")],
    Case("cross_entropy_smoothing_no_weight", lambda lib, F, x: F.cross_entropy(
        x, targets(lib, IGNORED_T), label_smoothing=0.3), [(6, 5)]),
    Case("cross_entropy_custom_ignore_index", lambda lib, F, x: F.cross_entropy(
        x, targets(lib, CLASS_T), ignore_index=4), [(6, 5)]),
    Case("cross_entropy_spatial", lambda lib, F, x: F.cross_entropy(
        x, targets(lib, SPATIAL_T), weight=targets(lib, CLASS_W[:3]), label_smoothing=0.1), [(2, 3, 2, 3)]),
    Case("cross_entropy_unbatched", lambda lib, F, x: F.cross_entropy(x, targets(lib, 3)), [(5,)]),
    Case("cross_entropy_probabilities", lambda lib, F, x, t: F.cross_entropy(
        x, F.softmax(t, 1), weight=targets(lib, CLASS_W), label_smoothing=0.1), [(6, 5), (6, 5)]),
    *[Case(f"nll_loss_{r}", (lambda r: lambda lib, F, x: F.nll_loss(
        F.log_softmax(x, 1), targets(lib, IGNORED_T), weight=targets(lib, CLASS_W), reduction=r))(r), [(6, 5)])
      for r in ("mean", "sum", "none")],
    *[Case(f"mse_loss_{r}", (lambda r: lambda lib, F, x, t: F.mse_loss(x, t, reduction=r))(r), [(3, 4), (3, 4)])
      for r in ("mean", "sum", "none")],
    *[Case(f"l1_loss_{r}", (lambda r: lambda lib, F, x, t: F.l1_loss(x, t, reduction=r))(r), [(3, 4), (3, 4)])
      for r in ("mean", "sum", "none")],
    *[Case(f"smooth_l1_loss_{r}_beta_{beta}", (lambda r, beta: lambda lib, F, x, t: F.smooth_l1_loss(
        x, t, reduction=r, beta=beta))(r, beta), [(3, 4), (3, 4)])
      for r, beta in (("mean", 1.0), ("sum", 0.5), ("none", 2.0), ("mean", 0.0))],
    *[Case(f"huber_loss_{r}_delta_{delta}", (lambda r, delta: lambda lib, F, x, t: F.huber_loss(
        x, t, reduction=r, delta=delta))(r, delta), [(3, 4), (3, 4)])
      for r, delta in (("mean", 1.0), ("sum", 0.7), ("none", 1.5))],
    *[Case(f"binary_cross_entropy_{r}", (lambda r: lambda lib, F, x, t: F.binary_cross_entropy(
        x, t, weight=targets(lib, [0.5, 2.0, 1.0]), reduction=r))(r), [(4, 3), (4, 3)], "unit")
      for r in ("mean", "sum", "none")],
    *[Case(f"bce_with_logits_{r}", (lambda r: lambda lib, F, x, t: F.binary_cross_entropy_with_logits(
        x * 5, lib.sigmoid(t), weight=targets(lib, [0.5, 2.0, 1.0]), pos_weight=targets(lib, [3.0, 0.5, 1.0]),
        reduction=r))(r), [(4, 3), (4, 3)]) for r in ("mean", "sum", "none")],
    Case("bce_with_logits_plain", lambda lib, F, x: F.binary_cross_entropy_with_logits(
        x, targets(lib, (SIGNS > 0).astype(np.float64))), [(4, 3)]),
    *[Case(f"hinge_embedding_{r}", (lambda r: lambda lib, F, x: F.hinge_embedding_loss(
        x, targets(lib, SIGNS), margin=0.5, reduction=r))(r), [(4, 3)]) for r in ("mean", "sum", "none")],
    *[Case(f"perceptron_{r}", (lambda r: lambda lib, F, x: RF.perceptron_loss(x, targets(lib, SIGNS), reduction=r)
                               if lib is rosenblatt else _torch_perceptron(lib, x, targets(lib, SIGNS), r))(r),
           [(4, 3)]) for r in ("mean", "sum", "none")],
]


def _seeded_dropout(x):
    rosenblatt.manual_seed(7)  # the same mask on every evaluation of the finite differences
    return RF.dropout(x, 0.3)


def _torch_perceptron(torch, scores, signs, reduction):
    loss = torch.relu(-signs * scores)
    return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]


def make_inputs(case, seed=0):
    rng = np.random.default_rng(seed)
    arrays = []
    for shape in case.shapes:
        if case.domain == "positive":
            arrays.append(np.abs(rng.standard_normal(shape)) + 0.5)
        elif case.domain == "unit":
            arrays.append(rng.uniform(0.1, 0.9, shape))
        else:
            arrays.append(rng.standard_normal(shape))
    return arrays


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_gradcheck(case):
    inputs = [rosenblatt.tensor(a, requires_grad=True) for a in make_inputs(case)]
    assert gradcheck(lambda *ts: case.fn(rosenblatt, RF, *ts), inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("case", [c for c in CASES if c.torch], ids=lambda c: c.name)
def test_against_torch(case, isa):
    """Forward and every input gradient equal torch's on the same float64 data (both kernel paths)."""
    torch = pytest.importorskip("torch")
    arrays = make_inputs(case)
    ours = [rosenblatt.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = case.fn(rosenblatt, RF, *ours)
    expected = case.fn(torch, torch.nn.functional, *theirs)
    assert_close(out.numpy(), expected.detach().numpy(), atol=1e-10, rtol=1e-9, what=f"{case.name} forward")
    weights = np.random.default_rng(1).standard_normal(out.shape)
    (out * rosenblatt.tensor(weights)).sum().backward()
    (expected * torch.tensor(weights)).sum().backward()
    for i, (a, b) in enumerate(zip(ours, theirs)):
        assert_close(a.grad.numpy(), b.grad.numpy(), atol=1e-10, rtol=1e-8, what=f"{case.name} grad of input {i}")


def test_every_case_name_is_unique():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names))


def test_gradcheck_catches_a_wrong_gradient():
    """The checker itself must fail on a deliberately wrong backward."""
    from rosenblatt.tensor import result

    def wrong_square(x):
        return result(x.data ** 2, (x,), lambda g: (g * x.data,), "WrongBackward")  # should be 2 * g * x

    x = rosenblatt.tensor(np.random.default_rng(0).standard_normal(4), requires_grad=True)
    with pytest.raises(AssertionError, match="gradcheck"):
        gradcheck(wrong_square, [x])


def test_max_dim_gradient_goes_to_first_argmax_at_ties():
    """With ties, max(dim) sends the whole gradient to the index it returns (the first), as torch."""
    x = rosenblatt.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]], requires_grad=True)
    values, indices = x.max(1)
    values.sum().backward()
    assert indices.tolist() == [1, 0]
    assert x.grad.tolist() == [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]


def test_full_max_gradient_is_shared_among_ties():
    """max() over everything spreads the gradient evenly over the tied elements, as torch."""
    x = rosenblatt.tensor([1.0, 4.0, 4.0, 2.0], requires_grad=True)
    x.max().backward()
    assert x.grad.tolist() == [0.0, 0.5, 0.5, 0.0]


def test_leaf_gradients_never_alias_other_arrays():
    """A leaf's first gradient is taken without a copy only when nothing else refers to the array (as
    torch steals it): never the caller's seed, never one array shared by two leaves, never an array a
    backward function keeps."""
    seed = np.ones(3, np.float32)
    x = rosenblatt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 1.0).backward(seed)
    seed[0] = 100.0
    assert x.grad.tolist() == [1.0, 1.0, 1.0]

    a = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    b = rosenblatt.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()  # add's backward hands the same array to both
    assert not np.shares_memory(a.grad.numpy(), b.grad.numpy())

    from rosenblatt.tensor import result
    kept = np.full(2, 7.0, np.float32)
    c = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    y = result(c.data * 2, (c,), lambda g: (kept,), "KeptBackward")
    y.backward(np.ones(2, np.float32))
    assert not np.shares_memory(c.grad.numpy(), kept)
    c.grad.numpy()[0] = -1.0
    assert kept.tolist() == [7.0, 7.0]

    # The kernels' recycled arrays (blocks of 1 MiB and more, owned through a capsule): taken when
    # fresh, copied when the backward keeps one.
    n = 1 << 19
    recycled = _C.recycled_empty(n, "float32")
    recycled[:] = 5.0
    e = rosenblatt.tensor(np.zeros(n, np.float32), requires_grad=True)
    result(e.data * 2, (e,), lambda g: (recycled,), "KeptBackward").backward(np.ones(n, np.float32))
    assert not np.shares_memory(e.grad.numpy(), recycled)
    def fresh(g):
        out = _C.recycled_empty(n, "float32")
        out[:] = 1.0
        return (out,)

    f = rosenblatt.tensor(np.zeros(n, np.float32), requires_grad=True)
    result(f.data * 2, (f,), fresh, "FreshBackward").backward(np.ones(n, np.float32))
    taken = f.grad.numpy()
    assert type(taken.base).__name__ == "PyCapsule"  # no copy
    result(f.data * 2, (f,), fresh, "FreshBackward").backward(np.ones(n, np.float32))
    assert f.grad.numpy() is taken and taken[0] == 2.0  # the next gradient accumulates into it in place


def test_division_by_zero_is_ieee_and_silent():
    """x / 0 gives inf or nan and so do its gradients, as IEEE arithmetic and torch say, with no NumPy
    RuntimeWarning (a loss whose 'mean' divides by zero used to emit one from the backward)."""
    import warnings
    x = rosenblatt.tensor([1.0, 0.0, -2.0], requires_grad=True)
    d = rosenblatt.tensor([0.0, 0.0, 0.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x / d
        y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), [np.inf, np.nan, -np.inf])
    np.testing.assert_array_equal(x.grad.numpy(), [np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(d.grad.numpy(), [-np.inf, np.nan, np.inf])


NAN_ROWS = [[1.0, np.nan, 2.0, np.nan], [3.0, 1.0, 3.0, 0.0]]


def test_extremes_with_nan_follow_torch():
    """A NaN in the reduced slice makes the result NaN. Its gradient, as in torch: max() and min() over
    everything share it among the NaNs; amax/amin give the slice a NaN gradient (no element equals NaN);
    max(dim) sends it to the returned index. Slices without NaN keep the tie rule. No warnings."""
    nan = np.nan
    expected = {
        "max": lambda x: x.max(),
        "min": lambda x: x.min(),
        "amax": lambda x: x.amax(1).sum(),
        "amin": lambda x: x.amin(1).sum(),
        "max_dim": lambda x: x.max(1)[0].sum(),
    }
    want = {
        "max": [[0.0, 0.5, 0.0, 0.5], [0.0] * 4],
        "min": [[0.0, 0.5, 0.0, 0.5], [0.0] * 4],
        "amax": [[nan] * 4, [0.5, 0.0, 0.5, 0.0]],
        "amin": [[nan] * 4, [0.0, 0.0, 0.0, 1.0]],
        "max_dim": [[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]],
    }
    for name, fn in expected.items():
        x = rosenblatt.tensor(NAN_ROWS, requires_grad=True)
        with np.errstate(all="raise"):
            fn(x).backward()
        np.testing.assert_array_equal(x.grad.numpy(), np.array(want[name]), err_msg=name)


def test_extremes_with_nan_match_torch():
    torch = pytest.importorskip("torch")
    for fn in (lambda x: x.max(), lambda x: x.min(), lambda x: x.amax(), lambda x: x.amax(1).sum(),
               lambda x: x.amin(0).sum(), lambda x: x.max(1)[0].sum(), lambda x: x.min(0)[0].sum()):
        ours = rosenblatt.tensor(NAN_ROWS, requires_grad=True)
        theirs = torch.tensor(NAN_ROWS, requires_grad=True)
        fn(ours).backward()
        fn(theirs).backward()
        np.testing.assert_array_equal(ours.grad.numpy(), theirs.grad.numpy())


def test_relu_and_clamp_gradients_at_the_kinks_match_torch():
    torch = pytest.importorskip("torch")
    data = np.array([-1.0, 0.0, 0.5, 1.0, 2.0])
    for fn in (lambda lib, x: lib.relu(x), lambda lib, x: lib.clamp(x, 0.0, 1.0), lambda lib, x: lib.abs(x),
               lambda lib, x: lib.maximum(x, lib.ones_like(x))):
        ours, theirs = rosenblatt.tensor(data, requires_grad=True), torch.tensor(data, requires_grad=True)
        fn(rosenblatt, ours).sum().backward()
        fn(torch, theirs).sum().backward()
        assert ours.grad.tolist() == theirs.grad.tolist()


def test_gradients_at_degenerate_points_match_torch():
    """Where the chain rule meets 0 * inf, torch defines the gradient: 0 for std over a constant slice
    and for the norm of a zero row (normalize then gives 1 / eps); hardtanh stops at its bounds (clamp's
    gradient passes there). These were NaN, NaN and 1."""
    torch = pytest.importorskip("torch")
    rows = np.array([[1.5, 1.5, 1.5], [0.0, 0.0, 0.0], [0.5, -2.0, 1.0]])
    cases = [
        lambda lib, F, x: x.std(1),
        lambda lib, F, x: x.std(1, unbiased=False, keepdim=True) * x,
        lambda lib, F, x: F.normalize(x, 2.0, 1) * lib.arange(3.0),
        lambda lib, F, x: F.normalize(x, 1.0, 1) + F.normalize(x, 3.0, 1) + F.normalize(x, float("inf"), 1),
        lambda lib, F, x: F.hardtanh(x, -2.0, 1.5),
    ]
    for i, fn in enumerate(cases):
        ours, theirs = rosenblatt.tensor(rows, requires_grad=True), torch.tensor(rows, requires_grad=True)
        out = fn(rosenblatt, rosenblatt.nn.functional, ours)
        assert_close(out.data, fn(torch, torch.nn.functional, theirs).detach().numpy(), 1e-12, 1e-12, f"case {i}")
        out.sum().backward()
        fn(torch, torch.nn.functional, theirs).sum().backward()
        assert_close(ours.grad.data, theirs.grad.numpy(), 1e-12, 1e-9, f"case {i} gradient")


def test_elu_keeps_its_digits_near_zero():
    x = rosenblatt.tensor(np.array([-1e-8, -1e-5, -1e-3], np.float32))
    assert_close(rosenblatt.nn.functional.elu(x).data, np.expm1(x.data.astype(np.float64)), 0, 1e-6, "elu")


def test_clamp_with_tensor_bounds_gives_ties_to_the_input():
    """At x == min or x == max the whole gradient goes to x (torch's rule, not maximum's even split); a bound
    takes it only where it is the value; where min > max everything is max."""
    x = rosenblatt.tensor([0.0, 1.0, 2.0, 3.0, 1.5], requires_grad=True)
    low = rosenblatt.tensor([0.0, 2.0, 1.0, 1.0, 2.5], requires_grad=True)
    high = rosenblatt.tensor([1.0, 3.0, 2.0, 2.0, 0.5], requires_grad=True)
    rosenblatt.clamp(x, low, high).sum().backward()
    assert x.grad.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert low.grad.tolist() == [0.0, 1.0, 0.0, 0.0, 0.0]
    assert high.grad.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    torch = pytest.importorskip("torch")
    tx, tlow, thigh = (torch.tensor(t.numpy(), requires_grad=True) for t in (x, low, high))
    torch.clamp(tx, tlow, thigh).sum().backward()
    for ours, theirs in ((x, tx), (low, tlow), (high, thigh)):
        assert ours.grad.tolist() == theirs.grad.tolist()


def test_shared_subgraph_accumulates_once_per_path():
    """y feeds two branches; x's gradient sums both paths through y (a diamond graph)."""
    x = rosenblatt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2
    z = (y * y).sum() + y.sum()
    z.backward()
    assert_close(x.grad.numpy(), 8 * x.numpy() + 2, atol=0, rtol=0, what="diamond")


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = rosenblatt.tensor([1.0, -2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, -8.0]


def test_a_second_backward_accumulates_into_the_grad_array_in_place():
    """As torch: .grad keeps its array and version bump; a grad that is a view of another array is
    replaced instead, leaving that array alone."""
    x = rosenblatt.tensor([1.0, -2.0], requires_grad=True)
    (x * x).sum().backward()
    first = x.grad
    first_array = first.numpy()
    (x * 3).sum().backward()
    assert x.grad is first and x.grad.numpy() is first_array and first._version == 1
    assert x.grad.tolist() == [5.0, -1.0]
    base = np.zeros(4, np.float32)
    x.grad = rosenblatt.Tensor(base[::2])  # a view: not .grad's own array
    (x * x).sum().backward()
    assert x.grad.tolist() == [2.0, -4.0] and base.tolist() == [0.0, 0.0, 0.0, 0.0]


def test_backward_refuses_values_changed_in_place_after_the_forward():
    w = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    loss = (w * w).sum()
    with rosenblatt.no_grad():
        w.mul_(3.0)  # an optimiser step before backward would make the saved w stale
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()
    h = rosenblatt.tensor([0.5], requires_grad=True).exp()
    loss = h.sum()
    with rosenblatt.no_grad():
        h[0] = 0.0  # exp's backward reads its own output
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        loss.backward()


@pytest.mark.parametrize("update", ["detached", "view", "optimizer_step", "load_state_dict"])
def test_backward_refuses_storage_changed_through_another_tensor(update):
    """The version is the storage's: a change through a detached tensor or a view, an optimiser's step
    or load_state_dict between forward and backward made the gradient use the new values silently
    (x.grad [22, 24, 26] for [2, 4, 6], say). torch refuses each."""
    layer = rosenblatt.nn.Linear(3, 1, bias=False)
    x = rosenblatt.tensor([[1.0, 2.0, 3.0]], requires_grad=True)
    y = (layer(x) * x).sum()
    if update == "detached":
        x.detach().add_(10.0)
    elif update == "view":
        with rosenblatt.no_grad():
            x[0, 0:2].mul_(100.0)
    elif update == "optimizer_step":
        y.backward(retain_graph=True)
        rosenblatt.optim.SGD(layer.parameters(), lr=1.0).step()
    else:
        layer.load_state_dict({"weight": rosenblatt.tensor([[5.0, 7.0, 9.0]])})
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()


def test_in_place_update_between_steps_is_fine():
    w = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2):
        (w * w).sum().backward()
        with rosenblatt.no_grad():
            w.sub_(w.grad * 0.1)
        w.grad = None
    assert_close(w.numpy(), np.array([1.0, 2.0]) * 0.8 ** 2, atol=1e-6, rtol=0, what="two steps")


def test_no_grad_records_nothing():
    x = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    with rosenblatt.no_grad():
        y = x * 3 + 1
    assert not y.requires_grad and y.is_leaf


def test_detached_branch_takes_no_gradient():
    x = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    (x * x.detach()).sum().backward()
    assert x.grad.tolist() == [1.0, 2.0]


def test_deep_chain_does_not_hit_the_recursion_limit():
    x = rosenblatt.tensor(np.ones(3), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0
    y.sum().backward()
    assert x.grad.tolist() == [1.0, 1.0, 1.0]


def test_float32_gradients_stay_float32():
    x = rosenblatt.randn(4, 3, requires_grad=True)
    w = rosenblatt.randn(2, 3, requires_grad=True)
    loss = RF.cross_entropy(RF.linear(x, w).relu() * 0.5 + 1, rosenblatt.tensor([0, 1, 1, 0]))
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32


# ---- autograd.grad ----------------------------------------------------------------------------------
def _mlp_graph(lib, x, w1, w2):
    hidden = (x @ w1).tanh()
    return hidden, (hidden @ w2).sigmoid()


def _leaves(lib, rng, dtype=np.float64):
    arrays = [rng.standard_normal(s).astype(dtype) for s in ((5, 4), (4, 3), (3, 2))]
    return arrays, [lib.tensor(a.copy(), requires_grad=True) for a in arrays]


def test_grad_equals_backward_and_touches_no_grad():
    rng = np.random.default_rng(0)
    _, (x, w1, w2) = _leaves(rosenblatt, rng)
    _, out = _mlp_graph(rosenblatt, x, w1, w2)
    gx, gw2 = rosenblatt.autograd.grad(out.sum(), [x, w2], retain_graph=True)
    assert x.grad is None and w1.grad is None and w2.grad is None
    out.sum().backward()
    assert_close(gx.numpy(), x.grad.numpy(), atol=0, rtol=0, what="grad x")
    assert_close(gw2.numpy(), w2.grad.numpy(), atol=0, rtol=0, what="grad w2")


def test_grad_equals_torch_with_grad_outputs_and_intermediate_inputs():
    torch = torch_or_skip()
    rng = np.random.default_rng(1)
    arrays, (x, w1, w2) = _leaves(rosenblatt, rng)
    tx, tw1, tw2 = (torch.tensor(a, requires_grad=True) for a in arrays)
    hidden, out = _mlp_graph(rosenblatt, x, w1, w2)
    t_hidden, t_out = _mlp_graph(torch, tx, tw1, tw2)
    weights = rng.standard_normal((5, 2))
    # Two outputs, one weighted; inputs: an intermediate and a leaf it depends on.
    ours = rosenblatt.autograd.grad([out, hidden.sum()], [hidden, w1], grad_outputs=[rosenblatt.tensor(weights), None])
    theirs = torch.autograd.grad([t_out, t_hidden.sum()], [t_hidden, tw1], grad_outputs=[torch.tensor(weights), None])
    for o, t, name in zip(ours, theirs, ["hidden", "w1"]):
        assert_close(o.numpy(), t.numpy(), atol=1e-12, rtol=1e-10, what=f"grad {name}")


def test_grad_of_a_broadcast_and_a_shared_gradient():
    x = rosenblatt.tensor(np.ones((2, 3)), requires_grad=True)
    b = rosenblatt.tensor(np.ones(3), requires_grad=True)
    gx, gb = rosenblatt.autograd.grad((x + b).sum(), [x, b])
    assert gx.tolist() == [[1.0] * 3] * 2 and gb.tolist() == [2.0] * 3
    y, z = (rosenblatt.tensor(np.ones(3), requires_grad=True) for _ in range(2))
    gy, gz = rosenblatt.autograd.grad((y + z).sum(), [y, z])  # add passes one array to both
    gy.data[0] = 7.0  # each result owns its array
    assert gz.tolist() == [1.0] * 3


def test_grad_unused_inputs_and_bad_arguments():
    x = rosenblatt.tensor(np.ones(3), requires_grad=True)
    unused = rosenblatt.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(RuntimeError, match="input 1 .* not used"):
        rosenblatt.autograd.grad((x * 2).sum(), [x, unused])
    assert rosenblatt.autograd.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None
    zeros = rosenblatt.autograd.grad((x * 2).sum(), [x, unused], materialize_grads=True)[1]
    assert zeros.tolist() == [0.0, 0.0]
    with pytest.raises(RuntimeError, match="scalar outputs"):
        rosenblatt.autograd.grad(x * 2, x)
    with pytest.raises(RuntimeError, match="input 0 .* does not require grad"):
        rosenblatt.autograd.grad((x * 2).sum(), rosenblatt.ones(3))
    with pytest.raises(RuntimeError, match="output 0 .* does not require grad"):
        rosenblatt.autograd.grad(rosenblatt.ones(3).sum(), x)
    with pytest.raises(ValueError, match="1 grad_outputs for 2 outputs"):
        rosenblatt.autograd.grad([x.sum(), x.sum()], x, grad_outputs=[None])
    with pytest.raises(NotImplementedError, match="create_graph"):
        rosenblatt.autograd.grad(x.sum(), x, create_graph=True)


def test_grad_frees_the_graph_unless_retained():
    x = rosenblatt.tensor(np.ones(3), requires_grad=True)
    loss = (x.tanh() * 2).sum()
    rosenblatt.autograd.grad(loss, x, retain_graph=True)
    rosenblatt.autograd.grad(loss, x)
    with pytest.raises(RuntimeError):
        rosenblatt.autograd.grad(loss, x)


def test_grad_skips_branches_that_lead_to_no_input():
    calls = []
    x = rosenblatt.tensor(np.ones(3), requires_grad=True)
    w = rosenblatt.tensor(np.ones(3), requires_grad=True)
    branch = w.exp()
    original = branch._backward
    branch._backward = lambda g: calls.append(1) or original(g)
    rosenblatt.autograd.grad((x * 2 + branch).sum(), x)
    assert calls == [] and w.grad is None


def test_grad_through_a_freed_graph_raises_instead_of_calling_inputs_unused():
    # The freed nodes lose their parents; a second grad must not read that as "unused" (None or
    # zeros with allow_unused / materialize_grads) nor count only the paths still intact.
    x = rosenblatt.tensor(np.arange(3.0), requires_grad=True)
    loss = (x * x).sum()
    rosenblatt.autograd.grad(loss, x)
    for options in ({}, {"allow_unused": True}, {"materialize_grads": True}):
        with pytest.raises(RuntimeError, match="second time"):
            rosenblatt.autograd.grad(loss, x, **options)
    with pytest.raises(RuntimeError, match="second time"):
        rosenblatt.autograd.grad(loss + (x * 3).sum(), x)  # x also reached through intact nodes
    hidden = x.tanh()
    rosenblatt.autograd.grad(hidden.sum(), x)  # frees hidden's node; its gradient is still wanted later
    (g,) = rosenblatt.autograd.grad((hidden * 2).sum(), hidden)
    assert g.tolist() == [2.0] * 3


def test_grad_outputs_may_be_one_array_for_one_output():
    x = rosenblatt.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    (g,) = rosenblatt.autograd.grad(x * 2, x, grad_outputs=np.full((2, 3), 0.5))  # not taken row by row
    assert g.tolist() == [[1.0] * 3] * 2
    with pytest.raises(ValueError, match=r"grad: gradient has shape \(1,\), expected \(\)"):
        rosenblatt.autograd.grad((x * x).sum(), x, grad_outputs=np.ones(1))
