"""Regression tests for bad inputs found by fuzzing the kernels' entry points.

Each case once crashed the process, hung, or gave a wrong result without a word. A case that could
crash runs in a subprocess, so that a regression fails one test instead of taking down the run; it
must end in a clean exception that names the op.
"""
import ast
import os
import subprocess
import sys

import numpy as np
import pytest

from rosenblatt import _C

PRELUDE = """
import numpy as np
from numpy.lib.stride_tricks import as_strided
from rosenblatt import _C
"""


def raised_in_subprocess(call: str) -> str:
    """'ExceptionType: message' raised by `call` in a fresh interpreter ('' if none); a crash fails."""
    code = PRELUDE + f"try:\n    {call}\nexcept Exception as e:\n    print(type(e).__name__ + ': ' + str(e))\n"
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, f"{call!r} killed the interpreter (exit {proc.returncode}): {proc.stderr[-500:]}"
    return proc.stdout.strip()


# A broadcast view whose contiguous copy (13 PB) cannot be made.
HUGE_VIEW = "as_strided(np.ones(1, np.float32), (2**20, 3, 2**20, 2**10), (0, 0, 0, 0))"


@pytest.mark.parametrize("call, op", [
    (f"_C.conv2d_backward_bias({HUGE_VIEW})", "conv2d_backward_bias"),
    (f"_C.conv2d_forward({HUGE_VIEW}, np.ones((1, 3, 1, 1), np.float32), None, (1, 1), (0, 0), (1, 1), 1)",
     "conv2d"),
    (f"_C.max_pool2d_forward({HUGE_VIEW}, (2, 2), (2, 2), (0, 0), (1, 1), False, False)", "max_pool2d"),
    (f"_C.adaptive_avg_pool2d_forward({HUGE_VIEW}, (2, 2))", "adaptive_avg_pool2d"),
    ("_C.batch_norm_forward(as_strided(np.ones(1, np.float32), (2**20, 3, 2**30), (0, 0, 0)), None, None, "
     "np.zeros(3, np.float32), np.ones(3, np.float32), False)", "batch_norm_forward"),
])
def test_input_too_large_to_copy_is_a_memory_error(call, op):
    # pybind11's ensure() returned a null array when numpy could not make the copy; the kernel read it.
    assert raised_in_subprocess(call).startswith(f"MemoryError: {op}: cannot make a contiguous copy")


@pytest.mark.skipif(_C.isa() != "avx2", reason="the AVX2 drivers' packed copies; the scalar reference packs "
                    "nothing and would take days over this K")
@pytest.mark.parametrize("M, N", [(3, 1000), (1000, 100)])  # the column-chunk and row-chunk drivers
def test_gemm_whose_packed_operands_do_not_fit_is_a_memory_error(M, N):
    # Each thread packs all of K of the small operand; that allocation failed inside the parallel region,
    # where an exception ends the process (SIGABRT). A machine that can map 512 GiB computes it instead.
    K = 2**36
    call = (f"r = _C.gemm(as_strided(np.ones(1, np.float32), ({M}, {K}), (0, 0)), "
            f"as_strided(np.ones(1, np.float32), ({K}, {N}), (0, 0))); print('computed', r[0, 0])")
    raised = raised_in_subprocess(call)
    assert raised.startswith(f"MemoryError: gemm: no memory for the packed operands of a {M} x {N} x {K} product") \
        or raised == f"computed {float(K)}", raised


X8 = "np.ones((1, 1, 8, 8), np.float32)"


@pytest.mark.parametrize("call, op", [
    # kH * kW wrapped to 0: the channel count divided by it raised SIGFPE.
    ("_C.col2im(np.ones((1, 4, 1), np.float32), (2, 2), (2**32, 2**32), (1, 1), (0, 0), (1, 1))", "fold"),
    # The dilated kernel wrapped to 1 tap: an 8x8 output, silently.
    (f"_C.conv2d_forward({X8}, np.ones((1, 1, 5, 1), np.float32), None, (1, 1), (0, 0), (2**62, 1), 1)", "conv2d"),
    # ... or to a negative span: 10 output rows from 8 input rows.
    (f"_C.conv2d_forward({X8}, np.ones((1, 1, 3, 3), np.float32), None, (1, 1), (0, 0), (2**63 - 1, 1), 1)",
     "conv2d"),
    (f"_C.max_pool2d_forward({X8}, (5, 1), (1, 1), (0, 0), (2**62, 1), False, True)", "max_pool2d"),
    (f"_C.max_pool2d_forward({X8}, (3, 1), (1, 1), (0, 0), (2**63 - 1, 1), False, True)", "max_pool2d"),
    (f"_C.avg_pool2d_forward({X8}, (2**32, 2**32), (1, 1), (2**31, 2**31), False, True, None)", "avg_pool2d"),
    ("_C.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), np.ones((1, 1, 2, 2), np.int64), "
     "(2**32 + 1, 2**32))", "max_pool2d_backward"),
    ("_C.conv_transpose2d_forward(np.ones((1, 1, 5, 3), np.float32), np.ones((1, 1, 1, 1), np.float32), None, "
     "(2**62, 1), (0, 0), (0, 0), (1, 1), 1)", "conv_transpose2d"),
])
def test_sizes_that_overflow_int64_are_rejected(call, op):
    raised = raised_in_subprocess(call)
    assert raised.startswith(f"ValueError: {op}: ") and "overflows int64" in raised, raised


