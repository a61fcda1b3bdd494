"""Semantic segmentation with a fully convolutional network (FCN; Long, Shelhamer & Darrell, 2015).

A classifier's fully connected layers become convolutions, so the network maps an image of any
size to a coarse grid of class scores; a transposed convolution initialised to bilinear
interpolation up-samples the scores to the image, and skip connections fuse scores computed on
finer, shallower feature maps (FCN-32s: the coarsest scores alone; 16s: plus the next finer map;
8s: plus the one below that). Each pixel is classified by a per-pixel cross entropy.

No data set is downloaded: every image is drawn here with NumPy. Circles, squares, triangles
and thin bars of random size, rotation and colour overlap on a smooth, noisy background; the
label of a pixel is the kind of the shape drawn on top there (0 for background). Colour never
tells the kind, so the network must learn shape. Training scenes are drawn fresh for every
batch; the held-out scenes come from a separate random stream.

The paper's VGG-16 pools five times (strides 2 ... 32) and fuses pool4 (stride 16) and pool3
(stride 8). These 64-pixel images are pooled four times instead, so every stride is halved: the
variants keep the paper's names, and the JSON gives each one's actual output stride
(32s: 16, 16s: 8, 8s: 4).

Measured (seed 0, defaults: 1000 steps of 16 scenes, 256 held-out scenes, --threads 1, about 5
minutes per variant on a shared 2-core host): FCN-32s / 16s / 8s reach mean IoU 0.50 / 0.72 / 0.78,
pixel accuracy 0.887 / 0.947 / 0.962; within 2 pixels of a label boundary the pixel accuracy is
0.65 / 0.82 / 0.87, away from boundaries 0.981 / 0.997 / 0.997. Skip fusion pays at the boundaries,
as the paper found, and far more than its 59.4 -> 62.4 -> 62.7 mean IU on PASCAL VOC: at stride 16
a 64-pixel image is scored on a 4x4 grid.

    python -m rosenblatt.examples.segment                        # FCN-8s
    python -m rosenblatt.examples.segment --variant 32s,16s,8s   # the paper's comparison, same data and seed
    python -m rosenblatt.examples.segment --device cuda          # the model and each batch on the GPU; scenes
                                                                 # are drawn and scored on the host
"""
from __future__ import annotations

import argparse
import math
import time
from typing import NamedTuple

import numpy as np

import rosenblatt
import rosenblatt.nn.functional as F
from rosenblatt import nn, optim

from ._common import add_run_options, check_loss, log, positive, print_result, set_threads

CLASSES = ("background", "circle", "square", "triangle", "bar")
GLYPHS = ".o#^="  # one character per class, for the ASCII rendering
VARIANTS = {"32s": 0, "16s": 1, "8s": 2}  # variant -> number of skip fusions
POOLS = 4  # the backbone's pooling stages: output strides 2, 4, 8, 16


# ---- the data: procedural scenes -------------------------------------------------------------------

class Shape(NamedTuple):
    kind: int                 # class index (1 .. len(CLASSES) - 1)
    colour: np.ndarray        # (3,) RGB in [0, 1]
    mask: np.ndarray          # (H, W) bool: the pixels the shape covers (before later shapes occlude it)


class Scene(NamedTuple):
    image: np.ndarray         # (3, H, W) float32 in [0, 1]
    label: np.ndarray         # (H, W) int64 class per pixel
    background: np.ndarray    # (3, H, W) float32: the texture under the shapes
    shapes: list              # Shape, in drawing order (later ones on top)


def _pixel_grid(size: int):
    """Pixel centres (y, x), each (size, size), in pixel units."""
    centres = np.arange(size) + 0.5
    return np.meshgrid(centres, centres, indexing="ij")


def _rotated(y, x, cy, cx, angle):
    """Coordinates (u, v) of the pixel centres in a frame centred on (cy, cx) and turned by angle."""
    dy, dx = y - cy, x - cx
    c, s = math.cos(angle), math.sin(angle)
    return c * dx + s * dy, -s * dx + c * dy


