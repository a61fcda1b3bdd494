"""GEMM kernel against a NumPy float64 reference, on both kernel paths."""
import numpy as np
import pytest

import rosenblatt
from rosenblatt import kernels
from conftest import assert_close

SHAPES = [  # (M, N, K): ones, primes, non-multiples of the 6x16 tile, skinny and flat
    (1, 1, 1), (1, 17, 5), (17, 1, 5), (2, 3, 1), (6, 16, 8), (7, 17, 9), (13, 31, 37),
    (4, 300, 70), (300, 4, 70), (97, 101, 103), (257, 263, 1), (1, 500, 300), (500, 1, 300),
    (150, 40, 600), (64, 3, 2000), (3, 64, 2000), (290, 290, 290), (512, 49, 300), (20, 700, 40),
    (37, 200, 600),  # few rows: B packed a group of panels at a time, over several K blocks
    (9, 40, 30), (45, 33, 300),  # a last row panel of 3 (each ragged height has its own kernel)
    (100, 1100, 300), (61, 1030, 517),  # A packed (many B panels), a K block of 512 and a ragged rest
    (300, 45, 3), (70, 530, 4), (530, 70, 2),  # K <= 4: rows written from a few outer products
    (70, 2500, 27), (13, 1800, 100), (50, 200, 40),  # small K: row sweeps over groups of B panels
    # a last B panel of 1 to 4 columns with A read in place (the thin-edge dot products), with
    # every count of rows left in a tile, a K tail under 8 and a second K block
    (14, 65, 17), (23, 18, 45), (11, 35, 260), (8, 36, 20), (41, 52, 9),
]


def reference(a, b, trans_a, trans_b, alpha=1.0, beta=0.0, c=None):
    a = a.astype(np.float64).T if trans_a else a.astype(np.float64)
    b = b.astype(np.float64).T if trans_b else b.astype(np.float64)
    out = alpha * (a @ b)
    if c is not None and beta != 0:
        out = out + beta * c.astype(np.float64)
    return out


def operands(rng, M, N, K, trans_a, trans_b, dtype):
    a = rng.standard_normal((K, M) if trans_a else (M, K)).astype(dtype)
    b = rng.standard_normal((N, K) if trans_b else (K, N)).astype(dtype)
    return a, b


def tolerance(dtype, K):
    # float32 rounding grows like sqrt(K) for random data; relative to |ref| + sqrt(K)
    return (1e-4 * np.sqrt(K), 1e-4) if dtype == np.float32 else (1e-10 * np.sqrt(K), 1e-10)


@pytest.mark.parametrize("M,N,K", SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_gemm_matches_float64(isa, rng, M, N, K, trans_a, trans_b):
    for dtype in (np.float32, np.float64):
        a, b = operands(rng, M, N, K, trans_a, trans_b, dtype)
        out = kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b)
        atol, rtol = tolerance(dtype, K)
        assert out.dtype == dtype and out.shape == (M, N)
        assert_close(out, reference(a, b, trans_a, trans_b), atol, rtol, f"gemm {M}x{N}x{K} {dtype.__name__}")


@pytest.mark.parametrize("M,N,K", [(5, 7, 3), (37, 45, 300), (130, 70, 520), (29, 50, 300)])
@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (0.5, -2.0), (2.0, 0.0), (-1.0, 0.25)])
def test_gemm_alpha_beta_out(isa, rng, M, N, K, alpha, beta):
    a, b = operands(rng, M, N, K, False, False, np.float32)
    c = rng.standard_normal((M, N)).astype(np.float32)
    expected = reference(a, b, False, False, alpha, beta, c)
    returned = kernels.gemm(a, b, alpha=alpha, beta=beta, out=c)
    assert returned is c or np.shares_memory(returned, c)
    assert_close(c, expected, *tolerance(np.float32, K), "gemm out")


