"""Autograd utilities, as torch.autograd: gradients of outputs with respect to chosen inputs
(`grad`), and a finite-difference gradient check (`gradcheck`)."""
from __future__ import annotations

import numpy as np

from .tensor import Tensor, no_grad, run_backward


def _tensors(value, what: str) -> list:
    tensors = [value] if isinstance(value, Tensor) else list(value)
    for i, t in enumerate(tensors):
        if not isinstance(t, Tensor):
            raise TypeError(f"grad: {what} must be Tensors, got {type(t).__name__} at position {i}")
    return tensors


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph: bool = False, allow_unused=None,
         materialize_grads: bool = False) -> tuple:
    """The gradients of `outputs` (weighted by `grad_outputs`, ones for scalar outputs) with respect
    to each of `inputs`, as torch.autograd.grad: a tuple of Tensors, one per input, and no .grad
    anywhere is changed. An input the outputs do not depend on raises RuntimeError, unless
    allow_unused (its gradient is then None) or materialize_grads (zeros). The graph is freed
    unless retain_graph. Backward functions here compute on arrays, not Tensors, so a gradient
    cannot itself be differentiated: create_graph=True raises NotImplementedError."""
    if create_graph:
        raise NotImplementedError("grad: create_graph=True (higher-order gradients) is not supported: "
                                  "rosenblatt's backward functions compute on arrays, not on Tensors")
    outputs, inputs = _tensors(outputs, "outputs"), _tensors(inputs, "inputs")
    if not inputs:
        raise ValueError("grad: inputs is empty")
    if grad_outputs is None or isinstance(grad_outputs, (Tensor, np.ndarray)):  # one for one output, not rows
        grad_outputs = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(f"grad: {len(grad_outputs)} grad_outputs for {len(outputs)} outputs")
    for i, t in enumerate(outputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: output {i} (shape {t.shape}) does not require grad and has no grad_fn")
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    seeds = []
    for i, (t, g) in enumerate(zip(outputs, grad_outputs)):
        try:
            seeds.append(t._seed(g.data if isinstance(g, Tensor) else g, "grad"))
        except (TypeError, ValueError) as error:
            if str(error).startswith("grad:"):
                raise
            raise TypeError(f"grad: grad_outputs[{i}] for output {i} (shape {t.shape}) is not a gradient: "
                            f"{error}") from None
    grads = run_backward(outputs, seeds, bool(retain_graph), wanted=inputs)
    result = []
    for i, (t, g) in enumerate(zip(inputs, grads)):
        if g is None and materialize_grads:
            g = np.zeros(t.shape, dtype=t.dtype) if isinstance(t.data, np.ndarray) else t.data * 0
        elif g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) was not used in the graph of the outputs; "
                               "pass allow_unused=True for a None gradient, or materialize_grads=True for zeros")
        result.append(None if g is None else Tensor(g))
    return tuple(result)


def _outputs(value):
    if isinstance(value, Tensor):
        return [value]
    return [v for v in value if isinstance(v, Tensor)]


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3, seed: int = 0) -> bool:
    """Compare the analytic gradients of `fn(*inputs)` with central differences.

    Inputs that require grad must be float64. The outputs (a Tensor or a tuple
    holding Tensors) are reduced to a scalar with fixed random weights, so every
    output element's gradient path is exercised. Raises AssertionError on the
    first mismatch, naming the input and the worst element.
    """
    inputs = list(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    for t in checked:
        if t.dtype != np.float64:
            raise TypeError(f"gradcheck: inputs that require grad must be float64, got {t.dtype}")
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(o.shape) for o in _outputs(fn(*inputs))]

    def scalar_loss():
        return sum(float((o.data * w).sum()) for o, w in zip(_outputs(fn(*inputs)), weights))

    for t in checked:
        t.grad = None
    outs = _outputs(fn(*inputs))
    loss = None
    for o, w in zip(outs, weights):
        if o.requires_grad:
            term = (o * Tensor(w)).sum()
            loss = term if loss is None else loss + term
    if loss is None:
        raise AssertionError("gradcheck: no output requires grad")
    loss.backward()

    for index, t in enumerate(checked):
        analytic = np.zeros(t.shape) if t.grad is None else t.grad.data
        numeric = np.zeros(t.shape)
        flat = t.data.reshape(-1)  # a view: perturbations write through
        if flat.size and not np.shares_memory(flat, t.data):  # an empty input shares no memory, has nothing to check
            raise ValueError("gradcheck: inputs must be contiguous arrays")
        with no_grad():
            for i in range(flat.size):
                original = flat[i]
                flat[i] = original + eps
                plus = scalar_loss()
                flat[i] = original - eps
                minus = scalar_loss()
                flat[i] = original
                numeric.reshape(-1)[i] = (plus - minus) / (2 * eps)
        error = np.abs(analytic - numeric)
        bound = atol + rtol * np.abs(numeric)
        if not np.all(error <= bound):
            worst = np.unravel_index(np.argmax(error - bound), error.shape)
            raise AssertionError(
                f"gradcheck: input {index} of shape {t.shape}: analytic {analytic[worst]:.8g} vs numeric "
                f"{numeric[worst]:.8g} at index {tuple(int(i) for i in worst)} (max abs error {error.max():.3g})"
            )
    return True
