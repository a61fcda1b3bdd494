"""Differentiable ops on Tensors.

Each op computes its output with NumPy or a kernel from `rosenblatt._C`, and
hands `result()` a closure mapping the output's gradient to one gradient per
input (None where an input needs none). Element work is never a Python loop.

Names, argument names and semantics follow torch; the ops are also installed as
Tensor methods and operators at the bottom of this file.
"""
from __future__ import annotations

import builtins
import math
from collections import namedtuple

import numpy as np

from . import _C, _device
from .device import device as _device_type
from .tensor import _KIND_CATEGORY, Tensor, as_tensor, float32, result, unbroadcast

# (values, indices) pair returned by max/min along a dim, as torch.return_types.max
MaxMin = namedtuple("MaxMin", ["values", "indices"])


# ---- helpers -------------------------------------------------------------------------------
def _pair(a, b, op: str):
    """Both operands as Tensors; a Python scalar takes the dtype of the other side (as torch)."""
    try:
        if isinstance(a, Tensor):
            return a, as_tensor(b, like=a)
        b = as_tensor(b)
        return as_tensor(a, like=b), b
    except TypeError as error:
        raise TypeError(f"{op}: operands of type {type(a).__name__} and {type(b).__name__}: {error}") from None


def _common_dtype(a: Tensor, b: Tensor) -> np.dtype:
    """torch's type promotion: the higher category (bool < integer < float) wins; within a category the
    wider dtype wins, except that a 0-d operand never widens one with dims. (Python scalars were already
    given their dtype by as_tensor.)"""
    category_a, category_b = _KIND_CATEGORY.get(a.dtype.kind, 3), _KIND_CATEGORY.get(b.dtype.kind, 3)
    if category_a == category_b:
        if (a.ndim == 0) != (b.ndim == 0):
            return a.dtype if a.ndim else b.dtype
        return np.promote_types(a.dtype, b.dtype)
    return a.dtype if category_a > category_b else b.dtype


def _broadcast_op(op: str, fn, a: Tensor, b: Tensor) -> np.ndarray:
    """fn(a.data, b.data) in torch's promoted dtype, turning NumPy's broadcast failure into an error
    naming op and shapes."""
    x, y = a.data, b.data
    if x.dtype != y.dtype:
        common = _common_dtype(a, b)
        x, y = x.astype(common, copy=False), y.astype(common, copy=False)
    try:
        return fn(x, y)
    except ValueError as error:
        _check_same_device(op, a, b)
        try:
            np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise ValueError(f"{op}: shapes {a.shape} and {b.shape} cannot be broadcast together") from None
        raise ValueError(f"{op}: {error} (shapes {a.shape} and {b.shape})") from None  # e.g. int ** -1


def _check_same_device(op: str, *tensors) -> None:
    """ValueError naming the op and two devices when the tensors do not share one (called on error
    paths, where a device mix shows up as a failed NumPy call)."""
    devices = {str(t.device) for t in tensors}
    if len(devices) > 1:
        first, second = sorted(devices)[:2]
        raise ValueError(f"{op}: expected all tensors to be on the same device, but found at least two devices, "
                         f"{first} and {second}")


def _float_data(x: Tensor) -> np.ndarray:
    """x's data for ops with a floating result (exp, log, ...): integers become float32, as torch."""
    return x.data if x.dtype.kind in "fc" else x.data.astype(float32)


def _dim(dim, ndim: int, op: str, shape=None) -> int:
    """A dim in [-ndim, ndim) as a non-negative axis, with torch's range error."""
    dim = int(dim)
    span = builtins.max(ndim, 1)  # a 0-d tensor accepts dim 0 and -1, as torch
    if not -span <= dim < span:
        raise IndexError(f"{op}: dim {dim} is out of range for a tensor of shape {shape} "
                         f"(expected a dim in [{-span}, {span - 1}])")
    return dim % span


def _dims(dim, ndim: int, op: str, shape=None) -> tuple:
    """Dims as sorted non-negative axes; None means every dim. A 0-d tensor accepts dim 0 and -1 and has
    no axes; a dim named twice is an error, as torch."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = [_dim(d, ndim, op, shape) for d in dims]
    if len(set(axes)) != len(axes):
        raise ValueError(f"{op}: dims {tuple(dims)} name a dim more than once (shape {shape})")
    return tuple(sorted(axes)) if ndim else ()


def _reduction_dims(dim, ndim: int, op: str, shape=None) -> tuple:
    """_dims for sum, mean, var, std, amax, amin and logsumexp: an empty dim list means every dim, as torch
    (flip and squeeze take it as no dim)."""
    return _dims(None if isinstance(dim, (tuple, list)) and not dim else dim, ndim, op, shape)


def _expand_reduced(g: np.ndarray, shape: tuple, axes: tuple, keepdim: bool) -> np.ndarray:
    """The gradient of a reduction over `axes`, broadcast back to the input's shape (a view)."""
    if not keepdim:
        g = np.expand_dims(g, axes)
    return np.broadcast_to(g, shape)


