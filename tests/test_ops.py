"""planet/ops.py: the sub-pixel transposed convolution is F.conv_transpose2d(stride=2), forward, backward and FLOP."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from planet.ops import conv_transpose2d_s2, conv_transpose2d_s2_autocast, subpixel_weight


def _inputs(k: int, h: int, w: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(3, 4, h, w, generator=g).contiguous(memory_format=torch.channels_last).requires_grad_()
    weight = torch.randn(4, 5, k, k, generator=g).requires_grad_()
    bias = torch.randn(5, generator=g).requires_grad_()
    return x, weight, bias


def test_subpixel_weight_by_hand():
    """Phase a = 0 of a k = 5 kernel reads taps 0, 2, 4 (flipped: tap 4 first); phase 1 reads taps 1, 3 and a zero."""
    w = torch.arange(25.0).reshape(1, 1, 5, 5)  # w[0, 0, i, j] = 5 i + j
    v = subpixel_weight(w)  # [4, 1, 3, 3], channels (a_h, a_w)
    assert v.shape == (4, 1, 3, 3)
    assert v[0, 0, :, 2].tolist() == [20.0, 10.0, 0.0]  # a = (0, 0), last column: tap j = 0, rows 4, 2, 0
    assert v[3, 0, 0].tolist() == [0.0, 0.0, 0.0]  # a = (1, 1): tap 5 (the zero pad) in the first row
    assert v[3, 0, 1].tolist() == [0.0, 18.0, 16.0]  # row 3: taps 5 (zero), 3, 1
    assert v[3, 0, 2].tolist() == [0.0, 8.0, 6.0]  # row 1


@pytest.mark.parametrize(("k", "h", "w"), [(5, 5, 5), (6, 13, 13), (6, 4, 7), (5, 6, 3)])
def test_matches_conv_transpose2d(k, h, w):
    x, weight, bias = _inputs(k, h, w)
    out = conv_transpose2d_s2(x, weight, bias)
    ref = F.conv_transpose2d(x, weight, bias, stride=2)
    assert out.shape == ref.shape == (3, 5, 2 * (h - 1) + k, 2 * (w - 1) + k)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn(ref.shape, generator=torch.Generator().manual_seed(1))
    for a, b in zip(torch.autograd.grad(out, (x, weight, bias), g),
                    torch.autograd.grad(ref, (x, weight, bias), g), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("k", [5, 6])
def test_registration(k):
    """torch.library's own checks: schema, fake (meta) kernel for torch.compile, autograd registration."""
    torch.library.opcheck(conv_transpose2d_s2, _inputs(k, 5, 6))


def test_flop_count_is_the_transposed_convolutions():
    """FlopCounterMode counts the function (a transposed convolution), not the sub-pixel kernel's zero taps."""
    counts = []
    for fn in (conv_transpose2d_s2, lambda *a: F.conv_transpose2d(*a, stride=2)):
        counter = FlopCounterMode(display=False)
        with counter:
            fn(*_inputs(5, 5, 5)).square().sum().backward()
        counts.append(counter.get_total_flops())
    # forward 2 * (3 * 5 * 5 inputs) * (4 * 5 * 25 weights) = 75,000, backward twice that
    assert counts[0] == counts[1] == 3 * 75_000


def test_autocast_runs_in_the_autocast_dtype():
    """Under bf16 autocast the op gives what autocast gives F.conv_transpose2d: a bf16 output (the float32 result on
    the bf16-rounded operands, rounded once) and float32 gradients for the float32 parameters."""
    x, weight, bias = _inputs(6, 7, 7)
    with torch.autocast("cpu", torch.bfloat16):
        out = conv_transpose2d_s2_autocast(x, weight, bias)
        ref = F.conv_transpose2d(x, weight, bias, stride=2)
    assert out.dtype == ref.dtype == torch.bfloat16
    # The op's stride-1 convolution accumulates in float32 and rounds its output once to bf16 (8 bits of mantissa:
    # relative error <= 2^-9), so it is compared with float32 arithmetic on the bf16-rounded operands, not with
    # autocast's own F.conv_transpose2d: on a CPU without native bf16 (AVX2 only) that kernel is emulated and was off
    # from this reference by up to 0.13 absolute and 4x relative at small outputs (2026-12-06), this op by 0.06
    # absolute (half a bf16 step at |out| ~ 25) and 0.4% relative.
    exact = F.conv_transpose2d(*(t.detach().bfloat16().float() for t in (x, weight, bias)), stride=2)
    torch.testing.assert_close(out.float(), exact, rtol=1e-2, atol=2e-2)
    out.float().sum().backward()
    assert weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
