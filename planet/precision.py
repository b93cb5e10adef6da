"""Numerical precision of the hot paths (`compute.update_precision`, `compute.plan_precision`).

float32 is the reference and the default of every preset. ``bf16`` runs matrix multiplies and convolutions in
bfloat16 (8 exponent bits, like float32: no loss scaling needed), which is fast where the hardware has it: CPUs with
AVX512-BF16 or AMX (oneDNN kernels), CUDA GPUs from Ampere on. Elsewhere it is emulated and slower. ``auto`` decides
by measuring: a dense layer of the planner's shape in both precisions, once per process and device; bf16 is
chosen when it is at least `AUTO_MIN_SPEEDUP` times faster. float16 is not offered: it needs loss scaling for the
update, and no machine of this project has a faster float16 than bfloat16 path.
"""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
AUTO_MIN_SPEEDUP = 1.3
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_fp16")


def cpu_flags() -> list[str]:
    """The instruction-set extensions of this CPU that matter for float32 / bfloat16 / float16 kernels (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags: set[str] = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[1].split())
            break
    return [f for f in CPU_FLAGS if f in flags]


def median_times(fns: list[Callable[[], object]], repeats: int, device: torch.device | str = "cpu") -> list[float]:
    """Medians of several functions timed in turns (a, b, a, b, ...) after one warm-up each, so that a shared
    machine's drift falls on all of them alike and their ratios stay meaningful."""
    dev = torch.device(device)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for fn in fns:
        fn()
    sync()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


@functools.cache
def bf16_speedup(device: str) -> float:
    """float32 time / bfloat16 time of a [1024, 230] x [230, 600] dense layer on `device` (8 calls per timing, the
    two dtypes timed in turns 11 times: 0.22 s in all on a 2-core Zen 4). A first version timed all float32 calls,
    then all bfloat16 ones, 7 each: on a 2-core Zen 4 VM it measured 2.0-2.4x in most processes and 1.09x in one of
    nine, which made `auto` keep float32 there at random."""
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_bf16_supported():
        return 0.0
    fns = []
    for dtype in (torch.float32, torch.bfloat16):
        x = torch.randn(1024, 230, device=dev, dtype=dtype)
        w = torch.randn(600, 230, device=dev, dtype=dtype)

        def run(x=x, w=w) -> None:
            for _ in range(8):
                torch.nn.functional.linear(x, w)

        fns.append(run)
    fp32, bf16 = median_times(fns, 11, dev)
    return fp32 / bf16


def resolve(name: str, device: torch.device | str) -> torch.dtype:
    """The dtype that precision `name` (fp32, bf16, auto) means on `device`."""
    if name == "auto":
        return torch.bfloat16 if bf16_speedup(str(torch.device(device))) >= AUTO_MIN_SPEEDUP else torch.float32
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision '{name}'; valid: fp32, bf16, auto")
    return PRECISIONS[name]


def autocast(dtype: torch.dtype, device: torch.device | str) -> contextlib.AbstractContextManager:
    """torch.autocast for `dtype`, or nothing for float32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def name(dtype: torch.dtype) -> str:
    return {v: k for k, v in PRECISIONS.items()}[dtype]
