"""Functional forms of the convolution family, as torch.nn.functional: convolution, transposed
convolution, pooling, spatial pyramid and RoI pooling, up-sampling, locally connected layers,
channel dropout and batch normalisation.

Each op runs its forward on NumPy arrays with a kernel from rosenblatt._C (or one vectorised
NumPy call) and records one graph node whose backward calls the matching backward kernel.
Shapes are NCHW; an unbatched (C, H, W) input is accepted where torch accepts it.
"""
from __future__ import annotations

import math

import numpy as np

from .. import _device
from .._device import kernel_module as _kernels
from ..random import default_generator
from ..tensor import Tensor, as_tensor, is_grad_enabled, result

__all__ = [
    "conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_max_pool2d", "adaptive_avg_pool2d",
    "interpolate", "upsample", "spp", "roi_pool", "locally_connected2d", "unfold", "fold", "dropout2d", "batch_norm",
]


# ---- argument helpers ----------------------------------------------------------------------------

def _pair(value, op: str, name: str) -> tuple:
    """An int or a pair of ints -> (height, width)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return int(value), int(value)
    try:
        pair = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a pair of ints, got {value!r}") from None
    if len(pair) != 2:
        raise ValueError(f"{op}: {name} must be an int or a pair of ints, got {value!r}")
    return pair


def _batched(x: Tensor, op: str):
    """(N, C, H, W) array of x and whether x was unbatched (C, H, W)."""
    if x.ndim == 4:
        return x.data, False
    if x.ndim == 3:
        return x.data[None], True
    raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape {x.shape}")


def _unbatch(array: np.ndarray, unbatched: bool) -> np.ndarray:
    return array[0] if unbatched else array


def _needs_grad(*tensors) -> bool:
    return is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


# ---- convolution ---------------------------------------------------------------------------------

def _same_padding(kernel, dilation, stride, op):
    """padding="same": total padding d (k - 1) per dim; torch puts the odd extra pixel at the end."""
    if stride != (1, 1):
        raise ValueError(f"{op}: padding='same' is not supported for strided convolutions (stride {stride})")
    total = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
    return tuple(t // 2 for t in total), tuple(t - t // 2 * 2 for t in total)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1) -> Tensor:
    """2-D convolution (cross-correlation) of input (N, C, H, W) with weight (O, C/groups, kH, kW)."""
    op = "conv2d"
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (O, C/groups, kH, kW), got shape {w.shape} (input {x.shape})")
    stride, dilation = _pair(stride, op, "stride"), _pair(dilation, op, "dilation")
    x_data, unbatched = _batched(x, op)
    extra = (0, 0)  # asymmetric "same" padding: one more row/column at the bottom/right
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0, 0)
        elif padding == "same":
            padding, extra = _same_padding(w.shape[2:], dilation, stride, op)
        else:
            raise ValueError(f"{op}: padding must be 'valid', 'same' or ints, got {padding!r}")
    padding = _pair(padding, op, "padding")
    if extra != (0, 0):
        x_data = np.pad(x_data, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
    groups = int(groups)
    y = _kernels.conv2d_forward(x_data, w.data, None if b is None else b.data, stride, padding, dilation, groups)
    padded_hw = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        dx = dw = db = None
        if x.requires_grad:
            dx = _kernels.conv2d_backward_data(grad, w.data, padded_hw, stride, padding, dilation, groups)
            dx = _unbatch(dx[:, :, : dx.shape[2] - extra[0], : dx.shape[3] - extra[1]], unbatched)
        if w.requires_grad:
            dw = _kernels.conv2d_backward_weight(x_data, grad, w.shape[2:], stride, padding, dilation, groups)
        if b is not None and b.requires_grad:
            db = _kernels.conv2d_backward_bias(grad)
        return (dx, dw) if b is None else (dx, dw, db)

    parents = (x, w) if b is None else (x, w, b)
    return result(_unbatch(y, unbatched), parents, backward, "ConvolutionBackward0")


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1) -> Tensor:
    """Transposed convolution of input (N, C_in, H, W) with weight (C_in, C_out/groups, kH, kW):
    the gradient of conv2d with respect to its input, so it runs conv2d's kernels."""
    op = "conv_transpose2d"
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if w.ndim != 4:
        raise ValueError(f"{op}: weight must be 4-D (C_in, C_out/groups, kH, kW), got shape {w.shape} (input {x.shape})")
    stride, padding = _pair(stride, op, "stride"), _pair(padding, op, "padding")
    output_padding, dilation = _pair(output_padding, op, "output_padding"), _pair(dilation, op, "dilation")
    groups = int(groups)
    x_data, unbatched = _batched(x, op)
    y = _kernels.conv_transpose2d_forward(x_data, w.data, None if b is None else b.data, stride, padding,
                                          output_padding, dilation, groups)
    in_h, in_w = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        dx = dw = db = None
        if x.requires_grad and w.requires_grad and isinstance(grad, np.ndarray):  # one pass over grad's columns
            dx, dw = _kernels.conv_transpose2d_backward(grad, x_data, w.data, stride, padding, dilation, groups)
            dx = _unbatch(dx, unbatched)
        elif x.requires_grad:  # conv2d forward; output_padding >= stride leaves extra rows to drop
            dx = _kernels.conv2d_forward(grad, w.data, None, stride, padding, dilation, groups)[:, :, :in_h, :in_w]
            dx = _unbatch(_device.ascontiguousarray(dx), unbatched)
        if w.requires_grad and dw is None:  # conv2d's weight gradient with the roles of input and output swapped
            dw = _kernels.conv2d_backward_weight(grad, x_data, w.shape[2:], stride, padding, dilation, groups)
        if b is not None and b.requires_grad:
            db = _kernels.conv2d_backward_bias(grad)
        return (dx, dw) if b is None else (dx, dw, db)

    parents = (x, w) if b is None else (x, w, b)
    return result(_unbatch(y, unbatched), parents, backward, "ConvolutionBackward0")