def shape_mask(kind: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """The (size, size) mask of one shape of the given kind at a random place, size and rotation.
    Sizes scale with the image: at 64 pixels a circle's radius is 6-13, a bar 3-5 wide."""
    y, x = _pixel_grid(size)
    cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
    angle = rng.uniform(0, 2 * math.pi)
    name = CLASSES[kind]
    if name == "circle":
        radius = rng.uniform(0.09, 0.2) * size
        return (y - cy) ** 2 + (x - cx) ** 2 <= radius ** 2
    u, v = _rotated(y, x, cy, cx, angle)
    if name == "square":
        half = rng.uniform(0.08, 0.18) * size
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    if name == "triangle":  # equilateral: inside all three edges, each at the inradius R/2 from the centre
        radius = rng.uniform(0.13, 0.26) * size
        inside = np.ones_like(u, dtype=bool)
        for k in range(3):
            normal = angle + 2 * math.pi * k / 3
            inside &= u * math.cos(normal) + v * math.sin(normal) <= radius / 2
        return inside
    if name == "bar":
        half_length, half_width = rng.uniform(0.2, 0.38) * size, rng.uniform(0.025, 0.04) * size
        return (np.abs(u) <= half_length) & (np.abs(v) <= half_width)
    raise ValueError(f"segment: unknown shape kind {kind}")


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(3, size, size): a random base colour, a linear gradient and smooth blotches (a 6x6 grid of
    random colours, bilinearly up-sampled)."""
    y, x = _pixel_grid(size)
    base = rng.uniform(0.2, 0.8, (3, 1, 1))
    gradient = rng.uniform(-0.15, 0.15, (3, 1, 1)) * (x / size - 0.5) \
        + rng.uniform(-0.15, 0.15, (3, 1, 1)) * (y / size - 0.5)
    coarse = rng.uniform(-0.12, 0.12, (1, 3, 6, 6)).astype(np.float32)
    blotches = F.interpolate(rosenblatt.tensor(coarse), size=(size, size), mode="bilinear", align_corners=False)
    return np.clip(base + gradient + blotches.data[0], 0, 1).astype(np.float32)


def _distinct_colour(avoid: list, rng: np.random.Generator, distance: float = 0.35) -> np.ndarray:
    """A random RGB colour at least `distance` (Euclidean) from every colour in avoid, so that each
    shape is visible against the background and against shapes it may overlap."""
    candidates = rng.uniform(0, 1, (64, 3))
    far = np.all(np.linalg.norm(candidates[:, None, :] - np.asarray(avoid)[None], axis=2) >= distance, axis=1)
    return candidates[np.argmax(far)] if far.any() else candidates[0]


def draw_scene(rng: np.random.Generator, size: int = 64, min_shapes: int = 2, max_shapes: int = 5,
               noise: float = 0.03) -> Scene:
    """One image with min_shapes..max_shapes shapes of random kinds drawn in order over a textured
    background, its label map (the kind of the topmost shape at each pixel, 0 elsewhere), and the
    parts it was made of. Pixel noise N(0, noise^2) is added to the whole image at the end."""
    background = _background(size, rng)
    image, label = background.copy(), np.zeros((size, size), np.int64)
    shapes = []
    for kind in rng.integers(1, len(CLASSES), rng.integers(min_shapes, max_shapes + 1)):
        mask = shape_mask(int(kind), size, rng)
        colour = _distinct_colour([background.mean(axis=(1, 2))] + [s.colour for s in shapes], rng)
        image[:, mask] = colour[:, None]
        label[mask] = kind
        shapes.append(Shape(int(kind), colour.astype(np.float32), mask))
    if noise:
        image = np.clip(image + rng.normal(0, noise, image.shape), 0, 1)
    return Scene(image.astype(np.float32), label, background, shapes)


def make_scenes(n: int, size: int, rng: np.random.Generator, noise: float = 0.03):
    """(images (n, 3, size, size) float32, labels (n, size, size) int64)."""
    scenes = [draw_scene(rng, size, noise=noise) for _ in range(n)]
    return np.stack([s.image for s in scenes]), np.stack([s.label for s in scenes])


# ---- the model --------------------------------------------------------------------------------------

def bilinear_upsampler(channels: int, factor: int, trainable: bool = True) -> nn.ConvTranspose2d:
    """A transposed convolution that up-samples each channel by `factor`, initialised to bilinear
    interpolation (FCN's kernel 2f - f % 2, padding ceil((f - 1) / 2)). Its output has exactly
    factor x the input's size, in register with it: output pixel o samples input position
    (o + 0.5) / f - 0.5 (torch's align_corners=False), exactly so wherever all its taps fall inside
    the input; the outermost ~f/2 pixels see zero padding."""
    layer = nn.ConvTranspose2d(channels, channels, 2 * factor - factor % 2, stride=factor,
                               padding=math.ceil((factor - 1) / 2), bias=False)
    nn.init.bilinear_(layer.weight)
    layer.weight.requires_grad_(trainable)
    return layer


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    """VGG's block: two 3x3 convolutions with batch norm and ReLU, then 2x2 max pooling."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
                         nn.MaxPool2d(2))


class FCN(nn.Module):
    """FCN-32s / 16s / 8s on a small VGG-like backbone (widths w, 2w, 4w, 6w; classifier 8w).

    pool2 (stride 4) and pool3 (stride 8) play the paper's pool3 and pool4, pool4 (stride 16) its
    pool5. fc6 is the paper's fully connected layer over a window of pool5 features (7x7 there, 3x3
    here) as a convolution; fc7 and the class scores are 1x1 convolutions. Each skip adds a 1x1
    score layer on a finer pooling output, zero-initialised as in the paper (so training starts from
    the coarser net's prediction), to the coarser scores up-sampled 2x by a learned transposed
    convolution initialised bilinear; the last up-sampling to the image is bilinear and frozen.

    FCN pads its input by 100 pixels and crops each up-sampled map back into register; here each
    transposed convolution's padding keeps the maps in register already, and output_size absorbs
    the odd row or column that floor pooling drops, so any image size works."""

    def __init__(self, variant: str = "8s", num_classes: int = len(CLASSES), width: int = 16):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"segment: unknown variant {variant!r} (one of {', '.join(VARIANTS)})")
        self.variant, self.skips = variant, VARIANTS[variant]
        c1, c2, c3, c4, fc = width, 2 * width, 4 * width, 6 * width, 8 * width
        self.pool1, self.pool2, self.pool3, self.pool4 = _stage(3, c1), _stage(c1, c2), _stage(c2, c3), _stage(c3, c4)
        self.fc6 = nn.Sequential(nn.Conv2d(c4, fc, 3, padding=1), nn.ReLU())
        self.fc7 = nn.Sequential(nn.Conv2d(fc, fc, 1), nn.ReLU())
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        if self.skips >= 1:
            self.upscore2 = bilinear_upsampler(num_classes, 2)
            self.score_pool3 = self._zero(nn.Conv2d(c3, num_classes, 1))
        if self.skips >= 2:
            self.upscore_pool3 = bilinear_upsampler(num_classes, 2)
            self.score_pool2 = self._zero(nn.Conv2d(c2, num_classes, 1))
        self.output_stride = 2 ** (POOLS - self.skips)
        self.upscore = bilinear_upsampler(num_classes, self.output_stride, trainable=False)

    @staticmethod
    def _zero(layer):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)
        return layer

    def forward(self, x):
        pool2 = self.pool2(self.pool1(x))           # stride 4
        pool3 = self.pool3(pool2)                   # stride 8
        pool4 = self.pool4(pool3)                   # stride 16
        score = self.score_fr(self.fc7(self.fc6(pool4)))
        if self.skips >= 1:
            score = self.upscore2(score, output_size=pool3.shape[-2:]) + self.score_pool3(pool3)
        if self.skips >= 2:
            score = self.upscore_pool3(score, output_size=pool2.shape[-2:]) + self.score_pool2(pool2)
        return self.upscore(score, output_size=x.shape[-2:])