def _shape_args(shape, op: str) -> tuple:
    """Accept f(2, 3), f((2, 3)) and f([2, 3]) as torch does."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    try:
        return tuple(int(s) for s in shape)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: a shape must be a sequence of ints, got {shape!r}") from None


# ---- arithmetic with broadcasting --------------------------------------------------------
def add(a, b) -> Tensor:
    a, b = _pair(a, b, "add")
    out = _broadcast_op("add", np.add, a, b)
    return result(out, (a, b), lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)), "AddBackward")


def sub(a, b) -> Tensor:
    a, b = _pair(a, b, "sub")
    out = _broadcast_op("sub", np.subtract, a, b)
    return result(out, (a, b), lambda g: (unbroadcast(g, a.shape), unbroadcast(-g, b.shape)), "SubBackward")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b, "mul")
    out = _broadcast_op("mul", np.multiply, a, b)

    def backward(g):
        return (unbroadcast(g * b.data, a.shape) if a.requires_grad else None,
                unbroadcast(g * a.data, b.shape) if b.requires_grad else None)

    return result(out, (a, b), backward, "MulBackward")


def div(a, b) -> Tensor:
    """True division; integer operands give float32, as torch."""
    a, b = _pair(a, b, "div")
    with np.errstate(divide="ignore", invalid="ignore"):  # x / 0 = inf, 0 / 0 = nan, as IEEE says (and torch)
        out = _broadcast_op("div", np.true_divide, a, b)
    if a.dtype.kind not in "fc" and b.dtype.kind not in "fc":
        out = out.astype(float32)  # int / int: torch's default float, where NumPy gives float64

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            grad_a = unbroadcast(g / b.data, a.shape) if a.requires_grad else None
            grad_b = unbroadcast(-g * out / b.data, b.shape) if b.requires_grad else None
        return grad_a, grad_b

    return result(out, (a, b), backward, "DivBackward")


def neg(x: Tensor) -> Tensor:
    return result(-x.data, (x,), lambda g: (-g,), "NegBackward")


def pow(x, exponent) -> Tensor:  # noqa: A001 - torch's name
    """x ** exponent for a scalar or tensor exponent (and a scalar base via Tensor.__rpow__)."""
    x, exponent = _pair(x, exponent, "pow")
    with np.errstate(divide="ignore", invalid="ignore"):
        out = _broadcast_op("pow", np.power, x, exponent)

    def backward(g):
        e, base = exponent.data, x.data
        grad_x = grad_e = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if x.requires_grad:
                # d/dx x^e = e * x^(e-1); torch defines it as 0 where e == 0 (even at x == 0)
                grad_x = unbroadcast(np.where(e == 0, 0, g * e * np.power(base, e - 1)), x.shape)
            if exponent.requires_grad:
                # d/de x^e = x^e * log(x); torch takes it as 0 where x == 0 and e >= 0
                local = np.where((base == 0) & (e >= 0), 0, out * np.log(base))
                grad_e = unbroadcast(g * local, exponent.shape)
        return grad_x, grad_e

    return result(out, (x, exponent), backward, "PowBackward")


def maximum(a, b) -> Tensor:
    """Elementwise max; at ties each side gets half the gradient (as torch)."""
    return _elementwise_extreme(a, b, np.maximum, "maximum")


def minimum(a, b) -> Tensor:
    return _elementwise_extreme(a, b, np.minimum, "minimum")


def _elementwise_extreme(a, b, fn, op: str) -> Tensor:
    a, b = _pair(a, b, op)
    out = _broadcast_op(op, fn, a, b)

    def backward(g):
        a_wins = out == a.data
        b_wins = out == b.data
        share = np.where(a_wins & b_wins, g * 0.5, g)
        return (unbroadcast(np.where(a_wins, share, 0), a.shape),
                unbroadcast(np.where(b_wins, share, 0), b.shape))

    return result(out, (a, b), backward, op.capitalize() + "Backward")


# ---- comparisons and logic (no gradient) ----------------------------------------------------
def _compare(op: str, fn):
    def compare(a, b) -> Tensor:
        a, b = _pair(a, b, op)
        return Tensor(_broadcast_op(op, fn, a, b))

    compare.__name__ = op
    return compare


eq = _compare("eq", np.equal)
ne = _compare("ne", np.not_equal)
lt = _compare("lt", np.less)
le = _compare("le", np.less_equal)
gt = _compare("gt", np.greater)
ge = _compare("ge", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)
logical_xor = _compare("logical_xor", np.logical_xor)


def logical_not(x: Tensor) -> Tensor:
    return Tensor(np.logical_not(x.data))


def _bitwise(op: str, fn):
    """&, |, ^ and ~ on bool or integer tensors (masks), as torch."""
    def bitwise(a, b) -> Tensor:
        a, b = _pair(a, b, op)
        if a.dtype.kind not in "biu" or b.dtype.kind not in "biu":
            raise TypeError(f"{op}: only bool and integer tensors, got {a.dtype} and {b.dtype}")
        return Tensor(_broadcast_op(op, fn, a, b))

    return bitwise


bitwise_and = _bitwise("bitwise_and", np.bitwise_and)
bitwise_or = _bitwise("bitwise_or", np.bitwise_or)
bitwise_xor = _bitwise("bitwise_xor", np.bitwise_xor)


def bitwise_not(x: Tensor) -> Tensor:
    if x.dtype.kind not in "biu":
        raise TypeError(f"bitwise_not: only bool and integer tensors, got {x.dtype}")
    return Tensor(np.invert(x.data))


def isnan(x: Tensor) -> Tensor:
    return Tensor(np.isnan(x.data))


def isfinite(x: Tensor) -> Tensor:
    return Tensor(np.isfinite(x.data))


def argmax(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(x, dim, keepdim, np.argmax, "argmax")


def argmin(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:
    return _arg_extreme(x, dim, keepdim, np.argmin, "argmin")


def _arg_extreme(x, dim, keepdim, fn, op):
    if x.data.size == 0 and (dim is None or x.shape[_dim(dim, x.ndim, op, x.shape)] == 0):
        raise ValueError(f"{op}: cannot reduce an empty dimension (shape {x.shape}, dim {dim})")
    if dim is None:  # the flat index; keepdim keeps every dim with size 1, as torch
        return Tensor(fn(x.data).astype(np.int64).reshape((1,) * x.ndim if keepdim else ()))
    axis = _dim(dim, x.ndim, op, x.shape)
    return Tensor(fn(x.data, axis=axis, keepdims=keepdim).astype(np.int64))


# ---- reductions ------------------------------------------------------------------------------
def sum(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:  # noqa: A001 - torch's name
    axes = _reduction_dims(dim, x.ndim, "sum", x.shape)
    data = x.data if dtype is None else x.data.astype(dtype)
    if data.dtype.kind in "biu":
        data = data.astype(np.int64, copy=False)  # torch sums bool and integers as int64
    out = data.sum(axis=axes, keepdims=keepdim)
    return result(out, (x,), lambda g: (_expand_reduced(g, x.shape, axes, keepdim),), "SumBackward")


def mean(x: Tensor, dim=None, keepdim: bool = False, dtype=None) -> Tensor:
    if dtype is None and x.dtype.kind not in "fc":
        raise TypeError(f"mean: input dtype must be floating point, got {x.dtype} (shape {x.shape}); "
                        "pass dtype= or convert with .float()")
    axes = _reduction_dims(dim, x.ndim, "mean", x.shape)
    data = x.data if dtype is None else x.data.astype(dtype)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    with np.errstate(invalid="ignore", divide="ignore"):  # the mean of nothing is NaN, as torch
        out = data.sum(axis=axes, keepdims=keepdim) / count

    def backward(g):
        return (_expand_reduced(g / builtins.max(count, 1), x.shape, axes, keepdim),)

    return result(out, (x,), backward, "MeanBackward")


def var(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """Variance with Bessel's correction by default (correction=1), as torch.var."""
    if correction is None:
        correction = 1 if unbiased is None or unbiased else 0
    axes = _reduction_dims(dim, x.ndim, "var", x.shape)
    count = int(np.prod([x.shape[a] for a in axes], dtype=np.int64))
    centred = sub(x, mean(x, axes, keepdim=True))
    return div(sum(mul(centred, centred), axes, keepdim=keepdim), builtins.max(count - correction, 0))


def std(x: Tensor, dim=None, unbiased: bool | None = None, keepdim: bool = False, *, correction=None) -> Tensor:
    """sqrt(var), whose gradient is 0 where the std is 0 (a constant slice), as torch: the chain
    rule through sqrt would give 0 * inf = NaN there."""
    variance = var(x, dim, unbiased, keepdim, correction=correction)
    with np.errstate(invalid="ignore"):
        out = np.sqrt(variance.data)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            return (np.where(out == 0, 0, g / (2 * out)),)

    return result(out, (variance,), backward, "StdBackward")


def max(x: Tensor, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    """max(x): the largest element (gradient shared evenly among ties, as torch);
    max(x, dim): (values, indices), the gradient going to the arg-max;
    max(x, other_tensor): the elementwise maximum."""
    if isinstance(dim, Tensor):
        return maximum(x, dim)
    return _extreme(x, dim, keepdim, np.argmax, np.max, "max")


def min(x: Tensor, dim=None, keepdim: bool = False):  # noqa: A001 - torch's name
    if isinstance(dim, Tensor):
        return minimum(x, dim)
    return _extreme(x, dim, keepdim, np.argmin, np.min, "min")


def amax(x: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    """The max over dims (all when dim=()); gradient shared evenly among ties, as torch.amax."""
    return _extreme_all(x, dim, keepdim, np.max, "amax")


def amin(x: Tensor, dim=(), keepdim: bool = False) -> Tensor:
    return _extreme_all(x, dim, keepdim, np.min, "amin")


def _extreme(x: Tensor, dim, keepdim: bool, arg_fn, all_fn, op: str):
    """max/min: over everything (a Tensor), or along one dim ((values, indices), gradient to the index)."""
    if dim is None:
        return _extreme_all(x, None, False, all_fn, op)
    axis = _dim(dim, x.ndim, op, x.shape)
    if x.ndim and x.shape[axis] == 0:
        raise IndexError(f"{op}: cannot reduce over dim {dim} of size 0 (shape {x.shape})")
    data = x.data.reshape(1) if x.ndim == 0 else x.data
    index = np.expand_dims(arg_fn(data, axis=axis), axis)
    if isinstance(data, np.ndarray):
        values = np.take_along_axis(data, index, axis=axis)
    else:  # on a device: the values come with the indices; the backward scatters through a mask
        values = (data.min if arg_fn is np.argmin else data.max)(axis=axis, keepdims=True)

    def backward(g):
        if not isinstance(g, np.ndarray):
            return (np.where(_device.one_hot_along(index, axis, data.shape[axis]),
                             g if keepdim else np.expand_dims(g, axis), 0).reshape(x.shape),)
        grad = np.zeros(data.shape, dtype=g.dtype)
        np.put_along_axis(grad, index, g if keepdim else np.expand_dims(g, axis), axis=axis)
        return (grad.reshape(x.shape),)

    indices = index
    if not keepdim:
        values, indices = values.squeeze(axis), indices.squeeze(axis)
    if x.ndim == 0:
        values, indices = values.reshape(()), indices.reshape(())
    return MaxMin(result(values, (x,), backward, op.capitalize() + "Backward"), Tensor(indices.astype(np.int64)))


def _extreme_all(x: Tensor, dim, keepdim: bool, fn, op: str) -> Tensor:
    axes = _reduction_dims(dim, x.ndim, op, x.shape)
    try:
        out = fn(x.data, axis=axes, keepdims=keepdim)
    except ValueError:
        raise ValueError(f"{op}: cannot reduce an empty tensor of shape {x.shape} over dims {axes}") from None

    def backward(g):
        extreme = _expand_reduced(out, x.shape, axes, keepdim)
        winners = x.data == extreme
        if op in ("max", "min") and x.dtype.kind == "f":  # as torch: a NaN result's gradient goes to the NaNs
            winners = winners | (np.isnan(x.data) & np.isnan(extreme))
        count = winners.sum(axis=axes, keepdims=True)
        share = _expand_reduced(g, x.shape, axes, keepdim) / np.maximum(count, 1)
        grad = np.where(winners, share, 0)
        if op in ("amax", "amin"):  # as torch: no element equals a NaN result, and its slice's gradient is NaN
            grad = np.where(count == 0, np.nan, grad)
        return (grad.astype(g.dtype),)

    return result(out, (x,), backward, op.capitalize() + "Backward")


def logsumexp(x: Tensor, dim, keepdim: bool = False) -> Tensor:
    """log(sum(exp(x))) over dims, stable for large inputs."""
    axes = _reduction_dims(dim, x.ndim, "logsumexp", x.shape)
    data = _float_data(x)
    shift = np.max(data, axis=axes, keepdims=True) if data.size else np.zeros((1,) * data.ndim, data.dtype)
    shift = np.where(np.isfinite(shift), shift, 0)
    out = np.log(np.exp(data - shift).sum(axis=axes, keepdims=True)) + shift

    def backward(g):
        return (_expand_reduced(g, x.shape, axes, keepdim) * np.exp(data - out),)

    return result(out if keepdim else out.squeeze(axes), (x,), backward, "LogsumexpBackward")


# ---- shapes ---------------------------------------------------------------------------------
def _reshaped(x: Tensor, shape: tuple, op: str) -> Tensor:
    """Every shape-only op (reshape, view, flatten, squeeze, unsqueeze) is this one graph node."""
    try:
        out = x.data.reshape(shape)
    except ValueError:
        raise ValueError(f"{op}: cannot reshape a tensor of shape {x.shape} ({x.data.size} elements) "
                         f"into shape {shape}") from None
    return result(out, (x,), lambda g: (g.reshape(x.shape),), "ViewBackward")


def reshape(x: Tensor, *shape) -> Tensor:
    return _reshaped(x, _shape_args(shape, "reshape"), "reshape")


def view(x: Tensor, *shape) -> Tensor:
    return _reshaped(x, _shape_args(shape, "view"), "view")


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    if x.ndim == 0:
        return _reshaped(x, (1,), "flatten")
    start = _dim(start_dim, x.ndim, "flatten", x.shape)
    end = _dim(end_dim, x.ndim, "flatten", x.shape)
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} (shape {x.shape})")
    middle = int(np.prod(x.shape[start:end + 1], dtype=np.int64))
    return _reshaped(x, x.shape[:start] + (middle,) + x.shape[end + 1:], "flatten")


def unflatten(x: Tensor, dim: int, sizes) -> Tensor:
    axis = _dim(dim, x.ndim, "unflatten", x.shape)
    sizes = tuple(sizes)
    if -1 in sizes:
        known = int(np.prod([s for s in sizes if s != -1], dtype=np.int64))
        sizes = tuple(x.shape[axis] // known if s == -1 and known else s for s in sizes)
    if int(np.prod(sizes, dtype=np.int64)) != x.shape[axis]:
        raise ValueError(f"unflatten: sizes {sizes} do not multiply to dim {dim} of shape {x.shape}")
    return _reshaped(x, x.shape[:axis] + sizes + x.shape[axis + 1:], "unflatten")


def squeeze(x: Tensor, dim=None) -> Tensor:
    """Drop the given size-1 dims (all size-1 dims when dim is None); other dims are kept, as torch."""
    axes = _dims(dim, x.ndim, "squeeze", x.shape) if x.ndim else ()
    shape = tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1))
    return _reshaped(x, shape, "squeeze")


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise IndexError(f"unsqueeze: dim {dim} is out of range for a tensor of shape {x.shape} "
                         f"(expected a dim in [{-x.ndim - 1}, {x.ndim}])")
    axis = dim % (x.ndim + 1)
    return _reshaped(x, x.shape[:axis] + (1,) + x.shape[axis:], "unsqueeze")


