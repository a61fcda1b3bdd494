"""Object localisation with SPP-net: convolutional features computed once per image, every candidate
window max-pooled from them by a spatial pyramid, then classified and its box refined.

He et al. (2014), "Spatial Pyramid Pooling in Deep Convolutional Networks for Visual Recognition":
R-CNN ran its convolutional network on each of ~2,000 warped windows of an image; SPP-net runs it
once on the whole image and pools each window's part of the last feature map into a fixed-length
vector by a spatial pyramid (here levels 1x1, 2x2, 4x4: 21 bins per channel). The pyramid over a
window is RoI max pooling (Fast R-CNN's layer, `F.roi_pool`, torchvision semantics) at output sizes
1, 2 and 4, concatenated: this is SPP-net's pooling, computed from the shared map. Fully connected
layers then give class scores and class-specific box offsets (Fast R-CNN's smooth L1 regression).

Data: no download. Scenes are drawn with NumPy: 64x64 RGB images on a cluttered background (a colour
gradient, line segments, dots and noise) holding 1-3 objects of four classes (circle, square, triangle,
cross) and 0-2 distractors (ring, diamond, L: background that looks like an object), all of random size
(12-28 pixels), aspect, position and colour, none overlapping; each ground-truth box is the tight box
around its object's pixels, (x1, y1, x2, y2) with the object in columns x1..x2-1 and rows y1..y2-1
(continuous coordinates, area (x2-x1)*(y2-y1), as torchvision's box_iou). A window's RoI covers the
stride-4 feature cells that hold its pixels (see rois_for).

Windows (the stand-in for selective search): a fixed multi-scale sliding-window set (5 sizes from 13 to
38 pixels, 3 aspect ratios, a stride of a third of the window's side: 1,228 windows), the same for every image and
blind to where the objects are; evaluation scores only these. Training adds jittered copies of each
ground-truth box and the boxes themselves. A window is labelled with the class of the ground-truth box
it overlaps with IoU >= 0.5, background when its best IoU is < 0.3, and is ignored in between;
each training image contributes up to 64 windows, at most a quarter of them objects.

Evaluation on held-out scenes: all windows of an image are scored, boxes refined, per-class greedy
non-maximum suppression (IoU > 0.3 suppresses), and VOC-style average precision at IoU 0.5 per class
(all-point interpolation, as VOC 2010 onwards: the area under the precision envelope; `--ap 11-point`
gives VOC 2007's), averaged over classes (mAP). Also: the accuracy of the window classifier on the
labelled windows of the test scenes, and the central claim of SPP-net measured: the time to score all
windows of the same images with the features computed once, against running the backbone on each
cropped window (windows of one size batched together, then `F.spp` over the crop's map and the same
head), in the same run, stage by stage.

    python -m rosenblatt.examples.localize --threads 1
    python -m rosenblatt.examples.localize --quick --threads 1  # seconds (for tests)
    python -m rosenblatt.examples.localize --device cuda        # the model, each batch and its RoIs on the GPU

On a device, scenes, window sampling, NMS and AP stay on the host (as a torch detector's input pipeline
and evaluation): each batch of images and its RoIs are copied to the device, the scores of all windows
of a chunk of images come back once; the stage timers wait for the device (rosenblatt.cuda.synchronize)
before reading the clock.

Measured (the default run, one thread, a shared 2-core machine): mAP@0.5 0.985 on 200 held-out scenes
(0.896 scoring the windows themselves, without box regression), 94% of the object windows and 99% of all
labelled windows classified right; about 1.5 minutes. Features once scored the 1,228 windows of 8
images 8.6x faster than the backbone per window: the backbone alone ran 54x faster (the crops hold 98x
the image's pixels), but the RoI pooling (three calls) and the fully connected head, which both ways
run on every window, take 87% of the features-once time (pooling 0.023 s, head 0.084 s of 0.123 s).
SPP-net's 24-102x were measured where the convolutions are most of the work; here they are not.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np

import rosenblatt
from rosenblatt import nn, optim
from rosenblatt.nn import functional as F
from rosenblatt.tensor import no_grad

from ._common import (add_run_options, apply_quick_defaults, between, check_loss, log, module_device, non_negative,
                      positive, print_result, set_threads)

CLASSES = ("circle", "square", "triangle", "cross")  # label 0 is background, label k is CLASSES[k - 1]
DISTRACTORS = ("ring", "diamond", "ell")              # shapes in the scenes that are background
IMAGE_SIZE = 64
FEATURE_STRIDE = 4  # two 2x2 max poolings in the backbone
PYRAMID_LEVELS = (1, 2, 4)
FOREGROUND_IOU, BACKGROUND_IOU = 0.5, 0.3
BOX_DELTA_STD = np.array([0.1, 0.1, 0.2, 0.2], np.float32)  # Fast R-CNN's normalisation of the regression targets


# ---- boxes -----------------------------------------------------------------------------------------
def box_iou(a, b) -> np.ndarray:
    """(N, 4) x (M, 4) boxes (x1, y1, x2, y2) -> (N, M) intersection over union; 0 where both are empty."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    width = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    height = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    intersection = width * height
    union = area_a[:, None] + area_b[None, :] - intersection
    return np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)