# ---- metrics (the paper's section 5 and its score.py) --------------------------------------------

def confusion_matrix(prediction: np.ndarray, truth: np.ndarray, num_classes: int, mask=None) -> np.ndarray:
    """(num_classes, num_classes) int64 counts: row = true class, column = predicted class, over the
    pixels where mask (if given) is true."""
    prediction, truth = np.asarray(prediction).ravel(), np.asarray(truth).ravel()
    if mask is not None:
        keep = np.asarray(mask).ravel()
        prediction, truth = prediction[keep], truth[keep]
    return np.bincount(num_classes * truth + prediction, minlength=num_classes ** 2).reshape(num_classes, num_classes)


def pixel_accuracy(confusion: np.ndarray) -> float:
    """sum_i n_ii / sum_i t_i: the fraction of pixels labelled correctly (NaN for no pixels)."""
    total = confusion.sum()
    return float(np.trace(confusion) / total) if total else float("nan")


def class_iou(confusion: np.ndarray) -> np.ndarray:
    """Per class: n_ii / (t_i + sum_j n_ji - n_ii) = |pred & truth| / |pred | truth|.

    A class absent from both prediction and truth has no union: its IoU is undefined, NaN, and the
    means below leave it out (as FCN's score.py, np.nanmean over the confusion of the whole test
    set). A class predicted but absent from the truth has IoU 0 and counts."""
    intersection = np.diag(confusion).astype(np.float64)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        return intersection / union


