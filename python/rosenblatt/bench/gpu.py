"""CUDA kernels beside PyTorch on one GPU, measured in the same run.

SGEMM GFLOP/s against torch.mm (cuBLAS, TF32 off on both sides) at 1024^3 .. 8192^3 and the DL
shapes of the CPU GEMM benchmark; element-wise, reduction and softmax GB/s against the measured
device-to-device copy bandwidth (torch's copy_, counting bytes read plus written); one training step
of an MLP on CUDA tensors beside torch's. Each time is the
median of several samples after a warm-up, synchronising before reading the host clock. Inputs are
made on the GPU by torch and shared with our kernels through DLPack (no copies).

    python -m rosenblatt.bench.gpu [--quick] [--out results.json]
"""
from __future__ import annotations

import json
import statistics
import sys
import time

from .common import geomean, print_table
from .gemm import DL_SHAPES

SQUARES = [(n, n, n) for n in (1024, 2048, 4096, 8192)]


def _median_time(fn, sync, repeat: int, min_time: float = 0.05) -> float:
    """Median seconds per call of fn(); each sample runs enough calls to last about min_time."""
    fn()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    once = max(time.perf_counter() - start, 1e-7)
    inner = max(1, int(min_time / once))
    if once > 0.5:  # a very slow kernel: keep the whole benchmark inside its time limit
        repeat = min(repeat, 2)
    samples = []
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        sync()
        samples.append((time.perf_counter() - start) / inner)
    return statistics.median(samples)


def _relative_error(ours, reference) -> float:
    return float((ours.double() - reference.double()).norm() / max(reference.double().norm().item(), 1e-30))


def bench_gemm(torch, cuda, repeat: int, quick: bool) -> list:
    records = []
    shapes = (SQUARES[:2] if quick else SQUARES) + DL_SHAPES
    for m, n, k in shapes:
        a = torch.randn(m, k, device="cuda")
        b = torch.randn(k, n, device="cuda")
        da, db = cuda.from_dlpack(a), cuda.from_dlpack(b)
        ours_out = torch.from_dlpack(cuda.matmul(da, db))
        error = _relative_error(ours_out, torch.mm(a, b))
        t_ours = _median_time(lambda: cuda.matmul(da, db), cuda.synchronize, repeat)
        t_torch = _median_time(lambda: torch.mm(a, b), torch.cuda.synchronize, repeat)
        flops = 2.0 * m * n * k
        records.append({"kind": "gemm", "shape": [m, n, k], "ours_s": t_ours, "torch_s": t_torch,
                        "ours_gflops": flops / t_ours / 1e9, "torch_gflops": flops / t_torch / 1e9,
                        "ratio": t_torch / t_ours, "rel_error": error})
        del a, b, da, db, ours_out
    return records


def bench_memory(torch, cuda, repeat: int, quick: bool) -> list:
    """GB/s of memory-bound kernels; the copy bandwidth is the ceiling."""
    side = 4096 if quick else 8192
    n = side * side
    x = torch.randn(side, side, device="cuda")
    y = torch.randn(side, side, device="cuda")
    row = torch.randn(side, device="cuda")
    dx, dy, drow = cuda.from_dlpack(x), cuda.from_dlpack(y), cuda.from_dlpack(row)
    dst = torch.empty_like(x)
    soft = torch.randn(side * 8, 1000, device="cuda")
    dsoft = cuda.from_dlpack(soft)
    f = 4  # bytes per float32
    cases = [  # name, our call, torch's call, bytes moved
        ("copy (D2D ceiling)", lambda: cuda.copy(dx), lambda: dst.copy_(x), 2 * n * f),
        ("add", lambda: cuda.add(dx, dy), lambda: torch.add(x, y), 3 * n * f),
        ("add, broadcast row", lambda: cuda.add(dx, drow), lambda: torch.add(x, row), 2 * n * f + side * f),
        ("relu", lambda: cuda.relu(dx), lambda: torch.relu(x), 2 * n * f),
        ("exp", lambda: cuda.exp(dx), lambda: torch.exp(x), 2 * n * f),
        ("sum over rows (axis 1)", lambda: cuda.sum(dx, 1), lambda: torch.sum(x, 1), n * f + side * f),
        ("sum over columns (axis 0)", lambda: cuda.sum(dx, 0), lambda: torch.sum(x, 0), n * f + side * f),
        ("softmax (rows of 1000)", lambda: cuda.softmax(dsoft), lambda: torch.softmax(soft, -1), 2 * soft.numel() * f),
        ("log_softmax (rows of 1000)", lambda: cuda.log_softmax(dsoft), lambda: torch.log_softmax(soft, -1),
         2 * soft.numel() * f),
    ]
    records = []
    for name, ours, theirs, nbytes in cases:
        t_ours = _median_time(ours, cuda.synchronize, repeat)
        t_torch = _median_time(theirs, torch.cuda.synchronize, repeat)
        records.append({"kind": "memory", "name": name, "bytes": nbytes, "ours_s": t_ours, "torch_s": t_torch,
                        "ours_gbs": nbytes / t_ours / 1e9, "torch_gbs": nbytes / t_torch / 1e9,
                        "ratio": t_torch / t_ours})
    ceiling = records[0]["torch_gbs"]
    for r in records:
        r["fraction_of_copy"] = r["ours_gbs"] / ceiling
    return records