def unfold(input, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """im2col, as torch's F.unfold: (N, C, H, W) -> (N, C*kH*kW, L) blocks."""
    op = "unfold"
    x = as_tensor(input)
    k, d = _pair(kernel_size, op, "kernel_size"), _pair(dilation, op, "dilation")
    p, s = _pair(padding, op, "padding"), _pair(stride, op, "stride")
    x_data, unbatched = _batched(x, op)
    cols = _kernels.im2col(x_data, k, s, p, d)
    hw = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        return (_unbatch(_kernels.col2im(_device.ascontiguousarray(grad), hw, k, s, p, d), unbatched),)

    return result(_unbatch(cols, unbatched), (x,), backward, "Im2ColBackward0")


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1) -> Tensor:
    """col2im, as torch's F.fold: (N, C*kH*kW, L) -> (N, C, H, W), overlapping values summed."""
    op = "fold"
    cols = as_tensor(input)
    size, k = _pair(output_size, op, "output_size"), _pair(kernel_size, op, "kernel_size")
    d, p, s = _pair(dilation, op, "dilation"), _pair(padding, op, "padding"), _pair(stride, op, "stride")
    unbatched = cols.ndim == 2
    data = cols.data[None] if unbatched else cols.data
    x = _kernels.col2im(data, size, k, s, p, d)

    def backward(grad):
        grad = grad[None] if unbatched else grad
        return (_unbatch(_kernels.im2col(_device.ascontiguousarray(grad), k, s, p, d), unbatched),)

    return result(_unbatch(x, unbatched), (cols,), backward, "Col2ImBackward0")