def permute(x: Tensor, *dims) -> Tensor:
    dims = _shape_args(dims, "permute")
    perm = tuple(_dim(d, x.ndim, "permute", x.shape) for d in dims) if x.ndim else ()
    if sorted(perm) != list(range(x.ndim)):
        raise ValueError(f"permute: dims {dims} are not a permutation of the {x.ndim} dims of shape {x.shape}")
    inverse = tuple(np.argsort(perm))
    return result(x.data.transpose(perm), (x,), lambda g: (g.transpose(inverse),), "PermuteBackward")


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    if x.ndim == 0:
        return x
    perm = list(range(x.ndim))
    a, b = _dim(dim0, x.ndim, "transpose", x.shape), _dim(dim1, x.ndim, "transpose", x.shape)
    perm[a], perm[b] = perm[b], perm[a]
    return permute(x, perm)


def t(x: Tensor) -> Tensor:
    if x.ndim > 2:
        raise ValueError(f"t: expects a tensor with at most 2 dims, got shape {x.shape}")
    return transpose(x, 0, -1)


def expand(x: Tensor, *sizes) -> Tensor:
    """Broadcast to a larger shape without copying (-1 keeps a dim), as torch.expand."""
    sizes = _shape_args(sizes, "expand")
    lead = len(sizes) - x.ndim
    if lead < 0:
        raise ValueError(f"expand: the number of sizes {sizes} is less than the dims of shape {x.shape}")
    target = tuple(x.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
    try:
        out = np.broadcast_to(x.data, target)
    except ValueError:
        raise ValueError(f"expand: cannot expand shape {x.shape} to {sizes}") from None
    return result(out, (x,), lambda g: (unbroadcast(g, x.shape),), "ExpandBackward")


def broadcast_to(x: Tensor, shape) -> Tensor:
    return expand(x, tuple(shape))


def contiguous(x: Tensor) -> Tensor:
    if x.data.flags.c_contiguous:
        return x
    return result(_device.ascontiguousarray(x.data), (x,), lambda g: (g,), "CloneBackward")


def clone(x: Tensor) -> Tensor:
    return result(x.data.copy(), (x,), lambda g: (g,), "CloneBackward")


def astype(x: Tensor, dtype) -> Tensor:
    """A copy in another dtype; the gradient is cast back (integers take no gradient)."""
    dtype = np.dtype(dtype) if not isinstance(dtype, str) else np.dtype(_DTYPE_NAMES.get(dtype, dtype))
    if dtype == x.dtype:
        return x
    out = x.data.astype(dtype)
    if dtype.kind not in "fc":
        return Tensor(out)
    return result(out, (x,), lambda g: (g.astype(x.dtype),), "ToCopyBackward")


_DTYPE_NAMES = {"float": "float32", "double": "float64", "long": "int64", "int": "int32", "half": "float16"}


def to(x: Tensor, *args, dtype=None, device=None, **kwargs) -> Tensor:
    """to(dtype), to(device), to(device, dtype), to(other_tensor), as torch: x itself when nothing
    changes; otherwise a copy that stays in the graph (the gradient goes back to x's device)."""
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, _device_type) or (isinstance(arg, str) and arg.split(":")[0] in ("cpu", "cuda")):
            device = arg
        elif isinstance(arg, int) and not isinstance(arg, bool):
            device = arg
        else:
            dtype = arg
    if device is not None:
        target = _device_type(device)
        source = x.device
        if target.type != source.type or (target.type == "cuda" and target.index not in (None, source.index)):
            moved = _device.to_device(x.data, target, "to")
            back = source
            out = result(moved, (x,), lambda g: (_device.to_device(g, back, "to"),), "ToCopyBackward")
            return out if dtype is None else astype(out, dtype)
    return x if dtype is None else astype(x, dtype)


def flip(x: Tensor, dims) -> Tensor:
    axes = _dims(dims, x.ndim, "flip", x.shape)
    return result(np.flip(x.data, axes), (x,), lambda g: (np.flip(g, axes),), "FlipBackward")


