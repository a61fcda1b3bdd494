"""Autograd utilities: a finite-difference gradient check (as torch.autograd.gradcheck)."""
from __future__ import annotations

import numpy as np

from .tensor import Tensor, no_grad


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
