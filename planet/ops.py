"""Exact reformulations of layers that PyTorch's own CPU kernels run slowly: same parameters, same function.

`conv_transpose2d_s2` is a stride-2 transposed convolution (kernel 5 or 6, no padding) whose *forward* runs as one
stride-1 3x3 convolution with 4x the output channels followed by an interleave of its four output phases (the
"sub-pixel" form: output pixel 2m + a only ever meets the kernel taps a, a + 2, a + 4). oneDNN's stride-1
convolutions are its best-tuned kernels, while its transposed ones are slow for some shapes: forward at 800 images
on a 2-core Zen 4 (reports/speed/2026-12-02/subpixel_layers.jsonl, median of 6), the decoder's 128->64 k5 layer
took 178 ms in bf16 natively and 51 ms this way, its 32->3 k6 output layer 199 / 154 ms (float32 / bf16) natively
and 87 / 58 ms this way; the 64->32 k6 layer was slower this way (165 -> 206 ms float32), so the Decoder keeps the
native kernel there. The *backward* is the native one
(`aten.convolution_backward` of the transposed convolution), which was as fast as or faster than the sub-pixel
form's. The op is registered with torch.library so that autograd, `torch.compile` (an opaque call) and
FlopCounterMode (which counts the transposed convolution's FLOP, not the zero taps of the sub-pixel kernel) all see
one operation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.flop_counter import conv_flop_count, register_flop_formula

_CL = torch.channels_last


def _out_size(size: int, kernel: int) -> int:
    return 2 * (size - 1) + kernel


def subpixel_weight(weight: Tensor) -> Tensor:
    """ConvTranspose2d weight [C_in, C_out, k, k] (k = 5 or 6, stride 2) -> Conv2d weight [4 C_out, C_in, 3, 3] for
    `padding=2`, output channels ordered (a_h, a_w, c): tap t of phase a is the transposed kernel's tap a + 2 (2 - t)
    (a k = 5 kernel gets a zero sixth tap)."""
    cin, cout, k, k2 = weight.shape
    assert k == k2 and k in (5, 6), f"expected a square kernel of 5 or 6, got {tuple(weight.shape)}"
    if k == 5:
        weight = F.pad(weight, (0, 1, 0, 1))
    w = weight.reshape(cin, cout, 3, 2, 3, 2).flip(2, 4)  # [ci, c, t_h, a_h, t_w, a_w]
    return w.permute(3, 5, 1, 0, 2, 4).reshape(4 * cout, cin, 3, 3).contiguous(memory_format=_CL)


@torch.library.custom_op("planet::conv_transpose2d_s2", mutates_args=())
def conv_transpose2d_s2(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """F.conv_transpose2d(x, weight, bias, stride=2) for a square kernel of 5 or 6; NCHW-shaped, channels-last out."""
    n, _, h, w = x.shape
    cout, k = weight.shape[1], weight.shape[-1]
    y = F.conv2d(x.contiguous(memory_format=_CL), subpixel_weight(weight), bias.repeat(4), padding=2)
    m_h, m_w = y.shape[-2:]
    phases = y.permute(0, 2, 3, 1).view(n, m_h, m_w, 2, 2, cout)  # [n, m_h, m_w, a_h, a_w, c]
    out_h, out_w = _out_size(h, k), _out_size(w, k)
    out = torch.empty(n, out_h, out_w, cout, dtype=y.dtype, device=y.device)  # NHWC memory
    if (out_h, out_w) == (2 * m_h, 2 * m_w):  # k = 6: every phase fills its grid, one interleaving copy
        out.view(n, m_h, 2, m_w, 2, cout).copy_(phases.permute(0, 1, 3, 2, 4, 5))
    else:  # k = 5: the odd phases have one row / column fewer
        for a_h in (0, 1):
            for a_w in (0, 1):
                grid = out[:, a_h::2, a_w::2]
                grid.copy_(phases[:, : grid.shape[1], : grid.shape[2], a_h, a_w])
    return out.permute(0, 3, 1, 2)


@conv_transpose2d_s2.register_fake
def _(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    n, _, h, w = x.shape
    k = weight.shape[-1]
    return x.new_empty(n, weight.shape[1], _out_size(h, k), _out_size(w, k)).contiguous(memory_format=_CL)


def _setup_context(ctx, inputs, output) -> None:
    x, weight, bias = inputs
    ctx.save_for_backward(x, weight)
    ctx.bias_size = bias.shape[0]


def _backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    x, weight = ctx.saved_tensors
    return torch.ops.aten.convolution_backward(
        grad.contiguous(memory_format=_CL), x, weight, [ctx.bias_size], [2, 2], [0, 0], [1, 1], True, [0, 0], 1,
        list(ctx.needs_input_grad))


conv_transpose2d_s2.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.planet.conv_transpose2d_s2)
def _flop(x_shape, w_shape, bias_shape, *, out_shape=None, **kwargs) -> int:
    # The transposed convolution's count, as FlopCounterMode gives it for aten.convolution(transposed=True).
    return conv_flop_count(x_shape, w_shape, out_shape, transposed=True)


def conv_transpose2d_s2_autocast(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """`conv_transpose2d_s2` in the precision autocast gives F.conv_transpose2d (a custom op is outside autocast's
    lists, so the cast autocast would do is done here, where autograd records it)."""
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    return conv_transpose2d_s2(x, weight, bias)
