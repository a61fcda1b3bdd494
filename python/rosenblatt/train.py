"""A training loop: `fit(model, loss_fn, optimizer, train_loader, ...)` returning a History.

Each epoch trains on every batch of `train_loader` (forward, loss, backward, optional gradient
clipping, optimizer step), then evaluates on `val_loader` without recording a graph, steps the
scheduler, records the epoch's numbers in the History and calls the callbacks (EarlyStopping,
Checkpoint, or your own). A batch is a tuple `(input, ..., target)`: the model gets every
element but the last, the loss function gets the model's output and the target. A model on a
CUDA device gets its batches moved there (Tensors in the batch; the loader itself stays on the CPU).
"""
from __future__ import annotations

import math
import os
import sys
import time
from collections import defaultdict

import numpy as np

from .nn.utils import clip_grad_norm_
from .optim.lr_scheduler import ReduceLROnPlateau
from .tensor import Tensor, no_grad

__all__ = ["fit", "evaluate", "History", "Callback", "EarlyStopping", "Checkpoint", "load_checkpoint",
           "accuracy"]


# ---- metrics: metric(outputs, targets) -> mean over the batch ----------------------------------
def accuracy(outputs: Tensor, targets: Tensor) -> float:
    """Fraction of examples whose highest-scoring class (last axis) is the target class.
    Targets are class indices, or one-hot / probabilities of the outputs' shape."""
    predicted = np.argmax(_array(outputs), axis=-1)
    expected = _array(targets)
    if expected.shape == _array(outputs).shape:
        expected = np.argmax(expected, axis=-1)
    if predicted.shape != expected.shape:
        raise ValueError(f"accuracy: outputs of shape {_array(outputs).shape} do not match targets of "
                         f"shape {expected.shape}")
    return float(np.mean(predicted == expected))


_NAMED_METRICS = {"accuracy": accuracy}


def _metric_functions(metrics) -> dict:
    functions = {}
    for metric in metrics:
        if isinstance(metric, str):
            if metric not in _NAMED_METRICS:
                raise ValueError(f"fit: unknown metric {metric!r}; name one of {sorted(_NAMED_METRICS)} "
                                 f"or pass a function (outputs, targets) -> float")
            functions[metric] = _NAMED_METRICS[metric]
        elif callable(metric):
            functions[getattr(metric, "__name__", type(metric).__name__)] = metric
        else:
            raise TypeError(f"fit: a metric must be a name or a function, got {type(metric).__name__}")
    return functions


def _array(value) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


