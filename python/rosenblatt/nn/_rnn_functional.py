"""Functional forms of the recurrent family: whole-sequence recurrent layers, embedding lookup and the
two-dimensional grid recurrence.

A recurrent layer is ONE autograd node per layer (both directions): its forward runs the
whole-sequence kernel (`rosenblatt._kernels.rnn_forward`) once per direction, its backward runs
back-propagation through time (`_kernels.rnn_backward`) over the activations the kernel saved. The node's
value packs the output and the final states in one flat array; `output`, `h_n` and `c_n` are views
of it, so gradients from any of them reach the same backward call.
"""
from __future__ import annotations

import math
import operator

import numpy as np

from .. import _device, ops
from .._device import kernel_module as _kernels
from ..random import default_generator
from ..tensor import Tensor, is_grad_enabled, result

__all__ = ["embedding", "recurrent_layer", "grid_rnn2d"]

CELLS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


# ---- small shape ops used by the layers (each one graph node) ------------------------------------
def _piece(packed: Tensor, start: int, shape: tuple) -> Tensor:
    """The elements [start, start + prod(shape)) of a flat Tensor, as a Tensor of `shape`."""
    stop = start + math.prod(shape)

    def backward(g):
        full = _device.empty(packed.shape[0], packed.dtype, g)
        full[:start] = 0
        full[stop:] = 0
        if isinstance(full, np.ndarray):  # g straight into place: g.reshape(-1) copies a broadcast g (sum's) first
            np.copyto(full[start:stop].reshape(shape), g)
        else:
            full[start:stop] = g.reshape(-1)
        return (full,)

    return result(packed.data[start:stop].reshape(shape), (packed,), backward, "RnnOutputBackward")


def _reshape(x: Tensor, shape: tuple) -> Tensor:
    return result(x.data.reshape(shape), (x,), lambda g: (g.reshape(x.shape),), "ReshapeBackward")


def _swap01(x: Tensor) -> Tensor:
    """(A, B, ...) -> (B, A, ...), contiguous (batch_first <-> time-major)."""
    return result(_device.ascontiguousarray(x.data.swapaxes(0, 1)), (x,),
                  lambda g: (_device.ascontiguousarray(g.swapaxes(0, 1)),), "TransposeBackward")


def _concat0(tensors: list) -> Tensor:
    """Concatenate along the first axis."""
    if len(tensors) == 1:
        return tensors[0]
    bounds = np.cumsum([0] + [t.shape[0] for t in tensors])

    def backward(g):
        return tuple(g[bounds[i]:bounds[i + 1]] for i in range(len(tensors)))

    return result(np.concatenate([t.data for t in tensors]), tuple(tensors), backward, "CatBackward")


def _dropout(x: Tensor, p: float) -> Tensor:
    """Inverted dropout with the library's random stream (between stacked recurrent layers)."""
    keep = _device.on_device_of((default_generator().random(x.shape) >= p).astype(x.dtype) / (1.0 - p), x.data)
    return result(x.data * keep, (x,), lambda g: (g * keep,), "DropoutBackward")


