"""The adversarial-examples case study: input gradients against finite differences, the FGSM and PGD
perturbations' size and effect, and a quick run of the script."""
import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn
from rosenblatt.examples import adversarial
from rosenblatt.examples.digits import build_model
from rosenblatt.nn import functional as F
from test_examples import run_example


def _images(n: int, seed: int = 0, dtype=np.float32) -> tuple:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, 1, 8, 8)).astype(dtype), rng.integers(0, 10, n)


def _losses(model, images, labels) -> np.ndarray:
    with rosenblatt.no_grad():
        return F.cross_entropy(model(rosenblatt.tensor(images)), rosenblatt.tensor(labels), reduction="none").numpy()


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_input_gradient_matches_finite_differences(kind):
    rosenblatt.manual_seed(0)
    model = build_model(kind, activation="tanh", hidden=16).double().eval()  # tanh: no kinks for the differences
    images, labels = _images(3, dtype=np.float64)
    grad, losses = adversarial.input_gradient(model, images, labels)
    assert grad.shape == images.shape and grad.dtype == np.float64
    assert np.allclose(losses, _losses(model, images, labels))

    h = 1e-6
    numeric = np.zeros_like(images)
    for index in np.ndindex(images.shape):
        plus, minus = images.copy(), images.copy()
        plus[index] += h
        minus[index] -= h
        numeric[index] = (_losses(model, plus, labels).sum() - _losses(model, minus, labels).sum()) / (2 * h)
    assert np.allclose(grad, numeric, rtol=1e-5, atol=1e-8)


def test_input_gradient_leaves_the_model_alone():
    rosenblatt.manual_seed(0)
    model = build_model("mlp", hidden=16)
    frozen = next(iter(model.parameters())).requires_grad_(False)
    adversarial.input_gradient(model, *_images(4))
    assert all(p.grad is None for p in model.parameters())  # no weight gradient computed
    assert [p.requires_grad for p in model.parameters()] == [p is not frozen for p in model.parameters()]


@pytest.mark.parametrize("eps", [0.03, 0.1, 0.25])
def test_fgsm_moves_each_pixel_by_eps_at_most_and_raises_the_loss(eps):
    rosenblatt.manual_seed(1)
    model = build_model("mlp", hidden=32).eval()
    images, labels = _images(200, seed=1)
    adv = adversarial.fgsm(model, images, labels, eps)
    step = np.abs(adv - images)
    assert adv.dtype == images.dtype and adv.min() >= 0.0 and adv.max() <= 1.0
    assert step.max() <= eps + 1e-6
    grad, _ = adversarial.input_gradient(model, images, labels)
    free = (grad != 0) & (images + eps * np.sign(grad) >= 0) & (images + eps * np.sign(grad) <= 1)
    assert free.mean() > 0.5 and np.allclose(step[free], eps, atol=1e-6)  # exactly eps wherever not clipped
    assert np.mean(_losses(model, adv, labels) > _losses(model, images, labels)) > 0.95


def test_pgd_stays_in_the_ball_and_beats_random_signs():
    rosenblatt.manual_seed(2)
    model = build_model("mlp", hidden=32).eval()
    images, labels = _images(100, seed=2)
    eps = 0.1
    adv = adversarial.pgd(model, images, labels, eps, steps=5)
    assert np.abs(adv - images).max() <= eps + 1e-6 and adv.min() >= 0.0 and adv.max() <= 1.0
    random = adversarial.random_sign(images, eps)
    assert np.abs(random - images).max() <= eps + 1e-6
    assert _losses(model, adv, labels).mean() > _losses(model, random, labels).mean()
    assert _losses(model, adv, labels).mean() > _losses(model, images, labels).mean()


def test_attack_runs_in_eval_mode_and_restores_training():
    rosenblatt.manual_seed(3)
    model = build_model("cnn", hidden=16)  # batch norm: eval mode must leave the running statistics alone
    buffers = [b.data.copy() for b in model.buffers()]
    images, labels = _images(8)
    for kind in ("fgsm", "pgd", "random"):
        adversarial.attack(model, images, labels, kind, 0.1, pgd_steps=2)
    assert model.training
    assert all(np.array_equal(a, b.data) for a, b in zip(buffers, model.buffers()))
    with pytest.raises(ValueError, match="unknown attack"):
        adversarial.attack(model, images, labels, "cw", 0.1)


