"""The CUDA backend: device queries, device memory, and kernels on DeviceArrays.

Safe on machines with no GPU, no driver, or a CPU-only build: the queries answer "none", and
anything that needs a device raises RuntimeError naming the op ("... no CUDA device ...").

    x = rosenblatt.cuda.from_numpy(np.ones((3, 4), np.float32))   # a DeviceArray on cuda:0
    y = rosenblatt.cuda.matmul(x, x.transpose(0, 1))                # (3, 3), our SGEMM
    y.to_numpy()
    torch.from_dlpack(y)                                            # zero copy, as rosenblatt.cuda.from_dlpack(t)
"""
from __future__ import annotations

try:
    from . import _cuda
except ImportError:  # built without CUDA
    _cuda = None

DeviceArray = None if _cuda is None else _cuda.DeviceArray


def _module(op: str):
    if _cuda is None:
        raise RuntimeError(f"{op}: rosenblatt was built without CUDA")
    return _cuda


# ---- device queries ----------------------------------------------------------------------------
def is_compiled() -> bool:
    return _cuda is not None


def is_available() -> bool:
    return _cuda is not None and _cuda.device_count() > 0


def device_count() -> int:
    return 0 if _cuda is None else _cuda.device_count()


def get_device_name(device: int = 0) -> str:
    if _cuda is None:
        raise RuntimeError("get_device_name: rosenblatt was built without CUDA")
    count = _cuda.device_count()
    if not 0 <= device < count:
        raise RuntimeError(f"get_device_name: no CUDA device {device} (device_count() is {count})")
    return _cuda.get_device_name(device)


# ---- memory: a caching allocator, one stream per device -------------------------------------------
def memory_stats(device: int = 0) -> dict:
    """allocated, max_allocated, reserved (bytes) and malloc_calls (cudaMalloc calls so far)."""
    if _cuda is None:
        return {"allocated": 0, "max_allocated": 0, "reserved": 0, "malloc_calls": 0}
    return _cuda.memory_stats(device)


def memory_allocated(device: int = 0) -> int:
    """Bytes held by live DeviceArrays (rounded to the allocator's size classes)."""
    return memory_stats(device)["allocated"]


def max_memory_allocated(device: int = 0) -> int:
    return memory_stats(device)["max_allocated"]


def memory_reserved(device: int = 0) -> int:
    """Bytes obtained from cudaMalloc: in use plus cached."""
    return memory_stats(device)["reserved"]


def reset_peak_memory_stats(device: int = 0) -> None:
    if _cuda is not None:
        _cuda.reset_peak_memory_stats(device)


def empty_cache(device: int = 0) -> None:
    """Give cached, unused blocks back to the driver."""
    if _cuda is not None:
        _cuda.empty_cache(device)


def synchronize(device: int = 0) -> None:
    """Wait for all work queued on the device's stream."""
    _module("synchronize").synchronize(device)


# ---- arrays ----------------------------------------------------------------------------------------
def empty(shape, dtype: str = "float32", device: int = 0):
    return _module("empty").empty(list(shape), dtype, device)


def from_numpy(array, device: int = 0):
    """Copy a NumPy array (float32, float64 or int64) to the device."""
    return _module("from_numpy").from_numpy(array, device)


def to_numpy(x):
    """Copy a DeviceArray to a new NumPy array (waits for the copy)."""
    return x.to_numpy()


def from_dlpack(obj):
    """A DeviceArray sharing memory with a CUDA DLPack producer (torch.cuda, CuPy, JAX): no copy."""
    return _module("from_dlpack").from_dlpack(obj)