def mean_iou(confusion: np.ndarray) -> float:
    """(1 / n_cl) sum_i IoU_i over the classes present in prediction or truth."""
    iou = class_iou(confusion)
    return float(np.nanmean(iou)) if not np.all(np.isnan(iou)) else float("nan")


def mean_class_accuracy(confusion: np.ndarray) -> float:
    """(1 / n_cl) sum_i n_ii / t_i over the classes present in the truth."""
    truth = confusion.sum(axis=1)
    present = truth > 0
    return float(np.mean(np.diag(confusion)[present] / truth[present])) if present.any() else float("nan")


def frequency_weighted_iou(confusion: np.ndarray) -> float:
    """(sum_k t_k)^-1 sum_i t_i IoU_i: IoU weighted by each class's share of the true pixels."""
    truth = confusion.sum(axis=1)
    present = truth > 0
    if not present.any():
        return float("nan")
    return float(np.sum(truth[present] * class_iou(confusion)[present]) / truth.sum())


def boundary_band(labels: np.ndarray, width: int = 2) -> np.ndarray:
    """(N, H, W) bool: pixels within `width` pixels (chessboard distance) of a label change, the
    'trimap' band on which a coarse prediction loses most (an edge is a pixel whose right or lower
    neighbour has another label, marked on both sides)."""
    edge = np.zeros(labels.shape, dtype=bool)
    horizontal = labels[..., :, 1:] != labels[..., :, :-1]
    vertical = labels[..., 1:, :] != labels[..., :-1, :]
    edge[..., :, 1:] |= horizontal
    edge[..., :, :-1] |= horizontal
    edge[..., 1:, :] |= vertical
    edge[..., :-1, :] |= vertical
    padded = np.pad(edge, [(0, 0)] * (labels.ndim - 2) + [(width, width)] * 2)
    band = np.zeros_like(edge)
    h, w = labels.shape[-2:]
    for dy in range(2 * width + 1):  # a (2 width + 1)^2 dilation as shifted ORs of whole arrays
        for dx in range(2 * width + 1):
            band |= padded[..., dy:dy + h, dx:dx + w]
    return band


def segmentation_metrics(prediction: np.ndarray, truth: np.ndarray, num_classes: int = len(CLASSES)) -> dict:
    """The paper's four metrics on all pixels, and pixel accuracy and mean IoU on the boundary band."""
    confusion = confusion_matrix(prediction, truth, num_classes)
    band = boundary_band(truth)
    band_confusion = confusion_matrix(prediction, truth, num_classes, band)
    rounded = lambda v: None if math.isnan(v) else round(float(v), 4)  # noqa: E731 - JSON has no NaN
    return {"pixel_accuracy": rounded(pixel_accuracy(confusion)), "mean_iou": rounded(mean_iou(confusion)),
            "mean_accuracy": rounded(mean_class_accuracy(confusion)),
            "frequency_weighted_iou": rounded(frequency_weighted_iou(confusion)),
            "class_iou": {name: rounded(v) for name, v in zip(CLASSES, class_iou(confusion))},
            "boundary_pixel_accuracy": rounded(pixel_accuracy(band_confusion)),
            "boundary_mean_iou": rounded(mean_iou(band_confusion)),
            "interior_pixel_accuracy": rounded(pixel_accuracy(confusion - band_confusion)),
            "boundary_fraction": rounded(band.mean())}