def nms(boxes, scores, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression (torchvision.ops.nms): indices of the kept boxes, highest score
    first; a box is dropped when its IoU with a kept, higher-scoring box exceeds iou_threshold."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    order = np.argsort(-np.asarray(scores, np.float64), kind="stable")
    keep = []
    while order.size:  # one pass per kept box; each compares it with all remaining boxes at once
        best, order = order[0], order[1:]
        keep.append(best)
        order = order[box_iou(boxes[best], boxes[order])[0] <= iou_threshold]
    return np.array(keep, np.int64)


def encode_boxes(windows, targets) -> np.ndarray:
    """R-CNN's box regression targets of `targets` relative to `windows` (both (K, 4)): centre shifts
    in units of the window's size and log size ratios, divided by BOX_DELTA_STD."""
    w, h = windows[:, 2] - windows[:, 0], windows[:, 3] - windows[:, 1]
    tw, th = targets[:, 2] - targets[:, 0], targets[:, 3] - targets[:, 1]
    deltas = np.stack([(targets[:, 0] + 0.5 * tw - windows[:, 0] - 0.5 * w) / w,
                       (targets[:, 1] + 0.5 * th - windows[:, 1] - 0.5 * h) / h,
                       np.log(tw / w), np.log(th / h)], axis=1)
    return (deltas / BOX_DELTA_STD).astype(np.float32)


def decode_boxes(windows, deltas, image_size: int = IMAGE_SIZE) -> np.ndarray:
    """The inverse of encode_boxes, clipped to the image; deltas (K, 4) or (K, C, 4) -> boxes of the same shape."""
    deltas = deltas * BOX_DELTA_STD
    shape = (-1,) + (1,) * (deltas.ndim - 2)
    w, h = (windows[:, 2] - windows[:, 0]).reshape(shape), (windows[:, 3] - windows[:, 1]).reshape(shape)
    cx, cy = windows[:, 0].reshape(shape) + 0.5 * w, windows[:, 1].reshape(shape) + 0.5 * h
    cx, cy = cx + deltas[..., 0] * w, cy + deltas[..., 1] * h
    w, h = w * np.exp(np.minimum(deltas[..., 2], 4.0)), h * np.exp(np.minimum(deltas[..., 3], 4.0))
    boxes = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=-1)
    return np.clip(boxes, 0, image_size)


# ---- scenes ----------------------------------------------------------------------------------------
def shape_mask(kind: str, width: int, height: int) -> np.ndarray:
    """(height, width) bool mask of a shape filling a width x height frame, sampled at pixel centres:
    the classes, or a distractor (background that looks like an object)."""
    v, u = np.meshgrid((np.arange(height) + 0.5) / height, (np.arange(width) + 0.5) / width, indexing="ij")
    radius2 = (u - 0.5) ** 2 + (v - 0.5) ** 2
    if kind == "circle":
        return radius2 <= 0.25
    if kind == "square":
        return np.ones((height, width), bool)
    if kind == "triangle":  # apex at the top middle, base along the bottom
        return np.abs(u - 0.5) <= 0.5 * v
    if kind == "cross":
        return (np.abs(u - 0.5) <= 1 / 6) | (np.abs(v - 0.5) <= 1 / 6)
    if kind == "ring":      # distractors from here on
        return (radius2 <= 0.25) & (radius2 >= 0.09)
    if kind == "diamond":
        return np.abs(u - 0.5) + np.abs(v - 0.5) <= 0.5
    if kind == "ell":
        return (u <= 1 / 3) | (v >= 2 / 3)
    raise ValueError(f"localize: unknown shape {kind!r}")


