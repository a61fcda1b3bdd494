"""Direct access to the compiled kernels on NumPy arrays (no autograd)."""
from __future__ import annotations

from . import _C


def gemm(a, b, *, trans_a: bool = False, trans_b: bool = False, alpha: float = 1.0, beta: float = 0.0, out=None):
    """alpha * op(a) @ op(b) + beta * out, for 2-D float32 or float64 NumPy arrays.

    op(x) is x.T when the matching trans flag is set. With `out`, the result is
    written into it in place (and returned); beta scales its old contents, and
    beta == 0 ignores them (as BLAS does). Any strides work, negative included.
    """
    return _C.gemm(a, b, trans_a, trans_b, alpha, beta, out)


def last_impl(op: str) -> str:
    """The implementation the op ran last time ("avx2_packed_6x16", "scalar_ref", ...)."""
    return _C.last_impl(op)


# ---- convolution family (NCHW arrays; see rosenblatt.nn.functional for the autograd forms) ----

def conv2d(input, weight, bias=None, stride=(1, 1), padding=(0, 0), dilation=(1, 1), groups: int = 1):
    """conv2d forward: input (N, C, H, W), weight (O, C/groups, kH, kW), bias (O,) or None."""
    return _C.conv2d_forward(input, weight, bias, stride, padding, dilation, groups)


def conv2d_backward_data(grad_output, weight, input_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                         groups: int = 1):
    """Gradient of conv2d with respect to an input of spatial size input_size = (H, W)."""
    return _C.conv2d_backward_data(grad_output, weight, input_size, stride, padding, dilation, groups)


def conv2d_backward_weight(input, grad_output, kernel_size, stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                           groups: int = 1):
    """Gradient of conv2d with respect to its weight of spatial size kernel_size = (kH, kW)."""
    return _C.conv2d_backward_weight(input, grad_output, kernel_size, stride, padding, dilation, groups)


def max_pool2d(input, kernel_size, stride, padding=(0, 0), dilation=(1, 1), ceil_mode=False, return_indices=False):
    """(output, indices or None); indices are flat per plane (ih * W + iw), as torch's."""
    return _C.max_pool2d_forward(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices)


def avg_pool2d(input, kernel_size, stride, padding=(0, 0), ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    return _C.avg_pool2d_forward(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
