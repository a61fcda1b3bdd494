"""nn.init.trunc_normal_ (inverse CDF, against the truncated-normal formulas), the normal quantile
behind it (against Python's statistics.NormalDist), the argument checks of uniform_ and dirac_, and
randint / randperm refusing ranges their dtype cannot hold.

Statistical tolerances are 6 standard errors, so a correct sampler fails a check with probability
about 2e-9; seeds are fixed anyway, so the tests are deterministic."""
import contextlib
import math
import signal
import statistics

import numpy as np
import pytest

import rosenblatt as rb
from rosenblatt.nn import init

import fake_cuda


@contextlib.contextmanager
def time_limit(seconds: float):
    """Fail (rather than hang) when the block runs longer than `seconds` (SIGALRM, where there is one)."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def phi(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) if math.isfinite(x) else 0.0


def truncated_moments(mean, std, a, b):
    """Mean and variance of Normal(mean, std) truncated to [a, b] (the standard formulas). The mass Z
    is taken from the tail the interval lies in, so it keeps its precision for bounds like [6, 7]."""
    alpha, beta = (a - mean) / std, (b - mean) / std
    if alpha + beta > 0:
        mass = 0.5 * math.erfc(alpha / math.sqrt(2)) - 0.5 * math.erfc(beta / math.sqrt(2))
    else:
        mass = 0.5 * math.erfc(-beta / math.sqrt(2)) - 0.5 * math.erfc(-alpha / math.sqrt(2))
    alpha_phi = alpha * phi(alpha) if math.isfinite(alpha) else 0.0
    beta_phi = beta * phi(beta) if math.isfinite(beta) else 0.0
    shift = (phi(alpha) - phi(beta)) / mass
    return mean + std * shift, std ** 2 * (1 + (alpha_phi - beta_phi) / mass - shift ** 2)


TRUNCATIONS = [  # (mean, std, a, b)
    (0.0, 1.0, -2.0, 2.0),
    (0.0, 1.0, 6.0, 7.0),            # far upper tail: rejection sampling would accept 1 draw in 1e9
    (0.0, 1.0, -7.0, -6.0),          # far lower tail
    (1.0, 2.0, -math.inf, 0.0),      # one infinite bound
    (0.5, 0.25, 0.0, 3.0),           # asymmetric, mean inside
    (-3.0, 0.5, 1.0, 1.5),           # mean 8 std below the interval
    (0.0, 1.0, -math.inf, math.inf),  # plain normal
]


@pytest.mark.parametrize("mean, std, a, b", TRUNCATIONS)
def test_trunc_normal_stays_in_bounds_and_matches_the_truncated_moments(mean, std, a, b):
    n = 200_000
    rb.manual_seed(11)
    with time_limit(10):
        values = init.trunc_normal_(rb.empty(n, dtype=rb.float64), mean, std, a, b).numpy()
    assert np.all(np.isfinite(values)) and values.min() >= a and values.max() <= b
    expected_mean, expected_var = truncated_moments(mean, std, a, b)
    centred = values - values.mean()
    sample_var = centred.var()
    # standard errors: of the mean sqrt(var / n); of the variance sqrt((m4 - var^2) / n)
    assert abs(values.mean() - expected_mean) <= 6 * math.sqrt(expected_var / n)
    fourth = np.mean(centred ** 4)
    assert abs(sample_var - expected_var) <= 6 * math.sqrt((fourth - sample_var ** 2) / n)


def test_trunc_normal_matches_the_truncated_cdf_kolmogorov_smirnov():
    """The whole distribution in the far tail, not only two moments: the empirical CDF stays within
    the Dvoretzky-Kiefer-Wolfowitz band P(D > t) <= 2 exp(-2 n t^2) = 1e-6 at 201 check points."""
    n, a, b = 100_000, 6.0, 7.0
    rb.manual_seed(5)
    with time_limit(10):
        values = np.sort(init.trunc_normal_(rb.empty(n, dtype=rb.float64), 0.0, 1.0, a, b).numpy())
    survival = lambda x: 0.5 * math.erfc(x / math.sqrt(2))  # noqa: E731  exact in the upper tail
    band = math.sqrt(math.log(2 / 1e-6) / (2 * n))
    for x in np.linspace(a, b, 201):
        expected = (survival(a) - survival(x)) / (survival(a) - survival(b))
        empirical = np.searchsorted(values, x, side="right") / n
        assert abs(empirical - expected) <= band, (x, empirical, expected)


@pytest.mark.parametrize("mean, std, a, b, expected", [
    (5.0, 0.0, -2.0, 2.0, 2.0),       # std 0: clip(mean, a, b) (the old sampler never returned)
    (-5.0, 0.0, -2.0, 2.0, -2.0),
    (0.5, 0.0, -2.0, 2.0, 0.5),
    (0.0, 1.0, 50.0, 60.0, 50.0),      # no double-sized mass beyond ~38 std: the nearest bound
    (0.0, 1.0, -60.0, -50.0, -50.0),
])
def test_trunc_normal_degenerate_cases_return_at_once(mean, std, a, b, expected):
    with time_limit(5):
        values = init.trunc_normal_(rb.empty(1000, dtype=rb.float64), mean, std, a, b).numpy()
    np.testing.assert_array_equal(values, np.full(1000, expected))


def test_trunc_normal_far_tail_returns_at_once():
    with time_limit(5):
        values = init.trunc_normal_(rb.empty(10_000), 0.0, 1.0, 6.0, 7.0).numpy()
        deep = init.trunc_normal_(rb.empty(10_000, dtype=rb.float64), 0.0, 1.0, 30.0, 31.0).numpy()
    assert values.min() >= 6 and values.max() <= 7
    # mean of the tail beyond 30 std is about 30 + 1/30; the interval holds it all
    assert deep.min() >= 30 and deep.max() <= 31 and abs(deep.mean() - 30.033) < 0.01


def test_trunc_normal_is_reproducible_under_manual_seed_and_with_a_generator():
    rb.manual_seed(3)
    first = init.trunc_normal_(rb.empty(4, 5), 0.1, 0.02, -0.04, 0.04).numpy().copy()
    rb.manual_seed(3)
    second = init.trunc_normal_(rb.empty(4, 5), 0.1, 0.02, -0.04, 0.04).numpy()
    np.testing.assert_array_equal(first, second)
    third = init.trunc_normal_(rb.empty(4, 5), generator=np.random.default_rng(9)).numpy()
    fourth = init.trunc_normal_(rb.empty(4, 5), generator=np.random.default_rng(9)).numpy()
    np.testing.assert_array_equal(third, fourth)
    assert not np.array_equal(first, third)


def test_trunc_normal_fills_in_place_and_on_a_device():
    weight = rb.nn.Parameter(rb.zeros(3, 4))
    view = weight.data
    assert init.trunc_normal_(weight) is weight
    assert np.all(np.abs(view) <= 2) and np.any(view != 0)  # the parameter's own storage was written
    with fake_cuda.installed():
        on_device = rb.zeros(50, 20).cuda()
        rb.manual_seed(2)
        init.trunc_normal_(on_device, 0.0, 1.0, 0.5, 1.0)
        assert on_device.is_cuda
        rb.manual_seed(2)
        expected = init.trunc_normal_(rb.zeros(50, 20), 0.0, 1.0, 0.5, 1.0).numpy()
        np.testing.assert_array_equal(on_device.cpu().numpy(), expected)  # drawn on the host, as the others
        with time_limit(5):
            init.trunc_normal_(on_device, 3.0, 0.0, 0.5, 1.0)  # std 0, mean above b
        np.testing.assert_array_equal(on_device.cpu().numpy(), np.ones((50, 20)))


@pytest.mark.parametrize("kwargs, message", [
    (dict(a=2.0, b=1.0), r"trunc_normal_: need a < b"),
    (dict(a=1.0, b=1.0), r"trunc_normal_: need a < b"),
    (dict(std=-1.0), r"trunc_normal_: .*std >= 0"),
    (dict(mean=math.nan), r"trunc_normal_: NaN"),
    (dict(std=math.nan), r"trunc_normal_: NaN"),
    (dict(a=math.nan), r"trunc_normal_: NaN"),
    (dict(b=math.nan), r"trunc_normal_: NaN"),
    (dict(std=math.inf), r"trunc_normal_: need a finite mean"),
])
def test_trunc_normal_refuses_bad_arguments(kwargs, message):
    with time_limit(5), pytest.raises(ValueError, match=message):
        init.trunc_normal_(rb.empty(3), **kwargs)


def test_normal_quantile_matches_the_standard_library():
    """Across the centre, both tails and down to subnormal p, against statistics.NormalDist.inv_cdf
    (the same AS241 algorithm, evaluated one scalar at a time) and, in the lower tail, by a round
    trip through math.erfc (independent of AS241)."""
    p = np.concatenate([np.logspace(-320, -1, 700), np.linspace(0.001, 0.999, 999),
                        1 - np.logspace(-16, -1, 200)])
    z = init._normal_quantile(p)
    reference = np.array([statistics.NormalDist().inv_cdf(float(x)) for x in p])
    np.testing.assert_allclose(z, reference, rtol=1e-14, atol=1e-300)
    lower = p < 0.5
    back = np.array([0.5 * math.erfc(-x / math.sqrt(2)) for x in z[lower]])
    # dp / p = |z| dz: a relative 1e-16 in z becomes about z^2 * 1e-16 in p (z^2 < 1500 here)
    np.testing.assert_allclose(back, p[lower], rtol=1e-12)


# ---- uniform_ and dirac_ ------------------------------------------------------------------------------
@pytest.mark.parametrize("a, b", [(2.0, 1.0), (math.nan, 1.0), (0.0, math.inf), (-math.inf, 0.0),
                                  (-1e308, 1e308)])
def test_uniform_refuses_reversed_or_non_finite_bounds_like_torch(a, b):
    with pytest.raises(ValueError, match=r"^uniform_: need finite bounds with a <= b"):
        init.uniform_(rb.empty(3), a, b)


def test_uniform_with_equal_bounds_fills_the_bound():
    np.testing.assert_array_equal(init.uniform_(rb.empty(4), 1.5, 1.5).numpy(), np.full(4, 1.5))


@pytest.mark.parametrize("groups", [0, -1, 3])
def test_dirac_refuses_groups_that_do_not_divide_the_output_channels(groups):
    with pytest.raises(ValueError, match=r"^dirac_: groups=-?\d+ must be positive and divide dim 0"):
        init.dirac_(rb.empty(4, 2, 3), groups=groups)


def test_dirac_refuses_a_non_integer_groups():
    with pytest.raises(TypeError, match=r"^dirac_: groups must be an int"):
        init.dirac_(rb.empty(4, 2, 3), groups=2.0)


def test_dirac_with_groups_passes_each_groups_channels_through():
    weight = init.dirac_(rb.empty(6, 2, 3, 3), groups=3).numpy()
    expected = np.zeros((6, 2, 3, 3))
    for g in range(3):
        for c in range(2):
            expected[2 * g + c, c, 1, 1] = 1
    np.testing.assert_array_equal(weight, expected)


# ---- randint and randperm -----------------------------------------------------------------------------
@pytest.mark.parametrize("low, high, dtype", [
    (250, 300, np.uint8), (0, 257, np.uint8), (-1, 2, np.uint8), (2 ** 40, 2 ** 41, np.int32),
    (-129, 0, np.int8), (0, 3, np.bool_), (0, 2 ** 53 + 2, np.float64), (0, 2 ** 11 + 2, np.float16),
    (0, 2 ** 63 + 1, None),
])
def test_randint_refuses_ranges_the_dtype_cannot_hold(low, high, dtype):
    with pytest.raises(ValueError, match=r"^randint: \[low, high\) = .* does not fit"):
        rb.randint(low, high, (5,), dtype=dtype)


@pytest.mark.parametrize("low, high, dtype", [
    (0, 256, np.uint8), (-128, 128, np.int8), (0, 2, np.bool_), (-2 ** 31, 2 ** 31, np.int32),
    (0, 2 ** 64, np.uint64), (-2 ** 63, 2 ** 63, None), (0, 2 ** 11 + 1, np.float16),
])
def test_randint_accepts_ranges_up_to_the_dtype_limits(low, high, dtype):
    values = rb.randint(low, high, (2000,), dtype=dtype).numpy()
    assert values.dtype == np.dtype(dtype or np.int64)
    as_ints = [int(v) for v in values.tolist()]
    assert min(as_ints) >= low and max(as_ints) < high


@pytest.mark.parametrize("low, high", [(5, 5), (6, 5)])
def test_randint_refuses_an_empty_range(low, high):
    with pytest.raises(ValueError, match=rf"^randint: need low < high, got low={low}, high={high}"):
        rb.randint(low, high, (3,))


def test_randint_default_int64_stream_is_unchanged():
    """The draw for int64 is NumPy's integers(low, high, size), so seeded runs keep their values."""
    rb.manual_seed(7)
    values = rb.randint(-3, 10, (20,)).numpy()
    np.testing.assert_array_equal(values, np.random.default_rng(7).integers(-3, 10, 20))


@pytest.mark.parametrize("n, dtype", [(300, np.int8), (129, np.int8), (257, np.uint8), (2050, np.float16),
                                      (3, np.bool_)])
def test_randperm_refuses_an_n_the_dtype_cannot_hold(n, dtype):
    with pytest.raises(ValueError, match=rf"^randperm: n={n} does not fit"):
        rb.randperm(n, dtype=dtype)


@pytest.mark.parametrize("n, dtype", [(128, np.int8), (256, np.uint8), (2049, np.float16), (0, None)])
def test_randperm_at_the_dtype_limit_is_a_permutation(n, dtype):
    values = rb.randperm(n, dtype=dtype).numpy()
    assert values.dtype == np.dtype(dtype or np.int64)
    np.testing.assert_array_equal(np.sort(values.astype(np.int64)), np.arange(n))


def test_randperm_refuses_a_negative_or_non_integer_n():
    with pytest.raises(ValueError, match=r"^randperm: n must be non-negative, got -1"):
        rb.randperm(-1)
    with pytest.raises(TypeError, match=r"^randperm: n must be an int, got float"):
        rb.randperm(3.0)
    assert rb.randperm(np.int64(4)).shape == (4,)
