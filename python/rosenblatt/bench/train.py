"""python -m rosenblatt.bench train: whole training steps of the case-study models against PyTorch.

One step = forward, loss, backward, (clipping,) Adam update, zero_grad, on a fixed batch:
  * charlm: the examples.charlm model, 2 LSTM layers x 512, vocabulary 65, batch 64, 100 steps of
    truncated BPTT with the state carried between steps, gradient norm clipped to 5;
  * digits CNN: the examples.digits LeNet-style CNN (conv-bn-relu-pool x2, fc 256-128-10), batch 32;
  * digits MLP: 64-128-128-10 with ReLU, batch 32.
Both frameworks get the same weights (ours copied into torch's modules: the state_dict layouts are
the same), the first losses are printed side by side as a check, then steps/s is the median over
repeats (the two frameworks' samples alternating), measured in this run with the same thread count
on both sides (default 2; --threads=N, --repeat=N). Ratio = our steps/s / torch's (> 1: we are faster).
"""
from __future__ import annotations

import numpy as np

import rosenblatt
from rosenblatt import _C, nn, optim
from rosenblatt.bench.common import interleaved_medians, print_table, try_import_torch
from rosenblatt.examples.charlm import CharLM, detach_state
from rosenblatt.examples.digits import build_model
from rosenblatt.tensor import Tensor

F = nn.functional
TARGETS = {"charlm": 1.2, "digits CNN": 1.0}


# ---- our side ----------------------------------------------------------------------------------------
def our_charlm_step(model, inputs, targets, vocab):
    optimizer = optim.Adam(model.parameters(), lr=2e-3)
    parameters = list(model.parameters())
    carried = {"state": None}

    def step():
        scores, state = model(inputs, carried["state"])
        carried["state"] = detach_state(state)
        loss = F.cross_entropy(scores.reshape(-1, vocab), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(parameters, 5.0)
        optimizer.step()
        return loss.item()

    return step


def our_classifier_step(model, images, labels):
    optimizer = optim.Adam(model.parameters(), lr=2e-3)

    def step():
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


# ---- torch side: the same architectures ----------------------------------------------------------------
def torch_charlm(torch, vocab, embedding, hidden, layers):
    class TorchCharLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, embedding)
            self.lstm = torch.nn.LSTM(embedding, hidden, layers)
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, ids, state=None):
            output, state = self.lstm(self.embedding(ids), state)
            return self.head(output), state

    return TorchCharLM()


def torch_digits(torch, kind):
    tnn = torch.nn
    if kind == "cnn":
        return tnn.Sequential(tnn.Conv2d(1, 32, 3, padding=1), tnn.BatchNorm2d(32), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Conv2d(32, 64, 3, padding=1), tnn.BatchNorm2d(64), tnn.ReLU(), tnn.MaxPool2d(2),
                              tnn.Flatten(), tnn.Linear(256, 128), tnn.ReLU(), tnn.Linear(128, 10))
    return tnn.Sequential(tnn.Flatten(), tnn.Linear(64, 128), tnn.ReLU(), tnn.Linear(128, 128), tnn.ReLU(),
                          tnn.Linear(128, 10))


def copy_weights(torch, ours, theirs):
    """Our state_dict into the torch module (same keys and shapes); torch-only counters may stay."""
    state = {key: torch.from_numpy(np.array(value.data)) for key, value in ours.state_dict().items()}
    missing, unexpected = theirs.load_state_dict(state, strict=False)
    if unexpected or any(not key.endswith("num_batches_tracked") for key in missing):
        raise RuntimeError(f"bench train: the models differ: missing {missing}, unexpected {unexpected}")


def torch_charlm_step(torch, model, inputs, targets, vocab):
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    carried = {"state": None}

    def step():
        scores, state = model(inputs, carried["state"])
        carried["state"] = tuple(s.detach() for s in state)
        loss = torch.nn.functional.cross_entropy(scores.reshape(-1, vocab), targets.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        return loss.item()

    return step


def torch_classifier_step(torch, model, images, labels):
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def step():
        loss = torch.nn.functional.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


# ---- the cases -----------------------------------------------------------------------------------------
def cases(torch, rng):
    """(name, shape description, our step, torch step or None) for each model."""
    vocab, embedding, hidden, layers, batch, seq_len = 65, 64, 512, 2, 64, 100
    ids = rng.integers(0, vocab, size=(seq_len + 1, batch))
    model = CharLM(vocab, embedding, hidden, layers)
    ours = our_charlm_step(model, Tensor(ids[:-1]), Tensor(ids[1:]), vocab)
    theirs = None
    if torch is not None:
        twin = torch_charlm(torch, vocab, embedding, hidden, layers)
        copy_weights(torch, model, twin)
        theirs = torch_charlm_step(torch, twin, torch.from_numpy(ids[:-1]), torch.from_numpy(ids[1:]), vocab)
    yield "charlm", f"LSTM {layers}x{hidden}, V={vocab}, B={batch}, T={seq_len}", ours, theirs

    images = rng.uniform(size=(32, 1, 8, 8)).astype(np.float32)
    labels = rng.integers(0, 10, size=32)
    for kind in ("cnn", "mlp"):
        model = build_model(kind, "relu", dropout=0.0, hidden=128, shift=0, batch_norm=True)
        ours = our_classifier_step(model, Tensor(images), Tensor(labels))
        theirs = None
        if torch is not None:
            twin = torch_digits(torch, kind)
            copy_weights(torch, model, twin)
            theirs = torch_classifier_step(torch, twin, torch.from_numpy(images), torch.from_numpy(labels))
        yield f"digits {kind.upper()}", "1x8x8 images, B=32", ours, theirs


def main(argv):
    threads, repeat = 2, 5
    for arg in argv:
        if arg.startswith("--threads="):
            threads = int(arg.split("=", 1)[1])
        elif arg.startswith("--repeat="):
            repeat = int(arg.split("=", 1)[1])
    rosenblatt.set_num_threads(threads)
    rosenblatt.manual_seed(0)
    torch = try_import_torch()
    if torch is not None:
        torch.set_num_threads(threads)
    print(f"== train: {threads} threads, ISA {_C.isa()}, median of {repeat} interleaved samples; "
          "ratio = our steps/s / torch steps/s"
          + ("" if torch else " (torch not importable: no ratios)"))
    header = ["model", "shape", "first loss (ours / torch)", "ours steps/s", "torch steps/s", "ratio", "target"]
    rows = []
    for name, shape, ours, theirs in cases(torch, np.random.default_rng(0)):
        first = f"{ours():.4f}" + (f" / {theirs():.4f}" if theirs else "")  # same weights: same loss
        # a step of the charlm takes seconds: one step per sample; the small models several
        inner = 1 if name == "charlm" else 20
        fns = [lambda: [ours() for _ in range(inner)]] + ([lambda: [theirs() for _ in range(inner)]] if theirs else [])
        seconds = [t / inner for t in interleaved_medians(fns, repeat=repeat)]
        ours_time = seconds[0]
        row = [name, shape, first, f"{1 / ours_time:.2f}"]
        if theirs:
            torch_time = seconds[1]
            row += [f"{1 / torch_time:.2f}", f"{torch_time / ours_time:.2f}x"]
        else:
            row += ["-", "-"]
        row.append(f">= {TARGETS[name]}x" if name in TARGETS else "")
        rows.append(row)
    print_table(header, rows)
