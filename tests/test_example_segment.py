"""The FCN segmentation case study (rosenblatt.examples.segment): its procedural scenes, the
bilinear up-sampling it is built on, its metrics on hand-made inputs, the model's shapes, and a
quick run of FCN-32s and FCN-8s."""
import math

import numpy as np
import pytest

import rosenblatt
import rosenblatt.nn.functional as F
from rosenblatt.examples import segment
from test_examples import run_example


# ---- the scenes -------------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", range(6))
def test_label_maps_agree_with_the_drawn_images(seed):
    """Each pixel shows the colour of the topmost shape covering it and carries that shape's kind;
    a pixel no shape covers is background: label 0 and the background texture."""
    scene = segment.draw_scene(np.random.default_rng(seed), size=48, noise=0.0)
    assert scene.image.shape == (3, 48, 48) and scene.label.shape == (48, 48) and scene.label.dtype == np.int64
    assert 2 <= len(scene.shapes) <= 5
    top = np.full((48, 48), -1)  # index of the topmost shape at each pixel
    for index, shape in enumerate(scene.shapes):
        assert 1 <= shape.kind < len(segment.CLASSES) and shape.mask.any()
        top[shape.mask] = index
    for index, shape in enumerate(scene.shapes):
        visible = top == index
        assert np.all(scene.label[visible] == shape.kind)
        assert np.array_equal(scene.image[:, visible], np.broadcast_to(shape.colour[:, None], (3, visible.sum())))
    uncovered = top == -1
    assert np.all(scene.label[uncovered] == 0)
    assert np.array_equal(scene.image[:, uncovered], scene.background[:, uncovered])
    assert np.all((0 <= scene.image) & (scene.image <= 1))


def test_noise_changes_the_pixels_but_not_the_labels():
    clean = segment.draw_scene(np.random.default_rng(3), size=32, noise=0.0)
    noisy = segment.draw_scene(np.random.default_rng(3), size=32, noise=0.03)
    assert np.array_equal(clean.label, noisy.label)
    difference = np.abs(noisy.image - clean.image)
    assert 0 < difference.max() < 6 * 0.03 and difference.mean() < 0.03


def test_every_kind_is_drawn_and_the_colour_does_not_tell_it():
    images, labels = segment.make_scenes(64, 32, np.random.default_rng(0), noise=0.0)
    assert images.shape == (64, 3, 32, 32) and images.dtype == np.float32 and labels.shape == (64, 32, 32)
    counts = np.bincount(labels.ravel(), minlength=len(segment.CLASSES))
    assert np.all(counts > 0) and counts[0] > counts[1:].max()
    # the mean colour of each kind's pixels is about the same grey: colours are drawn alike for all kinds
    means = np.array([images.transpose(1, 0, 2, 3)[:, labels == k].mean(axis=1) for k in range(1, 5)])
    assert np.all(np.abs(means - 0.5) < 0.12)


@pytest.mark.parametrize("kind, area", [(1, (math.pi * 0.09 ** 2, math.pi * 0.2 ** 2)),
                                        (2, (4 * 0.08 ** 2, 4 * 0.18 ** 2)),
                                        (3, (3 * math.sqrt(3) / 4 * 0.13 ** 2, 3 * math.sqrt(3) / 4 * 0.26 ** 2)),
                                        (4, (4 * 0.2 * 0.025, 4 * 0.38 * 0.04))])
def test_shape_masks_have_the_promised_areas(kind, area):
    """Pixel counts of shapes drawn in the middle of a large image, against the sizes drawn from."""
    size = 200
    masks = [segment.shape_mask(kind, size, np.random.default_rng(s)) for s in range(20)]
    fractions = np.array([m.mean() for m in masks])
    lowest, highest = area
    assert np.all(fractions > 0.8 * lowest) and np.all(fractions < 1.2 * highest)


# ---- the bilinear up-sampler --------------------------------------------------------------------------
def _interior(factor: int, n: int) -> slice:
    """Output positions o whose source (o + 0.5) / f - 0.5 lies in [0, n - 1]: all taps inside the input."""
    first = math.ceil(factor / 2 - 0.5)
    last = math.floor((n - 0.5) * factor - 0.5)
    return slice(first, last + 1)