# With more than one thread, products with a single A row block (M <= 144) or at most 16 B panels
# (N <= 256) go to the balanced drivers, whose threads claim chunks of B panels or A rows at run
# time, in sizes that shrink as the work runs out; larger ones split C statically, and a thread
# out of work takes the others' last items (A block x B panels) with their packed B. Two and three
# threads give different chunk sequences, and three threads on two cores almost always have items
# taken from other threads; trans_a makes A packed rather than read in place.
BALANCED_SHAPES = [
    (144, 1000, 300), (37, 700, 520),  # B-panel chunks, A packed whole, K blocks and a ragged rest
    (64, 3136, 100), (50, 1000, 27),  # B-panel chunks in row sweeps (small K)
    (100, 196, 600), (12, 200, 40),  # B-panel chunks with A in place, a thin last panel
    (600, 49, 700), (145, 256, 300),  # A-row chunks, a thin last panel; one row past a single block
    (1000, 20, 60), (500, 250, 257),  # A-row chunks in a row sweep; K a block and one
    (300, 700, 530), (700, 300, 100), (150, 4200, 20),  # static split with taking; a row sweep; two NC blocks
    (300, 400, 1537),  # static split, four K blocks of near-equal depth (392, 392, 392, 361)
]


@pytest.mark.parametrize("threads", [2, 3])
@pytest.mark.parametrize("M,N,K", BALANCED_SHAPES)
@pytest.mark.parametrize("trans_a", [False, True])
def test_gemm_balanced_drivers(isa, rng, threads, M, N, K, trans_a):
    a, b = operands(rng, M, N, K, trans_a, False, np.float32)
    c = rng.standard_normal((M, N)).astype(np.float32)
    expected = reference(a, b, trans_a, False, 0.5, -1.0, c)
    before = rosenblatt.get_num_threads()
    rosenblatt.set_num_threads(threads)
    try:
        kernels.gemm(a, b, trans_a=trans_a, alpha=0.5, beta=-1.0, out=c)
    finally:
        rosenblatt.set_num_threads(before)
    assert_close(c, expected, *tolerance(np.float32, K), f"gemm {M}x{N}x{K} on {threads} threads")


@pytest.mark.parametrize("layout", ["fortran", "negative", "sliced", "broadcast"])
def test_gemm_strided_inputs(isa, rng, layout):
    M, N, K = 23, 41, 57
    a = rng.standard_normal((M, K)).astype(np.float32)
    b = rng.standard_normal((K, N)).astype(np.float32)
    if layout == "fortran":
        a, b = np.asfortranarray(a), np.asfortranarray(b)
    elif layout == "negative":
        a, b = a[::-1, ::-1], b[:, ::-1]
    elif layout == "sliced":
        big_a = rng.standard_normal((2 * M, 3 * K)).astype(np.float32)
        a = big_a[::2, ::3]
        b = np.ascontiguousarray(np.repeat(b, 2, axis=1))[:, ::2]
    else:  # stride 0: every row of b the same
        b = np.broadcast_to(b[:1], (K, N))
    out_full = np.zeros((M, 2 * N), dtype=np.float32)
    out = out_full[:, ::2]  # a strided out
    kernels.gemm(a, b, out=out)
    assert_close(out, reference(a, b, False, False), *tolerance(np.float32, K), f"gemm {layout}")
    assert np.all(out_full[:, 1::2] == 0), "gemm wrote outside out's elements"


@pytest.mark.parametrize("M,N,K", [(7, 17, 9), (64, 512, 300), (97, 101, 103), (4, 300, 70), (300, 4, 70)])
def test_gemm_column_major_out(isa, rng, M, N, K):
    a, b = operands(rng, M, N, K, False, True, np.float32)
    c = rng.standard_normal((N, M)).astype(np.float32).T  # Fortran-ordered view
    expected = reference(a, b, False, True, 1.0, 0.5, c)
    kernels.gemm(a, b, trans_b=True, beta=0.5, out=c)
    assert_close(c, expected, *tolerance(np.float32, K), f"gemm column-major out {M}x{N}x{K}")


