"""The device layer: a Tensor's `.data` is either a NumPy array (CPU) or a DeviceArray of the CUDA
backend (`rosenblatt._cuda`). This module

- picks the kernel module for an op's arrays (`kernels(...)`: `_C` for NumPy arrays, the CUDA
  backend for DeviceArrays, whose kernels mirror `_C`'s names and signatures), raising ValueError
  when an op mixes devices;
- moves arrays between devices (`to_device`, `to_host`);
- makes DeviceArray behave like the ndarray the autograd ops expect (`install`): NumPy's ufunc and
  function protocols, arithmetic operators, `.reshape/.sum/.astype/...`, basic indexing as views.
  Every one runs CUDA kernels; what is not implemented raises NotImplementedError naming the op,
  and a DeviceArray never converts itself to NumPy implicitly (`__array__` raises TypeError).

The backend is a module object (`set_backend` swaps it, so tests run this whole layer on a NumPy
stand-in without a GPU: tests/fake_cuda.py).
"""
from __future__ import annotations

import builtins
import numbers

import numpy as np

from . import _C
from .device import CPU, device

try:
    from . import _cuda as _real_backend
except ImportError:  # built without CUDA
    _real_backend = None

_backend = None  # the CUDA backend module in use, or None
DeviceArray = None  # its array type (a class nothing is an instance of when there is no backend)


class _NoDeviceArray:
    pass


def set_backend(module):
    """Use `module` (the real `_cuda` or a stand-in with the same functions) as the CUDA backend;
    returns the previous one. None: no CUDA backend."""
    global _backend, DeviceArray
    previous = _backend
    _backend = module
    DeviceArray = _NoDeviceArray if module is None else module.DeviceArray
    if module is not None:
        install(module.DeviceArray)
    return previous


def backend(op: str):
    """The CUDA backend, or RuntimeError naming the op when there is none or no device."""
    if _backend is None:
        raise RuntimeError(f"{op}: rosenblatt was built without CUDA (a CPU-only build); CUDA tensors are not "
                           "available")
    if _backend.device_count() == 0:
        raise RuntimeError(f"{op}: no CUDA device is available (CUDA driver or GPU missing); CUDA tensors are not "
                           "available here")
    return _backend


def is_device_array(x) -> bool:
    return isinstance(x, DeviceArray)


def device_of(array) -> device:
    if isinstance(array, DeviceArray):
        return device("cuda", array.device)
    return CPU  # NumPy arrays (and subclasses such as memmap), scalars


# ---- choosing the kernel module -----------------------------------------------------------------
def kernels(op: str, *arrays):
    """`_C` when every array (None skipped) is a NumPy array, the CUDA backend when every one is on
    the same CUDA device; ValueError naming both devices and the op otherwise."""
    first = None
    for a in arrays:
        if a is None:
            continue
        if first is None:
            first = a
        else:
            same_device(op, first, a)
    if first is None or not isinstance(first, DeviceArray):
        return _C
    return _backend


def same_device(op: str, a, b) -> None:
    """ValueError naming both devices unless a and b (NumPy arrays or DeviceArrays) share one."""
    on_device = isinstance(a, DeviceArray)
    if on_device != isinstance(b, DeviceArray) or (on_device and a.device != b.device):
        raise ValueError(f"{op}: expected all tensors to be on the same device, but found at least two devices, "
                         f"{device_of(a)} and {device_of(b)}")


def out_of_memory(op: str, inputs, error: MemoryError) -> MemoryError:
    """MemoryError naming the op and the shapes of its array inputs (NumPy's names neither)."""
    shapes = ", ".join(str(tuple(a.shape)) for a in inputs if isinstance(a, (np.ndarray, DeviceArray)))
    return MemoryError(f"{op}: out of memory (inputs of shapes {shapes}): {error}")


class _KernelModule:
    """Stands in for `_C` in the functional layers: `kernels.conv2d_forward(x, w, ...)` runs `_C`'s
    function, or the CUDA backend's function of the same name and signature when the arrays among
    the positional arguments are DeviceArrays (ValueError when they mix devices)."""

    def __getattr__(self, name: str):
        cpu = getattr(_C, name)

        def dispatch(*args, **kwargs):
            module = kernels(name, *[a for a in args if isinstance(a, (np.ndarray, DeviceArray))])
            fn = cpu if module is _C else getattr(module, name, None)
            if fn is None:
                raise _not_implemented(name)
            try:
                return fn(*args, **kwargs)
            except MemoryError as error:  # an output too large to allocate (padding 2**20, say)
                if str(error).startswith(f"{name}:"):  # the kernel's own message names the op already
                    raise
                raise out_of_memory(name, args, error) from error

        dispatch.__name__ = name
        setattr(self, name, dispatch)  # later look-ups find it without __getattr__
        return dispatch


