"""RMSprop with torch.optim.RMSprop's update rule:

    g = grad + weight_decay * p
    s = alpha * s + (1 - alpha) * g^2
    a = alpha * a + (1 - alpha) * g;  d = sqrt(s - a^2) + eps     (centered)
                                      d = sqrt(s) + eps           (otherwise)
    buf = momentum * buf + g / d;  p = p - lr * buf               (momentum > 0)
                                   p = p - lr * g / d             (otherwise)
"""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor
from .optimizer import Optimizer, check_hyperparameter, lerp_


class RMSprop(Optimizer):
    def __init__(self, params, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0, momentum: float = 0, centered: bool = False, *,
                 maximize: bool = False):
        check_hyperparameter("RMSprop", "learning rate", lr, lr >= 0)
        check_hyperparameter("RMSprop", "epsilon value", eps, eps >= 0)
        check_hyperparameter("RMSprop", "momentum value", momentum, momentum >= 0)
        check_hyperparameter("RMSprop", "weight_decay value", weight_decay, weight_decay >= 0)
        check_hyperparameter("RMSprop", "alpha value", alpha, alpha >= 0)
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _update(self, group, param, grad, state):
        alpha, momentum = group["alpha"], group["momentum"]
        if not state:
            state["step"] = 0
            state["square_avg"] = Tensor(np.zeros_like(param.data))
            if momentum > 0:
                state["momentum_buffer"] = Tensor(np.zeros_like(param.data))
            if group["centered"]:
                state["grad_avg"] = Tensor(np.zeros_like(param.data))
        state["step"] += 1

        if group["weight_decay"] != 0:
            grad = grad + group["weight_decay"] * param.data
        square_avg = state["square_avg"].data
        square_avg *= alpha
        square_avg += (1 - alpha) * grad * grad
        if group["centered"]:
            grad_avg = lerp_(state["grad_avg"].data, grad, 1 - alpha)
            denominator = np.sqrt(square_avg - grad_avg * grad_avg) + group["eps"]
        else:
            denominator = np.sqrt(square_avg) + group["eps"]
        if momentum > 0:
            buffer = state["momentum_buffer"].data
            buffer *= momentum
            buffer += grad / denominator
            param.data -= group["lr"] * buffer
        else:
            param.data -= group["lr"] * (grad / denominator)