def locally_connected2d(input, weight, bias=None, stride=1, padding=0, dilation=1) -> Tensor:
    """A convolution whose weights are not shared: every output position (oh, ow) has its own filter.

    input (N, C, H, W), weight (OH, OW, O, C, kH, kW), bias (O, OH, OW) -> (N, O, OH, OW):
        y[n, o, oh, ow] = bias[o, oh, ow] + sum_{c,i,j} weight[oh, ow, o, c, i, j] * x[n, c, tap(oh, i), tap(ow, j)]
    Runs as im2col and one batched matrix product over the OH*OW positions.
    """
    op = "locally_connected2d"
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    s, p, d = _pair(stride, op, "stride"), _pair(padding, op, "padding"), _pair(dilation, op, "dilation")
    x_data, unbatched = _batched(x, op)
    if w.ndim != 6:
        raise ValueError(f"{op}: weight must be 6-D (OH, OW, O, C, kH, kW), got shape {w.shape} (input {x.shape})")
    OH, OW, O, C, kH, kW = w.shape
    if C != x_data.shape[1]:
        raise ValueError(f"{op}: weight {w.shape} expects {C} input channels, input has shape {x.shape}")
    cols = _kernels.im2col(x_data, (kH, kW), s, p, d)  # (N, K, L)
    L, K = OH * OW, C * kH * kW
    if cols.shape[2] != L:
        raise ValueError(f"{op}: weight {w.shape} has {OH}x{OW} positions but the input {x.shape} gives "
                         f"{cols.shape[2]} with kernel ({kH}, {kW}), stride {s}, padding {p}, dilation {d}")
    if b is not None and b.shape != (O, OH, OW):
        raise ValueError(f"{op}: bias must have shape {(O, OH, OW)}, got {b.shape} (weight {w.shape})")
    w_pos = w.data.reshape(L, O, K)
    cols_pos = cols.transpose(2, 1, 0)  # (L, K, N)
    y = np.matmul(w_pos, cols_pos).transpose(2, 1, 0).reshape(-1, O, OH, OW)  # (N, O, OH, OW)
    if b is not None:
        y = y + b.data
    hw = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        g_pos = grad.reshape(-1, O, L).transpose(2, 1, 0)  # (L, O, N)
        dx = dw = db = None
        if x.requires_grad:
            dcols = np.matmul(w_pos.transpose(0, 2, 1), g_pos)  # (L, K, N)
            dcols = _device.ascontiguousarray(dcols.transpose(2, 1, 0))
            dx = _unbatch(_kernels.col2im(dcols, hw, (kH, kW), s, p, d), unbatched)
        if w.requires_grad:
            dw = np.matmul(g_pos, cols.transpose(2, 0, 1)).reshape(w.shape)  # (L, O, N) @ (L, N, K)
        if b is not None and b.requires_grad:
            db = grad.sum(axis=0)
        return (dx, dw) if b is None else (dx, dw, db)

    parents = (x, w) if b is None else (x, w, b)
    return result(_unbatch(_device.ascontiguousarray(y), unbatched), parents, backward, "LocallyConnected2dBackward")


# ---- pooling ---------------------------------------------------------------------------------------

def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max pooling; with return_indices also the flat per-plane index (ih * W + iw) of each maximum."""
    op = "max_pool2d"
    x = as_tensor(input)
    kernel = _pair(kernel_size, op, "kernel_size")
    stride = kernel if stride is None or stride == [] else _pair(stride, op, "stride")
    padding, dilation = _pair(padding, op, "padding"), _pair(dilation, op, "dilation")
    x_data, unbatched = _batched(x, op)
    keep_indices = return_indices or _needs_grad(x)
    y, indices = _kernels.max_pool2d_forward(x_data, kernel, stride, padding, dilation, bool(ceil_mode), keep_indices)
    return _max_pool_result(x, x_data, y, indices, unbatched, return_indices, "MaxPool2DWithIndicesBackward0")


def _max_pool_result(x, x_data, y, indices, unbatched, return_indices, name):
    """The graph node of a max pooling: the gradient goes back to each window's arg-max."""
    hw = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        return (_unbatch(_kernels.max_pool2d_backward(grad, indices, hw), unbatched),)

    out = result(_unbatch(y, unbatched), (x,), backward, name)
    return (out, Tensor(_unbatch(indices, unbatched))) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None) -> Tensor:
    op = "avg_pool2d"
    x = as_tensor(input)
    kernel = _pair(kernel_size, op, "kernel_size")
    stride = kernel if stride is None or stride == [] else _pair(stride, op, "stride")
    padding = _pair(padding, op, "padding")
    x_data, unbatched = _batched(x, op)
    options = (bool(ceil_mode), bool(count_include_pad), divisor_override)
    y = _kernels.avg_pool2d_forward(x_data, kernel, stride, padding, *options)
    hw = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        return (_unbatch(_kernels.avg_pool2d_backward(grad, hw, kernel, stride, padding, *options), unbatched),)

    return result(_unbatch(y, unbatched), (x,), backward, "AvgPool2DBackward0")