# ---- training and evaluation ----------------------------------------------------------------------

def _inputs(images: np.ndarray, device):
    """A batch drawn on the host, centred, on the model's device (the tensor itself on the CPU)."""
    return rosenblatt.tensor(images - np.float32(0.5)).to(device)


def _model_device(model: FCN):
    return model.score_fr.weight.device


def predict(model: FCN, images: np.ndarray, labels: np.ndarray, batch_size: int = 64):
    """(predicted labels (N, H, W), mean per-pixel cross entropy) in eval mode; each batch's scores stay
    on the model's device, only the labels and the summed loss come back."""
    model.eval()
    device = _model_device(model)
    predictions, loss_sum = [], 0.0
    with rosenblatt.no_grad():
        for start in range(0, len(images), batch_size):
            scores = model(_inputs(images[start:start + batch_size], device))
            target = rosenblatt.tensor(labels[start:start + batch_size]).to(device)
            loss_sum += F.cross_entropy(scores, target, reduction="sum").item()
            predictions.append(scores.argmax(dim=1).cpu().numpy())
    model.train()
    return np.concatenate(predictions), loss_sum / labels.size


def render(*maps: np.ndarray, titles=()) -> str:
    """Label maps side by side as text, one glyph per class; every other row, as a character
    cell is about twice as tall as it is wide."""
    lines = ["   ".join(t.ljust(maps[0].shape[1]) for t in titles)] if titles else []
    for rows in zip(*(m[::2] for m in maps)):
        lines.append("   ".join("".join(GLYPHS[c] for c in row) for row in rows))
    return "\n".join(lines)


