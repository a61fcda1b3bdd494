"""Tensor factories, as torch's: zeros, ones, full, arange, randn, ... Random ones draw from
`rosenblatt.random.default_generator()` so `rosenblatt.manual_seed` reproduces them."""
from __future__ import annotations

import operator

import numpy as np

from . import _device
from .device import device as _device_type
from .ops import _shape_args
from .random import default_generator
from .tensor import Tensor, _to_dtype, float32, int64


def _make(array: np.ndarray, requires_grad: bool, device) -> Tensor:
    """The Tensor of a freshly made host array, copied to `device` when that is a CUDA device
    (random numbers are drawn on the host, so a seed gives the same values on every device)."""
    if device is not None and device != "cpu":
        target = _device_type(device)
        if target.type == "cuda":
            return Tensor(_device.to_device(array, target, "tensor factory"), requires_grad=requires_grad)
    return Tensor(array, requires_grad=requires_grad)


def _size(size, dtype, op: str) -> tuple:
    """The requested shape, refusing negative dims and element or byte counts that overflow."""
    shape = _shape_args(size, op)
    if any(n < 0 for n in shape):
        raise ValueError(f"{op}: negative dimension in shape {shape}")
    elements = 1
    for n in shape:
        elements *= n  # Python ints: no overflow while checking for one
    if elements * np.dtype(dtype).itemsize > np.iinfo(np.intp).max:
        raise ValueError(f"{op}: shape {shape} of {np.dtype(dtype)} overflows the addressable size")
    return shape


def _float_dtype(dtype) -> np.dtype:
    """The requested dtype, or torch's default float32."""
    return _to_dtype(dtype) or float32


def zeros(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    dtype = _float_dtype(dtype)
    return _make(np.zeros(_size(size, dtype, "zeros"), dtype), requires_grad, device)


def ones(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    dtype = _float_dtype(dtype)
    return _make(np.ones(_size(size, dtype, "ones"), dtype), requires_grad, device)


def empty(*size, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    dtype = _float_dtype(dtype)
    return _make(np.empty(_size(size, dtype, "empty"), dtype), requires_grad, device)


def full(size, fill_value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """The dtype follows fill_value when not given: bool, int64 or float32 (as torch)."""
    if dtype is None:
        dtype = np.bool_ if isinstance(fill_value, bool) else int64 if isinstance(fill_value, int) else float32
    dtype = _to_dtype(dtype)
    return _make(np.full(_size((size,), dtype, "full"), fill_value, dtype), requires_grad, device)


def _like(x: Tensor, dtype):
    return x.shape, _to_dtype(dtype) or x.dtype


def _like_device(x: Tensor, device):
    """*_like factories follow x's device unless told otherwise, as torch."""
    return device if device is not None or isinstance(x.data, np.ndarray) else x.device


def zeros_like(x: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    shape, dtype = _like(x, dtype)
    return _make(np.zeros(shape, dtype), requires_grad, _like_device(x, device))


def ones_like(x: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    shape, dtype = _like(x, dtype)
    return _make(np.ones(shape, dtype), requires_grad, _like_device(x, device))


def full_like(x: Tensor, fill_value, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    shape, dtype = _like(x, dtype)
    return _make(np.full(shape, fill_value, dtype), requires_grad, _like_device(x, device))


def empty_like(x: Tensor, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    shape, dtype = _like(x, dtype)
    return _make(np.empty(shape, dtype), requires_grad, _like_device(x, device))


def arange(start, end=None, step=1, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    """Integers give int64, any float argument gives float32 (as torch)."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    if dtype is None:
        dtype = int64 if all(isinstance(v, (int, np.integer)) for v in (start, end, step)) else float32
    return _make(np.arange(start, end, step).astype(_to_dtype(dtype)), requires_grad, device)


def linspace(start, end, steps: int, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return _make(np.linspace(start, end, steps).astype(_float_dtype(dtype)), requires_grad, device)


def eye(n: int, m: int | None = None, dtype=None, requires_grad: bool = False, device=None) -> Tensor:
    return _make(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad, device)


def _random_floats(draw, size, dtype, op):
    dtype = _float_dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"{op}: dtype must be float32 or float64, got {dtype}")
    return draw(_size(size, dtype, op), dtype=dtype)


def randn(*size, dtype=None, requires_grad: bool = False, generator=None, device=None) -> Tensor:
    """Standard normal samples."""
    draw = (generator or default_generator()).standard_normal
    return _make(_random_floats(draw, size, dtype, "randn"), requires_grad, device)


def rand(*size, dtype=None, requires_grad: bool = False, generator=None, device=None) -> Tensor:
    """Uniform samples on [0, 1)."""
    draw = (generator or default_generator()).random
    return _make(_random_floats(draw, size, dtype, "rand"), requires_grad, device)


def _exact_integer_range(dtype: np.dtype, op: str) -> tuple:
    """The least and greatest integers that dtype holds exactly: its limits for bool and integer
    dtypes, +-2**(mantissa bits + 1) for floats (as torch checks)."""
    if dtype == np.bool_:
        return 0, 1
    if dtype.kind in "iu":
        return int(np.iinfo(dtype).min), int(np.iinfo(dtype).max)
    if dtype.kind == "f":
        largest = 2 ** (np.finfo(dtype).nmant + 1)
        return -largest, largest
    raise TypeError(f"{op}: dtype must be a bool, integer or float dtype, got {dtype}")


def _integer_arg(value, name: str, op: str) -> int:
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int, got {type(value).__name__}") from None


def randint(low, high=None, size=None, dtype=None, generator=None, device=None) -> Tensor:
    """Integers uniform on [low, high); randint(high, size) draws from [0, high), as torch.
    [low, high) must be non-empty and fit the dtype (torch raises; a cast would wrap silently)."""
    if size is None:
        low, high, size = 0, low, high
    if size is None:
        raise TypeError("randint: size is required")
    low, high = _integer_arg(low, "low", "randint"), _integer_arg(high, "high", "randint")
    dtype = _to_dtype(dtype) or int64
    if low >= high:
        raise ValueError(f"randint: need low < high, got low={low}, high={high}")
    smallest, largest = _exact_integer_range(dtype, "randint")
    if low < smallest or high - 1 > largest:
        raise ValueError(f"randint: [low, high) = [{low}, {high}) does not fit {dtype} "
                         f"(which holds integers in [{smallest}, {largest}])")
    draw_dtype = np.uint64 if high - 1 > np.iinfo(np.int64).max else np.int64  # only uint64 reaches past int64
    shape = _size((size,), int64, "randint")
    values = (generator or default_generator()).integers(low, high, shape, dtype=draw_dtype)
    return _make(values.astype(dtype), False, device)


def randperm(n: int, dtype=None, generator=None, device=None) -> Tensor:
    """A random permutation of 0 .. n - 1; n - 1 must fit the dtype (as torch)."""
    n = _integer_arg(n, "n", "randperm")
    if n < 0:
        raise ValueError(f"randperm: n must be non-negative, got {n}")
    dtype = _to_dtype(dtype) or int64
    _, largest = _exact_integer_range(dtype, "randperm")
    if n - 1 > largest:
        raise ValueError(f"randperm: n={n} does not fit {dtype} (which holds integers up to {largest})")
    _size((n,), int64, "randperm")
    return _make((generator or default_generator()).permutation(n).astype(dtype), False, device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A Tensor sharing memory with the array (as torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected np.ndarray, got {type(array).__name__}")
    return Tensor(array)
