"""The SPP-net localisation case study (rosenblatt.examples.localize): its box arithmetic, NMS and VOC
average precision against hand-computed values, the generated scenes and window labels, the pyramid
pooled from the shared feature map, and the quick run end to end."""
import math

import numpy as np
import pytest
from test_examples import run_example

import rosenblatt
import rosenblatt.nn.functional as F
from rosenblatt.examples import localize


# ---- boxes -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b, expected", [
    ((0, 0, 10, 10), (0, 0, 10, 10), 1.0),                  # identical
    ((0, 0, 10, 10), (5, 5, 15, 15), 25 / 175),             # a quarter of each overlaps
    ((0, 0, 10, 10), (5, 0, 15, 10), 50 / 150),             # half of each
    ((0, 0, 10, 10), (20, 20, 30, 30), 0.0),                # disjoint
    ((0, 0, 10, 10), (10, 0, 20, 10), 0.0),                 # sharing an edge only
    ((0, 0, 10, 10), (2, 2, 6, 6), 16 / 100),               # contained: the small box's area over the large one's
    ((2, 2, 6, 6), (0, 0, 10, 10), 16 / 100),               # ... symmetric
    ((0, 0, 4, 8), (2, 4, 6, 12), 8 / 56),                  # non-square: 2 x 4 overlap, 32 + 32 - 8 union
])
def test_box_iou_hand_computed(a, b, expected):
    assert localize.box_iou(a, b)[0, 0] == pytest.approx(expected, abs=1e-12)


def test_box_iou_matrix_shape_and_empty_boxes():
    iou = localize.box_iou(np.zeros((3, 4)), np.array([[0, 0, 1, 1], [0, 0, 2, 2]]))
    assert iou.shape == (3, 2) and np.all(iou == 0)        # empty boxes overlap nothing, no division by zero
    assert localize.box_iou(np.zeros((0, 4)), np.ones((2, 4))).shape == (0, 2)


def test_nms_on_a_constructed_set():
    boxes = np.array([[0, 0, 10, 10],      # 0: score 0.9
                      [1, 1, 11, 11],      # 1: IoU 81/119 = 0.68 with 0 -> suppressed
                      [20, 20, 30, 30],    # 2: far from 0, but suppressed by 4 (IoU 0.68, higher score)
                      [0, 0, 10, 5],       # 3: IoU exactly 0.5 with 0 -> kept at threshold 0.5 (only > suppresses)
                      [21, 21, 31, 31],    # 4: IoU 81/119 with 2, higher score -> kept, suppresses 2
                      [0, 5, 10, 10]], float)  # 5: IoU 0.5 with 0, 0 with 3 -> kept
    scores = np.array([0.9, 0.8, 0.5, 0.7, 0.6, 0.4])
    assert localize.nms(boxes, scores, 0.5).tolist() == [0, 3, 4, 5]
    assert localize.nms(boxes, scores, 0.49).tolist() == [0, 4]      # now 3 and 5 go too
    assert localize.nms(boxes, scores, 1.0).tolist() == [0, 1, 3, 4, 2, 5]  # nothing suppressed: score order
    assert localize.nms(np.zeros((0, 4)), np.zeros(0), 0.5).tolist() == []


def test_box_encoding_round_trips():
    rng = np.random.default_rng(0)
    windows = localize.sliding_windows()[rng.choice(1000, 50)]
    targets = localize.jittered_boxes(windows, 1, rng)[:50]
    windows = windows[:len(targets)]
    assert np.allclose(localize.decode_boxes(windows, localize.encode_boxes(windows, targets)), targets, atol=1e-3)
    assert np.allclose(localize.encode_boxes(windows, windows), 0)


# ---- average precision -----------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["all-point", "11-point"])
def test_average_precision_of_perfect_detections_is_one(method):
    assert localize.average_precision([True, True, True], 3, method) == 1.0


@pytest.mark.parametrize("hits, num_gt, all_point, eleven_point", [
    ([False, True, True], 2, 2 / 3, 2 / 3),                 # a false positive ranked first: precision 1/2, 2/3
    ([True, False, True], 2, 0.5 * 1 + 0.5 * 2 / 3, (6 * 1 + 5 * 2 / 3) / 11),  # the envelope keeps 1 up to recall 1/2
    ([True], 2, 0.5, 6 / 11),                               # half the ground truth never found
    ([False, False], 1, 0.0, 0.0),
    ([], 1, 0.0, 0.0),
])
def test_average_precision_known_values(hits, num_gt, all_point, eleven_point):
    assert localize.average_precision(hits, num_gt, "all-point") == pytest.approx(all_point)
    assert localize.average_precision(hits, num_gt, "11-point") == pytest.approx(eleven_point)


