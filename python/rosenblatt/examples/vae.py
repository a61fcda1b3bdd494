"""Variational auto-encoders (Kingma & Welling, 2014) on scikit-learn's 8x8 digits.

Data: the digits split of `digits.load_digits_split` (1,347 training, 450 test images), binarised:
each pixel is 1 with probability equal to its intensity in [0, 1]. The training images are drawn
afresh every epoch (dynamic binarisation, a guard against over-fitting 1,347 images); the test
images once, with a fixed seed of their own, so every run and every model sees the same binary
test set. Log-likelihoods are therefore those of a discrete distribution on {0, 1}^64, in nats.

Model: an encoder gives the mean and log-variance of a diagonal Gaussian q(z|x); a sample
z = mu + sigma * eps, eps ~ N(0, I) (the reparameterisation, so gradients flow into mu and sigma);
a decoder gives the logits of independent Bernoulli pixels p(x|z). The loss, per image, is the
negative evidence lower bound: sum over pixels of binary_cross_entropy_with_logits (one sample z)
plus the analytic KL(q(z|x) || N(0, I)); Adam minimises its mean over a batch.
  --model mlp   64 -> hidden -> hidden -> (mu, log var); latent -> hidden -> hidden -> 64 logits
  --model conv  Conv2d 8x8 -> 4x4 -> 2x2 encoder; ConvTranspose2d 2x2 -> 4x4 -> 8x8 decoder (learned
                up-sampling)

Evaluation on the test set: the negative ELBO (its reconstruction and KL parts; the
reconstruction term averaged over --elbo-samples draws of z), and the importance-weighted bound
(Burda et al., 2016) log p(x) >= E[log 1/K sum_k p(x, z_k) / q(z_k|x)], z_k ~ q(z|x), with
K = --iw-samples on the first --iw-images test images. It is a stochastic lower bound on the
log-likelihood that tightens as K grows, so its negative is an upper bound on the test NLL (in
expectation: it is a Monte-Carlo estimate; the reported standard error is that of the mean over
images). Two references frame it: the trivial baseline, independent pixels each on with its mean
training intensity (add-one smoothed), whose test NLL is exact (the gain over it is paired image
by image, with its standard error); and the noise floor, the entropy of the binarisation itself
(sum of H(intensity) over pixels), below which no model's expected NLL can go.

The JSON's initial_loss and final_loss are the -ELBO on the training images (one fixed
binarisation, one draw of z) before and after training; train_loss_last_epoch is the running mean
of the last epoch's mini-batch losses.

Nothing is chosen on the test set: `--validation` trains on the first 80% of the training images
and evaluates on the other 20% instead (how the defaults were picked).

    python -m rosenblatt.examples.vae                            # mlp, latent 8
    python -m rosenblatt.examples.vae --model conv
    python -m rosenblatt.examples.vae --device cuda              # on a GPU (binarisation and eps drawn on the host)
    python -m rosenblatt.examples.vae --latent 2 --plot vae.png  # plus a map of the 2-d latent space
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.nn import functional as F
from rosenblatt.random import default_generator
from rosenblatt.tensor import Tensor, no_grad

from ._common import add_run_options, check_loss, log, module_device, positive, print_result, set_threads
from .digits import load_digits_split

BINARIZATION_SEED = 20140101  # fixed for every run: the evaluation images are one set of binary images
IMAGE_SHAPE = (1, 8, 8)
PIXELS = 64
LOG_2PI = math.log(2 * math.pi)


# ---- data ------------------------------------------------------------------------------------------
def binarize(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each pixel 1 with probability its intensity in [0, 1], else 0 (same shape and dtype)."""
    return (rng.random(images.shape) < images).astype(images.dtype)


def pixel_mean_baseline(train_images: np.ndarray, test_binary: np.ndarray) -> np.ndarray:
    """Test NLL (nats, per image) of independent Bernoulli pixels with p = the pixel's mean training
    intensity (which is also the mean of its dynamically binarised values), add-one smoothed so
    that pixels never on in training do not give log 0."""
    n = len(train_images)
    p = (train_images.reshape(n, -1).astype(np.float64).sum(axis=0) + 1.0) / (n + 2.0)
    x = test_binary.reshape(len(test_binary), -1).astype(np.float64)
    return -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(axis=1)


