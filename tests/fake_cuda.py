"""A NumPy stand-in for the CUDA backend `rosenblatt._cuda`, so the Python device layer (Tensor.to,
dispatch, the DeviceArray protocols, autograd on device) runs on a machine without a GPU.

    with fake_cuda.installed():   # then .to("cuda") gives FakeDeviceArrays (tests: the `fake` fixture)
        ...

It is strict where the real backend is, so that a wrong device layer fails here: each kernel takes
only FakeDeviceArrays (a NumPy array reaching a kernel is a device mix-up), dtypes are float32,
float64, int64 or bool, element-wise kernels want equal dtypes and floats, GEMM is float32 only,
results are fresh C-contiguous arrays, and views stay inside the memory they come from. Installing
the backend gives FakeDeviceArray the same NumPy protocols as the real DeviceArray, including the
refusal of `__array__`: an op that silently fell back to NumPy raises TypeError.
Kernels of `_C` not written out below (conv, pooling, RNN, ...) are forwarded to `_C` with the arrays
unwrapped and the results wrapped, as the real backend mirrors `_C`'s names and signatures; a name
the real backend (when built) lacks is refused, so a device path that only the fake could run fails.
"""
from __future__ import annotations

import builtins
import contextlib
import sys

import numpy as np

from rosenblatt import _C
from rosenblatt.cuda import _cuda as _REAL  # None in a CPU-only build: then only _C's names are checked

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_))
device_count_value = 1
calls: list = []  # names of the kernels called, for tests that check what ran


@contextlib.contextmanager
def installed():
    """This stand-in as rosenblatt's CUDA backend for the block, with one device and no calls yet."""
    global device_count_value
    from rosenblatt import _device
    module = sys.modules[__name__]
    previous = _device.set_backend(module)
    device_count_value = 1
    calls.clear()
    try:
        yield module
    finally:
        _device.set_backend(previous)


def device_count() -> int:
    return device_count_value


class DeviceArray:
    """A view (shape, strides in elements, offset) of a flat NumPy buffer standing for device memory."""

    __slots__ = ("_buffer", "_offset", "_shape", "_strides", "device", "read_only", "__weakref__")

    def __init__(self, buffer: np.ndarray, offset: int, shape, strides, device: int = 0, read_only: bool = False):
        assert buffer.ndim == 1 and buffer.flags.c_contiguous
        self._buffer, self._offset = buffer, int(offset)
        self._shape, self._strides = tuple(int(n) for n in shape), tuple(int(s) for s in strides)
        self.device, self.read_only = device, read_only

    @classmethod
    def fresh(cls, array: np.ndarray, device: int = 0) -> "DeviceArray":
        array = np.asarray(array)
        if array.dtype not in _DTYPES:
            raise TypeError(f"fake _cuda: unsupported dtype {array.dtype}")
        flat = np.array(array, order="C", copy=True).reshape(-1)
        return cls(flat, 0, array.shape, _contiguous_strides(array.shape), device)

    @property
    def _view(self) -> np.ndarray:
        """The NumPy view of the device memory (the fake's kernels compute on it)."""
        item = self._buffer.itemsize
        if builtin_any(n == 0 for n in self._shape):
            return np.empty(self._shape, self._buffer.dtype)
        return np.ndarray(self._shape, self._buffer.dtype, buffer=self._buffer, offset=self._offset * item,
                          strides=tuple(s * item for s in self._strides))

    shape = property(lambda self: self._shape)
    strides = property(lambda self: self._strides)
    dtype = property(lambda self: self._buffer.dtype)
    ndim = property(lambda self: len(self._shape))
    size = property(lambda self: int(np.prod(self._shape, dtype=np.int64)))
    data_ptr = property(lambda self: self._buffer.ctypes.data + self._offset * self._buffer.itemsize)

    def is_contiguous(self) -> bool:
        expected = 1
        for n, s in zip(reversed(self._shape), reversed(self._strides)):
            if n != 1 and s != expected:
                return False
            expected *= n
        return True

    def contiguous(self) -> "DeviceArray":
        return self if self.is_contiguous() else _wrap(self._view, self.device)

    def transpose(self, dim0: int, dim1: int) -> "DeviceArray":
        shape, strides = list(self._shape), list(self._strides)
        shape[dim0], shape[dim1] = shape[dim1], shape[dim0]
        strides[dim0], strides[dim1] = strides[dim1], strides[dim0]
        return DeviceArray(self._buffer, self._offset, shape, strides, self.device, self.read_only)

    def to_numpy(self) -> np.ndarray:
        return np.array(self._view, copy=True)

    def synchronize(self) -> None:
        pass

    def __dlpack_device__(self):
        return (2, self.device)

    def __repr__(self) -> str:
        return f"FakeDeviceArray({self.dtype}{list(self._shape)} on cuda:{self.device})"


