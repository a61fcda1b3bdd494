"""Module and Parameter, with torch.nn's names, traversal order and state_dict layout."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ... import _device
from ...device import device as _device_type
from ...tensor import Tensor, _to_dtype


class Parameter(Tensor):
    """A Tensor that a Module registers as a learnable parameter (requires grad by default)."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        data = np.zeros(0, np.float32) if data is None else data
        if isinstance(data, Tensor):
            data = data.data
        if not isinstance(data, (np.ndarray, _device.DeviceArray)):
            data = np.array(data, copy=True)
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of every layer: holds parameters, buffers and sub-modules in insertion order."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ---- registration through attribute assignment ------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        if name in self._buffers and (value is None or type(value) is Tensor):
            self._buffers[name] = value  # updating a buffer (running statistics) keeps it a buffer
            return
        if name in self._parameters and value is None:
            self._parameters[name] = None
            return
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table)
            if entries is not None and name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if not persistent:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        self.__dict__.pop(name, None)
        self._modules[name] = module

    # ---- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ----------------------------------------------------------------------------
    def named_modules(self, prefix: str = ""):
        seen = set()

        def walk(module, prefix):
            if id(module) in seen:
                return
            seen.add(id(module))
            yield prefix, module
            for name, child in module._modules.items():
                if child is not None:
                    yield from walk(child, f"{prefix}.{name}" if prefix else name)

        yield from walk(self, prefix)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        for name, child in self._modules.items():
            if child is not None:
                yield name, child

    def children(self):
        for _, child in self.named_children():
            yield child

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_prefix, module in modules:
            for name, param in module._parameters.items():
                if param is None or id(param) in seen:
                    continue
                seen.add(id(param))
                yield (f"{module_prefix}.{name}" if module_prefix else name), param

    def parameters(self, recurse: bool = True):
        for _, param in self.named_parameters(recurse=recurse):
            yield param

    def named_buffers(self, prefix: str = ""):
        for module_prefix, module in self.named_modules(prefix):
            for name, buf in module._buffers.items():
                if buf is not None:
                    yield (f"{module_prefix}.{name}" if module_prefix else name), buf

    def buffers(self):
        for _, buf in self.named_buffers():
            yield buf

    # ---- devices and dtypes ------------------------------------------------------------------
    def to(self, *args, device=None, dtype=None, **kwargs) -> "Module":
        """Move (and/or cast floating point) parameters and buffers in place, as torch.nn.Module.to:
        the Parameter objects stay the same (an optimizer built on them follows), their .data and
        .grad move. to(device), to(dtype), to(device, dtype), to(tensor)."""
        for arg in args:
            if isinstance(arg, Tensor):
                device, dtype = arg.device, arg.dtype
            elif isinstance(arg, (_device_type, int)) or (isinstance(arg, str)
                                                          and arg.split(":")[0] in ("cpu", "cuda")):
                device = arg
            else:
                dtype = arg
        target = None if device is None else _device_type(device)
        dtype = _to_dtype(dtype)
        for module in self.modules():
            for table in (module._parameters, module._buffers):
                for value in table.values():
                    if value is None:
                        continue
                    for tensor in (value, value.grad):
                        if tensor is None:
                            continue
                        if dtype is not None and tensor.dtype.kind == "f":
                            tensor.data = tensor.data.astype(dtype)
                        if target is not None:
                            tensor.data = _device.to_device(tensor.data, target, f"{type(self).__name__}.to")
        return self

    def cuda(self, device=None) -> "Module":
        return self.to(_device_type("cuda") if device is None else _device_type(device))

    def cpu(self) -> "Module":
        return self.to("cpu")

    # ---- modes and gradients ------------------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for param in self.parameters():
            if set_to_none or param.grad is None:
                param.grad = None
            else:
                param.grad = Tensor(np.zeros_like(param.data))

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for param in self.parameters():
            param.requires_grad_(requires_grad)
        return self

    def apply(self, fn) -> "Module":
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- state_dict ---------------------------------------------------------------------------
    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Tensor]":
        """Parameters then persistent buffers of each module, depth first, keys as torch.nn."""
        state = OrderedDict()
        for module_prefix, module in self.named_modules(prefix.rstrip(".")):
            skip = module.__dict__.get("_non_persistent", set())
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    if value is not None and name not in skip:
                        state[f"{module_prefix}.{name}" if module_prefix else name] = value.detach()
        return state

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors, NumPy arrays, or anything with .numpy()) into this module's
        parameters and buffers. Shapes must match; with strict, keys must match exactly."""
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        targets = {}
        for module_prefix, module in self.named_modules():
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    if value is not None:
                        targets[f"{module_prefix}.{name}" if module_prefix else name] = value
        for key, value in state_dict.items():
            if key not in targets:
                continue
            array = _to_numpy(value)
            target = targets[key]
            if array.shape != target.shape:
                raise ValueError(f"load_state_dict: {key} has shape {array.shape} in the checkpoint, "
                                 f"{target.shape} in the model")
            if isinstance(target.data, np.ndarray):
                target.data = np.array(array, dtype=target.dtype)
            else:  # a parameter on a device stays there
                target.data = _device.to_device(np.array(array, dtype=target.dtype), target.device, "load_state_dict")
        return missing, unexpected

    # ---- printing -----------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self.named_children()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, Tensor):
        return value.cpu().data
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        return value.detach().cpu().numpy()
    return np.asarray(value)