def bench_train_step(torch, cuda, repeat: int, quick: bool) -> dict:
    """One SGD-with-momentum step of an MLP (784-1024-1024-10, batch 256, cross-entropy) on the GPU:
    rosenblatt's CUDA tensors (every op through the device layer) beside torch, and the cudaMalloc
    calls our timed steps made (the caching allocator should make none)."""
    import numpy as np

    import rosenblatt as rb
    from rosenblatt import nn
    import rosenblatt.nn.functional as F

    sizes, batch = [784, 1024, 1024, 10], 256
    rng = np.random.default_rng(0)
    x_host = rng.standard_normal((batch, sizes[0])).astype(np.float32)
    y_host = rng.integers(0, sizes[-1], batch)

    rb.manual_seed(0)
    model = nn.Sequential(nn.Linear(sizes[0], sizes[1]), nn.ReLU(), nn.Linear(sizes[1], sizes[2]), nn.ReLU(),
                          nn.Linear(sizes[2], sizes[3])).cuda()
    optimizer = rb.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x, y = rb.tensor(x_host, device="cuda"), rb.tensor(y_host, device="cuda")

    def ours():
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()

    tmodel = torch.nn.Sequential(torch.nn.Linear(sizes[0], sizes[1]), torch.nn.ReLU(),
                                 torch.nn.Linear(sizes[1], sizes[2]), torch.nn.ReLU(),
                                 torch.nn.Linear(sizes[2], sizes[3])).cuda()
    toptimizer = torch.optim.SGD(tmodel.parameters(), lr=0.01, momentum=0.9)
    tx, ty = torch.from_numpy(x_host).cuda(), torch.from_numpy(y_host).cuda()

    def theirs():
        toptimizer.zero_grad()
        torch.nn.functional.cross_entropy(tmodel(tx), ty).backward()
        toptimizer.step()

    ours()  # the first step makes the optimizer state
    cuda.synchronize()
    mallocs = cuda.memory_stats()["malloc_calls"]
    t_ours = _median_time(ours, cuda.synchronize, repeat)
    mallocs = cuda.memory_stats()["malloc_calls"] - mallocs
    t_torch = _median_time(theirs, torch.cuda.synchronize, repeat)
    return {"kind": "train_step", "model": f"MLP {'-'.join(map(str, sizes))}, batch {batch}, SGD momentum",
            "ours_s": t_ours, "torch_s": t_torch, "ratio": t_torch / t_ours, "malloc_calls_while_timed": mallocs}


