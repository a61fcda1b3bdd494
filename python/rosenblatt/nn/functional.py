"""Functional forms of the layers (imported as F), as torch.nn.functional.

Losses follow torch's semantics exactly (reductions, weights, ignore_index,
label_smoothing); where torch composes a loss from smaller ops, so does this file,
and the gradients come from those ops.
"""
from __future__ import annotations

import numpy as np

from .. import _device, ops
from ..ops import leaky_relu, linear, log_softmax, pad, relu, sigmoid, softmax, softplus, tanh  # noqa: F401
from ..random import default_generator
from ..tensor import Tensor, as_tensor, is_grad_enabled, result

_REDUCTIONS = ("mean", "sum", "none")


# ---- activations and layers ------------------------------------------------------------------
def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Inverted dropout: zero each element with probability p and scale the rest by 1/(1-p), so
    evaluation needs no rescaling. The mask comes from rosenblatt.random.default_generator().
    `inplace` is accepted for torch compatibility; the result is always a new tensor."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p} (input shape {input.shape})")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return ops.mul(input, 0.0)
    dtype = input.dtype if input.dtype.kind == "f" else np.dtype(np.float32)
    keep = default_generator().random(input.shape, dtype=np.float32) >= p
    return ops.mul(input, Tensor(_device.on_device_of(keep.astype(dtype) / (1.0 - p), input.data)))