def test_gemm_empty_dimensions(isa):
    z = kernels.gemm(np.ones((0, 3), np.float32), np.ones((3, 4), np.float32))
    assert z.shape == (0, 4)
    z = kernels.gemm(np.ones((2, 3), np.float32), np.ones((3, 0), np.float32))
    assert z.shape == (2, 0)
    # K = 0: zeros without out, beta * out with it
    z = kernels.gemm(np.ones((2, 0), np.float32), np.ones((0, 5), np.float32))
    assert z.shape == (2, 5) and np.all(z == 0)
    c = np.full((2, 5), 3.0, np.float32)
    kernels.gemm(np.ones((2, 0), np.float32), np.ones((0, 5), np.float32), beta=2.0, out=c)
    assert np.all(c == 6.0)


def test_gemm_nan_inf_propagate(isa):
    a = np.ones((7, 9), np.float32)
    b = np.ones((9, 20), np.float32)
    a[2, 3] = np.nan
    b[4, 5] = np.inf
    out = kernels.gemm(a, b)
    expected = a.astype(np.float64) @ b.astype(np.float64)
    assert np.array_equal(np.isnan(out), np.isnan(expected))
    assert np.array_equal(np.isinf(out), np.isinf(expected))


def test_gemm_beta_zero_ignores_old_out(isa):
    c = np.full((8, 18), np.nan, np.float32)
    kernels.gemm(np.ones((8, 3), np.float32), np.ones((3, 18), np.float32), out=c)
    assert np.all(c == 3.0)


def test_gemm_both_paths_really_ran(rng):
    from rosenblatt import _C
    a, b = operands(rng, 64, 64, 64, False, False, np.float32)
    if _C.cpu_supports_avx2():
        _C.set_isa("avx2")
        kernels.gemm(a, b)
        assert kernels.last_impl("gemm").startswith("avx512" if _C.avx512() else "avx2")
    _C.set_isa("scalar")
    try:
        kernels.gemm(a, b)
        assert kernels.last_impl("gemm") == "scalar_ref"
    finally:
        _C.set_isa("avx2" if _C.cpu_supports_avx2() else "scalar")


# ---- bad input -----------------------------------------------------------------------------
f32 = np.ones((3, 4), np.float32)


@pytest.mark.parametrize("a,b,error,words", [
    ([[1.0]], f32, TypeError, "numpy.ndarray"),
    (f32, "x", TypeError, "numpy.ndarray"),
    (np.ones(3, np.float32), f32, ValueError, "2-D"),
    (np.ones((2, 3, 4), np.float32), f32, ValueError, "2-D"),
    (f32, np.ones((3, 4), np.float32), ValueError, "(3, 4) and (3, 4)"),
    (f32, np.ones((4, 2), np.float64), TypeError, "float32"),
    (np.ones((3, 4), np.int32), np.ones((4, 2), np.int32), TypeError, "int32"),
])
def test_gemm_bad_input(a, b, error, words):
    with pytest.raises(error, match="gemm") as info:
        kernels.gemm(a, b)
    assert words in str(info.value)


def test_gemm_bad_out():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    with pytest.raises(ValueError, match=r"gemm: out has shape \(5, 3\)"):
        kernels.gemm(a, b, out=np.zeros((5, 3), np.float32))
    with pytest.raises(TypeError, match="gemm: out has dtype float64"):
        kernels.gemm(a, b, out=np.zeros((3, 5), np.float64))
    read_only = np.zeros((3, 5), np.float32)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        kernels.gemm(a, b, out=read_only)
    with pytest.raises(TypeError, match="out must be a numpy.ndarray"):
        kernels.gemm(a, b, out=[[0.0] * 5] * 3)
    square = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="overlaps an input"):
        kernels.gemm(square, square[::-1], out=square)


def test_gemm_misaligned_strides_rejected():
    raw = np.zeros(4 * 13 + 1, np.uint8)[1:].view(np.float32)  # unaligned but valid
    a = raw.reshape(13, 1)
    out = kernels.gemm(a, np.ones((1, 2), np.float32))
    assert out.shape == (13, 2)
    structured = np.zeros((3, 4), dtype=[("x", np.float32), ("y", np.int16)])["x"]
    with pytest.raises(ValueError, match="stride"):
        kernels.gemm(structured, np.ones((4, 2), np.float32))


