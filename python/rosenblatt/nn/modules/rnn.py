"""Recurrent layers as torch.nn: RNN, LSTM, GRU (stacked, bidirectional, variable length), the
single-step cells, Embedding, and GridRNN2d (a two-dimensional recurrence).

Parameter names, shapes, initialisation and state_dict keys are torch's (weight_ih_l0, weight_hh_l0,
bias_ih_l0, bias_hh_l0, ..._reverse), so a torch state_dict loads and reproduces its outputs.
"""
from __future__ import annotations

import math

import numpy as np

from ... import _device
from ...random import default_generator
from ...tensor import Tensor
from .. import _rnn_functional as RF
from .module import Module, Parameter

__all__ = ["RNNBase", "RNN", "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "Embedding",
           "GridRNN2d"]

_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _uniform_parameter(shape, bound, dtype) -> Parameter:
    return Parameter(default_generator().uniform(-bound, bound, shape).astype(dtype))


def _as_input(name: str, value, dtype) -> Tensor:
    """The layer's input as a floating Tensor of the parameters' dtype."""
    if not isinstance(value, Tensor):  # a copy: the backward reads it, after the caller may have reused its array
        value = Tensor(np.array(value))
    if value.dtype != dtype:
        raise TypeError(f"{name}: input has dtype {value.dtype} (shape {value.shape}) but the parameters are "
                        f"{dtype}; convert one of them")
    return value


def _check_state(name: str, what: str, state, expected: tuple, dtype):
    if state is None:
        return None
    if not isinstance(state, Tensor):
        state = Tensor(np.asarray(state))
    if state.shape != expected:
        raise ValueError(f"{name}: {what} has shape {state.shape}, expected {expected}")
    if state.dtype != dtype:
        raise TypeError(f"{name}: {what} has dtype {state.dtype} (shape {state.shape}), expected {dtype}")
    return state


def _split_state(name: str, hx, lstm: bool, input):
    """(h0, c0) from hx: LSTM's is a pair (h0, c0) or None, the others' a single h0 (c0 None)."""
    if not lstm:
        return hx, None
    if hx is None:
        return None, None
    if not (isinstance(hx, (tuple, list)) and len(hx) == 2):  # unpacking a Tensor would split its first dim
        raise TypeError(f"{name}: hx must be a pair (h0, c0), got {type(hx).__name__} "
                        f"(input shape {tuple(np.shape(getattr(input, 'data', input)))})")
    return hx


def _rows(t: Tensor, start: int, stop: int) -> Tensor:
    """t[start:stop] along the first axis, with its gradient."""
    if start == 0 and stop == t.shape[0]:
        return t
    from ...tensor import result

    def backward(g):
        full = _device.full(t.shape, 0, t.dtype, g)
        full[start:stop] = g
        return (full,)

    return result(t.data[start:stop], (t,), backward, "SliceBackward")


