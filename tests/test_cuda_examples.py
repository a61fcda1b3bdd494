"""The case studies end to end on a real GPU (`--device cuda`) against the same run on the CPU.

Needs a GPU (bench/gpu_check.sh runs every tests/test_cuda*.py); without one the stand-in backend
checks the same runs in the examples' own tests. The GPU's kernels sum in other orders than the
CPU's, and a few training steps carry that on (Adam turns the rounding noise of a bias ahead of
batch norm into whole steps), so the metrics are compared loosely: within 5% (absolute below 1).
"""
import importlib
import math

import pytest

from rosenblatt import cuda

pytestmark = pytest.mark.skipif(not cuda.is_available(), reason="no CUDA device")

TIMING = ("time", "per_s", "speedup")

CASES = [
    ("perceptron", ["--quick"]),
    ("translate", ["--quick", "--steps", "30", "--batch-size", "16", "--eval-every", "1000", "--beam-size", "2"]),
    ("caption", ["--quick", "--train-size", "192", "--validation-size", "32", "--test-size", "48", "--novel-size",
                 "16", "--epochs", "2", "--beam-size", "2"]),
    ("segment", ["--quick", "--variant", "32s,8s", "--steps", "10", "--test-images", "8"]),
    ("localize", ["--quick", "--train-images", "16", "--test-images", "4", "--epochs", "2"]),
    ("gan", ["--quick"]),
    ("digits", ["--quick", "--epochs", "1", "--no-progress", "--model", "cnn"]),
    ("vae", ["--quick", "--epochs", "1", "--iw-samples", "5", "--iw-images", "20", "--elbo-samples", "2"]),
    ("adversarial", ["--quick"]),
]
NEEDS_SKLEARN = {"digits", "vae", "adversarial"}


def _agree(on_gpu, on_cpu, where: str) -> list:
    """The places where two results differ by more than the tolerance."""
    if isinstance(on_cpu, dict):
        return [p for key in on_cpu for p in _agree(on_gpu.get(key), on_cpu[key], f"{where}.{key}")
                if not any(word in key for word in TIMING) and key != "device"]
    if isinstance(on_cpu, (list, tuple)):
        if not isinstance(on_gpu, (list, tuple)) or len(on_gpu) != len(on_cpu):
            return [f"{where}: {on_gpu!r} on the GPU, {on_cpu!r} on the CPU"]
        return [p for i, (a, b) in enumerate(zip(on_gpu, on_cpu)) for p in _agree(a, b, f"{where}[{i}]")]
    if isinstance(on_cpu, (int, float)) and not isinstance(on_cpu, bool):
        if on_gpu is None or not math.isfinite(on_gpu) or abs(on_gpu - on_cpu) > 0.05 * max(1.0, abs(on_cpu)):
            return [f"{where}: {on_gpu} on the GPU, {on_cpu} on the CPU"]
        return []
    return [] if on_gpu == on_cpu else [f"{where}: {on_gpu!r} on the GPU, {on_cpu!r} on the CPU"]


@pytest.mark.parametrize("name, argv", CASES, ids=[name for name, _ in CASES])
def test_example_on_the_gpu_matches_the_cpu(name, argv):
    if name in NEEDS_SKLEARN:
        pytest.importorskip("sklearn")
    main = importlib.import_module(f"rosenblatt.examples.{name}").main
    on_gpu = main([*argv, "--device", "cuda"])
    on_cpu = main(list(argv))
    assert on_gpu["device"] in ("cuda", "cuda:0") and on_cpu["device"] == "cpu"
    differences = _agree(on_gpu, on_cpu, name)
    assert not differences, "\n".join(differences)
