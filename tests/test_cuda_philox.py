"""The dropout random numbers without a GPU: the device code's own Philox-4x32-10 and dropout mask
functions (cuda/philox.h, `__host__ __device__`) run on the host, against the known-answer vectors
of the Random123 distribution (Salmon et al., SC 2011) and a NumPy implementation written from the paper.
"""
import numpy as np
import pytest

from rosenblatt import cuda

pytestmark = pytest.mark.skipif(not cuda.is_compiled(), reason="built without CUDA")

KNOWN_ANSWERS = [  # (counter, key, output) of Philox-4x32-10
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]

MASK32 = np.uint64(0xFFFFFFFF)


def philox_numpy(counters, key):
    """Philox-4x32-10 of an (n, 4) array of counters under one key, in uint64 arithmetic."""
    c = [counters[:, k].astype(np.uint64) for k in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for round_ in range(10):
        if round_:
            k0, k1 = (k0 + np.uint64(0x9E3779B9)) & MASK32, (k1 + np.uint64(0xBB67AE85)) & MASK32
        p0, p1 = np.uint64(0xD2511F53) * c[0], np.uint64(0xCD9E8D57) * c[2]
        c = [(p1 >> np.uint64(32)) ^ c[1] ^ k0, p1 & MASK32, (p0 >> np.uint64(32)) ^ c[3] ^ k1, p0 & MASK32]
    return np.stack(c, axis=1).astype(np.uint32)


def stream_numpy(n, seed, offset):
    """Number j of the (seed, offset) stream: word j % 4 of Philox((j // 4, offset) as 32-bit words)."""
    blocks = np.arange((n + 3) // 4, dtype=np.uint64)
    counters = np.stack([blocks & MASK32, blocks >> np.uint64(32),
                         np.full_like(blocks, offset & 0xFFFFFFFF), np.full_like(blocks, offset >> 32)], axis=1)
    return philox_numpy(counters, (seed & 0xFFFFFFFF, seed >> 32)).reshape(-1)[:n]


@pytest.mark.parametrize("counter,key,expected", KNOWN_ANSWERS)
def test_known_answers(counter, key, expected):
    assert cuda._cuda._philox4x32_10(list(counter), list(key)) == expected
    assert tuple(philox_numpy(np.array([counter], np.uint64), key)[0]) == expected


def test_device_function_matches_numpy(rng):
    counters = rng.integers(0, 2 ** 32, size=(200, 4), dtype=np.uint64)
    key = tuple(int(k) for k in rng.integers(0, 2 ** 32, size=2))
    expected = philox_numpy(counters, key)
    for row, want in zip(counters, expected):
        assert cuda._cuda._philox4x32_10([int(v) for v in row], list(key)) == tuple(int(v) for v in want)


def test_threshold_is_ceil_of_p_times_2_to_24():
    for p in (0.0, 1.0, 0.5, 0.1, 1 / 3, 2 ** -24, 1 - 2 ** -30):
        assert cuda._cuda._dropout_threshold(p) == int(np.ceil(p * 2 ** 24))


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9, 1.0])
@pytest.mark.parametrize("seed,offset", [(0, 0), (1234, 7), (2 ** 64 - 1, 2 ** 40 + 3)])
def test_dropout_mask(p, seed, offset):
    n = 10007  # not a multiple of 4
    keep = cuda._cuda._dropout_keep_on_host(n, p, seed, offset)
    bits = stream_numpy(n, seed, offset)
    np.testing.assert_array_equal(keep, (bits >> 8) >= int(np.ceil(p * 2 ** 24)))
    if 0 < p < 1:  # about a fraction 1 - p kept: 6 standard deviations
        assert abs(keep.mean() - (1 - p)) < 6 * np.sqrt(p * (1 - p) / n)


def test_dropout2d_mask_is_constant_over_planes():
    planes, plane = 37, 9
    keep = cuda._cuda._dropout_keep_on_host(planes * plane, 0.5, 99, 3, plane).reshape(planes, plane)
    np.testing.assert_array_equal(keep, np.repeat(keep[:, :1], plane, axis=1))
    np.testing.assert_array_equal(keep[:, 0], (stream_numpy(planes, 99, 3) >> 8) >= 2 ** 23)


def test_streams_differ_by_seed_and_offset():
    a = cuda._cuda._dropout_keep_on_host(4096, 0.5, 1, 0)
    assert (a != cuda._cuda._dropout_keep_on_host(4096, 0.5, 2, 0)).mean() > 0.4
    assert (a != cuda._cuda._dropout_keep_on_host(4096, 0.5, 1, 1)).mean() > 0.4