def maxout(input: Tensor, pieces: int) -> Tensor:
    """Max over groups of `pieces` consecutive features of the last dim: (..., out*pieces) -> (..., out).

    Unit j is the max of features j*pieces ... j*pieces + pieces - 1 (Goodfellow et al., 2013); the
    gradient goes to the winning piece."""
    if pieces < 1 or input.ndim == 0 or input.shape[-1] % pieces:
        raise ValueError(f"maxout: the last dim of input shape {input.shape} is not a multiple of pieces={pieces}")
    grouped = ops.reshape(input, input.shape[:-1] + (input.shape[-1] // pieces, pieces))
    return ops.max(grouped, -1).values


def hardtanh(input: Tensor, min_val: float = -1.0, max_val: float = 1.0) -> Tensor:
    """clamp(input, min_val, max_val), but the gradient stops at the bounds themselves, as torch's
    hardtanh (clamp's passes there)."""
    x = as_tensor(input)
    out = np.clip(x.data, min_val, max_val)
    stopped = (x.data <= min_val) | (x.data >= max_val)
    return result(out, (x,), lambda g: (np.where(stopped, 0, g),), "HardtanhBackward")


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    return ops.where(input > 0, input, ops.mul(ops.expm1(ops.clamp(input, max=0.0)), alpha))


def _vector_norm(x: Tensor, p: float, dim: int) -> Tensor:
    """The p-norm along dim (kept), whose gradient is 0 where the norm is 0, as torch's norm: the
    chain rule through pow(sum, 1/p) would give 0 * inf = NaN there. p = inf: the largest |x|,
    its gradient shared among ties."""
    axis = ops._dim(dim, x.ndim, "normalize", x.shape)
    magnitude = np.abs(x.data)
    if p == np.inf:
        out = magnitude.max(axis=axis, keepdims=True)
    else:
        out = (magnitude ** p).sum(axis=axis, keepdims=True) ** (1.0 / p)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == np.inf:
                at_max = magnitude == out
                local = np.sign(x.data) * at_max / at_max.sum(axis=axis, keepdims=True)
            else:  # d|x|_p / dx = sign(x) |x|^(p-1) / |x|_p^(p-1)
                local = np.sign(x.data) * (magnitude / out) ** (p - 1)
            return (np.where(out == 0, 0, g * local),)

    return result(out, (x,), backward, "NormBackward")


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """input / max(||input||_p along dim, eps), as torch."""
    x = as_tensor(input)
    if not p > 0:
        raise ValueError(f"normalize: p must be positive, got {p} (input shape {x.shape})")
    return ops.div(x, ops.clamp(_vector_norm(x, float(p), dim), min=eps))


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    labels = tensor.data if isinstance(tensor, Tensor) else np.asarray(tensor)
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: expects an integer tensor, got {labels.dtype}")
    if num_classes < 0:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"one_hot: class values must be in [0, {num_classes}), got [{labels.min()}, {labels.max()}]")
    classes = _device.on_device_of(np.arange(num_classes), labels)
    return Tensor((labels[..., None] == classes).astype(np.int64))


# ---- losses ----------------------------------------------------------------------------------
def _check_reduction(reduction: str, op: str) -> None:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return ops.mean(loss)
    if reduction == "sum":
        return ops.sum(loss)
    return loss


def _class_targets(input: Tensor, target, op: str) -> np.ndarray:
    """Check integer class targets against input (N, C, d1, ...) or (C,); returns the target array."""
    target_data = target.data if isinstance(target, Tensor) else _device.asarray(target)
    if target_data.dtype.kind not in "iu":
        raise TypeError(f"{op}: expected integer class targets, got dtype {target_data.dtype} "
                        f"(input shape {input.shape}, target shape {target_data.shape})")
    expected = input.shape[:1] + input.shape[2:] if input.ndim >= 2 else ()
    if input.ndim == 0 or target_data.shape != expected:
        raise ValueError(f"{op}: input shape {input.shape} and target shape {target_data.shape} do not match "
                         f"(expected target shape {expected} for input (N, C, d1, ...) or (C,))")
    return target_data


def _nll(log_probs: Tensor, target: np.ndarray, weight, ignore_index: int, reduction: str, op: str) -> Tensor:
    """-weight[t] * log_probs[n, t, ...] per element; 'mean' divides by the summed weights of the
    elements not ignored (torch's rule). One graph node whose backward scatters into the class dim."""
    classes = log_probs.shape[1] if log_probs.ndim >= 2 else log_probs.shape[0]
    if not isinstance(log_probs.data, np.ndarray):
        return _device_nll(log_probs, target, weight, ignore_index, reduction, op, classes)[0]
    scores = log_probs.data if log_probs.ndim >= 2 else log_probs.data[None]
    target = target if log_probs.ndim >= 2 else target[None]
    valid = target != ignore_index
    if np.any((target[valid] < 0) | (target[valid] >= classes)):
        bad = target[valid][(target[valid] < 0) | (target[valid] >= classes)][0]
        raise IndexError(f"{op}: target {bad} is out of bounds for {classes} classes (input shape {log_probs.shape})")
    safe_target = np.where(valid, target, 0)[:, None]  # ignored positions read class 0, weighted 0
    if weight is not None:
        weight = weight.data if isinstance(weight, Tensor) else np.asarray(weight)
        if weight.shape != (classes,):
            raise ValueError(f"{op}: weight shape {weight.shape} does not match {classes} classes "
                             f"(input shape {log_probs.shape})")
        element_weight = np.where(valid, weight.astype(scores.dtype)[safe_target[:, 0]], 0)
    else:
        element_weight = valid.astype(scores.dtype)
    # an ignored position contributes +0 (torch's), even where class 0's log-probability is -inf (0 * -inf: NaN)
    picked = np.where(valid, np.take_along_axis(scores, safe_target, axis=1)[:, 0], 0)
    losses = np.where(valid, -element_weight * picked, 0)
    if reduction == "none":
        out, scale = losses, element_weight
    else:
        total = element_weight.sum() if reduction == "mean" else 1
        with np.errstate(invalid="ignore", divide="ignore"):  # everything ignored: NaN, as torch
            out = losses.sum() / total
            scale = np.where(valid, element_weight / total, 0)  # but ignored targets get no gradient, not NaN

    def backward(g):
        grad = np.zeros(scores.shape, dtype=scores.dtype)
        np.put_along_axis(grad, safe_target, (-scale * g)[:, None], axis=1)
        return (grad.reshape(log_probs.shape),)

    if log_probs.ndim < 2 and reduction == "none":
        out = out.reshape(())
    return result(np.asarray(out, dtype=scores.dtype), (log_probs,), backward, "NllLossBackward")


def _device_nll(log_probs: Tensor, target, weight, ignore_index: int, reduction: str, op: str, classes: int):
    """_nll on a device, by the backend's nll kernels: `nll_gather` picks each position's target
    log-probability and class weight (both 0 where ignored; IndexError on a bad target, one stream
    synchronisation), and backward `nll_scatter` puts -grad * weight (/ total) at the target classes.
    Returns (loss, element_weight); the element weights give label smoothing its 'mean' divisor."""
    _device.same_device(op, log_probs.data, target)
    kernels = _device.backend(op)
    scores = log_probs.data
    if target.dtype != np.int64:
        target = target.astype(np.int64)
    if weight is not None:
        weight = as_tensor(weight).data
        _device.same_device(op, scores, weight)
        if weight.shape != (classes,):
            raise ValueError(f"{op}: weight shape {weight.shape} does not match {classes} classes "
                             f"(input shape {log_probs.shape})")
        if weight.dtype != scores.dtype:
            weight = weight.astype(scores.dtype)
    ignore_index = int(ignore_index)
    try:
        picked, element_weight = kernels.nll_gather(scores, target, weight, ignore_index)
    except IndexError as error:
        raise IndexError(f"{op}: a target is out of bounds for {classes} classes (input shape {log_probs.shape}; "
                         f"{error})") from None
    losses = -element_weight * picked
    total = element_weight.sum() if reduction == "mean" else None
    out = losses if reduction == "none" else losses.sum() if total is None else losses.sum() / total
    if not (is_grad_enabled() and log_probs.requires_grad):
        return Tensor(out.astype(scores.dtype, copy=False)), element_weight
    saved = target.copy()  # the backward reads it, and a caller may reuse its target array meanwhile

    def backward(g):
        # everything ignored: total 0 and NaN coefficients, but nll_scatter skips ignored positions (zero gradient)
        scale = element_weight if total is None else element_weight / total
        coef = -scale * g
        if coef.dtype != scores.dtype:
            coef = coef.astype(scores.dtype)
        if coef.shape != saved.shape:
            coef = np.broadcast_to(coef, saved.shape)
        return (kernels.nll_scatter(coef, saved, classes, ignore_index),)

    return result(out.astype(scores.dtype, copy=False), (log_probs,), backward, "NllLossBackward"), element_weight


def nll_loss(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
             reduction: str = "mean") -> Tensor:
    """Negative log likelihood of integer class targets, input (N, C, d1, ...) or (C,) of log-probabilities."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "nll_loss")
    target = _class_targets(input, target, "nll_loss")
    return _nll(input, target, weight, ignore_index, reduction, "nll_loss")


def cross_entropy(input: Tensor, target, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                  reduction: str = "mean", label_smoothing: float = 0.0) -> Tensor:
    """log_softmax over dim 1 (the class dim) followed by nll_loss, with torch's label smoothing:
    (1 - eps) * nll + eps / C * (sum over classes of -weight[c] * log p_c), where the smoothing term is
    reduced like nll (zero at ignored targets, 'mean' dividing by the same summed weights).

    Targets may also be class probabilities of the input's shape (floating dtype), as torch allows."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "cross_entropy")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy: label_smoothing must be in [0, 1], got {label_smoothing}")
    if not isinstance(input, Tensor) or input.dtype.kind != "f":
        raise TypeError(f"cross_entropy: input must be a floating Tensor, got "
                        f"{getattr(input, 'dtype', type(input).__name__)}")
    class_dim = 1 if input.ndim >= 2 else 0
    log_probs = log_softmax(input, class_dim)
    target_data = target.data if isinstance(target, Tensor) else _device.asarray(target)
    if target_data.dtype.kind == "f":
        return _soft_cross_entropy(input, log_probs, as_tensor(target), weight, reduction, label_smoothing, class_dim)
    target_data = _class_targets(input, target_data, "cross_entropy")
    element_weight = None
    if isinstance(log_probs.data, np.ndarray):
        loss = _nll(log_probs, target_data, weight, ignore_index, reduction, "cross_entropy")
    else:
        loss, element_weight = _device_nll(log_probs, target_data, weight, ignore_index, reduction, "cross_entropy",
                                           input.shape[class_dim])
    if label_smoothing == 0.0:
        return loss
    classes = input.shape[class_dim]
    weighted = log_probs if weight is None else ops.mul(log_probs, _class_column(as_tensor(weight), input.ndim))
    valid = target_data != ignore_index
    # where, not a product with a 0/1 mask: when every target is ignored, 'mean' divides by zero and the
    # infinite gradient must stop at the ignored elements, not become NaN
    smooth = ops.where(Tensor(valid), ops.neg(ops.sum(weighted, class_dim)), 0.0)
    if reduction == "none":
        smooth_reduced = smooth
    elif reduction == "sum":
        smooth_reduced = ops.sum(smooth)
    elif element_weight is not None:  # a device: nll_gather's weights, summed there (nothing read back)
        smooth_reduced = ops.div(ops.sum(smooth), Tensor(element_weight.sum()))  # all ignored: 0 / 0 = NaN
    else:
        weight_data = None if weight is None else as_tensor(weight).data
        safe = np.where(valid, target_data, 0)
        total = valid.sum() if weight is None else np.where(valid, weight_data[safe], 0).sum()
        smooth_reduced = ops.div(ops.sum(smooth), float(total))  # all ignored: 0 / 0 = NaN, as torch
    return ops.add(ops.mul(loss, 1.0 - label_smoothing), ops.mul(smooth_reduced, label_smoothing / classes))


def _class_column(weight: Tensor, ndim: int) -> Tensor:
    """weight (C,) shaped to broadcast along the class dim of an (N, C, d1, ...) input."""
    return ops.reshape(weight, (-1,) + (1,) * (ndim - 2)) if ndim >= 2 else weight


def _soft_cross_entropy(input, log_probs, target, weight, reduction, label_smoothing, class_dim):
    """Class-probability targets: -sum_c weight[c] * t_c * log p_c per element; 'mean' divides by the
    number of elements (not by weights), as torch."""
    if target.shape != input.shape:
        raise ValueError(f"cross_entropy: probability targets must have the input's shape, got input "
                         f"{input.shape} and target {target.shape}")
    classes = input.shape[class_dim]
    if label_smoothing > 0:
        target = ops.add(ops.mul(target, 1.0 - label_smoothing), label_smoothing / classes)
    terms = ops.mul(log_probs, target)
    if weight is not None:
        terms = ops.mul(terms, _class_column(as_tensor(weight), input.ndim))
    return _reduce(ops.neg(ops.sum(terms, class_dim)), reduction)


def mse_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "mse_loss")
    target = _same_shape_target(input, target, "mse_loss")
    diff = ops.sub(input, target)
    return _reduce(ops.mul(diff, diff), reduction)


