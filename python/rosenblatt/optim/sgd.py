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

from ..tensor import Tensor
from .optimizer import Optimizer, check_hyperparameter


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