# ---- kernels: each takes and returns DeviceArrays ---------------------------------------------------
_KERNELS = {
    "copy": "a C-contiguous copy",
    "neg": "-a", "exp": "exp(a)", "log": "log(a)", "tanh": "tanh(a)", "sigmoid": "1 / (1 + exp(-a))",
    "relu": "max(a, 0)",
    "add": "a + b (broadcasting)", "sub": "a - b (broadcasting)", "mul": "a * b (broadcasting)",
    "div": "a / b (broadcasting)",
    "exp_backward": "(grad, y=exp(x)) -> grad * y", "tanh_backward": "(grad, y=tanh(x)) -> grad * (1 - y^2)",
    "sigmoid_backward": "(grad, y=sigmoid(x)) -> grad * y * (1 - y)", "log_backward": "(grad, x) -> grad / x",
    "relu_backward": "(grad, x) -> grad where x > 0", "div_backward_b": "(grad, a, b) -> -grad * a / b^2",
    "sum": "(x, axis, keepdims=False) -> sum over one axis",
    "softmax": "softmax over the last axis", "log_softmax": "log_softmax over the last axis",
    "softmax_backward": "(grad, y=softmax(x)) -> grad of x",
    "log_softmax_backward": "(grad, y=log_softmax(x)) -> grad of x",
    "matmul": "(a, b) -> a @ b, float32, 2-D or batched 3-D; transposed views are read in place",
    # ---- training (cuda/dropout.cu, embedding.cu, batch_norm.cu, optim.cu, nll.cu; train_ops.h) ----
    "dropout_forward": "(x, p, seed, offset=0, plane=1) -> x * keep / (1 - p); keep is a pure function of "
                       "(seed, offset, element // plane) (Philox-4x32-10), so nothing is stored: plane=1 is dropout, "
                       "plane=H*W dropout2d; advance offset for every call that needs fresh numbers",
    "dropout_backward": "(grad, p, seed, offset=0, plane=1) -> grad * keep / (1 - p), the forward call's mask",
    "embedding_forward": "(weight (num, dim), indices int64 (*)) -> weight[indices] (*, dim); IndexError on a bad "
                         "index (one stream synchronisation to read the device-side flag)",
    "embedding_backward": "(grad (*, dim), indices (*), num_embeddings, padding_idx=None) -> grad_weight "
                          "(num, dim): rows scatter-added with atomicAdd (summation order varies between runs); "
                          "the padding row stays 0",
    "batch_norm_forward": "(x (N, C, ...), weight=None, bias=None, running_mean=None, running_var=None, "
                          "training=False, momentum=0.1, eps=1e-5) -> (y, save_mean, save_invstd); training "
                          "updates running_mean/var in place (unbiased var) as torch",
    "batch_norm_backward": "(grad, x, weight, save_mean, save_invstd, training) -> (dx, dweight, dbias); "
                           "dweight = sum(grad * x_hat), dbias = sum(grad) per channel, also without weight",
    "sgd_step_": "(param, grad, momentum_buffer=None, *, lr, momentum=0, dampening=0, weight_decay=0, "
                 "nesterov=False, maximize=False, first_step=False): torch.optim.SGD's update in place; "
                 "first_step=True starts the buffer as the gradient (it may then be uninitialised, e.g. empty())",
    "adam_step_": "(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq=None, *, step, lr, beta1=0.9, beta2=0.999, "
                  "eps=1e-8, weight_decay=0, amsgrad=False, maximize=False, decoupled_weight_decay=False): "
                  "Adam (AdamW with decoupled_weight_decay) in place; step counts from 1, already incremented",
    "grad_norm": "(arrays, norm_type=2.0) -> float32 array of shape (): the norm of all entries together "
                 "(inf: max |x|), reduced in a fixed order; no host synchronisation",
    "clip_by_total_norm_": "(arrays, total_norm, max_norm): arrays *= min(max_norm / (total_norm + 1e-6), 1) in "
                           "place, the coefficient read on the device (clip_grad_norm_ without a synchronisation)",
    "scale_": "(x, factor): x *= factor in place",
    "nll_gather": "(log_probs (N, C, d...) or (C,), target int64 (N, d...) or (), weight=None, ignore_index=-100) "
                  "-> (picked, element_weight) of the target's shape: log_probs at the target class and "
                  "weight[target] (or 1), both 0 where ignored; IndexError on a bad target",
    "nll_scatter": "(coef, target, num_classes, ignore_index=-100) -> zeros (N, C, d...) with coef at each "
                   "position's target class: nll's backward given coef = -grad * element_weight (/ total)",
    "max_last_axis": "(x) -> (values, int64 indices) over the last axis; first index on ties, NaN wins, as NumPy",
    "rnn_forward": "(cell, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse, linear_before_reset, out=None) "
                   "-> (y, h_n, c_n, saved): one recurrent layer and direction over a (T, B, I) sequence, "
                   "as rosenblatt._C.rnn_forward",
    "rnn_backward": "(cell, x, w_ih, w_hh, has_bias, lengths, reverse, linear_before_reset, saved, dy, dh_n, dc_n, "
                    "cell_grad_clip=0.0, dx=None) -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh): back-propagation "
                    "through time, as rosenblatt._C.rnn_backward",
    "grid_rnn_forward": "(x, w_ih, w_left, w_up, bias) -> h: the grid recurrence over x (R, C, B, I), "
                        "as rosenblatt._C.grid_rnn_forward",
    "grid_rnn_backward": "(x, w_ih, w_left, w_up, has_bias, h, dh) -> (dx, dw_ih, dw_left, dw_up, db), "
                         "as rosenblatt._C.grid_rnn_backward",
    # the device tensor layer's kernels (tensor_bindings.cpp; rosenblatt._device uses them)
    "sqrt": "sqrt(a)", "abs": "|a|", "sign": "sign(a) (NaN stays NaN)", "log1p": "log(1 + a)", "sin": "sin(a)",
    "cos": "cos(a)", "pow": "a ** b (broadcasting)", "maximum": "max(a, b), NaN-propagating (broadcasting)",
    "minimum": "min(a, b), NaN-propagating (broadcasting)",
    "eq": "a == b -> bool (broadcasting, any dtype)", "ne": "a != b -> bool", "lt": "a < b -> bool",
    "le": "a <= b -> bool", "gt": "a > b -> bool", "ge": "a >= b -> bool", "logical_and": "a and b -> bool",
    "logical_or": "a or b -> bool", "logical_xor": "a xor b -> bool",
    "where": "(condition (bool), a, b) -> condition ? a : b (broadcasting)",
    "astype": "(x, dtype) -> a C-contiguous copy converted to dtype (float32, float64, int64, bool)",
    "full": "(shape, value, dtype='float32', device=0) -> a new array filled with value",
    "assign": "(dst, src) -> None: dst[...] = src in place (src broadcasts; dst may be a strided view)",
    "as_strided": "(x, shape, strides, offset=0) -> a view of x's memory (refused outside x's span)",
    "max": "(x, axis, keepdims=False) -> (values, int64 indices) of the max over one axis",
    "min": "(x, axis, keepdims=False) -> (values, int64 indices) of the min over one axis",
    "gemm": "(a, b, trans_a=False, trans_b=False, alpha=1, beta=0, out=None) -> alpha op(a) op(b) + beta out, "
            "as rosenblatt._C.gemm (float32)",
}
# The convolution family: the names, arguments and results of rosenblatt._C's kernels.
_KERNELS.update({
    "conv2d_forward": "(input, weight, bias, stride, padding, dilation, groups) -> output, implicit GEMM",
    "conv2d_backward_data": "(grad_output, weight, input_size, stride, padding, dilation, groups) -> grad_input",
    "conv2d_backward_weight": "(input, grad_output, kernel_size, stride, padding, dilation, groups) -> grad_weight",
    "conv2d_backward_bias": "(grad_output) -> grad_bias, summed over N, H, W",
    "conv_transpose2d_forward": "(input, weight, bias, stride, padding, output_padding, dilation, groups) -> output",
    "im2col": "(input, kernel_size, stride, padding, dilation) -> (N, C*kH*kW, L): unfold",
    "col2im": "(input, output_size, kernel_size, stride, padding, dilation) -> (N, C, H, W): fold, overlaps summed",
    "max_pool2d_forward": "(input, kernel_size, stride, padding, dilation, ceil_mode, return_indices) -> "
                          "(output, indices or None)",
    "max_pool2d_backward": "(grad_output, indices, input_size) -> grad_input (also adaptive max pooling's)",
    "avg_pool2d_forward": "(input, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)",
    "avg_pool2d_backward": "(grad_output, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad, "
                           "divisor_override) -> grad_input",
    "adaptive_max_pool2d_forward": "(input, output_size, return_indices) -> (output, indices or None)",
    "adaptive_avg_pool2d_forward": "(input, output_size) -> output",
    "adaptive_avg_pool2d_backward": "(grad_output, input_size) -> grad_input",
    "roi_pool_forward": "(input, boxes (K, 5), output_size, spatial_scale, return_indices=True) -> "
                        "(output, argmax or None)",
    "roi_pool_backward": "(grad_output, boxes, argmax, input_shape) -> grad_input",
    "upsample2d_forward": "(input, output_size, scales, mode, align_corners) -> output: F.interpolate, 'nearest' or "
                          "'bilinear'; scales = torch's input/output size ratio per axis",
    "upsample2d_backward": "(grad_output, input_size, scales, mode, align_corners) -> grad_input",
})


def _kernel(name: str, doc: str):
    def kernel(*args, **kwargs):
        return getattr(_module(name), name)(*args, **kwargs)
    kernel.__name__ = kernel.__qualname__ = name
    kernel.__doc__ = f"CUDA kernel: {doc}."
    return kernel


for _name, _doc in _KERNELS.items():
    globals()[_name] = _kernel(_name, _doc)
del _name, _doc