def train_variant(variant: str, args, train_seed: np.random.SeedSequence, test_images, test_labels) -> dict:
    """Build FCN-<variant> from the seed, train it on fresh scenes, and measure it on the test set.
    train_time_s includes drawing the training scenes (data_time_s of it)."""
    rosenblatt.manual_seed(args.seed)  # every variant starts from the same backbone weights
    model = FCN(variant, width=args.width).to(args.device)  # before the optimizer, as torch
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.Adam(parameters, lr=args.lr)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.steps)
    rng = np.random.default_rng(train_seed)  # and sees the same training scenes
    _, initial_loss = predict(model, test_images, test_labels)
    log(f"segment: FCN-{variant} (output stride {model.output_stride}), "
        f"{sum(p.data.size for p in parameters)} trained parameters; held-out loss before training {initial_loss:.4f}")

    losses, data_time, start = [], 0.0, time.perf_counter()
    for step in range(1, args.steps + 1):
        drawn = time.perf_counter()
        images, labels = make_scenes(args.batch_size, args.size, rng, args.noise)
        data_time += time.perf_counter() - drawn
        loss = F.cross_entropy(model(_inputs(images, args.device)), rosenblatt.tensor(labels).to(args.device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        losses.append(check_loss(loss.item(), f"segment: FCN-{variant}", f"step {step}"))
        if step % args.log_every == 0 or step == args.steps:
            log(f"  step {step:5d}/{args.steps}  loss {np.mean(losses[-args.log_every:]):.4f}  "
                f"{step * args.batch_size / (time.perf_counter() - start):.1f} images/s")
    train_time = time.perf_counter() - start

    prediction, final_loss = predict(model, test_images, test_labels)
    metrics = segmentation_metrics(prediction, test_labels)
    log(f"  FCN-{variant}: held-out pixel accuracy {metrics['pixel_accuracy']}, mean IoU {metrics['mean_iou']}, "
        f"boundary accuracy {metrics['boundary_pixel_accuracy']}, loss {initial_loss:.4f} -> {final_loss:.4f}")
    log(render(test_labels[0], prediction[0], titles=("truth", f"FCN-{variant}")))
    tail = max(1, min(20, len(losses) // 5))
    return {"variant": variant, "output_stride": model.output_stride, **metrics,
            "initial_loss": round(initial_loss, 4), "final_loss": round(final_loss, 4),
            "train_loss_first": round(float(np.mean(losses[:tail])), 4),
            "train_loss_last": round(float(np.mean(losses[-tail:])), 4),
            "train_time_s": round(train_time, 3), "data_time_s": round(data_time, 3),
            "images_per_s": round(args.steps * args.batch_size / train_time, 1),
            "parameters": sum(p.data.size for p in parameters)}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.segment",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--variant", default="8s", help="32s, 16s or 8s, or several separated by commas (each "
                        "trained on the same scenes from the same seed; the first is the headline). Default 8s")
    parser.add_argument("--size", type=positive(int), default=None, help="image height and width in pixels (default 64; "
                        "quick 32)")
    parser.add_argument("--steps", type=positive(int), default=None, help="training steps (default 1000; quick 40)")
    parser.add_argument("--batch-size", type=positive(int), default=None, help="default 16 (quick 8)")
    parser.add_argument("--lr", type=float, default=3e-3, help="Adam's learning rate, cosine-annealed to 0")
    parser.add_argument("--width", type=positive(int), default=None, help="channels of the first stage (default 16; quick 8)")
    parser.add_argument("--test-images", type=positive(int), default=None, help="held-out scenes (default 256; quick 32)")
    parser.add_argument("--noise", type=float, default=0.03, help="std of the pixel noise added to every image")
    parser.add_argument("--log-every", type=positive(int), default=100)
    parser.add_argument("--quick", action="store_true", help="a small net on 32-pixel images for seconds (tests)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    variants = [v.strip() for v in args.variant.split(",") if v.strip()]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        parser.error(f"--variant: unknown {', '.join(unknown) or 'empty list'} (choose from {', '.join(VARIANTS)})")
    if not (math.isfinite(args.lr) and args.lr > 0) or not (math.isfinite(args.noise) and args.noise >= 0):
        parser.error(f"--lr must be positive and --noise non-negative, got {args.lr} and {args.noise}")
    args.size = args.size or (32 if args.quick else 64)
    if args.size < 2 ** POOLS:
        parser.error(f"--size must be at least {2 ** POOLS} (the backbone pools {POOLS} times), got {args.size}")
    args.steps = args.steps or (40 if args.quick else 1000)
    args.batch_size = args.batch_size or (8 if args.quick else 16)
    args.width = args.width or (8 if args.quick else 16)
    args.test_images = args.test_images or (32 if args.quick else 256)
    if args.quick:
        args.log_every = min(args.log_every, 10)

    # separate random streams for the held-out scenes and the training scenes
    test_seed, train_seed = np.random.SeedSequence(args.seed).spawn(2)
    test_images, test_labels = make_scenes(args.test_images, args.size, np.random.default_rng(test_seed), args.noise)
    shares = np.bincount(test_labels.ravel(), minlength=len(CLASSES)) / test_labels.size
    log(f"segment: {args.size}x{args.size} scenes, {args.steps} steps of {args.batch_size} fresh scenes, "
        f"{args.test_images} held-out; class shares " + ", ".join(f"{n} {s:.3f}" for n, s in zip(CLASSES, shares)))
    log("legend: " + ", ".join(f"{g} {n}" for g, n in zip(GLYPHS, CLASSES)))

    runs = {v: train_variant(v, args, train_seed, test_images, test_labels) for v in variants}
    if len(runs) > 1:
        columns = ("pixel_accuracy", "mean_iou", "boundary_pixel_accuracy", "boundary_mean_iou",
                   "interior_pixel_accuracy")
        log("variant  stride  " + "  ".join(columns))
        for v, run in runs.items():
            log(f"FCN-{v:<4} {run['output_stride']:6d}  " + "  ".join(f"{run[c]!s:>{len(c)}}" for c in columns))
    headline = runs[variants[0]]
    result = {**headline, "variants": runs, "size": args.size, "steps": args.steps, "batch_size": args.batch_size,
              "width": args.width, "test_images": args.test_images, "lr": args.lr,
              "threads": rosenblatt.get_num_threads(), "seed": args.seed, "device": str(args.device)}
    print_result(result)
    return result


if __name__ == "__main__":
    main()