def binarization_entropy(images: np.ndarray) -> float:
    """Mean over images of sum_pixels H(intensity): the entropy of the binarisation noise alone. No
    model's expected NLL can be lower (H(X) >= H(X | intensities)); it shows how much is left to learn."""
    p = images.reshape(len(images), -1).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
    return float(h.sum(axis=1).mean())


# ---- the pieces of the ELBO ------------------------------------------------------------------------
def reparameterize(mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> Tensor:
    """z = mu + exp(logvar / 2) * eps with eps ~ N(0, I) from rosenblatt's generator (or the given eps):
    a sample of N(mu, diag(exp(logvar))) that is a differentiable function of mu and logvar. eps is
    drawn on mu's device (from the host's stream, so every device draws the same numbers)."""
    if eps is None:
        eps = rosenblatt.randn(*mu.shape, dtype=mu.dtype, device=mu.device)
    return mu + (logvar * 0.5).exp() * eps


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row of (N, latent) inputs, in closed form:
    1/2 sum_j (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2)."""
    return ((mu * mu + logvar.exp() - logvar - 1.0) * 0.5).sum(dim=1)


def bernoulli_nll(logits: Tensor, x) -> Tensor:
    """-log p(x | logits) per image, summed over pixels: (N, ...) -> (N,)."""
    per_pixel = F.binary_cross_entropy_with_logits(logits, x, reduction="none")
    return per_pixel.reshape(per_pixel.shape[0], -1).sum(dim=1)


def log_normal(z: np.ndarray, mu: np.ndarray, logvar: np.ndarray) -> np.ndarray:
    """log N(z; mu, diag(exp(logvar))) summed over the last axis (NumPy, float64)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 * np.exp(-logvar)).sum(axis=-1)


# ---- models ----------------------------------------------------------------------------------------
class VAE(nn.Module):
    """encoder: images (N, 1, 8, 8) -> (N, 2 * latent), the means then the log-variances of q(z|x);
    decoder: z (N, latent) -> Bernoulli logits (N, 1, 8, 8)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, latent: int):
        super().__init__()
        self.encoder, self.decoder, self.latent = encoder, decoder, latent

    @property
    def device(self):
        """Where the parameters live: images and z (made on the host) are moved there."""
        return module_device(self)

    def encode(self, x) -> tuple:
        h = self.encoder(x)
        return h[:, :self.latent], h[:, self.latent:]

    def decode(self, z) -> Tensor:
        return self.decoder(z).reshape(-1, *IMAGE_SHAPE)

    def forward(self, x, eps: Tensor | None = None) -> tuple:
        """(logits, mu, logvar) for one sample z ~ q(z|x) per image."""
        mu, logvar = self.encode(x)
        return self.decode(reparameterize(mu, logvar, eps)), mu, logvar

    def sample(self, n: int, generator: np.random.Generator | None = None) -> np.ndarray:
        """n images from the model: z ~ N(0, I), then each pixel's probability sigmoid(decoder(z))
        (the Bernoulli means, which show the digits better than a binary draw). (n, 1, 8, 8) float32."""
        z = (generator or default_generator()).standard_normal((n, self.latent)).astype(np.float32)
        with no_grad():
            return self.decode(rosenblatt.tensor(z, device=self.device)).sigmoid().cpu().numpy()


def negative_elbo(model: VAE, x, eps: Tensor | None = None) -> tuple:
    """(loss, reconstruction, kl), each (N,): -ELBO = E_q[-log p(x|z)] (one sample) + KL(q || prior)."""
    mu, logvar = model.encode(x)
    return elbo_terms(model, x, mu, logvar, eps)


def elbo_terms(model: VAE, x, mu: Tensor, logvar: Tensor, eps: Tensor | None = None) -> tuple:
    """negative_elbo from the encoder's outputs on: sample z, decode, score (gradients reach mu and logvar)."""
    reconstruction = bernoulli_nll(model.decode(reparameterize(mu, logvar, eps)), x)
    kl = gaussian_kl(mu, logvar)
    return reconstruction + kl, reconstruction, kl


