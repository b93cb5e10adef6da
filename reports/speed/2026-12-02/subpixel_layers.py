"""The decoder's three stride-2 transposed convolutions at 800 images (a B=16, L=50 update), native vs the
sub-pixel op of planet/ops.py, float32 and bf16 (autocast), channels-last: forward alone, and forward + backward
(the op's backward is the native one). Medians of 6 after 2 warm-ups, ms. Usage: python subpixel_layers.py"""

import functools
import json
import statistics
import time

import torch
import torch.nn.functional as F

from planet.ops import conv_transpose2d_s2_autocast

torch.set_num_threads(2)
torch.manual_seed(0)
CL = torch.channels_last


def median_ms(fn, backward: bool) -> float:
    times = []
    for i in range(8):
        t0 = time.perf_counter()
        out = fn()
        if backward:
            out.backward(torch.ones_like(out))
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return round(statistics.median(times) * 1e3, 1)


def op_in(op, dtype, x, layer):
    with torch.autocast("cpu", torch.bfloat16, enabled=dtype == torch.bfloat16):
        return op(x, layer)


OPS = {"native": lambda x, layer: F.conv_transpose2d(x, layer.weight, layer.bias, 2),
       "subpixel": lambda x, layer: conv_transpose2d_s2_autocast(x, layer.weight, layer.bias)}

for cin, cout, k, size in ((128, 64, 5, 5), (64, 32, 6, 13), (32, 3, 6, 30)):
    layer = torch.nn.ConvTranspose2d(cin, cout, k, 2).to(memory_format=CL)
    x = torch.randn(800, cin, size, size).contiguous(memory_format=CL).requires_grad_()
    for dtype in (torch.float32, torch.bfloat16):
        row = {"layer": f"{cin}->{cout} k{k}", "dtype": str(dtype).removeprefix("torch.")}
        for name, op in OPS.items():
            run = functools.partial(op_in, op, dtype, x, layer)
            with torch.no_grad():
                row[f"{name}_forward_ms"] = median_ms(run, backward=False)
            row[f"{name}_forward_backward_ms"] = median_ms(run, backward=True)
        print(json.dumps(row), flush=True)