builtin_any = any


def _contiguous_strides(shape) -> tuple:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= builtins.max(int(n), 1)
    return tuple(reversed(strides))


def _wrap(array, device: int = 0) -> DeviceArray:
    return DeviceArray.fresh(array, device)


def _arrays(name: str, *xs):
    """The NumPy views of the kernel's array arguments, all FakeDeviceArrays on one device."""
    for x in xs:
        if not isinstance(x, DeviceArray):
            raise TypeError(f"fake _cuda.{name}: expected a DeviceArray, got {type(x).__name__}")
        if x.device != xs[0].device:
            raise ValueError(f"fake _cuda.{name}: arrays on different devices")
    calls.append(name)
    return [x._view for x in xs]


def _floats(name: str, *xs):
    views = _arrays(name, *xs)
    for v in views:
        if v.dtype.kind != "f":
            raise TypeError(f"fake _cuda.{name}: expected a float32 or float64 array, got {v.dtype}")
        if v.dtype != views[0].dtype:
            raise TypeError(f"fake _cuda.{name}: dtypes differ: {views[0].dtype} and {v.dtype}")
    return views


# ---- arrays ----------------------------------------------------------------------------------------
def from_numpy(array, device: int = 0) -> DeviceArray:
    if not isinstance(array, np.ndarray):
        raise TypeError(f"fake _cuda.from_numpy: expected a NumPy array, got {type(array).__name__}")
    if device >= device_count_value:
        raise RuntimeError(f"fake _cuda.from_numpy: no CUDA device {device}")
    return _wrap(array, device)


def empty(shape, dtype="float32", device: int = 0) -> DeviceArray:
    return _wrap(np.full(tuple(shape), np.nan if np.dtype(dtype).kind == "f" else 0, np.dtype(dtype)), device)


def full(shape, value, dtype="float32", device: int = 0) -> DeviceArray:
    dtype = np.dtype(dtype)
    if dtype not in _DTYPES:
        raise TypeError(f"fake _cuda.full: unsupported dtype {dtype}")
    calls.append("full")
    return _wrap(np.full(tuple(shape), value, dtype), device)


def astype(x, dtype) -> DeviceArray:
    (v,) = _arrays("astype", x)
    dtype = np.dtype(dtype)
    if dtype not in _DTYPES:
        raise TypeError(f"fake _cuda.astype: unsupported dtype {dtype}")
    return _wrap(v.astype(dtype), x.device)


def as_strided(x, shape, strides, offset: int = 0) -> DeviceArray:
    _arrays("as_strided", x)
    if len(shape) != len(strides) or builtin_any(n < 0 for n in shape):
        raise ValueError(f"fake _cuda.as_strided: bad shape {shape} / strides {strides}")

    def span(shp, st):
        if builtin_any(n == 0 for n in shp):
            return 0, -1
        lo = builtins.sum((n - 1) * s for n, s in zip(shp, st) if s < 0)
        hi = builtins.sum((n - 1) * s for n, s in zip(shp, st) if s > 0)
        return lo, hi

    lo, hi = span(shape, strides)
    if lo <= hi:
        x_lo, x_hi = span(x.shape, x.strides)
        if x_lo > x_hi or offset + lo < x_lo or offset + hi > x_hi:
            raise ValueError(f"fake _cuda.as_strided: view {shape}/{strides}@{offset} reaches outside {x!r}")
    else:
        offset = 0
    return DeviceArray(x._buffer, x._offset + offset, shape, strides, x.device, x.read_only)