def build_model(kind: str, latent: int = 8, hidden: int = 256) -> VAE:
    """mlp: hidden-unit ReLU layers; conv: channels 32/64, stride-2 convolutions down and stride-2
    transposed convolutions up (kernel 4, padding 1: exactly doubles the size)."""
    if kind == "mlp":
        encoder = nn.Sequential(nn.Flatten(), nn.Linear(PIXELS, hidden), nn.ReLU(), nn.Linear(hidden, hidden),
                                nn.ReLU(), nn.Linear(hidden, 2 * latent))
        decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                nn.Linear(hidden, PIXELS))
    elif kind == "conv":
        encoder = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),              # 32 x 8 x 8
                                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.ReLU(),   # 64 x 4 x 4
                                nn.Conv2d(64, 64, 3, stride=2, padding=1), nn.ReLU(),   # 64 x 2 x 2
                                nn.Flatten(), nn.Linear(256, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent))
        decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, 256), nn.ReLU(),
                                nn.Unflatten(1, (64, 2, 2)),
                                nn.ConvTranspose2d(64, 64, 4, stride=2, padding=1), nn.ReLU(),  # 64 x 4 x 4
                                nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), nn.ReLU(),  # 32 x 8 x 8
                                nn.Conv2d(32, 1, 3, padding=1))                                 # logits
    else:
        raise ValueError(f"vae: unknown model {kind!r} (mlp or conv)")
    return VAE(encoder, decoder, latent)


# ---- evaluation ------------------------------------------------------------------------------------
@contextlib.contextmanager
def evaluating(model: nn.Module):
    """Eval mode without a graph for the block, then the mode the model had."""
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


def evaluate_elbo(model: VAE, x: np.ndarray, samples: int = 1, batch_size: int = 500) -> dict:
    """Mean over images of -ELBO, its reconstruction part (averaged over `samples` draws of z; the KL
    is exact) and the KL, in nats per image."""
    reconstruction = kl = 0.0
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            batch = rosenblatt.tensor(x[start:start + batch_size], device=model.device)
            mu, logvar = model.encode(batch)
            kl += float(gaussian_kl(mu, logvar).sum().item())
            for _ in range(samples):
                logits = model.decode(reparameterize(mu, logvar))
                reconstruction += float(bernoulli_nll(logits, batch).sum().item()) / samples
    n = len(x)
    return {"loss": (reconstruction + kl) / n, "reconstruction": reconstruction / n, "kl": kl / n}


def importance_weighted_log_likelihood(model: VAE, x: np.ndarray, samples: int, batch_size: int = 50) -> np.ndarray:
    """Per image, log 1/K sum_k p(x|z_k) p(z_k) / q(z_k|x) with K = samples draws z_k ~ q(z|x): the IWAE
    bound on log p(x) (K = 1 gives a one-sample ELBO). Log-weights are combined in float64."""
    out = []
    with evaluating(model):
        for start in range(0, len(x), batch_size):
            images = x[start:start + batch_size]
            n = len(images)
            mu, logvar = model.encode(rosenblatt.tensor(images, device=model.device))
            mu, logvar = mu.cpu().numpy().astype(np.float64), logvar.cpu().numpy().astype(np.float64)
            eps = default_generator().standard_normal((samples, n, model.latent))
            z = mu + np.exp(0.5 * logvar) * eps                                     # (K, n, latent)
            flat_z = z.reshape(samples * n, -1).astype(np.float32)
            logits = model.decode(rosenblatt.tensor(flat_z, device=model.device))
            repeated = np.broadcast_to(images, (samples, *images.shape)).reshape(samples * n, *IMAGE_SHAPE)
            log_px_z = -bernoulli_nll(logits, rosenblatt.tensor(repeated, device=model.device))
            log_px_z = log_px_z.cpu().numpy().astype(np.float64).reshape(samples, n)
            log_w = log_px_z + log_normal(z, 0.0, 0.0) - log_normal(z, mu, logvar)
            top = log_w.max(axis=0)
            out.append(top + np.log(np.exp(log_w - top).mean(axis=0)))
    return np.concatenate(out)


# ---- training --------------------------------------------------------------------------------------
def train(model: VAE, optimizer, images: np.ndarray, epochs: int, batch_size: int, on_epoch=None) -> list:
    """Adam on the mean -ELBO of mini-batches, the images binarised afresh each epoch; returns the
    mean training loss of every epoch."""
    history = []
    rng = default_generator()
    for epoch in range(epochs):
        binary = binarize(images, rng)
        order = rng.permutation(len(images))
        total = 0.0
        for start in range(0, len(order), batch_size):
            batch = rosenblatt.tensor(binary[order[start:start + batch_size]], device=model.device)
            loss = negative_elbo(model, batch)[0].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += check_loss(float(loss.item()), "vae", f"epoch {epoch + 1}") * batch.shape[0]
        history.append(total / len(images))
        if on_epoch:
            on_epoch(epoch, history[-1])
    return history


