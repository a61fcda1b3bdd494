"""The convolution and pooling kernels once each on small awkward shapes, against rosenblatt._C:
part of cuda_smoke, so that compute-sanitizer (memcheck, racecheck) sees every one of them."""
from __future__ import annotations

import numpy as np


def run(close) -> bool:
    """close(name, got, expected, tol) -> bool, as cuda_smoke._close."""
    from rosenblatt import _C, cuda

    _cuda = cuda._cuda
    rng = np.random.default_rng(1)
    f32 = lambda *shape: rng.standard_normal(shape).astype(np.float32)  # noqa: E731
    dev = cuda.from_numpy
    ok = True

    # Partial 64 x 128 tiles in every direction, several reduction steps, groups, stride, dilation.
    x, w, b = f32(2, 6, 40, 30), f32(70, 3, 3, 2), f32(70)  # N*OH*OW = 1200: split weight gradient
    conv = ((2, 1), (1, 1), (1, 2), 2)
    y = _C.conv2d_forward(x, w, b, *conv)
    ok &= close("conv2d forward", _cuda.conv2d_forward(dev(x), dev(w), dev(b), *conv).to_numpy(), y, 1e-4)
    g = f32(*y.shape)
    ok &= close("conv2d backward data", _cuda.conv2d_backward_data(dev(g), dev(w), (40, 30), *conv).to_numpy(),
                _C.conv2d_backward_data(g, w, (40, 30), *conv), 1e-4)
    ok &= close("conv2d backward weight (split)",
                _cuda.conv2d_backward_weight(dev(x), dev(g), (3, 2), *conv).to_numpy(),
                _C.conv2d_backward_weight(x, g, (3, 2), *conv), 1e-4)
    ok &= close("conv2d backward bias", _cuda.conv2d_backward_bias(dev(g)).to_numpy(), _C.conv2d_backward_bias(g), 1e-4)
    xt, wt = f32(2, 4, 5, 6), f32(4, 3, 3, 3)
    ok &= close("conv_transpose2d", _cuda.conv_transpose2d_forward(dev(xt), dev(wt), None, (2, 2), (1, 1), (1, 1),
                                                                    (1, 1), 1).to_numpy(),
                _C.conv_transpose2d_forward(xt, wt, None, (2, 2), (1, 1), (1, 1), (1, 1), 1), 1e-4)
    xd, wd = f32(2, 4, 9, 7), f32(8, 1, 3, 3)  # depthwise, multiplier 2: the direct kernels
    dconv = ((1, 2), (1, 1), (1, 1), 4)
    yd = _C.conv2d_forward(xd, wd, None, *dconv)
    ok &= close("depthwise forward", _cuda.conv2d_forward(dev(xd), dev(wd), None, *dconv).to_numpy(), yd, 1e-5)
    gd = f32(*yd.shape)
    ok &= close("depthwise backward data", _cuda.conv2d_backward_data(dev(gd), dev(wd), (9, 7), *dconv).to_numpy(),
                _C.conv2d_backward_data(gd, wd, (9, 7), *dconv), 1e-5)
    ok &= close("depthwise backward weight", _cuda.conv2d_backward_weight(dev(xd), dev(gd), (3, 3), *dconv).to_numpy(),
                _C.conv2d_backward_weight(xd, gd, (3, 3), *dconv), 1e-4)
    unfold = ((3, 2), (2, 1), (1, 1), (1, 2))
    cols = _C.im2col(x, *unfold)
    ok &= close("unfold (im2col)", _cuda.im2col(dev(x), *unfold).to_numpy(), cols, 0)
    ok &= close("fold (col2im)", _cuda.col2im(dev(cols), (40, 30), *unfold).to_numpy(),
                _C.col2im(cols, (40, 30), *unfold), 1e-5)

    p = f32(2, 3, 9, 11)
    window = ((3, 3), (2, 2), (1, 1))
    y_ref, idx_ref = _C.max_pool2d_forward(p, *window, (1, 1), True, True)
    y, idx = _cuda.max_pool2d_forward(dev(p), *window, (1, 1), True, True)
    ok &= close("max_pool2d", y.to_numpy(), y_ref, 0) & close("max_pool2d indices", idx.to_numpy(), idx_ref, 0)
    gp = f32(*y_ref.shape)
    ok &= close("max_pool2d backward", _cuda.max_pool2d_backward(dev(gp), idx, (9, 11)).to_numpy(),
                _C.max_pool2d_backward(gp, idx_ref, (9, 11)), 1e-5)
    avg = (*window, True, False, None)
    ok &= close("avg_pool2d", _cuda.avg_pool2d_forward(dev(p), *avg).to_numpy(), _C.avg_pool2d_forward(p, *avg), 1e-5)
    ok &= close("avg_pool2d backward", _cuda.avg_pool2d_backward(dev(gp), (9, 11), *avg).to_numpy(),
                _C.avg_pool2d_backward(gp, (9, 11), *avg), 1e-5)
    y_ref, idx_ref = _C.adaptive_max_pool2d_forward(p, (4, 5), True)
    ok &= close("adaptive_max_pool2d", _cuda.adaptive_max_pool2d_forward(dev(p), (4, 5), True)[0].to_numpy(), y_ref, 0)
    ok &= close("adaptive_avg_pool2d", _cuda.adaptive_avg_pool2d_forward(dev(p), (4, 5)).to_numpy(),
                _C.adaptive_avg_pool2d_forward(p, (4, 5)), 1e-5)
    ga = f32(2, 3, 4, 5)
    ok &= close("adaptive_avg_pool2d backward", _cuda.adaptive_avg_pool2d_backward(dev(ga), (9, 11)).to_numpy(),
                _C.adaptive_avg_pool2d_backward(ga, (9, 11)), 1e-5)
    boxes = np.array([[0, 1, 1, 10, 8], [1, 0, 0, 29, 23], [1, 5.6, 3.2, 7.1, 4.4]], np.float32)
    y_ref, arg_ref = _C.roi_pool_forward(p, boxes, (3, 2), 0.5)
    y, arg = _cuda.roi_pool_forward(dev(p), dev(boxes), (3, 2), 0.5)
    ok &= close("roi_pool", y.to_numpy(), y_ref, 0) & close("roi_pool argmax", arg.to_numpy(), arg_ref, 0)
    ok &= close("roi_pool without argmax", _cuda.roi_pool_forward(dev(p), dev(boxes), (3, 2), 0.5, False)[0].to_numpy(),
                y_ref, 0)
    gr = f32(*y_ref.shape)
    ok &= close("roi_pool backward", _cuda.roi_pool_backward(dev(gr), dev(boxes), arg, list(p.shape)).to_numpy(),
                _C.roi_pool_backward(gr, boxes, arg_ref, list(p.shape)), 1e-5)
    # Up-sampling against the CPU path (interpolation matrices), forward and backward.
    from rosenblatt import nn
    from rosenblatt.tensor import Tensor
    u = Tensor(f32(2, 3, 5, 7), requires_grad=True)
    yu = nn.functional.interpolate(u, size=(11, 9), mode="bilinear", align_corners=False)
    gu = f32(2, 3, 11, 9)
    yu.backward(gu)
    scales = [5 / 11, 7 / 9]
    ok &= close("upsample2d bilinear", _cuda.upsample2d_forward(dev(u.data), (11, 9), scales, "bilinear", False)
                .to_numpy(), yu.data, 1e-5)
    ok &= close("upsample2d bilinear backward", _cuda.upsample2d_backward(dev(gu), (5, 7), scales, "bilinear", False)
                .to_numpy(), np.asarray(getattr(u.grad, "data", u.grad)), 1e-5)
    cuda.synchronize()
    return bool(ok)