# ---- the recurrent layer node --------------------------------------------------------------------
def recurrent_layer(cell: str, x: Tensor, h0: Tensor | None, c0: Tensor | None, weights: list, *,
                    lengths: np.ndarray | None = None, linear_before_reset: bool = True,
                    cell_grad_clip: float = 0.0):
    """One recurrent layer over a time-major sequence, both directions when `weights` has two entries.

    x: (T, B, I); h0, c0: (D, B, H) or None (zeros); weights: D tuples (w_ih, w_hh, b_ih, b_hh) of
    Tensors (biases may be None), the second direction running backwards in time; lengths: int64 (B,)
    or None. Returns (output (T, B, D*H), h_n (D, B, H), c_n (D, B, H) or None). Shapes are assumed
    checked by the caller (the module); the kernel re-checks everything it touches.
    """
    if cell not in CELLS:
        raise ValueError(f"recurrent_layer: unknown cell {cell!r}; expected one of {CELLS}")
    lstm = cell == "lstm"
    T, B, _ = x.shape
    D = len(weights)
    H = weights[0][1].shape[1]
    dtype = x.dtype
    has_bias = weights[0][2] is not None
    xs = _device.ascontiguousarray(x.data)
    h0s = _device.full((D, B, H), 0, dtype, xs) if h0 is None else _device.ascontiguousarray(h0.data)
    c0s = None
    if lstm:
        c0s = _device.full((D, B, H), 0, dtype, xs) if c0 is None else _device.ascontiguousarray(c0.data)
    if lengths is not None:  # a copy (B ints): the backward reads it, after the caller may have reused its array
        lengths = _device.on_device_of(np.array(lengths), xs)  # the kernels take every array on one device

    n_out, n_state = T * B * D * H, D * B * H
    packed = _device.empty(n_out + n_state * (2 if lstm else 1), dtype, xs)
    y = packed[:n_out].reshape(T, B, D * H)
    h_n = packed[n_out:n_out + n_state].reshape(D, B, H)
    c_n = packed[n_out + n_state:].reshape(D, B, H) if lstm else None
    saved = []
    for d, (w_ih, w_hh, b_ih, b_hh) in enumerate(weights):
        _, h_last, c_last, kept = _kernels.rnn_forward(
            cell, xs, h0s[d], c0s[d] if lstm else None, w_ih.data, w_hh.data,
            None if b_ih is None else b_ih.data, None if b_hh is None else b_hh.data,
            lengths, d == 1, linear_before_reset, y[:, :, d * H:(d + 1) * H])
        h_n[d] = h_last
        if lstm:
            c_n[d] = c_last
        saved.append(kept)

    with_h0, with_c0 = h0 is not None, lstm and c0 is not None
    parents = [x] + ([h0] if with_h0 else []) + ([c0] if with_c0 else [])
    for w in weights:
        parents.extend(p for p in w if p is not None)

    def backward(g):
        dy = g[:n_out].reshape(T, B, D * H)
        dh_n = g[n_out:n_out + n_state].reshape(D, B, H)
        dc_n = g[n_out + n_state:].reshape(D, B, H) if lstm else None
        dx = None
        dh0 = _device.empty((D, B, H), dtype, xs)
        dc0 = _device.empty((D, B, H), dtype, xs) if lstm else None
        weight_grads = []
        for d, (w_ih, w_hh, _, _) in enumerate(weights):
            dx_d, dh0[d], dc0_d, dw_ih, dw_hh, db_ih, db_hh = _kernels.rnn_backward(
                cell, xs, w_ih.data, w_hh.data, has_bias, lengths, d == 1, linear_before_reset, saved[d],
                dy[:, :, d * H:(d + 1) * H], _device.ascontiguousarray(dh_n[d]),
                _device.ascontiguousarray(dc_n[d]) if lstm else None, cell_grad_clip, dx)
            dx = dx_d  # the second direction accumulates into the first one's dx
            if lstm:
                dc0[d] = dc0_d
            weight_grads.extend([dw_ih, dw_hh] + ([db_ih, db_hh] if has_bias else []))
        state_grads = ([dh0] if with_h0 else []) + ([dc0] if with_c0 else [])
        return (dx, *state_grads, *weight_grads)

    node = result(packed, tuple(parents), backward, f"{cell.upper()}Backward")
    output = _piece(node, 0, (T, B, D * H))
    h_out = _piece(node, n_out, (D, B, H))
    c_out = _piece(node, n_out + n_state, (D, B, H)) if lstm else None
    return output, h_out, c_out


# ---- embedding -----------------------------------------------------------------------------------
def padding_index(padding_idx, shape: tuple, op: str) -> int | None:
    """padding_idx None or an integer in [-num, num) for a table of `shape` (num, dim), as torch,
    returned non-negative. Out of range, the backward zeroed another row's gradient (negative) or
    failed in NumPy; so did a float."""
    if padding_idx is None:
        return None
    try:
        index = operator.index(padding_idx)
    except TypeError:
        raise TypeError(f"{op}: padding_idx must be an integer, got {padding_idx!r} (weight of shape "
                        f"{shape})") from None
    num = shape[0]
    if not -num <= index < num:
        raise ValueError(f"{op}: padding_idx {index} is outside [-{num}, {num}) for weight of shape {shape}")
    return index % num


def _check_table(weight: Tensor, padding_idx: int | None) -> int | None:
    """weight must be a 2-D table; returns padding_index(padding_idx)."""
    if not isinstance(weight, Tensor):
        raise TypeError(f"embedding: weight must be a Tensor, got {type(weight).__name__}")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, dim), got shape {weight.shape}")
    return padding_index(padding_idx, weight.shape, "embedding")