def _adaptive_size(output_size, hw, op):
    """output_size as torch: an int, or a pair whose None entries keep the input's size."""
    if isinstance(output_size, (int, np.integer)):
        return int(output_size), int(output_size)
    if not isinstance(output_size, (tuple, list)):
        raise TypeError(f"{op}: output_size must be an int or a pair, got {output_size!r} (input size {tuple(hw)})")
    size = tuple(output_size)
    if len(size) != 2:
        raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
    return tuple(int(hw[i]) if s is None else int(s) for i, s in enumerate(size))


def adaptive_max_pool2d(input, output_size, return_indices=False):
    op = "adaptive_max_pool2d"
    x = as_tensor(input)
    x_data, unbatched = _batched(x, op)
    size = _adaptive_size(output_size, x_data.shape[2:], op)
    keep_indices = return_indices or _needs_grad(x)
    y, indices = _kernels.adaptive_max_pool2d_forward(x_data, size, keep_indices)
    return _max_pool_result(x, x_data, y, indices, unbatched, return_indices, "AdaptiveMaxPool2DBackward0")


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    op = "adaptive_avg_pool2d"
    x = as_tensor(input)
    x_data, unbatched = _batched(x, op)
    size = _adaptive_size(output_size, x_data.shape[2:], op)
    y = _kernels.adaptive_avg_pool2d_forward(x_data, size)
    hw = x_data.shape[2:]

    def backward(grad):
        grad = grad[None] if unbatched else grad
        return (_unbatch(_kernels.adaptive_avg_pool2d_backward(_device.ascontiguousarray(grad), hw), unbatched),)

    return result(_unbatch(y, unbatched), (x,), backward, "AdaptiveAvgPool2DBackward0")


def spp(input, levels=(1, 2, 4), mode: str = "max") -> Tensor:
    """Spatial pyramid pooling (SPP-net): for each level l, adaptive pooling to l x l flattened to
    (N, C*l*l), concatenated along dim 1 in the order of `levels` -> (N, C * sum(l*l))."""
    op = "spp"
    if mode not in ("max", "avg"):
        raise ValueError(f"{op}: mode must be 'max' or 'avg', got {mode!r}")
    x = as_tensor(input)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    if isinstance(levels, (int, np.integer)) or not all(isinstance(v, (int, np.integer)) for v in levels):
        raise TypeError(f"{op}: levels must be a sequence of ints, got {levels!r} (input {x.shape})")
    levels = tuple(int(level) for level in levels)
    if not levels or min(levels) < 1:
        raise ValueError(f"{op}: levels must be positive ints, got {levels} (input {x.shape})")
    N, hw = x.shape[0], x.shape[2:]
    pooled, saved = [], []
    for level in levels:
        if mode == "max":
            y, indices = _kernels.adaptive_max_pool2d_forward(x.data, (level, level), _needs_grad(x))
            saved.append(indices)
        else:
            y = _kernels.adaptive_avg_pool2d_forward(x.data, (level, level))
        pooled.append(y.reshape(N, -1))
    out = np.concatenate(pooled, axis=1)

    def backward(grad):
        dx, start = None, 0
        for i, level in enumerate(levels):
            width = pooled[i].shape[1]
            g = _device.ascontiguousarray(grad[:, start:start + width]).reshape(N, -1, level, level)
            start += width
            part = (_kernels.max_pool2d_backward(g, saved[i], hw) if mode == "max"
                    else _kernels.adaptive_avg_pool2d_backward(g, hw))
            dx = part if dx is None else dx + part
        return (dx,)

    return result(out, (x,), backward, "SpatialPyramidPoolingBackward")


