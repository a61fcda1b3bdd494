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
    "roi_pool_forward": "(input, boxes (K, 5), output_size, spatial_scale) -> (output, argmax)",
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
