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


# ---- recurrent family (time-major (T, B, I) arrays; see rosenblatt.nn.functional.recurrent_layer) ----

def rnn_forward(cell: str, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse: bool = False,
                linear_before_reset: bool = True, out=None):
    """One recurrent layer and direction over a whole sequence -> (y, h_n, c_n, saved).

    cell: "lstm", "gru", "rnn_tanh" or "rnn_relu"; weights in torch's layout and gate order; lengths:
    int64 (B,) in [1, T] or None. `saved` is what rnn_backward needs."""
    return _C.rnn_forward(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, linear_before_reset, out)


def rnn_backward(cell: str, x, w_ih, w_hh, has_bias: bool, lengths, reverse: bool, linear_before_reset: bool,
                 saved, dy=None, dh_n=None, dc_n=None, cell_grad_clip: float = 0.0, dx=None):
    """Back-propagation through time -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh); with `dx`, adds into it."""
    return _C.rnn_backward(cell, x, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset, saved, dy, dh_n,
                           dc_n, cell_grad_clip, dx)


def grid_rnn_forward(x, w_ih, w_left, w_up, bias=None):
    """The 2-D grid recurrence on position-major x (rows, cols, B, I) -> h (rows, cols, B, H)."""
    return _C.grid_rnn_forward(x, w_ih, w_left, w_up, bias)


def grid_rnn_backward(x, w_ih, w_left, w_up, has_bias: bool, h, dh):
    """-> (dx, dw_ih, dw_left, dw_up, db)."""
    return _C.grid_rnn_backward(x, w_ih, w_left, w_up, has_bias, h, dh)
