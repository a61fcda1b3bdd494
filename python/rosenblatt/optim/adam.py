"""Adam and AdamW, with torch.optim's update rules:

    t = t + 1
    p = p * (1 - lr * weight_decay)        (AdamW: decoupled weight decay)
    g = grad + weight_decay * p            (Adam: L2 penalty folded into the gradient)
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g^2
    v_max = max(v_max, v)                  (amsgrad; then v_max replaces v below)
    p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
"""
from __future__ import annotations

import math

import numpy as np

from .. import _C, _device
from ..tensor import Tensor
from .optimizer import Optimizer, check_hyperparameter, fusable_on_device, lerp_


class Adam(Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0, amsgrad: bool = False, *, maximize: bool = False,
                 decoupled_weight_decay: bool = False):
        name = type(self).__name__
        check_hyperparameter(name, "learning rate", lr, lr >= 0)
        check_hyperparameter(name, "epsilon value", eps, eps >= 0)
        check_hyperparameter(name, "beta parameter at index 0", betas[0], 0 <= betas[0] < 1)
        check_hyperparameter(name, "beta parameter at index 1", betas[1], 0 <= betas[1] < 1)
        check_hyperparameter(name, "weight_decay value", weight_decay, weight_decay >= 0)
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize,
                                      decoupled_weight_decay=decoupled_weight_decay))

    def _update(self, group, param, grad, state):
        if not state:
            state["step"] = 0
            state["exp_avg"] = Tensor(np.zeros_like(param.data))
            state["exp_avg_sq"] = Tensor(np.zeros_like(param.data))
            if group["amsgrad"]:
                state["max_exp_avg_sq"] = Tensor(np.zeros_like(param.data))
        state["step"] += 1
        step = state["step"]
        lr, (beta1, beta2), weight_decay = group["lr"], group["betas"], group["weight_decay"]
        decoupled = weight_decay != 0 and group["decoupled_weight_decay"]
        decay = 1 - lr * weight_decay if decoupled else 1.0
        l2 = weight_decay if not decoupled else 0.0
        bias2_sqrt, step_size = math.sqrt(1 - beta2 ** step), lr / (1 - beta1 ** step)
        exp_avg, exp_avg_sq = state["exp_avg"].data, state["exp_avg_sq"].data
        max_exp_avg_sq = state["max_exp_avg_sq"].data if group["amsgrad"] else None
        if _device.is_device_array(param.data) and float(step).is_integer() and fusable_on_device(
                param.data, param.grad.data, exp_avg, exp_avg_sq, max_exp_avg_sq):
            # One kernel on the device (the roundings of the lines below); maximize is the kernel's to apply
            # to the raw gradient, so the negated copy `grad` is not read.
            _device.backend(f"{type(self).__name__}.step").adam_step_(
                param.data, param.grad.data, exp_avg, exp_avg_sq, max_exp_avg_sq, step=int(step), lr=float(lr),
                beta1=float(beta1), beta2=float(beta2), eps=float(group["eps"]), weight_decay=float(weight_decay),
                amsgrad=bool(group["amsgrad"]), maximize=bool(group.get("maximize", False)),
                decoupled_weight_decay=bool(group["decoupled_weight_decay"]))
            return
        if _fused_applies(param.data, grad, exp_avg, exp_avg_sq, max_exp_avg_sq):
            # One pass over the arrays in C++, the same roundings as the lines below.
            _C.adam_update(param.data, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, decay, l2, 1 - beta1, 1 - beta2,
                           beta2, bias2_sqrt, group["eps"], step_size)
            return

        if decay != 1.0:
            param.data *= decay
        if l2 != 0:
            grad = grad + l2 * param.data
        # Every intermediate goes through one scratch array, in the order (and so with the
        # rounding) of the formulas above.
        scratch = self._scratch(param)
        lerp_(exp_avg, grad, 1 - beta1, scratch)
        np.multiply(grad, 1 - beta2, out=scratch)
        scratch *= grad
        exp_avg_sq *= beta2
        exp_avg_sq += scratch
        if max_exp_avg_sq is not None:
            np.maximum(max_exp_avg_sq, exp_avg_sq, out=max_exp_avg_sq)
            exp_avg_sq = max_exp_avg_sq

        denominator = np.sqrt(exp_avg_sq, out=scratch)
        denominator /= bias2_sqrt
        denominator += group["eps"]
        update = np.divide(exp_avg, denominator, out=scratch)
        update *= step_size
        param.data -= update


def _fused_applies(*arrays) -> bool:
    """_C.adam_update takes C-contiguous NumPy arrays of one float dtype (None for no amsgrad state)."""
    dtype = arrays[0].dtype
    return dtype in (np.float32, np.float64) and all(
        a is None or (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous) for a in arrays) \
        and arrays[0].flags.writeable


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): the decay shrinks the weights
    directly instead of entering the moment estimates."""

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *, maximize: bool = False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)