kernel_module = _KernelModule()


def asarray(x):
    """np.asarray for host data; a DeviceArray stays as it is."""
    return x if isinstance(x, DeviceArray) else np.asarray(x)


def ascontiguousarray(x):
    return np.ascontiguousarray(x) if isinstance(x, np.ndarray) else x.contiguous()


def one_hot_along(index, axis: int, n: int):
    """A bool mask of index's shape with `axis` widened to n: True where the position along axis
    equals index (index holds one position per slice, size 1 along axis)."""
    shape = [1] * index.ndim
    shape[axis] = n
    positions = to_device(np.arange(n, dtype=np.int64).reshape(shape), device_of(index), "one_hot")
    return positions == index


# ---- moving arrays ------------------------------------------------------------------------------
def to_device(array, target: device, op: str = "to"):
    """`array` (NumPy or DeviceArray) on `target`; the array itself when it is already there."""
    if target.type == "cpu":
        return array if isinstance(array, np.ndarray) else to_host(array)
    module = backend(op)
    index = 0 if target.index is None else target.index
    if index >= module.device_count():
        raise RuntimeError(f"{op}: no CUDA device {index} (device_count() is {module.device_count()})")
    if isinstance(array, DeviceArray):
        if array.device == index:
            return array
        return module.from_numpy(array.to_numpy(), index)  # through the host: no peer copies yet
    array = np.asarray(array)
    if array.dtype.kind not in "fb" and array.dtype != np.int64:
        if array.dtype.kind in "iu":
            array = array.astype(np.int64)
        else:
            raise TypeError(f"{op}: CUDA tensors hold float32, float64, int64 or bool, got {array.dtype}")
    if array.dtype.kind == "f" and array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: CUDA tensors hold float32, float64, int64 or bool, got {array.dtype}")
    return module.from_numpy(array if array.flags.c_contiguous else array.copy(), index)  # 0-d stays 0-d


def to_host(array) -> np.ndarray:
    return array.to_numpy()


def on_device_of(array: np.ndarray, like):
    """A NumPy array moved to like's device (itself when like is a NumPy array)."""
    return array if isinstance(like, np.ndarray) else to_device(array, device_of(like))


def full(shape, value, dtype, like):
    """A fresh array of `shape` filled with value, on like's device."""
    dtype = np.dtype(dtype)
    if isinstance(like, np.ndarray):
        return np.full(shape, value, dtype)
    shape = [int(shape)] if isinstance(shape, numbers.Integral) else [int(n) for n in shape]
    return _backend.full(shape, float(value), _device_dtype(dtype, "full").name, like.device)


def empty(shape, dtype, like):
    """A fresh array of `shape` (contents undefined on the CPU, zeros on a device), on like's device.

    A large float array on the CPU takes its memory from the pool of freed kernel results
    (_C.recycled_empty): the per-step arrays of a training loop (a recurrent layer's packed output
    and its gradient are as large as the whole sequence's output) would otherwise fault in fresh
    pages at every step."""
    if not isinstance(like, np.ndarray):
        return full(shape, 0, dtype, like)
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        return np.empty(shape, dtype)
    count = int(shape) if isinstance(shape, numbers.Integral) else int(np.prod(shape, dtype=np.int64))
    return _C.recycled_empty(count, dtype.name).reshape(shape)


# ---- DeviceArray as an ndarray --------------------------------------------------------------------
_SUPPORTED = {np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64), np.dtype(np.bool_)}


def _not_implemented(op: str):
    return NotImplementedError(f"{op}: not implemented for CUDA tensors")


def _device_dtype(dtype, op: str) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in _SUPPORTED:
        if dtype.kind in "iu":
            return np.dtype(np.int64)
        raise TypeError(f"{op}: CUDA arrays hold float32, float64, int64 or bool, got {dtype}")
    return dtype


def _astype(x, dtype, copy: bool = True):
    dtype = _device_dtype(dtype, "astype")
    if dtype == x.dtype and not copy:
        return x
    return _backend.astype(x, dtype.name)


def _scalar(value, dtype, like):
    return _backend.full([], float(value), np.dtype(dtype).name, like.device)


