"""Forward and backward of each encoder / decoder convolution alone (800 images, float32, channels-last), as
GFLOP/s; the decoder's 128->64 and 32->3 layers in the sub-pixel form the model uses on CPU. Run on commit cfe52ea
with the campaign paused: `python conv_layers.py > conv_layers.jsonl`."""

import json

import torch
import torch.nn.functional as F

from planet import ops, precision

torch.set_num_threads(2)
torch.manual_seed(0)
CL = torch.channels_last
N = 800
LAYERS = [("enc", cin, cout, 4, hin) for cin, cout, hin in ((3, 32, 64), (32, 64, 31), (64, 128, 14), (128, 256, 6))]
LAYERS += [("dec_sub", 128, 64, 5, 5), ("dec", 64, 32, 6, 13), ("dec_sub", 32, 3, 6, 30)]


def median_time(fn, repeats=5):
    return precision._time(fn, repeats)  # one warm-up, then the median of `repeats`


def layer_fn(kind, x, w, b):
    if kind == "enc":
        return lambda: F.conv2d(x, w, b, stride=2)
    if kind == "dec_sub":
        return lambda: ops.conv_transpose2d_s2(x, w, b)
    return lambda: F.conv_transpose2d(x, w, b, stride=2)


for kind, cin, cout, k, hin in LAYERS:
    x = torch.randn(N, cin, hin, hin).contiguous(memory_format=CL).requires_grad_(cin != 3)
    shape = (cout, cin, k, k) if kind == "enc" else (cin, cout, k, k)
    w = torch.randn(*shape).contiguous(memory_format=CL).requires_grad_()
    b = torch.zeros(cout, requires_grad=True)
    f = layer_fn(kind, x, w, b)
    y = f()
    g = torch.randn_like(y).contiguous(memory_format=CL)
    side = y.shape[-1] if kind == "enc" else hin  # output size of a conv, input size of a transposed conv
    flop = 2 * N * cin * cout * k * k * side * side
    t_fwd = median_time(f)
    t_bwd = median_time(lambda f=f, g=g: f().backward(g)) - t_fwd
    passes = 2 if cin != 3 else 1  # the first layer has no input gradient
    print(json.dumps({"layer": f"{kind} {cin}->{cout} k{k} in{hin}", "fwd_ms": round(t_fwd * 1e3, 1),
                      "bwd_ms": round(t_bwd * 1e3, 1), "fwd_gflops": round(flop / t_fwd / 1e9, 1),
                      "bwd_gflops": round(passes * flop / t_bwd / 1e9, 1)}))
