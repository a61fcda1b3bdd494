"""Rosenblatt's perceptron, its convergence theorem, and its limit.

1. Linearly separable 2-D data: points in a disc of radius M, labelled by the side of a line
   through the origin, keeping only points at least δ from the line (margin δ). Rosenblatt's
   rule, w <- w + η t φ(x) whenever t f(x) <= 0 with f(x) = w·φ(x), converges after at most
   (M/δ)^2 updates (Novikoff, 1962), whatever η and the order of the examples. We count the
   updates and check the bound.
2. XOR is not linearly separable: the same rule (with a bias feature) never finishes an epoch
   without a mistake.
3. A two-layer perceptron trained by backpropagation solves XOR.

    python -m rosenblatt.examples.perceptron [--margin 0.1] [--radius 1.0] [--points 500] [--device cuda]
"""
from __future__ import annotations

import argparse

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.data import DataLoader, TensorDataset
from rosenblatt.random import default_generator
from rosenblatt.train import evaluate, fit

from ._common import add_run_options, log, print_result, set_threads


def separable_data(count: int, margin: float, radius: float, rng: np.random.Generator):
    """`count` points uniform in the disc of radius `radius` whose distance to the line through
    the origin with a random unit normal u is at least `margin`; label t = sign(u·x)."""
    if not 0 < margin < radius:
        raise ValueError(f"perceptron: need 0 < margin < radius, got margin={margin}, radius={radius}")
    angle = rng.uniform(0, 2 * np.pi)
    normal = np.array([np.cos(angle), np.sin(angle)])
    points = np.empty((0, 2))
    while len(points) < count:  # rejection sampling, a batch at a time
        r = radius * np.sqrt(rng.uniform(size=4 * count))
        theta = rng.uniform(0, 2 * np.pi, size=4 * count)
        candidates = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
        points = np.concatenate([points, candidates[np.abs(candidates @ normal) >= margin]])
    points = points[:count]
    return points, np.sign(points @ normal)


def train_perceptron(features: np.ndarray, targets: np.ndarray, lr: float = 1.0, max_epochs: int = 1000):
    """Rosenblatt's rule, cycling through the examples in order from w = 0.

    The rule as often written, an update when t f(x) < 0, never fires from w = 0 (every f(x) is
    0), so a point on the boundary counts as a mistake: t f(x) <= 0. Between two mistakes w does
    not change, so one vectorised scan of the margins finds the next mistake of the cycle.
    Returns (w, updates, converged)."""
    weights = np.zeros(features.shape[1])
    updates, count = 0, len(features)
    for _ in range(max_epochs):
        position, mistakes_this_epoch = 0, 0
        while position < count:
            margins = targets[position:] * (features[position:] @ weights)
            wrong = np.flatnonzero(margins <= 0)
            if wrong.size == 0:
                break
            i = position + wrong[0]
            weights += lr * targets[i] * features[i]
            updates += 1
            mistakes_this_epoch += 1
            position = i + 1
        if mistakes_this_epoch == 0:
            return weights, updates, True
    return weights, updates, False


XOR_INPUTS = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
XOR_LABELS = np.array([0, 1, 1, 0])


def mlp_on_xor(hidden: int, epochs: int, lr: float, device="cpu"):
    """A 2-hidden-unit-or-more perceptron with tanh, trained by backpropagation with Adam on `device`
    (fit and evaluate move the batches to it)."""
    model = nn.Sequential(nn.Linear(2, hidden), nn.Tanh(), nn.Linear(hidden, 2)).to(device)
    loader = DataLoader(TensorDataset(rosenblatt.tensor(XOR_INPUTS), rosenblatt.tensor(XOR_LABELS)), batch_size=4)
    loss_fn = nn.CrossEntropyLoss()
    initial = evaluate(model, loss_fn, loader, ["accuracy"])
    history = fit(model, loss_fn, optim.Adam(model.parameters(), lr=lr), loader, epochs=epochs,
                  metrics=["accuracy"], progress=False)
    final = evaluate(model, loss_fn, loader, ["accuracy"])
    return initial, final, history


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.perceptron", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--margin", type=float, default=0.1, help="margin δ of the separable data")
    parser.add_argument("--radius", type=float, default=1.0, help="radius M of the disc holding the data")
    parser.add_argument("--points", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1.0, help="η of the perceptron rule (the bound does not depend on it)")
    parser.add_argument("--xor-epochs", type=int, default=100, help="epochs the perceptron gets on XOR")
    parser.add_argument("--hidden", type=int, default=8, help="hidden units of the MLP on XOR")
    parser.add_argument("--mlp-epochs", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="fewer points and epochs (for tests)")
    add_run_options(parser)  # the MLP's threads and device; Rosenblatt's rule runs in NumPy
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.quick:
        args.points, args.xor_epochs, args.mlp_epochs = 100, 20, 200
    rosenblatt.manual_seed(args.seed)

    points, labels = separable_data(args.points, args.margin, args.radius, default_generator())
    _, updates, converged = train_perceptron(points, labels, lr=args.lr)
    # Novikoff's bound is (M/δ)^2. (It is sometimes misquoted as M/δ^2, which differs unless M = 1.)
    bound = (args.radius / args.margin) ** 2
    log(f"separable data: {args.points} points, margin δ={args.margin}, radius M={args.radius}: "
        f"{updates} updates (bound (M/δ)^2 = {bound:.0f})")
    if not converged or updates > bound:
        raise RuntimeError(f"perceptron: {updates} updates exceed Novikoff's bound {bound} (converged={converged})")

    # XOR with a bias feature φ(x) = (x1, x2, 1) and targets ±1: no line separates it.
    xor_features = np.concatenate([XOR_INPUTS, np.ones((4, 1), np.float32)], axis=1).astype(np.float64)
    xor_weights, xor_updates, xor_converged = train_perceptron(xor_features, 2.0 * XOR_LABELS - 1, max_epochs=args.xor_epochs)
    xor_errors = int(np.sum((2.0 * XOR_LABELS - 1) * (xor_features @ xor_weights) <= 0))
    log(f"XOR: perceptron {'converged' if xor_converged else 'did not converge'} after {args.xor_epochs} epochs "
        f"({xor_updates} updates, {xor_errors} of 4 points still misclassified)")

    initial, final, _ = mlp_on_xor(args.hidden, args.mlp_epochs, lr=0.05, device=args.device)
    log(f"XOR: MLP 2-{args.hidden}-2 with tanh: loss {initial['loss']:.3f} -> {final['loss']:.4f}, "
        f"accuracy {final['accuracy']:.2f}")
    result = {"updates": updates, "bound": bound, "bound_holds": updates <= bound, "margin": args.margin,
              "radius": args.radius, "points": args.points, "xor_converged": xor_converged,
              "xor_updates": xor_updates, "xor_errors": xor_errors, "mlp_xor_accuracy": final["accuracy"],
              "mlp_xor_initial_loss": initial["loss"], "mlp_xor_loss": final["loss"],
              "device": str(args.device)}
    print_result(result)
    return result


if __name__ == "__main__":
    main()