def l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean") -> Tensor:
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "l1_loss")
    return _reduce(ops.abs(ops.sub(input, _same_shape_target(input, target, "l1_loss"))), reduction)


def _huber_parts(input: Tensor, target, threshold, name: str, op: str) -> tuple:
    """(|d|, m, threshold) for d = input - target and m = min(|d|, threshold), the threshold (smooth_l1's
    beta, huber's delta) checked as torch does: a number, >= 0 for beta, > 0 for delta."""
    try:
        threshold = float(threshold)
    except (TypeError, ValueError):
        raise TypeError(f"{op}: {name} must be a number, got {type(threshold).__name__} (input shape "
                        f"{input.shape})") from None
    if not (threshold > 0 if name == "delta" else threshold >= 0):
        raise ValueError(f"{op}: {name} must be {'positive' if name == 'delta' else 'non-negative'}, got {threshold} "
                         f"(input shape {input.shape})")
    size = ops.abs(ops.sub(input, _same_shape_target(input, target, op)))
    return size, ops.clamp(size, max=threshold), threshold


def smooth_l1_loss(input: Tensor, target, size_average=None, reduce=None, reduction: str = "mean",
                   beta: float = 1.0) -> Tensor:
    """Fast R-CNN's box loss: 0.5 d^2 / beta for |d| < beta, |d| - 0.5 beta beyond (beta 0: l1_loss).

    Written as (m / beta) (m / 2) + (|d| - m) with m = min(|d|, beta): one expression whose gradient
    is d / beta inside and sign(d) outside, as torch's, and whose every step, forward and backward,
    stays within |d| and 1 however small beta (1 / beta would overflow). A beta that is 0 in the
    input's precision (1e-300 in float32) gives l1_loss, as torch's kernel does."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "smooth_l1_loss")
    size, m, beta = _huber_parts(input, target, beta, "beta", "smooth_l1_loss")
    if beta == 0 or input.dtype.type(beta) == 0:
        return _reduce(size, reduction)
    return _reduce(ops.add(ops.mul(ops.div(m, beta), ops.mul(m, 0.5)), ops.sub(size, m)), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 for |d| <= delta, delta (|d| - 0.5 delta) beyond (smooth_l1_loss times delta), written as
    m (|d| - m / 2) with m = min(|d|, delta): gradient d inside and delta sign(d) outside, as torch's."""
    _check_reduction(reduction, "huber_loss")
    size, m, delta = _huber_parts(input, target, delta, "delta", "huber_loss")
    return _reduce(ops.mul(m, ops.sub(size, ops.mul(m, 0.5))), reduction)