def pad(x: Tensor, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """torch's F.pad: `pad` lists (before, after) pairs from the last dim backwards. Modes: constant,
    reflect, replicate, circular. Each padded dim is a gather along that axis, so the backward is a
    scatter-add per padded dim (np.add.at), and no mode needs its own gradient."""
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: padding {tuple(pad)} must hold (before, after) pairs for at most {x.ndim} dims "
                         f"(input shape {x.shape})")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode {mode!r} is not one of constant, reflect, replicate, circular")
    widths = {x.ndim - 1 - i: (int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(len(pad) // 2)}
    if any(before < 0 or after < 0 for before, after in widths.values()):
        raise ValueError(f"pad: negative padding {tuple(pad)} is not supported (input shape {x.shape})")
    if mode == "constant":
        out = np.pad(x.data, [widths.get(d, (0, 0)) for d in range(x.ndim)], constant_values=value)
        inside = tuple(slice(b, b + n) for (b, _), n in zip([widths.get(d, (0, 0)) for d in range(x.ndim)], x.shape))
        return result(out, (x,), lambda g: (g[inside],), "ConstantPadBackward")
    sources = {d: _pad_source_index(x.shape[d], before, after, mode, x.shape)
               for d, (before, after) in widths.items() if before or after}
    out = x.data
    for d, index in sources.items():
        out = np.take(out, index, axis=d)

    def backward(g):
        for d, index in sources.items():
            shape = list(g.shape)
            shape[d] = x.shape[d]
            folded = np.zeros(shape, dtype=g.dtype)
            np.add.at(folded, (slice(None),) * d + (index,), g)
            g = folded
        return (g,)

    return result(out, (x,), backward, "PadBackward")


def _pad_source_index(n: int, before: int, after: int, mode: str, shape) -> np.ndarray:
    """For each position of a padded dim, the input position it copies."""
    if n == 0:
        raise ValueError(f"pad: {mode} padding of an empty dim has nothing to copy (input shape {shape})")
    positions = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(positions, 0, n - 1)
    if mode == "circular":
        if before > n or after > n:
            raise ValueError(f"pad: circular padding ({before}, {after}) is larger than the dim {n} (shape {shape})")
        return positions % n
    if before >= n or after >= n:
        raise ValueError(f"pad: reflect padding ({before}, {after}) must be smaller than the dim {n} (shape {shape})")
    period = 2 * (n - 1) if n > 1 else 1
    folded = np.abs(positions) % period
    return np.where(folded >= n, period - folded, folded)


# ---- indexing --------------------------------------------------------------------------------
def _index_part(part):
    if isinstance(part, Tensor):
        part = part.data
    if isinstance(part, list):
        return np.asarray(part)
    if isinstance(part, np.ndarray):  # a copy: the backward reads it after the caller may have reused it
        return part.copy()
    return part


def _is_advanced(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (np.ndarray, bool, np.bool_)) for p in parts)


def _integer_index(index):
    """Boolean masks replaced by their nonzero() positions, as NumPy defines them; np.add.at
    then accumulates repeated integer indices. A 0-d mask (x[tensor(True)]) has no positions and
    stays: np.add.at takes it as x[True]."""
    parts = index if isinstance(index, tuple) else (index,)
    out = []
    for p in parts:
        if isinstance(p, np.ndarray) and p.dtype == np.bool_ and p.ndim:
            out.extend(np.nonzero(p))
        else:
            out.append(p)
    return tuple(out)


def getitem(x: Tensor, index) -> Tensor:
    """x[index] with ints, slices, None, Ellipsis, integer arrays and boolean masks (NumPy rules)."""
    index = tuple(_index_part(p) for p in index) if isinstance(index, tuple) else _index_part(index)
    if not isinstance(x.data, np.ndarray) and _is_advanced_on_device(index):
        return _device_getitem(x, index)
    try:
        out = x.data[index]
    except IndexError as error:
        raise IndexError(f"getitem: index {index!r} is invalid for a tensor of shape {x.shape}: {error}") from None
    advanced = _is_advanced(index)

    def backward(g):
        grad = np.zeros(x.shape, dtype=g.dtype) if isinstance(g, np.ndarray) else _device.full(x.shape, 0, g.dtype, g)
        if advanced:
            np.add.at(grad, _integer_index(index), g)  # repeated indices accumulate
        else:
            grad[index] = g
        return (grad,)

    return result(out, (x,), backward, "IndexBackward")


def _is_advanced_on_device(index) -> bool:
    """An index array or mask among the parts (a 0-d integer array is an integer: the device's basic indexing)."""
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, (bool, np.bool_)) or ((isinstance(p, np.ndarray) or _device.is_device_array(p))
                                                   and not (p.ndim == 0 and p.dtype.kind in "iu")) for p in parts)


def _device_getitem(x: Tensor, index) -> Tensor:
    """x[index] on a device for one index array along the first dim (x[rows]: integers of any shape,
    host or device, or a bool mask of x's first dim, read on the host as its positions) as index_select,
    the backend's row gather for floats; other advanced indexing is not implemented there."""
    part = index[0] if isinstance(index, tuple) and len(index) == 1 else index
    if isinstance(part, tuple) or not hasattr(part, "dtype") or x.ndim == 0:
        raise NotImplementedError(f"getitem: advanced indexing of a CUDA tensor (shape {x.shape}) is implemented "
                                  "for one index array along the first dim only (x[rows])")
    if part.dtype == np.bool_:
        if part.ndim != 1:
            raise NotImplementedError(f"getitem: a {part.ndim}-d mask of a CUDA tensor (shape {x.shape}); one "
                                      "along the first dim is implemented")
        mask = part if isinstance(part, np.ndarray) else _device.to_host(part)  # waits for the device, as torch
        if mask.shape != x.shape[:1]:
            raise IndexError(f"getitem: a mask of shape {mask.shape} does not match the first dim of a tensor of "
                             f"shape {x.shape}")
        return index_select(x, 0, np.flatnonzero(mask))
    if part.dtype.kind not in "iu":
        raise IndexError(f"getitem: index arrays must be integer or bool, got {part.dtype} (tensor shape {x.shape})")
    rows = index_select(x, 0, Tensor(part.reshape(-1)) if _device.is_device_array(part) else part.reshape(-1))
    return reshape(rows, tuple(part.shape) + x.shape[1:])


def setitem(x: Tensor, index, value) -> None:
    """In-place x[index] = value, allowed only where no gradient is being recorded (as torch for leaves)."""
    value = as_tensor(value, like=x)
    if _recording(x, value):  # writing into the storage would silently lose a gradient
        raise RuntimeError(f"setitem: in-place assignment into a tensor of shape {x.shape} while recording grad; "
                           "wrap it in rosenblatt.no_grad() or assign into .data")
    index = tuple(_index_part(p) for p in index) if isinstance(index, tuple) else _index_part(index)
    try:
        x.data[index] = value.data
        x._bump_version()
    except (IndexError, ValueError) as error:
        raise ValueError(f"setitem: cannot assign a value of shape {value.shape} to index {index!r} of a tensor "
                         f"of shape {x.shape}: {error}") from None


def _recording(*tensors) -> bool:
    from .tensor import is_grad_enabled
    return is_grad_enabled() and any(t.requires_grad for t in tensors)


def gather(x: Tensor, dim: int, index) -> Tensor:
    """out[..i..] = x[..index[..i..]..] along dim, as torch.gather; repeated indices accumulate."""
    axis = _dim(dim, x.ndim, "gather", x.shape)
    index = index.data if isinstance(index, Tensor) else np.asarray(index)
    if index.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got {index.dtype}")
    if index.ndim != x.ndim:
        raise ValueError(f"gather: index shape {index.shape} and input shape {x.shape} differ in their number of dims")
    if any(index.shape[d] > x.shape[d] for d in range(x.ndim) if d != axis):
        raise ValueError(f"gather: index shape {index.shape} is larger than input shape {x.shape} outside dim {axis}")
    shape = x.shape
    if any(index.shape[d] < x.shape[d] for d in range(x.ndim) if d != axis):
        # torch reads only the part of x the index covers (NumPy would broadcast the index over the rest)
        x = x[tuple(slice(None) if d == axis else slice(0, index.shape[d]) for d in range(x.ndim))]
    if not isinstance(x.data, np.ndarray):
        return _device_gather(x, axis, index)
    n = x.shape[axis]
    if index.size and (index.min() < -n or index.max() >= n):
        raise IndexError(f"gather: an index is out of range [-{n}, {n}) for dim {axis} (input shape {shape}, "
                         f"index shape {index.shape})")
    out = np.take_along_axis(x.data, index, axis=axis)
    index = index.copy()  # the backward reads it: a later change to the caller's array must not reach it

    def backward(g):
        grad = np.zeros(x.shape, dtype=g.dtype)
        positions = list(np.indices(index.shape, sparse=True))
        positions[axis] = index
        np.add.at(grad, tuple(positions), g)
        return (grad,)

    return result(out, (x,), backward, "GatherBackward")