class RNNBase(Module):
    """Shared machinery of RNN, LSTM and GRU: parameters l0..l{L-1} (and _reverse), the layer loop."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, *,
                 linear_before_reset: bool = True, cell_grad_clip: float = 0.0, dtype=None):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{name}: dropout must be in [0, 1), got {dropout}")
        if cell_grad_clip < 0:
            raise ValueError(f"{name}: cell_grad_clip must be >= 0 (0 disables it), got {cell_grad_clip}")
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.dropout = bool(bias), bool(batch_first), float(dropout)
        self.bidirectional = bool(bidirectional)
        self.linear_before_reset = bool(linear_before_reset)
        self.cell_grad_clip = float(cell_grad_clip)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        gates = _GATES[mode] * self.hidden_size
        for layer in range(self.num_layers):
            layer_input = self.input_size if layer == 0 else self.hidden_size * self.num_directions
            for suffix in ("", "_reverse")[:self.num_directions]:
                setattr(self, f"weight_ih_l{layer}{suffix}", Parameter(np.empty((gates, layer_input), dtype)))
                setattr(self, f"weight_hh_l{layer}{suffix}", Parameter(np.empty((gates, self.hidden_size), dtype)))
                if self.bias:
                    setattr(self, f"bias_ih_l{layer}{suffix}", Parameter(np.empty(gates, dtype)))
                    setattr(self, f"bias_hh_l{layer}{suffix}", Parameter(np.empty(gates, dtype)))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    def reset_parameters(self) -> None:
        """Every weight and bias ~ U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)), as torch."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for name, param in self.named_parameters():
            param.data = _device.on_device_of(default_generator().uniform(-bound, bound, param.shape)
                                              .astype(param.dtype), param.data)

    def _layer_weights(self, layer: int) -> list:
        out = []
        for suffix in ("", "_reverse")[:self.num_directions]:
            get = lambda kind: getattr(self, f"{kind}_l{layer}{suffix}") if self.bias or "weight" in kind else None
            out.append((get("weight_ih"), get("weight_hh"), get("bias_ih"), get("bias_hh")))
        return out

    def _lengths(self, lengths, T: int, B: int):
        name = type(self).__name__
        if lengths is None:
            return None
        array = np.asarray(lengths.data if isinstance(lengths, Tensor) else lengths)
        if array.dtype.kind not in "iu" or array.shape != (B,):
            raise ValueError(f"{name}: lengths must be {B} integers (one per sequence), got dtype {array.dtype} "
                             f"and shape {array.shape}")
        if B and (array.min() < 1 or array.max() > T):
            raise ValueError(f"{name}: lengths must lie in [1, {T}] for an input of {T} steps, got min "
                             f"{array.min()} and max {array.max()} (lengths shape {array.shape})")
        return np.ascontiguousarray(array, dtype=np.int64)

    def forward(self, input, hx=None, lengths=None):
        """input (T, B, I) ((B, T, I) with batch_first, or unbatched (T, I)); hx: h0 (L*D, B, H) (LSTM:
        a tuple (h0, c0)); lengths: B integers in [1, T]. Returns (output, h_n) or (output, (h_n, c_n))."""
        name = type(self).__name__
        dtype = self.weight_ih_l0.dtype
        x = _as_input(name, input, dtype)
        if x.ndim not in (2, 3) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has shape {x.shape}; expected (T, B, {self.input_size})"
                             f"{' with batch_first (B, T, I)' if self.batch_first else ''} or unbatched "
                             f"(T, {self.input_size}) (input_size={self.input_size})")
        unbatched = x.ndim == 2
        if unbatched:
            x = RF._reshape(x, (x.shape[0], 1, x.shape[1]))
        elif self.batch_first:
            x = RF._swap01(x)
        T, B = x.shape[0], x.shape[1]
        if T == 0 or B == 0:
            raise ValueError(f"{name}: empty input of shape {tuple(input.shape)}")

        lstm = self.mode == "lstm"
        h0, c0 = _split_state(name, hx, lstm, input)
        state_shape = (self.num_layers * self.num_directions, B, self.hidden_size)
        if unbatched:
            h0 = None if h0 is None else RF._reshape(_check_state(name, "h0", h0, (state_shape[0], self.hidden_size),
                                                                  dtype), state_shape)
            c0 = None if c0 is None else RF._reshape(_check_state(name, "c0", c0, (state_shape[0], self.hidden_size),
                                                                  dtype), state_shape)
        else:
            h0 = _check_state(name, "h0", h0, state_shape, dtype)
            c0 = _check_state(name, "c0", c0, state_shape, dtype)
        lengths = self._lengths(lengths, T, B)

        D = self.num_directions
        h_finals, c_finals = [], []
        for layer in range(self.num_layers):
            rows = (layer * D, (layer + 1) * D)
            x, h_n, c_n = RF.recurrent_layer(
                self.mode, x, None if h0 is None else _rows(h0, *rows), None if c0 is None else _rows(c0, *rows),
                self._layer_weights(layer), lengths=lengths, linear_before_reset=self.linear_before_reset,
                cell_grad_clip=self.cell_grad_clip)
            h_finals.append(h_n)
            c_finals.append(c_n)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = RF._dropout(x, self.dropout)

        h_n = RF._concat0(h_finals)
        c_n = RF._concat0(c_finals) if lstm else None
        if unbatched:
            x = RF._reshape(x, (T, x.shape[2]))
            h_n = RF._reshape(h_n, (state_shape[0], self.hidden_size))
            c_n = RF._reshape(c_n, (state_shape[0], self.hidden_size)) if lstm else None
        elif self.batch_first:
            x = RF._swap01(x)
        return (x, (h_n, c_n)) if lstm else (x, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = nonlinearity(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh), nonlinearity tanh or relu."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, **kwargs)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory, gates (i, f, g, o) as torch. `cell_grad_clip` > 0 clips dL/dc to
    [-clip, clip] at every step of back-propagation through time (off by default)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, **kwargs):
        super().__init__("lstm", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         **kwargs)