@pytest.mark.parametrize("factor", [2, 3, 4, 16])
def test_bilinear_transposed_convolution_keeps_constants_and_ramps(factor):
    up = segment.bilinear_upsampler(2, factor)
    assert up.kernel_size == (2 * factor - factor % 2,) * 2 and up.bias is None
    h, w = 5, 7
    constant = np.full((1, 2, h, w), 3.25, np.float32)
    out = up(rosenblatt.tensor(constant)).data
    assert out.shape == (1, 2, h * factor, w * factor)
    rows, cols = _interior(factor, h), _interior(factor, w)
    np.testing.assert_allclose(out[:, :, rows, cols], 3.25, rtol=1e-6)
    assert out[0, 0, 0, 0] < 3.25  # the border sees the zero padding: "away from the border" matters

    i, j = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    ramp = np.stack([0.5 * i - 0.25 * j + 1.0, 2.0 * j]).astype(np.float32)[None]  # channels stay apart
    out = up(rosenblatt.tensor(ramp)).data
    source_i = (np.arange(h * factor) + 0.5) / factor - 0.5
    source_j = (np.arange(w * factor) + 0.5) / factor - 0.5
    si, sj = np.meshgrid(source_i, source_j, indexing="ij")
    expected = np.stack([0.5 * si - 0.25 * sj + 1.0, 2.0 * sj])[None]
    np.testing.assert_allclose(out[:, :, rows, cols], expected[:, :, rows, cols], atol=1e-5)
    reference = F.interpolate(rosenblatt.tensor(ramp), scale_factor=factor, mode="bilinear", align_corners=False)
    np.testing.assert_allclose(out[:, :, rows, cols], reference.data[:, :, rows, cols], atol=1e-5)


# ---- metrics ----------------------------------------------------------------------------------------
def test_metrics_on_a_constructed_prediction():
    truth = np.array([[0, 0, 1, 1], [0, 0, 1, 1]])
    prediction = np.array([[0, 1, 1, 1], [0, 0, 1, 2]])
    confusion = segment.confusion_matrix(prediction, truth, 4)
    np.testing.assert_array_equal(confusion, [[3, 1, 0, 0], [0, 3, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0]])
    assert segment.pixel_accuracy(confusion) == 6 / 8
    iou = segment.class_iou(confusion)
    # class 2: predicted once, never true -> IoU 0, and it counts; class 3: in neither -> undefined (NaN),
    # left out of the mean, as FCN's score.py (np.nanmean)
    np.testing.assert_allclose(iou[:3], [3 / 4, 3 / 5, 0.0])
    assert np.isnan(iou[3])
    assert segment.mean_iou(confusion) == pytest.approx((3 / 4 + 3 / 5 + 0) / 3)
    assert segment.mean_class_accuracy(confusion) == pytest.approx((3 / 4 + 3 / 4) / 2)
    assert segment.frequency_weighted_iou(confusion) == pytest.approx((4 * 3 / 4 + 4 * 3 / 5) / 8)

    metrics = segment.segmentation_metrics(prediction[None], truth[None], num_classes=4)
    assert metrics["class_iou"] == {"background": 0.75, "circle": 0.6, "square": 0.0, "triangle": None}
    assert metrics["mean_iou"] == pytest.approx(0.45) and metrics["pixel_accuracy"] == 0.75

    perfect = segment.segmentation_metrics(truth[None], truth[None])
    assert perfect["pixel_accuracy"] == perfect["mean_iou"] == perfect["boundary_mean_iou"] == 1.0
    assert perfect["class_iou"]["bar"] is None  # absent from both


def test_confusion_over_a_mask_and_the_boundary_band():
    truth = np.zeros((1, 6, 8), np.int64)
    truth[0, :, 4:] = 1  # one vertical edge between columns 3 and 4
    band = segment.boundary_band(truth, width=1)
    np.testing.assert_array_equal(band[0].any(axis=0), [False, False, True, True, True, True, False, False])
    assert band[0, :, 2:6].all()
    prediction = np.zeros_like(truth)
    prediction[0, :, 3:] = 1  # one column too far left: every error lies in the band
    inside = segment.confusion_matrix(prediction, truth, 2, band)
    assert inside.sum() == band.sum() and segment.pixel_accuracy(inside) == pytest.approx(3 / 4)
    metrics = segment.segmentation_metrics(prediction, truth, num_classes=2)
    assert metrics["interior_pixel_accuracy"] == 1.0 and metrics["boundary_pixel_accuracy"] < 1.0