def _roi_boxes(boxes, like, op):
    """(K, 5) array of (batch_index, x1, y1, x2, y2) from a (K, 5) tensor/array or a list of (K_i, 4) per image,
    in the dtype and on the device of the input array `like` (the CUDA kernels take the boxes as a DeviceArray
    of the input's dtype): host boxes are copied there; boxes on another device than the input are refused."""
    dtype = like.dtype
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, per_image in enumerate(boxes):
            b = per_image.data if isinstance(per_image, Tensor) else per_image
            if _device.is_device_array(b):  # a few boxes per image: joined on the host, copied once below
                _device.same_device(op, like, b)
                b = _device.to_host(b)
            b = np.asarray(b, dtype=dtype)
            if b.ndim != 2 or b.shape[1] != 4:
                raise ValueError(f"{op}: boxes for image {i} must have shape (K, 4), got {b.shape}")
            parts.append(np.concatenate([np.full((len(b), 1), i, dtype=dtype), b], axis=1))
        return _device.on_device_of(np.concatenate(parts, axis=0) if parts else np.zeros((0, 5), dtype), like)
    b = boxes.data if isinstance(boxes, Tensor) else boxes
    if _device.is_device_array(b):
        _device.same_device(op, like, b)
        return b.astype(dtype)  # a fresh contiguous copy (see below)
    # A copy of its own: the backward reads the boxes' image indices after the caller may have reused them.
    return _device.on_device_of(np.ascontiguousarray(np.asarray(b, dtype=dtype)).copy(), like)


def roi_pool(input, boxes, output_size, spatial_scale: float = 1.0) -> Tensor:
    """RoI max pooling (Fast R-CNN; torchvision.ops.roi_pool): each box (batch_index, x1, y1, x2, y2), in
    input-image coordinates scaled by spatial_scale, is max-pooled into output_size bins -> (K, C, PH, PW)."""
    op = "roi_pool"
    x = as_tensor(input)
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) input, got shape {x.shape}")
    rois = _roi_boxes(boxes, x.data, op)
    size = _pair(output_size, op, "output_size")
    # The int64 argmax, twice the bytes of a float32 output, only where the backward will read it.
    y, argmax = _kernels.roi_pool_forward(x.data, rois, size, float(spatial_scale), _needs_grad(x))
    shape = list(x.shape)

    def backward(grad):
        if rois.shape[0] == 0:  # no boxes (a step without proposals): nothing reaches the input
            return (_device.full(tuple(shape), 0, x.dtype, x.data),)
        return (_kernels.roi_pool_backward(_device.ascontiguousarray(grad), rois, argmax, shape),)

    return result(y, (x,), backward, "RoIPoolBackward")


# ---- up-sampling -----------------------------------------------------------------------------------