def assign(dst, src) -> None:
    d, s = _arrays("assign", dst, src)
    if dst.read_only:
        raise ValueError("fake _cuda.assign: read-only destination")
    if d.dtype != s.dtype:
        raise TypeError(f"fake _cuda.assign: dtypes differ: {d.dtype} and {s.dtype}")
    if builtin_any(n > 1 and st == 0 for n, st in zip(dst.shape, dst.strides)):
        raise ValueError("fake _cuda.assign: the destination is a broadcast view")
    if np.broadcast_shapes(d.shape, s.shape) != d.shape:
        raise ValueError(f"fake _cuda.assign: cannot assign shape {s.shape} to {d.shape}")
    d[...] = s.copy()


def from_dlpack(obj) -> DeviceArray:
    raise RuntimeError("fake _cuda.from_dlpack: the fake backend has no DLPack import")


# ---- element-wise ----------------------------------------------------------------------------------
def _unary(name, fn):
    def kernel(a):
        (v,) = _floats(name, a)
        with np.errstate(all="ignore"):
            return _wrap(np.asarray(fn(v), dtype=v.dtype), a.device)
    kernel.__name__ = name
    return kernel


def _binary(name, fn):
    def kernel(a, b):
        x, y = _floats(name, a, b)
        with np.errstate(all="ignore"):
            return _wrap(np.asarray(fn(x, y), dtype=x.dtype), a.device)
    kernel.__name__ = name
    return kernel


for _name, _fn in {"neg": np.negative, "exp": np.exp, "log": np.log, "tanh": np.tanh,
                   "sigmoid": lambda v: 1 / (1 + np.exp(-v)), "relu": lambda v: np.maximum(v, 0),
                   "sqrt": np.sqrt, "abs": np.abs, "sign": np.sign, "log1p": np.log1p, "sin": np.sin,
                   "cos": np.cos}.items():
    globals()[_name] = _unary(_name, _fn)
for _name, _fn in {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.true_divide,
                   "pow": np.power, "maximum": np.maximum, "minimum": np.minimum,
                   "relu_backward": lambda g, x: np.where(x > 0, g, 0)}.items():
    globals()[_name] = _binary(_name, _fn)


def _compare(name, fn):
    def kernel(a, b):
        x, y = _arrays(name, a, b)
        if x.dtype != y.dtype:
            raise TypeError(f"fake _cuda.{name}: dtypes differ: {x.dtype} and {y.dtype}")
        return _wrap(fn(x, y), a.device)
    kernel.__name__ = name
    return kernel


for _name, _fn in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
                   "ge": np.greater_equal, "logical_and": np.logical_and, "logical_or": np.logical_or,
                   "logical_xor": np.logical_xor}.items():
    globals()[_name] = _compare(_name, _fn)
del _name, _fn


def where(condition, a, b) -> DeviceArray:
    c, x, y = _arrays("where", condition, a, b)
    if c.dtype != np.bool_ or x.dtype != y.dtype:
        raise TypeError(f"fake _cuda.where: condition {c.dtype}, a {x.dtype}, b {y.dtype}")
    return _wrap(np.where(c, x, y), a.device)


# ---- reductions, softmax, GEMM ----------------------------------------------------------------------
def _axis(x, axis: int, name: str) -> int:
    if x.ndim == 0 or not -x.ndim <= axis < x.ndim:
        raise ValueError(f"fake _cuda.{name}: axis {axis} is out of range for shape {x.shape}")
    return axis % x.ndim


def sum(x, axis: int, keepdims: bool = False) -> DeviceArray:  # noqa: A001 - the backend's name
    (v,) = _floats("sum", x)
    return _wrap(v.sum(axis=_axis(x, axis, "sum"), keepdims=keepdims), x.device)