def _paint_clutter(image: np.ndarray, rng: np.random.Generator) -> None:
    """Line segments and dots of random colours: edges and blobs that are not objects."""
    size = image.shape[1]
    for _ in range(rng.integers(3, 8)):
        x0, y0 = rng.uniform(0, size, 2)
        angle, length = rng.uniform(0, np.pi), rng.uniform(6, 24)
        t = np.linspace(0, 1, int(2 * length) + 2)
        xs = np.clip(np.round(x0 + t * length * np.cos(angle)), 0, size - 1).astype(int)
        ys = np.clip(np.round(y0 + t * length * np.sin(angle)), 0, size - 1).astype(int)
        image[:, ys, xs] = rng.uniform(0, 1, (3, 1))
    yy, xx = np.mgrid[0:size, 0:size]
    for _ in range(rng.integers(2, 6)):
        cx, cy, r = rng.uniform(0, size), rng.uniform(0, size), rng.uniform(1, 2.5)
        image[:, (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r] = rng.uniform(0, 1, (3, 1))


def make_scene(rng: np.random.Generator, size: int = IMAGE_SIZE, max_objects: int = 3, max_distractors: int = 2,
               object_size=(12, 28)):
    """One scene: image (3, size, size) float32 in [0, 1], boxes (n, 4) float32 (x1, y1, x2, y2) tight
    around each object's pixels, labels (n,) int64 in 1..len(CLASSES), and masks: n (size, size) bool
    arrays of each object's pixels. Besides the 1..max_objects objects, up to max_distractors shapes
    of no class (DISTRACTORS), which are background. Shapes do not overlap (their boxes stay 2 pixels apart)."""
    direction = rng.normal(size=2)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ramp = direction[0] * (xx - 0.5) + direction[1] * (yy - 0.5)
    base = rng.uniform(0.25, 0.75, (3, 1, 1))
    image = np.clip(base + 0.3 * ramp[None] * rng.uniform(-1, 1, (3, 1, 1)), 0, 1)
    _paint_clutter(image, rng)

    wanted = [CLASSES[i] for i in rng.integers(0, len(CLASSES), rng.integers(1, max_objects + 1))]
    wanted += [DISTRACTORS[i] for i in rng.integers(0, len(DISTRACTORS), rng.integers(0, max_distractors + 1))]
    occupied, boxes, labels, masks = [], [], [], []
    for kind in wanted:
        for _ in range(40):  # rejection sampling of a placement apart from the shapes placed so far
            side, aspect = rng.uniform(*object_size), math.exp(rng.uniform(math.log(0.75), math.log(4 / 3)))
            # min/max, not np.clip: 0.5 us against 5-8 on a Python number, in a loop of ~100 tries per scene
            width = min(max(round(side * math.sqrt(aspect)), 8), size)
            height = min(max(round(side / math.sqrt(aspect)), 8), size)
            x0, y0 = int(rng.integers(0, size - width + 1)), int(rng.integers(0, size - height + 1))
            local = shape_mask(kind, width, height)
            rows, cols = np.flatnonzero(local.any(axis=1)), np.flatnonzero(local.any(axis=0))
            box = np.array([x0 + cols[0], y0 + rows[0], x0 + cols[-1] + 1, y0 + rows[-1] + 1], np.float32)
            if not occupied or box_iou(box + np.array([-2, -2, 2, 2], np.float32), np.array(occupied)).max() == 0:
                break
        else:
            continue  # no room left: the scene has one shape fewer
        mask = np.zeros((size, size), bool)
        mask[y0:y0 + height, x0:x0 + width] = local
        surround = image[:, mask].mean(axis=1)
        colour = rng.uniform(0, 1, 3)
        while np.abs(colour - surround).max() < 0.3:  # keep shapes visible against what they cover
            colour = rng.uniform(0, 1, 3)
        image[:, mask] = colour[:, None]
        occupied.append(box)
        if kind in CLASSES:
            boxes.append(box), labels.append(CLASSES.index(kind) + 1), masks.append(mask)
    image = np.clip(image + rng.normal(0, 0.05, image.shape), 0, 1).astype(np.float32)
    return image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64), masks


def make_scenes(count: int, rng: np.random.Generator, size: int = IMAGE_SIZE):
    """(images (N, 3, size, size), list of boxes (n_i, 4), list of labels (n_i,))."""
    scenes = [make_scene(rng, size) for _ in range(count)]
    return (np.stack([s[0] for s in scenes]), [s[1] for s in scenes], [s[2] for s in scenes])


# ---- windows ---------------------------------------------------------------------------------------
def sliding_windows(image_size: int = IMAGE_SIZE, sides=(13, 17, 22, 29, 38), aspects=(0.75, 1.0, 4 / 3),
                    stride_fraction: float = 1 / 3) -> np.ndarray:
    """(K, 4) float32 integer-valued windows: every side and aspect (width / height), at a stride of
    stride_fraction of the window's shorter side (at least 2 pixels), the last position flush with the
    image's edge. The defaults give 1,228 windows on 64x64, and every object of make_scene a window of
    IoU >= 0.6 with its box."""
    windows = []
    for side in sides:
        for aspect in aspects:
            width = min(image_size, int(round(side * math.sqrt(aspect))))
            height = min(image_size, int(round(side / math.sqrt(aspect))))
            stride = max(2, int(round(min(width, height) * stride_fraction)))
            xs = np.unique(np.append(np.arange(0, image_size - width + 1, stride), image_size - width))
            ys = np.unique(np.append(np.arange(0, image_size - height + 1, stride), image_size - height))
            x, y = np.meshgrid(xs, ys, indexing="xy")
            x, y = x.ravel(), y.ravel()
            windows.append(np.stack([x, y, x + width, y + height], axis=1))
    return np.concatenate(windows).astype(np.float32)


