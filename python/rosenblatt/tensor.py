"""Tensor and reverse-mode autograd.

A Tensor wraps a NumPy array (CPU storage) or a DeviceArray of the CUDA backend (see
rosenblatt._device, which makes a DeviceArray behave as the ndarray the ops expect). An op
that produces a Tensor from Tensors that require grad records its parents and a backward closure

    backward(grad_out: np.ndarray) -> tuple of np.ndarray | None, one per parent

and `Tensor.backward` walks the recorded graph in reverse topological order,
summing the gradients that reach each node, and accumulating (+=) into the
`.grad` of leaves. Ops live in `rosenblatt.ops`; this file holds only the engine.
"""
from __future__ import annotations

import contextlib
import operator
import sys
import threading
import weakref

import numpy as np

from . import _device
from .device import CPU, device as _device_type

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int64 = np.dtype(np.int64)
int32 = np.dtype(np.int32)
bool_ = np.dtype(np.bool_)

_state = threading.local()


def is_grad_enabled() -> bool:
    return getattr(_state, "grad_enabled", True)


def set_grad_enabled(mode: bool) -> None:
    _state.grad_enabled = bool(mode)


@contextlib.contextmanager
def _grad_mode(mode: bool):
    previous = is_grad_enabled()
    set_grad_enabled(mode)
    try:
        yield
    finally:
        set_grad_enabled(previous)


class no_grad(contextlib.ContextDecorator):
    """Context manager (and decorator) that stops graph recording, as torch.no_grad."""

    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(False)

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)
        return False


class enable_grad(contextlib.ContextDecorator):
    def __enter__(self):
        self._previous = is_grad_enabled()
        set_grad_enabled(True)

    def __exit__(self, *exc):
        set_grad_enabled(self._previous)
        return False


def _graph_freed(_grad):
    raise RuntimeError(
        "backward: trying to backward through the graph a second time; "
        "pass retain_graph=True to the first backward() call"
    )


def _to_dtype(dtype):
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype in ("float", "double", "long", "int", "bool"):
        dtype = {"float": "float32", "double": "float64", "long": "int64", "int": "int32", "bool": "bool"}[dtype]
    return np.dtype(dtype)


def _as_array(data, dtype=None) -> np.ndarray:
    """Convert data to a NumPy array with torch's default dtypes (float32 for Python floats).
    Only numeric data makes a tensor: strings, None and other objects raise TypeError."""
    if isinstance(data, Tensor):
        data = data.data
    dtype = _to_dtype(dtype)
    if isinstance(data, np.ndarray):
        array = data if dtype is None or data.dtype == dtype else data.astype(dtype)
    elif isinstance(data, _device.DeviceArray):
        return data if dtype is None or data.dtype == dtype else data.astype(dtype)
    elif isinstance(data, np.generic):
        array = np.asarray(data, dtype=dtype)
    else:
        try:
            array = np.asarray(data)
        except ValueError as error:  # ragged nested sequences
            raise ValueError(f"tensor: cannot make a tensor from a ragged {type(data).__name__}: {error}") from None
        if dtype is not None:
            array = array.astype(dtype, copy=False)
        elif array.dtype == np.float64:  # Python floats: torch's default float32
            array = array.astype(np.float32)
        elif array.dtype.kind in "iu":
            array = array.astype(np.int64, copy=False)
    if array.dtype.kind not in "biufc":
        raise TypeError(f"tensor: cannot make a tensor from {type(data).__name__} (NumPy dtype {array.dtype}, "
                        f"shape {array.shape}); expected numbers")
    return array


def _references(array) -> int:
    return sys.getrefcount(array)


# What _references reports for an array held by one local variable of its caller (Python versions
# count differently): more means someone else holds the array too.
def _sole_reference_count() -> int:
    fresh = np.empty(1)
    return _references(fresh)


_SOLE = _sole_reference_count()


def _owns_memory(array: np.ndarray) -> bool:
    """No other array can see `array`'s memory: it owns it, or it is one of the kernels' recycled arrays
    (csrc/bindings/arrays.cpp), whose block is held by a capsule that only this array refers to."""
    base = array.base
    if base is None:
        return True
    # References to the capsule: array.base, `base`, and the call's (as in _sole_reference_count).
    return type(base).__name__ == "PyCapsule" and _references(base) <= _SOLE + 1


