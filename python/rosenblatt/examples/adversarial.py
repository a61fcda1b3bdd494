"""Adversarial examples and adversarial training (Goodfellow, Shlens & Szegedy, 2015) on the 8x8 digits.

A classifier (digits.build_model: the MLP, or the CNN) is trained on the clean training digits. Its
test images are then attacked, white-box, within an L-infinity ball of radius eps around each image
(pixels stay in [0, 1]):
- FGSM, the fast gradient sign method: x' = clip(x + eps * sign(grad_x loss(x, y)), 0, 1);
- PGD (Madry et al., 2018): a uniformly random start in the ball, then `--pgd-steps` steps of
  x <- clip(project(x + step * sign(grad_x loss)), 0, 1) with step = 2.5 eps / steps;
- as a baseline, random signs: clip(x + eps * s) with s uniform in {-1, +1}: how much an
  unaimed perturbation of the same size hurts.
A second model of the same architecture and initial weights is then trained adversarially, with
loss alpha * loss(x, y) + (1 - alpha) * loss(x', y), x' made by FGSM (or PGD: --train-attack) at each
step against the current weights, and attacked in the same way.

    python -m rosenblatt.examples.adversarial                   # MLP, eps 0.1, FGSM training, alpha 0.5
    python -m rosenblatt.examples.adversarial --model cnn       # the CNN (batch norm, no random shifts)
    python -m rosenblatt.examples.adversarial --device cuda     # the models on a GPU (the attacks' arithmetic in NumPy)
    python -m rosenblatt.examples.adversarial --train-attack pgd --eps-sweep 0.05,0.1

Every attack uses the true labels and the model in eval mode; the loss attacked is the summed
cross-entropy, so each image's input gradient is that of its own loss.
The JSON has clean / FGSM / PGD / random-sign test accuracies at --eps for both models
(adversarially trained: "adv_" prefix), the same at every eps of --eps-sweep, and the transfer
accuracy: the adversarially trained model on FGSM images crafted against the clean one. eps is on
the [0, 1] pixel scale (0.1 = 1.6 of the digits' 16 grey levels). Nothing is chosen on the test set.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.nn import functional as F
from rosenblatt.random import default_generator

from ._common import (add_run_options, between, check_loss, log, module_device, non_negative, positive, print_result,
                      set_threads)

ATTACKS = ("fgsm", "pgd")


# ---- gradients with respect to the input ------------------------------------------------------------
def input_gradient(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> tuple:
    """(d loss / d images, per-image losses) for the summed cross-entropy of `model` at `images`.

    The images become a Tensor with requires_grad=True (on the model's device) and the gradient is
    read from its .grad, back on the host; the model's parameters are frozen meanwhile, so no weight
    gradient is computed or accumulated."""
    device = module_device(model)
    x = rosenblatt.tensor(images, requires_grad=True, device=device)
    previous = [p.requires_grad for p in model.parameters()]
    model.requires_grad_(False)
    try:
        losses = F.cross_entropy(model(x), rosenblatt.tensor(labels, device=device), reduction="none")
        rosenblatt.sum(losses).backward()
    finally:
        for p, flag in zip(model.parameters(), previous):
            p.requires_grad_(flag)
    return x.grad.cpu().numpy(), losses.detach().cpu().numpy()


def fgsm(model: nn.Module, images: np.ndarray, labels: np.ndarray, eps: float) -> np.ndarray:
    """clip(x + eps * sign(grad_x loss), 0, 1)."""
    grad, _ = input_gradient(model, images, labels)
    return np.clip(images + eps * np.sign(grad), 0.0, 1.0).astype(images.dtype)


def pgd(model: nn.Module, images: np.ndarray, labels: np.ndarray, eps: float, steps: int = 10,
        step_size: float | None = None, random_start: bool = True) -> np.ndarray:
    """Projected gradient ascent on the loss in the L-infinity ball of radius eps around images
    (intersected with [0, 1]); the start is uniform in the ball (from rosenblatt's generator)."""
    step_size = 2.5 * eps / steps if step_size is None else step_size
    x = images
    if random_start:
        x = np.clip(images + default_generator().uniform(-eps, eps, images.shape), 0.0, 1.0).astype(images.dtype)
    for _ in range(steps):
        grad, _ = input_gradient(model, x, labels)
        x = np.clip(x + step_size * np.sign(grad), images - eps, images + eps)
        x = np.clip(x, 0.0, 1.0).astype(images.dtype)
    return x


def random_sign(images: np.ndarray, eps: float) -> np.ndarray:
    signs = default_generator().choice(np.array([-1.0, 1.0], dtype=images.dtype), size=images.shape)
    return np.clip(images + eps * signs, 0.0, 1.0).astype(images.dtype)


def attack(model: nn.Module, images: np.ndarray, labels: np.ndarray, kind: str, eps: float,
           pgd_steps: int = 10) -> np.ndarray:
    """Adversarial images of `kind` (fgsm, pgd or random) made with the model in eval mode."""
    was_training = model.training
    model.eval()
    try:
        if kind == "fgsm":
            return fgsm(model, images, labels, eps)
        if kind == "pgd":
            return pgd(model, images, labels, eps, pgd_steps)
        if kind == "random":
            return random_sign(images, eps)
        raise ValueError(f"adversarial: unknown attack {kind!r} (fgsm, pgd or random)")
    finally:
        model.train(was_training)


@rosenblatt.no_grad()
def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    was_training = model.training
    model.eval()
    try:
        scores = model(rosenblatt.tensor(images, device=module_device(model))).cpu().numpy()
        return float((scores.argmax(axis=1) == labels).mean())
    finally:
        model.train(was_training)


def robustness(model: nn.Module, images: np.ndarray, labels: np.ndarray, eps: float, pgd_steps: int) -> dict:
    """Test accuracy, clean and under each attack at radius eps."""
    return {"clean": accuracy(model, images, labels),
            "fgsm": accuracy(model, attack(model, images, labels, "fgsm", eps), labels),
            "pgd": accuracy(model, attack(model, images, labels, "pgd", eps, pgd_steps), labels),
            "random": accuracy(model, attack(model, images, labels, "random", eps), labels)}


# ---- training ----------------------------------------------------------------------------------------
def train(model: nn.Module, x_train: np.ndarray, y_train: np.ndarray, epochs: int, batch_size: int, lr: float,
          alpha: float = 1.0, eps: float = 0.0, train_attack: str = "fgsm", pgd_steps: int = 10) -> list:
    """Adam with cosine annealing; loss alpha * clean + (1 - alpha) * adversarial (alpha = 1: clean
    training, no adversarial examples made). Returns the mean training loss of each epoch. The batches
    (and adversarial images, made on the host) go to the model's device."""
    device = module_device(model)
    optimizer = optim.Adam(model.parameters(), lr=lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    epoch_losses = []
    for _ in range(epochs):
        model.train()
        order = default_generator().permutation(len(x_train))
        total = 0.0
        for start in range(0, len(order), batch_size):
            images, labels = x_train[order[start:start + batch_size]], y_train[order[start:start + batch_size]]
            targets = rosenblatt.tensor(labels, device=device)
            loss = F.cross_entropy(model(rosenblatt.tensor(images, device=device)), targets)
            if alpha < 1.0:
                adversarial = attack(model, images, labels, train_attack, eps, pgd_steps)
                adversarial = rosenblatt.tensor(adversarial, device=device)
                loss = alpha * loss + (1.0 - alpha) * F.cross_entropy(model(adversarial), targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += check_loss(loss.item(), "adversarial", f"epoch {len(epoch_losses) + 1}") * len(images)
        scheduler.step()
        epoch_losses.append(total / len(x_train))
    return epoch_losses


RADIUS = non_negative(float)  # an attack radius: NaN or infinite ones made NaN images


def _parse_eps_list(text: str) -> list:
    return [RADIUS(v) for v in text.split(",") if v.strip()]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.adversarial",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "cnn"], default="mlp")
    parser.add_argument("--eps", type=RADIUS, default=0.1, help="attack radius (L-infinity, pixels in [0, 1])")
    parser.add_argument("--eps-sweep", type=_parse_eps_list, default=[0.05, 0.1, 0.2, 0.3],
                        help="comma-separated radii also reported (default 0.05,0.1,0.2,0.3)")
    parser.add_argument("--alpha", type=between(float, 0.0, 1.0), default=0.5,
                        help="weight of the clean loss in adversarial training")
    parser.add_argument("--train-eps", type=RADIUS, default=None,
                        help="radius for adversarial training (default --eps)")
    parser.add_argument("--train-attack", choices=ATTACKS, default="fgsm")
    parser.add_argument("--pgd-steps", type=positive(int), default=10)
    parser.add_argument("--epochs", type=positive(int), default=None, help="default: 40 (mlp), 30 (cnn)")
    parser.add_argument("--batch-size", type=positive(int), default=32)
    parser.add_argument("--lr", type=positive(float), default=2e-3)
    parser.add_argument("--quick", action="store_true", help="a few epochs on 400 training images (for tests)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    rosenblatt.manual_seed(args.seed)

    from .digits import build_model, load_digits_split
    x_train, y_train, x_test, y_test = load_digits_split()
    epochs = args.epochs or (40 if args.model == "mlp" else 30)
    eps_sweep = args.eps_sweep
    if args.quick:
        x_train, y_train, epochs = x_train[:400], y_train[:400], args.epochs or 3
        if eps_sweep == parser.get_default("eps_sweep"):  # a sweep given explicitly is kept
            eps_sweep = [args.eps]
    train_eps = args.eps if args.train_eps is None else args.train_eps

    def fresh_model():  # the CNN without random shifts: the attacks and the training see the same images
        return build_model(args.model, shift=0).to(args.device)

    clean_model = fresh_model()
    adv_model = fresh_model()
    adv_model.load_state_dict(clean_model.state_dict())  # the same starting point for both
    log(f"adversarial: {len(x_train)} training / {len(x_test)} test digits, {args.model}, {epochs} epochs, "
        f"eps {args.eps}")

    start = time.perf_counter()
    clean_losses = train(clean_model, x_train, y_train, epochs, args.batch_size, args.lr)
    clean_time = time.perf_counter() - start
    log(f"clean training: {clean_time:.1f} s")

    start = time.perf_counter()
    adv_losses = train(adv_model, x_train, y_train, epochs, args.batch_size, args.lr, args.alpha, train_eps,
                       args.train_attack, args.pgd_steps)
    adv_time = time.perf_counter() - start
    log(f"adversarial training ({args.train_attack}, eps {train_eps}, alpha {args.alpha}): {adv_time:.1f} s")

    sweep = {}
    for eps in sorted(set(eps_sweep) | {args.eps}):
        both = {"clean_model": robustness(clean_model, x_test, y_test, eps, args.pgd_steps),
                "adv_model": robustness(adv_model, x_test, y_test, eps, args.pgd_steps)}
        sweep[f"{eps:g}"] = both
        log(f"eps {eps:g}: test accuracy of the clean / adversarially trained model: "
            + ", ".join(f"{kind} {both['clean_model'][kind]:.4f} / {both['adv_model'][kind]:.4f}"
                        for kind in ("clean", "fgsm", "pgd", "random")))
    clean, adv = sweep[f"{args.eps:g}"]["clean_model"], sweep[f"{args.eps:g}"]["adv_model"]
    transfer = accuracy(adv_model, attack(clean_model, x_test, y_test, "fgsm", args.eps), y_test)
    log(f"eps {args.eps:g}: the adversarially trained model on FGSM images made against the clean model: "
        f"{transfer:.4f}")

    result = {"model": args.model, "eps": args.eps, "train_eps": train_eps, "alpha": args.alpha,
              "train_attack": args.train_attack, "pgd_steps": args.pgd_steps, "epochs": epochs,
              "clean_accuracy": clean["clean"], "fgsm_accuracy": clean["fgsm"], "pgd_accuracy": clean["pgd"],
              "random_sign_accuracy": clean["random"],
              "adv_clean_accuracy": adv["clean"], "adv_fgsm_accuracy": adv["fgsm"], "adv_pgd_accuracy": adv["pgd"],
              "adv_random_sign_accuracy": adv["random"], "transfer_fgsm_accuracy": transfer,
              "first_epoch_loss": clean_losses[0], "last_epoch_loss": clean_losses[-1],
              "adv_first_epoch_loss": adv_losses[0], "adv_last_epoch_loss": adv_losses[-1],
              "train_time_s": round(clean_time, 3), "adv_train_time_s": round(adv_time, 3),
              "eps_sweep": sweep, "threads": rosenblatt.get_num_threads(),
              "device": str(args.device)}
    print_result(result)
    return result


if __name__ == "__main__":
    main()