@pytest.mark.parametrize("dtype", ["float32", "float64"])  # the AVX2 loops and the reference
@pytest.mark.parametrize("kernel, padding", [((2**40, 2), (2**39, 0)), ((3, 2**41), (1, 2**40))])
def test_max_pool_window_far_larger_than_the_image(dtype, kernel, padding):
    # Valid under torch's rules (padding at most half the kernel), and each window walked all 2**40
    # taps, skipping those outside the image one by one: the call never returned.
    x = np.random.default_rng(0).random((2, 3, 4, 5))
    call = (f"y, i = _C.max_pool2d_forward(np.array({x.tolist()}, np.{dtype}), {kernel}, (1, 1), {padding}, "
            "(1, 1), False, True); print(repr((y.tolist(), i.tolist())))")
    y, i = (np.array(a) for a in ast.literal_eval(raised_in_subprocess(call)))
    # Each window's taps inside the image: rows [oh - pH, oh - pH + kH) and columns likewise, clipped.
    H, W = x.shape[2:]
    want_y, want_i = np.empty(y.shape), np.empty(i.shape, np.int64)
    assert y.shape == (2, 3, H + 2 * padding[0] - kernel[0] + 1, W + 2 * padding[1] - kernel[1] + 1)
    for oh, ow in np.ndindex(*y.shape[2:]):
        r0, r1 = max(0, oh - padding[0]), min(H, oh - padding[0] + kernel[0])
        c0, c1 = max(0, ow - padding[1]), min(W, ow - padding[1] + kernel[1])
        window = x[:, :, r0:r1, c0:c1].reshape(2, 3, -1).astype(dtype)
        first = window.argmax(-1)
        want_y[:, :, oh, ow] = window.max(-1)
        want_i[:, :, oh, ow] = (r0 + first // (c1 - c0)) * W + c0 + first % (c1 - c0)
    np.testing.assert_array_equal(y, want_y)
    np.testing.assert_array_equal(i, want_i)


@pytest.mark.parametrize("divisor, error", [(0, ValueError), (1.5, TypeError), ("2", TypeError), (2**70, TypeError)])
def test_avg_pool_divisor_override_must_be_a_non_zero_int(divisor, error):
    # A float, a string or an int beyond int64 gave pybind11's "Unable to cast" RuntimeError.
    from rosenblatt import kernels
    x = np.ones((1, 1, 4, 4), np.float32)
    with pytest.raises(error, match=r"avg_pool2d: divisor_override must be None or a non-zero int, got .* \(input"):
        kernels.avg_pool2d(x, (2, 2), (2, 2), divisor_override=divisor)
    with pytest.raises(error, match=r"avg_pool2d_backward: divisor_override must be None or a non-zero int"):
        _C.avg_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), (4, 4), (2, 2), (2, 2), (0, 0), False, True, divisor)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # the AVX2 path and the reference
