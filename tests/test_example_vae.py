"""The variational auto-encoder case study (rosenblatt.examples.vae): the pieces of the ELBO against
their definitions (analytic KL against Monte Carlo, gradients against finite differences, the
reparameterised sample's moments), the importance-weighted bound where log p(x) is known, and the
script's quick runs."""
import math

import numpy as np
import pytest

import rosenblatt
from rosenblatt import nn
from rosenblatt.examples import vae

from test_examples import run_example


def _tensor(values, requires_grad=False):
    return rosenblatt.tensor(np.asarray(values, dtype=np.float64), requires_grad=requires_grad)


# ---- the ELBO's pieces -----------------------------------------------------------------------------
def test_analytic_kl_matches_monte_carlo():
    """KL(q || N(0, I)) = E_q[log q(z) - log p(z)]: the closed form against the sample mean of
    200,000 draws, within 5 standard errors of that mean (float64)."""
    rng = np.random.default_rng(0)
    mu = np.array([[0.0, 0.0, 0.0], [0.5, -1.5, 2.0], [-0.3, 0.8, 0.1]])
    logvar = np.array([[0.0, 0.0, 0.0], [0.4, -1.0, 0.0], [-2.0, 1.2, -0.5]])
    analytic = vae.gaussian_kl(_tensor(mu), _tensor(logvar)).numpy()
    assert analytic.shape == (3,) and analytic[0] == 0.0
    samples = 200_000
    for row in range(3):
        z = mu[row] + np.exp(0.5 * logvar[row]) * rng.standard_normal((samples, 3))
        log_ratio = vae.log_normal(z, mu[row], logvar[row]) - vae.log_normal(z, 0.0, 0.0)
        if row == 0:
            assert np.all(log_ratio == 0.0)
            continue
        standard_error = log_ratio.std(ddof=1) / math.sqrt(samples)
        assert abs(log_ratio.mean() - analytic[row]) < 5 * standard_error, (row, log_ratio.mean(), analytic[row])


def test_log_normal_is_the_gaussian_density():
    z, mu, logvar = np.array([[0.3, -1.0]]), np.array([0.1, 0.5]), np.array([0.2, -0.7])
    var = np.exp(logvar)
    expected = np.sum(-0.5 * np.log(2 * np.pi * var) - (z - mu) ** 2 / (2 * var))
    assert vae.log_normal(z, mu, logvar)[0] == pytest.approx(expected, rel=1e-12)


def test_loss_gradients_wrt_encoder_outputs_match_finite_differences():
    """d(-ELBO)/d(mu, logvar) through the sample z = mu + sigma * eps (eps fixed), the decoder and
    the KL, against central differences; float64 throughout, step 1e-6."""
    rosenblatt.manual_seed(3)
    rng = np.random.default_rng(3)
    model = vae.build_model("mlp", latent=3, hidden=7).double()
    x = (rng.random((4, 1, 8, 8)) < 0.4).astype(np.float64)
    mu0, logvar0 = rng.normal(size=(4, 3)), rng.normal(scale=0.5, size=(4, 3))
    eps = _tensor(rng.standard_normal((4, 3)))

    def loss(mu, logvar):
        return vae.elbo_terms(model, _tensor(x), _tensor(mu), _tensor(logvar), eps)[0].sum().item()

    mu, logvar = _tensor(mu0, requires_grad=True), _tensor(logvar0, requires_grad=True)
    total = vae.elbo_terms(model, _tensor(x), mu, logvar, eps)[0].sum()
    total.backward()
    step = 1e-6
    for name, analytic in (("mu", mu.grad.numpy()), ("logvar", logvar.grad.numpy())):
        numeric = np.zeros_like(analytic)
        for index in np.ndindex(*analytic.shape):
            plus, minus = [mu0.copy(), logvar0.copy()], [mu0.copy(), logvar0.copy()]
            which = 0 if name == "mu" else 1
            plus[which][index] += step
            minus[which][index] -= step
            numeric[index] = (loss(*plus) - loss(*minus)) / (2 * step)
        np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-7, err_msg=name)