# ---- history -------------------------------------------------------------------------------------
class History:
    """Per-epoch numbers: `history["loss"]`, `history["val_accuracy"]`, `history.epoch`, ..."""

    def __init__(self):
        self.epoch: list[int] = []
        self.history: dict[str, list] = defaultdict(list)

    def append(self, epoch: int, logs: dict) -> None:
        self.epoch.append(epoch)
        for key, value in logs.items():
            self.history[key].append(value)

    def __getitem__(self, key: str) -> list:
        return self.history[key]

    def __contains__(self, key: str) -> bool:
        return key in self.history

    def __len__(self) -> int:
        return len(self.epoch)

    def __repr__(self) -> str:
        last = {key: values[-1] for key, values in self.history.items() if values}
        return f"History({len(self)} epochs, last: {last})"

    def plot(self, path) -> None:
        """Write a PNG of the curves: one panel per quantity (training and validation together),
        plus the learning rate when it changed. Needs matplotlib (the `plot` extra)."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("History.plot needs matplotlib: pip install 'rosenblatt[plot]'") from None
        names = [key for key in self.history if not key.startswith("val_") and key not in ("time", "examples_per_s")]
        if "lr" in names and len(set(self.history["lr"])) <= 1:
            names.remove("lr")
        if not names:
            raise ValueError("History.plot: nothing recorded yet")
        figure = Figure(figsize=(4.5 * len(names), 3.5), layout="constrained")
        FigureCanvasAgg(figure)
        for i, name in enumerate(names):
            axes = figure.add_subplot(1, len(names), i + 1)
            axes.plot(self.epoch, self.history[name], marker="o", label="train" if name != "lr" else "lr")
            if f"val_{name}" in self.history:
                axes.plot(self.epoch, self.history[f"val_{name}"], marker="o", label="validation")
            axes.set_xlabel("epoch")
            axes.set_title(name)
            axes.grid(alpha=0.3)
            axes.legend()
        figure.savefig(os.fspath(path), dpi=100)


# ---- callbacks -----------------------------------------------------------------------------------
class Callback:
    """Hooks into `fit`. `run` is the FitRun: model, optimizer, scheduler, history, and
    `stop_training`, which a callback sets to end training after the current epoch."""

    def on_train_begin(self, run) -> None:
        pass

    def on_epoch_end(self, run, epoch: int, logs: dict) -> None:
        pass

    def on_train_end(self, run) -> None:
        pass


class _Monitor:
    """Tracks the best value of one logged quantity ('min' or 'max' is better)."""

    def __init__(self, monitor: str, mode: str, min_delta: float = 0.0, owner: str | None = None):
        self.owner = owner or type(self).__name__  # the callback named in errors
        if mode == "auto":
            mode = "max" if "acc" in monitor else "min"
        if mode not in ("min", "max"):
            raise ValueError(f"{self.owner}: mode must be 'min', 'max' or 'auto', got {mode!r}")
        self.monitor, self.mode, self.min_delta = monitor, mode, abs(min_delta)
        self.best = math.inf if mode == "min" else -math.inf

    def improved(self, logs: dict) -> bool:
        if self.monitor not in logs:
            raise KeyError(f"{self.owner}: monitored quantity {self.monitor!r} is not logged; "
                           f"available: {sorted(logs)}")
        value = logs[self.monitor]
        better = value < self.best - self.min_delta if self.mode == "min" else value > self.best + self.min_delta
        if better:
            self.best = value
        return better


class EarlyStopping(Callback, _Monitor):
    """Stop when `monitor` has not improved by more than min_delta for `patience` epochs;
    with restore_best_weights, the model ends with the weights of its best epoch."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        _Monitor.__init__(self, monitor, mode, min_delta)
        self.patience = patience
        self.restore_best_weights = restore_best_weights
        self.wait = 0
        self.stopped_epoch = None
        self.best_weights = None

    def on_epoch_end(self, run, epoch, logs):
        if self.improved(logs):
            self.wait = 0
            if self.restore_best_weights:
                self.best_weights = {k: np.array(v.cpu().data) for k, v in run.model.state_dict().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            run.stop_training = True

    def on_train_end(self, run):
        if self.restore_best_weights and self.best_weights is not None:
            run.model.load_state_dict(self.best_weights)


class Checkpoint(Callback):
    """Save model, optimizer, scheduler, epoch and history to `path` (safetensors, atomic write)
    every `every` epochs, or, with `monitor`, only when the monitored quantity improves."""

    def __init__(self, path, every: int = 1, monitor: str | None = None, mode: str = "auto"):
        if every < 1:
            raise ValueError(f"Checkpoint: every must be at least 1, got {every}")
        self.path = os.fspath(path)
        self.every = every
        self.best = _Monitor(monitor, mode, owner="Checkpoint") if monitor else None

    def on_epoch_end(self, run, epoch, logs):
        if self.best is not None:
            if not self.best.improved(logs):
                return
        elif (epoch + 1) % self.every != 0:
            return
        from .serialization import save
        state = {"epoch": epoch + 1, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                 "history": {"epoch": run.history.epoch, **run.history.history}}
        if run.scheduler is not None:
            state["scheduler"] = run.scheduler.state_dict()
        save(state, self.path)


def load_checkpoint(path, model, optimizer=None, scheduler=None) -> int:
    """Restore what Checkpoint saved; returns the number of epochs done (pass it to fit as
    initial_epoch to continue)."""
    from .serialization import load
    state = load(path)
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError(f"load_checkpoint: {path} was not written by train.Checkpoint "
                         f"(keys {sorted(state) if isinstance(state, dict) else type(state).__name__})")
    model.load_state_dict(state["model"])
    if optimizer is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and "scheduler" in state:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])


class FitRun:
    """What callbacks see of a running `fit`."""

    def __init__(self, model, optimizer, scheduler, history):
        self.model, self.optimizer, self.scheduler, self.history = model, optimizer, scheduler, history
        self.stop_training = False


# ---- the loop ------------------------------------------------------------------------------------
def _split(batch, where: str, device=None):
    """(inputs, target) of a batch; moved to `device` when the model lives on a CUDA device."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(f"{where}: a batch must be a tuple (input, ..., target), got {type(batch).__name__}")
    if device is not None:
        batch = [value.to(device) if isinstance(value, Tensor) else value for value in batch]
    return tuple(batch[:-1]), batch[-1]


def _model_device(model):
    """The CUDA device of the model's parameters, or None for a model on the CPU."""
    for param in model.parameters():
        return param.device if param.is_cuda else None
    return None


def _batch_size(target) -> int:
    array = _array(target)
    return int(array.shape[0]) if array.ndim else 1


def evaluate(model, loss_fn, loader, metrics=()) -> dict:
    """Mean loss and metrics over a loader, in eval mode and without recording a graph."""
    return _evaluate(model, loss_fn, loader, _metric_functions(metrics))