def jittered_boxes(boxes: np.ndarray, count: int, rng: np.random.Generator, image_size: int = IMAGE_SIZE,
                   shift: float = 0.2, scale: float = 0.25) -> np.ndarray:
    """`count` random perturbations of each box (centre moved by up to `shift` of its size, sides
    scaled by up to exp(+-scale)), clipped to the image: proposals around the objects for training."""
    boxes = np.repeat(boxes.reshape(-1, 4), count, axis=0)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    cx = boxes[:, 0] + 0.5 * w + rng.uniform(-shift, shift, len(boxes)) * w
    cy = boxes[:, 1] + 0.5 * h + rng.uniform(-shift, shift, len(boxes)) * h
    w, h = w * np.exp(rng.uniform(-scale, scale, len(boxes))), h * np.exp(rng.uniform(-scale, scale, len(boxes)))
    out = np.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], axis=1)
    out = np.clip(np.round(out), 0, image_size)
    keep = (out[:, 2] - out[:, 0] >= 4) & (out[:, 3] - out[:, 1] >= 4)
    return out[keep].astype(np.float32)


def label_windows(windows, gt_boxes, gt_labels, fg_iou: float = FOREGROUND_IOU, bg_iou: float = BACKGROUND_IOU):
    """(labels (K,) int64, matched ground-truth boxes (K, 4)): the class of the ground-truth box of highest
    IoU when that IoU >= fg_iou, 0 (background) when the highest IoU < bg_iou, -1 (ignored) in between."""
    windows = np.asarray(windows, np.float32).reshape(-1, 4)
    if len(gt_boxes) == 0:
        return np.zeros(len(windows), np.int64), np.zeros_like(windows)
    iou = box_iou(windows, gt_boxes)
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(len(windows)), best]
    labels = np.where(best_iou >= fg_iou, np.asarray(gt_labels)[best], np.where(best_iou < bg_iou, 0, -1))
    return labels.astype(np.int64), np.asarray(gt_boxes, np.float32)[best]