def test_reparameterised_sample_has_the_requested_mean_and_variance():
    """Means within 5 standard errors (sigma / sqrt(N)), variances within 5 standard errors of a
    sample variance (sigma^2 sqrt(2 / (N - 1))); and the pathwise gradients dz/dmu = 1,
    dz/dlogvar = sigma * eps / 2."""
    rosenblatt.manual_seed(0)
    n = 100_000
    mean, variance = np.array([0.5, -2.0, 3.0]), np.array([1.0, 0.25, 4.0])
    mu = _tensor(np.tile(mean, (n, 1)), requires_grad=True)
    logvar = _tensor(np.tile(np.log(variance), (n, 1)), requires_grad=True)
    z = vae.reparameterize(mu, logvar)
    assert z.dtype == np.float64 and z.shape == (n, 3)
    samples = z.numpy()
    assert np.all(np.abs(samples.mean(axis=0) - mean) < 5 * np.sqrt(variance / n))
    assert np.all(np.abs(samples.var(axis=0, ddof=1) - variance) < 5 * variance * np.sqrt(2 / (n - 1)))
    z.sum().backward()
    np.testing.assert_array_equal(mu.grad.numpy(), np.ones((n, 3)))
    np.testing.assert_allclose(logvar.grad.numpy(), 0.5 * (samples - mean), rtol=1e-12, atol=1e-12)


# ---- the importance-weighted bound -----------------------------------------------------------------
class _ConstantEncoder(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))) for every image."""

    def __init__(self, mu, logvar):
        super().__init__()
        self.values = np.concatenate([mu, logvar]).astype(np.float32)

    def forward(self, x):
        return rosenblatt.tensor(np.tile(self.values, (x.shape[0], 1)))


def _model_ignoring_z(mu, logvar, seed=0):
    """A decoder whose logits do not depend on z, so p(x) = p(x|z) is known exactly."""
    rosenblatt.manual_seed(seed)
    decoder = nn.Linear(len(mu), 64)
    decoder.weight.data[...] = 0.0
    return vae.VAE(_ConstantEncoder(mu, logvar), decoder, len(mu))


def test_importance_weighted_bound_is_exact_when_q_is_the_prior():
    """With q = p(z) and a decoder that ignores z every importance weight equals p(x): the bound
    is log p(x) for any K, so the log-densities' constants and the averaging must all be right."""
    model = _model_ignoring_z(np.zeros(2), np.zeros(2))
    x = (np.random.default_rng(1).random((7, 1, 8, 8)) < 0.3).astype(np.float32)
    log_px = -vae.bernoulli_nll(model.decode(rosenblatt.zeros(7, 2)), x).numpy()
    for samples in (1, 13):
        np.testing.assert_allclose(vae.importance_weighted_log_likelihood(model, x, samples, batch_size=3), log_px,
                                   rtol=1e-5, atol=1e-4)


def _second_moment_of_prior_over_q(mu, logvar) -> float:
    """E_q[(p(z) / q(z))^2] for p = N(0, I), q = N(mu, diag(s^2)), finite for s^2 > 1/2: per dim
    s / sqrt(2a) exp(b^2 / 4a + c) with a = 1 - 1 / 2s^2, b = mu / s^2, c = mu^2 / 2s^2."""
    s2 = np.exp(logvar)
    a, b, c = 1 - 1 / (2 * s2), mu / s2, mu ** 2 / (2 * s2)
    return float(np.prod(np.sqrt(s2) / np.sqrt(2 * a) * np.exp(b ** 2 / (4 * a) + c)))