def _extreme(name, arg_fn):
    def kernel(x, axis: int, keepdims: bool = False):
        (v,) = _floats(name, x)
        a = _axis(x, axis, name)
        if v.shape[a] == 0:
            raise ValueError(f"fake _cuda.{name}: cannot reduce over an axis of size 0")
        index = np.expand_dims(arg_fn(v, axis=a), a)
        values = np.take_along_axis(v, index, axis=a)
        if not keepdims:
            values, index = values.squeeze(a), index.squeeze(a)
        return _wrap(values, x.device), _wrap(index.astype(np.int64), x.device)
    kernel.__name__ = name
    return kernel


max = _extreme("max", np.argmax)  # noqa: A001
min = _extreme("min", np.argmin)  # noqa: A001


def _softmax_rows(v, log):
    shifted = v - v.max(axis=-1, keepdims=True)
    if log:
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    e = np.exp(shifted)
    return e / e.sum(axis=-1, keepdims=True)


def softmax(x):
    (v,) = _floats("softmax", x)
    return _wrap(_softmax_rows(v, False), x.device)


def log_softmax(x):
    (v,) = _floats("log_softmax", x)
    return _wrap(_softmax_rows(v, True), x.device)


def softmax_backward(dy, y):
    g, out = _floats("softmax_backward", dy, y)
    return _wrap(out * (g - (g * out).sum(axis=-1, keepdims=True)), dy.device)


def log_softmax_backward(dy, y):
    g, out = _floats("log_softmax_backward", dy, y)
    return _wrap(g - np.exp(out) * g.sum(axis=-1, keepdims=True), dy.device)


def matmul(a, b):
    x, y = _arrays("matmul", a, b)
    if x.dtype != np.float32 or y.dtype != np.float32:
        raise TypeError("fake _cuda.matmul: the CUDA GEMM is float32 only")
    if x.ndim not in (2, 3) or x.ndim != y.ndim:
        raise ValueError(f"fake _cuda.matmul: shapes {x.shape} and {y.shape}")
    return _wrap(np.matmul(x, y), a.device)


def gemm(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, out=None):
    x, y = _arrays("gemm", a, b)
    if x.dtype != np.float32 or y.dtype != np.float32:
        raise TypeError("fake _cuda.gemm: the CUDA GEMM is float32 only")
    if x.ndim != 2 or y.ndim != 2:
        raise ValueError(f"fake _cuda.gemm: expected 2-D arrays, got {x.shape} and {y.shape}")
    product = alpha * ((x.T if trans_a else x) @ (y.T if trans_b else y))
    if out is None:
        return _wrap(product.astype(np.float32), a.device)
    (o,) = _arrays("gemm", out)
    o[...] = product + beta * o
    return out


# ---- training kernels (cuda/train_ops.cpp's checks; the arithmetic by the real backend's host entry points,
# which run the CUDA kernels' own per-element code, or NumPy in a CPU-only build) ---------------------------
def _require_updatable(name: str, x, what: str) -> None:
    if x.read_only:
        raise ValueError(f"fake _cuda.{name}: {what} {x!r} is read-only")
    if not x.is_contiguous():
        raise ValueError(f"fake _cuda.{name}: {what} {x!r} must be C-contiguous to be updated in place")


def _require_like(name: str, x, like, what: str, shape=None) -> None:
    """x a DeviceArray on like's device, of its dtype and of `shape` (default: like's)."""
    shape = like.shape if shape is None else tuple(shape)
    if not isinstance(x, DeviceArray):
        raise TypeError(f"fake _cuda.{name}: {what} must be a DeviceArray, got {type(x).__name__}")
    if x.device != like.device:
        raise ValueError(f"fake _cuda.{name}: {what} {x!r} is on another device than {like!r}")
    if x.dtype != like.dtype:
        raise TypeError(f"fake _cuda.{name}: {what} {x!r} does not have the dtype of {like!r}")
    if x.shape != shape:
        raise ValueError(f"fake _cuda.{name}: {what} {x!r} should have shape {list(shape)}")


