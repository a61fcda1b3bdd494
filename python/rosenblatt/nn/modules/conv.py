"""Convolution layers: Conv2d, ConvTranspose2d (torch.nn's arguments, initialisation and state_dict
keys) and LocallyConnected2d (unshared weights, for comparing with convolution)."""
from __future__ import annotations

import math

import numpy as np

from .. import _conv_functional as F
from .. import init
from .module import Module, Parameter

__all__ = ["Conv2d", "ConvTranspose2d", "LocallyConnected2d"]


def _pair(value) -> tuple:
    return (int(value), int(value)) if isinstance(value, (int, np.integer)) else tuple(int(v) for v in value)


class _ConvNd(Module):
    """Shared argument handling and torch's reset_parameters for the two convolution layers."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, weight_shape, dtype, output_padding=0):
        super().__init__()
        name = type(self).__name__
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups {groups}")
        if padding_mode != "zeros":
            raise ValueError(f"{name}: padding_mode {padding_mode!r} is not supported (only 'zeros')")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ValueError(f"{name}: padding must be 'same', 'valid' or ints, got {padding!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.padding = padding if isinstance(padding, str) else _pair(padding)
        self.dilation, self.groups, self.padding_mode = _pair(dilation), groups, padding_mode
        self.output_padding = _pair(output_padding)
        dtype = np.dtype(dtype or np.float32)
        self.weight = Parameter(np.empty(weight_shape(self.kernel_size), dtype))
        self.register_parameter("bias", Parameter(np.empty(out_channels, dtype)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch's rule: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)) and the bias U(+-1/sqrt(fan_in)),
        # fan_in = weight.shape[1] * kH * kW (for ConvTranspose2d that is out_channels/groups * kH * kW).
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size[0] * self.kernel_size[1]
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.output_padding != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Conv2d(_ConvNd):
    """2-D convolution: weight (out_channels, in_channels/groups, kH, kW), bias (out_channels,)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", device=None, dtype=None):
        if padding == "same" and _pair(stride) != (1, 1):
            raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, lambda k: (out_channels, in_channels // groups) + k, dtype)

    def forward(self, input):
        return F.conv2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed convolution: weight (in_channels, out_channels/groups, kH, kW), bias (out_channels,).
    Initialise an up-sampling layer to bilinear interpolation with rosenblatt.nn.init.bilinear_."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", device=None, dtype=None):
        if isinstance(padding, str):
            raise ValueError(f"ConvTranspose2d: padding must be ints, got {padding!r}")
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, lambda k: (in_channels, out_channels // groups) + k, dtype, output_padding)

    def _output_padding(self, input, output_size):
        """torch's rule: an explicit output_size picks the output_padding that reaches it."""
        if output_size is None:
            return self.output_padding
        size = tuple(int(s) for s in output_size)[-2:]
        if len(output_size) not in (2, 4):
            raise ValueError(f"ConvTranspose2d: output_size must have 2 or 4 elements (H, W or N, C, H, W), got "
                             f"{tuple(output_size)} (input {tuple(input.shape)})")
        padding = []
        for d in range(2):
            smallest = ((input.shape[-2 + d] - 1) * self.stride[d] - 2 * self.padding[d]
                        + self.dilation[d] * (self.kernel_size[d] - 1) + 1)
            extra = size[d] - smallest
            if not 0 <= extra < max(self.stride[d], self.dilation[d]):
                raise ValueError(f"ConvTranspose2d: requested output_size {size} is not reachable from input "
                                 f"{tuple(input.shape)} (sizes from {smallest} to {smallest + max(self.stride[d], self.dilation[d]) - 1})")
            padding.append(extra)
        return tuple(padding)

    def forward(self, input, output_size=None):
        return F.conv_transpose2d(input, self.weight, self.bias, self.stride, self.padding,
                                  self._output_padding(input, output_size), self.groups, self.dilation)


class LocallyConnected2d(Module):
    """Like Conv2d, but each output position has its own filter (no weight sharing).

    weight (OH, OW, out_channels, in_channels, kH, kW) and bias (out_channels, OH, OW), where
    (OH, OW) follows from input_size as for a convolution. Initialised as Conv2d (U(+-1/sqrt(fan_in)))."""

    def __init__(self, in_channels: int, out_channels: int, input_size, kernel_size, stride=1, padding=0,
                 dilation=1, bias: bool = True, dtype=None):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.input_size, self.kernel_size = _pair(input_size), _pair(kernel_size)
        self.stride, self.padding, self.dilation = _pair(stride), _pair(padding), _pair(dilation)
        out = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1 for n, k, s, p, d in
                    zip(self.input_size, self.kernel_size, self.stride, self.padding, self.dilation))
        if min(out) < 1:
            raise ValueError(f"LocallyConnected2d: kernel {self.kernel_size} does not fit input_size "
                             f"{self.input_size} with padding {self.padding}, dilation {self.dilation}")
        self.output_size = out
        dtype = np.dtype(dtype or np.float32)
        bound = 1.0 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
        self.weight = Parameter(np.empty(out + (out_channels, in_channels) + self.kernel_size, dtype))
        init.uniform_(self.weight, -bound, bound)
        if bias:
            self.bias = Parameter(np.empty((out_channels,) + out, dtype))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, input):
        return F.locally_connected2d(input, self.weight, self.bias, self.stride, self.padding, self.dilation)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, input_size={self.input_size}, "
                f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}")