def test_importance_weighted_bound_tightens_past_the_elbo():
    """q != prior, decoder ignoring z: the ELBO is log p(x) - KL, while the K-sample bound is
    log p(x) + log(mean of K weights w / p(x)), whose spread is sqrt(V / K) with V = Var(w / p(x))
    known in closed form: with K = 2,000 each image's bound lies within 5 of those of log p(x)."""
    mu, logvar = np.array([0.5, -0.4]), np.array([0.2, -0.3])
    model = _model_ignoring_z(mu, logvar)
    x = (np.random.default_rng(2).random((10, 1, 8, 8)) < 0.3).astype(np.float32)
    log_px = -vae.bernoulli_nll(model.decode(rosenblatt.zeros(10, 2)), x).numpy()
    kl = vae.gaussian_kl(_tensor(mu[None]), _tensor(logvar[None])).item()
    samples = 2000
    spread = math.sqrt((_second_moment_of_prior_over_q(mu, logvar) - 1) / samples)  # about 0.02
    rosenblatt.manual_seed(5)
    bound = vae.importance_weighted_log_likelihood(model, x, samples)
    assert np.all(np.abs(bound - log_px) < 5 * spread + 1e-4)
    elbo = -vae.evaluate_elbo(model, x)["loss"]
    assert elbo == pytest.approx(log_px.mean() - kl, abs=1e-4)
    assert bound.mean() > elbo + 0.5 * kl


# ---- data, baseline, sampling ----------------------------------------------------------------------
def test_binarisation_baseline_and_noise_floor():
    rng = np.random.default_rng(4)
    gray = np.full((2000, 1, 8, 8), 0.3, np.float32)
    binary = vae.binarize(gray, rng)
    assert binary.dtype == np.float32 and set(np.unique(binary)) <= {0.0, 1.0}
    assert abs(binary.mean() - 0.3) < 5 * math.sqrt(0.3 * 0.7 / binary.size)
    assert vae.binarization_entropy(np.full((3, 1, 8, 8), 0.5)) == pytest.approx(64 * math.log(2))
    assert vae.binarization_entropy(np.zeros((3, 1, 8, 8))) == 0.0
    # all pixels at 0.5 in training: p = (n/2 + 1) / (n + 2) = 1/2 exactly, log 2 per pixel
    np.testing.assert_allclose(vae.pixel_mean_baseline(np.full((10, 1, 8, 8), 0.5), binary[:5]), 64 * math.log(2))


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_models_shapes_and_prior_samples(kind):
    rosenblatt.manual_seed(0)
    model = vae.build_model(kind, latent=3, hidden=16)
    x = (np.random.default_rng(0).random((5, 1, 8, 8)) < 0.5).astype(np.float32)
    logits, mu, logvar = model(rosenblatt.tensor(x))
    assert logits.shape == (5, 1, 8, 8) and mu.shape == logvar.shape == (5, 3)
    loss, reconstruction, kl = vae.negative_elbo(model, rosenblatt.tensor(x))
    assert loss.shape == (5,) and np.all(kl.numpy() >= 0) and np.all(reconstruction.numpy() > 0)
    loss.mean().backward()
    assert all(p.grad is not None for p in model.parameters())
    images = model.sample(6, np.random.default_rng(9))
    assert images.shape == (6, 1, 8, 8) and images.dtype == np.float32 and np.all((images >= 0) & (images <= 1))
    np.testing.assert_array_equal(images, model.sample(6, np.random.default_rng(9)))


# ---- the script ------------------------------------------------------------------------------------
KEYS = {"test_nelbo", "test_reconstruction", "test_kl", "test_iwae_nll", "test_iwae_nll_stderr", "baseline_nll",
        "iwae_gain_over_baseline", "noise_floor_nll", "initial_loss", "final_loss", "train_time_s", "images_per_s",
        "iw_samples"}


