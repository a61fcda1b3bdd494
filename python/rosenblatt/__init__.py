"""rosenblatt: a small deep-learning engine with hand-written AVX2 and CUDA kernels."""
from __future__ import annotations

__version__ = "0.1.0"

from . import _C
from .device import device
from .tensor import (Tensor, bool_, enable_grad, float32, float64, from_dlpack, int32, int64, is_grad_enabled,
                     no_grad, set_grad_enabled, tensor)
from . import ops  # noqa: F401  (installs the Tensor operators)
from .ops import (abs, add, amax, amin, argmax, argmin, bmm, cat, chunk, clamp, clip, concatenate, cos, div, eq,
                  exp, expm1, flatten, flip, gather, ge, gt, index_select, isfinite, isnan, le, log, log1p,
                  log_softmax, logsumexp, lt, masked_fill, matmul, max, maximum, mean, min, minimum, mm, mul, ne,
                  neg, permute, pow, relu, reshape, sigmoid, sign, sin, softmax, split, sqrt, squeeze, stack, std,
                  sub, sum, tanh, transpose, unbind, unsqueeze, var, where)
from .creation import (arange, empty, empty_like, eye, from_numpy, full, full_like, linspace, ones, ones_like,
                       rand, randint, randn, randperm, zeros, zeros_like)
from .tensor import float32 as float, float64 as double, int64 as long  # noqa: A001  torch's dtype aliases
from . import cuda, kernels, nn
from .random import manual_seed

# Imported on first use, so that `import rosenblatt` stays quick: the training API and the scripts.
_LAZY_SUBMODULES = ("optim", "data", "train", "serialization", "examples", "bench")
_LAZY_FUNCTIONS = {"save": "serialization", "load": "serialization"}


def __getattr__(name):
    import importlib
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _LAZY_FUNCTIONS:
        return getattr(importlib.import_module(f"{__name__}.{_LAZY_FUNCTIONS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY_SUBMODULES) | set(_LAZY_FUNCTIONS))


def get_num_threads() -> int:
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Threads every kernel may use (OpenMP); the default is the number of cores."""
    _C.set_num_threads(n.__index__() if hasattr(n, '__index__') else n)


def build_info() -> dict:
    """What was built and what is in use: version, ISA path (and whether its AVX-512 kernels run
    within it), threads, CUDA, compiler, and whether importing raised glibc malloc's
    thresholds (csrc/common/malloc_tuning.cpp)."""
    return {
        "version": __version__,
        "isa": _C.isa(),
        "avx512": _C.avx512(),
        "cpu_supports_avx2": _C.cpu_supports_avx2(),
        "cpu_supports_avx512": _C.cpu_supports_avx512(),
        "threads": _C.get_num_threads(),
        "cuda_compiled": cuda.is_compiled(),
        "cuda_available": cuda.is_available(),
        "compiler": _C.compiler,
        "malloc_tuned": _C.malloc_tuned,
    }
