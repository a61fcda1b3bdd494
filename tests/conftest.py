import numpy as np
import pytest

import rosenblatt
from rosenblatt import _C

ISAS = ["avx2", "scalar"] if _C.cpu_supports_avx2() else ["scalar"]


@pytest.fixture(params=ISAS)
def isa(request):
    """Run a test once per kernel path (AVX2 fast path and scalar reference)."""
    previous = _C.isa()
    _C.set_isa(request.param)
    yield request.param
    _C.set_isa(previous)


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