@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_vae_example_quick(kind, tmp_path):
    pytest.importorskip("sklearn")
    plot = []
    if kind == "mlp":
        pytest.importorskip("matplotlib")
        plot = ["--latent", "2", "--plot", str(tmp_path / "vae.png")]
    result = run_example("vae", "--quick", "--threads", "1", "--model", kind, *plot)
    assert KEYS <= set(result) and result["split"] == "test" and result["model"] == kind
    assert result["final_loss"] < result["initial_loss"] - 5  # from ~44 nats (p = 1/2 per pixel) down
    assert result["test_nelbo"] == pytest.approx(result["test_reconstruction"] + result["test_kl"])
    assert result["noise_floor_nll"] < result["test_iwae_nll"] and result["test_kl"] >= 0
    if plot:
        assert (tmp_path / "vae.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_vae_validation_mode_leaves_the_test_set_alone():
    pytest.importorskip("sklearn")
    result = run_example("vae", "--quick", "--threads", "1", "--validation", "--epochs", "1", "--iw-samples", "3")
    assert result["split"] == "validation" and "validation_nelbo" in result and "test_nelbo" not in result
    assert result["train_images"] == 400 and result["eval_images"] == 270 and result["iw_samples"] == 3


@pytest.mark.parametrize("path, message", [
    ("{tmp}/missing/vae.png", "does not exist or is not writable"),  # FileNotFoundError after the whole run
    ("{tmp}", "is a folder"),                                        # matplotlib wrote {tmp}.png beside it
    ("{tmp}/vae.notaformat", "matplotlib writes no .notaformat files")])  # ValueError after the whole run
def test_plot_paths_are_checked_before_training(path, message, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    with pytest.raises(SystemExit):
        vae.main(["--quick", "--plot", path.format(tmp=tmp_path)])
    assert message in capsys.readouterr().err
    assert vae.plot_problem(str(tmp_path / "vae.png")) is None and vae.plot_problem(str(tmp_path / "vae")) is None


def test_plot_without_matplotlib_is_refused_before_training(monkeypatch, tmp_path, capsys):
    import sys
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(SystemExit):
        vae.main(["--quick", "--plot", str(tmp_path / "vae.png")])
    err = capsys.readouterr().err
    assert "--plot" in err and "needs matplotlib" in err


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
def test_a_diverged_run_stops_instead_of_reporting_nan(capsys):
    pytest.importorskip("sklearn")
    with pytest.raises(SystemExit, match="vae: the training loss is nan at epoch 1: training diverged"):
        vae.main(["--quick", "--threads", "1", "--lr", "1e3", "--epochs", "1"])
    assert "test_nelbo" not in capsys.readouterr().out
    with pytest.raises(SystemExit):
        vae.main(["--lr", "0"])
    assert "argument --lr: must be positive" in capsys.readouterr().err


@pytest.mark.parametrize("args", [("--model", "mlp"), ("--model", "conv", "--latent", "2")], ids=["mlp", "conv"])
def test_vae_on_a_cuda_device_matches_the_cpu(args, tmp_path):
    # eps of the reparameterisation comes from the host's stream on either device; conv also plots the 2-d
    # latent space from the device model
    pytest.importorskip("sklearn")
    from test_examples import assert_device_run_matches_cpu, main_on_fake_cuda_and_cpu
    plot = ["--plot", str(tmp_path / "vae.png")] if "conv" in args and _has_matplotlib() else []
    on_device, calls, on_cpu = main_on_fake_cuda_and_cpu(vae.main, [
        "--quick", "--threads", "1", "--epochs", "1", "--iw-samples", "5", "--iw-images", "20",
        "--elbo-samples", "2", *args, *plot])
    # 1e-3: the IWAE bound's standard error amplifies GEMM rounding (the stand-in's NumPy GEMM against the
    # CPU's): 2e-4 relative apart on the scalar path, 1e-5 on the AVX2 one
    assert_device_run_matches_cpu(on_device, calls, on_cpu, rtol=1e-3)
    if plot:
        assert (tmp_path / "vae.png").stat().st_size > 0


def _has_matplotlib() -> bool:
    import importlib.util
    return importlib.util.find_spec("matplotlib") is not None