def _require_number(name: str, valid: bool, what: str, value) -> None:
    if not valid:
        raise ValueError(f"fake _cuda.{name}: invalid {what}: {value}")


def _checked_update(name: str, param, grad, states: dict):
    """param / grad / state checks of sgd_step_ and adam_step_; returns grad's contiguous NumPy copy."""
    (p,) = _floats(name, param)
    _require_updatable(name, param, "param")
    _require_like(name, grad, param, "grad")
    for what, state in states.items():
        _require_like(name, state, param, what)
        _require_updatable(name, state, what)
    return np.ascontiguousarray(grad._view)


def sgd_step_(param, grad, momentum_buffer=None, *, lr, momentum=0.0, dampening=0.0, weight_decay=0.0,
              nesterov=False, maximize=False, first_step=False) -> None:
    name = "sgd_step_"
    lr, momentum, dampening, weight_decay = float(lr), float(momentum), float(dampening), float(weight_decay)
    g = _checked_update(name, param, grad, {"momentum_buffer": momentum_buffer}
                        if momentum != 0 and momentum_buffer is not None else {})
    _require_number(name, lr >= 0, "learning rate", lr)
    _require_number(name, momentum >= 0, "momentum", momentum)
    _require_number(name, weight_decay >= 0, "weight_decay", weight_decay)
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError(f"fake _cuda.{name}: Nesterov momentum requires a momentum and zero dampening")
    if momentum != 0 and momentum_buffer is None:
        raise ValueError(f"fake _cuda.{name}: momentum {momentum} needs a momentum_buffer")
    p = param._view
    b = momentum_buffer._view if momentum != 0 else None
    if _REAL is not None:
        _REAL._sgd_step_on_host(p, g, b, lr, momentum, dampening, weight_decay, bool(nesterov), bool(maximize),
                                bool(first_step))
        return
    t = p.dtype.type  # NumPy: the hyper-parameters rounded to the dtype, as train_math.h's sgd_update
    d = -g if maximize else g
    if weight_decay != 0:
        d = d + t(weight_decay) * p
    if momentum != 0:
        b[...] = d if first_step else b * t(momentum) + t(1.0 - dampening) * d
        d = d + t(momentum) * b if nesterov else b
    p[...] = p - t(lr) * d


