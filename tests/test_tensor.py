"""Tensor: forward values against NumPy float64, dtype rules, factories, the engine's errors, and bad input."""
import numpy as np
import pytest

import rosenblatt
import rosenblatt.nn.functional as F
from conftest import assert_close, torch_or_skip


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def t(array, requires_grad=False):
    return rosenblatt.tensor(array, requires_grad=requires_grad)


# ---- forward values against a NumPy float64 reference ------------------------------------------
def _log_softmax_ref(a, axis):
    shifted = a - a.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


FORWARD = [  # (name, our fn on Tensors, NumPy fn on float64 arrays, input shapes)
    ("add", lambda a, b: a + b, np.add, [(3, 1, 4), (5, 1)]),
    ("sub", lambda a, b: a - b, np.subtract, [(3, 4), (4,)]),
    ("mul", lambda a, b: a * b, np.multiply, [(2, 3), (2, 1)]),
    ("div", lambda a, b: a / (b.abs() + 1), lambda a, b: a / (np.abs(b) + 1), [(3, 4), (3, 4)]),
    ("pow", lambda a: a.abs() ** 1.7, lambda a: np.abs(a) ** 1.7, [(5, 3)]),
    ("sum", lambda a: a.sum((0, 2)), lambda a: a.sum((0, 2)), [(3, 4, 5)]),
    ("mean", lambda a: a.mean(-1, keepdim=True), lambda a: a.mean(-1, keepdims=True), [(3, 4, 5)]),
    ("max", lambda a: a.max(1).values, lambda a: a.max(1), [(3, 7)]),
    ("min_all", lambda a: a.min(), lambda a: a.min(), [(3, 7)]),
    ("var", lambda a: a.var(0), lambda a: a.var(0, ddof=1), [(6, 3)]),
    ("exp", rosenblatt.exp, np.exp, [(4, 4)]),
    ("log", lambda a: rosenblatt.log(a.abs() + 0.1), lambda a: np.log(np.abs(a) + 0.1), [(4, 4)]),
    ("sqrt", lambda a: rosenblatt.sqrt(a.abs()), lambda a: np.sqrt(np.abs(a)), [(4, 4)]),
    ("clamp", lambda a: a.clamp(-0.3, 0.2), lambda a: np.clip(a, -0.3, 0.2), [(4, 4)]),
    ("sigmoid", lambda a: rosenblatt.sigmoid(a * 30), lambda a: 1 / (1 + np.exp(-a * 30)), [(4, 4)]),
    ("tanh", rosenblatt.tanh, np.tanh, [(4, 4)]),
    ("relu", F.relu, lambda a: np.maximum(a, 0), [(4, 4)]),
    ("leaky_relu", F.leaky_relu, lambda a: np.where(a > 0, a, 0.01 * a), [(4, 4)]),
    ("softmax", lambda a: F.softmax(a, 1), lambda a: np.exp(_log_softmax_ref(a, 1)), [(4, 6)]),
    ("log_softmax", lambda a: F.log_softmax(a, 0), lambda a: _log_softmax_ref(a, 0), [(4, 6)]),
    ("matmul_2d", lambda a, b: a @ b, np.matmul, [(7, 13), (13, 5)]),
    ("matmul_batched", lambda a, b: a @ b, np.matmul, [(2, 1, 3, 4), (5, 4, 6)]),
    ("matmul_vec", lambda a, b: a @ b, np.matmul, [(3, 4), (4,)]),
    ("linear", lambda x, w, b: F.linear(x, w, b), lambda x, w, b: x @ w.T + b, [(2, 3, 4), (5, 4), (5,)]),
    ("transpose", lambda a: a.transpose(0, 2), lambda a: a.transpose(2, 1, 0), [(2, 3, 4)]),
    ("getitem", lambda a: a[1:, [0, 2, 2]], lambda a: a[1:, [0, 2, 2]], [(3, 4)]),
    ("cat", lambda a, b: rosenblatt.cat([a, b], 1), lambda a, b: np.concatenate([a, b], 1), [(2, 3), (2, 2)]),
    ("stack", lambda a, b: rosenblatt.stack([a, b], 1), lambda a, b: np.stack([a, b], 1), [(2, 3), (2, 3)]),
    ("where", lambda a, b: rosenblatt.where(a > b, a, b), np.maximum, [(3, 4), (3, 4)]),
]


