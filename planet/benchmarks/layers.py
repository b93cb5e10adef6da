"""Probes of the world model's convolutions one layer at a time, on the CPU, channels-last as the model runs them.

The layers are read from a paper-size `WorldModel` (the encoder's four k4 stride-2 convolutions, the decoder's
transposed convolutions after its first, which sees a 1x1 input and runs as one matrix multiply), at the batch of
one B=16 x L=50 update (800 images).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn

from planet import ops, precision
from planet.bench import median_times
from planet.benchmarks import sizes

CL = torch.channels_last
CPU = torch.device("cpu")


def model_layers() -> list[tuple[str, nn.Module, int, bool]]:
    """(label, layer, input size, sub-pixel on CPU) for each encoder convolution and each decoder transposed
    convolution after the first, of the paper-size model."""
    from planet.config import ModelConfig
    from planet.models import WorldModel

    model = WorldModel(ModelConfig(), 6)
    rows, size = [], 64
    for layer in model.encoder.net:
        if isinstance(layer, nn.Conv2d):
            rows.append(("enc", layer, size, False))
            size = (size - layer.kernel_size[0]) // 2 + 1
    subpixel = model.decoder._subpixel_layers  # the Decoder's CPU choice: indices into its `net`
    size = model.decoder.net[0].kernel_size[0]  # the first layer's output from its 1x1 input
    for i, layer in enumerate(model.decoder.net):
        if isinstance(layer, nn.ConvTranspose2d) and i > 0:
            rows.append(("dec", layer, size, i in subpixel))
            size = 2 * (size - 1) + layer.kernel_size[0]
    return [(f"{kind} {m.in_channels}->{m.out_channels} k{m.kernel_size[0]} in{hin}", m, hin, sub)
            for kind, m, hin, sub in rows]


def _forward(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            fn()

    return run


def _forward_backward(fn: Callable[[], torch.Tensor], grad: torch.Tensor) -> Callable[[], None]:
    return lambda: fn().backward(grad)


def _inputs(layer: nn.Module, images: int, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.randn(images, layer.in_channels, size, size).contiguous(memory_format=CL)
    x.requires_grad_(layer.in_channels != 3)  # the first layer's input (the image) needs no gradient
    w = layer.weight.detach().contiguous(memory_format=CL).requires_grad_()
    return x, w, layer.bias.detach().clone().requires_grad_()


def conv_layers(quick: bool = False, repeats: int = 5) -> Iterator[dict]:
    """Forward and backward of each convolution alone in float32 (the decoder's sub-pixel layers in the form the
    model uses on CPU): milliseconds, and GFLOP/s (the backward computes the weight and, but for the first layer,
    the input gradient: twice the forward's FLOP, once for the first). The backward is the median of forward plus
    backward less that of the forward, timed in turns; at tiny sizes it can come out <= 0 (then no GFLOP/s)."""
    torch.manual_seed(0)
    images = sizes(quick).images
    for label, layer, hin, sub in model_layers():
        x, w, b = _inputs(layer, images, hin)
        if isinstance(layer, nn.Conv2d):
            fn = lambda x=x, w=w, b=b: F.conv2d(x, w, b, stride=2)  # noqa: E731
        elif sub:
            fn = lambda x=x, w=w, b=b: ops.conv_transpose2d_s2(x, w, b)  # noqa: E731
        else:
            fn = lambda x=x, w=w, b=b: F.conv_transpose2d(x, w, b, stride=2)  # noqa: E731
        with torch.no_grad():
            out = fn()
        grad = torch.randn_like(out).contiguous(memory_format=CL)
        cout, k = layer.out_channels, layer.kernel_size[0]
        side = out.shape[-1] if isinstance(layer, nn.Conv2d) else hin  # the side the kernel slides over
        flop = 2 * images * layer.in_channels * cout * k * k * side * side
        fwd, fwd_bwd = median_times([_forward(fn), _forward_backward(fn, grad)], repeats, CPU)
        bwd = fwd_bwd - fwd
        passes = 1 if layer.in_channels == 3 else 2
        yield {"layer": label + (" subpixel" if sub else ""), "images": images, "flop": flop,
               "fwd_ms": fwd * 1e3, "fwd_bwd_ms": fwd_bwd * 1e3, "bwd_ms": bwd * 1e3,
               "fwd_gflops": flop / fwd / 1e9, "bwd_gflops": passes * flop / bwd / 1e9 if bwd > 0 else None}


def subpixel_layers(quick: bool = False, repeats: int = 6, dtypes: str = "fp32,bf16") -> Iterator[dict]:
    """The decoder's transposed convolutions after the first, natively (`F.conv_transpose2d`) and in the sub-pixel
    form of planet/ops.py (its backward is the native one), forward alone and forward + backward, in each of
    `dtypes` (bf16 under autocast, as the update runs), the four timed in turns; milliseconds."""
    torch.manual_seed(0)
    images = sizes(quick).images
    ops_by_name = {"native": lambda x, w, b: F.conv_transpose2d(x, w, b, stride=2),
                   "subpixel": ops.conv_transpose2d_s2_autocast}
    for label, layer, hin, _ in model_layers():
        if not isinstance(layer, nn.ConvTranspose2d):
            continue
        x, w, b = _inputs(layer, images, hin)
        for dtype_name in dtypes.split(","):
            dtype = precision.PRECISIONS[dtype_name]

            def call(op, dtype=dtype, x=x, w=w, b=b) -> torch.Tensor:
                with precision.autocast(dtype, CPU):
                    return op(x, w, b)

            with torch.no_grad():
                grad = torch.randn_like(call(ops_by_name["native"])).contiguous(memory_format=CL)
            fns, keys = [], []
            for name, op in ops_by_name.items():
                fn = lambda op=op: call(op)  # noqa: E731
                fns += [_forward(fn), _forward_backward(fn, grad)]
                keys += [f"{name}_forward_ms", f"{name}_forward_backward_ms"]
            times = median_times(fns, repeats, CPU)
            yield {"layer": label, "dtype": dtype_name, "images": images} | {
                key: t * 1e3 for key, t in zip(keys, times, strict=True)}
