"""Build facts: build_info, thread control, ISA selection, CUDA queries without a GPU."""
import os
import subprocess
import sys

import pytest

import rosenblatt
from rosenblatt import _C


def test_build_info_keys():
    info = rosenblatt.build_info()
    for key in ("version", "isa", "threads", "cuda_compiled", "cuda_available", "compiler", "malloc_tuned"):
        assert key in info
    assert info["version"] == rosenblatt.__version__
    assert info["isa"] in ("avx2", "scalar")
    assert isinstance(info["cuda_compiled"], bool) and isinstance(info["cuda_available"], bool)
    # The AVX-512 kernels only within the AVX2 path, only where the CPU has AVX-512F.
    assert info["avx512"] <= (info["isa"] == "avx2" and info["cpu_supports_avx512"])


def test_avx512_switch_follows_the_isa_and_refuses_without_support():
    from rosenblatt import _C
    if not _C.cpu_supports_avx512():
        with pytest.raises(ValueError, match="set_avx512: this CPU has no AVX-512F"):
            _C.set_avx512(True)
        assert not _C.avx512()
        return
    previous_isa, previous = _C.isa(), _C.avx512()
    try:
        _C.set_avx512(True)
        _C.set_isa("scalar")
        assert not _C.avx512()  # the scalar path has no AVX-512 kernel in it
        _C.set_isa("avx2")
        assert _C.avx512()
        _C.set_avx512(False)
        assert not _C.avx512()
    finally:
        _C.set_isa(previous_isa)
        _C.set_avx512(previous)


def test_threads_round_trip():
    previous = rosenblatt.get_num_threads()
    try:
        rosenblatt.set_num_threads(1)
        assert rosenblatt.get_num_threads() == 1
        assert rosenblatt.build_info()["threads"] == 1
    finally:
        rosenblatt.set_num_threads(previous)
    with pytest.raises(ValueError, match="set_num_threads"):
        rosenblatt.set_num_threads(0)


def test_isa_environment_variable_forces_scalar():
    code = "import rosenblatt; print(rosenblatt.build_info()['isa'])"
    env = dict(os.environ, ROSENBLATT_ISA="scalar")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "scalar"


# Asks for two threads where OpenMP may give fewer; prints the worst error of each kernel family
# against a reference computed on one thread (or by NumPy).
FEWER_THREADS = """
import numpy as np, rosenblatt as rb
from rosenblatt import kernels, nn, tensor
import rosenblatt.nn.functional as F
rng = np.random.default_rng(0)
def run(threads, fn):
    rb.set_num_threads(threads)
    return fn()
errors = []
for M, N, K in [(64, 500, 300), (500, 64, 300), (300, 700, 530)]:  # column chunks, row chunks, static split
    a, b = rng.standard_normal((M, K), dtype=np.float32), rng.standard_normal((K, N), dtype=np.float32)
    errors.append(np.abs(run(2, lambda: kernels.gemm(a, b)) - a.astype(np.float64) @ b).max())
for batch in (32, 4):  # steps split by batch rows, and by hidden units with a barrier per step
    lstm = nn.LSTM(16, 32)
    x = tensor(rng.standard_normal((5, batch, 16)).astype(np.float32))
    outs = [run(t, lambda: lstm(x)[0].numpy()) for t in (2, 1)]
    errors.append(np.abs(outs[0] - outs[1]).max())
x = tensor(rng.standard_normal((2, 8, 20, 20)).astype(np.float32))
w = tensor(rng.standard_normal((16, 8, 3, 3)).astype(np.float32))
outs = [run(t, lambda: F.conv2d(x, w, padding=1).numpy()) for t in (2, 1)]
errors.append(np.abs(outs[0] - outs[1]).max())
print(max(errors))
"""


@pytest.mark.parametrize("omp_env", [{"OMP_THREAD_LIMIT": "1"}, {"OMP_DYNAMIC": "true"}])
def test_fewer_threads_than_asked(omp_env):
    """A team smaller than planned once left part of a GEMM unwritten (and would wait forever at a
    barrier): kernels must plan with the threads OpenMP will really give."""
    env = dict(os.environ, **omp_env)
    out = subprocess.run([sys.executable, "-c", FEWER_THREADS], env=env, capture_output=True, text=True,
                         check=True, timeout=120).stdout
    assert float(out.strip()) < 1e-3


def test_set_isa_rejects_unknown():
    with pytest.raises(ValueError, match="set_isa"):
        _C.set_isa("avx512")


FAULTS_PER_STEP = """
import resource, numpy as np, rosenblatt
from rosenblatt import nn, optim
from rosenblatt.examples.digits import build_model
rosenblatt.set_num_threads(1)
model = build_model("cnn")
opt = optim.Adam(model.parameters())
x = rosenblatt.tensor(np.random.default_rng(0).standard_normal((32, 1, 8, 8)).astype(np.float32))
y = rosenblatt.tensor(np.arange(32) % 10)
def step():
    loss = nn.functional.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()
for _ in range(5):
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(rosenblatt.build_info()["malloc_tuned"], (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc")
def test_training_step_does_not_fault_pages_in():
    """Importing rosenblatt keeps freed memory in the process (csrc/common/malloc_tuning.cpp): with glibc's
    defaults the digits CNN's step faults in about 270 fresh pages every step (glibc 2.36). A glibc.malloc
    tunable set by the user turns the tuning off."""
    def run(extra_env):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
        out = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP], env={**env, **extra_env},
                             capture_output=True, text=True, check=True).stdout.split()
        return out[0] == "True", float(out[1])

    tuned, faults = run({})
    assert tuned and faults < 20, faults
    untouched, _ = run({"GLIBC_TUNABLES": "glibc.malloc.perturb=0"})
    assert not untouched


@pytest.mark.parametrize("probe", ["copy_bandwidth", "read_bandwidth"])
def test_bandwidth_probes(probe):
    """The benchmarks' memory ceilings: a positive, finite rate; sizes they cannot split are refused."""
    measure = getattr(_C, probe)
    assert 0 < measure(1 << 20, 2) < 1e4
    with pytest.raises(ValueError, match=probe):
        measure(100, 1)
    with pytest.raises(ValueError, match=probe):
        measure(1 << 20, 0)


def test_cuda_queries_never_crash():
    count = rosenblatt.cuda.device_count()
    assert rosenblatt.cuda.is_available() == (count > 0)
    if count == 0:
        with pytest.raises(RuntimeError, match="get_device_name"):
            rosenblatt.cuda.get_device_name(0)
    else:
        assert isinstance(rosenblatt.cuda.get_device_name(0), str)
    with pytest.raises(RuntimeError, match="get_device_name"):
        rosenblatt.cuda.get_device_name(count + 5)