@pytest.mark.parametrize("name,ours,reference,shapes", FORWARD, ids=[c[0] for c in FORWARD])
def test_forward_against_numpy_float64(name, ours, reference, shapes, rng, isa):
    arrays = [f32(rng, *s) for s in shapes]
    out = ours(*[t(a) for a in arrays])
    expected = reference(*[a.astype(np.float64) for a in arrays])
    assert out.dtype == np.float32, f"{name} changed the dtype to {out.dtype}"
    assert_close(out.numpy(), expected, atol=1e-5, rtol=1e-5, what=name)


def test_softmax_and_log_softmax_are_stable_for_huge_logits():
    x = t(np.array([[1000.0, 0.0, -1000.0], [-1e30, -1e30, 0.0]], dtype=np.float32))
    assert np.all(np.isfinite(F.log_softmax(x, 1).numpy()[0]))
    assert_close(F.softmax(x, 1).numpy(), [[1, 0, 0], [0, 0, 1]], atol=1e-7, rtol=0, what="softmax")
    assert_close(F.sigmoid(t(np.array([-1000.0, 1000.0], np.float32))).numpy(), [0, 1], atol=0, rtol=0,
                 what="sigmoid")


def test_matmul_empty_inner_dim_gives_zeros():
    out = t(np.zeros((3, 0), np.float32)) @ t(np.zeros((0, 2), np.float32))
    assert out.shape == (3, 2) and not out.numpy().any()


def test_nan_and_inf_propagate():
    x = t(np.array([np.nan, np.inf, -np.inf, 1.0], np.float32))
    assert np.isnan((x * 2).numpy()[0]) and (x + 1).numpy()[1] == np.inf
    assert np.isnan(x.sum().item())
    assert np.isnan(x.max().item())


# ---- dtype rules (torch's) -----------------------------------------------------------------------
def test_python_scalars_keep_the_tensor_dtype():
    x = rosenblatt.ones(3)
    assert (x * 2.5).dtype == np.float32 and (2.5 - x).dtype == np.float32 and (x / 3).dtype == np.float32
    assert (x ** 2).dtype == np.float32 and (2 ** x).dtype == np.float32
    assert (rosenblatt.ones(3, dtype="float64") * 2.5).dtype == np.float64
    assert (x * np.float64(2.0)).dtype == np.float32  # NumPy scalars act as Python scalars


def test_integer_and_bool_promotion():
    i = rosenblatt.arange(4)
    assert i.dtype == np.int64
    assert (i * 2).dtype == np.int64
    assert (i * 2.5).dtype == np.float32
    assert (i / 2).dtype == np.float32  # true division
    assert (rosenblatt.tensor([True, False]) + 1).dtype == np.int64
    assert rosenblatt.tensor([1.0, 2.0]).dtype == np.float32
    assert rosenblatt.tensor([1, 2]).dtype == np.int64


def test_mixed_dtype_promotion_matches_torch():
    torch = pytest.importorskip("torch")
    dtypes = ["bool", "int32", "int64", "float32", "float64"]
    for left in dtypes:
        for right in dtypes:
            for left_shape, right_shape in [((3,), (3,)), ((3,), ()), ((), (3,))]:
                a, b = np.ones(left_shape, left), np.ones(right_shape, right)
                ours = (rosenblatt.tensor(a) + rosenblatt.tensor(b)).dtype
                theirs = (torch.tensor(a) + torch.tensor(b)).dtype
                assert str(theirs) == f"torch.{ours}", (left, left_shape, right, right_shape)


def test_cat_and_stack_promote_dtypes_as_torch():
    """NumPy joins float32 with int64 as float64; torch keeps float32 (the float category wins)."""
    dtypes = ["bool", "int32", "int64", "float32", "float64"]
    expected = {("bool", "int32"): "int32", ("int32", "int64"): "int64", ("int64", "float32"): "float32",
                ("int32", "float32"): "float32", ("bool", "float32"): "float32", ("float32", "float64"): "float64"}
    torch = None
    try:
        import torch
    except ImportError:
        pass
    for left in dtypes:
        for right in dtypes:
            a, b = np.ones((2, 3), left), np.zeros((2, 3), right)
            joined = rosenblatt.cat([t(a), t(b)], -1), rosenblatt.stack([t(a), t(b)], -1)
            reference = expected.get((left, right)) or expected.get((right, left)) or str(np.result_type(a, b))
            for ours, numpy_fn in zip(joined, (np.concatenate, np.stack)):
                assert str(ours.dtype) == reference, (left, right)
                assert_close(ours.numpy(), numpy_fn([a, b], -1).astype(np.float64), atol=0, rtol=0)
            if torch is not None:
                theirs = torch.cat([torch.tensor(a), torch.tensor(b)], -1).dtype
                assert str(theirs) == f"torch.{joined[0].dtype}", (left, right)


