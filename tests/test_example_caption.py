"""The image-captioning case study: the generator's captions say what its images show (read back
from the pixels, not from the generator's own records), the splits are disjoint and keep the
held-out colour-shape pairs out of training, the model and its decoding fit together, and the
quick run learns and reports its metrics."""
import numpy as np
import pytest

import rosenblatt
from rosenblatt.examples import caption
from test_examples import run_example


# ---- reading a caption back from the pixels ----------------------------------------------------------
def colour_masks(image: np.ndarray) -> np.ndarray:
    """(colours, S, S) bool: the pixels within 0.15 of a palette colour (the shapes' colours are
    jittered by at most 0.08 per channel, 0.14 in all; the grey background is far from every
    palette colour, but an anti-aliased edge, a blend, can pass near another one)."""
    pixels = image.astype(np.float64).transpose(1, 2, 0) / 255                          # (S, S, 3)
    distance = np.linalg.norm(pixels[None] - caption.PALETTE[:, None, None, :], axis=-1)  # (colours, S, S)
    return (distance < 0.15) & (distance == distance.min(axis=0))


def split_along(mask: np.ndarray, axis: int) -> list:
    """Two same-coloured shapes: the mask cut at the empty gap between them along `axis`
    (1: columns, 0: rows), the earlier part first."""
    occupied = np.flatnonzero(mask.any(axis=1 - axis))
    gap = np.flatnonzero(np.diff(occupied) > 1)
    assert len(gap) == 1, f"expected two separate shapes along axis {axis}, occupied lines {occupied}"
    cut = occupied[gap[0]] + 1
    before, after = mask.copy(), mask.copy()
    if axis == 1:
        before[:, cut:], after[:, :cut] = False, False
    else:
        before[cut:], after[:cut] = False, False
    return [before, after]


