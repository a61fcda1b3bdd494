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
        """As torch.nn.Module: a Parameter registers as a parameter, a Module as a sub-module; a name
        already registered keeps its registry (and its place in the order), so assigning a value of the
        wrong kind to it is a TypeError instead of silently unregistering it."""
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before assigning attributes")
        params, buffers, modules = self._parameters, self._buffers, self._modules
        if isinstance(value, Parameter):
            self._unregister(name, keep=params)
            self.register_parameter(name, value)
        elif name in params:
            self._check_assignable(name, value, None, "parameter", "rosenblatt.nn.Parameter")
            params[name] = None
        elif isinstance(value, Module):
            self._unregister(name, keep=modules)
            modules[name] = value
        elif name in modules:
            self._check_assignable(name, value, None, "child module", "rosenblatt.nn.Module")
            modules[name] = None
        elif name in buffers:
            self._check_assignable(name, value, Tensor, "buffer", "rosenblatt.Tensor")
            buffers[name] = value  # updating a buffer (running statistics) keeps it a buffer, in its place
        else:
            object.__setattr__(self, name, value)

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
                self._non_persistent_names().discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        self._check_name(name, self._parameters, "parameter")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"{type(self).__name__}: cannot assign '{type(param).__name__}' object to parameter "
                            f"'{name}' (rosenblatt.nn.Parameter or None required)")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        self._check_name(name, self._buffers, "buffer")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(f"{type(self).__name__}: cannot assign '{type(tensor).__name__}' object to buffer "
                            f"'{name}' (rosenblatt.Tensor or None required)")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_names().discard(name)
        else:
            self.__dict__.setdefault("_non_persistent", set()).add(name)

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(self).__name__}: {type(module).__name__} is not a Module subclass "
                            f"(adding module '{name}')")
        self._check_name(name, self._modules, "module")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    def _check_name(self, name, registry, kind: str) -> None:
        """torch's rules: a str, non-empty, no "." (it separates state_dict keys), and not an attribute
        that lives elsewhere (a method, a plain attribute, or another registry's entry)."""
        owner = type(self).__name__
        if not isinstance(name, str):
            raise TypeError(f"{owner}: {kind} name should be a string, got {type(name).__name__}")
        if "." in name:
            raise KeyError(f"{owner}: {kind} name can't contain \".\", got '{name}'")
        if name == "":
            raise KeyError(f"{owner}: {kind} name can't be empty string \"\"")
        if name not in registry and hasattr(self, name):
            raise KeyError(f"{owner}: attribute '{name}' already exists")

    def _check_assignable(self, name: str, value, allowed, kind: str, expected: str) -> None:
        if value is not None and (allowed is None or not isinstance(value, allowed)):
            raise TypeError(f"{type(self).__name__}: cannot assign '{type(value).__name__}' as {kind} '{name}' "
                            f"({expected} or None expected)")

    def _unregister(self, name: str, keep) -> None:
        """Forget name everywhere but the registry `keep` (where it is about to be stored, in place)."""
        for table in (self.__dict__, self._parameters, self._buffers, self._modules):
            if table is not keep:
                table.pop(name, None)
        self._non_persistent_names().discard(name)

    def _non_persistent_names(self) -> set:
        return self.__dict__.get("_non_persistent", set())

    # ---- calling ------------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # ---- traversal ----------------------------------------------------------------------------
    def named_modules(self, prefix: str = "", remove_duplicate: bool = True):
        """Depth first, self first. remove_duplicate=False lists a module registered under several
        names under each of them (as state_dict needs); a module that contains itself is an error then."""
        seen, path = set(), []

        def walk(module, prefix):
            if remove_duplicate:
                if id(module) in seen:
                    return
                seen.add(id(module))
            elif id(module) in path:
                raise ValueError(f"{type(self).__name__}: the sub-module at '{prefix}' ({type(module).__name__}) "
                                 "contains itself; a cycle of modules has no state_dict")
            path.append(id(module))
            yield prefix, module
            for name, child in module._modules.items():
                if child is not None:
                    yield from walk(child, f"{prefix}.{name}" if prefix else name)
            path.pop()

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
        if dtype is not None and dtype.kind != "f":  # torch refuses too: the weights would be truncated
            raise TypeError(f"{type(self).__name__}.to only accepts floating point dtypes, but got desired "
                            f"dtype={dtype}")
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

    def float(self) -> "Module":
        """Cast floating point parameters and buffers (and their gradients) to float32, as torch."""
        return self.to(np.float32)

    def double(self) -> "Module":
        """Cast floating point parameters and buffers (and their gradients) to float64, as torch."""
        return self.to(np.float64)

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
    def _state_entries(self, prefix: str = ""):
        """(key, tensor) for each parameter then persistent buffer of each module, depth first, as
        torch's state_dict: a module registered under two names is listed under both prefixes."""
        for module_prefix, module in self.named_modules(prefix.rstrip("."), remove_duplicate=False):
            skip = module._non_persistent_names()
            for table in (module._parameters, module._buffers):
                for name, value in table.items():
                    if value is not None and name not in skip:
                        yield (f"{module_prefix}.{name}" if module_prefix else name), value

    def state_dict(self, prefix: str = "") -> "OrderedDict[str, Tensor]":
        """Parameters then persistent buffers of each module, depth first, keys as torch.nn."""
        return OrderedDict((key, value.detach()) for key, value in self._state_entries(prefix))

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values (Tensors, NumPy arrays, or anything with .numpy()) into this module's
        parameters and buffers. Shapes must match; with strict, keys must match exactly.
        Every key is checked before anything is copied: on error nothing is loaded, and the error
        lists every problem (ValueError if a shape or dtype is wrong, else KeyError)."""
        targets = OrderedDict(self._state_entries())
        missing = [k for k in targets if k not in state_dict]
        unexpected = [k for k in state_dict if k not in targets]
        arrays, bad_values = {}, []
        for key, target in targets.items():
            if key not in state_dict:
                continue
            array = _to_numpy(state_dict[key])
            if array.shape != target.shape:
                bad_values.append(f"{key} has shape {array.shape} in the checkpoint, {target.shape} in the model")
                continue
            try:
                arrays[key] = np.array(array, dtype=target.dtype)
            except (TypeError, ValueError) as error:
                bad_values.append(f"{key} holds {array.dtype} values that do not convert to {target.dtype}: {error}")
        bad_keys = []
        if strict and missing:
            bad_keys.append(f"missing keys {missing}")
        if strict and unexpected:
            bad_keys.append(f"unexpected keys {unexpected}")
        if bad_values or bad_keys:
            raise (ValueError if bad_values else KeyError)(
                f"{type(self).__name__}.load_state_dict: nothing was loaded: " + "; ".join(bad_values + bad_keys))
        for key, array in arrays.items():
            target = targets[key]
            if isinstance(target.data, np.ndarray):
                target.data = array
            else:  # a parameter on a device stays there
                target.data = _device.to_device(array, target.device, "load_state_dict")
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
