"""The fit loop: history, validation, metrics, schedulers, clipping, callbacks, checkpoints, plots.

The model is a linear regression written with Parameters and the core ops, so these tests do
not depend on the layer library."""
import math

import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.data import DataLoader, TensorDataset
from rosenblatt.tensor import Tensor
from rosenblatt.train import (Callback, Checkpoint, EarlyStopping, History, accuracy, evaluate, fit,
                              load_checkpoint)


class LinearRegression(nn.Module):
    def __init__(self, n_in=3, n_out=2):
        super().__init__()
        self.weight = nn.Parameter(np.zeros((n_in, n_out), np.float32))
        self.bias = nn.Parameter(np.zeros(n_out, np.float32))

    def forward(self, x):
        return x @ self.weight + self.bias


def mse(outputs, targets):
    difference = outputs + targets * -1.0
    return (difference * difference).sum() * (1.0 / difference.data.size)


def _loaders(n=64, batch_size=16, seed=0, noise=0.01):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3)).astype(np.float32)
    true_weight = np.array([[1, -2], [0.5, 0], [3, 1]], np.float32)
    y = (x @ true_weight + 0.5 + noise * rng.standard_normal((n, 2))).astype(np.float32)
    train = DataLoader(TensorDataset(Tensor(x[: n * 3 // 4]), Tensor(y[: n * 3 // 4])), batch_size=batch_size)
    val = DataLoader(TensorDataset(Tensor(x[n * 3 // 4:]), Tensor(y[n * 3 // 4:])), batch_size=batch_size)
    return train, val


def test_fit_learns_and_records_history():
    model = LinearRegression()
    train, val = _loaders()
    history = fit(model, mse, optim.SGD(model.parameters(), lr=0.2), train, val, epochs=12, progress=False)
    assert isinstance(history, History) and len(history) == 12 and history.epoch == list(range(12))
    for key in ("loss", "val_loss", "lr", "time", "examples_per_s"):
        assert len(history[key]) == 12, key
    assert history["loss"][-1] < 0.01 * history["loss"][0]
    assert history["val_loss"][-1] < 0.01
    assert evaluate(model, mse, val)["loss"] == pytest.approx(history["val_loss"][-1])


def test_metrics_by_name_and_function():
    def mean_abs_error(outputs, targets):
        return float(np.mean(np.abs(outputs.data - targets.data)))

    model = LinearRegression()
    train, val = _loaders()
    history = fit(model, mse, optim.Adam(model.parameters(), lr=0.05), train, val, epochs=2,
                  metrics=[mean_abs_error], progress=False)
    assert len(history["mean_abs_error"]) == 2 and len(history["val_mean_abs_error"]) == 2
    with pytest.raises(ValueError, match="unknown metric"):
        fit(model, mse, optim.SGD(model.parameters(), lr=0.1), train, metrics=["f1"], progress=False)


def test_accuracy():
    logits = Tensor(np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]], np.float32))
    assert accuracy(logits, Tensor(np.array([0, 2, 0]))) == pytest.approx(2 / 3)
    assert accuracy(logits, Tensor(np.eye(3, dtype=np.float32)[[0, 2, 1]])) == 1.0
    with pytest.raises(ValueError, match="accuracy"):
        accuracy(logits, Tensor(np.zeros(4)))


def test_scheduler_steps_once_per_epoch():
    model = LinearRegression()
    train, val = _loaders()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, mse, optimizer, train, val, epochs=4, progress=False,
                  scheduler=optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5))
    assert history["lr"] == pytest.approx([0.1, 0.05, 0.025, 0.0125])


def test_reduce_on_plateau_watches_the_validation_loss():
    model = LinearRegression()
    train, val = _loaders()
    optimizer = optim.SGD(model.parameters(), lr=0.0)  # nothing changes: a plateau from the start
    plateau = optim.lr_scheduler.ReduceLROnPlateau(optimizer, patience=1)
    optimizer.param_groups[0]["lr"] = 0.0
    fit(model, mse, optimizer, train, val, epochs=3, scheduler=plateau, progress=False)
    assert plateau.num_bad_epochs == 0 and plateau.best == pytest.approx(evaluate(model, mse, val)["loss"])
    assert plateau.last_epoch == 3


class RecordingSGD(optim.SGD):
    """Records the global gradient norm that reaches each step."""

    norms = []

    def step(self, closure=None):
        grads = [p.grad.data for g in self.param_groups for p in g["params"] if p.grad is not None]
        self.norms.append(math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads)))
        return super().step(closure)


def test_gradient_clipping_is_applied():
    model = LinearRegression()
    model.bias.data[...] = 100  # large errors, large gradients
    train, _ = _loaders()
    RecordingSGD.norms = []
    fit(model, mse, RecordingSGD(model.parameters(), lr=0.01), train, epochs=1, clip_grad_norm=0.5, progress=False)
    assert len(RecordingSGD.norms) == len(train) and max(RecordingSGD.norms) <= 0.5 * (1 + 1e-5)


class ScriptedScore(Callback):
    """Logs a scripted 'score' per epoch and remembers the weights of each epoch."""

    def __init__(self, scores):
        self.scores, self.weights = scores, []

    def on_epoch_end(self, run, epoch, logs):
        logs["score"] = self.scores[epoch]
        self.weights.append(np.array(run.model.weight.data))


def test_early_stopping_stops_and_restores_the_best_weights():
    model = LinearRegression()
    train, val = _loaders()
    scripted = ScriptedScore([0.1, 0.5, 0.4, 0.45, 0.3, 0.9, 0.9])
    stopper = EarlyStopping(monitor="score", mode="max", patience=3, restore_best_weights=True)
    history = fit(model, mse, optim.SGD(model.parameters(), lr=0.05), train, val, epochs=7,
                  callbacks=[scripted, stopper], progress=False)
    assert len(history) == 5 and stopper.stopped_epoch == 4  # best at epoch 1, then 3 without improvement
    assert np.array_equal(model.weight.data, scripted.weights[1])


def test_early_stopping_on_val_loss_with_patience():
    model = LinearRegression()
    train, val = _loaders()
    history = fit(model, mse, optim.SGD(model.parameters(), lr=0.0), train, val, epochs=10,
                  callbacks=[EarlyStopping(patience=2)], progress=False)
    assert len(history) == 3  # epoch 0 sets the best; epochs 1 and 2 do not improve on it
    with pytest.raises(KeyError, match="not logged"):
        fit(model, mse, optim.SGD(model.parameters(), lr=0.1), train, epochs=1,
            callbacks=[EarlyStopping(monitor="val_loss")], progress=False)


def test_checkpoint_and_resume_continue_exactly(tmp_path):
    train, val = _loaders()

    def make():
        model = LinearRegression()
        optimizer = optim.Adam(model.parameters(), lr=0.05)
        return model, optimizer, optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    model, optimizer, scheduler = make()
    straight = fit(model, mse, optimizer, train, val, epochs=4, scheduler=scheduler, progress=False)

    first, optimizer_1, scheduler_1 = make()
    path = tmp_path / "run.safetensors"
    fit(first, mse, optimizer_1, train, val, epochs=2, scheduler=scheduler_1, checkpoint=str(path), progress=False)
    second, optimizer_2, scheduler_2 = make()
    done = load_checkpoint(path, second, optimizer_2, scheduler_2)
    assert done == 2
    resumed = fit(second, mse, optimizer_2, train, val, epochs=4, scheduler=scheduler_2,
                  initial_epoch=done, progress=False)
    assert resumed.epoch == [2, 3]
    assert np.array_equal(second.weight.data, model.weight.data)
    assert resumed["loss"] == straight["loss"][2:]
    saved = rosenblatt.load(path)
    assert saved["history"]["epoch"] == [0, 1] and len(saved["history"]["val_loss"]) == 2


def test_checkpoint_keeps_the_best(tmp_path):
    path = tmp_path / "best.safetensors"
    model = LinearRegression()
    train, val = _loaders()
    scripted = ScriptedScore([0.3, 0.1, 0.2, 0.05])
    fit(model, mse, optim.SGD(model.parameters(), lr=0.05), train, val, epochs=4, progress=False,
        callbacks=[scripted, Checkpoint(path, monitor="score", mode="min")])
    saved = rosenblatt.load(path)
    assert saved["epoch"] == 4
    assert np.array_equal(saved["model"]["weight"].data, scripted.weights[3])
    rosenblatt.save({"a": 1}, tmp_path / "other.safetensors")
    with pytest.raises(ValueError, match="Checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors", model)


def test_history_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    model = LinearRegression()
    train, val = _loaders()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    history = fit(model, mse, optimizer, train, val, epochs=3, metrics=[lambda o, t: 0.5], progress=False,
                  scheduler=optim.lr_scheduler.StepLR(optimizer, 1))
    history.plot(tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="nothing"):
        History().plot(tmp_path / "empty.png")


def test_progress_bar_and_epoch_lines(capsys):
    model = LinearRegression()
    train, val = _loaders()
    fit(model, mse, optim.SGD(model.parameters(), lr=0.1), train, val, epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "epoch 2/2: loss=" in err and "val_loss=" in err and "examples_per_s=" in err


@pytest.mark.filterwarnings("ignore:overflow")
def test_bad_batches_and_divergence_raise():
    model = LinearRegression()
    x = Tensor(np.ones((4, 3), np.float32))
    with pytest.raises(TypeError, match="batch"):
        fit(model, mse, optim.SGD(model.parameters(), lr=0.1), [x], progress=False)
    train, _ = _loaders()
    with pytest.raises(FloatingPointError, match="lower learning rate"):
        fit(model, mse, optim.SGD(model.parameters(), lr=1e6), train, epochs=20, progress=False)


def test_checkpoint_monitor_errors_name_the_checkpoint(tmp_path):
    # They were labelled "_Monitor:", the helper class inside.
    with pytest.raises(ValueError, match="^Checkpoint: mode must be"):
        Checkpoint(tmp_path / "c.safetensors", monitor="loss", mode="lowest")
