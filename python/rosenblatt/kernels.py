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