def test_comparisons_give_bool_tensors_without_grad():
    x = rosenblatt.tensor([1.0, 2.0, 3.0], requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad
    assert mask.tolist() == [False, True, True]
    assert (x == 2).tolist() == [False, True, False]
    assert ((x >= 2) & (x < 3)).tolist() == [False, True, False]
    assert (~mask).tolist() == [True, False, False]


def test_astype_float_double_and_their_gradients():
    x = rosenblatt.tensor([1.5, -2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * 3).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [3.0, 3.0]
    assert x.long().tolist() == [1, -2] and not x.long().requires_grad
    assert x.to("float64").dtype == np.float64 and x.to("cpu") is x


def test_tensors_stay_hashable():
    x = rosenblatt.ones(2)
    assert {x: 1}[x] == 1


# ---- factories -----------------------------------------------------------------------------------
def test_factories_follow_torch_shapes_and_dtypes():
    assert rosenblatt.zeros(2, 3).shape == (2, 3) and rosenblatt.zeros((2, 3)).dtype == np.float32
    assert rosenblatt.ones([4]).numpy().tolist() == [1, 1, 1, 1]
    assert rosenblatt.full((2,), 7).dtype == np.int64 and rosenblatt.full((2,), 7.0).dtype == np.float32
    assert rosenblatt.arange(1, 7, 2).tolist() == [1, 3, 5]
    assert rosenblatt.arange(0.0, 1.0, 0.5).dtype == np.float32
    assert rosenblatt.eye(2, 3).tolist() == [[1, 0, 0], [0, 1, 0]]
    assert rosenblatt.zeros_like(rosenblatt.arange(3)).dtype == np.int64
    assert rosenblatt.ones_like(rosenblatt.zeros(2, dtype="float64")).dtype == np.float64
    assert rosenblatt.empty(3, 0).shape == (3, 0)
    assert rosenblatt.zeros(2, requires_grad=True).requires_grad


def test_random_factories_follow_manual_seed():
    rosenblatt.manual_seed(3)
    a, b = rosenblatt.randn(4, 5), rosenblatt.rand(6)
    rosenblatt.manual_seed(3)
    assert rosenblatt.randn(4, 5).tolist() == a.tolist() and rosenblatt.rand(6).tolist() == b.tolist()
    assert a.dtype == np.float32 and 0 <= b.numpy().min() and b.numpy().max() < 1
    assert sorted(rosenblatt.randperm(5).tolist()) == [0, 1, 2, 3, 4]
    r = rosenblatt.randint(0, 3, (100,))
    assert r.dtype == np.int64 and set(r.tolist()) <= {0, 1, 2}


def test_module_level_functions_exist_as_in_torch():
    x = rosenblatt.tensor([[1.0, -2.0], [3.0, 0.5]])
    for name in ("exp", "log", "sqrt", "abs", "sigmoid", "tanh", "relu"):
        assert_close(getattr(rosenblatt, name)(x.abs() + 1).numpy(),
                     getattr(x.abs() + 1, name)().numpy(), atol=0, rtol=0, what=name)
    assert rosenblatt.sum(x).item() == 2.5 and rosenblatt.max(x).item() == 3.0
    assert rosenblatt.softmax(x, 1).shape == (2, 2) and rosenblatt.matmul(x, x).shape == (2, 2)


# ---- views, indexing, in-place --------------------------------------------------------------------
def test_shape_ops():
    x = rosenblatt.arange(24.0).reshape(2, 3, 4)
    assert x.view(6, -1).shape == (6, 4) and x.flatten().shape == (24,) and x.flatten(1).shape == (2, 12)
    assert x.unsqueeze(1).shape == (2, 1, 3, 4) and x.unsqueeze(-1).shape == (2, 3, 4, 1)
    assert x[:, :1].squeeze(1).shape == (2, 4) and x.squeeze(0).shape == (2, 3, 4)  # size-2 dim kept
    assert x.permute(2, 0, 1).shape == (4, 2, 3) and x.transpose(0, 1).shape == (3, 2, 4)
    assert x.T.shape == (4, 3, 2) and x[0].T.shape == (4, 3)


def test_reduction_dims_follow_torch():
    """An empty dim list reduces every dim, a 0-d tensor takes dim 0 and -1, argmax(keepdim=True) keeps every
    dim, and a dim named twice is an error (sum((0, -3)) silently reduced dim 0 once)."""
    a = np.arange(24.0).reshape(2, 3, 4) % 7
    x = t(a)
    assert x.sum(()).item() == a.sum() and x.mean([]).item() == a.mean() and x.var(()).item() == a.var(ddof=1)
    assert x.sum((), keepdim=True).shape == (1, 1, 1) and rosenblatt.amax(x, ()).item() == a.max()
    s = t(np.float64(2.5))
    assert s.sum(0).item() == 2.5 and s.mean(-1, keepdim=True).shape == () and s.flip(0).item() == 2.5
    assert x.argmax(keepdim=True).shape == (1, 1, 1) and x.argmax(keepdim=True).item() == a.argmax()
    assert x.argmin().shape == () and x.argmin().item() == a.argmin()
    for fn in (lambda: x.sum((0, -3)), lambda: x.mean([1, 1]), lambda: x.flip((2, -1))):
        with pytest.raises(ValueError, match="more than once"):
            fn()


def test_setitem_and_inplace_ops_outside_autograd():
    x = rosenblatt.zeros(3, 4)
    x[1, 2:] = 5.0
    x[x > 4] = 1.0
    assert x.sum().item() == 2.0
    w = rosenblatt.ones(3, requires_grad=True)
    with rosenblatt.no_grad():
        w.sub_(rosenblatt.tensor([1.0, 2.0, 3.0]) * 0.5).mul_(2.0)
        w[0] = 10.0
    assert w.tolist() == [10.0, 0.0, -1.0] and w.requires_grad


def test_inplace_on_a_tensor_that_requires_grad_is_refused_while_recording():
    w = rosenblatt.ones(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="add_"):
        w.add_(1.0)
    with pytest.raises(RuntimeError, match="setitem"):
        w[0] = 2.0


def test_item_and_conversions():
    x = rosenblatt.tensor([[2.5]])
    assert x.item() == 2.5 and float(x) == 2.5 and int(rosenblatt.tensor(3)) == 3
    with pytest.raises((ValueError, RuntimeError), match="item"):
        rosenblatt.ones(2).item()
    with pytest.raises(RuntimeError, match="ambiguous"):
        bool(rosenblatt.ones(2))


# ---- the engine's errors ------------------------------------------------------------------------------
def test_backward_twice_without_retain_graph_raises():
    x = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


def test_backward_of_non_scalar_needs_a_gradient():
    x = rosenblatt.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    with pytest.raises(RuntimeError, match=r"scalar outputs.*\(2,\)"):
        y.backward()
    y.backward(gradient=np.array([1.0, -1.0], np.float32))
    assert x.grad.tolist() == [3.0, -3.0]


def test_backward_gradient_of_the_wrong_shape_raises():
    y = rosenblatt.tensor([1.0, 2.0], requires_grad=True) * 2
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        y.backward(rosenblatt.ones(3))


def test_backward_on_a_tensor_without_grad_raises():
    with pytest.raises(RuntimeError, match="does not require grad"):
        rosenblatt.ones(2).sum().backward()


@pytest.mark.parametrize("dtype", ["int64", "int32", "bool"])
def test_requires_grad_on_integer_tensors_raises(dtype):
    with pytest.raises(TypeError, match="floating"):
        rosenblatt.tensor(np.zeros(3, dtype), requires_grad=True)
    with pytest.raises(TypeError, match="floating"):
        rosenblatt.tensor(np.zeros(3, dtype)).requires_grad_()
    with pytest.raises(TypeError, match="floating"):
        rosenblatt.zeros(3, dtype=dtype, requires_grad=True)


# ---- bad input: errors name the op and the shapes ----------------------------------------------------
@pytest.mark.parametrize("op,fn", [
    ("add", lambda a, b: a + b), ("sub", lambda a, b: a - b), ("mul", lambda a, b: a * b),
    ("div", lambda a, b: a / b), ("pow", lambda a, b: a ** b), ("maximum", rosenblatt.maximum),
    ("eq", lambda a, b: a == b),
])
def test_binary_ops_name_both_shapes_when_broadcasting_fails(op, fn):
    with pytest.raises(ValueError, match=rf"^{op}: shapes \(3, 4\) and \(5,\)"):
        fn(rosenblatt.ones(3, 4), rosenblatt.ones(5))


@pytest.mark.parametrize("fn,error,message", [
    (lambda: rosenblatt.tensor("abc"), TypeError, r"^tensor: cannot make a tensor from str"),
    (lambda: rosenblatt.tensor([[1, 2], [3]]), ValueError, r"^tensor: cannot make a tensor from a ragged list"),
    (lambda: rosenblatt.tensor(None), TypeError, r"^tensor: "),
    (lambda: rosenblatt.ones(2) + None, TypeError, r"^add: operands of type Tensor and NoneType"),
    (lambda: rosenblatt.ones(2) * "x", TypeError, r"^mul: "),
    (lambda: {"a": 1} @ rosenblatt.ones(2), TypeError, r"^matmul: "),
    (lambda: rosenblatt.where(rosenblatt.ones(2) > 0, rosenblatt.ones(2), object()), TypeError, r"^where: "),
    (lambda: rosenblatt.arange(3) ** -1, ValueError, r"^pow: Integers to negative integer powers .*\(3,\)"),
])
def test_objects_that_are_not_numbers_are_refused(fn, error, message):
    with pytest.raises(error, match=message):
        fn()


@pytest.mark.parametrize("a,b,message", [
    ((3, 4), (5, 6), r"^matmul: shapes \(3, 4\) and \(5, 6\)"),
    ((4,), (3,), r"^matmul: shapes \(4,\) and \(3,\)"),
    ((2, 3, 4), (3, 4, 5), r"^matmul: batch dims of shapes \(2, 3, 4\) and \(3, 4, 5\)"),
    ((), (3,), r"^matmul: .*shapes \(\) and \(3,\)"),
])
def test_matmul_shape_errors(a, b, message):
    with pytest.raises(ValueError, match=message):
        rosenblatt.ones(*a) @ rosenblatt.ones(*b)


def test_matmul_mixed_dtypes_raise_type_error():
    with pytest.raises(TypeError, match=r"^matmul: dtypes differ.*\(2, 2\)"):
        rosenblatt.ones(2, 2) @ rosenblatt.ones(2, 2, dtype="float64")
    with pytest.raises(TypeError, match=r"^matmul: unsupported dtype float16 \(shapes \(2, 2\)"):
        rosenblatt.ones(2, 2, dtype="float16") @ rosenblatt.ones(2, 2, dtype="float16")
    assert (rosenblatt.arange(4).reshape(2, 2) @ rosenblatt.arange(2)).tolist() == [1, 3]  # integers: NumPy


def test_linear_shape_and_dtype_errors():
    with pytest.raises(ValueError, match=r"^linear: input shape \(2, 3\).*weight shape \(4, 5\)"):
        F.linear(rosenblatt.ones(2, 3), rosenblatt.ones(4, 5))
    with pytest.raises(ValueError, match=r"^linear: bias shape \(3,\)"):
        F.linear(rosenblatt.ones(2, 5), rosenblatt.ones(4, 5), rosenblatt.ones(3))
    with pytest.raises(TypeError, match="^linear"):
        F.linear(rosenblatt.ones(2, 5, dtype="float64"), rosenblatt.ones(4, 5))
    with pytest.raises(TypeError, match="^linear"):
        F.linear(np.ones((2, 5)), rosenblatt.ones(4, 5))


@pytest.mark.parametrize("fn,error,message", [
    (lambda x: x.reshape(5, 5), ValueError, r"^reshape: .*\(2, 3, 4\).*\(5, 5\)"),
    (lambda x: x.sum(3), IndexError, r"^sum: dim 3 .*\(2, 3, 4\)"),
    (lambda x: x.max(-4), IndexError, r"^max: dim -4"),
    (lambda x: x.permute(0, 1), ValueError, r"^permute: .*\(2, 3, 4\)"),
    (lambda x: x.transpose(0, 5), IndexError, r"^transpose: dim 5"),
    (lambda x: x.unsqueeze(4), IndexError, r"^unsqueeze: dim 4"),
    (lambda x: x.flatten(2, 1), ValueError, r"^flatten: "),
    (lambda x: x.expand(3, 3, 4), ValueError, r"^expand: cannot expand shape \(2, 3, 4\)"),
    (lambda x: x[5], IndexError, r"^getitem: .*\(2, 3, 4\)"),
    (lambda x: x[0, 0, 0, 0], IndexError, r"^getitem: "),
    (lambda x: rosenblatt.cat([x, rosenblatt.ones(2, 2, 2)], 1), ValueError, r"^cat: shapes .*\(2, 3, 4\)"),
    (lambda x: rosenblatt.cat([]), ValueError, r"^cat: "),
    (lambda x: rosenblatt.stack([x, rosenblatt.ones(2, 3)]), ValueError, r"^stack: .*\(2, 3, 4\), \(2, 3\)"),
    (lambda x: rosenblatt.where(x, x, x), TypeError, r"^where: condition must be a bool"),
    (lambda x: rosenblatt.where(x > 0, x, rosenblatt.ones(5)), ValueError, r"^where: shapes"),
    (lambda x: x.clamp(), ValueError, r"^clamp: "),
    (lambda x: x.long().mean(), TypeError, r"^mean: .*int64"),
    (lambda x: x.gather(1, rosenblatt.ones(2, 3, 4)), TypeError, r"^gather: index must be an integer"),
    (lambda x: x.index_select(1, rosenblatt.ones(2)), TypeError, r"^index_select: index must be a 1-D integer"),
    (lambda x: x.index_select(1, rosenblatt.zeros(2, 2, dtype=rosenblatt.int64)), TypeError, r"^index_select: "),
    (lambda x: x.index_select(1, rosenblatt.tensor([3])), IndexError,
     r"^index_select: an index is out of range \[-3, 3\) for dim 1 \(input shape \(2, 3, 4\)\)"),
    (lambda x: rosenblatt.argmax(x[:, :0]), ValueError, r"^argmax: cannot reduce an empty dimension \(shape \(2, 0, 4\)"),
    (lambda x: x[:0].argmin(0), ValueError, r"^argmin: cannot reduce an empty dimension"),
    (lambda x: x.long().add_(0.5), TypeError, r"^add_: cannot update a int64 tensor of shape \(2, 3, 4\) in place"),
    (lambda x: rosenblatt.split(x, [3, -1]), ValueError, r"^split: sections \[3, -1\] must not be negative"),
    (lambda x: rosenblatt.chunk(x, 0), ValueError, r"^chunk: chunks must be positive, got 0"),
    (lambda x: F.pad(x[:, :, :0], (1, 1), mode="replicate"), ValueError, r"^pad: replicate padding of an empty dim"),
    (lambda x: x.gather(1, rosenblatt.zeros(3, 3, 4, dtype=rosenblatt.int64)), ValueError,
     r"^gather: index shape \(3, 3, 4\) is larger than input shape \(2, 3, 4\) outside dim 1"),
    (lambda x: x.gather(2, rosenblatt.full((1, 1, 1), 4, dtype=rosenblatt.int64)), IndexError,
     r"^gather: an index is out of range \[-4, 4\) for dim 2 \(input shape \(2, 3, 4\)"),
    (lambda x: F.dropout(x, 1.5), ValueError, r"^dropout: probability"),
    (lambda x: F.maxout(x, 3), ValueError, r"^maxout: .*\(2, 3, 4\)"),
    (lambda x: rosenblatt.zeros("a"), TypeError, r"^zeros: "),
    (lambda x: rosenblatt.zeros(2, -3), ValueError, r"^zeros: negative dimension in shape \(2, -3\)"),
    (lambda x: rosenblatt.ones(2 ** 40, 2 ** 40), ValueError, r"^ones: shape \(1099511627776, 1099511627776\)"),
    (lambda x: rosenblatt.randn(2 ** 62, 4), ValueError, r"^randn: shape .* overflows"),
    (lambda x: F.pad(x, (1, 1, 1)), ValueError, r"^pad: padding \(1, 1, 1\).*\(2, 3, 4\)"),
    (lambda x: F.pad(x, (4, 0), mode="reflect"), ValueError, r"^pad: reflect padding \(4, 0\).*\(2, 3, 4\)"),
    (lambda x: F.pad(x, (1, 1), mode="mirror"), ValueError, r"^pad: mode 'mirror'"),
    (lambda x: F.pad(x, (-1, 1)), ValueError, r"^pad: negative padding"),
])
def test_shape_op_errors_name_the_op_and_shape(fn, error, message):
    with pytest.raises(error, match=message):
        fn(rosenblatt.ones(2, 3, 4))


def test_split_and_chunk_pieces_match_torch():
    # An empty dim gave no pieces (torch: one empty piece; chunk: `chunks` empty pieces).
    torch = torch_or_skip()
    for n in range(9):
        for k in range(1, 6):
            for ours, theirs in ((rosenblatt.split(rosenblatt.zeros(n, 2), k), torch.split(torch.zeros(n, 2), k)),
                                 (rosenblatt.chunk(rosenblatt.zeros(n, 2), k), torch.chunk(torch.zeros(n, 2), k))):
                assert [p.shape for p in ours] == [tuple(p.shape) for p in theirs], (n, k)


def test_index_select_backward_keeps_the_index_of_the_forward():
    x = rosenblatt.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    index = np.array([0, 1])
    out = rosenblatt.index_select(x, 0, index)
    index[:] = 1  # the caller reuses its array: the gradient must still follow [0, 1]
    out.sum().backward()
    assert x.grad.tolist() == [[1.0] * 3] * 2


def test_index_select_of_a_scalar_and_of_an_empty_list_follow_torch():
    torch = torch_or_skip()
    x = rosenblatt.tensor(5.0, requires_grad=True)
    for index in ([0], 0, [-1]):
        out = rosenblatt.index_select(x, -1, index)
        assert out.shape == () and out.item() == 5.0
    assert tuple(torch.index_select(torch.tensor(5.0), 0, torch.tensor([0])).shape) == ()
    (out * 3).backward()
    assert x.grad.item() == 3.0
    with pytest.raises(IndexError, match=r"^index_select: a 0-d input \(shape \(\)\) takes an index of exactly one"):
        rosenblatt.index_select(x, 0, [0, 0])
    with pytest.raises(IndexError, match=r"^index_select: an index is out of range \[-1, 1\) .*shape \(\)"):
        rosenblatt.index_select(x, 0, [1])
    assert rosenblatt.ones(2, 3).index_select(1, []).shape == (2, 0)


def test_gather_backward_keeps_its_own_index():
    """A change to the caller's index array after the forward does not reach the gradient."""
    x = rosenblatt.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    index = np.array([[0, 1], [2, 2]])
    out = rosenblatt.gather(x, 1, index)
    index[:] = 0
    out.sum().backward()
    assert x.grad.tolist() == [[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]


def test_indexing_backward_keeps_its_own_index_array():
    x = rosenblatt.tensor(np.arange(4.0), requires_grad=True)
    index = np.array([0, 0, 3])
    out = x[index]
    index[:] = 1
    out.sum().backward()
    assert x.grad.tolist() == [2.0, 0.0, 0.0, 1.0]


def test_where_refuses_a_condition_changed_before_backward_and_copies_arrays():
    x = rosenblatt.tensor(np.arange(4.0), requires_grad=True)
    mask = x.detach() > 1
    loss = rosenblatt.where(mask, x, x * 0).sum()
    mask[0] = True  # as torch: the condition's version moved, backward refuses
    with pytest.raises(RuntimeError, match="WhereBackward"):
        loss.backward()
    x.grad = None
    array_mask = np.array([True, False, True, False])
    loss = x.masked_fill(array_mask, 0.0).sum()
    array_mask[:] = False  # a plain array is copied at the forward
    loss.backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0, 1.0]


def test_an_array_operand_is_copied_for_backward():
    """x * array: the backward reads the array, which the caller may change after the forward."""
    x = rosenblatt.tensor(np.arange(3.0), requires_grad=True)
    scale = np.array([1.0, 2.0, 3.0])
    loss = (x * scale).sum()
    scale[:] = 0
    loss.backward()
    assert x.grad.tolist() == [1.0, 2.0, 3.0]