class GRU(RNNBase):
    """Gated recurrent unit, gates (r, z, n) as torch. linear_before_reset=True is torch's (and
    cuDNN's) n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); False is Cho et al.'s
    n = tanh(W_in x + b_in + W_hn (r * h) + b_hn)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 linear_before_reset: bool = True, **kwargs):
        super().__init__("gru", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         linear_before_reset=linear_before_reset, **kwargs)


# ---- single-step cells (decoders: sampling, beam search) ---------------------------------------------
class RNNCellBase(Module):
    """One step of a recurrent cell: the whole-sequence kernel with T = 1."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, bias: bool = True, *,
                 linear_before_reset: bool = True, dtype=None):
        super().__init__()
        name = type(self).__name__
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name}: {arg} must be a positive integer, got {value!r}")
        self.mode = mode
        self.input_size, self.hidden_size, self.bias = int(input_size), int(hidden_size), bool(bias)
        self.linear_before_reset = bool(linear_before_reset)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        gates = _GATES[mode] * self.hidden_size
        bound = 1.0 / math.sqrt(self.hidden_size)
        self.weight_ih = _uniform_parameter((gates, self.input_size), bound, dtype)
        self.weight_hh = _uniform_parameter((gates, self.hidden_size), bound, dtype)
        if self.bias:
            self.bias_ih = _uniform_parameter((gates,), bound, dtype)
            self.bias_hh = _uniform_parameter((gates,), bound, dtype)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            param.data = _device.on_device_of(default_generator().uniform(-bound, bound, param.shape)
                                              .astype(param.dtype), param.data)

    def _step(self, input, hx):
        name = type(self).__name__
        dtype = self.weight_ih.dtype
        x = _as_input(name, input, dtype)
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has shape {x.shape}; expected (B, {self.input_size}) or "
                             f"({self.input_size},) (input_size={self.input_size})")
        unbatched = x.ndim == 1
        B = 1 if unbatched else x.shape[0]
        if B == 0:
            raise ValueError(f"{name}: empty batch, input shape {x.shape}")
        state = (self.hidden_size,) if unbatched else (B, self.hidden_size)
        lstm = self.mode == "lstm"
        h0, c0 = _split_state(name, hx, lstm, input)
        h0 = _check_state(name, "h" if not lstm else "h0", h0, state, dtype)
        c0 = _check_state(name, "c0", c0, state, dtype)
        one = (1, B, self.hidden_size)
        _, h, c = RF.recurrent_layer(
            self.mode, RF._reshape(x, (1, B, self.input_size)),
            None if h0 is None else RF._reshape(h0, one), None if c0 is None else RF._reshape(c0, one),
            [(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh)],
            linear_before_reset=self.linear_before_reset)
        h = RF._reshape(h, state)
        return (h, RF._reshape(c, state)) if lstm else h

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias else ", bias=False")


class RNNCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(f"rnn_{nonlinearity}", input_size, hidden_size, bias, **kwargs)
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        """input (B, I) or (I,), hx (B, H) -> h' (B, H)."""
        return self._step(input, hx)


class LSTMCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, **kwargs):
        super().__init__("lstm", input_size, hidden_size, bias, **kwargs)

    def forward(self, input, hx=None):
        """input (B, I) or (I,), hx = (h, c) each (B, H) -> (h', c')."""
        return self._step(input, hx)