def index_select(x: Tensor, dim: int, index) -> Tensor:
    """The slices x[..., index[0], ...], x[..., index[1], ...], ... along dim, as torch.index_select:
    index is a 1-D (or 0-D) integer tensor; a repeated index adds its slices' gradients."""
    axis = _dim(dim, x.ndim, "index_select", x.shape)
    if isinstance(index, Tensor):
        index = index.cpu().data
    elif not isinstance(index, np.ndarray):  # a list or a number; [] means no index, not a float64 one
        index = np.asarray(index)
        index = index.astype(np.int64) if index.size == 0 else index
    if index.dtype.kind not in "iu" or index.ndim > 1:
        raise TypeError(f"index_select: index must be a 1-D integer tensor, got dtype {index.dtype} and shape "
                        f"{index.shape} (input shape {x.shape})")
    index = index.reshape(-1).copy()  # the backward reads it: a later change to the caller's array must not reach it
    if x.ndim == 0 and index.size != 1:
        raise IndexError(f"index_select: a 0-d input (shape ()) takes an index of exactly one value, got {index.size}")
    n = x.shape[axis] if x.ndim else 1
    if index.size and (index.min() < -n or index.max() >= n):
        raise IndexError(f"index_select: an index is out of range [-{n}, {n}) for dim {axis} (input shape "
                         f"{x.shape})")
    if x.ndim == 0:  # torch: a scalar takes one index, 0, and stays 0-d
        return reshape(index_select(reshape(x, (1,)), 0, index), ())
    index = np.where(index < 0, index + n, index).astype(np.int64, copy=False)
    if not isinstance(x.data, np.ndarray):
        if x.dtype in (np.float32, np.float64):
            return _device_index_select(x, axis, index)
        # other dtypes: a gather along dim with the index spread over the other dims
        shape = x.shape[:axis] + (len(index),) + x.shape[axis + 1:]
        spread = np.broadcast_to(index.reshape([-1 if d == axis else 1 for d in range(x.ndim)]), shape)
        return gather(x, axis, Tensor(_device.on_device_of(np.ascontiguousarray(spread), x.data)))
    out = np.take(x.data, index, axis=axis)

    def backward(g):
        rows = np.moveaxis(np.asarray(g), axis, 0).reshape(len(index), math.prod(x.shape) // n if n else 0)
        moved_shape = (n,) + tuple(np.delete(x.shape, axis))
        return (np.moveaxis(rows_sum(rows, index, n).reshape(moved_shape), 0, axis),)

    return result(out, (x,), backward, "IndexSelectBackward")


def rows_sum(g: np.ndarray, index: np.ndarray, rows: int) -> np.ndarray:
    """(rows, D) zeros where row i sums the rows of g (len(index), D) whose index is i (in [0, rows)):
    the gradient of a row gather. Sorting the indices and summing each run with add.reduceat is
    5-6x faster than np.add.at's scatter (6400 indices of 64 floats into 65 rows: 5.6 -> 1.0 ms) and,
    summing pairwise, no less accurate."""
    out = np.zeros((rows,) + g.shape[1:], g.dtype)
    if index.size:
        order = np.argsort(index, kind="stable")
        ordered = index[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
        out[ordered[starts]] = np.add.reduceat(g[order], starts, axis=0)
    return out


def _device_index_select(x: Tensor, axis: int, index: np.ndarray) -> Tensor:
    """index_select of a float device tensor as the backend's row gather (embedding_forward) of x
    laid out (n, rest) with dim first, and its scatter-add (embedding_backward) backward."""
    kernels = _device.backend("index_select")
    n = x.shape[axis]
    on_device = _device.on_device_of(index, x.data)
    moved = np.moveaxis(x.data, axis, 0)
    rest = math.prod(moved.shape[1:])  # explicit: -1 cannot be inferred for an empty array
    rows = kernels.embedding_forward(_device.ascontiguousarray(moved).reshape(n, rest), on_device)
    out = np.moveaxis(rows.reshape((len(index),) + moved.shape[1:]), 0, axis)

    def backward(g):
        g_rows = _device.ascontiguousarray(np.moveaxis(g, axis, 0)).reshape(len(index), rest)
        grad = kernels.embedding_backward(g_rows, on_device, n, None)
        return (np.moveaxis(grad.reshape(moved.shape), 0, axis),)

    return result(_device.ascontiguousarray(out), (x,), backward, "IndexSelectBackward")


def _device_gather(x: Tensor, axis: int, index) -> Tensor:
    """gather on a device through a one-hot mask of the indices, index.shape + (n,): the forward is a
    masked sum over the new last axis, the backward the same mask summed back (memory index.size * n)."""
    _device.same_device("gather", x.data, index)
    n = x.shape[axis]
    index = np.where(index < 0, index + n, index)  # negative indices count from the end, as on the CPU
    if index.size and bool(((index < 0) | (index >= n)).any()):  # waits for the device
        raise IndexError(f"gather: an index is out of bounds for dim {axis} of size {n} (input shape {x.shape})")
    mask = _device.one_hot_along(np.expand_dims(index, -1), index.ndim, n)
    moved = np.expand_dims(np.moveaxis(x.data, axis, -1), axis)  # x's dims, axis kept with size 1, then n
    try:
        out = np.where(mask, moved, 0).sum(axis=-1)
    except ValueError:
        raise ValueError(f"gather: index shape {index.shape} does not match input shape {x.shape} outside dim "
                         f"{axis}") from None

    def backward(g):
        spread = unbroadcast(np.where(mask, np.expand_dims(g, -1), 0), moved.shape)
        return (np.moveaxis(spread.squeeze(axis), -1, axis),)

    return result(out, (x,), backward, "GatherBackward")


def masked_fill(x: Tensor, mask, value) -> Tensor:
    mask = mask if isinstance(mask, Tensor) else Tensor(np.array(mask))  # see where() on the mask's lifetime
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}")
    return where(mask, as_tensor(value, like=x), x)


# ---- joining -----------------------------------------------------------------------------------
def _joined_data(tensors) -> list:
    """The arrays of cat's and stack's inputs in torch's promoted dtype: the highest category wins, then the
    widest dtype within it (NumPy alone would make float32 joined with int64 float64)."""
    top = builtins.max(_KIND_CATEGORY.get(t.dtype.kind, 3) for t in tensors)
    common = np.result_type(*[t.dtype for t in tensors if _KIND_CATEGORY.get(t.dtype.kind, 3) == top])
    return [t.data.astype(common, copy=False) for t in tensors]


def cat(tensors, dim: int = 0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    axis = _dim(dim, tensors[0].ndim, "cat", tensors[0].shape)
    try:
        out = np.concatenate(_joined_data(tensors), axis=axis)
    except ValueError:
        _check_same_device("cat", *tensors)
        raise ValueError(f"cat: shapes {[t.shape for t in tensors]} cannot be concatenated along dim {dim}") from None
    splits = np.cumsum([t.shape[axis] for t in tensors])[:-1]
    return result(out, tuple(tensors), lambda g: tuple(np.split(g, splits, axis=axis)), "CatBackward")


concatenate = cat


def stack(tensors, dim: int = 0) -> Tensor:
    tensors = [as_tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    if builtins.any(t.shape != tensors[0].shape for t in tensors):
        raise ValueError(f"stack: expects tensors of equal shape, got {[t.shape for t in tensors]}")
    if not -tensors[0].ndim - 1 <= dim <= tensors[0].ndim:
        raise IndexError(f"stack: dim {dim} is out of range for tensors of shape {tensors[0].shape}")
    axis = dim % (tensors[0].ndim + 1)
    out = np.stack(_joined_data(tensors), axis=axis)
    return result(out, tuple(tensors), lambda g: tuple(np.moveaxis(g, axis, 0)), "StackBackward")


def split(x: Tensor, split_size_or_sections, dim: int = 0):
    """Pieces of x along dim: equal chunks of a given size, or the listed sizes, as torch.split."""
    axis = _dim(dim, x.ndim, "split", x.shape)
    n = x.shape[axis]
    if isinstance(split_size_or_sections, int):
        size = split_size_or_sections
        if size <= 0:
            raise ValueError(f"split: split_size must be positive, got {size}")
        bounds = list(range(0, n, size)) + [n] if n else [0, 0]  # an empty dim gives one empty piece, as torch
    else:
        sizes = list(split_size_or_sections)
        if any(s < 0 for s in sizes):
            raise ValueError(f"split: sections {sizes} must not be negative (dim {dim} of shape {x.shape})")
        if builtins.sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to dim {dim} of shape {x.shape}")
        bounds = [0] + list(np.cumsum(sizes))
    slicer = [slice(None)] * x.ndim
    pieces = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        slicer[axis] = slice(int(start), int(stop))
        pieces.append(getitem(x, tuple(slicer)))
    return tuple(pieces)


def chunk(x: Tensor, chunks: int, dim: int = 0):
    n = x.shape[_dim(dim, x.ndim, "chunk", x.shape)]
    if chunks < 1:
        raise ValueError(f"chunk: chunks must be positive, got {chunks} (shape {x.shape})")
    if n == 0:  # torch: `chunks` empty pieces
        return split(x, [0] * chunks, dim)
    return split(x, builtins.max(-(-n // chunks), 1), dim)


def unbind(x: Tensor, dim: int = 0):
    axis = _dim(dim, x.ndim, "unbind", x.shape)
    slicer = [slice(None)] * x.ndim
    pieces = []
    for i in range(x.shape[axis]):
        slicer[axis] = i
        pieces.append(getitem(x, tuple(slicer)))
    return tuple(pieces)


def where(condition, a=None, b=None):
    """where(cond, a, b) picks a where cond holds, else b; where(cond) gives the indices of True."""
    if a is None and b is None:
        cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(cond))
    # The backward reads the condition. A Tensor condition joins the node's inputs, so an in-place
    # change to it before backward is refused (as torch's version counters do); any other array is
    # copied, since a caller may reuse it.
    if not isinstance(condition, Tensor):
        condition = Tensor(np.array(condition))
    cond = condition.data
    if cond.dtype != np.bool_:
        raise TypeError(f"where: condition must be a bool tensor, got {cond.dtype} (shape {cond.shape})")
    a, b = _pair(a, b, "where")
    common = _common_dtype(a, b)
    try:
        out = np.where(cond, a.data.astype(common, copy=False), b.data.astype(common, copy=False))
    except ValueError:
        _check_same_device("where", Tensor(cond), a, b)
        raise ValueError(f"where: shapes {cond.shape}, {a.shape} and {b.shape} cannot be broadcast together") from None

    def backward(g):
        return (unbroadcast(np.where(cond, g, 0), a.shape) if a.requires_grad else None,
                unbroadcast(np.where(cond, 0, g), b.shape) if b.requires_grad else None)

    return result(out, (a, b, condition), backward, "WhereBackward")  # the condition takes no gradient


# ---- elementwise functions ---------------------------------------------------------------------
def exp(x: Tensor) -> Tensor:
    out = np.exp(_float_data(x))
    return result(out, (x,), lambda g: (g * out,), "ExpBackward")


def expm1(x: Tensor) -> Tensor:
    """exp(x) - 1, exact near 0 (where exp(x) - 1 loses the digits of x)."""
    data = _float_data(x)
    out = np.expm1(data) if isinstance(data, np.ndarray) else np.exp(data) - 1  # no expm1 kernel on the device
    return result(out, (x,), lambda g: (g * np.exp(data),), "Expm1Backward")


def log(x: Tensor) -> Tensor:
    data = _float_data(x)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, log(-1) = nan, as IEEE says
        out = np.log(data)
    return result(out, (x,), lambda g: (g / data,), "LogBackward")


def log1p(x: Tensor) -> Tensor:
    data = _float_data(x)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.log1p(data)
    return result(out, (x,), lambda g: (g / (1 + data),), "Log1pBackward")


def sqrt(x: Tensor) -> Tensor:
    with np.errstate(invalid="ignore"):
        out = np.sqrt(_float_data(x))
    with np.errstate(divide="ignore"):
        return result(out, (x,), lambda g: (g / (2 * out),), "SqrtBackward")


def abs(x: Tensor) -> Tensor:  # noqa: A001 - torch's name
    return result(np.abs(x.data), (x,), lambda g: (g * np.sign(x.data),), "AbsBackward")


def sign(x: Tensor) -> Tensor:
    return Tensor(np.sign(x.data))


def sin(x: Tensor) -> Tensor:
    data = _float_data(x)
    return result(np.sin(data), (x,), lambda g: (g * np.cos(data),), "SinBackward")


def cos(x: Tensor) -> Tensor:
    data = _float_data(x)
    return result(np.cos(data), (x,), lambda g: (-g * np.sin(data),), "CosBackward")


def clamp(x: Tensor, min=None, max=None) -> Tensor:  # noqa: A002 - torch's names
    """Limit x to [min, max]; the gradient passes where min <= x <= max (as torch)."""
    if min is None and max is None:
        raise ValueError(f"clamp: at least one of min and max must be given (shape {x.shape})")
    if isinstance(min, Tensor) or isinstance(max, Tensor):  # tensor bounds: gradients to the bounds too
        return _clamp_tensor_bounds(x, min, max)
    float_bound = isinstance(min, float) or isinstance(max, float)
    dtype = float32 if float_bound and x.dtype.kind != "f" else x.dtype  # int tensor, float bound: float32
    out = np.clip(x.data, min, max).astype(dtype, copy=False)
    inside = None
    if min is not None:
        inside = x.data >= min
    if max is not None:
        inside = x.data <= max if inside is None else inside & (x.data <= max)
    return result(out, (x,), lambda g: (np.where(inside, g, 0),), "ClampBackward")


def _clamp_tensor_bounds(x: Tensor, low, high) -> Tensor:
    """clamp with tensor bounds. torch's gradient rule, not maximum/minimum's even split at ties: x takes
    the gradient where low <= x <= high, low where x < low < high, high where x > high or high < low
    (where the bounds cross, the result is high)."""
    low = None if low is None else as_tensor(low, like=x)
    high = None if high is None else as_tensor(high, like=x)
    out = x if low is None else Tensor(_broadcast_op("clamp", np.maximum, x, low))
    out = out if high is None else Tensor(_broadcast_op("clamp", np.minimum, out, high))

    def backward(g):
        inside = True
        if low is not None:
            inside = x.data >= low.data
        if high is not None:
            inside = inside & (x.data <= high.data)
        grads = [unbroadcast(np.where(inside, g, 0), x.shape)]
        if low is not None:
            to_low = x.data < low.data if high is None else (x.data < low.data) & (low.data < high.data)
            grads.append(unbroadcast(np.where(to_low, g, 0), low.shape))
        if high is not None:
            to_high = x.data > high.data if low is None else (x.data > high.data) | (high.data < low.data)
            grads.append(unbroadcast(np.where(to_high, g, 0), high.shape))
        return tuple(grads)

    parents = (x,) + tuple(bound for bound in (low, high) if bound is not None)
    return result(out.data, parents, backward, "ClampBackward")


clip = clamp


def clamp_min(x: Tensor, min) -> Tensor:  # noqa: A002
    return clamp(x, min=min)


def clamp_max(x: Tensor, max) -> Tensor:  # noqa: A002
    return clamp(x, max=max)


# ---- activations -------------------------------------------------------------------------------
def sigmoid(x: Tensor) -> Tensor:
    out = _stable_sigmoid(_float_data(x))
    return result(out, (x,), lambda g: (g * out * (1 - out),), "SigmoidBackward")


def _stable_sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z) without overflow: exp only ever sees -|z|."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def tanh(x: Tensor) -> Tensor:
    out = np.tanh(_float_data(x))
    return result(out, (x,), lambda g: (g * (1 - out * out),), "TanhBackward")


def _zero_where_not(g: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """np.where(keep, g, 0) as one AND of the bits with an all-ones/all-zeros mask: several times
    faster than np.where on a random mask, and exact where g * keep would turn inf * 0 into NaN."""
    bits = np.dtype(f"i{g.itemsize}")
    return np.bitwise_and(g.view(bits), np.negative(keep.view(np.int8), dtype=bits)).view(g.dtype)


def relu(x: Tensor) -> Tensor:
    out = np.maximum(x.data, 0)
    if not isinstance(out, np.ndarray):
        return result(out, (x,), lambda g: (np.where(out <= 0, 0, g),), "ReluBackward")
    # The gradient passes unless out <= 0 (torch's threshold_backward): where x is NaN, so is out, and it passes.
    def backward(g):
        keep = out <= 0
        return (_zero_where_not(np.asarray(g, out.dtype), np.logical_not(keep, out=keep)),)

    return result(out, (x,), backward, "ReluBackward")


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    positive = x.data > 0
    if not (isinstance(x.data, np.ndarray) and 0 < negative_slope <= 1):
        out = np.where(positive, x.data, x.data * negative_slope)
        return result(out, (x,), lambda g: (np.where(positive, g, g * negative_slope),), "LeakyReluBackward")
    # With a slope in (0, 1], x * slope lies on x's side of 0 and not beyond x, so the maximum picks
    # what np.where would, +-0, infinities and NaN included; the backward multiplies by 1 or the slope,
    # chosen by bits: each several times faster than np.where on a random mask.
    out = np.maximum(x.data, x.data * negative_slope)

    def backward(g):
        g = np.asarray(g, out.dtype)
        bits = np.dtype(f"i{g.itemsize}")
        slope, one = np.array(negative_slope, g.dtype).view(bits), np.array(1, g.dtype).view(bits)
        factor = np.bitwise_and(np.negative(positive.view(np.int8), dtype=bits), slope ^ one)
        factor ^= slope
        return (g * factor.view(g.dtype),)

    return result(out, (x,), backward, "LeakyReluBackward")


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + e^(beta x)) / beta, linear where beta x > threshold (as torch)."""
    z = _float_data(x) * beta
    linear = z > threshold
    out = np.where(linear, z, np.log1p(np.exp(-np.abs(z))) + np.maximum(z, 0)) / beta
    return result(out, (x,), lambda g: (np.where(linear, g, g * _stable_sigmoid(z)),), "SoftplusBackward")


def _softmax_dim(x: Tensor, dim, op: str) -> int:
    if dim is None:  # torch's legacy implicit choice
        dim = 0 if x.ndim in (0, 1, 3) else 1
    return _dim(dim, x.ndim, op, x.shape) if x.ndim else 0


def softmax(x: Tensor, dim=None, dtype=None) -> Tensor:
    axis = _softmax_dim(x, dim, "softmax")
    if not isinstance(x.data, np.ndarray):
        return _device_softmax(x, axis, dtype, log=False)
    data = (x.data.astype(dtype) if dtype is not None else _float_data(x)).reshape(x.shape or (1,))
    e = np.exp(data - data.max(axis=axis, keepdims=True, initial=-np.inf))  # initial: a dim of size 0
    out = (e / e.sum(axis=axis, keepdims=True)).reshape(x.shape)

    def backward(g):
        return (out * (g - (g * out).sum(axis=axis if x.ndim else None, keepdims=True)),)

    return result(out, (x,), backward, "SoftmaxBackward")


def log_softmax(x: Tensor, dim=None, dtype=None) -> Tensor:
    axis = _softmax_dim(x, dim, "log_softmax")
    if not isinstance(x.data, np.ndarray):
        return _device_softmax(x, axis, dtype, log=True)
    data = (x.data.astype(dtype) if dtype is not None else _float_data(x)).reshape(x.shape or (1,))
    shifted = data - data.max(axis=axis, keepdims=True, initial=-np.inf)
    with np.errstate(divide="ignore"):  # a dim of size 0 sums to 0; its log meets no element
        out = (shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))).reshape(x.shape)

    def backward(g):
        return (g - np.exp(out) * g.sum(axis=axis if x.ndim else None, keepdims=True),)

    return result(out, (x,), backward, "LogSoftmaxBackward")


def _device_softmax(x: Tensor, axis: int, dtype, log: bool) -> Tensor:
    """softmax / log_softmax of a CUDA tensor: the row kernels work on the last axis, so another axis
    is swapped there and back (the kernels make their inputs contiguous)."""
    data = x.data.astype(dtype) if dtype is not None else _float_data(x)
    data = data.reshape(1) if x.ndim == 0 else data
    last = data.ndim - 1
    kernels = _device.backend("log_softmax" if log else "softmax")
    rows = data if axis == last else data.swapaxes(axis, last)
    out_rows = (kernels.log_softmax if log else kernels.softmax)(rows)
    out = (out_rows if axis == last else out_rows.swapaxes(axis, last)).reshape(x.shape)

    def backward(g):
        g_rows = g.reshape(data.shape)
        g_rows = g_rows if axis == last else g_rows.swapaxes(axis, last)
        grad = (kernels.log_softmax_backward if log else kernels.softmax_backward)(g_rows, out_rows)
        return ((grad if axis == last else grad.swapaxes(axis, last)).reshape(x.shape),)

    return result(out, (x,), backward, "LogSoftmaxBackward" if log else "SoftmaxBackward")


# ---- matrix products through the GEMM kernel ----------------------------------------------
def matmul(a, b) -> Tensor:
    """torch.matmul: 1-D x 1-D is a dot product, a 1-D operand gains (and then loses) a unit dim,
    2-D x 2-D is one GEMM, and leading batch dims broadcast."""
    a, b = _pair(a, b, "matmul")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: both arguments need at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned "
                         f"(inner dims {k_a} and {k_b} differ)")
    try:
        np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ValueError:
        raise ValueError(f"matmul: batch dims of shapes {a.shape} and {b.shape} cannot be broadcast "
                         "together") from None
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ: {a.dtype} and {b.dtype} (shapes {a.shape} and {b.shape})")
    _device.same_device("matmul", a.data, b.data)
    if a.dtype.kind not in "fc":  # integer products take no gradient and no kernel
        return Tensor(np.matmul(a.data, b.data))
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"matmul: unsupported dtype {a.dtype} (shapes {a.shape} and {b.shape}); "
                        "expected float32 or float64")
    if a.ndim == 1 and b.ndim == 1:
        return _reshaped(_matmul_2d_or_batched(_reshaped(a, (1, k_a), "matmul"), _reshaped(b, (k_b, 1), "matmul")),
                         (), "matmul")
    if a.ndim == 1:
        out = _matmul_2d_or_batched(_reshaped(a, (1, k_a), "matmul"), b)
        return _reshaped(out, out.shape[:-2] + out.shape[-1:], "matmul")
    if b.ndim == 1:
        out = _matmul_2d_or_batched(a, _reshaped(b, (k_b, 1), "matmul"))
        return _reshaped(out, out.shape[:-1], "matmul")
    return _matmul_2d_or_batched(a, b)


def mm(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"mm: expects 2-D tensors, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def bmm(a: Tensor, b: Tensor) -> Tensor:
    if a.ndim != 3 or b.ndim != 3 or a.shape[0] != b.shape[0]:
        raise ValueError(f"bmm: expects 3-D tensors with equal batch sizes, got shapes {a.shape} and {b.shape}")
    return matmul(a, b)


def _leading(shape) -> int:
    """The number of rows of shape's (..., n) as a matrix: reshape(-1, n) cannot tell it when n = 0."""
    return math.prod(shape[:-1])


def _matmul_2d_or_batched(a: Tensor, b: Tensor) -> Tensor:
    """a (..., M, K) @ b (..., K, N), both at least 2-D, shapes already checked."""
    kernels = _C if isinstance(a.data, np.ndarray) else _device.backend("matmul")
    if a.ndim == 2 and b.ndim == 2:
        def backward(g):
            grad_a = kernels.gemm(g, b.data, trans_b=True) if a.requires_grad else None  # g @ b^T
            grad_b = kernels.gemm(a.data, g, trans_a=True) if b.requires_grad else None  # a^T @ g
            return grad_a, grad_b

        return result(kernels.gemm(a.data, b.data), (a, b), backward, "MmBackward")

    if b.ndim == 2:
        # (..., M, K) @ (K, N) is one GEMM on the rows of a: (B*M, K) @ (K, N)
        (k, n), rows = b.shape, a.data.reshape(_leading(a.shape), a.shape[-1])

        def backward(g):
            g2 = g.reshape(_leading(g.shape), n)
            grad_a = kernels.gemm(g2, b.data, trans_b=True).reshape(a.shape) if a.requires_grad else None
            grad_b = kernels.gemm(rows, g2, trans_a=True) if b.requires_grad else None
            return grad_a, grad_b

        return result(kernels.gemm(rows, b.data).reshape(a.shape[:-1] + (n,)), (a, b), backward, "MmBackward")

    if kernels is not _C:
        return _device_batched_matmul(a, b, kernels)

    # general case: one GEMM per (broadcast) batch entry, written into slices of the result
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_full = np.broadcast_to(a.data, batch + a.shape[-2:])  # views: broadcasting copies nothing
    b_full = np.broadcast_to(b.data, batch + b.shape[-2:])
    (m, k), n = a.shape[-2:], b.shape[-1]
    out = np.empty(batch + (m, n), dtype=a.dtype)
    for i in np.ndindex(*batch):
        _C.gemm(a_full[i], b_full[i], out=out[i])

    def backward(g):
        grad_a = np.empty(batch + (m, k), dtype=g.dtype) if a.requires_grad else None
        grad_b = np.empty(batch + (k, n), dtype=g.dtype) if b.requires_grad else None
        for i in np.ndindex(*batch):
            if grad_a is not None:
                _C.gemm(g[i], b_full[i], trans_b=True, out=grad_a[i])
            if grad_b is not None:
                _C.gemm(a_full[i], g[i], trans_a=True, out=grad_b[i])
        return (None if grad_a is None else unbroadcast(grad_a, a.shape),
                None if grad_b is None else unbroadcast(grad_b, b.shape))

    return result(out, (a, b), backward, "BmmBackward")


def _device_batched_matmul(a: Tensor, b: Tensor, kernels) -> Tensor:
    """a (..., M, K) @ b (..., K, N) on a device: the batch dims broadcast and flatten into one batched
    GEMM (B, M, K) @ (B, K, N); the backward reads the transposed operands in place."""
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    (m, k), n = a.shape[-2:], b.shape[-1]
    a3 = np.broadcast_to(a.data, batch + (m, k)).reshape(-1, m, k)
    b3 = np.broadcast_to(b.data, batch + (k, n)).reshape(-1, k, n)

    def backward(g):
        g3 = g.reshape(-1, m, n)
        grad_a = kernels.matmul(g3, b3.swapaxes(1, 2)).reshape(batch + (m, k)) if a.requires_grad else None
        grad_b = kernels.matmul(a3.swapaxes(1, 2), g3).reshape(batch + (k, n)) if b.requires_grad else None
        return (None if grad_a is None else unbroadcast(grad_a, a.shape),
                None if grad_b is None else unbroadcast(grad_b, b.shape))

    return result(kernels.matmul(a3, b3).reshape(batch + (m, n)), (a, b), backward, "BmmBackward")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x @ weight^T + bias with weight (out_features, in_features): one GEMM with trans_b and the bias
    as its beta term, over all leading dims of x at once."""
    if not isinstance(x, Tensor) or not isinstance(weight, Tensor):
        raise TypeError(f"linear: input and weight must be Tensors, got {type(x).__name__} and "
                        f"{type(weight).__name__}")
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"linear: input shape {x.shape} does not match weight shape {weight.shape} "
                         "(expected input (..., in_features) and weight (out_features, in_features))")
    out_features, in_features = weight.shape
    if bias is not None and bias.shape != (out_features,):
        raise ValueError(f"linear: bias shape {bias.shape} does not match weight shape {weight.shape}")
    dtypes = {x.dtype, weight.dtype} | ({bias.dtype} if bias is not None else set())
    if len(dtypes) != 1 or x.dtype not in (np.float32, np.float64):
        raise TypeError(f"linear: expected one floating dtype, got input {x.dtype}, weight {weight.dtype}"
                        + (f", bias {bias.dtype}" if bias is not None else "") + f" (input shape {x.shape})")
    rows = x.data.reshape(_leading(x.shape), in_features)
    kernels = _C
    if not isinstance(rows, np.ndarray) or not isinstance(weight.data, np.ndarray):
        kernels = _device.kernels("linear", rows, weight.data, None if bias is None else bias.data)
    if kernels is not _C:  # on a device: the bias is added after the GEMM
        out = kernels.gemm(rows, weight.data, trans_b=True)
        if bias is not None:
            out = out + bias.data
    elif bias is None:
        out = _C.gemm(rows, weight.data, trans_b=True)
    else:
        out = np.empty((rows.shape[0], out_features), dtype=x.dtype)
        out[...] = bias.data
        _C.gemm(rows, weight.data, trans_b=True, beta=1.0, out=out)

    def backward(g):
        g2 = g.reshape(_leading(g.shape), out_features)
        grad_x = kernels.gemm(g2, weight.data).reshape(x.shape) if x.requires_grad else None
        grad_w = kernels.gemm(g2, rows, trans_a=True) if weight.requires_grad else None
        grad_b = g2.sum(axis=0) if bias is not None and bias.requires_grad else None
        return grad_x, grad_w, grad_b

    parents = (x, weight) if bias is None else (x, weight, bias)
    return result(out.reshape(x.shape[:-1] + (out_features,)), parents, backward, "AddmmBackward")


# ---- in-place updates (outside graph recording, as optimisers use them) ------------------------
def _inplace(op: str, fn):
    def update(self: Tensor, other=None, **kwargs) -> Tensor:
        if _recording(self):
            raise RuntimeError(f"{op}: a tensor of shape {self.shape} that requires grad is used in an in-place "
                               "operation; wrap it in rosenblatt.no_grad()")
        other_data = None if other is None else as_tensor(other, like=self).data
        try:
            fn(self.data, other_data, **kwargs)
            self._bump_version()
        except ValueError:
            raise ValueError(f"{op}: cannot update shape {self.shape} in place with shape "
                             f"{np.shape(other_data)}") from None
        except TypeError:  # NumPy's casting refusal (float into an int tensor, say)
            raise TypeError(f"{op}: cannot update a {self.dtype} tensor of shape {self.shape} in place with "
                            f"{getattr(other_data, 'dtype', type(other).__name__)} values") from None
        return self

    update.__name__ = op
    return update


def _add_inplace(data, other, alpha=1):
    data += other if alpha == 1 else other * alpha


def _copy_inplace(data, other):
    data[...] = other


def _fill_inplace(data, value):
    data[...] = value


def _zero_inplace(data, _):
    data[...] = 0


def _clamp_inplace(data, _, min=None, max=None):  # noqa: A002
    np.clip(data, min, max, out=data)


# ---- Tensor methods and operators ----------------------------------------------------------------
def _install_methods():
    """Tensor operators and methods that forward to the ops above (names as torch)."""
    T = Tensor
    T.__add__ = lambda self, other: add(self, other)
    T.__radd__ = lambda self, other: add(other, self)
    T.__sub__ = lambda self, other: sub(self, other)
    T.__rsub__ = lambda self, other: sub(other, self)
    T.__mul__ = lambda self, other: mul(self, other)
    T.__rmul__ = lambda self, other: mul(other, self)
    T.__truediv__ = lambda self, other: div(self, other)
    T.__rtruediv__ = lambda self, other: div(other, self)
    T.__pow__ = lambda self, other: pow(self, other)
    T.__rpow__ = lambda self, other: pow(other, self)
    T.__matmul__ = lambda self, other: matmul(self, other)
    T.__rmatmul__ = lambda self, other: matmul(other, self)
    T.__neg__ = neg
    T.__abs__ = abs
    T.__getitem__ = getitem
    T.__setitem__ = setitem
    T.__eq__ = lambda self, other: eq(self, other)
    T.__ne__ = lambda self, other: ne(self, other)
    T.__lt__ = lambda self, other: lt(self, other)
    T.__le__ = lambda self, other: le(self, other)
    T.__gt__ = lambda self, other: gt(self, other)
    T.__ge__ = lambda self, other: ge(self, other)
    T.__and__ = lambda self, other: bitwise_and(self, other)
    T.__or__ = lambda self, other: bitwise_or(self, other)
    T.__xor__ = lambda self, other: bitwise_xor(self, other)
    T.__invert__ = bitwise_not
    T.__iter__ = _iterate
    T.__bool__ = _scalar_conversion(bool)
    T.__float__ = _scalar_conversion(float)
    T.__int__ = _scalar_conversion(int)
    T.__index__ = _index_conversion

    for name, fn in {
        "add": add, "sub": sub, "mul": mul, "div": div, "neg": neg, "pow": pow, "matmul": matmul, "mm": mm,
        "bmm": bmm, "maximum": maximum, "minimum": minimum, "eq": eq, "ne": ne, "lt": lt, "le": le, "gt": gt,
        "ge": ge, "logical_not": logical_not, "logical_and": logical_and, "logical_or": logical_or,
        "isnan": isnan, "isfinite": isfinite, "argmax": argmax, "argmin": argmin, "sum": sum, "mean": mean,
        "var": var, "std": std, "max": max, "min": min, "amax": amax, "amin": amin, "logsumexp": logsumexp,
        "reshape": reshape, "view": view, "flatten": flatten, "unflatten": unflatten, "squeeze": squeeze,
        "unsqueeze": unsqueeze, "permute": permute, "transpose": transpose, "t": t, "expand": expand,
        "contiguous": contiguous, "flip": flip, "clone": clone, "astype": astype, "to": to, "gather": gather,
        "index_select": index_select,
        "masked_fill": masked_fill, "split": split, "chunk": chunk, "unbind": unbind, "exp": exp, "log": log,
        "log1p": log1p, "expm1": expm1, "sqrt": sqrt, "abs": abs, "sign": sign, "sin": sin, "cos": cos, "clamp": clamp,
        "clip": clip, "clamp_min": clamp_min, "clamp_max": clamp_max, "sigmoid": sigmoid, "tanh": tanh,
        "relu": relu, "softmax": softmax, "log_softmax": log_softmax,
        "add_": _inplace("add_", _add_inplace), "copy_": _inplace("copy_", _copy_inplace),
        "fill_": _inplace("fill_", _fill_inplace), "zero_": _inplace("zero_", _zero_inplace),
        "clamp_": _inplace("clamp_", _clamp_inplace),
        "mul_": _inplace("mul_", lambda d, o: np.multiply(d, o, out=d)),
        "sub_": _inplace("sub_", lambda d, o: np.subtract(d, o, out=d)),
        "div_": _inplace("div_", lambda d, o: np.divide(d, o, out=d)),
    }.items():
        setattr(T, name, fn)
    T.float = lambda self: astype(self, np.float32)
    T.double = lambda self: astype(self, np.float64)
    T.long = lambda self: astype(self, np.int64)
    T.int = lambda self: astype(self, np.int32)
    T.bool = lambda self: astype(self, np.bool_)
    T.type_as = lambda self, other: astype(self, other.dtype)
    T.view_as = lambda self, other: view(self, other.shape)
    T.expand_as = lambda self, other: expand(self, other.shape)
    T.reshape_as = lambda self, other: reshape(self, other.shape)
    T.T = property(lambda self: permute(self, tuple(range(self.ndim - 1, -1, -1))))
    T.mT = property(lambda self: transpose(self, -2, -1))


def _iterate(self: Tensor):
    if self.ndim == 0:
        raise TypeError("iteration over a 0-d tensor")
    return iter(unbind(self, 0))


def _scalar_conversion(kind):
    def convert(self):
        if self.data.size != 1:
            raise RuntimeError(f"{kind.__name__}(): a tensor of shape {self.shape} has more than one value "
                               "(ambiguous)")
        return kind(self.data.reshape(()).item())

    return convert


def _index_conversion(self):
    if self.data.size != 1 or self.dtype.kind not in "iub":
        raise TypeError(f"only integer tensors of a single element can be converted to an index (shape {self.shape}, "
                        f"dtype {self.dtype})")
    return int(self.data.reshape(()).item())


_install_methods()