def adam_step_(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr, beta1=0.9, beta2=0.999,
               eps=1e-8, weight_decay=0.0, amsgrad=False, maximize=False, decoupled_weight_decay=False) -> None:
    name = "adam_step_"
    states = {"exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}
    if amsgrad:
        if max_exp_avg_sq is None:
            raise ValueError(f"fake _cuda.{name}: amsgrad needs max_exp_avg_sq")
        states["max_exp_avg_sq"] = max_exp_avg_sq
    g = _checked_update(name, param, grad, states)
    if int(step) != step or step < 1:
        raise ValueError(f"fake _cuda.{name}: step counts from 1, got {step}")
    lr, beta1, beta2, eps, weight_decay = float(lr), float(beta1), float(beta2), float(eps), float(weight_decay)
    _require_number(name, lr >= 0, "learning rate", lr)
    _require_number(name, eps >= 0, "epsilon value", eps)
    _require_number(name, 0 <= beta1 < 1, "beta parameter at index 0", beta1)
    _require_number(name, 0 <= beta2 < 1, "beta parameter at index 1", beta2)
    _require_number(name, weight_decay >= 0, "weight_decay value", weight_decay)
    p, m, v = param._view, exp_avg._view, exp_avg_sq._view
    vmax = max_exp_avg_sq._view if amsgrad else None
    if _REAL is not None:
        _REAL._adam_step_on_host(p, g, m, v, vmax, int(step), lr, beta1, beta2, eps, weight_decay, bool(amsgrad),
                                 bool(maximize), bool(decoupled_weight_decay))
        return
    t = p.dtype.type  # NumPy, with train_math.h's adam_update roundings
    d = -g if maximize else g
    q = p
    if weight_decay != 0:
        if decoupled_weight_decay:
            q = p * t(1.0 - lr * weight_decay)
        else:
            d = d + t(weight_decay) * p
    w = 1.0 - beta1
    m[...] = m + t(w) * (d - m) if w < 0.5 else d - (d - m) * t(1.0 - w)
    v[...] = v * t(beta2) + t(1.0 - beta2) * d * d
    second = v
    if amsgrad:
        np.maximum(vmax, v, out=vmax)
        second = vmax
    denominator = np.sqrt(second) / t(np.sqrt(1.0 - beta2 ** int(step))) + t(eps)
    p[...] = q - t(lr / (1.0 - beta1 ** int(step))) * (m / denominator)


def grad_norm(arrays, norm_type=2.0) -> DeviceArray:
    """The norm of all entries together as a float32 array of shape (), summed in float64 (the kernel's
    partials) on the device: nothing comes back to the host."""
    name = "grad_norm"
    arrays = list(arrays)
    if not arrays:
        raise ValueError(f"fake _cuda.{name}: expected at least one array")
    norm_type = float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"fake _cuda.{name}: norm_type must be positive or inf, got {norm_type}")
    views = _arrays(name, *arrays)
    if builtin_any(v.dtype.kind != "f" for v in views):
        raise TypeError(f"fake _cuda.{name}: each array must be float32 or float64")
    values = [np.abs(v.astype(np.float64)).ravel() for v in views]
    with np.errstate(all="ignore"):
        if np.isinf(norm_type):
            maxima = [np.max(a) for a in values if a.size]  # np.max, like the kernel's MaxNan, keeps a NaN
            total = np.max(maxima) if maxima else 0.0
        else:
            parts = builtins.sum(float(np.sum(a * a if norm_type == 2 else a if norm_type == 1 else a ** norm_type))
                                 for a in values)
            total = parts if norm_type == 1 else parts ** (1.0 / norm_type)
    return _wrap(np.asarray(total, np.float32), arrays[0].device)


def clip_by_total_norm_(arrays, total_norm, max_norm) -> None:
    """arrays *= float32(fmin(max_norm / (total_norm + 1e-6), 1)) in place, the coefficient as the kernel
    computes it from grad_norm's float32 result (fmin: a NaN total gives 1)."""
    name = "clip_by_total_norm_"
    (t,) = _arrays(name, total_norm)
    if t.dtype != np.float32 or t.size != 1:
        raise TypeError(f"fake _cuda.{name}: total_norm must be one float32 number, got {total_norm!r}")
    arrays = list(arrays)
    for a in arrays:
        if not isinstance(a, DeviceArray):
            raise TypeError(f"fake _cuda.{name}: expected DeviceArrays, got {type(a).__name__}")
        if a.dtype.kind != "f":
            raise TypeError(f"fake _cuda.{name}: each array must be float32 or float64, got {a!r}")
        _require_updatable(name, a, "each array")
        if a.device != total_norm.device:
            raise ValueError(f"fake _cuda.{name}: {a!r} is on another device than total_norm")
    with np.errstate(all="ignore"):
        coefficient = np.float32(np.fmin(float(max_norm) / (np.float64(t.reshape(())) + 1e-6), 1.0))
        for a in arrays:
            v = a._view
            v *= v.dtype.type(coefficient)


def embedding_forward(weight, indices) -> DeviceArray:
    name = "embedding_forward"
    w, i = _arrays(name, weight, indices)
    if w.dtype.kind != "f":
        raise TypeError(f"fake _cuda.{name}: weight must be float32 or float64, got {weight!r}")
    if i.dtype != np.int64:
        raise TypeError(f"fake _cuda.{name}: indices must be int64, got {indices!r}")
    if w.ndim != 2:
        raise ValueError(f"fake _cuda.{name}: weight must be 2-D (num_embeddings, dim), got {weight!r}")
    num, dim = w.shape
    flat = np.ascontiguousarray(i).reshape(-1)
    _check_indices(name, flat, num, dim)
    return _wrap(np.ascontiguousarray(w)[flat].reshape(i.shape + (dim,)), weight.device)


