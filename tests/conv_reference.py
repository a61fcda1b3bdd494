"""NumPy float64 references for the convolution family: direct loops over the kernel taps
(each tap one vectorised slice), written from the definitions, independent of the kernels."""
import numpy as np


def _out_size(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def _tap_slices(i, j, OH, OW, stride, dilation):
    (sH, sW), (dH, dW) = stride, dilation
    return (slice(i * dH, i * dH + sH * (OH - 1) + 1, sH), slice(j * dW, j * dW + sW * (OW - 1) + 1, sW))


def conv2d(x, w, b, stride, padding, dilation, groups):
    """y[n, o] = b[o] + sum over the group's channels and taps of w * shifted x (zero padding)."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    N, C, H, W = x.shape
    O, Cg, kH, kW = w.shape
    (pH, pW) = padding
    OH, OW = _out_size(H, kH, stride[0], pH, dilation[0]), _out_size(W, kW, stride[1], pW, dilation[1])
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))
    y = np.zeros((N, O, OH, OW))
    Og = O // groups
    for g in range(groups):
        xs, os_ = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(kH):
            for j in range(kW):
                hs, ws = _tap_slices(i, j, OH, OW, stride, dilation)
                y[:, os_] += np.einsum("ncij,oc->noij", xp[:, xs, hs, ws], w[os_, :, i, j])
    if b is not None:
        y += np.asarray(b, np.float64)[None, :, None, None]
    return y


def conv2d_backward(x, w, dy, stride, padding, dilation, groups):
    """(dx, dw, db) of sum(conv2d(x, w, b) * dy), by the same taps in reverse."""
    x, w, dy = (np.asarray(a, np.float64) for a in (x, w, dy))
    N, C, H, W = x.shape
    O, Cg, kH, kW = w.shape
    (pH, pW) = padding
    OH, OW = dy.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (pH, pH), (pW, pW)))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    Og = O // groups
    for g in range(groups):
        xs, os_ = slice(g * Cg, (g + 1) * Cg), slice(g * Og, (g + 1) * Og)
        for i in range(kH):
            for j in range(kW):
                hs, ws = _tap_slices(i, j, OH, OW, stride, dilation)
                dxp[:, xs, hs, ws] += np.einsum("noij,oc->ncij", dy[:, os_], w[os_, :, i, j])
                dw[os_, :, i, j] = np.einsum("ncij,noij->oc", xp[:, xs, hs, ws], dy[:, os_])
    dx = dxp[:, :, pH:pH + H, pW:pW + W]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def conv_transpose2d(x, w, b, stride, padding, output_padding, dilation, groups):
    """Scatter form: every input pixel adds w[c] (scaled) into the output at stride spacing."""
    x, w = np.asarray(x, np.float64), np.asarray(w, np.float64)
    N, Cin, H, W = x.shape
    _, Cog, kH, kW = w.shape
    (sH, sW), (pH, pW), (dH, dW) = stride, padding, dilation
    OH = (H - 1) * sH - 2 * pH + dH * (kH - 1) + output_padding[0] + 1
    OW = (W - 1) * sW - 2 * pW + dW * (kW - 1) + output_padding[1] + 1
    big = np.zeros((N, Cog * groups, OH + 2 * pH + sH + dH * kH, OW + 2 * pW + sW + dW * kW))
    Cig = Cin // groups
    for g in range(groups):
        cs, os_ = slice(g * Cig, (g + 1) * Cig), slice(g * Cog, (g + 1) * Cog)
        for i in range(kH):
            for j in range(kW):
                hs = slice(i * dH, i * dH + sH * (H - 1) + 1, sH)
                ws = slice(j * dW, j * dW + sW * (W - 1) + 1, sW)
                big[:, os_, hs, ws] += np.einsum("ncij,co->noij", x[:, cs], w[cs, :, i, j])
    y = big[:, :, pH:pH + OH, pW:pW + OW]
    if b is not None:
        y = y + np.asarray(b, np.float64)[None, :, None, None]
    return y


def pool_out_size(n, k, s, p, d, ceil_mode):
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def max_pool2d(x, kernel, stride, padding, dilation, ceil_mode):
    """(values, flat per-plane indices): first maximum over the in-image taps, in tap order."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    OH = pool_out_size(H, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    OW = pool_out_size(W, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    best = np.full((N, C, OH, OW), -np.inf)
    index = np.full((N, C, OH, OW), -1, np.int64)
    oh, ow = np.arange(OH)[:, None], np.arange(OW)[None, :]
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            ih = oh * stride[0] - padding[0] + i * dilation[0]
            iw = ow * stride[1] - padding[1] + j * dilation[1]
            inside = (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            v = x[:, :, np.clip(ih, 0, H - 1), np.clip(iw, 0, W - 1)]
            take = inside & ((index < 0) | (v > best) | np.isnan(v))
            best = np.where(take, v, best)
            index = np.where(take, ih * W + iw, index)
    return best, index


def avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Window sums over the in-image taps divided by torch's divisor."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    OH = pool_out_size(H, kernel[0], stride[0], padding[0], 1, ceil_mode)
    OW = pool_out_size(W, kernel[1], stride[1], padding[1], 1, ceil_mode)
    y = np.zeros((N, C, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            h0, w0 = oh * stride[0] - padding[0], ow * stride[1] - padding[1]
            h1, w1 = min(h0 + kernel[0], H + padding[0]), min(w0 + kernel[1], W + padding[1])
            padded = (h1 - h0) * (w1 - w0)
            h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
            divisor = divisor_override or (padded if count_include_pad else (h1 - h0) * (w1 - w0))
            y[:, :, oh, ow] = x[:, :, h0:h1, w0:w1].sum(axis=(2, 3)) / divisor
    return y


def adaptive_windows(n, out):
    return [(o * n // out, -(-(o + 1) * n // out)) for o in range(out)]


def adaptive_pool2d(x, size, mode):
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    y = np.zeros((N, C) + tuple(size))
    for oh, (h0, h1) in enumerate(adaptive_windows(H, size[0])):
        for ow, (w0, w1) in enumerate(adaptive_windows(W, size[1])):
            window = x[:, :, h0:h1, w0:w1]
            y[:, :, oh, ow] = window.max(axis=(2, 3)) if mode == "max" else window.mean(axis=(2, 3))
    return y


def _round_half_away(v):
    """C's round(): halves go away from zero (NumPy's np.round goes to even)."""
    return int(np.sign(v) * np.floor(abs(v) + 0.5))


def roi_pool(x, rois, size, scale):
    """torchvision.ops.roi_pool: rounded box corners, bins floor/ceil, empty bins give 0."""
    x = np.asarray(x, np.float64)
    N, C, H, W = x.shape
    PH, PW = size
    y = np.zeros((len(rois), C, PH, PW))
    for k, (b, x1, y1, x2, y2) in enumerate(np.asarray(rois, np.float64)):
        sw, sh, ew, eh = (_round_half_away(v * scale) for v in (x1, y1, x2, y2))
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = rh / PH, rw / PW
        for ph in range(PH):
            for pw in range(PW):
                h0 = min(max(int(np.floor(ph * bh)) + sh, 0), H)
                h1 = min(max(int(np.ceil((ph + 1) * bh)) + sh, 0), H)
                w0 = min(max(int(np.floor(pw * bw)) + sw, 0), W)
                w1 = min(max(int(np.ceil((pw + 1) * bw)) + sw, 0), W)
                if h1 > h0 and w1 > w0:
                    y[k, :, ph, pw] = x[int(b), :, h0:h1, w0:w1].max(axis=(1, 2))
    return y


def _interpolation_weights(n_in, n_out, ratio, mode, align_corners):
    """(n_out, n_in) matrix W with out = W @ in along one axis, by torch's rules (see
    csrc/pool/upsample.h); nearest takes torch's float32 source index."""
    w = np.zeros((n_out, n_in))
    for dst in range(n_out):
        if mode == "nearest":
            if n_out == n_in:
                src = dst
            elif n_out == 2 * n_in:
                src = dst // 2
            else:
                src = min(int(np.floor(np.float32(dst) * np.float32(ratio))), n_in - 1)
            w[dst, src] = 1.0
            continue
        if n_out == n_in:
            w[dst, dst] = 1.0
            continue
        if align_corners:
            pos = dst * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        else:
            pos = max(ratio * (dst + 0.5) - 0.5, 0.0)
        low = int(pos)
        high = low + 1 if low < n_in - 1 else low
        w[dst, low] += 1.0 - (pos - low)
        w[dst, high] += pos - low
    return w


def interpolate(x, out_hw, ratios, mode, align_corners):
    """F.interpolate for finite inputs, float64: out = W_h @ x @ W_w^T. ratios: torch's in/out ratios."""
    x = np.asarray(x, np.float64)
    w_h, w_w = (_interpolation_weights(i, o, r, mode, align_corners) for i, o, r in zip(x.shape[2:], out_hw, ratios))
    return w_h @ x @ w_w.T


def interpolate_backward(dy, in_hw, ratios, mode, align_corners):
    dy = np.asarray(dy, np.float64)
    w_h, w_w = (_interpolation_weights(i, o, r, mode, align_corners) for i, o, r in zip(in_hw, dy.shape[2:], ratios))
    return w_h.T @ dy @ w_w
