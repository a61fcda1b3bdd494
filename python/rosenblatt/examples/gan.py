"""Generative adversarial networks (Goodfellow et al., 2014): a generator and a discriminator trained
against each other, on a ring of 8 Gaussians or on the 8x8 digits.

The discriminator D is trained to tell real samples (label 1) from the generator's (label 0) with
binary cross-entropy on its logits; the generator G with the non-saturating loss -log D(G(z)) (the
paper's practical variant: log(1 - D(G(z))) saturates while D wins easily). Two Adam optimizers with
betas (0.5, 0.999) as in DCGAN (Radford et al., 2016). Each step draws one batch of fakes, trains D
on it detached (no gradient reaches G), then trains G through D with D's parameters frozen.

    python -m rosenblatt.examples.gan                    # the ring: 8 Gaussians, std 0.02, on a circle of radius 2
    python -m rosenblatt.examples.gan --data digits      # 8x8 digits, DCGAN-style
    python -m rosenblatt.examples.gan --device cuda      # both players on a GPU (data and noise drawn on the host)
    python -m rosenblatt.examples.gan --data digits --arch mlp   # two MLPs: with the same settings D wins and
                                                                 # G collapses onto two or three digits (seed 0)

The ring trains for 10,000 steps (5,000 left seed 0 mid-oscillation, at 77% high-quality samples);
seeds 0-3 then cover all 8 modes, with 90%, 95%, 70% and 97% high-quality samples.

How good the samples are, measured on generated samples only:
- ring (Metz et al. 2017's setup; the measures of Srivastava et al. 2017): 10,000 samples; a sample is
  "high quality" when it lies within 3 standard deviations of its nearest mode centre; a mode is
  covered when at least 1% of all samples are high-quality samples of that mode (100 of 10,000, an
  eighth of its fair share of 1,250).
- digits: a separate classifier (digits.build_model("mlp")) is trained on the real training digits
  first; on 2,000 generated images it gives p(y|x). Reported: the entropy (nats) of the predicted-class
  histogram (ln 10 = 2.303 when every class is generated equally often; low means mode collapse), the
  mean top-class probability (confidence: low means images that look like no digit), and
  exp(H(mean p(y|x)) - mean H(p(y|x))), the inception score computed with this classifier instead of
  Inception (between 1 and 10). The same numbers for the real test digits are the reference. Against
  memorisation: the Euclidean distance of each image to its nearest training image, for generated
  images and (as the reference) for the real test images, and the fraction of generated images closer
  to a training image than the closest 5% of test images are (about 0.05 without copying, near 1 for a
  generator that reproduces its training set).

The JSON's losses: d_loss = -log D(x) - log(1 - D(G(z))) (ln 4 = 1.386 at the equilibrium D = 1/2),
g_loss = -log D(G(z)) (ln 2 = 0.693 there); "start" is the first step, "end" the mean of the last 10%.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.data import DataLoader, TensorDataset
from rosenblatt.nn import functional as F
from rosenblatt.random import default_generator
from rosenblatt.train import evaluate, fit

from ._common import add_run_options, check_loss, log, module_device, positive, print_result, set_threads

RING_MODES = 8
RING_RADIUS = 2.0
RING_STD = 0.02
HIGH_QUALITY_STDS = 3.0
MODE_MIN_FRACTION = 0.01    # of all samples, for a mode to count as covered
COPY_QUANTILE = 0.05        # of the test images' nearest-training-image distances


# ---- data ----------------------------------------------------------------------------------------
def ring_centres(modes: int = RING_MODES, radius: float = RING_RADIUS) -> np.ndarray:
    """(modes, 2) points evenly spaced on a circle."""
    angles = 2 * np.pi * np.arange(modes) / modes
    return radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def sample_ring(n: int, rng: np.random.Generator, std: float = RING_STD) -> np.ndarray:
    """n float32 points from the equal mixture of Gaussians (std `std`) at ring_centres()."""
    centres = ring_centres()
    modes = rng.integers(0, len(centres), size=n)
    return (centres[modes] + std * rng.standard_normal((n, 2))).astype(np.float32)


# ---- quality measures ------------------------------------------------------------------------------
def ring_metrics(samples: np.ndarray, std: float = RING_STD, min_fraction: float = MODE_MIN_FRACTION) -> dict:
    """Modes covered and the fraction of high-quality samples (see the module's docstring)."""
    centres = ring_centres()
    distances = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=2)   # (N, modes)
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(len(samples)), nearest] <= HIGH_QUALITY_STDS * std
    counts = np.bincount(nearest[high_quality], minlength=len(centres))
    threshold = max(1, math.ceil(min_fraction * len(samples)))
    return {"modes_covered": int((counts >= threshold).sum()), "high_quality_fraction": float(high_quality.mean()),
            "mode_counts": counts.tolist()}