def test_gemm_out_with_shared_elements_rejected():
    a = np.ones((3, 4), np.float32)
    b = np.ones((4, 5), np.float32)
    base = np.zeros(5, np.float32)
    out = np.lib.stride_tricks.as_strided(base, shape=(3, 5), strides=(0, 4))  # writeable, rows alias
    with pytest.raises(ValueError, match="gemm: out of shape .3, 5. has elements that share memory"):
        kernels.gemm(a, b, out=out)


@pytest.fixture
def gemm_kernels():
    """The micro-kernels the packed GEMM can run here: AVX2 alone, and with AVX-512 where the CPU has it.
    Yields a function that selects one ("avx2" or "avx512"); the default comes back afterwards."""
    from rosenblatt import _C
    if not _C.cpu_supports_avx2():
        pytest.skip("no AVX2")
    previous = _C.avx512()
    yield lambda name: _C.set_avx512(name == "avx512")
    _C.set_avx512(previous)


def test_gemm_every_avx2_path_is_exercised(rng, gemm_kernels):
    """The shape list above must reach every AVX2 implementation (else a path goes untested), with the
    packed paths' AVX-512 micro-kernel too where the CPU has it."""
    from rosenblatt import _C
    names = ["avx2"] + (["avx512"] if _C.cpu_supports_avx512() else [])
    expected = {"avx2_direct_rows", "avx2_direct_cols", "avx2_direct_rows_transposed", "avx2_direct_cols_transposed",
                "avx2_direct_k", "avx2_direct_k_transposed"}
    seen = set()
    for name in names:
        gemm_kernels(name)
        expected |= {f"{name}_packed_{'6x32' if name == 'avx512' else '6x16'}{suffix}" for suffix in ("", "_transposed")}
        for M, N, K in SHAPES + [(512, 49, 300)]:
            for trans_a in (False, True):
                for trans_b in (False, True):
                    a, b = operands(rng, M, N, K, trans_a, trans_b, np.float32)
                    for out in (None, np.empty((N, M), np.float32).T):  # row-major and column-major C
                        kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b, out=out)
                        seen.add(kernels.last_impl("gemm"))
    assert expected <= seen, f"untested paths: {expected - seen}"


@pytest.mark.parametrize("threads", [1, 2])
def test_gemm_avx512_kernel_gives_the_avx2_bits(rng, gemm_kernels, threads):
    """The AVX-512 micro-kernel sums each element over k in the AVX2 kernel's order: the same bits, on every
    shape, layout and alpha/beta of the list (each also checked against float64 above), and on the
    per-step products of a recurrent layer (packed weight, gates as segments)."""
    from rosenblatt import _C
    if not _C.cpu_supports_avx512():
        pytest.skip("no AVX-512F")
    saved = rosenblatt.get_num_threads()
    rosenblatt.set_num_threads(threads)
    try:
        for M, N, K in SHAPES + [(290, 290, 600), (144 * 2 + 13, 4096 + 48, 257)]:
            for trans_a, trans_b in ((False, False), (True, False), (False, True)):
                a, b = operands(rng, M, N, K, trans_a, trans_b, np.float32)
                c = rng.standard_normal((M, N)).astype(np.float32)
                results = []
                for name in ("avx2", "avx512"):
                    gemm_kernels(name)
                    out = c.copy()
                    kernels.gemm(a, b, trans_a=trans_a, trans_b=trans_b, alpha=0.5, beta=-1.5, out=out)
                    results.append(out)
                np.testing.assert_array_equal(results[0], results[1], err_msg=f"{M}x{N}x{K} {trans_a} {trans_b}")
        x, h0, c0 = (rng.standard_normal(s).astype(np.float32) for s in ((6, 37, 20), (37, 300), (37, 300)))
        w_ih, w_hh = rng.standard_normal((1200, 20)).astype(np.float32), rng.standard_normal((1200, 300)).astype(np.float32)
        outputs = []
        for name in ("avx2", "avx512"):
            gemm_kernels(name)
            outputs.append(_C.rnn_forward("lstm", x, h0, c0, w_ih * 0.05, w_hh * 0.05, None, None, None, False, True,
                                          None)[0])
        np.testing.assert_array_equal(outputs[0], outputs[1])
    finally:
        rosenblatt.set_num_threads(saved)
