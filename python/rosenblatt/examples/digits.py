"""Handwritten digits: an MLP and a LeNet-style CNN on scikit-learn's 8x8 digits.

The 1,797 images bundled with scikit-learn (the `examples` extra), pixel values scaled to
[0, 1], split once into 1,347 training and 450 test images (stratified, random_state=0).
The test set is shown after every epoch for monitoring only; nothing is selected on it.

    python -m rosenblatt.examples.digits --model mlp      # >= 97% test accuracy
    python -m rosenblatt.examples.digits --model cnn      # >= 98.5%
    python -m rosenblatt.examples.digits --model cnn --device cuda   # on a GPU (shifts made on the host)
    python -m rosenblatt.examples.digits --model mlp --activation sigmoid --optimizer sgd --dropout 0.2 --weight-decay 1e-4
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.data import DataLoader, TensorDataset
from rosenblatt.random import default_generator
from rosenblatt.train import evaluate, fit

from ._common import add_run_options, log, print_result, set_threads

ACTIVATIONS = {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU}
MAXOUT_PIECES = 2
DEFAULT_LR = {"sgd": 0.1, "momentum": 0.02, "adam": 2e-3}


def load_digits_split(test_size: float = 0.25, seed: int = 0):
    """(x_train, y_train, x_test, y_test): images as float32 (N, 1, 8, 8) in [0, 1], labels int64."""
    try:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
    except ImportError:
        raise SystemExit("digits: this example needs scikit-learn: pip install 'rosenblatt[examples]'") from None
    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)[:, None, :, :]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(images, labels, test_size=test_size, random_state=seed,
                                                        stratify=labels)
    return x_train, y_train, x_test, y_test


class ChannelMaxout(nn.Module):
    """Maxout over groups of `pieces` consecutive channels: (N, C*pieces, H, W) -> (N, C, H, W)."""

    def __init__(self, pieces: int):
        super().__init__()
        self.pieces = pieces

    def forward(self, x):
        n, c, h, w = x.shape
        return x.reshape(n, c // self.pieces, self.pieces, h, w).amax(dim=2)


class RandomShift(nn.Module):
    """Data augmentation for training: move each image by up to `pixels` in x and y (zero fill),
    with offsets drawn per image from rosenblatt's generator. The identity in eval mode."""

    def __init__(self, pixels: int = 1):
        super().__init__()
        self.pixels = pixels

    def forward(self, x):
        if not self.training or self.pixels == 0:
            return x
        n, c, h, w = x.shape
        p = self.pixels
        padded = np.pad(x.cpu().data, ((0, 0), (0, 0), (p, p), (p, p)))  # augmented on the host
        dy, dx = default_generator().integers(0, 2 * p + 1, size=(2, n))
        rows = (dy[:, None] + np.arange(h))[:, None, :, None]       # (N, 1, H, 1)
        cols = (dx[:, None] + np.arange(w))[:, None, None, :]       # (N, 1, 1, W)
        batch = np.arange(n)[:, None, None, None]
        channel = np.arange(c)[None, :, None, None]
        return rosenblatt.tensor(padded[batch, channel, rows, cols], device=x.device)


def _dense(n_in: int, n_out: int, activation: str) -> list:
    if activation == "maxout":
        return [nn.Maxout(n_in, n_out, MAXOUT_PIECES)]
    return [nn.Linear(n_in, n_out), ACTIVATIONS[activation]()]


def _conv(c_in: int, c_out: int, activation: str, batch_norm: bool) -> list:
    channels = c_out * MAXOUT_PIECES if activation == "maxout" else c_out
    layers = [nn.Conv2d(c_in, channels, 3, padding=1)]
    if batch_norm:
        layers.append(nn.BatchNorm2d(channels))
    layers.append(ChannelMaxout(MAXOUT_PIECES) if activation == "maxout" else ACTIVATIONS[activation]())
    return layers


def build_model(kind: str, activation: str = "relu", dropout: float = 0.0, hidden: int = 128,
                shift: int = 0, batch_norm: bool = True) -> nn.Module:
    """mlp: 64 -> hidden -> hidden -> 10. cnn (LeNet-style): [random shift] -> conv 3x3 (32) [-> batch
    norm] -> pool 2 -> conv 3x3 (64) [-> batch norm] -> pool 2 -> fully connected 256 -> hidden -> 10,
    on 1x8x8 images. Batch normalisation makes the CNN's accuracy steady from seed to seed."""
    if activation not in ACTIVATIONS and activation != "maxout":
        raise ValueError(f"digits: unknown activation {activation!r}")
    drop = [nn.Dropout(dropout)] if dropout > 0 else []
    if kind == "mlp":
        layers = [nn.Flatten(), *_dense(64, hidden, activation), *drop, *_dense(hidden, hidden, activation), *drop,
                  nn.Linear(hidden, 10)]
    elif kind == "cnn":
        layers = [*([RandomShift(shift)] if shift else []),
                  *_conv(1, 32, activation, batch_norm), nn.MaxPool2d(2),     # 32 x 4 x 4
                  *_conv(32, 64, activation, batch_norm), nn.MaxPool2d(2),    # 64 x 2 x 2
                  nn.Flatten(), *drop, *_dense(256, hidden, activation), *drop, nn.Linear(hidden, 10)]
    else:
        raise ValueError(f"digits: unknown model {kind!r} (mlp or cnn)")
    return nn.Sequential(*layers)