def _tile(images: np.ndarray, columns: int) -> np.ndarray:
    """(N, 1, 8, 8) images side by side, `columns` to a row, a light gray line between them."""
    rows = -(-len(images) // columns)
    canvas = np.full((rows * 9 - 1, columns * 9 - 1), 0.25, np.float32)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        canvas[r * 9:r * 9 + 8, c * 9:c * 9 + 8] = image[0]
    return canvas


def plot_problem(path: str) -> str | None:
    """Why the figure could not be written to `path`, or None: checked before training, since
    plot_figure runs at its end (matplotlib missing, no such folder, a folder, an unknown format)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib.figure import Figure
    except ImportError:
        return "needs matplotlib: pip install 'rosenblatt[plot]'"
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return "is a folder; give a file name such as vae.png"
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        return f"cannot be written: the folder {folder} does not exist or is not writable"
    extension = os.path.splitext(path)[1][1:].lower()
    formats = Figure().canvas.get_supported_filetypes()
    if extension and extension not in formats:  # no extension: matplotlib appends .png
        return f"matplotlib writes no .{extension} files (formats: {', '.join(sorted(formats))})"
    return None


def plot_figure(path: str, model: VAE, test_binary: np.ndarray, seed: int) -> None:
    """Test images over their reconstructions (Bernoulli means from mu), samples from the prior,
    and, for a 2-d latent space, the decoder's images on a grid of z."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("vae: --plot needs matplotlib: pip install 'rosenblatt[plot]'") from None
    with evaluating(model):
        shown = test_binary[:16]
        means = model.encode(rosenblatt.tensor(shown, device=model.device))[0]
        reconstructed = model.decode(means).sigmoid().cpu().numpy()
        samples = model.sample(32, np.random.default_rng(seed))
        panels = [("test images", shown), ("reconstructions", reconstructed), ("samples from the prior", samples)]
        if model.latent == 2:
            ticks = np.linspace(-2.5, 2.5, 12, dtype=np.float32)
            grid = np.stack(np.meshgrid(ticks, ticks[::-1]), axis=-1).reshape(-1, 2)
            manifold = model.decode(rosenblatt.tensor(grid, device=model.device)).sigmoid().cpu().numpy()
            panels.append(("decoder on a grid of z in [-2.5, 2.5]^2", manifold))
    canvases = [(title, _tile(images, 12 if len(images) == 144 else 16)) for title, images in panels]
    heights = [8 * canvas.shape[0] / canvas.shape[1] + 0.4 for _, canvas in canvases]  # inches, 8 wide + title
    figure, axes = plt.subplots(len(canvases), 1, figsize=(8, sum(heights)), gridspec_kw={"height_ratios": heights})
    for axis, (title, canvas) in zip(axes, canvases):
        axis.imshow(canvas, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        axis.set_title(title)
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# ---- the script ------------------------------------------------------------------------------------
def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.vae", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["mlp", "conv"], default="mlp")
    parser.add_argument("--latent", type=positive(int), default=8, help="dimensions of z (2 can be plotted)")
    parser.add_argument("--hidden", type=positive(int), default=256)
    parser.add_argument("--epochs", type=positive(int), default=None, help="default: 300 (mlp), 150 (conv)")
    parser.add_argument("--batch-size", type=positive(int), default=64)
    parser.add_argument("--lr", type=positive(float), default=1e-3, help="Adam's learning rate")
    parser.add_argument("--elbo-samples", type=positive(int), default=10,
                        help="draws of z per image for the reported test reconstruction term")
    parser.add_argument("--iw-samples", type=positive(int), default=100, help="K of the importance-weighted bound")
    parser.add_argument("--iw-images", type=positive(int), default=None,
                        help="the bound on the first this many evaluation images (default: all)")
    parser.add_argument("--validation", action="store_true",
                        help="train on 80%% of the training images, evaluate on the other 20%% (not the test set)")
    parser.add_argument("--plot", metavar="PNG", help="write reconstructions and samples here (needs matplotlib)")
    parser.add_argument("--quick", action="store_true", help="a few epochs on 400 training images (for tests)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    problem = plot_problem(args.plot) if args.plot else None
    if problem:
        parser.error(f"--plot {args.plot}: {problem}")
    set_threads(args.threads)
    rosenblatt.manual_seed(args.seed)

    x_train, _, x_test, _ = load_digits_split()
    split = "test"
    if args.validation:
        cut = int(0.8 * len(x_train))
        x_train, x_test, split = x_train[:cut], x_train[cut:], "validation"
    epochs = args.epochs or (300 if args.model == "mlp" else 150)
    iw_samples, iw_images = args.iw_samples, args.iw_images
    if args.quick:
        x_train, epochs = x_train[:400], args.epochs or 5
        iw_samples, iw_images = min(iw_samples, 20), iw_images or 50
    eval_binary = binarize(x_test, np.random.default_rng(BINARIZATION_SEED))
    train_binary = binarize(x_train, np.random.default_rng(BINARIZATION_SEED + 1))  # for the loss before/after
    iw_images = min(iw_images or len(eval_binary), len(eval_binary))

    model = build_model(args.model, args.latent, args.hidden).to(args.device)
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    log(f"vae: {len(x_train)} training / {len(x_test)} {split} images (binarised); {args.model}, latent {args.latent}, "
        f"hidden {args.hidden}, Adam lr {args.lr}, batch {args.batch_size}, {epochs} epochs")

    initial = evaluate_elbo(model, train_binary)
    report_every = max(1, epochs // 10)

    def on_epoch(epoch, loss):
        if (epoch + 1) % report_every == 0 or epoch + 1 == epochs:
            log(f"epoch {epoch + 1:4d}/{epochs}: train -ELBO {loss:.3f}")

    start = time.perf_counter()
    history = train(model, optimizer, x_train, epochs, args.batch_size, on_epoch)
    train_time = time.perf_counter() - start

    final = evaluate_elbo(model, train_binary)
    evaluation = evaluate_elbo(model, eval_binary, args.elbo_samples)
    start = time.perf_counter()
    iw = importance_weighted_log_likelihood(model, eval_binary[:iw_images], iw_samples)
    iw_time = time.perf_counter() - start
    baseline, floor = pixel_mean_baseline(x_train, eval_binary), binarization_entropy(x_test)
    gain = baseline[:iw_images] + iw  # per image: baseline NLL - IWAE NLL
    log(f"{split}: -ELBO {evaluation['loss']:.3f} = reconstruction {evaluation['reconstruction']:.3f} + KL "
        f"{evaluation['kl']:.3f} nats; IWAE (K={iw_samples}, {iw_images} images) NLL <= {-iw.mean():.3f}; "
        f"pixel-mean baseline {baseline.mean():.3f}; binarisation noise floor {floor:.3f}")
    if args.plot:
        plot_figure(args.plot, model, eval_binary, args.seed)

    def stderr(values):
        return float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0

    result = {"split": split, f"{split}_nelbo": evaluation["loss"],
              f"{split}_reconstruction": evaluation["reconstruction"], f"{split}_kl": evaluation["kl"],
              f"{split}_iwae_nll": float(-iw.mean()), f"{split}_iwae_nll_stderr": stderr(iw),
              "iw_samples": iw_samples, "iw_images": iw_images, "iw_time_s": round(iw_time, 3),
              "baseline_nll": float(baseline.mean()), "iwae_gain_over_baseline": float(gain.mean()),
              "iwae_gain_over_baseline_stderr": stderr(gain),
              "noise_floor_nll": floor, "initial_loss": initial["loss"],
              "final_loss": final["loss"], "train_loss_last_epoch": history[-1], "epochs": epochs,
              "train_time_s": round(train_time, 3), "images_per_s": round(epochs * len(x_train) / train_time, 1),
              "model": args.model, "latent": args.latent, "hidden": args.hidden, "batch_size": args.batch_size,
              "lr": args.lr, "elbo_samples": args.elbo_samples,
              "binarization": "dynamic (train), fixed seed (evaluation)",
              "train_images": len(x_train), "eval_images": len(x_test), "threads": rosenblatt.get_num_threads(),
              "device": str(args.device)}
    print_result(result)
    return result


if __name__ == "__main__":
    main()