def embedding_backward(grad, indices, num_embeddings, padding_idx=None) -> DeviceArray:
    name = "embedding_backward"
    g, i = _arrays(name, grad, indices)
    if g.dtype.kind != "f":
        raise TypeError(f"fake _cuda.{name}: grad must be float32 or float64, got {grad!r}")
    if i.dtype != np.int64:
        raise TypeError(f"fake _cuda.{name}: indices must be int64, got {indices!r}")
    num = int(num_embeddings)
    if num < 0:
        raise ValueError(f"fake _cuda.{name}: num_embeddings must be >= 0, got {num}")
    if g.ndim != i.ndim + 1 or g.shape[:-1] != i.shape:
        raise ValueError(f"fake _cuda.{name}: grad {grad!r} should have shape indices.shape + (dim,), "
                         f"indices {indices!r}")
    pad = -1
    if padding_idx is not None:
        pad = padding_idx + num if padding_idx < 0 else padding_idx
        if not 0 <= pad < num:
            raise ValueError(f"fake _cuda.{name}: padding_idx {padding_idx} is out of range for {num} embeddings")
    dim = g.shape[-1]
    out = np.zeros((num, dim), g.dtype)
    if i.size * dim == 0:
        return _wrap(out, grad.device)
    flat = np.ascontiguousarray(i).reshape(-1)
    _check_indices(name, flat, num, dim)
    rows = np.ascontiguousarray(g).reshape(-1, dim)
    keep = flat != pad  # the kernel skips the padding row's contributions
    np.add.at(out, flat[keep], rows[keep])
    return _wrap(out, grad.device)


def _check_indices(name: str, flat: np.ndarray, num: int, dim: int) -> None:
    """IndexError naming a bad index, found by the kernels' own index map where the real backend is built."""
    if flat.size == 0 or dim == 0:
        return
    if _REAL is not None:
        sources = _REAL._embedding_sources_on_host(flat, num, dim).reshape(-1, dim)
        bad = flat[(sources < 0).any(axis=1)]
    else:
        bad = flat[(flat < 0) | (flat >= num)]
    if bad.size:
        raise IndexError(f"fake _cuda.{name}: index {bad[0]} is out of range [0, {num})")


def _class_layout(name: str, scores_shape, t, what: str):
    """(N, C, L) of scores (N, C, d1, ...) with target (N, d1, ...), or (C,) with a 0-d target, as
    train_ops.cpp's class_layout checks it."""
    if t.dtype != np.int64:
        raise TypeError(f"fake _cuda.{name}: target must be int64, got {t.dtype}")
    scores_shape = tuple(scores_shape)
    expected = scores_shape[:1] + scores_shape[2:] if len(scores_shape) >= 2 else ()
    if not scores_shape or t.shape != expected:
        raise ValueError(f"fake _cuda.{name}: {what} of shape {list(scores_shape)} and target of shape "
                         f"{list(t.shape)} do not match (expected target shape {list(expected)})")
    if len(scores_shape) == 1:
        return 1, scores_shape[0], 1
    return scores_shape[0], scores_shape[1], int(np.prod(scores_shape[2:], dtype=np.int64))


def _nll_sources(name: str, t: np.ndarray, N: int, C: int, L: int, ignore_index: int) -> np.ndarray:
    """For each target position, the flat (N, C, L) element it reads or writes (-1: ignored), by the
    kernels' own index map (nll_source) where the real backend is built; IndexError on a bad target."""
    flat = np.ascontiguousarray(t).reshape(-1)
    if _REAL is not None:
        sources = _REAL._nll_sources_on_host(flat, C, L, ignore_index)
    else:
        e = np.arange(flat.size, dtype=np.int64)
        n, l = e // L, e % L
        sources = np.where(flat == ignore_index, -1,
                           np.where((flat < 0) | (flat >= C), -2, (n * C + flat) * L + l))
    bad = flat[sources == -2]
    if bad.size:
        raise IndexError(f"fake _cuda.{name}: target {bad[0]} is out of bounds for {C} classes")
    return sources