def build_optimizer(name: str, parameters, lr: float | None, weight_decay: float):
    lr = DEFAULT_LR[name] if lr is None else lr
    if name == "sgd":
        return optim.SGD(parameters, lr=lr, weight_decay=weight_decay)
    if name == "momentum":
        return optim.SGD(parameters, lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)
    if name == "adam":
        return optim.Adam(parameters, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"digits: unknown optimizer {name!r}")


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.digits", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--activation", choices=[*ACTIVATIONS, "maxout"], default="relu")
    parser.add_argument("--optimizer", choices=list(DEFAULT_LR), default="adam")
    parser.add_argument("--lr", type=float, default=None, help="default: sgd 0.1, momentum 0.02, adam 2e-3")
    parser.add_argument("--dropout", type=float, default=0.0, help="dropout probability p after each hidden layer")
    parser.add_argument("--weight-decay", type=float, default=0.0, help="L2 penalty λ (the optimizer's weight_decay)")
    parser.add_argument("--epochs", type=int, default=None, help="default: 40 (mlp), 30 (cnn)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--shift", type=int, default=None, help="augment by random shifts of up to this many "
                        "pixels (default: 1 for cnn, 0 for mlp)")
    parser.add_argument("--no-batch-norm", action="store_true", help="cnn without batch normalisation")
    parser.add_argument("--plot", metavar="PNG", help="write the training curves here (needs matplotlib)")
    parser.add_argument("--checkpoint", metavar="PATH", help="save model and optimizer here after every epoch")
    parser.add_argument("--quick", action="store_true", help="a few epochs on 400 training images (for tests)")
    parser.add_argument("--no-progress", action="store_true")
    add_run_options(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    rosenblatt.manual_seed(args.seed)

    x_train, y_train, x_test, y_test = load_digits_split()
    epochs = args.epochs or (40 if args.model == "mlp" else 30)
    if args.quick:
        x_train, y_train, epochs = x_train[:400], y_train[:400], args.epochs or 3
    train_loader = DataLoader(TensorDataset(x_train, y_train), batch_size=args.batch_size, shuffle=True,
                              generator=args.seed)
    test_loader = DataLoader(TensorDataset(x_test, y_test), batch_size=256)

    shift = args.shift if args.shift is not None else (1 if args.model == "cnn" else 0)
    model = build_model(args.model, args.activation, args.dropout, args.hidden, shift, not args.no_batch_norm)
    model.to(args.device)  # fit and evaluate move each batch to the model's device
    optimizer = build_optimizer(args.optimizer, model.parameters(), args.lr, args.weight_decay)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    log(f"digits: {len(x_train)} training / {len(x_test)} test images; {args.model} with {args.activation}, "
        f"{args.optimizer}, dropout {args.dropout}, weight decay {args.weight_decay}, {epochs} epochs")

    initial_loss = evaluate(model, loss_fn, train_loader)["loss"]
    start = time.perf_counter()
    history = fit(model, loss_fn, optimizer, train_loader, test_loader, epochs=epochs, metrics=["accuracy"],
                  scheduler=scheduler, checkpoint=args.checkpoint, progress=not args.no_progress)
    train_time = time.perf_counter() - start
    test = evaluate(model, loss_fn, test_loader, ["accuracy"])
    if args.plot:
        history.plot(args.plot)

    result = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "train_accuracy": history["accuracy"][-1],
              "initial_loss": initial_loss, "final_loss": history["loss"][-1], "epochs": epochs,
              "train_time_s": round(train_time, 3), "examples_per_s": round(epochs * len(x_train) / train_time, 1),
              "model": args.model, "activation": args.activation, "optimizer": args.optimizer,
              "dropout": args.dropout, "weight_decay": args.weight_decay, "shift": shift,
              "batch_norm": args.model == "cnn" and not args.no_batch_norm, "threads": rosenblatt.get_num_threads(),
              "device": str(args.device)}
    print_result(result)
    return result


if __name__ == "__main__":
    main()
