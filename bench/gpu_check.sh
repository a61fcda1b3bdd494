#!/usr/bin/env bash
# GPU check for the CUDA backend, for a machine with an NVIDIA GPU and no network (PyTorch with
# CUDA, pybind11, scikit-build-core, CMake, ninja and NumPy already installed):
#
#   1. environment (nvidia-smi, versions)       4. timing table against PyTorch
#   2. build and install (sm_90 only)           5. compute-sanitizer memcheck and racecheck
#   3. the CUDA and DLPack tests                6. the case studies on the GPU against the CPU
#
# Each stage runs under `timeout`; a failing stage is reported and the script goes on. The whole
# run stops starting stages after BUDGET_S seconds (default 470, under 8 minutes). Everything is
# logged to $OUT/gpu_check.log (or /tmp/rosenblatt_gpu_check/ when OUT is unset), the benchmark's
# full numbers to gpu_bench.json beside it, and a summary of the stages is printed last.
#
#   bash bench/gpu_check.sh            # from the repository root (or anywhere: it cd's there)
#   SKIP_BUILD=1 PYTHONPATH=python bash bench/gpu_check.sh   # use an existing build (a dry run of the script)
#
# The stage functions below run in a child bash under `timeout`, hence the export -f lines.
# shellcheck disable=SC2317  # functions invoked indirectly, through stage
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
RESULTS="${OUT:-/tmp/rosenblatt_gpu_check}"
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu_check.log"
: >"$LOG"
export PY="${PYTHON:-python3}" RESULTS
BUDGET_S="${BUDGET_S:-470}"
export ARCH="${CUDA_ARCH:-90}"
export PYTHONUNBUFFERED=1
[[ -d /usr/local/cuda/bin ]] && export PATH="$PATH:/usr/local/cuda/bin"  # nvcc, compute-sanitizer
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"

SUMMARY=()
FAILED=0

# stage NAME LIMIT_S COMMAND...: run COMMAND with a time limit, log it, record its status.
stage() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - SECONDS))
  if ((left < 15)); then
    SUMMARY+=("$(printf '%-26s %-9s %s' "$name" "SKIPPED" "(time budget spent)")")
    return 1
  fi
  if ((limit > left)); then limit=$left; fi
  echo "=== $name (limit ${limit}s, ${SECONDS}s elapsed)" | tee -a "$LOG"
  local start=$SECONDS rc
  timeout --kill-after=10 "$limit" bash -c '"$@"' "$name" "$@" 2>&1 | tee -a "$LOG"
  rc=${PIPESTATUS[0]}
  local status="ok"
  if ((rc == 124 || rc == 137)); then
    status="TIMEOUT"
  elif ((rc != 0)); then
    status="FAILED"
  fi
  [[ $status == ok ]] || FAILED=$((FAILED + 1))
  SUMMARY+=("$(printf '%-26s %-9s rc=%-4s %4ss' "$name" "$status" "$rc" "$((SECONDS - start))")")
  return "$rc"
}

environment() {
  nvidia-smi || echo "nvidia-smi failed"
  nvcc --version | tail -n 2
  "$PY" - <<'EOF'
import sys, numpy, torch
print("python", sys.version.split()[0], "numpy", numpy.__version__, "torch", torch.__version__,
      "torch.cuda", torch.cuda.is_available(), torch.version.cuda)
EOF
  command -v compute-sanitizer || echo "no compute-sanitizer on PATH"
}

install_package() {
  CMAKE_ARGS="-DROSENBLATT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=$ARCH" \
    "$PY" -m pip install --no-build-isolation --no-deps --no-index --no-cache-dir -v . >"$RESULTS/build.log" 2>&1
  local rc=$?
  tail -n 25 "$RESULTS/build.log"
  return "$rc"
}

# Fallback when pip cannot build: an in-tree build; later stages then import from python/.
build_in_tree() {
  cmake -S . -B build/gpu -G Ninja -DROSENBLATT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$ARCH" \
    -Dpybind11_DIR="$("$PY" -m pybind11 --cmakedir)" -DPython_EXECUTABLE="$(command -v "$PY")" &&
    cmake --build build/gpu
}

# Runs from a neutral directory so that `import rosenblatt` finds the installed package, not python/.
show_install() {
  (cd / && "$PY" - <<'EOF'
import os, rosenblatt
from rosenblatt import cuda
folder = os.path.dirname(rosenblatt.__file__)
for name in sorted(os.listdir(folder)):
    if name.endswith(".so"):
        print(f"{name}: {os.path.getsize(os.path.join(folder, name)) / 1e6:.2f} MB")
print("compiled:", cuda.is_compiled(), "available:", cuda.is_available(), "devices:", cuda.device_count())
print("device 0:", cuda.get_device_name(0) if cuda.is_available() else None)
EOF
  )
}

sanitizer() {
  local tool=$1 sanitizer_bin
  sanitizer_bin="$(command -v compute-sanitizer)"
  if [[ -z $sanitizer_bin ]]; then
    echo "compute-sanitizer not found"
    return 127
  fi
  "$sanitizer_bin" --tool "$tool" --error-exitcode 99 "$PY" -m rosenblatt.bench.cuda_smoke
}

export -f environment install_package build_in_tree show_install sanitizer

# ---------------------------------------------------------------------------------------------
stage "environment" 30 environment
if [[ -n ${SKIP_BUILD:-} ]]; then
  echo "SKIP_BUILD set: using the rosenblatt that Python finds" | tee -a "$LOG"
elif ! stage "build+install (pip)" 300 install_package; then
  if stage "build (in-tree fallback)" 300 build_in_tree; then
    export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
  fi
fi
stage "installed module" 30 show_install
stage "cuda_smoke" 60 "$PY" -m rosenblatt.bench.cuda_smoke
# The tests that need the GPU: every tests/test_cuda*.py but the host simulations and Philox's
# known answers, which run on the CPU (CI runs them on every push).
GPU_TESTS=()
for f in tests/test_cuda*.py tests/test_dlpack.py; do
  case "$f" in *host*|*philox*|*examples*) ;; *) GPU_TESTS+=("$f") ;; esac
done
stage "tests (cuda, dlpack)" 180 "$PY" -m pytest -q -p no:cacheprovider -rs "${GPU_TESTS[@]}"
# The timing table before the sanitizers: it is what a short GPU session most needs, and the
# sanitizer stages (each capped) then take whatever time is left.
stage "benchmark" 150 "$PY" -m rosenblatt.bench.gpu --out "$RESULTS/gpu_bench.json"
stage "sanitizer memcheck" 90 sanitizer memcheck
stage "sanitizer racecheck" 90 sanitizer racecheck
# Every case study's quick run with --device cuda against the same run on the CPU (last: it takes what
# time is left; run it alone with `pytest tests/test_cuda_examples.py`).
stage "examples on the GPU" 120 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda_examples.py

{
  echo
  echo "=== summary (${SECONDS}s in all; log: $LOG)"
  printf '%s\n' "${SUMMARY[@]}"
} | tee -a "$LOG"
exit $((FAILED > 0))