def _sole_reference(array) -> bool:
    """True when `array` owns its memory, is writable, and only the caller's local variable refers to it:
    it can become a .grad without a copy. (The call adds one reference, as in _sole_reference_count.)"""
    return (type(array) is np.ndarray and array.flags.writeable and _references(array) <= _SOLE + 1
            and _owns_memory(array))


class Tensor:
    """An n-dimensional array with an optional gradient, stored as a NumPy array on the CPU or as a
    DeviceArray on a CUDA device."""

    __slots__ = ("data", "requires_grad", "grad", "_parents", "_backward", "_op", "_saved_versions",
                 "__weakref__")
    __array_priority__ = 1000  # make ndarray <op> Tensor defer to Tensor's reflected operators
    __hash__ = object.__hash__  # comparisons return Tensors, identity stays the hash (as torch)

    def __init__(self, data, requires_grad: bool = False, dtype=None, _parents=(), _backward=None, _op: str = ""):
        self.data = _as_array(data, dtype)
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"Tensor: only floating point tensors can require grad, got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._parents = _parents
        self._backward = _backward
        self._op = _op
        self._saved_versions = None  # this node's and its parents' storage versions when it was recorded

    # ---- basic properties --------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> _device_type:
        return CPU if isinstance(self.data, np.ndarray) else _device.device_of(self.data)

    @property
    def is_cuda(self) -> bool:
        return not isinstance(self.data, np.ndarray)

    def cuda(self, device=None) -> "Tensor":
        """This tensor on a CUDA device (cuda:0 unless given); itself when already there."""
        target = _device_type("cuda") if device is None else _device_type(device)
        if target.type != "cuda":
            raise ValueError(f"cuda: expected a CUDA device, got {target}")
        return self.to(target)

    def cpu(self) -> "Tensor":
        return self if isinstance(self.data, np.ndarray) else self.to(CPU)

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    def dim(self) -> int:
        return self.data.ndim

    def size(self, dim=None):
        return self.data.shape if dim is None else self.data.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def numpy(self) -> np.ndarray:
        if not isinstance(self.data, np.ndarray):
            raise TypeError(f"numpy: can't convert {self.device} device type tensor to numpy; use Tensor.cpu() to "
                            "copy the tensor to host memory first")
        return self.data

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only one-element tensors can be converted, got shape {self.shape}")
        if not isinstance(self.data, np.ndarray):
            return self.data.to_numpy().reshape(()).item()  # waits for the device, as torch
        return self.data.reshape(()).item()

    def tolist(self):
        return self.data.tolist() if isinstance(self.data, np.ndarray) else self.data.to_numpy().tolist()

    def detach(self) -> "Tensor":
        return Tensor(self.data)

    @property
    def _version(self) -> int:
        """How many in-place updates the storage has had (shared by views, as torch's _version)."""
        return _STORAGE_VERSIONS.get(id(_storage(self.data)), 0)

    def _bump_version(self) -> None:
        _bump_storage_version(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and self.data.dtype.kind not in "fc":
            raise TypeError(f"requires_grad_: only floating point tensors can require grad, got {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def __array__(self, dtype=None, copy=None):
        if not isinstance(self.data, np.ndarray):
            self.numpy()  # raises: a CUDA tensor is never converted implicitly
        return self.data if dtype is None else self.data.astype(dtype)

    # ---- DLPack: zero-copy exchange with PyTorch, NumPy, JAX, CuPy -------------------------
    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        """Export the storage as a DLPack capsule (versioned when max_version >= (1, 0)).
        The storage (a NumPy array or a DeviceArray) already implements the protocol; a CUDA
        tensor makes the consumer's `stream` wait for its own stream."""
        if not isinstance(self.data, np.ndarray):
            return self.data.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)
        if stream is not None:  # the DLPack spec: CPU producers take no stream
            raise BufferError(f"__dlpack__: a CPU tensor takes stream=None, got {stream!r}")
        data = self.data
        if any(step < 0 for step in data.strides):
            # A flipped view (rb.flip, x[::-1]): DLPack can carry negative strides, but consumers
            # refuse them, torch's by aborting the process. Export a copy instead.
            if copy is False:
                raise BufferError(f"__dlpack__: a tensor with negative strides {data.strides} (shape {data.shape}) "
                                  "can only be exported as a copy, and copy=False was asked")
            data = np.ascontiguousarray(data)
        return data.__dlpack__(stream=stream, max_version=max_version, dl_device=dl_device, copy=copy)

    def __dlpack_device__(self) -> tuple:
        return self.data.__dlpack_device__()

    @property
    def __cuda_array_interface__(self) -> dict:
        """Version 3 of the CUDA array interface (CUDA tensors only, as torch)."""
        if isinstance(self.data, np.ndarray):
            raise AttributeError("__cuda_array_interface__: a CPU tensor has no CUDA array interface; use .cuda()")
        return self.data.__cuda_array_interface__

    def __repr__(self) -> str:
        host = self.data if isinstance(self.data, np.ndarray) else self.data.to_numpy()
        body = np.array2string(host, separator=", ", prefix="tensor(")
        extra = "" if isinstance(self.data, np.ndarray) else f", device='{self.device}'"
        extra += "" if self.dtype == float32 else f", dtype={self.dtype}"
        if self.requires_grad:
            extra += f", grad_fn=<{self._op}>" if self._op else ", requires_grad=True"
        return f"tensor({body}{extra})"

    # ---- autograd engine ---------------------------------------------------------------
    def backward(self, gradient=None, retain_graph: bool = False) -> None:
        if not self.requires_grad:
            raise RuntimeError("backward: tensor does not require grad and has no grad_fn")
        run_backward([self], [self._seed(gradient, "backward")], retain_graph)

    def _seed(self, gradient, op: str):
        """The gradient a backward pass starts from at this output: `gradient` as an array of its
        dtype, shape and device, or 1 for a scalar output when gradient is None."""
        if gradient is None:
            if self.data.size != 1:
                raise RuntimeError(f"{op}: grad can be implicitly created only for scalar outputs, got shape {self.shape}")
            return np.ones_like(self.data)
        seed = _as_array(gradient, self.dtype)
        _device.same_device(op, self.data, seed)
        if seed.shape != self.shape:
            raise ValueError(f"{op}: gradient has shape {seed.shape}, expected {self.shape}")
        return seed



# ---- the backward pass --------------------------------------------------------------------------
def run_backward(roots: list, seeds: list, retain_graph: bool, wanted: list | None = None):
    """Propagate the gradients `seeds` of `roots` back through the graph.

    Without `wanted` (Tensor.backward), leaves accumulate their gradients into .grad, as torch.
    With `wanted`, a list of tensors (autograd.grad), no .grad is touched: the pass visits only
    nodes from which a wanted tensor can be reached and returns the gradient arriving at each
    wanted tensor (None where none arrives). A node freed by an earlier pass that receives a
    gradient raises (unless it is itself wanted): where its parents led is no longer known."""
    order = _topological_order(roots)
    capturing = wanted is not None
    needed = _leading_to(order, wanted) if capturing else None
    captured = {id(t): None for t in wanted} if capturing else None
    grads = {}
    for root, seed in zip(roots, seeds):
        grads[id(root)] = seed if id(root) not in grads else grads[id(root)] + seed
    for node in order:  # outputs first
        grad = grads.pop(id(node), None)
        if grad is None:
            continue
        if capturing and id(node) in captured:  # a copy of its own: x + y gives one array to both
            captured[id(node)] = _shaped_like(node, grad).copy()
        if node._backward is None:  # a leaf
            if not capturing:
                # (Here, not in a function: `grad` must stay this frame's sole reference, see below.)
                grad = _shaped_like(node, grad)
                held = None if node.grad is None else node.grad.data
                if not isinstance(grad, np.ndarray):  # on a device: a fresh array
                    node.grad = Tensor(grad.copy()) if held is None else Tensor(held + grad)
                elif (isinstance(held, np.ndarray) and held.shape == node.shape and held.dtype == node.dtype
                        and held.flags.writeable and _owns_memory(held)):
                    # Into the array .grad owns, as torch accumulates: no fresh array per backward.
                    np.add(held, grad, out=held)
                    node.grad._bump_version()
                elif held is None:  # the gradient itself when nothing else refers to it, as torch steals it
                    node.grad = Tensor(grad if _sole_reference(grad) else np.array(grad))
                else:
                    node.grad = Tensor(held + grad)
            continue
        if capturing and node._backward is _graph_freed and id(node) not in captured:
            # Its parents are gone with its graph, so whether a wanted tensor lies beyond it is unknown:
            # refuse, as Tensor.backward does, rather than call that input unused or under-count it.
            raise RuntimeError(f"grad: trying to backward through the graph a second time ({node._op}, output "
                               f"shape {node.shape}, was freed by an earlier backward or grad); pass "
                               "retain_graph=True to the first call")
        if capturing and not any(id(parent) in needed for parent in node._parents):
            continue
        _check_not_modified(node)
        if isinstance(grad, np.generic):  # NumPy arithmetic on 0-d arrays gives scalars; the ops take arrays
            grad = np.asarray(grad)
        parent_grads = node._backward(grad)
        for parent, parent_grad in zip(node._parents, parent_grads):
            if parent_grad is None or not parent.requires_grad:
                continue
            key = id(parent)
            grads[key] = parent_grad if key not in grads else grads[key] + parent_grad
        parent_grads = parent_grad = None  # so a leaf's gradient is referenced only from `grads`
        if not retain_graph:
            node._backward = _graph_freed
            node._parents = ()
            node._saved_versions = None
    if capturing:
        return [captured[id(t)] for t in wanted]


def _topological_order(roots: list) -> list:
    """Nodes that require grad, each after every node that consumes it (iterative DFS)."""
    order, visited = [], set()
    stack = []
    for root in reversed(roots):  # (a loop: a comprehension costs more for the usual single root)
        stack.append((root, False))
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent.requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


def _leading_to(order: list, wanted: list) -> set:
    """ids of the nodes in `order` from which some wanted tensor is reached (the wanted included)."""
    needed = {id(t) for t in wanted}
    for node in reversed(order):  # every node after its parents
        if any(id(parent) in needed for parent in node._parents):
            needed.add(id(node))
    return needed


def _shaped_like(node: Tensor, grad):
    """A gradient as an array of the node's dtype and shape (broadcast where an op left it smaller)."""
    if isinstance(grad, np.ndarray) or not isinstance(node.data, _device.DeviceArray):
        grad = np.asarray(grad, dtype=node.dtype)
    else:
        _device.same_device("backward", node.data, grad)
        grad = grad.astype(node.dtype, copy=False)
    return np.broadcast_to(grad, node.shape) if grad.shape != node.shape else grad


# ---- storage versions ------------------------------------------------------------------------------
# An in-place update (x.add_, x[i] = v, an optimiser's step, init.*_) bumps a counter kept per
# storage: the array that owns the memory (a NumPy view's base; a DeviceArray itself). Views,
# detached tensors and the parameter an optimiser updates therefore share it with every tensor that
# reads the same memory, as torch's version counters are shared between views. Counters exist only
# for storages updated in place, and go with them.
_STORAGE_VERSIONS: dict = {}
_BUMPS = [0]  # in-place updates so far, of any storage: while unchanged, no version has moved
_NDARRAY = np.ndarray


def _storage(data):
    if type(data) is _NDARRAY:
        base = data.base
        if type(base) is _NDARRAY:  # NumPy points a view of a view at the owner itself
            return base
    return data


def _bump_storage_version(data) -> None:
    root = _storage(data)
    key = id(root)
    if key not in _STORAGE_VERSIONS:
        try:  # the entry goes when the storage does (its id may then be reused)
            weakref.finalize(root, _STORAGE_VERSIONS.pop, key, None)
        except TypeError:  # a storage type without weak references: the entry stays
            pass
    _STORAGE_VERSIONS[key] = _STORAGE_VERSIONS.get(key, 0) + 1
    _BUMPS[0] += 1


def _storage_versions(arrays) -> tuple | None:
    """The versions of the arrays' storages; None when no storage has a version yet (all 0)."""
    if not _STORAGE_VERSIONS:
        return None
    get = _STORAGE_VERSIONS.get
    return tuple([get(id(_storage(a)), 0) for a in arrays])


_DATA = operator.attrgetter("data")


def _record_versions(out: Tensor, parents: tuple) -> tuple:
    """What a node keeps to check its inputs at backward time: its output's and parents' arrays (a
    replaced .data shows as another array), their storages' versions, and the update count."""
    arrays = (out.data, *map(_DATA, parents))
    return _BUMPS[0], arrays, _storage_versions(arrays)


def _check_not_modified(node: Tensor) -> None:
    """A backward closure reads the values its op saw; if an input or the output itself was since changed
    in place (under no_grad; through a view or a detached tensor too), or given other storage
    (load_state_dict), its gradient would be silently wrong, so refuse, as torch does.
    (Conservative: torch only checks the values an op actually saved.)"""
    if node._saved_versions is None:
        return
    bumps, arrays, versions = node._saved_versions
    if node.data is arrays[0] and all(map(operator.is_, map(_DATA, node._parents), arrays[1:])):
        if bumps == _BUMPS[0]:
            return
        zeros = (0,) * len(arrays)
        if (_storage_versions(arrays) or zeros) == (versions or zeros):
            return
    raise RuntimeError(f"backward: a tensor used by {node._op} (output shape {node.shape}) was modified by an "
                       "in-place operation after the forward pass; recompute the forward or avoid the update")


def tensor(data, requires_grad: bool = False, dtype=None, device=None) -> Tensor:
    """Create a Tensor from data (copied), as torch.tensor; device="cuda" puts it on a CUDA device."""
    target = None if device is None else _device_type(device)
    if isinstance(data, Tensor):
        data = data.data
    if isinstance(data, _device.DeviceArray):
        array = data.astype(_to_dtype(dtype) or data.dtype, copy=True)
        return Tensor(array if target is None else _device.to_device(array, target, "tensor"),
                      requires_grad=requires_grad)
    array = _as_array(data, dtype)
    if target is not None and target.type == "cuda":
        return Tensor(_device.to_device(array, target, "tensor"), requires_grad=requires_grad)
    if isinstance(data, np.ndarray) and array is data:
        array = array.copy()
    return Tensor(array, requires_grad=requires_grad)


# DLPack device types (DLDeviceType in the DLPack spec).
_DL_CPU, _DL_CUDA, _DL_CUDA_HOST, _DL_CUDA_MANAGED = 1, 2, 3, 13


def from_dlpack(obj) -> Tensor:
    """A Tensor sharing memory with any producer of the DLPack protocol (a PyTorch tensor on the
    CPU or CUDA, a NumPy array, CuPy, ...): a write through either side is seen by the other."""
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        raise TypeError(f"from_dlpack: {type(obj).__name__} does not implement __dlpack__ and __dlpack_device__")
    device_type, device_id = obj.__dlpack_device__()
    if device_type in (_DL_CUDA, _DL_CUDA_MANAGED):
        try:
            module = _device.backend("from_dlpack")
        except RuntimeError as error:
            raise RuntimeError(f"from_dlpack: {type(obj).__name__} lives on CUDA device {device_id}, but the "
                               f"rosenblatt CUDA backend is not available here ({error})") from None
        return Tensor(module.from_dlpack(obj))
    if device_type not in (_DL_CPU, _DL_CUDA_HOST):
        raise RuntimeError(f"from_dlpack: unsupported DLPack device type {device_type} of {type(obj).__name__}")
    return Tensor(np.from_dlpack(obj))


def result(data: np.ndarray, parents: tuple, backward, op: str) -> Tensor:
    """Wrap an op's output, recording the graph edge only when grad mode is on and a parent needs grad."""
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        out = Tensor(data, requires_grad=True, _parents=parents, _backward=backward, _op=op)
        out._saved_versions = _record_versions(out, parents)
        return out
    return Tensor(data)


def _scalar_category(value) -> int | None:
    """0 for bool, 1 for integer, 2 for floating Python/NumPy scalars; None for anything else."""
    if isinstance(value, (bool, np.bool_)):
        return 0
    if isinstance(value, (int, np.integer)):
        return 1
    if isinstance(value, (float, np.floating)):
        return 2
    return None


_KIND_CATEGORY = {"b": 0, "i": 1, "u": 1, "f": 2, "c": 3}


def as_tensor(value, like: Tensor | None = None) -> Tensor:
    """Tensors pass through; arrays and Python numbers become constant Tensors (a NumPy array is copied,
    as torch.tensor does: an op's backward may read it after the caller has changed its array).

    A scalar combined with a tensor takes the tensor's dtype unless it is of a higher
    category (bool < integer < float), as in torch: float32_tensor * 2.5 stays float32,
    int_tensor * 2.5 becomes float32 (torch's default float), bool_tensor + 1 becomes int64.
    """
    if isinstance(value, Tensor):
        return value
    if isinstance(value, np.ndarray):  # a copy: backward closures read it, and the caller may reuse its array
        return Tensor(value.copy())
    category = _scalar_category(value)
    if like is not None and category is not None:
        if category <= _KIND_CATEGORY.get(like.dtype.kind, 3):
            dtype = like.dtype
        else:
            dtype = float32 if category == 2 else int64
        if not isinstance(like.data, np.ndarray):
            return Tensor(_device.full((), value, dtype, like.data))
        return Tensor(np.asarray(value, dtype=dtype))
    return Tensor(value)


def unbroadcast(grad: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum a broadcast gradient back down to `shape` (NumPy broadcasting rules)."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra > 0:
        grad = grad.sum(axis=tuple(range(extra)))
    axes = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if axes:
        grad = grad.sum(axis=axes, keepdims=True)
    return grad.reshape(shape)