def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    """Up- or down-sampling of (N, C, H, W) input, as torch's F.interpolate for mode "nearest" and "bilinear".

    Each output reads at most 2 x 2 inputs (the kernel `upsample2d_forward`, with torch's source-index
    rules and arithmetic: csrc/pool/upsample.h), so a NaN or inf reaches only the outputs that read it."""
    op = "interpolate"
    x = as_tensor(input)
    if mode not in ("nearest", "bilinear"):
        raise ValueError(f"{op}: mode must be 'nearest' or 'bilinear', got {mode!r}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError(f"{op}: align_corners can only be set with mode 'bilinear' (input {x.shape})")
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D (N, C, H, W) input for mode {mode!r}, got shape {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point (float32 or float64), got dtype {x.dtype} "
                        f"(shape {x.shape})")
    if 0 in x.shape:
        raise ValueError(f"{op}: input is empty, shape {x.shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor (input {x.shape})")
    in_hw = x.shape[2:]
    if size is not None:
        out_hw = _pair(size, op, "size")
        ratios = [i / max(o, 1) for i, o in zip(in_hw, out_hw)]
    else:
        factors = (scale_factor, scale_factor) if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        if len(factors) != 2 or not all(0 < f < math.inf for f in factors):  # NaN fails too
            raise ValueError(f"{op}: scale_factor must be positive and finite (one or two values), got {scale_factor!r}")
        out_hw = tuple(int(math.floor(i * f)) for i, f in zip(in_hw, factors))
        ratios = [1.0 / f for f in factors]  # torch's rule: the factor given, not the sizes' ratio
    if min(out_hw) < 1:
        raise ValueError(f"{op}: output size {out_hw} must be positive (input {x.shape})")
    align = bool(align_corners)
    y = _kernels.upsample2d_forward(x.data, out_hw, ratios, mode, align)

    def backward(grad):
        return (_kernels.upsample2d_backward(_device.ascontiguousarray(grad), in_hw, ratios, mode, align),)

    return result(y, (x,), backward, "UpsampleBackward")


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    return interpolate(input, size, scale_factor, mode, align_corners)


# ---- channel dropout and batch normalisation -----------------------------------------------------

def dropout2d(input, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero whole channels with probability p (one draw per (N, C) plane), scaling the rest by 1/(1-p)."""
    op = "dropout2d"
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability has to be between 0 and 1, but got {p}")
    x = as_tensor(input)
    if not training or p == 0.0:
        return x
    if x.ndim not in (3, 4):
        raise ValueError(f"{op}: expected a 3-D or 4-D input, got shape {x.shape}")
    mask_shape = x.shape[:-2] + (1, 1)
    if p == 1.0:
        mask = np.zeros(mask_shape, dtype=x.dtype)
    else:
        keep = default_generator().random(mask_shape) >= p
        mask = (keep / (1.0 - p)).astype(x.dtype)
    mask = _device.on_device_of(mask, x.data)
    y = x.data * mask

    def backward(grad):
        return (grad * mask,)

    return result(y, (x,), backward, "MulBackward0")


def _kernel_statistic(stat, dtype, training: bool):
    """A running statistic as the batch-norm kernels take it (x's dtype; C-contiguous when training
    updates it in place): the array itself, or a copy that `_write_back` returns to it."""
    if stat is None:
        return None
    stat = stat.data if isinstance(stat, Tensor) else stat
    if stat.dtype != dtype:
        return _device.ascontiguousarray(stat.astype(dtype))
    if training and isinstance(stat, np.ndarray) and not stat.flags.c_contiguous:
        return np.ascontiguousarray(stat)
    return stat


def _write_back(stat, used) -> None:
    if stat is not None:
        stat = stat.data if isinstance(stat, Tensor) else stat
        if used is not stat:
            stat[...] = used.astype(stat.dtype)


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Batch normalisation over every dim but 1 (channels), as torch's F.batch_norm.

    In training the batch statistics normalise and the running statistics (updated in place)
    move by `momentum` towards them, with the unbiased variance; in evaluation the running
    statistics normalise. The kernels (`batch_norm_forward` / `_backward`, CPU or CUDA) keep the
    statistics that normalised for the backward pass."""
    op = "batch_norm"
    x = as_tensor(input)
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if x.ndim < 2:
        raise ValueError(f"{op}: expected an input with at least 2 dims (N, C, ...), got shape {x.shape}")
    C = x.shape[1]
    for name, t in (("running_mean", running_mean), ("running_var", running_var)):
        # Updated in place in training: an integer array would silently keep truncated statistics.
        if t is not None and (not hasattr(t, "dtype") or np.dtype(t.dtype).kind != "f"):
            raise TypeError(f"{op}: {name} must be a floating array or Tensor, got "
                            f"{getattr(t, 'dtype', type(t).__name__)} (input {x.shape})")
    for name, t in (("weight", w), ("bias", b), ("running_mean", running_mean), ("running_var", running_var)):
        if t is not None and tuple(t.shape) != (C,):
            raise ValueError(f"{op}: {name} must have shape ({C},), got {tuple(t.shape)} (input {x.shape})")
    if training and (C == 0 or x.data.size // C <= 1):
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got input {x.shape}")
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: running_mean and running_var are needed in evaluation mode (input {x.shape})")
    per_channel = [None if t is None else t.data.astype(x.dtype, copy=False) for t in (w, b)]
    rm = _kernel_statistic(running_mean, x.dtype, training)
    rv = _kernel_statistic(running_var, x.dtype, training)
    y, save_mean, save_invstd = _kernels.batch_norm_forward(x.data, per_channel[0], per_channel[1], rm, rv,
                                                            training, momentum, eps)
    if training:
        _write_back(running_mean, rm)
        _write_back(running_var, rv)

    def backward(grad):
        dx, dw, db = _kernels.batch_norm_backward(grad, x.data, per_channel[0], save_mean, save_invstd, training)
        grads = (dx if x.requires_grad else None,)
        if w is not None:
            grads += (dw.astype(w.dtype, copy=False) if w.requires_grad else None,)
        if b is not None:
            grads += (db.astype(b.dtype, copy=False) if b.requires_grad else None,)
        return grads

    parents = (x,) + tuple(t for t in (w, b) if t is not None)
    return result(y, parents, backward, "NativeBatchNormBackward0")
