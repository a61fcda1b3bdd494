"""Optimizer base class: parameter groups, per-parameter state and state_dict, as torch.optim.

A subclass implements `_update(group, param, grad, state)`, which changes `param.data` in
place with a few whole-array NumPy expressions (never a loop over elements). The base class
walks the groups and parameters, skipping parameters without a gradient.
"""
from __future__ import annotations

import copy
from collections.abc import MutableMapping

import numpy as np

from .. import _device
from ..tensor import Tensor, no_grad


class _RequiredParameter:
    def __repr__(self) -> str:
        return "<required parameter>"


required = _RequiredParameter()


class ParameterState(MutableMapping):
    """The per-parameter state, a mapping keyed by the parameter itself (by identity, so it
    does not depend on how Tensor defines == or hashing)."""

    def __init__(self):
        self._entries: dict = {}  # id(param) -> (param, state)

    def __getitem__(self, param):
        return self._entries[id(param)][1]

    def __setitem__(self, param, value) -> None:
        self._entries[id(param)] = (param, value)

    def __delitem__(self, param) -> None:
        del self._entries[id(param)]

    def __iter__(self):
        return (param for param, _ in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"ParameterState({len(self)} parameters)"


class Optimizer:
    """Base class of the optimizers: `param_groups` (list of dicts with 'params' and the
    hyper-parameters) and `state` (dict from parameter to its per-parameter state)."""

    def __init__(self, params, defaults: dict):
        self.defaults = defaults
        self.state = ParameterState()
        self.param_groups: list[dict] = []
        if isinstance(params, Tensor):
            raise TypeError(f"{type(self).__name__}: params should be an iterable of Tensors or dicts, "
                            f"got a single Tensor of shape {params.shape}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {key}: {group[key]}" for key in sorted(group) if key != "params"]
        return "\n".join(lines) + "\n)"

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters (missing ones take the defaults)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"add_param_group: expected a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("add_param_group: parameters must be an ordered collection (list), not a set")
        group = dict(param_group, params=list(params))
        for param in group["params"]:
            if not isinstance(param, Tensor):
                raise TypeError(f"add_param_group: optimizer can only optimize Tensors, got {type(param).__name__}")
            if not param.is_leaf:
                raise ValueError("add_param_group: can't optimize a non-leaf Tensor")
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(f"add_param_group: parameter group didn't specify a value of "
                                 f"required optimization parameter {name}")
            group.setdefault(name, default)
        existing = {id(p) for g in self.param_groups for p in g["params"]}
        if existing & {id(p) for p in group["params"]}:
            raise ValueError("add_param_group: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                if set_to_none:
                    param.grad = None
                else:
                    param.grad.data[...] = 0

    @no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient. `closure` re-evaluates the model
        and returns the loss (as in torch); its value is returned."""
        loss = None
        if closure is not None:
            from ..tensor import enable_grad
            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is None:
                    continue
                grad = param.grad.data
                if grad.shape != param.shape:
                    raise ValueError(f"{type(self).__name__}.step: gradient of shape {grad.shape} "
                                     f"for a parameter of shape {param.shape}")
                if group.get("maximize", False):
                    grad = -grad
                state = self.state.setdefault(param, {})
                for value in state.values():  # state follows its parameter to another device (Module.to)
                    if isinstance(value, Tensor) and type(value.data) is not type(param.data):
                        value.data = _device.to_device(value.data, param.device, f"{type(self).__name__}.step")
                self._update(group, param, grad, state)
                param._bump_version()  # a graph recorded before the step now refuses its stale weights
        return loss

    def _update(self, group: dict, param: Tensor, grad: np.ndarray, state: dict) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    def _scratch(self, param: Tensor):
        """An array of param's shape and dtype for the intermediate values of one update. On the CPU
        it is a view of one buffer the optimizer keeps: fresh temporaries of a large model's size
        cost their page faults at every step (1,500 per step of the charlm benchmark's Adam)."""
        data = param.data
        if not isinstance(data, np.ndarray):
            return _device.empty(data.shape, data.dtype, data)
        buffers = self.__dict__.setdefault("_scratch_buffers", {})
        buffer = buffers.get(data.dtype)
        if buffer is None or buffer.size < data.size:
            buffer = buffers[data.dtype] = np.empty(data.size, data.dtype)
        return buffer[:data.size].reshape(data.shape)

    # ---- state_dict, with torch's layout: parameters are numbered across the groups in order ----
    def state_dict(self) -> dict:
        """{'state': {index: {name: value}}, 'param_groups': [{hyper-parameters, 'params': [index]}]}."""
        index_of, groups = {}, []
        for group in self.param_groups:
            packed = {key: value for key, value in group.items() if key != "params"}
            for param in group["params"]:
                index_of.setdefault(id(param), len(index_of))
            packed["params"] = [index_of[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {index_of[id(param)]: dict(values) for param, values in self.state.items() if id(param) in index_of}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore hyper-parameters and per-parameter state saved by `state_dict` (values are
        copied; arrays are cast to each parameter's dtype and checked against its shape)."""
        name = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state_dict, dict) or "state" not in state_dict or "param_groups" not in state_dict:
            raise ValueError(f"{name}: expected a dict with keys 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}: loaded state dict has {len(saved_groups)} parameter groups, "
                             f"the optimizer has {len(self.param_groups)}")
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise ValueError(f"{name}: loaded parameter groups have sizes {saved_sizes}, "
                             f"the optimizer's have {sizes}")
        param_of = {}
        for group, saved in zip(self.param_groups, saved_groups):
            for param, index in zip(group["params"], saved["params"]):
                param_of[int(index)] = param
        state = ParameterState()
        for index, values in state_dict["state"].items():
            if int(index) not in param_of:
                raise ValueError(f"{name}: state for parameter {index}, which no group lists")
            param = param_of[int(index)]
            state[param] = {key: _cast_state(value, param, f"{name}: state[{index}][{key!r}]")
                            for key, value in values.items()}
        self.state = state
        self.param_groups = [dict(copy.deepcopy({k: v for k, v in saved.items() if k != "params"}),
                                  params=group["params"])
                             for group, saved in zip(self.param_groups, saved_groups)]


def _cast_state(value, param: Tensor, what: str):
    """A copy of a saved state value: arrays become Tensors of the parameter's dtype and shape."""
    if isinstance(value, (Tensor, np.ndarray)) or hasattr(value, "numpy"):
        array = value.data if isinstance(value, Tensor) else np.asarray(
            value.detach().cpu().numpy() if hasattr(value, "detach") else value)
        if array.ndim == 0:  # a step counter saved as a 0-d tensor (torch does this)
            return array.item()
        if array.shape != param.shape:
            raise ValueError(f"{what} has shape {array.shape}, the parameter has shape {param.shape}")
        if not isinstance(array, np.ndarray):
            array = array.to_numpy()
        return Tensor(_device.on_device_of(np.array(array, dtype=param.dtype), param.data))
    return copy.deepcopy(value)


def check_hyperparameter(optimizer: str, what: str, value, valid: bool) -> None:
    if not valid:
        raise ValueError(f"{optimizer}: invalid {what}: {value}")


def lerp_(start: np.ndarray, end: np.ndarray, weight: float, scratch=None) -> np.ndarray:
    """start += weight * (end - start) in place, rounded as torch.lerp_ (which switches to
    end - (end - start) * (1 - weight) for weights of 1/2 and above). `scratch`, an array of
    start's shape, holds the difference (None: a fresh one)."""
    difference = np.subtract(end, start, out=scratch)
    if weight < 0.5:
        difference *= weight
        start += difference
    else:
        difference *= 1 - weight
        np.subtract(end, difference, out=start)
    return start


def fusable_on_device(param, grad, *states) -> bool:
    """Whether the CUDA backend's fused optimizer kernels take these arrays: param a writable,
    C-contiguous float32/float64 device array; grad (any strides) and each state array (None skipped;
    writable, C-contiguous) of param's dtype, shape and device. Otherwise the optimizer runs its
    element-wise formulas through the device layer (same result, a dozen launches instead of one)."""
    device_array = _device.DeviceArray
    if not (isinstance(param, device_array) and param.dtype in (np.float32, np.float64)
            and param.is_contiguous() and not param.read_only):
        return False
    if not (isinstance(grad, device_array) and grad.dtype == param.dtype and grad.shape == param.shape
            and grad.device == param.device):
        return False
    return all(s is None or (isinstance(s, device_array) and s.dtype == param.dtype and s.shape == param.shape
                             and s.device == param.device and s.is_contiguous() and not s.read_only)
               for s in states)