def _same_shape_target(input: Tensor, target, op: str) -> Tensor:
    target = as_tensor(target, like=input)
    if target.shape != input.shape:
        raise ValueError(f"{op}: target shape {target.shape} differs from input shape {input.shape}")
    if target.dtype.kind != "f" or input.dtype.kind != "f":
        raise TypeError(f"{op}: expected floating input and target, got {input.dtype} and {target.dtype} "
                        f"(shape {input.shape})")
    return target


def binary_cross_entropy(input: Tensor, target, weight=None, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """-weight * (t log x + (1 - t) log(1 - x)), each log clamped at -100 as torch does; input must be
    probabilities in [0, 1]. The gradient is torch's weight * (x - t) / max(x (1 - x), 1e-12)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "binary_cross_entropy")
    target = _same_shape_target(input, target, "binary_cross_entropy")
    x, t = input.data, target.data
    if np.any((x < 0) | (x > 1)):
        raise ValueError(f"binary_cross_entropy: all elements of input (shape {input.shape}) should be between 0 and 1")
    w = weight_tensor = None
    if weight is not None:
        weight_tensor = as_tensor(weight, like=input)
        w = weight_tensor.data
        try:
            w = np.broadcast_to(w, x.shape)
        except ValueError:
            raise ValueError(f"binary_cross_entropy: weight shape {w.shape} does not broadcast to input shape "
                             f"{input.shape}") from None
    with np.errstate(divide="ignore"):
        log_x, log_1mx = np.maximum(np.log(x), -100), np.maximum(np.log1p(-x), -100)
    loss = -(t * log_x + (1 - t) * log_1mx)
    if w is not None:
        loss = loss * w

    def backward(g):
        grad_x = grad_t = None
        if input.requires_grad:
            grad_x = g * (x - t) / np.maximum(x * (1 - x), 1e-12)
            grad_x = grad_x if w is None else grad_x * w
        if target.requires_grad:
            grad_t = -g * (log_x - log_1mx)
            grad_t = grad_t if w is None else grad_t * w
        return grad_x, grad_t

    # The backward reads the weight: it joins the inputs (taking no gradient) so a change before backward is refused.
    parents = (input, target) if weight_tensor is None else (input, target, weight_tensor)
    return _reduce(result(loss.astype(x.dtype, copy=False), parents, backward, "BinaryCrossEntropyBackward"), reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, weight=None, size_average=None, reduce=None,
                                     reduction: str = "mean", pos_weight=None) -> Tensor:
    """Sigmoid + binary cross entropy in one stable formula (torch's):
    (1 - t) x + (1 + (pos_weight - 1) t) softplus(-x), times weight; pos_weight broadcasts along
    the last (class) dim."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "binary_cross_entropy_with_logits")
    target = _same_shape_target(input, target, "binary_cross_entropy_with_logits")
    softplus_neg = softplus(ops.neg(input))
    if pos_weight is not None:
        pos_weight = as_tensor(pos_weight, like=input)
        try:
            np.broadcast_shapes(pos_weight.shape, input.shape)
        except ValueError:
            raise ValueError(f"binary_cross_entropy_with_logits: pos_weight shape {pos_weight.shape} does not "
                             f"broadcast with input shape {input.shape}") from None
        softplus_neg = ops.mul(softplus_neg, ops.add(ops.mul(ops.sub(pos_weight, 1.0), target), 1.0))
    loss = ops.add(ops.mul(ops.sub(1.0, target), input), softplus_neg)
    if weight is not None:
        loss = ops.mul(loss, as_tensor(weight, like=input))
    return _reduce(loss, reduction)


def hinge_embedding_loss(input: Tensor, target, margin: float = 1.0, size_average=None, reduce=None,
                         reduction: str = "mean") -> Tensor:
    """x where t == 1, max(0, margin - x) where t == -1 (torch's definition, other values get both)."""
    reduction = _legacy_reduction(size_average, reduce, reduction)
    _check_reduction(reduction, "hinge_embedding_loss")
    target = as_tensor(target, like=input)
    try:
        np.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ValueError(f"hinge_embedding_loss: input shape {input.shape} and target shape {target.shape} "
                         "cannot be broadcast together") from None
    margin_term = ops.where(target != 1, ops.clamp(ops.sub(margin, input), min=0.0), 0.0)
    self_term = ops.where(target != -1, input, 0.0)
    return _reduce(ops.add(margin_term, self_term), reduction)


def perceptron_loss(scores: Tensor, targets, reduction: str = "mean") -> Tensor:
    """Rosenblatt's perceptron criterion: mean(max(0, -t * f(x))) for labels t in {-1, +1}.

    Only misclassified samples (t * f(x) <= 0) contribute, with gradient -t on their score."""
    _check_reduction(reduction, "perceptron_loss")
    targets = as_tensor(targets, like=scores)
    if targets.shape != scores.shape:
        raise ValueError(f"perceptron_loss: scores shape {scores.shape} and targets shape {targets.shape} differ")
    if not np.all((targets.data == 1) | (targets.data == -1)):
        raise ValueError(f"perceptron_loss: targets must be -1 or +1 (shape {targets.shape})")
    return _reduce(relu(ops.neg(ops.mul(targets, scores))), reduction)


def _legacy_reduction(size_average, reduce, reduction: str) -> str:
    """torch's deprecated size_average / reduce arguments, mapped to a reduction."""
    if size_average is None and reduce is None:
        return reduction
    if reduce is False:
        return "none"
    return "sum" if size_average is False else "mean"


from ._conv_functional import *  # noqa: F401,F403,E402  (conv family)
from ._rnn_functional import *  # noqa: F401,F403,E402  (recurrent family)