def test_avg_pool_divides_by_a_negative_divisor_override(dtype):
    # As torch: the sum over the window / divisor. The kernels took a divisor <= 0 for an empty window
    # and wrote zeros.
    from rosenblatt import kernels
    x = np.arange(2 * 3 * 9 * 10, dtype=dtype).reshape(2, 3, 9, 10) % 7 - 3
    y = kernels.avg_pool2d(x, (3, 3), (1, 1), (1, 1), divisor_override=-3)
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    sums = sum(padded[:, :, i:i + 9, j:j + 10] for i in range(3) for j in range(3))
    np.testing.assert_allclose(y, sums / -3, rtol=1e-6, atol=1e-6)
    dy = np.ones_like(y)
    dx = _C.avg_pool2d_backward(dy, (9, 10), (3, 3), (1, 1), (1, 1), False, True, -3)
    taps = sum(np.pad(np.ones((9, 10)), 1)[i:i + 9, j:j + 10] for i in range(3) for j in range(3))
    np.testing.assert_allclose(dx, np.broadcast_to(taps / -3, dx.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("alias", ["x", "weight"])
def test_batch_norm_running_stats_must_not_share_memory_with_what_is_read(alias):
    # The running mean was updated in place while the kernel still read x (or weight) through it: the
    # normalised output came out wrong without an error.
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    weight = np.ones(3, np.float32)
    running_mean = x[0] if alias == "x" else weight
    with pytest.raises(ValueError, match=rf"batch_norm_forward: running_mean shares memory with {alias} \(x shape \(4, 3\)\)"):
        _C.batch_norm_forward(x, weight, None, running_mean, np.ones(3, np.float32), True)


@pytest.mark.parametrize("call, op", [
    # libgomp could not create the team of the next parallel kernel and killed the process.
    ("_C.set_num_threads(100000); _C.conv2d_forward(np.ones((4, 8, 32, 32), np.float32), "
     "np.ones((8, 8, 3, 3), np.float32), None, (1, 1), (0, 0), (1, 1), 1)", "set_num_threads"),
    ("_C.set_num_threads(2**40)", "set_num_threads"),  # was pybind11's bare "incompatible function arguments"
    pytest.param("_C.fma_peak_gflops(100000, 10)", "fma_peak_gflops",
                 marks=pytest.mark.skipif(not _C.cpu_supports_avx2(), reason="needs AVX2")),
])
def test_absurd_thread_counts_are_rejected(call, op):
    raised = raised_in_subprocess(call)
    assert raised.startswith(f"ValueError: {op}: the number of threads must be in [1, "), raised


@pytest.mark.parametrize("dtype, scale", [("float32", 1e39), ("float64", 1e300)])
def test_roi_pool_boxes_huge_once_scaled_are_rejected(dtype, scale):
    # The kernel scales each coordinate in the input's dtype and rounds it to int64: 1e39 is inf in float32
    # and 1e300 * 4 overflows int64, undefined behaviour that came out as all-empty bins (zeros, argmax -1).
    call = (f"_C.roi_pool_forward(np.ones((1, 1, 8, 8), np.{dtype}), np.array([[0, 1, 1, 4, 4]], np.{dtype}), "
            f"(2, 2), {scale!r})")
    raised = raised_in_subprocess(call)
    assert raised.startswith("ValueError: roi_pool: box 0 has a non-finite or huge coordinate"), raised
    assert "scaled by spatial_scale" in raised, raised


def test_batch_norm_running_stats_must_be_floating():
    # An integer running_var of ones came back as zeros: the update was written back truncated.
    import rosenblatt.nn.functional as F
    from rosenblatt.tensor import Tensor
    x = Tensor(np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32))
    running_var = np.ones(3, np.int64)
    with pytest.raises(TypeError, match=r"batch_norm: running_var must be a floating array or Tensor, got int64 "
                                        r"\(input \(4, 3\)\)"):
        F.batch_norm(x, np.zeros(3, np.float32), running_var, training=True)
    assert (running_var == 1).all()
    with pytest.raises(TypeError, match=r"batch_norm: running_mean must be a floating array or Tensor, got list"):
        F.batch_norm(x, [0.0, 0.0, 0.0], np.ones(3, np.float32))


def test_batch_norm_without_channels_is_a_value_error():
    import rosenblatt.nn.functional as F
    from rosenblatt.tensor import Tensor
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel when training, "
                                         r"got input \(4, 0\)"):  # was a ZeroDivisionError
        F.batch_norm(Tensor(np.ones((4, 0), np.float32)), None, None, training=True)


@pytest.mark.parametrize("padding_idx", [-7, 5, 7])
def test_embedding_padding_idx_out_of_range(padding_idx):
    # -7 on a table of 5 rows zeroed the gradient of row 3 without a word; 5 and 7 failed in NumPy's
    # indexing during the backward pass, with a message that named neither the op nor the shapes.
    import rosenblatt.nn.functional as F
    from rosenblatt.tensor import Tensor
    weight = Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    with pytest.raises(ValueError, match=rf"embedding: padding_idx {padding_idx} is outside \[-5, 5\) for weight "
                                         r"of shape \(5, 3\)"):
        F.embedding(np.array([1, 3]), weight, padding_idx=padding_idx)