def embedding(input, weight: Tensor, padding_idx: int | None = None) -> Tensor:
    """Rows of `weight` (num_embeddings, dim) picked by the integer indices in `input`, as
    torch.nn.functional.embedding. The row at padding_idx receives no gradient."""
    padding_idx = _check_table(weight, padding_idx)
    if not isinstance(weight.data, np.ndarray):
        return _device_embedding(input, weight, padding_idx)
    # A copy: the backward reads it, and a caller may reuse its index array (a decoder's ids) meanwhile.
    indices = np.array(input.data if isinstance(input, Tensor) else input)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype} (shape {indices.shape})")
    num = weight.shape[0]
    if indices.size and (indices.min() < 0 or indices.max() >= num):
        raise IndexError(f"embedding: index out of range [0, {num}) in indices of shape {indices.shape} "
                         f"(min {indices.min()}, max {indices.max()}); weight has shape {weight.shape}")

    def backward(g):
        grad = ops.rows_sum(g.reshape(-1, weight.shape[1]), indices.reshape(-1), weight.shape[0])
        if padding_idx is not None:
            grad[padding_idx] = 0
        return (grad,)

    return result(weight.data[indices], (weight,), backward, "EmbeddingBackward")


def _device_embedding(input, weight: Tensor, padding_idx: int | None) -> Tensor:
    """embedding on a device: the backend's row gather (embedding_forward) and, backward, its
    scatter-add of the rows' gradients (embedding_backward; the padding row gets none). A bad index
    raises IndexError from the kernel, which reads its flag back once (one stream synchronisation)."""
    indices = input.data if isinstance(input, Tensor) else _device.asarray(input)
    _device.same_device("embedding", weight.data, indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be integers, got dtype {indices.dtype} (shape {indices.shape})")
    num, dim = weight.shape
    kernels = _device.backend("embedding")
    try:
        out = kernels.embedding_forward(weight.data, indices)
    except IndexError as error:
        raise IndexError(f"embedding: index out of range [0, {num}) in indices of shape {indices.shape}; "
                         f"weight has shape {weight.shape} ({error})") from None
    if not (is_grad_enabled() and weight.requires_grad):
        return Tensor(out)
    saved = indices.copy()  # the backward reads it, and a caller may reuse its index array meanwhile (as on the CPU)

    def backward(g):
        return (kernels.embedding_backward(g, saved, num, padding_idx),)

    return result(out, (weight,), backward, "EmbeddingBackward")


# ---- two-dimensional grid recurrence -----------------------------------------------------------------
def grid_rnn2d(input: Tensor, weight_ih: Tensor, weight_left: Tensor, weight_up: Tensor,
               bias: Tensor | None = None) -> Tensor:
    """h[:, :, i, j] = tanh(W_ih x[:, :, i, j] + b + W_left h[:, :, i, j-1] + W_up h[:, :, i-1, j]) over an
    image-like input (N, C_in, rows, cols), zero states outside the grid; returns (N, hidden, rows, cols).
    One autograd node: the kernel runs the raster scan forward and its reverse for the gradients."""
    if input.ndim != 4:
        raise ValueError(f"grid_rnn2d: expected a 4-D (N, C_in, rows, cols) input, got shape {input.shape}")
    # (N, C, R, W) <-> (R, W, N, C): the kernel's position-major layout; the permutation is its own inverse.
    to_grid = (2, 3, 0, 1)
    xs = _device.ascontiguousarray(input.data.transpose(to_grid))
    weights = [weight_ih, weight_left, weight_up] + ([bias] if bias is not None else [])
    h = _kernels.grid_rnn_forward(xs, weight_ih.data, weight_left.data, weight_up.data,
                            None if bias is None else bias.data)

    def backward(g):
        dh = _device.ascontiguousarray(g.transpose(to_grid))
        dx, dw_ih, dw_left, dw_up, db = _kernels.grid_rnn_backward(xs, weight_ih.data, weight_left.data, weight_up.data,
                                                             bias is not None, h, dh)
        grads = [_device.ascontiguousarray(dx.transpose(to_grid)), dw_ih, dw_left, dw_up]
        return tuple(grads + ([db] if bias is not None else []))

    out = _device.ascontiguousarray(h.transpose(to_grid))
    return result(out, (input, *weights), backward, "GridRNN2dBackward")