def nll_gather(log_probs, target, weight=None, ignore_index=-100):
    """(picked, element_weight) of the target's shape: log_probs at each target class and weight[target]
    (or 1), both 0 where ignored."""
    name = "nll_gather"
    lp, t = _arrays(name, log_probs, target)  # ValueError when they are on different devices
    if lp.dtype.kind != "f":
        raise TypeError(f"fake _cuda.{name}: log_probs must be float32 or float64, got {log_probs!r}")
    N, C, L = _class_layout(name, lp.shape, t, "log_probs")
    w = None
    if weight is not None:
        _require_like(name, weight, log_probs, "weight", shape=(C,))
        w = np.ascontiguousarray(weight._view)
    picked = np.zeros(t.shape, lp.dtype)
    element_weight = np.zeros(t.shape, lp.dtype)
    if N * L:
        sources = _nll_sources(name, t, N, C, L, int(ignore_index))
        keep = sources >= 0
        flat_t = np.ascontiguousarray(t).reshape(-1)
        picked.reshape(-1)[keep] = np.ascontiguousarray(lp).reshape(-1)[sources[keep]]
        element_weight.reshape(-1)[keep] = w[flat_t[keep]] if w is not None else 1
    return _wrap(picked, log_probs.device), _wrap(element_weight, log_probs.device)


def nll_scatter(coef, target, num_classes, ignore_index=-100):
    """zeros (N, C, d1, ...) (or (C,) for a 0-d target) with coef at each position's target class."""
    name = "nll_scatter"
    c, t = _arrays(name, coef, target)  # ValueError when they are on different devices
    if c.dtype.kind != "f":
        raise TypeError(f"fake _cuda.{name}: coef must be float32 or float64, got {coef!r}")
    num = int(num_classes)
    if num < 0:
        raise ValueError(f"fake _cuda.{name}: num_classes must be >= 0, got {num}")
    shape = t.shape[:1] + (num,) + t.shape[1:] if t.ndim else (num,)
    N, C, L = _class_layout(name, shape, t, "the gradient")
    if c.shape != t.shape:
        raise ValueError(f"fake _cuda.{name}: coef {coef!r} should match target {target!r}")
    out = np.zeros(shape, c.dtype)
    if N * L:
        sources = _nll_sources(name, t, N, C, L, int(ignore_index))
        keep = sources >= 0
        out.reshape(-1)[sources[keep]] = np.ascontiguousarray(c).reshape(-1)[keep]
    return _wrap(out, coef.device)


# ---- everything else of _C: forwarded with the arrays unwrapped -------------------------------------
def _unwrap(value):
    if isinstance(value, DeviceArray):
        return value._view
    if isinstance(value, np.ndarray):
        raise TypeError("fake _cuda: a NumPy array reached a CUDA kernel (device mix-up)")
    if isinstance(value, (tuple, list)):
        return type(value)(_unwrap(v) for v in value)
    return value


def _rewrap(value, device):
    if isinstance(value, np.ndarray):
        return _wrap(value, device)
    if isinstance(value, tuple):
        return tuple(_rewrap(v, device) for v in value)
    if isinstance(value, list):
        return [_rewrap(v, device) for v in value]
    return value


def __getattr__(name: str):
    cpu = getattr(_C, name, None)
    if cpu is None or name.startswith("_"):
        raise AttributeError(name)
    if _REAL is not None and not hasattr(_REAL, name):  # a device path the real backend could not run
        raise AttributeError(f"fake _cuda: the real CUDA backend has no kernel {name!r}")

    def kernel(*args, **kwargs):
        devices = [a.device for a in list(args) + list(kwargs.values()) if isinstance(a, DeviceArray)]
        calls.append(name)
        # Outputs passed as arguments (out=, a slice of a result) are written through the views.
        result = cpu(*[_unwrap(a) for a in args], **{k: _unwrap(v) for k, v in kwargs.items()})
        return _rewrap(result, devices[0] if devices else 0)

    kernel.__name__ = name
    return kernel