def test_average_precision_without_ground_truth_is_nan():
    assert math.isnan(localize.average_precision([False], 0))
    with pytest.raises(ValueError, match="AP method"):
        localize.average_precision([True], 1, "bogus")


def test_mean_average_precision_on_constructed_detections():
    gt_boxes = [np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32), np.array([[5, 5, 15, 15]], np.float32)]
    gt_labels = [np.array([1, 2]), np.array([1])]
    perfect = [(gt_boxes[0], np.array([0.9, 0.8]), np.array([1, 2])), (gt_boxes[1], np.array([0.7]), np.array([1]))]
    mean_ap, per_class = localize.mean_average_precision(perfect, gt_boxes, gt_labels, num_classes=3)
    assert mean_ap == 1.0 and per_class[:2] == [1.0, 1.0] and math.isnan(per_class[2])  # class 3: no ground truth

    # Class 1, in score order: a box on nothing (false), a found object (true), a duplicate of it (false: an
    # object is matched once), a box of IoU 81/119 = 0.68 with the second image's object (true). Precision
    # 0, 1/2, 1/3, 1/2 at recall 0, 1/2, 1/2, 1: the envelope is 1/2 throughout -> AP 1/2.
    # Class 2: one box where there is no class-2 object -> AP 0.
    detections = [(np.array([[40, 40, 50, 50], [0, 0, 10, 10], [0, 0, 10, 10], [40, 0, 50, 10]], np.float32),
                   np.array([0.95, 0.9, 0.85, 0.3]), np.array([1, 1, 1, 2])),
                  (np.array([[6, 6, 16, 16]], np.float32), np.array([0.8]), np.array([1]))]
    mean_ap, per_class = localize.mean_average_precision(detections, gt_boxes, gt_labels, num_classes=2)
    assert per_class == pytest.approx([0.5, 0.0]) and mean_ap == pytest.approx(0.25)
    # At IoU 0.7 the second image's box no longer counts: false, true, false, false -> 1/2 recall at precision 1/2.
    _, per_class = localize.mean_average_precision(detections, gt_boxes, gt_labels, num_classes=2, iou_threshold=0.7)
    assert per_class[0] == pytest.approx(0.25)
    # 11-point: the envelope (1/2) at the 11 recall levels, as all-point here.
    _, per_class = localize.mean_average_precision(detections, gt_boxes, gt_labels, num_classes=2, method="11-point")
    assert per_class == pytest.approx([0.5, 0.0])


# ---- scenes and windows ----------------------------------------------------------------------------
def test_generated_boxes_are_tight_around_their_objects_pixels():
    rng = np.random.default_rng(3)
    for _ in range(60):
        image, boxes, labels, masks = localize.make_scene(rng)
        assert image.shape == (3, 64, 64) and image.dtype == np.float32 and 0 <= image.min() <= image.max() <= 1
        assert 1 <= len(boxes) == len(labels) == len(masks) <= 3
        assert set(labels.tolist()) <= {1, 2, 3, 4}
        for box, mask in zip(boxes, masks):
            x1, y1, x2, y2 = box.astype(int)
            assert mask.sum() > 0 and mask[y1:y2, x1:x2].sum() == mask.sum()        # every pixel inside its box
            inside = mask[y1:y2, x1:x2]
            assert inside[0].any() and inside[-1].any() and inside[:, 0].any() and inside[:, -1].any()  # tight
        assert np.all(localize.box_iou(boxes, boxes)[~np.eye(len(boxes), dtype=bool)] == 0)  # objects apart
        assert not np.any(np.sum(masks, axis=0) > 1)


def test_shape_masks_fill_their_frame():
    for kind in localize.CLASSES:
        mask = localize.shape_mask(kind, 15, 12)
        assert mask.shape == (12, 15) and mask.any(axis=0).all() and mask.any(axis=1).all()
    assert localize.shape_mask("square", 5, 4).all()
    assert not localize.shape_mask("circle", 10, 10)[0, 0]         # the corner lies outside the disc
    with pytest.raises(ValueError, match="unknown shape"):
        localize.shape_mask("hexagon", 5, 5)


