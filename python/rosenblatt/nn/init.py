"""Parameter initialisers, as torch.nn.init.

Each fills a Tensor (or Parameter) in place, drawing from
`rosenblatt.random.default_generator()` unless a generator is passed, and returns it.
Formulas, argument names and defaults are torch's.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _device
from ..random import default_generator
from ..tensor import Tensor


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The recommended gain for an activation (torch's table)."""
    linear = ("linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
              "sigmoid")
    if nonlinearity in linear:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, (int, float)) and not isinstance(param, bool):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative_slope {param!r} is not a valid number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"calculate_gain: unsupported nonlinearity {nonlinearity!r}")


def _calculate_fan_in_and_fan_out(tensor: Tensor):
    """fan_in = size(1) * receptive field, fan_out = size(0) * receptive field (torch's convention)."""
    if tensor.ndim < 2:
        raise ValueError(f"init: fan in and fan out cannot be computed for a tensor with fewer than 2 dims "
                         f"(shape {tensor.shape})")
    receptive_field = int(np.prod(tensor.shape[2:], dtype=np.int64))
    return tensor.shape[1] * receptive_field, tensor.shape[0] * receptive_field


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init: mode {mode!r} is not supported, use 'fan_in' or 'fan_out'")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _fill(tensor: Tensor, values) -> Tensor:
    """Write values into the tensor's own storage (so views and optimisers holding it see them)."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init: expected a Tensor, got {type(tensor).__name__}")
    if not isinstance(tensor.data, np.ndarray):  # values drawn on the host, written into device memory
        if np.ndim(values) and not isinstance(values, _device.DeviceArray):
            values = _device.on_device_of(np.asarray(values), tensor.data)
        tensor.data[...] = values
        tensor._bump_version()
        return tensor
    if not tensor.data.flags.writeable:
        tensor.data = np.array(tensor.data)
    tensor.data[...] = values
    tensor._bump_version()
    return tensor


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator=None) -> Tensor:
    """U(a, b); like torch, a > b, NaN and infinite bounds (or a range b - a that overflows) are refused."""
    if not (math.isfinite(b - a) and a <= b):
        raise ValueError(f"uniform_: need finite bounds with a <= b, got a={a}, b={b}")
    return _fill(tensor, (generator or default_generator()).uniform(a, b, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator=None) -> Tensor:
    return _fill(tensor, (generator or default_generator()).normal(mean, std, tensor.shape))


def trunc_normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0,
                  generator=None) -> Tensor:
    """Normal(mean, std) restricted to [a, b], drawn directly by the inverse CDF (as torch): u uniform
    on [Phi(alpha), Phi(beta)) for the standardised bounds alpha, beta, mapped back through the normal
    quantile, then clipped to [a, b] against rounding. No redraws, so bounds far in a tail cost nothing.

    Bounds in the upper tail are mirrored into the lower one, where Phi is small and math.erfc gives
    it to full relative precision (1 - Phi would cancel). Bounds more than ~38 std beyond the mean on
    the same side hold no mass a double can express; the draw then lands on the bound nearest the
    mean, which is also the std -> 0 limit. std == 0 fills with clip(mean, a, b)."""
    mean, std, a, b = float(mean), float(std), float(a), float(b)
    if any(math.isnan(v) for v in (mean, std, a, b)):
        raise ValueError(f"trunc_normal_: NaN argument (mean={mean}, std={std}, a={a}, b={b})")
    if not (math.isfinite(mean) and math.isfinite(std)) or std < 0:
        raise ValueError(f"trunc_normal_: need a finite mean and a finite std >= 0, got mean={mean}, std={std}")
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std == 0:
        return _fill(tensor, min(max(mean, a), b))
    alpha, beta = (a - mean) / std, (b - mean) / std
    mirrored = alpha + beta > 0  # more of [alpha, beta] above 0 than below: work on [-beta, -alpha]
    if mirrored:
        alpha, beta = -beta, -alpha
    cdf_low, cdf_high = _normal_cdf(alpha), _normal_cdf(beta)
    u = cdf_low + (cdf_high - cdf_low) * (generator or default_generator()).random(tensor.shape)
    # keep u inside (0, 1): an infinite bound may give u == 0 (and rounding u == 1), whose quantile is inf
    z = _normal_quantile(np.clip(u, np.finfo(np.float64).tiny, np.nextafter(1.0, 0.0)))
    if mirrored:
        z = -z
    return _fill(tensor, np.clip(mean + std * z, a, b))


def _normal_cdf(x: float) -> float:
    """Phi(x) = erfc(-x / sqrt 2) / 2: relatively exact for x < 0, where Phi is small."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


# Wichura's AS241 (PPND16), Applied Statistics 37 (1988) 477-484: rational approximations to the normal
# quantile with relative error about 1e-16, the algorithm behind Python's statistics.NormalDist.inv_cdf.
# Coefficients highest power first (np.polyval's order): the central region |p - 0.5| <= 0.425 in
# r = 0.180625 - (p - 0.5)^2, then the tails in r = sqrt(-log(min(p, 1 - p))) - 1.6 (r <= 5) or - 5.
_AS241_CENTRAL = (
    (2.5090809287301226727e+3, 3.3430575583588128105e+4, 6.7265770927008700853e+4, 4.5921953931549871457e+4,
     1.3731693765509461125e+4, 1.9715909503065514427e+3, 1.3314166789178437745e+2, 3.3871328727963666080e+0),
    (5.2264952788528545610e+3, 2.8729085735721942674e+4, 3.9307895800092710610e+4, 2.1213794301586595867e+4,
     5.3941960214247511077e+3, 6.8718700749205790830e+2, 4.2313330701600911252e+1, 1.0))