def _operands(op: str, inputs):
    """Device arrays of one dtype for a ufunc's inputs: Python/NumPy scalars take the arrays' dtype
    (unless a float scalar meets integer arrays), NumPy arrays with dims are a device mix."""
    arrays = [x for x in inputs if isinstance(x, DeviceArray)]
    first = arrays[0]
    for x in arrays[1:]:
        same_device(op, first, x)
    for x in inputs:
        if isinstance(x, np.ndarray) and x.ndim > 0:
            raise ValueError(f"{op}: expected all tensors to be on the same device, but found at least two devices, "
                             f"cpu and {device_of(first)}")
    dtype = np.result_type(*[x.dtype for x in arrays])
    if any(isinstance(x, (float, np.floating)) or (isinstance(x, np.ndarray) and x.dtype.kind == "f")
           for x in inputs) and dtype.kind != "f":
        dtype = np.dtype(np.float64) if dtype == np.int64 else np.dtype(np.float32)
    out = []
    for x in inputs:
        if isinstance(x, DeviceArray):
            out.append(x if x.dtype == dtype else _astype(x, dtype))
        elif isinstance(x, (numbers.Number, np.generic)) or (isinstance(x, np.ndarray) and x.ndim == 0):
            out.append(_scalar(x, dtype, first))
        else:
            raise TypeError(f"{op}: unsupported operand of type {type(x).__name__} with a CUDA array")
    return out, dtype


# ufunc -> (backend function, kind): "float": computed in a floating dtype (integers via float64 and
# back to int64, as NumPy keeps integer results integer); "true_float": integers give float64;
# "compare": any dtype, bool result; "bool": on bool arrays only.
_UFUNCS = {
    np.add: ("add", "float"), np.subtract: ("sub", "float"), np.multiply: ("mul", "float"),
    np.true_divide: ("div", "true_float"), np.power: ("pow", "float"), np.maximum: ("maximum", "float"),
    np.minimum: ("minimum", "float"), np.negative: ("neg", "float"), np.absolute: ("abs", "float"),
    np.sign: ("sign", "float"), np.exp: ("exp", "true_float"), np.log: ("log", "true_float"),
    np.log1p: ("log1p", "true_float"), np.sqrt: ("sqrt", "true_float"), np.tanh: ("tanh", "true_float"),
    np.sin: ("sin", "true_float"), np.cos: ("cos", "true_float"),
    np.equal: ("eq", "compare"), np.not_equal: ("ne", "compare"), np.less: ("lt", "compare"),
    np.less_equal: ("le", "compare"), np.greater: ("gt", "compare"), np.greater_equal: ("ge", "compare"),
    np.logical_and: ("logical_and", "compare"), np.logical_or: ("logical_or", "compare"),
    np.logical_xor: ("logical_xor", "compare"),
    np.bitwise_and: ("logical_and", "bool"), np.bitwise_or: ("logical_or", "bool"),
    np.bitwise_xor: ("logical_xor", "bool"),
}


def _ufunc(ufunc, *inputs):
    op = ufunc.__name__
    if ufunc is np.logical_not or (ufunc is np.invert and inputs[0].dtype == np.bool_):
        (x,) = inputs
        return _backend.eq(_astype(x, np.bool_, copy=False), _scalar(0, np.bool_, x))
    if ufunc is np.isnan:
        (x,) = inputs
        return _backend.ne(x, x) if x.dtype.kind == "f" else _backend.full(list(x.shape), 0.0, "bool", x.device)
    if ufunc is np.isfinite:
        (x,) = inputs
        if x.dtype.kind != "f":
            return _backend.full(list(x.shape), 1.0, "bool", x.device)
        return _backend.eq(_backend.sub(x, x), _scalar(0, x.dtype, x))  # inf - inf and NaN give NaN
    entry = _UFUNCS.get(ufunc)
    if entry is None:
        raise _not_implemented(f"numpy.{op}")
    name, kind = entry
    arrays, dtype = _operands(op, inputs)
    fn = getattr(_backend, name)
    if kind == "compare":
        return fn(*arrays)
    if kind == "bool":
        if dtype != np.bool_:
            raise _not_implemented(f"numpy.{op} on {dtype} arrays")
        return fn(*arrays)
    if dtype.kind == "f":
        return fn(*arrays)
    # integer or bool operands: compute in float64 (exact below 2^53), as NumPy: integers stay integers
    result = fn(*[_astype(a, np.float64) for a in arrays])
    if kind == "true_float":
        return result
    return _astype(result, np.int64)