def test_sliding_windows_lie_in_the_image_and_reach_every_object():
    windows = localize.sliding_windows()
    assert len(windows) == 1228 and windows.min() >= 0 and windows.max() <= 64
    assert np.all(windows == np.round(windows)) and np.all(windows[:, 2:] > windows[:, :2])
    _, boxes, _ = localize.make_scenes(100, np.random.default_rng(1))
    assert min(localize.box_iou(b, windows).max(axis=1).min() for b in boxes) >= localize.FOREGROUND_IOU


def test_windows_are_labelled_by_iou_thresholds():
    gt_boxes = np.array([[0, 0, 10, 10], [30, 30, 50, 50]], np.float32)
    gt_labels = np.array([3, 1])
    windows = np.array([[0, 0, 10, 10],     # IoU 1 -> class 3
                        [0, 0, 10, 20],     # IoU exactly 0.5 -> class 3 (>= 0.5)
                        [0, 0, 10, 25],     # 0.4 -> ignored
                        [0, 0, 10, 33],     # 100/330 = 0.303 -> ignored (not < 0.3)
                        [0, 0, 10, 40],     # 0.25 -> background
                        [32, 30, 50, 50],   # IoU 0.9 with the second box -> class 1
                        [0, 0, 40, 40],     # IoU 0.0625 with the first, 100/1600 with the second -> background
                        [55, 55, 64, 64]], np.float32)  # nothing -> background
    labels, matched = localize.label_windows(windows, gt_boxes, gt_labels)
    assert labels.tolist() == [3, 3, -1, -1, 0, 1, 0, 0]
    assert np.array_equal(matched[[0, 1, 5]], gt_boxes[[0, 0, 1]])
    labels, _ = localize.label_windows(windows, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))
    assert labels.tolist() == [0] * len(windows)


def test_window_sampling_caps_the_object_share():
    rng = np.random.default_rng(0)
    labels = np.array([1] * 40 + [0] * 100 + [-1] * 30)
    chosen = localize.sample_windows(labels, 64, 0.25, rng)
    assert len(chosen) == 64 and len(set(chosen.tolist())) == 64
    assert np.sum(labels[chosen] > 0) == 16 and np.all(labels[chosen] >= 0)
    chosen = localize.sample_windows(np.array([2] * 3 + [0] * 10), 64, 0.25, rng)   # too few: take what there is
    assert len(chosen) == 13