class GRUCell(RNNCellBase):
    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, linear_before_reset: bool = True,
                 **kwargs):
        super().__init__("gru", input_size, hidden_size, bias, linear_before_reset=linear_before_reset, **kwargs)

    def forward(self, input, hx=None):
        """input (B, I) or (I,), hx (B, H) -> h' (B, H)."""
        return self._step(input, hx)


# ---- embedding -------------------------------------------------------------------------------------
class Embedding(Module):
    """A lookup table of num_embeddings vectors of size embedding_dim, initialised N(0, 1) as torch;
    the row at padding_idx starts at zero and receives no gradient."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 _weight=None, _freeze: bool = False, dtype=None):
        super().__init__()
        for arg, value in (("num_embeddings", num_embeddings), ("embedding_dim", embedding_dim)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"Embedding: {arg} must be a positive integer, got {value!r}")
        padding_idx = RF.padding_index(padding_idx, (num_embeddings, embedding_dim), "Embedding")
        self.num_embeddings, self.embedding_dim, self.padding_idx = int(num_embeddings), int(embedding_dim), padding_idx
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        if _weight is None:
            self.weight = Parameter(default_generator().standard_normal((num_embeddings, embedding_dim)).astype(dtype))
            if padding_idx is not None:
                self.weight.data[padding_idx] = 0
        else:
            weight = np.array(_weight.data if isinstance(_weight, Tensor) else _weight)
            if weight.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {weight.shape}, expected "
                                 f"{(num_embeddings, embedding_dim)}")
            self.weight = Parameter(weight, requires_grad=not _freeze)

    @classmethod
    def from_pretrained(cls, embeddings, freeze: bool = True, padding_idx: int | None = None) -> "Embedding":
        array = np.asarray(embeddings.data if isinstance(embeddings, Tensor) else embeddings)
        if array.ndim != 2:
            raise ValueError(f"Embedding.from_pretrained: embeddings must be 2-D, got shape {array.shape}")
        return cls(array.shape[0], array.shape[1], padding_idx, _weight=array, _freeze=freeze)

    def reset_parameters(self) -> None:
        self.weight.data = _device.on_device_of(
            default_generator().standard_normal(self.weight.shape).astype(self.weight.dtype), self.weight.data)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input) -> Tensor:
        return RF.embedding(input, self.weight, self.padding_idx)

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class GridRNN2d(Module):
    """A two-dimensional (multi-dimensional) recurrence over an image-like grid, scanning row by row
    from the top-left corner; each position receives the states of its left and upper neighbours:

        h[i, j] = tanh(W_ih x[i, j] + b + W_left h[i, j-1] + W_up h[i-1, j]),  h = 0 outside the grid

    input (N, input_size, rows, cols) -> output (N, hidden_size, rows, cols). Parameters weight_ih
    (hidden, input), weight_left and weight_up (hidden, hidden), bias (hidden), all initialised
    U(-1/sqrt(hidden), 1/sqrt(hidden)) like the recurrent layers."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, dtype=None):
        super().__init__()
        for arg, value in (("input_size", input_size), ("hidden_size", hidden_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GridRNN2d: {arg} must be a positive integer, got {value!r}")
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        dtype = np.dtype(np.float32 if dtype is None else dtype)
        bound = 1.0 / math.sqrt(self.hidden_size)
        self.weight_ih = _uniform_parameter((self.hidden_size, self.input_size), bound, dtype)
        self.weight_left = _uniform_parameter((self.hidden_size, self.hidden_size), bound, dtype)
        self.weight_up = _uniform_parameter((self.hidden_size, self.hidden_size), bound, dtype)
        if bias:
            self.bias = _uniform_parameter((self.hidden_size,), bound, dtype)
        else:
            self.register_parameter("bias", None)

    def forward(self, input) -> Tensor:
        x = _as_input("GridRNN2d", input, self.weight_ih.dtype)
        if x.ndim != 4 or x.shape[1] != self.input_size or 0 in x.shape:
            raise ValueError(f"GridRNN2d: input has shape {x.shape}; expected (N, {self.input_size}, rows, cols) "
                             f"(input_size={self.input_size})")
        return RF.grid_rnn2d(x, self.weight_ih, self.weight_left, self.weight_up, self.bias)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}" + ("" if self.bias is not None else ", bias=False")