def _matmul(a, b):
    """np.matmul of device arrays with at least 2 dims: the batch dims broadcast and flatten into one
    batched GEMM (float32, as the CUDA GEMM)."""
    for x in (a, b):
        if not isinstance(x, DeviceArray):
            _raise_mixed("matmul", a if isinstance(a, DeviceArray) else b)
    same_device("matmul", a, b)
    if a.ndim < 2 or b.ndim < 2:
        raise _not_implemented("numpy.matmul of a 1-D operand")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul: shapes {a.shape} and {b.shape} are not aligned")
    if a.ndim == 2 and b.ndim == 2:
        return _backend.matmul(a, b)
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    (m, k), n = a.shape[-2:], b.shape[-1]
    a3 = _reshape(_broadcast_to(a, batch + (m, k)), (-1, m, k))
    b3 = _reshape(_broadcast_to(b, batch + (k, n)), (-1, k, n))
    return _reshape(_backend.matmul(a3, b3), batch + (m, n))


def _array_ufunc(self, ufunc, method, *inputs, out=None, **kwargs):
    if method != "__call__" or kwargs.get("where", True) is not True or set(kwargs) - {"where"}:
        raise _not_implemented(f"numpy.{ufunc.__name__}.{method}" if method != "__call__" else
                               f"numpy.{ufunc.__name__} with {sorted(set(kwargs))}")
    result = _matmul(*inputs) if ufunc is np.matmul else _ufunc(ufunc, *inputs)
    if out is None:
        return result
    (target,) = out
    if not isinstance(target, DeviceArray):
        raise ValueError(f"numpy.{ufunc.__name__}: expected all tensors to be on the same device, but found at "
                         f"least two devices, cpu and {device_of(result)}")
    _assign(target, result)
    return target


def _assign(dst, src):
    if not isinstance(src, DeviceArray):
        src = _scalar(src, dst.dtype, dst) if np.ndim(src) == 0 else _raise_mixed("setitem", dst)
    same_device("setitem", dst, src)
    if src.dtype != dst.dtype:
        src = _astype(src, dst.dtype)
    _backend.assign(dst, src)


def _raise_mixed(op, x):
    raise ValueError(f"{op}: expected all tensors to be on the same device, but found at least two devices, "
                     f"cpu and {device_of(x)}")


# ---- shapes and views -----------------------------------------------------------------------------
def _shape(args) -> tuple:
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        args = args[0]
    return tuple(int(a) for a in args)


