"""LSTM and GRU on the GPU beside torch.nn.LSTM / GRU (cuDNN), fp32 with TF32 off on both sides.

One layer, one direction, (T, N, I, H) = (100, 64, 512, 512): forward alone, and forward + backward
(the gradients of every input and weight from a random dL/dy). Inputs and weights are made by torch
on the GPU and shared with our kernels through DLPack; the weights are the torch module's own, so
the relative error of y compares the same computation. Called from rosenblatt.bench.gpu.
"""
from __future__ import annotations

SHAPES = [(100, 64, 512, 512)]


def _one(torch, cuda, kind: str, T: int, N: int, I: int, H: int, repeat: int) -> list:
    from .gpu import _median_time, _relative_error

    module = (torch.nn.LSTM if kind == "lstm" else torch.nn.GRU)(I, H).cuda()
    x = torch.randn(T, N, I, device="cuda", requires_grad=True)
    h0 = torch.zeros(1, N, H, device="cuda")
    dy = torch.randn(T, N, H, device="cuda")
    lstm = kind == "lstm"
    state = (h0, h0.clone()) if lstm else h0

    ours = {name: cuda.from_dlpack(p.detach()) for name, p in module.named_parameters()}
    dx_, dh0_, ddy = cuda.from_dlpack(x.detach()), cuda.from_dlpack(h0[0]), cuda.from_dlpack(dy)
    args = (kind, dx_, dh0_, dh0_ if lstm else None, ours["weight_ih_l0"], ours["weight_hh_l0"],
            ours["bias_ih_l0"], ours["bias_hh_l0"], None, False, True)

    def ours_forward():
        return cuda.rnn_forward(*args)

    def ours_forward_backward():
        _, _, _, saved = cuda.rnn_forward(*args)
        return cuda.rnn_backward(kind, dx_, ours["weight_ih_l0"], ours["weight_hh_l0"], True, None, False, True,
                                 saved, ddy, None, None)

    def torch_forward():
        with torch.no_grad():
            return module(x, state)

    def torch_forward_backward():
        module.zero_grad(set_to_none=True)
        x.grad = None
        y, _ = module(x, state)
        y.backward(dy)

    y_ours = torch.from_dlpack(ours_forward()[0])
    with torch.no_grad():
        y_torch, _ = module(x, state)
    error = _relative_error(y_ours, y_torch)
    grads = ours_forward_backward()
    torch_forward_backward()
    cuda.synchronize()
    grad_error = max(_relative_error(torch.from_dlpack(grads[0]), x.grad),
                     _relative_error(torch.from_dlpack(grads[4]), module.weight_hh_l0.grad))

    records = []
    for what, ours_fn, torch_fn, err in (("forward", ours_forward, torch_forward, error),
                                         ("forward+backward", ours_forward_backward, torch_forward_backward,
                                          grad_error)):
        t_ours = _median_time(ours_fn, cuda.synchronize, repeat)
        t_torch = _median_time(torch_fn, torch.cuda.synchronize, repeat)
        records.append({"kind": "rnn", "cell": kind, "pass": what, "shape": [T, N, I, H], "ours_s": t_ours,
                        "torch_s": t_torch, "ratio": t_torch / t_ours, "rel_error": err})
    return records


def bench(torch, cuda, repeat: int, quick: bool) -> list:
    records = []
    for kind in ("lstm", "gru"):
        for T, N, I, H in SHAPES:
            records += _one(torch, cuda, kind, T, N, I, H, repeat)
    return records
