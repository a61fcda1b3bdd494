"""Linear layers: Identity, Linear (torch's layout and initialisation), Maxout."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from .module import Module, Parameter
from ...tensor import _to_dtype, float32

__all__ = ["Identity", "Linear", "Maxout"]


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments, as torch.nn.Identity."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b with weight (out_features, in_features) and bias (out_features,).

    Initialised as torch: kaiming_uniform_(weight, a=sqrt(5)), which is U(-1/sqrt(in), 1/sqrt(in)),
    and bias U(-1/sqrt(in), 1/sqrt(in))."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        if in_features < 0 or out_features < 0:
            raise ValueError(f"Linear: feature counts must be non-negative, got in_features={in_features}, "
                             f"out_features={out_features}")
        self.in_features = in_features
        self.out_features = out_features
        dtype = _to_dtype(dtype) or float32
        self.weight = Parameter(np.empty((out_features, in_features), dtype))
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Maxout(Module):
    """Maxout units (Goodfellow et al., 2013): out_features units, each the max of `pieces` affine pieces.

    One Linear(in_features, out_features * pieces) computes all pieces; unit j takes the max of outputs
    j*pieces ... j*pieces + pieces - 1 (F.maxout). state_dict: linear.weight, linear.bias."""

    def __init__(self, in_features: int, out_features: int, pieces: int, bias: bool = True, device=None,
                 dtype=None):
        super().__init__()
        if pieces < 1:
            raise ValueError(f"Maxout: pieces must be at least 1, got {pieces}")
        self.in_features = in_features
        self.out_features = out_features
        self.pieces = pieces
        self.linear = Linear(in_features, out_features * pieces, bias=bias, device=device, dtype=dtype)

    def forward(self, input):
        return F.maxout(self.linear(input), self.pieces)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, pieces={self.pieces}"