# ---- the model --------------------------------------------------------------------------------------
@pytest.mark.parametrize("variant, stride", [("32s", 16), ("16s", 8), ("8s", 4)])
def test_fcn_variants_score_every_pixel_of_any_size(variant, stride):
    rosenblatt.manual_seed(0)
    model = segment.FCN(variant, width=4)
    assert model.output_stride == stride
    assert not model.upscore.weight.requires_grad  # the last up-sampling stays bilinear
    images = rosenblatt.tensor(np.random.default_rng(0).uniform(size=(2, 3, 37, 50)).astype(np.float32))
    scores = model(images)  # 37 and 50 are no multiples of 16: floor pooling drops pixels, output_size aligns
    assert scores.shape == (2, len(segment.CLASSES), 37, 50)
    F.cross_entropy(scores, np.zeros((2, 37, 50), np.int64)).backward()
    assert model.upscore.weight.grad is None
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    if variant != "32s":  # skip scores start at zero: training starts from the coarser net's prediction
        assert not np.any(model.score_pool3.weight.data)


def test_variants_are_checked():
    with pytest.raises(ValueError, match="unknown variant"):
        segment.FCN("4s")
    with pytest.raises(SystemExit):
        segment.main(["--variant", "8s,64s", "--quick"])
    with pytest.raises(SystemExit):
        segment.main(["--steps", "0", "--quick"])


# ---- the quick run ----------------------------------------------------------------------------------
def test_quick_run_of_fcn_32s_and_8s():
    result = run_example("segment", "--quick", "--threads", "1", "--variant", "32s,8s")
    keys = {"pixel_accuracy", "mean_iou", "class_iou", "boundary_pixel_accuracy", "initial_loss", "final_loss",
            "train_time_s", "images_per_s", "output_stride"}
    assert keys <= set(result) and set(result["variants"]) == {"32s", "8s"}
    assert result["variant"] == "32s" and set(result["class_iou"]) == set(segment.CLASSES)
    for variant, stride in [("32s", 16), ("8s", 4)]:
        run = result["variants"][variant]
        assert keys <= set(run) and run["output_stride"] == stride
        assert run["final_loss"] < run["initial_loss"] and run["train_loss_last"] < run["train_loss_first"]
        assert 0 <= run["mean_iou"] <= 1 and 0 < run["pixel_accuracy"] <= 1 and run["images_per_s"] > 0


def test_a_diverged_run_stops_instead_of_scoring_its_nan_net(capsys):
    # NaN scores argmax to class 0 everywhere: the JSON reported 84% pixel accuracy for a NaN network.
    with pytest.raises(SystemExit, match="segment: FCN-8s: the training loss is nan at step .*diverged"):
        segment.main(["--quick", "--threads", "1", "--lr", "1e6", "--steps", "3", "--test-images", "2"])
    assert "pixel_accuracy" not in capsys.readouterr().out


# ---- on a CUDA device ---------------------------------------------------------------------------
def test_segment_on_a_cuda_device_matches_the_cpu():
    """--device cuda on the NumPy stand-in for the CUDA backend (it refuses a silent fallback to NumPy and
    any kernel the real backend lacks): the model and every batch live there, the scenes are drawn on the
    host. Its weights start from the same host random stream, so the run reproduces the CPU's: on the
    stand-in the convolutions, pooling and batch norm are _C's own kernels and only the element-wise ops
    (Adam's update, the loss) sum in another order (~1e-7 relative); the metrics, rounded by the example to
    4 digits, agree to their last digit here. The tolerance, 1e-3 absolute, allows a rounding flip of that
    digit and ~8 of the 8,192 test pixels changing class."""
    from test_examples import main_on_fake_cuda_and_cpu
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(
        segment.main, ["--quick", "--threads", "1", "--variant", "32s,8s", "--steps", "10", "--test-images", "8"])
    assert calls and {"conv2d_forward", "conv_transpose2d_forward", "batch_norm_forward"} <= set(calls)
    assert on_device["device"] in ("cuda", "cuda:0") and on_cpu["device"] == "cpu"
    timing = {"train_time_s", "data_time_s", "images_per_s"}

    def agree(a, b, where):
        if isinstance(b, dict):
            assert set(a) == set(b), where
            for key in set(b) - timing - {"device"}:
                agree(a[key], b[key], f"{where}.{key}")
        elif isinstance(b, float):
            assert abs(a - b) <= 1e-3, f"{where}: {a} on the device, {b} on the CPU"
        else:
            assert a == b, f"{where}: {a!r} on the device, {b!r} on the CPU"

    agree(on_device, on_cpu, "result")