# ---- the model -------------------------------------------------------------------------------------
def test_windows_map_onto_the_feature_cells_of_their_pixels():
    """rois_for shifts a window's coordinates so that roi_pool (which rounds scaled coordinates) covers
    exactly the stride-4 feature cells holding its first and last pixel: cell j holds pixels 4j..4j+3.
    A map whose cell (i, j) holds 16 i + j shows by its maximum the last cell covered, by its negation's
    maximum the first."""
    cells = np.arange(256, dtype=np.float32).reshape(1, 1, 16, 16)
    rng = np.random.default_rng(0)
    first = rng.integers(0, 64, size=(200, 2))
    last = np.minimum(first + rng.integers(0, 40, size=(200, 2)), 63)
    windows = np.concatenate([first, last + 1], axis=1).astype(np.float32)   # (x1, y1, x2, y2), x2 one past
    rois = localize.rois_for(windows, 0)
    largest = F.roi_pool(rosenblatt.tensor(cells), rois, 1, 0.25).numpy().ravel()
    smallest = -F.roi_pool(rosenblatt.tensor(-cells), rois, 1, 0.25).numpy().ravel()
    assert np.array_equal(largest, 16 * (last[:, 1] // 4) + last[:, 0] // 4)
    assert np.array_equal(smallest, 16 * (first[:, 1] // 4) + first[:, 0] // 4)


def test_the_pyramid_over_the_whole_image_is_spp():
    """The whole-image window pools like F.spp over the whole map: the model's RoI pyramid has SPP-net's
    bins and layout."""
    rosenblatt.manual_seed(0)
    model = localize.SPPNet(channels=8, hidden=16)
    features = rosenblatt.tensor(np.random.default_rng(0).normal(size=(2, 8, 16, 16)).astype(np.float32))
    rois = np.concatenate([localize.rois_for(np.array([[0, 0, 64, 64]], np.float32), i) for i in range(2)])
    pooled = model.pool_windows(features, rois)
    assert pooled.shape == (2, 8 * 21)
    assert np.array_equal(pooled.numpy(), F.spp(features, (1, 2, 4)).numpy())


def test_detection_loss_trains_every_parameter():
    rosenblatt.manual_seed(0)
    rng = np.random.default_rng(0)
    model = localize.SPPNet(channels=8, hidden=16)
    images, boxes, labels = localize.make_scenes(2, rng)
    sets = localize.WindowSets(boxes, labels, localize.sliding_windows(), rng)
    rois, window_labels, targets = sets.batch([0, 1], 16, 0.5, rng)
    assert rois.shape == (32, 5) and set(rois[:, 0].tolist()) == {0.0, 1.0} and np.sum(window_labels > 0) == 16
    loss = localize.detection_loss(model, rosenblatt.tensor(images), rois, window_labels, targets)
    loss.backward()
    assert np.isfinite(loss.item()) and all(p.grad is not None and np.any(p.grad.numpy() != 0)
                                            for p in model.parameters())


def test_detect_suppresses_overlapping_windows_of_a_class():
    windows = np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]], np.float32)
    probabilities = np.array([[0.1, 0.9, 0.0], [0.2, 0.8, 0.0], [0.3, 0.1, 0.6]], np.float32)  # bg, class 1, class 2
    boxes, scores, labels = localize.detect(probabilities, None, windows)
    order = np.lexsort((-scores, labels))
    assert labels[order].tolist() == [1, 1, 2] and np.allclose(scores[order], [0.9, 0.1, 0.6])
    assert np.array_equal(boxes[order], windows[[0, 2, 2]])


def test_both_ways_of_scoring_agree_away_from_borders():
    """Features once and the backbone per crop give the same scores where the crop is the whole image;
    elsewhere they differ only in what the convolutions see near the window's border."""
    rosenblatt.manual_seed(0)
    model = localize.SPPNet(channels=8, hidden=16)
    model.eval()
    image = localize.make_scene(np.random.default_rng(0))[0]
    window = np.array([[0, 0, 64, 64], [8, 12, 30, 30]], np.float32)
    once = localize.score_windows(model, image[None], window)[0][0]
    crops = localize.score_windows_per_crop(model, image, window)
    assert once.shape == crops.shape == (2, 5)
    assert np.allclose(once.sum(axis=1), 1) and np.allclose(crops.sum(axis=1), 1)
    assert np.allclose(once[0], crops[0], atol=1e-6)


# ---- the case study --------------------------------------------------------------------------------
def test_localize_example_quick():
    result = run_example("localize", "--quick", "--threads", "1")
    assert {"map", "map_without_box_regression", "ap_per_class", "window_accuracy", "window_accuracy_objects",
            "initial_loss", "final_loss", "train_time_s", "images_per_s", "features_once_s", "per_window_s",
            "features_once_speedup", "backbone_speedup", "per_window_argmax_agreement"} <= set(result)
    assert result["final_loss"] < result["initial_loss"]
    assert 0.0 <= result["map"] <= 1.0 and set(result["ap_per_class"]) == set(localize.CLASSES)
    assert 0.5 < result["window_accuracy"] <= 1.0         # mostly background windows
    assert result["windows_per_image"] == 1228 and result["features_once_s"] > 0 and result["per_window_s"] > 0


def test_quick_keeps_the_sizes_given_explicitly():
    # --quick overwrote --train-images, --test-images and --timing-images, and capped --epochs at 4.
    result = localize.main(["--quick", "--threads", "1", "--train-images", "6", "--test-images", "2",
                            "--timing-images", "1", "--epochs", "1", "--batch-images", "6"])
    assert (result["train_images"], result["test_images"], result["timing_images"], result["epochs"]) == (6, 2, 1, 1)


@pytest.mark.parametrize("option, value, message", [
    ("--windows-per-image", "0", "must be positive"),   # died in reshape on an empty batch of windows
    ("--fg-fraction", "2", "must be between 0.0 and 1.0"),  # rng.choice of a negative count
    ("--fg-fraction", "nan", "must be between 0.0 and 1.0"),
    ("--nms-iou", "nan", "must be between 0.0 and 1.0"),    # suppressed every detection but the best, exit 0
    ("--box-weight", "-1", "must be non-negative"),     # silently meant 0 (no box loss)
    ("--lr", "0", "must be positive")])
def test_localize_refuses_bad_options(option, value, message, capsys):
    with pytest.raises(SystemExit):
        localize.main(["--quick", option, value])
    assert f"argument {option}: {message}" in capsys.readouterr().err


# ---- on a CUDA device ---------------------------------------------------------------------------
def test_scores_loss_and_gradients_on_a_cuda_device_match_the_cpu(fake):
    """The pieces of a step and of the evaluation on the NumPy stand-in for the CUDA backend: the RoI pyramid
    over the shared map (host RoIs copied to the device), the box loss's rows of the object windows, both
    ways of scoring windows. Same weights both sides; only the fully connected layers' GEMM sums in another
    order on the stand-in (float32, ~1e-7 relative)."""
    rosenblatt.manual_seed(0)
    rng = np.random.default_rng(0)
    images, boxes, labels = localize.make_scenes(2, rng)
    sets = localize.WindowSets(boxes, labels, localize.sliding_windows(), rng)
    rois, window_labels, targets = sets.batch([0, 1], 16, 0.5, rng)
    windows = localize.sliding_windows()[::40]
    results = {}
    for device in ("cpu", "cuda"):
        rosenblatt.manual_seed(0)
        model = localize.SPPNet(channels=8, hidden=16).to(device)
        loss = localize.detection_loss(model, rosenblatt.tensor(images).to(device), rois, window_labels, targets)
        loss.backward()
        model.eval()
        probabilities, offsets = localize.score_windows(model, images, windows)
        crops = localize.score_windows_per_crop(model, images[0], windows)
        results[device] = (loss.item(), [p.grad.cpu().numpy() for p in model.parameters()], probabilities,
                           offsets, crops)
    assert {"roi_pool_forward", "roi_pool_backward", "gemm", "conv2d_forward"} <= set(fake.calls)
    (cpu_loss, cpu_grads, *cpu_scores), (loss, grads, *scores) = results["cpu"], results["cuda"]
    assert abs(loss - cpu_loss) <= 1e-5 * abs(cpu_loss)
    for g, cpu_g in zip(grads, cpu_grads):
        np.testing.assert_allclose(g, cpu_g, rtol=1e-4, atol=1e-6)
    for s, cpu_s in zip(scores, cpu_scores):
        np.testing.assert_allclose(s, cpu_s, rtol=1e-4, atol=1e-6)


def test_localize_on_a_cuda_device_matches_the_cpu(monkeypatch):
    """--device cuda on the stand-in, end to end (it refuses a silent fallback to NumPy and any kernel the
    real backend lacks): the model, each batch and its RoIs on the device; windows, NMS and AP on the host.
    The stage timers wait for the device before reading the clock (the stand-in has no device to wait for:
    rosenblatt.cuda.synchronize is recorded instead). Same host random stream, so the run reproduces the
    CPU's up to the GEMM's summation order: the losses agree to ~1e-6 relative after these 4 steps
    (5e-4 after --quick's 48: Adam carries the differences on), checked at 1e-4; the window counts and
    APs agree exactly here, checked at 1e-3 absolute (~5 of the 4,912 test windows changing class)."""
    from test_examples import main_on_fake_cuda_and_cpu
    synchronized = []
    monkeypatch.setattr(rosenblatt.cuda, "synchronize", lambda device=0: synchronized.append(device))
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(
        localize.main, ["--quick", "--threads", "1", "--train-images", "16", "--test-images", "4", "--epochs", "2"])
    assert calls and {"roi_pool_forward", "roi_pool_backward", "conv2d_forward", "gemm"} <= set(calls)
    assert synchronized and set(synchronized) == {0}
    assert on_device["device"] in ("cuda", "cuda:0") and on_cpu["device"] == "cpu"
    assert set(on_device) == set(on_cpu)
    for key in ("initial_loss", "final_loss"):
        assert abs(on_device[key] - on_cpu[key]) <= 1e-4 * abs(on_cpu[key]), key
    for key in ("map", "map_without_box_regression", "window_accuracy", "window_accuracy_objects",
                "per_window_argmax_agreement"):
        assert abs(on_device[key] - on_cpu[key]) <= 1e-3, key
    for name, ap in on_cpu["ap_per_class"].items():
        assert (ap is None) == (on_device["ap_per_class"][name] is None), name
        assert ap is None or abs(on_device["ap_per_class"][name] - ap) <= 1e-3, name
    for key in ("epochs", "train_images", "test_images", "test_objects", "windows_per_image", "timing_images",
                "crop_pixels_ratio", "ap_method", "seed"):
        assert on_device[key] == on_cpu[key], key
    assert on_device["features_once_s"] > 0 and on_device["per_window_s"] > 0
