"""Encoder convolutions (k4, stride 2) natively vs as a stride-1 k2 convolution of `F.pixel_unshuffle(x, 2)` (exact),
and the decoder's transposed convolutions natively vs in the sub-pixel form (planet/ops.py); timed in turns, 800
images, float32. Run on commit cfe52ea with the campaign paused: `python space_to_depth.py > space_to_depth.jsonl`."""

import json

import torch
import torch.nn.functional as F

from planet import bench, ops

torch.set_num_threads(2)
torch.manual_seed(0)
CL = torch.channels_last
N = 800


def s2d_conv(x, w, b):
    """conv2d(x, w, b, stride=2) for a k4 kernel, as a k2 stride-1 convolution of the space-to-depth input."""
    _, c, h, wd = x.shape
    o = w.shape[0]
    xs = F.pixel_unshuffle(x[:, :, : h - h % 2, : wd - wd % 2], 2)  # channel c*4 + dy*2 + dx
    w2 = w.reshape(o, c, 2, 2, 2, 2).permute(0, 1, 3, 5, 2, 4).reshape(o, 4 * c, 2, 2)
    return F.conv2d(xs.contiguous(memory_format=CL), w2.contiguous(memory_format=CL), b)


def in_turns(fns, repeats=5):
    """Medians in ms, timed in turns after one warm-up each (planet bench's helper)."""
    return [round(t * 1e3, 1) for t in bench._median_times(fns, repeats, torch.device("cpu"))]


def with_backward(f, g):
    return lambda: f().backward(g)


for cin, cout, hin in ((3, 32, 64), (32, 64, 31), (64, 128, 14), (128, 256, 6)):
    x = torch.randn(N, cin, hin, hin).contiguous(memory_format=CL).requires_grad_(cin != 3)
    w = torch.randn(cout, cin, 4, 4).contiguous(memory_format=CL).requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    ref = F.conv2d(x, w, b, stride=2)
    err = ((ref - s2d_conv(x, w, b)).abs().max() / ref.abs().max()).item()
    g = torch.randn_like(ref).contiguous(memory_format=CL)
    native = lambda x=x, w=w, b=b: F.conv2d(x, w, b, stride=2)  # noqa: E731
    s2d = lambda x=x, w=w, b=b: s2d_conv(x, w, b)  # noqa: E731
    times = in_turns([native, s2d, with_backward(native, g), with_backward(s2d, g)])
    print(json.dumps({"enc": f"{cin}->{cout} in{hin}", "rel_err": err,
                      **dict(zip(("fwd_native_ms", "fwd_s2d_ms", "fb_native_ms", "fb_s2d_ms"), times, strict=True))}))

for cin, cout, k, hin in ((128, 64, 5, 5), (64, 32, 6, 13), (32, 3, 6, 30)):
    x = torch.randn(N, cin, hin, hin).contiguous(memory_format=CL).requires_grad_()
    w = torch.randn(cin, cout, k, k).contiguous(memory_format=CL).requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    native = lambda x=x, w=w, b=b: F.conv_transpose2d(x, w, b, stride=2)  # noqa: E731
    sub = lambda x=x, w=w, b=b: ops.conv_transpose2d_s2(x, w, b)  # noqa: E731
    g = torch.randn_like(native()).contiguous(memory_format=CL)
    times = in_turns([native, sub, with_backward(native, g), with_backward(sub, g)])
    print(json.dumps({"dec": f"{cin}->{cout} k{k} in{hin}",
                      **dict(zip(("fwd_native_ms", "fwd_sub_ms", "fb_native_ms", "fb_sub_ms"), times, strict=True))}))
