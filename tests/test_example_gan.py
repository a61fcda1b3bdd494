"""The GAN case study: its quality measures on constructed samples, the players' step discipline
(each step changes only its own player), and quick runs of the script."""
import math

import numpy as np
import pytest

import rosenblatt
from rosenblatt import optim
from rosenblatt.examples import gan
from test_examples import run_example


# ---- the ring's measures -----------------------------------------------------------------------------
def test_samples_at_every_centre_cover_all_modes_with_full_quality():
    samples = np.repeat(gan.ring_centres(), 50, axis=0)
    metrics = gan.ring_metrics(samples)
    assert metrics["modes_covered"] == 8 and metrics["high_quality_fraction"] == 1.0
    assert metrics["mode_counts"] == [50] * 8


def test_samples_at_one_centre_cover_one_mode():
    samples = np.repeat(gan.ring_centres()[3:4], 400, axis=0)
    metrics = gan.ring_metrics(samples)
    assert metrics["modes_covered"] == 1 and metrics["high_quality_fraction"] == 1.0
    assert metrics["mode_counts"][3] == 400


def test_far_samples_have_no_quality_and_cover_nothing():
    rng = np.random.default_rng(0)
    far = np.concatenate([np.zeros((100, 2)),                                   # the ring's centre
                          1.5 * gan.ring_centres()[rng.integers(0, 8, 100)]])   # outside the circle
    metrics = gan.ring_metrics(far)
    assert metrics["modes_covered"] == 0 and metrics["high_quality_fraction"] == 0.0


def test_high_quality_means_within_three_standard_deviations():
    centre = gan.ring_centres()[0]
    offsets = np.array([[2.9, 0.0], [0.0, -2.99], [3.01, 0.0], [2.2, 2.2]]) * gan.RING_STD  # |2.2, 2.2| = 3.11
    metrics = gan.ring_metrics(centre + offsets)
    assert metrics["high_quality_fraction"] == 0.5


def test_a_mode_needs_one_percent_of_the_samples():
    centres = gan.ring_centres()
    samples = np.concatenate([np.repeat(centres[:1], 990, axis=0), np.repeat(centres[1:2], 10, axis=0)])
    assert gan.ring_metrics(samples)["modes_covered"] == 2          # 10 of 1,000 is 1%
    assert gan.ring_metrics(samples[:-1])["modes_covered"] == 1      # 9 of 999 is not


def test_real_ring_samples_score_as_real():
    metrics = gan.ring_metrics(gan.sample_ring(10_000, np.random.default_rng(1)))
    assert metrics["modes_covered"] == 8
    assert metrics["high_quality_fraction"] > 0.98  # 3 std in 2-D hold 98.9% of a Gaussian


# ---- the digits' measures ----------------------------------------------------------------------------
def test_class_measures_on_confident_uniform_and_collapsed_predictions():
    uniform = np.eye(10)[np.arange(200) % 10]
    metrics = gan.class_distribution_metrics(uniform)
    assert metrics["class_entropy"] == pytest.approx(math.log(10))
    assert metrics["mean_confidence"] == 1.0
    assert metrics["inception_score"] == pytest.approx(10.0, rel=1e-6)

    collapsed = np.tile(np.eye(10)[7], (50, 1))
    metrics = gan.class_distribution_metrics(collapsed)
    assert metrics["class_entropy"] == 0.0 and metrics["inception_score"] == pytest.approx(1.0)
    assert metrics["class_histogram"][7] == 1.0

    undecided = np.full((30, 10), 0.1)  # no image looks like a digit: inception score 1, confidence 0.1
    metrics = gan.class_distribution_metrics(undecided)
    assert metrics["mean_confidence"] == pytest.approx(0.1) and metrics["inception_score"] == pytest.approx(1.0)


def test_nearest_distances_find_copies():
    rng = np.random.default_rng(2)
    train = rng.uniform(size=(40, 1, 8, 8))
    assert np.allclose(gan.nearest_distances(train[5:9], train), 0.0, atol=1e-6)
    shifted = train[:3] + 0.1
    expected = [np.min(np.linalg.norm((train - s).reshape(40, -1), axis=1)) for s in shifted]
    assert np.allclose(gan.nearest_distances(shifted, train), expected)