def test_adversarial_training_lowers_the_adversarial_loss():
    """On a learnable task (labels from a fixed linear teacher), FGSM training lowers the loss on
    FGSM images of the final model below that of clean training from the same start."""
    rng = np.random.default_rng(4)
    images = rng.uniform(size=(256, 1, 8, 8)).astype(np.float32)
    labels = (images.reshape(256, 64) @ rng.standard_normal((64, 10))).argmax(axis=1)

    def trained(alpha):
        rosenblatt.manual_seed(0)
        model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
        adversarial.train(model, images, labels, epochs=10, batch_size=32, lr=1e-2, alpha=alpha, eps=0.05)
        return model

    clean, robust = trained(1.0), trained(0.5)
    adversarial_loss = {name: _losses(m, adversarial.attack(m, images, labels, "fgsm", 0.05), labels).mean()
                        for name, m in (("clean", clean), ("robust", robust))}
    assert adversarial_loss["robust"] < 0.95 * adversarial_loss["clean"]


def test_adversarial_quick_run():
    pytest.importorskip("sklearn")
    result = run_example("adversarial", "--quick", "--threads", "1")
    assert {"eps", "clean_accuracy", "fgsm_accuracy", "pgd_accuracy", "random_sign_accuracy", "adv_clean_accuracy",
            "adv_fgsm_accuracy", "adv_pgd_accuracy", "transfer_fgsm_accuracy", "eps_sweep",
            "train_time_s", "adv_train_time_s"} <= set(result)
    assert result["eps"] == 0.1 and "0.1" in result["eps_sweep"]
    assert result["clean_accuracy"] > 0.2 and result["fgsm_accuracy"] < result["clean_accuracy"]
    assert result["last_epoch_loss"] < result["first_epoch_loss"]


def test_adversarial_refuses_bad_options(capsys):
    with pytest.raises(SystemExit):
        adversarial.main(["--alpha", "1.5"])
    assert "--alpha" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        adversarial.main(["--pgd-steps", "0"])
    assert "must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("option, value", [
    ("--eps", "nan"), ("--eps", "inf"),   # OverflowError in NumPy's uniform (PGD's random start)
    ("--train-eps", "nan"),               # passed the `< 0` check and trained on NaN images, exit 0
    ("--eps-sweep", "0.1,nan"), ("--eps", "-0.1"), ("--lr", "0")])
def test_adversarial_refuses_radii_that_are_not_finite(option, value, capsys):
    with pytest.raises(SystemExit):
        adversarial.main([option, value])
    assert f"argument {option}: must be" in capsys.readouterr().err


def test_quick_keeps_an_explicit_eps_sweep():
    pytest.importorskip("sklearn")
    result = adversarial.main(["--quick", "--threads", "1", "--epochs", "1", "--pgd-steps", "1",
                               "--eps-sweep", "0.05,0.2"])
    assert set(result["eps_sweep"]) == {"0.05", "0.1", "0.2"}


@pytest.mark.parametrize("train_attack", ["fgsm", "pgd"])
def test_adversarial_on_a_cuda_device_matches_the_cpu(train_attack):
    # The MLP: the CNN's convolution biases before batch norm get gradients that are zero up to rounding,
    # which Adam scales up to steps of size lr, so its two runs drift apart (test below: its attacks agree).
    pytest.importorskip("sklearn")
    from test_examples import assert_device_run_matches_cpu, main_on_fake_cuda_and_cpu
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(adversarial.main, [
        "--quick", "--threads", "1", "--epochs", "1", "--pgd-steps", "2", "--train-attack", train_attack])
    assert_device_run_matches_cpu(on_device, calls, on_cpu)


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_attacks_on_a_cuda_model_match_the_cpu(kind):
    import fake_cuda
    rosenblatt.manual_seed(0)
    model = build_model(kind, hidden=16).eval()
    images, labels = _images(6)
    expected = [adversarial.input_gradient(model, images, labels), adversarial.accuracy(model, images, labels)]
    rosenblatt.manual_seed(1)
    expected.append(adversarial.pgd(model, images, labels, 0.1, steps=2))
    with fake_cuda.installed():
        model.to("cuda")
        assert adversarial.module_device(model) == rosenblatt.device("cuda", 0)
        grad, losses = adversarial.input_gradient(model, images, labels)
        assert isinstance(grad, np.ndarray) and isinstance(losses, np.ndarray)  # back on the host
        np.testing.assert_allclose(grad, expected[0][0], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(losses, expected[0][1], rtol=1e-5)
        assert adversarial.accuracy(model, images, labels) == expected[1]
        rosenblatt.manual_seed(1)  # the same random start, from the host's stream
        np.testing.assert_allclose(adversarial.pgd(model, images, labels, 0.1, steps=2), expected[2], atol=1e-6)
        assert all(p.grad is None for p in model.parameters())