def read_shape(mask: np.ndarray, scale: int) -> tuple:
    """(shape name, radius, centre (x, y)) of one shape's mask drawn at `scale`, by its outline: a square
    fills its bounding box's corners, a triangle's widest row is its last, a circle fills more of
    its box (about 0.8) than a diamond does (about 0.5)."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    box = mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    widths = box.sum(axis=1)
    if box[0, 0] and box[0, -1] and box[-1, 0] and box[-1, -1]:
        name, factor = "square", 1.0
    elif widths[-1] == widths.max() and widths[0] == widths.min():
        name, factor = "triangle", caption.EXTENT
    elif box.mean() > 0.65:
        name, factor = "circle", 1.0
    else:
        name, factor = "diamond", caption.EXTENT
    radius = max(box.shape) / (2 * factor * scale)  # the pixel grid blurs the extent by at most one pixel
    return name, radius, ((cols[0] + cols[-1] + 1) / 2, (rows[0] + rows[-1] + 1) / 2)


def check_caption_against_pixels(image: np.ndarray, text: str, scale: int) -> None:
    parsed = caption.parse(text)
    assert parsed is not None, f"{text!r} does not follow the grammar"
    objects, relation = parsed
    masks = colour_masks(image)
    colours = [caption.COLOUR_NAMES.index(colour) for _, colour, _ in objects]
    present = np.flatnonzero(masks.sum(axis=(1, 2)) > 6 * scale * scale)  # more than a few pixels of edge blend
    assert set(present) == set(colours), f"{text!r}: the image shows {[caption.COLOUR_NAMES[c] for c in present]}"
    if len(objects) == 1:
        shapes = [masks[colours[0]]]
    elif colours[0] != colours[1]:
        shapes = [masks[colours[0]], masks[colours[1]]]
    else:  # one colour: cut along the caption's axis; the first-named shape is before the cut when left of / above
        parts = split_along(masks[colours[0]], axis=1 if relation in ("left of", "right of") else 0)
        shapes = parts if relation in ("left of", "above") else parts[::-1]
    read = [read_shape(mask, scale) for mask in shapes]
    for (size, _, shape), (name, radius, _) in zip(objects, read):
        assert name == shape, f"{text!r}: the pixels show a {name}"
        threshold = (caption.RADIUS[0][1] + caption.RADIUS[1][0]) / 2  # between the small and the large radii
        assert (radius > threshold) == (size == "large"), f"{text!r}: radius {radius:.2f} is not {size}"
    if len(objects) == 2:
        (x0, y0), (x1, y1) = read[0][2], read[1][2]
        horizontal = abs(x1 - x0) > abs(y1 - y0)
        expected = {(True, True): "left of", (True, False): "right of", (False, True): "above",
                    (False, False): "below"}[horizontal, (x0 < x1) if horizontal else (y0 < y1)]
        assert relation == expected, f"{text!r}: the centres {read[0][2]} and {read[1][2]} say {expected!r}"
        sizes = [size for size, _, _ in objects]
        # the grammar's order: the larger shape first; of equal sizes the left or upper one first
        assert sizes != ["small", "large"] and (sizes[0] != sizes[1] or relation in ("left of", "above")), text


@pytest.mark.parametrize("novel", [False, True], ids=["seen-pairs", "novel-pairs"])
def test_captions_describe_the_pixels(novel):
    """Shapes, sizes, colours, relations and the grammar's order, read from the scenes drawn four
    times finer (where no rasterised small circle looks like a square); the 32x32 images are
    those drawings, coarser."""
    rng = np.random.default_rng(11)
    scenes = caption.sample_scenes(250, rng, novel=novel)
    captions = caption.describe(scenes)
    fine = caption.render(scenes, rng, noise=0.0, scale=4)
    for image, text in zip(fine, captions):
        check_caption_against_pixels(image, text, scale=4)
    assert {len(caption.parse(t)[0]) for t in captions} == {1, 2}
    assert {caption.parse(t)[1] for t in captions} == {None, *caption.RELATIONS}

    clean = caption.render(scenes, rng, noise=0.0).astype(np.float64)
    averaged = fine.reshape(len(scenes), 3, 32, 4, 32, 4).mean(axis=(3, 5))
    difference = np.abs(clean - averaged) / 255  # anti-aliasing approximates the covered area
    assert difference.mean() < 0.005 and np.percentile(difference, 99.9) < 0.15
    noisy = caption.render(scenes, np.random.default_rng(12), noise=0.05).astype(np.float64)
    assert 0.03 * 255 < (noisy - clean).std() < 0.06 * 255 and abs((noisy - clean).mean()) < 0.01 * 255


def test_caption_grammar_round_trips_and_counts():
    space = caption.caption_space()
    objects = len(caption.SIZES) * len(caption.COLOUR_NAMES) * len(caption.SHAPES)
    half = objects // 2  # objects of one size
    assert len(space) == objects + half * half * 4 + 2 * half * half * 2  # large-small: 4 relations; equal: 2
    sample = sorted(space)[::97]
    ids = caption.encode_captions(sample)
    assert ids.shape == (len(sample), caption.MAX_WORDS + 2) and (ids[:, 0] == caption.BOS).all()
    assert [caption.decode_ids(row[1:]) for row in ids] == sample
    assert all(caption.parse(text) is not None for text in sample)
    assert caption.parse("a large red circle left of") is None and caption.parse("a red circle") is None


def test_splits_are_disjoint_and_keep_held_out_pairs_out_of_training():
    data = caption.make_splits({"train": 800, "validation": 100, "test": 200, "novel": 100}, seed=3)
    held_out = {f"{colour} {shape}" for colour, shape in caption.HELD_OUT}
    space = caption.caption_space()
    for name, split in data.items():
        assert len(split.images) == len(split.captions) == len(split.ids)
        assert set(split.captions) <= space
        mentions = [any(pair in text for pair in held_out) for text in split.captions]
        assert all(mentions) if name == "novel" else not any(mentions), name
    train_images = {image.tobytes() for image in data["train"].images}
    for name in ("validation", "test", "novel"):
        assert not train_images & {image.tobytes() for image in data[name].images}, name
    again = caption.make_splits({"train": 800, "validation": 100, "test": 200, "novel": 100}, seed=3)
    assert np.array_equal(again["test"].images, data["test"].images)  # a seed gives the same data


def test_model_shapes_and_decoding():
    rosenblatt.manual_seed(0)
    model = caption.Captioner(channels=(4, 8, 8), feature_size=16, embedding_dim=8, hidden_size=12)
    data = caption.CaptionData(5, np.random.default_rng(0))
    images, inputs, targets = caption.batch_tensors(data, np.arange(5))
    scores = model(images, inputs)
    assert scores.shape == (inputs.shape[0], 5, len(caption.WORDS)) and inputs.shape == targets.shape
    loss = caption.caption_loss(scores, targets)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    h, features = model.start(images)
    assert h.shape == (1, 5, 12) and features.shape == (1, 5, 16)
    step_scores, _ = model.step(rosenblatt.tensor(np.full(5, caption.BOS)), (h, features))
    assert np.allclose(step_scores.data, model(images, inputs[:1]).data[0], atol=1e-5)
    greedy = caption.decode_captions(model, images)
    beam = caption.decode_captions(model, images, beam_size=3)
    assert len(greedy) == len(beam) == 5 and all(isinstance(c, str) for c in greedy + beam)


def test_quick_run_learns_and_reports():
    result = run_example("caption", "--quick", "--threads", "1")
    keys = {"test_exact_match_greedy", "test_exact_match_beam", "test_token_accuracy", "test_attribute_accuracy",
            "novel_exact_match_greedy", "novel_attribute_accuracy", "initial_loss", "final_loss", "train_time_s",
            "images_per_s", "captions_possible", "test_captions_unseen_in_training", "threads"}
    assert keys <= set(result)
    assert result["final_loss"] < 0.7 * result["first_train_loss"] and result["final_loss"] < result["initial_loss"]
    assert result["test_token_accuracy"] > 0.4  # the fixed words ("a", "of", <eos>) alone give about a third
    for key in keys - {"initial_loss", "final_loss", "train_time_s", "images_per_s", "captions_possible", "threads"}:
        assert 0 <= result[key] <= 1, key
    assert result["threads"] == 1 and result["train_size"] == 600


@pytest.mark.parametrize("option", [["--epochs", "0"], ["--train-size", "0"], ["--beam-size", "0"],
                                    ["--channels", "16,0"]])
def test_refuses_counts_that_are_not_positive(option, capsys):
    with pytest.raises(SystemExit):
        caption.main(["--quick", *option])
    assert "positive" in capsys.readouterr().err


def test_refuses_more_encoder_blocks_than_the_image_can_be_halved(capsys):
    # Six blocks halve 32 pixels to 0: max_pool2d failed deep inside the first forward pass.
    with pytest.raises(SystemExit):
        caption.main(["--quick", "--channels", "4,4,4,4,4,4"])
    assert "at most 5 blocks fit 32-pixel images" in capsys.readouterr().err
    assert caption.channel_list("4,4,4,4,4") == (4,) * 5


@pytest.mark.parametrize("option, value", [("--lr", "0"), ("--clip", "nan"), ("--length-penalty", "1e5")])
def test_refuses_options_the_training_or_the_beam_search_would_fail_on(option, value, capsys):
    with pytest.raises(SystemExit):
        caption.main(["--quick", option, value])
    assert f"argument {option}: must be" in capsys.readouterr().err


def test_runs_on_a_cuda_device_as_on_the_cpu(fake, capsys):
    """Training, greedy and beam search on the stand-in device reproduce the CPU run up to kernel
    rounding (the data and the initial weights come from the host). The training losses agree to
    about 1e-8 relative; the evaluation losses only to about 1e-5: the conv biases ahead of batch norm
    get gradients that are rounding noise, which Adam scales up to lr-sized steps, and they reach
    eval mode through the running means. Hence rel 1e-4 for training, 1e-3 for evaluation losses."""
    options = ["--quick", "--train-size", "192", "--validation-size", "32", "--test-size", "48", "--novel-size", "16",
               "--epochs", "2", "--beam-size", "2"]
    cpu = caption.main(options)
    fake.calls.clear()
    cuda = caption.main(options + ["--device", "cuda"])
    assert fake.calls and cuda["device"] == "cuda" and cpu["device"] == "cpu"
    for key in ("initial_loss", "first_train_loss", "final_loss"):
        assert cuda[key] == pytest.approx(cpu[key], rel=1e-4), key
    assert cuda["test_loss"] == pytest.approx(cpu["test_loss"], rel=1e-3)
    for key in ("test_exact_match_greedy", "test_exact_match_beam", "test_token_accuracy", "novel_token_accuracy",
                "validation_exact_match_greedy"):
        assert cuda[key] == pytest.approx(cpu[key], abs=0.05), key