def test_embedding_padding_idx_and_weight_types():
    # A padding_idx of 1.5 passed the range check and failed in NumPy's indexing during backward; an
    # ndarray weight was taken for a device array ("built without CUDA").
    import rosenblatt.nn as nn
    import rosenblatt.nn.functional as F
    from rosenblatt.tensor import Tensor
    weight = Tensor(np.ones((5, 3), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match=r"embedding: padding_idx must be an integer, got 1.5 \(weight of shape "
                                        r"\(5, 3\)\)"):
        F.embedding(np.array([1, 3]), weight, padding_idx=1.5)
    with pytest.raises(TypeError, match="Embedding: padding_idx must be an integer, got 1.5"):
        nn.Embedding(5, 3, padding_idx=1.5)
    with pytest.raises(TypeError, match="embedding: weight must be a Tensor, got ndarray"):
        F.embedding(np.array([1]), np.ones((5, 3), np.float32))
    assert F.embedding(np.array([1]), weight, padding_idx=np.int64(2)).shape == (1, 3)  # NumPy integers are fine


def test_roi_pool_without_boxes_gives_a_zero_gradient():
    # A step without proposals: the forward gave (0, C, PH, PW) but the backward refused its empty grad_output.
    import rosenblatt as rb
    import rosenblatt.nn.functional as F
    x = rb.Tensor(np.random.default_rng(0).random((2, 3, 4, 4)).astype(np.float32), requires_grad=True)
    y = F.roi_pool(x, np.zeros((0, 5), np.float32), 2)
    assert y.shape == (0, 3, 2, 2)
    (rb.sum(y) + rb.sum(x)).backward()
    np.testing.assert_array_equal(x.grad.data, np.ones(x.shape, np.float32))

def test_embedding_weight_must_be_2d():
    import rosenblatt.nn.functional as F
    from rosenblatt.tensor import Tensor
    with pytest.raises(ValueError, match=r"embedding: weight must be 2-D \(num_embeddings, dim\), got shape \(5,\)"):
        F.embedding(np.array([1]), Tensor(np.ones(5, np.float32)))


def _tensor(*shape):
    from rosenblatt.tensor import Tensor
    return Tensor(np.random.default_rng(0).random(shape).astype(np.float32))


# Ordinary mistakes that raised a bare Python or NumPy error naming neither the op nor the shapes.
@pytest.mark.parametrize("call, error, message", [
    (lambda F: F.interpolate(_tensor(1, 1, 4, 4), scale_factor=float("nan")), ValueError,
     r"interpolate: scale_factor must be positive and finite"),  # was "cannot convert float NaN to integer"
    (lambda F: F.interpolate(_tensor(1, 1, 4, 4), scale_factor=float("inf")), ValueError,
     r"interpolate: scale_factor must be positive and finite"),  # was OverflowError
    (lambda F: F.adaptive_max_pool2d(_tensor(1, 1, 4, 6), 2.5), TypeError,
     r"adaptive_max_pool2d: output_size must be an int or a pair, got 2.5 \(input size \(4, 6\)\)"),
    (lambda F: F.spp(_tensor(1, 1, 4, 4), 2), TypeError, r"spp: levels must be a sequence of ints, got 2"),
    (lambda F: F.grid_rnn2d(_tensor(3, 4, 4), _tensor(5, 3), _tensor(5, 5), _tensor(5, 5)), ValueError,
     r"grid_rnn2d: expected a 4-D \(N, C_in, rows, cols\) input, got shape \(3, 4, 4\)"),  # "axes don't match"
    (lambda F: F.binary_cross_entropy(_tensor(3), _tensor(3), weight=np.ones(2, np.float32)), ValueError,
     r"binary_cross_entropy: weight shape \(2,\) does not broadcast to input shape \(3,\)"),
])
def test_ordinary_mistakes_name_the_op(call, error, message):
    import rosenblatt.nn.functional as F
    with pytest.raises(error, match=message):
        call(F)


@pytest.mark.parametrize("module", ["LSTM", "LSTMCell"])
def test_lstm_state_must_be_a_pair(module):
    # A single Tensor was unpacked along its first dim: "not enough values to unpack (expected 2, got 1)".
    import rosenblatt.nn as nn
    layer = getattr(nn, module)(4, 3)
    x, h = (_tensor(5, 2, 4), _tensor(1, 2, 3)) if module == "LSTM" else (_tensor(2, 4), _tensor(2, 3))
    with pytest.raises(TypeError, match=rf"{module}: hx must be a pair \(h0, c0\), got Tensor \(input shape"):
        layer(x, h)


def _overcommit_refuses_huge_maps() -> bool:
    try:
        with open("/proc/sys/vm/overcommit_memory") as f:
            return f.read().strip() in ("0", "2")  # heuristic or strict: a 4 TiB map fails at once
    except OSError:
        return False


@pytest.mark.skipif(not _overcommit_refuses_huge_maps(), reason="with overcommit on, a 4 TiB array is mapped and "
                    "the kernel's writes would meet the OOM killer")
@pytest.mark.parametrize("call, op", [
    ("F.conv2d(rb.tensor(np.ones((1, 1, 4, 4), np.float32)), rb.tensor(np.ones((1, 1, 3, 3), np.float32)), "
     "padding=2**20)", "conv2d_forward"),
    ("F.interpolate(rb.tensor(np.ones((1, 1, 4, 4), np.float32)), size=(2**20, 2**20))", "upsample2d_forward"),
])
def test_output_too_large_to_allocate_names_the_op(call, op):
    """NumPy's 'Unable to allocate 16.0 TiB ...' named neither the op nor its inputs."""
    raised = raised_in_subprocess(f"import rosenblatt as rb; F = rb.nn.functional; {call}")
    assert raised.startswith(f"MemoryError: {op}: out of memory (inputs of shapes (1, 1, 4, 4)"), \
        raised


@pytest.mark.skipif(not _overcommit_refuses_huge_maps(), reason="with overcommit on, the 400 GB scratch is mapped and "
                    "the kernel's writes would meet the OOM killer")
@pytest.mark.skipif(_C.isa() == "scalar", reason="the scalar reference convolves directly, without im2col columns")
@pytest.mark.parametrize("call, op", [
    ("_C.conv2d_forward(np.ones((1, 1, 1, 1), np.float32), W, None, (1, 1), (500, 50000), (1, 1), 1)", "conv2d"),
    ("_C.conv2d_backward_data(np.ones((2, 2, 2, 99002), np.float32), W, (1, 1), (1, 1), (500, 50000), (1, 1), 1)",
     "conv2d_backward_data"),
    ("_C.conv2d_backward_weight(np.ones((1, 1, 1, 1), np.float32), np.ones((1, 2, 2, 99002), np.float32), "
     "(1000, 1000), (1, 1), (500, 50000), (1, 1), 1)", "conv2d_backward_weight"),
])
def test_conv_scratch_too_large_is_a_memory_error(call, op):
    # A block of output rows needs C * kH * kW * OW floats of columns (400 GB here): the threads took them
    # inside their parallel region, and the failed allocation aborted the process (SIGABRT). Two output
    # channels: a single one is convolved directly, without columns.
    raised = raised_in_subprocess(f"W = np.ones((2, 1, 1000, 1000), np.float32); {call}")
    assert raised.startswith(f"MemoryError: {op}: no memory for the im2col columns"), raised


def test_conv_backward_data_with_absurd_groups_names_them():
    # w.shape[1] * groups overflowed before the divisibility check: "input (1, -9223372036854775808, 4, 4)".
    from rosenblatt import _C
    with pytest.raises(ValueError, match=r"^conv2d_backward_data: groups 4611686018427387904 is too large for "
                                         r"weight \(2, 2, 3, 3\)"):
        _C.conv2d_backward_data(np.ones((1, 2, 2, 2), np.float32), np.ones((2, 2, 3, 3), np.float32), (4, 4),
                                (1, 1), (0, 0), (1, 1), 2**62)


@pytest.mark.skipif(not _overcommit_refuses_huge_maps(), reason="with overcommit on, the buffers are mapped and "
                    "the writes would meet the OOM killer")
@pytest.mark.parametrize("call, expected", [
    ("_C.copy_bandwidth(2**62)", "MemoryError: copy_bandwidth: no memory"),
    ("_C.read_bandwidth(2**62)", "MemoryError: read_bandwidth: no memory"),
    ("_C.recycled_empty(2**40, 'float32')", "MemoryError: recycled_empty: no memory"),
    ("_C.recycled_empty(2**61, 'float64')", "ValueError: recycled_empty: 2305843009213693952 elements"),
])
def test_helper_allocations_too_large_name_the_function(call, expected):
    # They raised a bare "MemoryError: std::bad_alloc" or NumPy's "array is too big".
    assert raised_in_subprocess(call).startswith(expected)