def sample_windows(labels: np.ndarray, count: int, fg_fraction: float, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `count` windows, at most fg_fraction of them objects, the rest background
    (Fast R-CNN's mini-batch)."""
    fg, bg = np.flatnonzero(labels > 0), np.flatnonzero(labels == 0)
    n_fg = min(len(fg), int(round(fg_fraction * count)))
    n_bg = min(len(bg), count - n_fg)
    return np.concatenate([rng.choice(fg, n_fg, replace=False), rng.choice(bg, n_bg, replace=False)])


# ---- the model -------------------------------------------------------------------------------------
def _conv_block(c_in: int, c_out: int) -> list:
    # Batch normalisation: without it this detector learns several times slower (measured on these scenes
    # before distractors were added: after 300 steps, 96% of the object windows right with it, 34% without).
    return [nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU()]


class SPPNet(nn.Module):
    """A small backbone (four 3x3 convolutions with batch normalisation, two 2x2 max poolings: stride 4,
    receptive field 26 pixels), a spatial pyramid over each window of its last feature map, two fully
    connected layers, then class scores (background + classes) and class-specific box offsets."""

    def __init__(self, num_classes: int = len(CLASSES), channels: int = 64, hidden: int = 256,
                 levels=PYRAMID_LEVELS):
        super().__init__()
        self.num_classes, self.levels = num_classes, tuple(levels)
        self.backbone = nn.Sequential(
            *_conv_block(3, 16), nn.MaxPool2d(2), *_conv_block(16, 32), nn.MaxPool2d(2),
            *_conv_block(32, channels), *_conv_block(channels, channels))
        pooled = channels * sum(level * level for level in self.levels)
        self.head = nn.Sequential(nn.Linear(pooled, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU())
        self.classifier = nn.Linear(hidden, num_classes + 1)
        self.box_regressor = nn.Linear(hidden, 4 * num_classes)

    def pool_windows(self, features, rois):
        """SPP-net's pyramid over each window of the shared map: RoI max pooling at each level's
        l x l bins, flattened and concatenated -> (K, C * sum(l * l)), the layout of F.spp. Host RoIs
        (an array) are copied to the features' device once for all levels."""
        if not isinstance(rois, rosenblatt.Tensor):
            rois = rosenblatt.tensor(np.asarray(rois, np.float32)).to(features.device)
        parts = [F.roi_pool(features, rois, level, 1.0 / FEATURE_STRIDE).reshape(len(rois), -1)
                 for level in self.levels]
        return rosenblatt.cat(parts, dim=1)

    def classify(self, pooled):
        """(class scores (K, C + 1), box offsets (K, C, 4))."""
        hidden = self.head(pooled)
        return self.classifier(hidden), self.box_regressor(hidden).reshape(-1, self.num_classes, 4)

    def forward(self, images, rois):
        """images (N, 3, H, W); rois (K, 5) = (image index, x1, y1, x2, y2) in roi_pool's convention (rois_for)."""
        return self.classify(self.pool_windows(self.backbone(images), rois))


def rois_for(windows: np.ndarray, image_index) -> np.ndarray:
    """(K, 5) RoIs (image index, x1, y1, x2, y2) for roi_pool at spatial_scale 1 / FEATURE_STRIDE: each window
    covers exactly the feature cells holding its first and last pixel. Feature cell j holds pixels
    4j..4j+3 (stride 4); roi_pool rounds a scaled coordinate (torchvision), and round((p - 1.5) / 4) is
    floor(p / 4) for every integer pixel p, so we pass the first and last pixels shifted by -1.5."""
    shift = (FEATURE_STRIDE - 1) / 2
    index = np.broadcast_to(np.asarray(image_index, np.float32), (len(windows),))
    rois = np.concatenate([index[:, None], windows[:, :2] - shift, windows[:, 2:] - 1 - shift], axis=1)
    return rois.astype(np.float32)


def detection_loss(model: SPPNet, images, rois, labels, box_targets, box_weight: float = 1.0):
    """Cross-entropy over all windows plus smooth L1 on the object windows' offsets for their own class,
    summed over coordinates and divided by the number of windows (Fast R-CNN's normalisation).
    images: a tensor on the model's device; rois, labels, box_targets: host arrays (copied there)."""
    device = images.device
    scores, offsets = model(images, rois)
    loss = F.cross_entropy(scores, rosenblatt.tensor(labels).to(device))
    fg = np.flatnonzero(labels > 0)
    if len(fg) and box_weight > 0:
        classes = rosenblatt.tensor(np.repeat(labels[fg, None, None] - 1, 4, axis=2)).to(device)
        picked = offsets[fg].gather(1, classes)
        box_loss = F.smooth_l1_loss(picked.reshape(-1, 4), rosenblatt.tensor(box_targets[fg]).to(device),
                                    reduction="sum") / len(labels)
        loss = loss + box_weight * box_loss
    return loss


# ---- training data ---------------------------------------------------------------------------------
class WindowSets:
    """Per training image: candidate windows (sliding set + jittered ground truth + the ground truth),
    their labels and their regression targets, computed once."""

    def __init__(self, boxes, labels, windows: np.ndarray, rng: np.random.Generator, jitters: int = 16):
        self.windows, self.labels, self.targets = [], [], []
        for gt_boxes, gt_labels in zip(boxes, labels):
            candidates = np.concatenate([windows, jittered_boxes(gt_boxes, jitters, rng), gt_boxes])
            window_labels, matched = label_windows(candidates, gt_boxes, gt_labels)
            targets = np.zeros_like(candidates)
            fg = window_labels > 0
            targets[fg] = encode_boxes(candidates[fg], matched[fg])
            self.windows.append(candidates), self.labels.append(window_labels), self.targets.append(targets)

    def batch(self, image_indices, per_image: int, fg_fraction: float, rng: np.random.Generator):
        """(rois (K, 5) indexed within the batch, labels (K,), box targets (K, 4))."""
        rois, labels, targets = [], [], []
        for position, i in enumerate(image_indices):
            chosen = sample_windows(self.labels[i], per_image, fg_fraction, rng)
            rois.append(rois_for(self.windows[i][chosen], position))
            labels.append(self.labels[i][chosen]), targets.append(self.targets[i][chosen])
        return np.concatenate(rois), np.concatenate(labels), np.concatenate(targets)


# ---- evaluation ------------------------------------------------------------------------------------
class StageTimer:
    """Seconds spent per stage, summed over calls: `with timer("backbone"): ...`. On a CUDA device the
    kernels run asynchronously: the timer waits for the device before reading the clock at both ends,
    so that a stage is charged with its own kernels, not those queued before it or still running."""

    def __init__(self, device=None):
        self.seconds: dict[str, float] = {}
        self._stage, self._start = None, 0.0
        self._device = device if device is not None and rosenblatt.device(device).type == "cuda" else None

    def _synchronize(self):
        if self._device is not None:
            rosenblatt.cuda.synchronize(rosenblatt.device(self._device).index or 0)

    def __call__(self, stage: str):
        self._stage = stage
        return self

    def __enter__(self):
        self._synchronize()
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        self._synchronize()
        self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + time.perf_counter() - self._start

    def total(self) -> float:
        return sum(self.seconds.values())


def score_windows(model: SPPNet, images: np.ndarray, windows: np.ndarray, chunk: int = 8, timer=None):
    """Features once per image, every window pooled from them: (probabilities (N, K, C + 1), offsets (N, K, C, 4))."""
    timer = timer or StageTimer()
    device = module_device(model)
    probabilities, offsets = [], []
    with no_grad():
        for start in range(0, len(images), chunk):
            batch = images[start:start + chunk]
            rois = np.concatenate([rois_for(windows, i) for i in range(len(batch))])
            with timer("backbone"):  # with the copy of the images to the device
                features = model.backbone(rosenblatt.tensor(batch).to(device))
            with timer("pooling"):  # with the copy of the RoIs
                pooled = model.pool_windows(features, rois)
            with timer("head"):  # with the copy of the probabilities back
                scores, deltas = model.classify(pooled)
                probabilities.append(scores.softmax(dim=1).cpu().numpy().reshape(len(batch), len(windows), -1))
            offsets.append(deltas.cpu().numpy().reshape(len(batch), len(windows), model.num_classes, 4))
    return np.concatenate(probabilities), np.concatenate(offsets)


def score_windows_per_crop(model: SPPNet, image: np.ndarray, windows: np.ndarray, timer=None) -> np.ndarray:
    """The R-CNN way for one image (3, H, W): crop every window, run the backbone on each crop (windows of
    one size batched together), SPP over the crop's whole map (F.spp), the same head -> probabilities (K, C + 1)."""
    timer = timer or StageTimer()
    device = module_device(model)
    sizes = (windows[:, 2:] - windows[:, :2]).astype(np.int64)
    probabilities = np.zeros((len(windows), model.num_classes + 1), np.float32)
    with no_grad():
        for width, height in np.unique(sizes, axis=0):
            group = np.flatnonzero((sizes[:, 0] == width) & (sizes[:, 1] == height))
            with timer("crop"):
                x0, y0 = windows[group, 0].astype(np.int64), windows[group, 1].astype(np.int64)
                rows = (y0[:, None] + np.arange(height))[:, :, None]          # (G, h, 1)
                cols = (x0[:, None] + np.arange(width))[:, None, :]           # (G, 1, w)
                crops = np.ascontiguousarray(image[:, rows, cols].transpose(1, 0, 2, 3))  # (G, 3, h, w)
            with timer("backbone"):  # with the copy of the crops to the device
                features = model.backbone(rosenblatt.tensor(crops).to(device))
            with timer("pooling"):
                pooled = F.spp(features, model.levels)
            with timer("head"):
                scores, _ = model.classify(pooled)
                probabilities[group] = scores.softmax(dim=1).cpu().numpy()
    return probabilities


def detect(probabilities: np.ndarray, offsets, windows: np.ndarray, score_threshold: float = 0.05,
           nms_iou: float = 0.3, max_per_class: int = 100):
    """One image's detections from its windows' probabilities (K, C + 1) and offsets (K, C, 4) (None: the
    windows themselves): per class, windows above score_threshold, refined, greedy NMS
    -> (boxes (D, 4), scores (D,), labels (D,))."""
    num_classes = probabilities.shape[1] - 1
    refined = (np.repeat(windows[:, None, :], num_classes, axis=1) if offsets is None
               else decode_boxes(windows, offsets))                   # (K, C, 4)
    boxes, scores, labels = [], [], []
    for c in range(1, num_classes + 1):
        candidates = np.flatnonzero(probabilities[:, c] >= score_threshold)
        candidates = candidates[np.argsort(-probabilities[candidates, c], kind="stable")[:max_per_class]]
        kept = candidates[nms(refined[candidates, c - 1], probabilities[candidates, c], nms_iou)]
        boxes.append(refined[kept, c - 1]), scores.append(probabilities[kept, c]), labels.append(np.full(len(kept), c))
    return np.concatenate(boxes).reshape(-1, 4), np.concatenate(scores), np.concatenate(labels).astype(np.int64)


def average_precision(is_true_positive, num_ground_truth: int, method: str = "all-point") -> float:
    """VOC average precision of detections already sorted by decreasing score, each marked true or false
    positive. "all-point" (VOC 2010+): the area under the precision envelope (precision at recall r made
    the highest precision at any recall >= r). "11-point" (VOC 2007): the envelope's mean at recall
    0, 0.1, ..., 1. NaN when there is no ground truth."""
    if num_ground_truth == 0:
        return float("nan")
    tp = np.cumsum(np.asarray(is_true_positive, bool))
    fp = np.cumsum(~np.asarray(is_true_positive, bool))
    recall = tp / num_ground_truth
    precision = tp / np.maximum(tp + fp, 1)
    if method == "11-point":
        return float(np.mean([precision[recall >= t].max(initial=0.0) for t in np.linspace(0, 1, 11)]))
    if method != "all-point":
        raise ValueError(f"localize: unknown AP method {method!r} (all-point or 11-point)")
    recall = np.concatenate([[0.0], recall, [1.0]])
    envelope = np.maximum.accumulate(np.concatenate([[0.0], precision, [0.0]])[::-1])[::-1]
    steps = np.flatnonzero(recall[1:] != recall[:-1])
    return float(np.sum((recall[steps + 1] - recall[steps]) * envelope[steps + 1]))


def mean_average_precision(detections, gt_boxes, gt_labels, num_classes: int = len(CLASSES),
                           iou_threshold: float = 0.5, method: str = "all-point"):
    """VOC evaluation: detections is one (boxes, scores, labels) per image. Per class, all images'
    detections in decreasing score; each is a true positive when its best-overlapping ground-truth box
    of that class in its image has IoU >= iou_threshold and was not matched by a higher-scoring
    detection, else a false positive. -> (mAP over classes with ground truth, [AP per class])."""
    per_class = []
    for c in range(1, num_classes + 1):
        found = [(i, score, box) for i, (boxes, scores, labels) in enumerate(detections)
                 for box, score in zip(boxes[labels == c], scores[labels == c])]
        found.sort(key=lambda d: -d[1])
        truth = [np.asarray(b)[np.asarray(l) == c] for b, l in zip(gt_boxes, gt_labels)]
        matched = [np.zeros(len(t), bool) for t in truth]
        hits = np.zeros(len(found), bool)
        for k, (i, _, box) in enumerate(found):  # VOC's loop: a ground-truth box is matched once
            if len(truth[i]):
                overlaps = box_iou(box, truth[i])[0]
                best = int(overlaps.argmax())
                if overlaps[best] >= iou_threshold and not matched[i][best]:
                    hits[k] = matched[i][best] = True
        per_class.append(average_precision(hits, sum(len(t) for t in truth), method))
    valid = [ap for ap in per_class if not math.isnan(ap)]
    return (float(np.mean(valid)) if valid else float("nan")), per_class


def window_accuracy(probabilities: np.ndarray, windows: np.ndarray, gt_boxes, gt_labels):
    """(accuracy over all labelled windows, accuracy over the object windows) of the argmax class."""
    correct, total, correct_fg, total_fg = 0, 0, 0, 0
    for p, boxes, labels in zip(probabilities, gt_boxes, gt_labels):
        truth, _ = label_windows(windows, boxes, labels)
        predicted = p.argmax(axis=1)
        labelled, fg = truth >= 0, truth > 0
        correct += int(np.sum(predicted[labelled] == truth[labelled])); total += int(labelled.sum())
        correct_fg += int(np.sum(predicted[fg] == truth[fg])); total_fg += int(fg.sum())
    return correct / max(total, 1), correct_fg / max(total_fg, 1)


def time_features_once_vs_per_window(model: SPPNet, images: np.ndarray, windows: np.ndarray, repeats: int = 2):
    """Score every window of `images`, one image at a time, both ways: (StageTimer of the features-once
    path, StageTimer of the backbone-per-window path, each its fastest of `repeats` passes; how often the
    two ways' argmax classes agree: they differ in what the convolutions see near a window's border)."""
    best_once, best_crops = None, None
    device = module_device(model)
    for _ in range(repeats):
        timer = StageTimer(device)
        once = [score_windows(model, image[None], windows, timer=timer)[0][0] for image in images]
        best_once = timer if best_once is None or timer.total() < best_once.total() else best_once
        timer = StageTimer(device)
        crops = [score_windows_per_crop(model, image, windows, timer=timer) for image in images]
        best_crops = timer if best_crops is None or timer.total() < best_crops.total() else best_crops
    agreement = float(np.mean([np.mean(a.argmax(1) == b.argmax(1)) for a, b in zip(once, crops)]))
    return best_once, best_crops, agreement


# ---- the case study --------------------------------------------------------------------------------
QUICK = dict(train_images=96, test_images=16, timing_images=1, epochs=4)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m rosenblatt.examples.localize",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-images", type=positive(int), default=1000)
    parser.add_argument("--test-images", type=positive(int), default=200)
    parser.add_argument("--epochs", type=positive(int), default=10)
    parser.add_argument("--batch-images", type=positive(int), default=8, help="images per step")
    parser.add_argument("--windows-per-image", type=positive(int), default=64,
                        help="sampled windows per image and step")
    parser.add_argument("--fg-fraction", type=between(float, 0.0, 1.0), default=0.25,
                        help="at most this share of a step's windows are objects")
    parser.add_argument("--lr", type=positive(float), default=1e-3, help="Adam's learning rate (cosine annealed)")
    parser.add_argument("--box-weight", type=non_negative(float), default=1.0,
                        help="weight of the smooth L1 box loss (0: none)")
    parser.add_argument("--nms-iou", type=between(float, 0.0, 1.0), default=0.3,
                        help="a detection suppresses those of its class that overlap it more than this")
    parser.add_argument("--ap", choices=["all-point", "11-point"], default="all-point")
    parser.add_argument("--timing-images", type=positive(int), default=8, help="test images scored both ways for the speed-up")
    parser.add_argument("--quick", action="store_true",
                        help="4 epochs on 96 scenes, 16 test scenes, 1 timing image, unless given (for tests)")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if args.quick:
        apply_quick_defaults(parser, args, QUICK)
    set_threads(args.threads)
    rosenblatt.manual_seed(args.seed)

    train_rng, test_rng, sample_rng = (np.random.default_rng([args.seed, stream]) for stream in range(3))
    start = time.perf_counter()
    train_images, train_boxes, train_labels = make_scenes(args.train_images, train_rng)
    test_images, test_boxes, test_labels = make_scenes(args.test_images, test_rng)
    windows = sliding_windows()
    train_sets = WindowSets(train_boxes, train_labels, windows, train_rng)
    log(f"localize: {args.train_images} training / {args.test_images} test scenes "
        f"({sum(map(len, test_boxes))} test objects), {len(windows)} sliding windows per image; "
        f"data in {time.perf_counter() - start:.1f} s")

    model = SPPNet().to(args.device)  # before the optimizer, as torch
    optimizer = optim.Adam(model.parameters(), lr=args.lr)
    steps_per_epoch = math.ceil(args.train_images / args.batch_images)
    scheduler = optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs * steps_per_epoch)

    # The same windows of the first training images before and after training: the loss's fall.
    monitor_images = np.arange(min(64, args.train_images))
    monitor = train_sets.batch(monitor_images, args.windows_per_image, args.fg_fraction,
                               np.random.default_rng(args.seed))

    def monitor_loss() -> float:
        model.eval()
        with no_grad():
            loss = detection_loss(model, rosenblatt.tensor(train_images[monitor_images]).to(args.device), *monitor,
                                  args.box_weight)
        model.train()
        return float(loss.item())

    initial_loss = monitor_loss()
    log(f"localize: initial loss {initial_loss:.4f}")
    start = time.perf_counter()
    for epoch in range(args.epochs):
        order = sample_rng.permutation(args.train_images)
        total = 0.0
        for step in range(steps_per_epoch):
            chosen = order[step * args.batch_images:(step + 1) * args.batch_images]
            rois, labels, targets = train_sets.batch(chosen, args.windows_per_image, args.fg_fraction, sample_rng)
            loss = detection_loss(model, rosenblatt.tensor(train_images[chosen]).to(args.device), rois, labels,
                                  targets, args.box_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += check_loss(float(loss.item()), "localize", f"epoch {epoch + 1}")
        log(f"localize: epoch {epoch + 1}/{args.epochs} loss {total / steps_per_epoch:.4f} "
            f"({time.perf_counter() - start:.1f} s)")
    train_time = time.perf_counter() - start
    final_loss = monitor_loss()

    model.eval()
    start = time.perf_counter()
    probabilities, offsets = score_windows(model, test_images, windows)
    detections = [detect(p, o, windows, nms_iou=args.nms_iou) for p, o in zip(probabilities, offsets)]
    eval_time = time.perf_counter() - start
    mean_ap, per_class = mean_average_precision(detections, test_boxes, test_labels, method=args.ap)
    plain = [detect(p, None, windows, nms_iou=args.nms_iou) for p in probabilities]
    mean_ap_plain, _ = mean_average_precision(plain, test_boxes, test_labels, method=args.ap)
    accuracy, accuracy_fg = window_accuracy(probabilities, windows, test_boxes, test_labels)
    log(f"localize: mAP@0.5 {mean_ap:.3f} ({args.ap}; {mean_ap_plain:.3f} without box regression), "
        + ", ".join(f"{name} {ap:.3f}" for name, ap in zip(CLASSES, per_class))
        + f"; window accuracy {accuracy:.4f} (objects {accuracy_fg:.4f})")

    timing = test_images[:args.timing_images]
    once, crops, agreement = time_features_once_vs_per_window(model, timing, windows)
    areas = (windows[:, 2] - windows[:, 0]) * (windows[:, 3] - windows[:, 1])
    for name, timer in (("features once", once), ("backbone per window", crops)):
        log(f"localize: {name}: {timer.total():.3f} s for {len(windows)} windows on {len(timing)} images ("
            + ", ".join(f"{stage} {seconds:.3f} s" for stage, seconds in timer.seconds.items()) + ")")
    log(f"localize: features once is {crops.total() / once.total():.1f}x faster in all, its backbone "
        f"{crops.seconds['backbone'] / once.seconds['backbone']:.0f}x (the crops hold "
        f"{areas.sum() / IMAGE_SIZE ** 2:.0f}x the image's pixels); the two ways' argmax classes agree on "
        f"{agreement:.1%} of windows")

    result = {"map": mean_ap, "map_without_box_regression": mean_ap_plain, "ap_method": args.ap,
              "ap_per_class": {name: None if math.isnan(ap) else ap for name, ap in zip(CLASSES, per_class)},
              "window_accuracy": accuracy,
              "window_accuracy_objects": accuracy_fg, "initial_loss": initial_loss, "final_loss": final_loss,
              "epochs": args.epochs, "train_images": args.train_images, "test_images": args.test_images,
              "test_objects": sum(map(len, test_boxes)), "windows_per_image": len(windows),
              "train_time_s": round(train_time, 3),
              "images_per_s": round(args.epochs * args.train_images / train_time, 1),
              "eval_images_per_s": round(args.test_images / eval_time, 1),
              "timing_images": len(timing), "features_once_s": round(once.total(), 4),
              "per_window_s": round(crops.total(), 4), "features_once_speedup": round(crops.total() / once.total(), 2),
              "backbone_speedup": round(crops.seconds["backbone"] / once.seconds["backbone"], 1),
              "features_once_stages_s": {k: round(v, 4) for k, v in once.seconds.items()},
              "per_window_stages_s": {k: round(v, 4) for k, v in crops.seconds.items()},
              "crop_pixels_ratio": round(float(areas.sum()) / IMAGE_SIZE ** 2, 1),
              "per_window_argmax_agreement": agreement, "seed": args.seed, "threads": rosenblatt.get_num_threads(),
              "device": str(args.device)}
    print_result(result)
    return result


if __name__ == "__main__":
    main()