_AS241_NEAR_TAIL = (
    (7.7454501427834140764e-4, 2.2723844989269184583e-2, 2.4178072517745061177e-1, 1.2704582524523683826e+0,
     3.6478483247632046050e+0, 5.7694972214606914055e+0, 4.6303378461565452959e+0, 1.4234371107496835773e+0),
    (1.0507500716444168432e-9, 5.4759380849953449460e-4, 1.5198666563616457197e-2, 1.4810397642748007459e-1,
     6.8976733498510000455e-1, 1.6763848301838038494e+0, 2.0531916266377588219e+0, 1.0))
_AS241_FAR_TAIL = (
    (2.0103343992922881327e-7, 2.7115555687434875782e-5, 1.2426609473880784386e-3, 2.6532189526576123093e-2,
     2.9656057182850489123e-1, 1.7848265399172913358e+0, 5.4637849111641143699e+0, 6.6579046435011037772e+0),
    (2.0442631033899397856e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5, 7.8686913114561325910e-4,
     1.4875361290850614853e-2, 1.3692988092273580531e-1, 5.9983220655588793769e-1, 1.0))


def _normal_quantile(p: np.ndarray) -> np.ndarray:
    """Phi^-1(p) for p in (0, 1), elementwise (AS241, vectorised)."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    z = np.empty_like(p)
    central = np.abs(q) <= 0.425
    r = 0.180625 - q[central] ** 2
    z[central] = q[central] * np.polyval(_AS241_CENTRAL[0], r) / np.polyval(_AS241_CENTRAL[1], r)
    tail = ~central
    r = np.sqrt(-np.log(np.minimum(p[tail], 1.0 - p[tail])))
    near = r <= 5.0
    x = np.empty_like(r)
    x[near] = np.polyval(_AS241_NEAR_TAIL[0], r[near] - 1.6) / np.polyval(_AS241_NEAR_TAIL[1], r[near] - 1.6)
    x[~near] = np.polyval(_AS241_FAR_TAIL[0], r[~near] - 5.0) / np.polyval(_AS241_FAR_TAIL[1], r[~near] - 5.0)
    z[tail] = np.where(q[tail] < 0, -x, x)
    return z


def constant_(tensor: Tensor, val: float) -> Tensor:
    return _fill(tensor, val)


def zeros_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 0)


def ones_(tensor: Tensor) -> Tensor:
    return _fill(tensor, 1)


def eye_(tensor: Tensor) -> Tensor:
    """The identity in a 2-D tensor (ones on the main diagonal of a possibly rectangular matrix)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tensor.shape}")
    return _fill(tensor, np.eye(*tensor.shape))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """A conv weight (out, in, *k) that passes channels through unchanged (as torch)."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3, 4 or 5-D tensors are supported, got shape {tensor.shape}")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)):
        raise TypeError(f"dirac_: groups must be an int, got {type(groups).__name__}")
    if groups < 1 or tensor.shape[0] % groups:
        raise ValueError(f"dirac_: groups={groups} must be positive and divide dim 0 of shape {tensor.shape}")
    out_per_group = tensor.shape[0] // groups
    channels = min(out_per_group, tensor.shape[1])
    values = np.zeros(tensor.shape)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):  # loop over groups only; each group's diagonal is one vector write
        idx = np.arange(channels)
        values[(g * out_per_group + idx, idx) + centre] = 1
    return _fill(tensor, values)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def kaiming_uniform_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None) -> Tensor:
    """U(-bound, bound) with bound = gain * sqrt(3 / fan) (He et al., 2015)."""
    fan = _calculate_correct_fan(tensor, mode)
    if fan == 0:
        return tensor  # torch warns and leaves a zero-element tensor alone
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor: Tensor, a: float = 0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None) -> Tensor:
    fan = _calculate_correct_fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan), generator)


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator=None) -> Tensor:
    """A (semi-)orthogonal matrix from the QR decomposition of a normal draw, with the signs of R's
    diagonal folded in so the result is uniform over orthogonal matrices (Saxe et al., 2013; torch)."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dims are supported, got shape {tensor.shape}")
    if tensor.data.size == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.data.size // rows
    flat = (generator or default_generator()).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


def bilinear_(tensor: Tensor) -> Tensor:
    """The bilinear up-sampling kernel of FCN (Long et al., 2015) for a transposed convolution.

    For a weight of shape (C_in, C_out, kh, kw) (ConvTranspose2d) or (C_out, C_in, kh, kw) (Conv2d),
    w[c, c] = the separable bilinear filter for c < min(dim 0, dim 1), zeros elsewhere: each channel
    is up-sampled on its own. The diagonal is the same in both layouts, so either may be passed.
    With stride s, use kernel size 2s - s % 2 and padding ceil((s - 1) / 2), as FCN does."""
    if tensor.ndim != 4:
        raise ValueError(f"bilinear_: expects a 4-D conv weight (C, C, kh, kw), got shape {tensor.shape}")
    rows = _bilinear_1d(tensor.shape[2])
    cols = _bilinear_1d(tensor.shape[3])
    values = np.zeros(tensor.shape)
    diagonal = np.arange(min(tensor.shape[0], tensor.shape[1]))
    values[diagonal, diagonal] = np.outer(rows, cols)
    return _fill(tensor, values)


def _bilinear_1d(size: int) -> np.ndarray:
    """1 - |i - centre| / factor: FCN's upsample_filt along one axis."""
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(size) - centre) / factor