# ---- each player's step changes only its own parameters ------------------------------------------------
def _snapshot(module):
    return [p.data.copy() for p in module.parameters()] + [b.data.copy() for b in module.buffers()]


def _same(module, snapshot):
    current = _snapshot(module)
    return len(current) == len(snapshot) and all(np.array_equal(a, b) for a, b in zip(current, snapshot))


@pytest.mark.parametrize("kind", ["ring", "dcgan"])
def test_each_step_changes_only_its_own_player(kind):
    rosenblatt.manual_seed(0)
    if kind == "ring":
        generator, discriminator = gan.build_ring_models(latent=2, hidden=16)
        latent, real = 2, rosenblatt.tensor(gan.sample_ring(32, np.random.default_rng(0)))
    else:
        generator, discriminator = gan.build_digit_models(latent=8, arch="dcgan")
        latent, real = 8, rosenblatt.tensor(np.random.default_rng(0).uniform(size=(32, 1, 8, 8)).astype(np.float32))
    opt_g = optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))

    fake = generator(gan.noise(32, latent))
    g_before, d_before = _snapshot(generator), _snapshot(discriminator)
    gan.discriminator_step(discriminator, opt_d, real, fake)
    assert _same(generator, g_before)
    assert all(p.grad is None for p in generator.parameters())  # the fakes were detached
    assert not _same(discriminator, d_before)

    d_after = _snapshot(discriminator)
    d_grads = [p.grad.data.copy() for p in discriminator.parameters()]
    gan.generator_step(discriminator, opt_g, fake)
    assert _same(discriminator, d_after)
    # D was frozen: the gradients its own step left are all it holds, nothing was added to them
    assert all(np.array_equal(p.grad.data, g) for p, g in zip(discriminator.parameters(), d_grads))
    assert all(p.requires_grad for p in discriminator.parameters())  # and unfrozen after
    assert not _same(generator, g_before)


def test_discriminator_step_ignores_what_the_generator_step_left():
    """D's update after a G step equals D's update from the same state without one: zero_grad before
    each step, so gradients of one loss never leak into the other player's update."""
    def discriminator_after(with_generator_step: bool):
        rosenblatt.manual_seed(1)
        generator, discriminator = gan.build_ring_models(latent=2, hidden=16)
        opt_g = optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        opt_d = optim.Adam(discriminator.parameters(), lr=1e-3, betas=(0.5, 0.999))
        real = rosenblatt.tensor(gan.sample_ring(32, np.random.default_rng(0)))
        fake = generator(gan.noise(32, 2))
        if with_generator_step:
            for p in discriminator.parameters():  # a stale gradient, as a careless G step would leave
                p.grad = rosenblatt.ones_like(p)
            gan.generator_step(discriminator, opt_g, generator(gan.noise(32, 2)))
        gan.discriminator_step(discriminator, opt_d, real, fake.detach())
        return _snapshot(discriminator)

    for a, b in zip(discriminator_after(False), discriminator_after(True)):
        assert np.array_equal(a, b)


def test_losses_start_near_the_equilibrium_values():
    """An untrained D says about 1/2 everywhere: d_loss near ln 4, g_loss near ln 2."""
    rosenblatt.manual_seed(3)
    generator, discriminator = gan.build_ring_models(latent=2, hidden=32)
    for p in discriminator.parameters():  # a D whose logits are all ~0
        p.data *= 0.01
    opt_d = optim.Adam(discriminator.parameters(), lr=0.0)
    opt_g = optim.Adam(generator.parameters(), lr=0.0)
    fake = generator(gan.noise(64, 2))
    real = rosenblatt.tensor(gan.sample_ring(64, np.random.default_rng(0)))
    assert gan.discriminator_step(discriminator, opt_d, real, fake) == pytest.approx(math.log(4), abs=0.01)
    assert gan.generator_step(discriminator, opt_g, fake) == pytest.approx(math.log(2), abs=0.01)


