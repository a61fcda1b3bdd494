"""Differentiable ops on Tensors.

Each op computes its output with NumPy or a kernel from `rosenblatt._C`, and
hands `result()` a closure mapping the output's gradient to one gradient per
input (None where an input needs none). Element work is never a Python loop.
"""
from __future__ import annotations

import numpy as np

from . import _C
from .tensor import Tensor, as_tensor, result, unbroadcast


# ---- arithmetic with broadcasting --------------------------------------------------------
def add(a, b) -> Tensor:
    a, b = _pair(a, b)
    return result(a.data + b.data, (a, b),
                  lambda g: (unbroadcast(g, a.shape), unbroadcast(g, b.shape)), "AddBackward")


def mul(a, b) -> Tensor:
    a, b = _pair(a, b)
    return result(a.data * b.data, (a, b),
                  lambda g: (unbroadcast(g * b.data, a.shape), unbroadcast(g * a.data, b.shape)), "MulBackward")


def sum(x: Tensor, dim=None, keepdim: bool = False) -> Tensor:  # noqa: A001 - torch's name
    axis = _axes(dim)
    out = x.data.sum(axis=axis, keepdims=keepdim)

    def backward(g):
        if axis is not None and not keepdim:
            g = np.expand_dims(g, tuple(a % x.ndim for a in axis))
        return (np.broadcast_to(g, x.shape),)

    return result(out, (x,), backward, "SumBackward")


# ---- matrix product through the GEMM kernel ----------------------------------------------
def matmul(a, b) -> Tensor:
    a, b = _pair(a, b)
    if a.ndim == 2 and b.ndim == 2 and a.dtype == b.dtype and a.dtype.kind == "f":
        out = _C.gemm(a.data, b.data)

        def backward(g):
            g = np.ascontiguousarray(g)
            grad_a = _C.gemm(g, b.data, trans_b=True) if a.requires_grad else None
            grad_b = _C.gemm(a.data, g, trans_a=True) if b.requires_grad else None
            return grad_a, grad_b

        return result(out, (a, b), backward, "MmBackward")
    raise NotImplementedError("matmul: only 2-D float operands so far")


# ---- helpers -------------------------------------------------------------------------------
def _pair(a, b):
    if isinstance(a, Tensor):
        return a, as_tensor(b, like=a)
    b = as_tensor(b)
    return as_tensor(a, like=b), b


def _axes(dim):
    if dim is None:
        return None
    return tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)


def _install_methods():
    """Tensor operators and methods that forward to the ops above."""
    Tensor.__add__ = lambda self, other: add(self, other)
    Tensor.__radd__ = lambda self, other: add(other, self)
    Tensor.__mul__ = lambda self, other: mul(self, other)
    Tensor.__rmul__ = lambda self, other: mul(other, self)
    Tensor.__matmul__ = lambda self, other: matmul(self, other)
    Tensor.__rmatmul__ = lambda self, other: matmul(other, self)
    Tensor.sum = sum
    Tensor.matmul = matmul


_install_methods()