def class_distribution_metrics(probabilities: np.ndarray) -> dict:
    """From p(y|x), (N, classes): the entropy of the predicted-class histogram, the mean top-class
    probability and the classifier-based inception score exp(H(mean p(y|x)) - mean H(p(y|x)))."""
    p = np.asarray(probabilities, dtype=np.float64)
    classes = p.shape[1]
    histogram = np.bincount(p.argmax(axis=1), minlength=classes) / len(p)
    marginal = p.mean(axis=0)
    conditional_entropy = -(p * np.log(np.clip(p, 1e-12, None))).sum(axis=1).mean()
    marginal_entropy = -(marginal * np.log(np.clip(marginal, 1e-12, None))).sum()
    nonzero = histogram[histogram > 0]
    return {"class_entropy": float(-(nonzero * np.log(nonzero)).sum()),
            "mean_confidence": float(p.max(axis=1).mean()),
            "inception_score": float(np.exp(marginal_entropy - conditional_entropy)),
            "class_histogram": histogram.round(4).tolist()}


def nearest_distances(images: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Euclidean distance from each image to its nearest reference image (both flattened)."""
    a = images.reshape(len(images), -1).astype(np.float64)
    b = reference.reshape(len(reference), -1).astype(np.float64)
    squared = (a * a).sum(1)[:, None] - 2 * a @ b.T + (b * b).sum(1)[None, :]
    return np.sqrt(np.clip(squared.min(axis=1), 0, None))


# ---- models ----------------------------------------------------------------------------------------
def build_ring_models(latent: int = 2, hidden: int = 128) -> tuple:
    """G: latent -> hidden -> hidden -> 2 (ReLU); D: 2 -> hidden -> hidden -> 1 logit (LeakyReLU 0.2)."""
    generator = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                              nn.Linear(hidden, 2))
    discriminator = nn.Sequential(nn.Linear(2, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden),
                                  nn.LeakyReLU(0.2), nn.Linear(hidden, 1))
    return generator, discriminator


def build_digit_models(latent: int = 32, arch: str = "dcgan") -> tuple:
    """Images (N, 1, 8, 8) in [0, 1] (a sigmoid ends G; D returns one logit per image).

    dcgan: G: latent -> linear 128x2x2 -> BN, ReLU -> transposed conv 4x4 s2 (64, 4x4) -> BN, ReLU ->
           transposed conv 4x4 s2 (1, 8x8) -> sigmoid;
           D: conv 4x4 s2 (64, 4x4) -> LeakyReLU -> conv 4x4 s2 (128, 2x2) -> LeakyReLU -> linear 512 -> 1.
    mlp:   G: latent -> 256 -> 256 -> 64 (ReLU); D: 64 -> 256 -> 256 -> 1 (LeakyReLU 0.2)."""
    if arch == "dcgan":
        generator = nn.Sequential(
            nn.Linear(latent, 128 * 2 * 2), nn.BatchNorm1d(128 * 2 * 2), nn.ReLU(), nn.Unflatten(1, (128, 2, 2)),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),     # 64 x 4 x 4
            nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1), nn.Sigmoid())                        # 1 x 8 x 8
        discriminator = nn.Sequential(
            nn.Conv2d(1, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                             # 64 x 4 x 4
            nn.Conv2d(64, 128, 4, stride=2, padding=1), nn.LeakyReLU(0.2),                           # 128 x 2 x 2
            nn.Flatten(), nn.Linear(128 * 2 * 2, 1))
    elif arch == "mlp":
        generator = nn.Sequential(nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                  nn.Linear(256, 64), nn.Sigmoid(), nn.Unflatten(1, (1, 8, 8)))
        discriminator = nn.Sequential(nn.Flatten(), nn.Linear(64, 256), nn.LeakyReLU(0.2), nn.Linear(256, 256),
                                      nn.LeakyReLU(0.2), nn.Linear(256, 1))
    else:
        raise ValueError(f"gan: unknown architecture {arch!r} (dcgan or mlp)")
    return generator, discriminator


# ---- one step of each player -------------------------------------------------------------------------
def _labels(n: int, value: float, device=None) -> rosenblatt.Tensor:
    return rosenblatt.tensor(np.full((n, 1), value, dtype=np.float32), device=device)


def discriminator_step(discriminator: nn.Module, optimizer, real: rosenblatt.Tensor, fake: rosenblatt.Tensor) -> float:
    """One update of D on a batch of real and a batch of generated samples; returns
    -log D(x) - log(1 - D(G(z))) (batch means). The fakes are detached: no gradient reaches G."""
    optimizer.zero_grad()
    logits = discriminator(rosenblatt.cat([real, fake.detach()]))
    targets = rosenblatt.cat([_labels(len(real), 1.0, real.device), _labels(len(fake), 0.0, fake.device)])
    loss = F.binary_cross_entropy_with_logits(logits, targets)
    loss.backward()
    optimizer.step()
    return 2 * loss.item()  # the mean over both halves is half the sum of their means


def generator_step(discriminator: nn.Module, optimizer, fake: rosenblatt.Tensor) -> float:
    """One update of G with the non-saturating loss -log D(G(z)); D's parameters are frozen for the
    backward pass (no gradient for them, none computed) and unfrozen after."""
    optimizer.zero_grad()
    discriminator.requires_grad_(False)
    try:
        loss = F.binary_cross_entropy_with_logits(discriminator(fake), _labels(len(fake), 1.0, fake.device))
        loss.backward()
    finally:
        discriminator.requires_grad_(True)
    optimizer.step()
    return loss.item()


def noise(n: int, latent: int, rng: np.random.Generator | None = None, device=None) -> rosenblatt.Tensor:
    """z ~ N(0, I), (n, latent), from rng (default: rosenblatt's generator), drawn on the host and
    moved to `device`."""
    rng = default_generator() if rng is None else rng
    return rosenblatt.tensor(rng.standard_normal((n, latent), dtype=np.float32), device=device)


@rosenblatt.no_grad()
def generate(generator: nn.Module, n: int, latent: int, batch_size: int = 1000,
             rng: np.random.Generator | None = None) -> np.ndarray:
    """n samples from G in eval mode (batch norm with its running statistics), on the host."""
    was_training = generator.training
    generator.eval()
    device = module_device(generator)
    try:
        return np.concatenate([generator(noise(min(batch_size, n - start), latent, rng, device)).cpu().numpy()
                               for start in range(0, n, batch_size)])
    finally:
        generator.train(was_training)


# ---- the digits' evaluator -------------------------------------------------------------------------
def train_digit_classifier(x_train, y_train, x_test, y_test, epochs: int, device="cpu") -> tuple:
    """digits.build_model("mlp") trained with Adam on the real training digits, on `device` (fit and
    evaluate move the batches there); (model, test accuracy)."""
    from .digits import build_model
    classifier = build_model("mlp").to(device)
    loader = DataLoader(TensorDataset(x_train, y_train), batch_size=32, shuffle=True)
    optimizer = optim.Adam(classifier.parameters(), lr=2e-3)
    fit(classifier, nn.CrossEntropyLoss(), optimizer, loader, epochs=epochs,
        scheduler=optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs), progress=False)
    test = evaluate(classifier, nn.CrossEntropyLoss(), DataLoader(TensorDataset(x_test, y_test), batch_size=500),
                    ["accuracy"])
    classifier.eval()
    return classifier, test["accuracy"]


@rosenblatt.no_grad()
def class_probabilities(classifier: nn.Module, images: np.ndarray) -> np.ndarray:
    scores = classifier(rosenblatt.tensor(images.astype(np.float32), device=module_device(classifier)))
    return F.softmax(scores, dim=1).cpu().numpy()


def digit_metrics(samples, classifier, x_train, x_test) -> dict:
    generated = class_distribution_metrics(class_probabilities(classifier, samples))
    real = class_distribution_metrics(class_probabilities(classifier, x_test))
    generated_nn = nearest_distances(samples, x_train)
    test_nn = nearest_distances(x_test, x_train)
    return {**generated,
            "real_test_class_entropy": real["class_entropy"], "real_test_mean_confidence": real["mean_confidence"],
            "real_test_inception_score": real["inception_score"],
            "nn_distance_mean": float(generated_nn.mean()), "nn_distance_median": float(np.median(generated_nn)),
            "real_test_nn_distance_mean": float(test_nn.mean()),
            "real_test_nn_distance_median": float(np.median(test_nn)),
            "copy_fraction": float((generated_nn < np.quantile(test_nn, COPY_QUANTILE)).mean())}


# ---- training ----------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.gan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", choices=["ring", "digits"], default="ring")
    parser.add_argument("--arch", choices=["dcgan", "mlp"], default="dcgan", help="digits only (the ring uses MLPs)")
    parser.add_argument("--steps", type=positive(int), default=None, help="default: 10000 (ring), 4000 (digits)")
    parser.add_argument("--batch-size", type=positive(int), default=None, help="default: 256 (ring), 64 (digits)")
    parser.add_argument("--latent", type=positive(int), default=None, help="noise dims; default: 2 (ring), 32 (digits)")
    parser.add_argument("--hidden", type=positive(int), default=128, help="ring only: width of both MLPs")
    parser.add_argument("--lr", type=positive(float), default=None,
                        help="both players; default: 1e-3 (ring), 2e-4 (digits)")
    parser.add_argument("--samples", type=positive(int), default=None, help="generated for the measures; default 10000 "
                        "(ring), 2000 (digits)")
    parser.add_argument("--classifier-epochs", type=positive(int), default=None, help="digits: the evaluator's training "
                        "(default 30; 3 with --quick)")
    parser.add_argument("--log-every", type=positive(int), default=1000)
    parser.add_argument("--quick", action="store_true", help="a few hundred steps, fewer samples (for tests)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if args.data == "digits" and args.arch == "dcgan" and args.batch_size == 1:
        parser.error("--batch-size: the dcgan generator's batch norm needs at least 2 images per batch, got 1")
    set_threads(args.threads)
    rosenblatt.manual_seed(args.seed)
    data_rng = np.random.default_rng(args.seed)

    ring = args.data == "ring"
    steps = args.steps or ((200 if ring else 100) if args.quick else (10000 if ring else 4000))
    batch_size = args.batch_size or (256 if ring else 64)
    latent = args.latent or (2 if ring else 32)
    lr = args.lr or (1e-3 if ring else 2e-4)
    samples = args.samples or ((2000 if ring else 500) if args.quick else (10000 if ring else 2000))
    classifier_epochs = args.classifier_epochs or (3 if args.quick else 30)

    if ring:
        generator, discriminator = build_ring_models(latent, args.hidden)
        x_train = None
        description = f"ring of {RING_MODES} Gaussians (std {RING_STD}, radius {RING_RADIUS}), MLPs of {args.hidden}"
    else:
        from .digits import load_digits_split
        x_train, y_train, x_test, y_test = load_digits_split()
        generator, discriminator = build_digit_models(latent, args.arch)
        description = f"{len(x_train)} training digits, {args.arch}"
    generator.to(args.device)
    discriminator.to(args.device)
    opt_g = optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_d = optim.Adam(discriminator.parameters(), lr=lr, betas=(0.5, 0.999))
    log(f"gan: {description}; {steps} steps of batch {batch_size}, latent {latent}, Adam lr {lr} betas (0.5, 0.999)")

    d_losses, g_losses = [], []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        if ring:
            real = rosenblatt.tensor(sample_ring(batch_size, data_rng), device=args.device)
        else:
            real = rosenblatt.tensor(x_train[data_rng.integers(0, len(x_train), size=batch_size)], device=args.device)
        fake = generator(noise(batch_size, latent, device=args.device))
        d_losses.append(check_loss(discriminator_step(discriminator, opt_d, real, fake), "gan: D", f"step {step}"))
        g_losses.append(check_loss(generator_step(discriminator, opt_g, fake), "gan: G", f"step {step}"))
        if step % args.log_every == 0 or step == steps:
            window = slice(-args.log_every, None)
            message = f"step {step}: d_loss {np.mean(d_losses[window]):.3f}, g_loss {np.mean(g_losses[window]):.3f}"
            if ring:
                # its own noise: how often progress is logged must not change the training's random stream
                probe = ring_metrics(generate(generator, 2000, latent, rng=np.random.default_rng(step)))
                message += f", modes {probe['modes_covered']}/8, high quality {probe['high_quality_fraction']:.3f}"
            log(message)
    train_time = time.perf_counter() - start

    tail = max(1, steps // 10)
    result = {"data": args.data, "steps": steps, "batch_size": batch_size, "latent": latent, "lr": lr,
              "d_loss_start": d_losses[0], "g_loss_start": g_losses[0],
              "d_loss_end": float(np.mean(d_losses[-tail:])), "g_loss_end": float(np.mean(g_losses[-tail:])),
              "train_time_s": round(train_time, 3), "steps_per_s": round(steps / train_time, 1),
              "samples": samples}
    generated = generate(generator, samples, latent)
    if ring:
        result.update(ring_metrics(generated))
    else:
        log(f"gan: training the evaluator ({classifier_epochs} epochs on the real training digits)")
        classifier, classifier_accuracy = train_digit_classifier(x_train, y_train, x_test, y_test, classifier_epochs,
                                                                 args.device)
        result.update(arch=args.arch, classifier_test_accuracy=classifier_accuracy,
                      **digit_metrics(generated, classifier, x_train, x_test))
    result["threads"] = rosenblatt.get_num_threads()
    result["device"] = str(args.device)
    print_result(result)
    return result


if __name__ == "__main__":
    main()