def test_generate_uses_eval_mode_and_restores_training():
    rosenblatt.manual_seed(0)
    generator, _ = gan.build_digit_models(latent=8, arch="dcgan")
    buffers = [b.data.copy() for b in generator.buffers()]
    images = gan.generate(generator, 7, latent=8, batch_size=3)
    assert images.shape == (7, 1, 8, 8) and images.min() >= 0 and images.max() <= 1
    assert all(np.array_equal(a, b.data) for a, b in zip(buffers, generator.buffers()))  # running stats untouched
    assert generator.training


# ---- the script --------------------------------------------------------------------------------------
COMMON_KEYS = {"d_loss_start", "d_loss_end", "g_loss_start", "g_loss_end", "train_time_s", "steps_per_s", "steps"}


def test_gan_ring_quick_run():
    result = run_example("gan", "--quick", "--threads", "1")
    assert COMMON_KEYS | {"modes_covered", "high_quality_fraction", "mode_counts"} <= set(result)
    assert result["data"] == "ring" and result["steps"] == 200 and len(result["mode_counts"]) == 8
    assert 0 <= result["modes_covered"] <= 8 and 0.0 <= result["high_quality_fraction"] <= 1.0
    assert result["d_loss_start"] == pytest.approx(math.log(4), abs=0.2)


@pytest.mark.parametrize("arch", ["dcgan", "mlp"])
def test_gan_digits_quick_run(arch):
    pytest.importorskip("sklearn")
    result = run_example("gan", "--quick", "--threads", "1", "--data", "digits", "--arch", arch, "--steps", "30")
    assert COMMON_KEYS | {"class_entropy", "mean_confidence", "inception_score", "nn_distance_mean",
                          "real_test_nn_distance_mean", "copy_fraction", "classifier_test_accuracy"} <= set(result)
    assert 0.0 <= result["class_entropy"] <= math.log(10) + 1e-9
    assert 1.0 - 1e-9 <= result["inception_score"] <= 10.0 + 1e-9
    assert result["classifier_test_accuracy"] > 0.5


def test_gan_refuses_counts_that_are_not_positive(capsys):
    with pytest.raises(SystemExit):
        gan.main(["--steps", "0"])
    assert "must be positive" in capsys.readouterr().err


def test_logging_does_not_change_the_training():
    """The ring's progress probes draw their own noise: results do not depend on --log-every."""
    common = ["--quick", "--steps", "40", "--samples", "500", "--hidden", "16", "--threads", "1"]
    often, never = gan.main([*common, "--log-every", "10"]), gan.main([*common, "--log-every", "1000"])
    assert often["d_loss_end"] == never["d_loss_end"] and often["mode_counts"] == never["mode_counts"]


def test_gan_refuses_a_zero_learning_rate_and_a_batch_of_one_for_dcgan(capsys):
    # --lr 0 was read as "not given" (`args.lr or 1e-3`) and trained at 1e-3; a dcgan batch of one died in
    # batch_norm inside the generator.
    with pytest.raises(SystemExit):
        gan.main(["--lr", "0"])
    assert "argument --lr: must be positive" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        gan.main(["--data", "digits", "--batch-size", "1"])
    assert "--batch-size: the dcgan generator's batch norm needs at least 2" in capsys.readouterr().err


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_diverged_run_stops_instead_of_reporting_nan(capsys):
    with pytest.raises(SystemExit, match="gan: .: the training loss is (nan|-?inf) at step .*diverged"):
        gan.main(["--quick", "--threads", "1", "--lr", "1e6", "--steps", "20", "--hidden", "16"])
    assert "d_loss_end" not in capsys.readouterr().out


@pytest.mark.parametrize("args", [("--steps", "20", "--samples", "500", "--log-every", "10"),
                                  ("--data", "digits", "--steps", "5", "--samples", "100", "--classifier-epochs", "1")],
                         ids=["ring", "dcgan"])
def test_gan_on_a_cuda_device_matches_the_cpu(args):
    # dcgan: transposed convolutions, batch norm of both kinds and the evaluator (trained by fit) on the device
    if "digits" in args:
        pytest.importorskip("sklearn")
    from test_examples import assert_device_run_matches_cpu, main_on_fake_cuda_and_cpu
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(gan.main, ["--quick", "--threads", "1", *args])
    assert_device_run_matches_cpu(on_device, calls, on_cpu)
    if "digits" in args:
        assert {"conv_transpose2d_forward", "batch_norm_forward"} <= set(calls)