def _resolve(shape: tuple, size: int, old_shape) -> tuple:
    if shape.count(-1) > 1:
        raise ValueError(f"reshape: can only specify one unknown dimension, got {shape}")
    if -1 in shape:
        known = 1
        for n in shape:
            if n != -1:
                known *= n
        if known == 0 or size % known:
            raise ValueError(f"reshape: cannot reshape array of size {size} into shape {shape}")
        shape = tuple(size // known if n == -1 else n for n in shape)
    count = 1
    for n in shape:
        count *= n
    if count != size or builtins.any(n < 0 for n in shape):
        raise ValueError(f"cannot reshape array of size {size} (shape {old_shape}) into shape {shape}")
    return shape


def _contiguous_strides(shape) -> list:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= builtins.max(n, 1)
    return strides[::-1]


def _reshape(x, *shape, order="C"):
    if order != "C":
        raise _not_implemented(f"reshape(order={order!r})")
    shape = _resolve(_shape(shape), x.size, x.shape)
    base = x if x.is_contiguous() else x.contiguous()
    return _backend.as_strided(base, list(shape), _contiguous_strides(shape), 0)


def _transpose(x, *axes):
    axes = _shape(axes) if axes and axes != (None,) else tuple(range(x.ndim))[::-1]
    if sorted(a % builtins.max(x.ndim, 1) for a in axes) != list(range(x.ndim)):
        raise ValueError(f"transpose: axes {axes} do not match an array of {x.ndim} dims")
    axes = [a % x.ndim for a in axes]
    return _backend.as_strided(x, [x.shape[a] for a in axes], [x.strides[a] for a in axes], 0)


def _transpose_method(swap):
    """ndarray's transpose(axes) / transpose(*axes) for a tuple or three or more axes; with exactly two
    ints it keeps DeviceArray's own (torch's) meaning, swapping those two dims."""
    def transpose(self, *axes):
        if len(axes) == 2 and all(isinstance(a, numbers.Integral) for a in axes):
            return swap(self, *axes)
        return _transpose(self, *axes)
    return transpose


def _swapaxes(x, a, b):
    axes = list(range(x.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return _transpose(x, axes)


def _broadcast_to(x, shape):
    shape = tuple(int(n) for n in shape)
    lead = len(shape) - x.ndim
    if lead < 0:
        raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {shape}")
    strides = [0] * lead
    for d, (n, s) in enumerate(zip(x.shape, x.strides)):
        if n == shape[lead + d]:
            strides.append(s if n != 1 else 0)
        elif n == 1:
            strides.append(0)
        else:
            raise ValueError(f"operands could not be broadcast together: shape {x.shape} to {shape}")
    return _backend.as_strided(x, list(shape), strides, 0)


def _expand_dims(x, axis):
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    ndim = x.ndim + len(axes)
    axes = sorted(a % ndim for a in axes)
    shape = list(x.shape)
    for a in axes:
        shape.insert(a, 1)
    return _reshape(x, tuple(shape))


def _squeeze(x, axis=None):
    if axis is None:
        axes = {d for d, n in enumerate(x.shape) if n == 1}
    else:
        axes = {a % x.ndim for a in (axis if isinstance(axis, (tuple, list)) else (axis,))}
        if builtins.any(x.shape[a] != 1 for a in axes):
            raise ValueError(f"squeeze: cannot select an axis to squeeze out which has size not equal to one "
                             f"(shape {x.shape}, axis {axis})")
    keep = [d for d in range(x.ndim) if d not in axes]
    return _backend.as_strided(x, [x.shape[d] for d in keep], [x.strides[d] for d in keep], 0)


def _moveaxis(x, source, destination):
    src = [s % x.ndim for s in (source if isinstance(source, (tuple, list)) else (source,))]
    dst = [d % x.ndim for d in (destination if isinstance(destination, (tuple, list)) else (destination,))]
    order = [n for n in range(x.ndim) if n not in src]
    for d, s in sorted(zip(dst, src)):
        order.insert(d, s)
    return _transpose(x, order)


def _getitem(x, index):
    """Basic indexing (ints, slices, None, Ellipsis) as a view; anything else is not implemented."""
    parts = index if isinstance(index, tuple) else (index,)
    # a 0-d integer array is an integer index (its value comes to the host, as in torch)
    parts = tuple(int(p.item()) if isinstance(p, (np.ndarray, DeviceArray)) and p.ndim == 0 and p.dtype.kind in "iu"
                  else p for p in parts)
    if builtins.any(isinstance(p, (np.ndarray, list, bool, np.bool_)) or isinstance(p, DeviceArray) for p in parts):
        raise _not_implemented("getitem with an index array or mask (advanced indexing)")
    if builtins.sum(p is Ellipsis for p in parts) > 1:
        raise IndexError("getitem: an index can only have a single ellipsis")
    consumed = builtins.sum(p is not None and p is not Ellipsis for p in parts)
    if consumed > x.ndim:
        raise IndexError(f"getitem: too many indices for an array of shape {x.shape}")
    expanded = []
    for p in parts:
        if p is Ellipsis:
            expanded.extend([slice(None)] * (x.ndim - consumed))
        else:
            expanded.append(p)
    expanded.extend([slice(None)] * (x.ndim - builtins.sum(p is not None for p in expanded)))
    shape, strides, offset, d = [], [], 0, 0
    for p in expanded:
        if p is None:
            shape.append(1)
            strides.append(0)
            continue
        n, s = x.shape[d], x.strides[d]
        if isinstance(p, slice):
            start, stop, step = p.indices(n)
            length = len(range(start, stop, step))
            shape.append(length)
            strides.append(s * step)
            offset += start * s if length else 0
        else:
            try:
                i = p.__index__()
            except AttributeError:
                raise IndexError(f"getitem: unsupported index {p!r} for a CUDA array") from None
            if not -n <= i < n:
                raise IndexError(f"getitem: index {i} is out of bounds for axis {d} with size {n}")
            offset += (i % n) * s
        d += 1
    return _backend.as_strided(x, shape, strides, offset)


def _setitem(x, index, value):
    _assign(_getitem(x, index), value)


# ---- reductions ----------------------------------------------------------------------------------
def _axes(axis, ndim) -> tuple:
    if axis is None:
        return tuple(range(ndim))
    axes = axis if isinstance(axis, (tuple, list)) else (axis,)
    return tuple(sorted({int(a) % builtins.max(ndim, 1) for a in axes}))


def _sum(x, axis=None, dtype=None, out=None, keepdims=False, **kwargs):
    if out is not None or kwargs:
        raise _not_implemented("sum with out= or where=")
    if dtype is not None:
        x = _astype(x, dtype, copy=False)
    elif x.dtype.kind in "biu":
        x = _astype(x, np.int64, copy=False)
    integer = x.dtype.kind != "f"
    if integer:
        x = _astype(x, np.float64)
    axes = _axes(axis, x.ndim)
    if x.ndim == 0:
        result = x
    else:
        result = x
        for a in reversed(axes):  # highest axis first: the lower axes keep their numbers
            result = _backend.sum(result, a, True)
        if not keepdims:
            result = _squeeze(result, axes) if axes else result
    return _astype(result, np.int64) if integer else result


def _mean(x, axis=None, dtype=None, keepdims=False):
    axes = _axes(axis, x.ndim)
    count = 1
    for a in axes:
        count *= x.shape[a]
    total = _sum(x if x.dtype.kind == "f" else _astype(x, np.float64), axes, dtype, keepdims=keepdims)
    return _ufunc(np.true_divide, total, count)


def _extreme(x, axis, keepdims, minimum, want):
    """max/min (want 0) or argmax/argmin (want 1) over one axis or everything."""
    name = ("min" if minimum else "max") if want == 0 else ("argmin" if minimum else "argmax")
    integer = x.dtype.kind != "f"
    source = _astype(x, np.float64) if integer else x
    if axis is None:
        if want == 1 and keepdims:
            raise _not_implemented(f"{name} with keepdims over every axis")
        flat = _reshape(source, -1) if source.ndim else _reshape(source, 1)
        pair = (_backend.min if minimum else _backend.max)(flat, 0, False)
        result = pair[want]
        if keepdims:
            result = _reshape(result, (1,) * x.ndim)
    elif isinstance(axis, (tuple, list)):
        if want == 1:
            raise TypeError(f"{name}: axis must be an int")
        axes = _axes(axis, x.ndim)
        rest = [d for d in range(x.ndim) if d not in axes]
        moved = _reshape(_transpose(source, rest + list(axes)), tuple(x.shape[d] for d in rest) + (-1,))
        result = (_backend.min if minimum else _backend.max)(moved, -1, False)[0]
        if keepdims:
            result = _reshape(result, tuple(1 if d in axes else n for d, n in enumerate(x.shape)))
    else:
        result = (_backend.min if minimum else _backend.max)(source, int(axis), keepdims)[want]
    return _astype(result, x.dtype) if integer and want == 0 else result


def _concatenate(arrays, axis=0, **kwargs):
    if kwargs.get("out") is not None or kwargs.get("dtype") is not None:
        raise _not_implemented("concatenate with out= or dtype=")
    arrays = list(arrays)
    anchor = next(a for a in arrays if isinstance(a, DeviceArray))
    for a in arrays:
        if not isinstance(a, DeviceArray):
            _raise_mixed("concatenate", anchor)
        same_device("concatenate", anchor, a)
    dtype = np.result_type(*[a.dtype for a in arrays])
    first = arrays[0]
    if axis is None:
        arrays, axis = [_reshape(a, -1) for a in arrays], 0
        first = arrays[0]
    axis = int(axis) % first.ndim
    for a in arrays:
        if a.ndim != first.ndim or builtins.any(n != m for d, (n, m) in enumerate(zip(a.shape, first.shape))
                                                if d != axis):
            raise ValueError(f"concatenate: shapes {[b.shape for b in arrays]} differ outside axis {axis}")
    shape = list(first.shape)
    shape[axis] = builtins.sum(a.shape[axis] for a in arrays)
    out = _backend.full(shape, 0.0, dtype.name, first.device)
    start = 0
    for a in arrays:
        index = (slice(None),) * axis + (slice(start, start + a.shape[axis]),)
        _setitem(out, index, a)
        start += a.shape[axis]
    return out


def _stack(arrays, axis=0, **kwargs):
    arrays = list(arrays)
    ndim = arrays[0].ndim + 1
    return _concatenate([_expand_dims(a, int(axis) % ndim) for a in arrays], int(axis) % ndim, **kwargs)


def _split(x, indices_or_sections, axis=0):
    axis = int(axis) % x.ndim
    n = x.shape[axis]
    if isinstance(indices_or_sections, numbers.Integral):
        if n % indices_or_sections:
            raise ValueError("split: array split does not result in an equal division")
        step = n // indices_or_sections
        bounds = list(range(0, n + 1, step)) if step else [0] * (indices_or_sections + 1)
    else:
        bounds = [0] + [int(b) for b in indices_or_sections] + [n]
    return [_getitem(x, (slice(None),) * axis + (slice(a, b),)) for a, b in zip(bounds[:-1], bounds[1:])]


def _where(condition, a=None, b=None):
    if a is None and b is None:
        raise _not_implemented("where(condition) (nonzero)")
    anchor = next(x for x in (condition, a, b) if isinstance(x, DeviceArray))
    for x in (condition, a, b):
        if isinstance(x, np.ndarray) and x.ndim > 0:
            _raise_mixed("where", anchor)
    cond = condition if isinstance(condition, DeviceArray) else _scalar(bool(condition), np.bool_, anchor)
    same_device("where", anchor, cond)
    if isinstance(a, DeviceArray) or isinstance(b, DeviceArray):
        (a, b), _ = _operands("where", [a, b])
    else:
        dtype = np.result_type(a, b)
        a, b = _scalar(a, dtype, anchor), _scalar(b, dtype, anchor)
    return _backend.where(_astype(cond, np.bool_, copy=False), a, b)


def _flip(x, axis=None):
    """A view with the axes reversed (negative strides)."""
    axes = _axes(axis, x.ndim)
    strides, offset = list(x.strides), 0
    for a in axes:
        if x.shape[a] > 0:
            offset += (x.shape[a] - 1) * strides[a]
            strides[a] = -strides[a]
    return _backend.as_strided(x, list(x.shape), strides, offset)


def _pad(x, pad_width, mode="constant", constant_values=0, **kwargs):
    """Constant padding only: a filled array with x assigned into its middle."""
    if mode != "constant" or kwargs:
        raise _not_implemented(f"numpy.pad(mode={mode!r})")
    widths = np.broadcast_to(np.asarray(pad_width, dtype=np.int64), (x.ndim, 2))
    shape = [int(n + before + after) for n, (before, after) in zip(x.shape, widths)]
    out = _backend.full(shape, float(constant_values), x.dtype.name, x.device)
    _setitem(out, tuple(slice(int(before), int(before) + n) for n, (before, _) in zip(x.shape, widths)), x)
    return out


def _like(fill):
    def like(x, dtype=None, order="K", subok=True, shape=None, **kwargs):
        dtype = _device_dtype(dtype if dtype is not None else x.dtype, "full_like")
        return _backend.full(list(x.shape if shape is None else shape), 0.0 if fill is None else fill, dtype.name,
                             x.device)
    return like


def _full_like(x, fill_value, dtype=None, **kwargs):
    dtype = _device_dtype(dtype if dtype is not None else x.dtype, "full_like")
    return _backend.full(list(x.shape), float(fill_value), dtype.name, x.device)


def _clip(x, a_min=None, a_max=None, out=None, **kwargs):
    result = x
    if a_min is not None:
        result = _ufunc(np.maximum, result, a_min)
    if a_max is not None:
        result = _ufunc(np.minimum, result, a_max)
    if out is not None:
        _assign(out, result)
        return out
    return result


def _any(x, axis=None, keepdims=False, **kwargs):
    return _ufunc(np.greater, _extreme(_astype(x, np.bool_, copy=False), axis, keepdims, False, 0), 0)


def _all(x, axis=None, keepdims=False, **kwargs):
    return _ufunc(np.greater, _extreme(_astype(x, np.bool_, copy=False), axis, keepdims, True, 0), 0)


_FUNCTIONS = {
    np.sum: _sum, np.mean: _mean, np.reshape: lambda x, shape, order="C", **kw: _reshape(x, shape, order=order),
    np.transpose: lambda x, axes=None: _transpose(x, *(() if axes is None else (axes,))),
    np.swapaxes: _swapaxes, np.moveaxis: _moveaxis,
    np.broadcast_to: lambda x, shape, subok=False: _broadcast_to(x, shape),
    np.expand_dims: _expand_dims, np.squeeze: _squeeze, np.where: _where, np.concatenate: _concatenate,
    np.stack: _stack, np.split: _split, np.zeros_like: _like(0.0), np.ones_like: _like(1.0),
    np.empty_like: _like(None), np.full_like: _full_like, np.clip: _clip,
    np.max: lambda x, axis=None, out=None, keepdims=False, **kw: _extreme(x, axis, keepdims, False, 0),
    np.min: lambda x, axis=None, out=None, keepdims=False, **kw: _extreme(x, axis, keepdims, True, 0),
    np.amax: lambda x, axis=None, out=None, keepdims=False, **kw: _extreme(x, axis, keepdims, False, 0),
    np.amin: lambda x, axis=None, out=None, keepdims=False, **kw: _extreme(x, axis, keepdims, True, 0),
    np.argmax: lambda x, axis=None, out=None, keepdims=False: _extreme(x, axis, keepdims, False, 1),
    np.argmin: lambda x, axis=None, out=None, keepdims=False: _extreme(x, axis, keepdims, True, 1),
    np.flip: _flip, np.pad: _pad, np.any: _any, np.all: _all,
    np.shape: lambda x: x.shape, np.ndim: lambda x: x.ndim, np.size: lambda x: x.size,
    np.result_type: lambda *args: np.result_type(*[a.dtype if isinstance(a, DeviceArray) else a for a in args]),
}


def _array_function(self, func, types, args, kwargs):
    fn = _FUNCTIONS.get(func)
    if fn is None:
        raise _not_implemented(f"numpy.{func.__name__}")
    return fn(*args, **kwargs)


def _refuse_numpy(self, dtype=None, copy=None):
    raise TypeError(f"can't convert a CUDA array ({self.dtype}{list(self.shape)} on cuda:{self.device}) to NumPy "
                    "implicitly; use Tensor.cpu() (or DeviceArray.to_numpy()) to copy it to the host first")


def _scalar_value(kind):
    def convert(self):
        if self.size != 1:
            raise ValueError(f"{kind.__name__}(): a CUDA array of shape {self.shape} has more than one element")
        return kind(self.to_numpy().reshape(()).item())
    return convert


def _inplace(ufunc):
    def update(self, other):
        _assign(self, _ufunc(ufunc, self, other))
        return self
    return update


def _len(self) -> int:
    if self.ndim == 0:
        raise TypeError("len() of a 0-d array")
    return self.shape[0]


class _Flags:
    __slots__ = ("c_contiguous", "writeable")

    def __init__(self, c_contiguous, writeable):
        self.c_contiguous, self.writeable = c_contiguous, writeable


_installed = set()


def install(cls) -> None:
    """Give the DeviceArray class `cls` the ndarray behaviour above (once per class)."""
    if cls in _installed:
        return
    _installed.add(cls)
    binary = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "truediv": np.true_divide, "pow": np.power,
              "and": np.bitwise_and, "or": np.bitwise_or, "xor": np.bitwise_xor}
    for name, ufunc in binary.items():
        setattr(cls, f"__{name}__", lambda self, other, u=ufunc: _ufunc(u, self, other))
        setattr(cls, f"__r{name}__", lambda self, other, u=ufunc: _ufunc(u, other, self))
        setattr(cls, f"__i{name}__", _inplace(ufunc))
    for name, ufunc in {"eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal,
                        "gt": np.greater, "ge": np.greater_equal}.items():
        setattr(cls, f"__{name}__", lambda self, other, u=ufunc: _ufunc(u, self, other))
    cls.__hash__ = None
    cls.__neg__ = lambda self: _ufunc(np.negative, self)
    cls.__abs__ = lambda self: _ufunc(np.absolute, self)
    cls.__invert__ = lambda self: _ufunc(np.invert, self)
    cls.__array_ufunc__ = _array_ufunc
    cls.__array_function__ = _array_function
    cls.__array__ = _refuse_numpy
    cls.__array_priority__ = 2000
    cls.__getitem__ = _getitem
    cls.__setitem__ = _setitem
    cls.__len__ = _len
    cls.__bool__ = _scalar_value(bool)
    cls.__float__ = _scalar_value(float)
    cls.__int__ = _scalar_value(int)
    cls.__iter__ = lambda self: (self[i] for i in range(len(self)))
    cls.item = lambda self: _scalar_value(lambda v: v)(self)
    cls.reshape = _reshape
    cls.transpose = _transpose_method(cls.transpose)
    cls.swapaxes = _swapaxes
    cls.T = property(lambda self: _transpose(self))
    cls.squeeze = _squeeze
    cls.astype = lambda self, dtype, copy=True, **kw: _astype(self, dtype, copy)
    cls.copy = lambda self: _backend.astype(self, self.dtype.name)
    cls.sum = _sum
    cls.mean = _mean
    cls.max = lambda self, axis=None, keepdims=False, **kw: _extreme(self, axis, keepdims, False, 0)
    cls.min = lambda self, axis=None, keepdims=False, **kw: _extreme(self, axis, keepdims, True, 0)
    cls.argmax = lambda self, axis=None, keepdims=False, **kw: _extreme(self, axis, keepdims, False, 1)
    cls.argmin = lambda self, axis=None, keepdims=False, **kw: _extreme(self, axis, keepdims, True, 1)
    cls.any = _any
    cls.all = _all
    cls.fill = lambda self, value: _assign(self, value)
    cls.itemsize = property(lambda self: self.dtype.itemsize)
    cls.nbytes = property(lambda self: self.size * self.dtype.itemsize)
    cls.flags = property(lambda self: _Flags(self.is_contiguous(), not self.read_only))
    cls.tolist = lambda self: _refuse_numpy(self)


set_backend(_real_backend)
