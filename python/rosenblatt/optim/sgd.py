"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight decay,
with torch.optim.SGD's update rule:

    g = grad + weight_decay * p
    buf = g                                         (first step)
    buf = momentum * buf + (1 - dampening) * g      (later steps)
    g = g + momentum * buf  if nesterov else  buf
    p = p - lr * g
"""
from __future__ import annotations

import numpy as np

from .. import _device
from ..tensor import Tensor
from .optimizer import Optimizer, check_hyperparameter, fusable_on_device


class SGD(Optimizer):
    def __init__(self, params, lr: float = 1e-3, momentum: float = 0, dampening: float = 0,
                 weight_decay: float = 0, nesterov: bool = False, *, maximize: bool = False):
        check_hyperparameter("SGD", "learning rate", lr, lr >= 0)
        check_hyperparameter("SGD", "momentum", momentum, momentum >= 0)
        check_hyperparameter("SGD", "weight_decay", weight_decay, weight_decay >= 0)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError(f"SGD: Nesterov momentum requires a momentum and zero dampening, "
                             f"got momentum={momentum}, dampening={dampening}")
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _update(self, group, param, grad, state):
        if _device.is_device_array(param.data) and _fused_step_on_device(group, param, state):
            return
        momentum, weight_decay = group["momentum"], group["weight_decay"]
        if weight_decay != 0:
            grad = grad + weight_decay * param.data
        scratch = self._scratch(param)  # every intermediate value, as in Adam
        if momentum != 0:
            buffer = state.get("momentum_buffer")
            if buffer is None:
                buffer = state["momentum_buffer"] = Tensor(grad.astype(param.dtype, copy=True))
            else:
                buffer.data *= momentum
                buffer.data += np.multiply(grad, 1 - group["dampening"], out=scratch)
            if group["nesterov"]:
                grad = np.add(grad, np.multiply(buffer.data, momentum, out=scratch), out=scratch)
            else:
                grad = buffer.data
        param.data -= np.multiply(grad, group["lr"], out=scratch)


def _fused_step_on_device(group, param, state) -> bool:
    """SGD's update of a device parameter as ONE kernel (the backend's sgd_step_, the rounding of the
    formulas above); False when the arrays do not suit it (then the caller runs the formulas)."""
    momentum = group["momentum"]
    raw = param.grad.data  # maximize goes to the kernel, which negates as it reads (no extra pass)
    buffer = state.get("momentum_buffer") if momentum != 0 else None
    first_step = momentum != 0 and buffer is None
    if buffer is not None and not isinstance(buffer, Tensor):
        return False
    if not fusable_on_device(param.data, raw, None if buffer is None else buffer.data):
        return False
    if first_step:  # the kernel writes the first buffer (the decayed gradient) without reading it
        buffer = Tensor(_device.empty(param.data.shape, param.data.dtype, param.data))
    _device.backend("SGD.step").sgd_step_(
        param.data, raw, None if buffer is None else buffer.data, lr=float(group["lr"]), momentum=float(momentum),
        dampening=float(group["dampening"]), weight_decay=float(group["weight_decay"]),
        nesterov=bool(group["nesterov"]), maximize=bool(group.get("maximize", False)), first_step=first_step)
    if first_step:
        state["momentum_buffer"] = buffer
    return True