def _evaluate(model, loss_fn, loader, functions: dict) -> dict:
    was_training = model.training
    model.eval()
    totals, count = defaultdict(float), 0
    device = _model_device(model)
    try:
        with no_grad():
            for batch in loader:
                inputs, target = _split(batch, "evaluate", device)
                outputs = model(*inputs)
                n = _batch_size(target)
                totals["loss"] += float(loss_fn(outputs, target).item()) * n
                for name, function in functions.items():
                    totals[name] += float(function(outputs, target)) * n
                count += n
    finally:
        model.train(was_training)
    if count == 0:
        raise ValueError("evaluate: the loader gave no batches")
    return {name: total / count for name, total in totals.items()}


def fit(model, loss_fn, optimizer, train_loader, val_loader=None, epochs: int = 1, metrics=(),
        scheduler=None, clip_grad_norm: float | None = None, callbacks=(), checkpoint=None, *,
        initial_epoch: int = 0, progress: bool = True) -> History:
    """Train `model` for epochs `initial_epoch .. epochs-1` and return the History.

    metrics: names ("accuracy") or functions (outputs, targets) -> float, averaged over examples
    and logged for training and validation ("accuracy", "val_accuracy"). scheduler: stepped once
    per epoch (ReduceLROnPlateau with val_loss, or loss without validation). clip_grad_norm:
    the maximal global gradient norm. checkpoint: a path (saved every epoch) or a Checkpoint.
    progress: a tqdm bar per epoch with the running loss, metrics and examples/s.
    """
    functions = _metric_functions(metrics)
    callbacks = list(callbacks)
    if checkpoint is not None:
        callbacks.append(checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint))
    history = History()
    run = FitRun(model, optimizer, scheduler, history)
    for callback in callbacks:
        callback.on_train_begin(run)
    try:
        for epoch in range(initial_epoch, epochs):
            logs = _train_epoch(model, loss_fn, optimizer, train_loader, functions, clip_grad_norm,
                                progress, f"epoch {epoch + 1}/{epochs}")
            if val_loader is not None:
                validation = _evaluate(model, loss_fn, val_loader, functions)
                logs.update({f"val_{name}": value for name, value in validation.items()})
            logs["lr"] = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                if isinstance(scheduler, ReduceLROnPlateau):
                    scheduler.step(logs.get("val_loss", logs["loss"]))
                else:
                    scheduler.step()
            history.append(epoch, logs)
            if progress:
                _print_epoch(epoch, epochs, logs)
            for callback in callbacks:
                callback.on_epoch_end(run, epoch, logs)
            if run.stop_training:
                break
    finally:
        for callback in callbacks:
            callback.on_train_end(run)
    return history


def _train_epoch(model, loss_fn, optimizer, loader, functions, clip_grad_norm, progress, description) -> dict:
    from tqdm.auto import tqdm

    model.train()
    totals, count = defaultdict(float), 0
    device = _model_device(model)
    start = time.perf_counter()
    total_batches = len(loader) if hasattr(loader, "__len__") else None
    with tqdm(loader, total=total_batches, desc=description, unit="batch", disable=not progress,
              leave=False, dynamic_ncols=True) as bar:
        for batch in bar:
            inputs, target = _split(batch, "fit", device)
            optimizer.zero_grad()
            outputs = model(*inputs)
            loss = loss_fn(outputs, target)
            loss.backward()
            if clip_grad_norm is not None:
                clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], clip_grad_norm)
            optimizer.step()

            n = _batch_size(target)
            value = float(loss.item())
            if not math.isfinite(value):
                raise FloatingPointError(f"fit: the loss became {value} ({description}, after {count} examples); "
                                         f"try a lower learning rate or gradient clipping")
            totals["loss"] += value * n
            for name, function in functions.items():
                totals[name] += float(function(outputs, target)) * n
            count += n
            if progress:
                elapsed = time.perf_counter() - start
                bar.set_postfix({**{k: f"{v / count:.4g}" for k, v in totals.items()},
                                 "ex/s": f"{count / max(elapsed, 1e-9):.0f}"}, refresh=False)
    if count == 0:
        raise ValueError("fit: the training loader gave no batches")
    elapsed = time.perf_counter() - start
    logs = {name: total / count for name, total in totals.items()}
    logs["time"] = elapsed
    logs["examples_per_s"] = count / max(elapsed, 1e-9)
    return logs


def _print_epoch(epoch: int, epochs: int, logs: dict) -> None:
    from tqdm.auto import tqdm
    shown = " ".join(f"{key}={value:.4g}" for key, value in logs.items() if key != "time")
    tqdm.write(f"epoch {epoch + 1}/{epochs}: {shown}", file=sys.stderr)