def bench_case_steps(torch, cuda, repeat: int) -> list:
    """Training steps of the CPU train benchmark's case-study models, on the GPU: the charlm LSTM
    (2 x 512, batch 64, 100 steps of BPTT, clipping, Adam) and the digits CNN (batch 32, Adam), ours
    on CUDA tensors beside torch (cuDNN) with the same weights. One failing model does not stop the
    other: its record carries the error."""
    import numpy as np

    import rosenblatt as rb
    from rosenblatt.examples.charlm import CharLM
    from rosenblatt.examples.digits import build_model
    from . import train as cpu_bench

    records = []
    rng = np.random.default_rng(0)

    def charlm():
        vocab, embedding, hidden, layers, batch, seq_len = 65, 64, 512, 2, 64, 100
        ids = rng.integers(0, vocab, size=(seq_len + 1, batch))
        model = CharLM(vocab, embedding, hidden, layers)
        twin = cpu_bench.torch_charlm(torch, vocab, embedding, hidden, layers)
        cpu_bench.copy_weights(torch, model, twin)
        model.cuda(), twin.cuda()
        ours = cpu_bench.our_charlm_step(model, rb.tensor(ids[:-1], device="cuda"), rb.tensor(ids[1:], device="cuda"),
                                         vocab)
        theirs = cpu_bench.torch_charlm_step(torch, twin, torch.from_numpy(ids[:-1]).cuda(),
                                             torch.from_numpy(ids[1:]).cuda(), vocab)
        return f"charlm LSTM {layers}x{hidden}, B={batch}, T={seq_len}", ours, theirs

    def digits_cnn():
        images = rng.uniform(size=(32, 1, 8, 8)).astype(np.float32)
        labels = rng.integers(0, 10, size=32)
        model = build_model("cnn", "relu", dropout=0.0, hidden=128, shift=0, batch_norm=True)
        twin = cpu_bench.torch_digits(torch, "cnn")
        cpu_bench.copy_weights(torch, model, twin)
        model.cuda(), twin.cuda()
        ours = cpu_bench.our_classifier_step(model, rb.tensor(images, device="cuda"), rb.tensor(labels, device="cuda"))
        theirs = cpu_bench.torch_classifier_step(torch, twin, torch.from_numpy(images).cuda(),
                                                 torch.from_numpy(labels).cuda())
        return "digits CNN, 1x8x8, B=32", ours, theirs

    for build in (charlm, digits_cnn):
        try:
            name, ours, theirs = build()
            first_ours, first_theirs = ours(), theirs()  # the same weights: the first losses agree
            t_ours = _median_time(ours, cuda.synchronize, repeat, min_time=0.2)
            t_torch = _median_time(theirs, torch.cuda.synchronize, repeat, min_time=0.2)
            records.append({"kind": "case_step", "model": name, "ours_s": t_ours, "torch_s": t_torch,
                            "ratio": t_torch / t_ours, "first_loss": [first_ours, first_theirs]})
        except Exception as error:  # noqa: BLE001 - report, keep the other model's numbers
            records.append({"kind": "case_step", "model": build.__name__, "error": f"{type(error).__name__}: {error}"})
    return records


