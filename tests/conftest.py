import numpy as np
import pytest

import rosenblatt
from rosenblatt import _C

# "avx512": the AVX2 path with its AVX-512 kernels (GEMM micro-kernel, max pooling 3x3 s2) switched on.
ISAS = (["avx2"] + (["avx512"] if _C.cpu_supports_avx512() else []) + ["scalar"]) if _C.cpu_supports_avx2() else ["scalar"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Run a test once per kernel path: the AVX2 fast path without and (where the CPU has AVX-512F)
    with its AVX-512 kernels, and the scalar reference."""
    previous_isa, previous_avx512 = _C.isa(), _C.avx512()
    _C.set_isa("scalar" if request.param == "scalar" else "avx2")
    _C.set_avx512(request.param == "avx512")
    yield request.param
    _C.set_isa(previous_isa)
    _C.set_avx512(previous_avx512)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_close(actual, expected, atol=1e-5, rtol=1e-5, what=""):
    """|actual - expected| <= atol + rtol * |expected| elementwise, with a helpful message."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = np.abs(actual - expected)
    bound = atol + rtol * np.abs(expected)
    ok = (error <= bound) | (np.isnan(actual) & np.isnan(expected)) | (actual == expected)
    if not np.all(ok):
        i = np.unravel_index(np.argmax(np.where(ok, -np.inf, error - bound)), error.shape)
        raise AssertionError(f"{what}: {actual[i]} vs {expected[i]} at {i}, max error {np.nanmax(error):.3g}")


def torch_or_skip():
    return pytest.importorskip("torch")


@pytest.fixture
def fake():
    """The NumPy stand-in for the CUDA backend (tests/fake_cuda.py), installed for the test."""
    import fake_cuda
    with fake_cuda.installed() as backend:
        yield backend


def _fake_modes():
    import fake_cuda
    return ["kernel code", "numpy"] if fake_cuda._REAL is not None else ["numpy"]


@pytest.fixture(params=_fake_modes())
def fake_both(request, monkeypatch):
    """The stand-in backend twice: computing its training kernels through the real CUDA module's host
    entry points (the kernels' own per-element code), and with the NumPy formulas of a CPU-only build."""
    import fake_cuda
    if request.param == "numpy":
        monkeypatch.setattr(fake_cuda, "_REAL", None)
    with fake_cuda.installed() as backend:
        yield backend
