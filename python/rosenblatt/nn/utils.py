"""Gradient clipping, as torch.nn.utils."""
from __future__ import annotations

import functools
import math

import numpy as np

from .. import _device
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_"]


def _gradients(parameters, what: str) -> list:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for param in parameters:
        if not isinstance(param, Tensor):
            raise TypeError(f"{what}: expected Tensors, got {type(param).__name__}")
        if param.grad is not None:
            grads.append(param.grad.data)
    return grads


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> Tensor:
    """Scale all gradients together so that their joint norm (the norm of the vector of all
    gradient entries) is at most max_norm. Returns the norm before clipping."""
    grads = _gradients(parameters, "clip_grad_norm_")
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not grads:
        return Tensor(np.zeros((), np.float32))
    # torch computes the norm, and the scale, in the gradients' dtype: float32 would round a float64 model's
    dtype = functools.reduce(np.promote_types, [g.dtype for g in grads])
    if not isinstance(grads[0], np.ndarray):
        return _clip_grad_norm_on_device(grads, max_norm, norm_type, error_if_nonfinite, dtype)
    # The norm of the per-tensor norms is the norm of all entries together.
    if norm_type == math.inf:
        norms = [np.max(np.abs(g)) if g.size else dtype.type(0) for g in grads]
        total = np.max(norms)
    elif norm_type > 0:
        norms = np.array([np.linalg.norm(g.ravel(), ord=norm_type) for g in grads])
        total = np.linalg.norm(norms, ord=norm_type)
    else:
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    total = dtype.type(total)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                           f"{total}, so they cannot be clipped; set error_if_nonfinite=False to skip this check")
    # torch multiplies by the clamped coefficient unconditionally (a no-op scale of 1 when within bounds)
    scale = dtype.type(min(max_norm / (float(total) + 1e-6), 1.0))
    for g in grads:
        g *= scale
    return Tensor(np.asarray(total, dtype=dtype))


def _clip_grad_norm_on_device(grads, max_norm: float, norm_type: float, error_if_nonfinite: bool,
                              dtype: np.dtype) -> Tensor:
    """clip_grad_norm_ for gradients on a device, with no host synchronisation (except that
    error_if_nonfinite reads the norm): the returned norm stays a 0-d device array, as torch's.

    float32 gradients: the backend's fused kernels, grad_norm (float64 partials, a float32 result) and
    clip_by_total_norm_ (the coefficient read on the device), a launch or two per gradient. Other dtypes
    (float64, for gradient checks): the same formula in the gradients' dtype through element-wise device
    ops, since grad_norm's float32 result would round a float64 norm."""
    for g in grads:
        _device.same_device("clip_grad_norm_", grads[0], g)
    if not (norm_type > 0):
        raise ValueError(f"clip_grad_norm_: norm_type must be positive or inf, got {norm_type}")
    kernels = _device.backend("clip_grad_norm_")
    if dtype == np.float32:
        total = kernels.grad_norm(list(grads), norm_type)  # float32, shape ()
    else:
        total = _device_total_norm(grads, norm_type, dtype)
    if error_if_nonfinite:
        value = float(total)  # the one read back, only when asked for
        if not math.isfinite(value):
            raise RuntimeError(f"clip_grad_norm_: the total norm of order {norm_type} of the gradients is "
                               f"{value}, so they cannot be clipped; set error_if_nonfinite=False to skip this "
                               "check")
    if dtype == np.float32 and all(g.is_contiguous() and not g.read_only for g in grads):
        kernels.clip_by_total_norm_(list(grads), total, max_norm)
    else:
        # torch multiplies by the clamped coefficient unconditionally (a no-op scale of 1 when within bounds)
        # in float64 then rounded to the norm's dtype, as the CPU path (a 0-d device array)
        scale = np.minimum(max_norm / (total.astype(np.float64, copy=False) + 1e-6), 1.0).astype(dtype, copy=False)
        for g in grads:
            g *= scale
    return Tensor(total)


def _device_total_norm(grads, norm_type: float, dtype: np.dtype):
    """The norm of all entries of the device arrays `grads`, computed in `dtype`, as a 0-d device array."""
    grads = [g.astype(dtype, copy=False) for g in grads]
    if norm_type == math.inf:
        parts = [np.abs(g).max() for g in grads if g.size]
        return functools.reduce(np.maximum, parts) if parts else _device.full((), 0, dtype, grads[0])
    parts = [(g * g).sum() if norm_type == 2 else np.abs(g).sum() if norm_type == 1 else
             (np.abs(g) ** norm_type).sum() for g in grads if g.size]
    if not parts:
        return _device.full((), 0, dtype, grads[0])
    total = functools.reduce(np.add, parts)
    return total if norm_type == 1 else total ** (1.0 / norm_type)


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry into [-clip_value, clip_value], in place."""
    clip_value = float(clip_value)
    for g in _gradients(parameters, "clip_grad_value_"):
        np.clip(g, -clip_value, clip_value, out=g)