def main(argv=()) -> int:
    argv = list(argv)
    quick = "--quick" in argv
    out = argv[argv.index("--out") + 1] if "--out" in argv and argv.index("--out") + 1 < len(argv) else None
    from rosenblatt import cuda
    if not cuda.is_available():
        print("gpu benchmark: no CUDA device (is_compiled=%s); nothing to time" % cuda.is_compiled())
        return 2
    try:
        import torch
    except ImportError:
        print("gpu benchmark: PyTorch is not installed; it is the peer every number is compared with")
        return 2
    if not torch.cuda.is_available():
        print("gpu benchmark: this PyTorch has no CUDA; it is the peer every number is compared with")
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 against fp32: cuBLAS without tensor-core TF32
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    repeat = 3 if quick else 7
    info = {"device": cuda.get_device_name(0), "torch": torch.__version__, "cuda_runtime": cuda._cuda.runtime_version()}
    print(f"GPU: {info['device']}; torch {info['torch']}; our CUDA runtime {info['cuda_runtime']}")

    gemm = bench_gemm(torch, cuda, repeat, quick)
    print("\nSGEMM (fp32, TF32 off), median of %d" % repeat)
    print_table(["M x N x K", "ours GFLOP/s", "torch GFLOP/s", "ours/torch", "rel err"],
                [[f"{r['shape'][0]}x{r['shape'][1]}x{r['shape'][2]}", f"{r['ours_gflops']:.0f}",
                  f"{r['torch_gflops']:.0f}", f"{r['ratio']:.2f}", f"{r['rel_error']:.1e}"] for r in gemm])
    squares = [r["ratio"] for r in gemm if r["shape"][0] == r["shape"][1] == r["shape"][2]]
    dl = [r["ratio"] for r in gemm if tuple(r["shape"]) in DL_SHAPES]
    print(f"geomean ours/torch: squares {geomean(squares):.2f}, DL shapes {geomean(dl):.2f}")

    memory = bench_memory(torch, cuda, repeat, quick)
    print("\nMemory-bound kernels, GB/s (bytes read + written)")
    print_table(["op", "ours GB/s", "torch GB/s", "ours/torch", "ours / copy ceiling"],
                [[r["name"], f"{r['ours_gbs']:.0f}", f"{r['torch_gbs']:.0f}", f"{r['ratio']:.2f}",
                  f"{r['fraction_of_copy']:.2f}"] for r in memory])
    from .gpu_train import bench as bench_train
    try:  # untried on a GPU when written: a failure here must not lose the numbers above
        train = bench_train(torch, cuda, repeat, quick)
        print("\nTraining-step kernels, GB/s (minimum bytes read + written)")
        print_table(["op", "ours GB/s", "torch GB/s", "ours/torch"],
                    [[r["name"], f"{r['ours_gbs']:.0f}", f"{r['torch_gbs']:.0f}", f"{r['ratio']:.2f}"] for r in train])
    except Exception as error:  # noqa: BLE001
        print(f"\ntraining-kernel benchmark failed: {error!r}")
        train = [{"kind": "train", "error": repr(error)}]
    from . import gpu_rnn
    try:
        rnn = gpu_rnn.bench(torch, cuda, repeat, quick)
    except Exception as error:  # noqa: BLE001 - a failure in this section must not lose the rest
        print(f"\nrnn benchmark failed: {error!r}")
        rnn = []
    print("\nLSTM / GRU, one layer and direction, fp32; torch = torch.nn.LSTM / GRU (cuDNN)")
    print_table(["cell", "T, N, I, H", "pass", "ours ms", "torch ms", "ours/torch", "rel err"],
                [[r["cell"], ", ".join(map(str, r["shape"])), r["pass"], f"{r['ours_s'] * 1e3:.2f}",
                  f"{r['torch_s'] * 1e3:.2f}", f"{r['ratio']:.2f}", f"{r['rel_error']:.1e}"] for r in rnn])

    try:
        step = bench_train_step(torch, cuda, repeat, quick)
        print(f"\nTraining step on the GPU, {step['model']}: ours {step['ours_s'] * 1e3:.2f} ms, torch "
              f"{step['torch_s'] * 1e3:.2f} ms, ours/torch {step['ratio']:.2f}; cudaMalloc calls while timed: "
              f"{step['malloc_calls_while_timed']}")
    except Exception as error:  # noqa: BLE001 - report and keep the numbers above
        step = {"kind": "train_step", "error": f"{type(error).__name__}: {error}"}
        print(f"\nTraining step on the GPU: FAILED: {step['error']}")
    cases = bench_case_steps(torch, cuda, repeat)
    print("\nCase-study training steps on the GPU (target: charlm >= 1.0x torch)")
    print_table(["model", "ours ms", "torch ms", "torch/ours", "first loss ours / torch"],
                [[r["model"], f"{r['ours_s'] * 1e3:.1f}", f"{r['torch_s'] * 1e3:.1f}", f"{r['ratio']:.2f}",
                  f"{r['first_loss'][0]:.4f} / {r['first_loss'][1]:.4f}"] if "error" not in r
                 else [r["model"], "FAILED", r["error"][:60], "", ""] for r in cases])
    from . import gpu_conv
    try:  # a failure here must not lose the sections above
        conv = gpu_conv.bench(torch, cuda, repeat, quick)
        gpu_conv.report(conv)
    except Exception as error:  # noqa: BLE001
        print(f"\nconvolution benchmark failed: {error!r}")
        conv = [{"kind": "conv", "error": repr(error)}]
    stats = cuda.memory_stats()
    print(f"\nallocator: {stats}")
    if out:
        with open(out, "w") as fh:
            json.dump({"info": info, "gemm": gemm, "memory": memory, "train": train, "rnn": rnn, "train_step": step,
                       "cases": cases, "conv": conv, "allocator": stats}, fh, indent=1)
        print(f"full results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
