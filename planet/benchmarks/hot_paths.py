"""Probes of the update and the plan, on the CPU: the sub-pixel layers' share of an update, the plan's matrix
multiplies against its whole time, the compiled plan, and profiles of both."""

from __future__ import annotations

import collections
import sys
from collections.abc import Iterator

import torch

from planet import bench, precision
from planet.benchmarks import sizes

CPU = torch.device("cpu")


def _flop(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def subpixel_update(quick: bool = False, batch: int | None = None, repeats: int = 9,
                    dtypes: str = "fp32,bf16") -> Iterator[dict]:
    """One world-model update (paper-size model, random B x 50 batch; B=16 by default, the `cpu` preset's) with the
    decoder's sub-pixel layers off (all transposed convolutions native) and on (the CPU default), in each of
    `dtypes`, all timed in turns; FlopCounterMode's count of both float32 forms (the same, or the sub-pixel op's
    FLOP formula is wrong)."""
    size = sizes(quick)
    batch = batch or size.cpu_batch
    fns, names, flop = [], [], {}
    for dtype_name in dtypes.split(","):
        for subpixel in (False, True):
            name = f"{dtype_name}_{'subpixel' if subpixel else 'native'}"
            fns.append(bench.update_fn(CPU, batch, size.length, dtype=precision.PRECISIONS[dtype_name],
                                       subpixel=subpixel))
            names.append(name)
            if dtype_name == "fp32":
                flop[name] = _flop(fns[-1])
    seconds = bench.median_times(fns, repeats, CPU)
    yield {"batch": batch, "length": size.length, "repeats": repeats, "flop": flop,
           "update_s": dict(zip(names, seconds, strict=True))}


def plan_dense_shapes(plan) -> collections.Counter:
    """The dense layers of one call of `plan` (a function from `bench.plan_fn`), as a Counter of (input shape,
    (in, out) of the weight, with bias) -> calls; the GRU cell counts as its two gate products."""
    from torch.utils._python_dispatch import TorchDispatchMode

    shapes: collections.Counter = collections.Counter()

    class RecordDense(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func == torch.ops.aten.gru_cell.default:
                x, h, w_ih, w_hh = args[:4]
                shapes[(tuple(x.shape), (w_ih.shape[1], w_ih.shape[0]), True)] += 1
                shapes[(tuple(h.shape), (w_hh.shape[1], w_hh.shape[0]), True)] += 1
            if func == torch.ops.aten.linear.default:
                x, w = args[0], args[1]
                shapes[(tuple(x.shape), (w.shape[1], w.shape[0]), len(args) > 2 and args[2] is not None)] += 1
            return func(*args, **(kwargs or {}))

    with RecordDense():
        plan()
    return shapes


def plan_gemms(quick: bool = False, repeats: int = 9) -> Iterator[dict]:
    """The dense layers of one float32 CEM plan (paper size: J=1000, I=10, H=12, K=100): their shapes, then those
    matrix multiplies alone (with their bias where the layer has one), a block of five float32 n^3 multiplies
    (n=2048) and the real plan, timed in turns. Whether the plan's shapes or the rest of its work keep it below
    the matmul rate."""
    size = sizes(quick)
    plan = bench.plan_fn(CPU, *size.plan)
    shapes = plan_dense_shapes(plan)
    operands, flop = [], 0
    for (a_shape, (k, n), bias), count in shapes.items():
        operands.append((torch.randn(*a_shape), torch.randn(n, k).t(), torch.randn(n), bias, count))
        flop += 2 * a_shape[0] * k * n * count

    def gemms() -> None:
        for a, b, c, bias, count in operands:
            for _ in range(count):
                torch.addmm(c, a, b) if bias else a @ b

    block, block_flop = bench.matmul_fn(CPU, size.matmul_n, count=5)
    gemms_s, block_s, plan_s = bench.median_times([gemms, block, plan], repeats, CPU)
    rate = block_flop / block_s
    yield {"candidates": size.plan[0], "iterations": size.plan[1], "horizon": size.plan[2], "top_k": size.plan[3],
           "shapes": [{"input": list(a), "weight": list(w), "bias": bias, "calls": count}
                      for (a, w, bias), count in shapes.items()],
           "plan_gemm_flop": flop, "gemms_alone_s": gemms_s, "gemm_flop_per_s": flop / gemms_s,
           "matmul_n": size.matmul_n, "matmul_flop_per_s": rate, "gemms_fraction_of_rate": flop / gemms_s / rate,
           "plan_s": plan_s, "plan_fraction_of_rate": flop / plan_s / rate, "gemm_share_of_plan": gemms_s / plan_s}


def plan_compiled(quick: bool = False, repeats: int = 7) -> Iterator[dict]:
    """One float32 CEM plan (paper size) eager and with the planner's whole horizon compiled (`compute.compile`;
    compiled in the warm-up), and a block of five float32 n^3 multiplies, timed in turns; each plan's fraction of
    that matmul rate."""
    size = sizes(quick)
    block, block_flop = bench.matmul_fn(CPU, size.matmul_n, count=5)
    fns = [bench.plan_fn(CPU, *size.plan), bench.plan_fn(CPU, *size.plan, compiled=True), block]
    eager_s, compiled_s, block_s = bench.median_times(fns, repeats, CPU)
    flop, rate = bench.plan_flop(CPU, *size.plan), block_flop / block_s
    yield {"candidates": size.plan[0], "iterations": size.plan[1], "horizon": size.plan[2], "top_k": size.plan[3],
           "plan_flop": flop, "plan_s": eager_s, "plan_s_compiled": compiled_s,
           "compiled_speedup": eager_s / compiled_s,
           "matmul_flop_per_s": rate, "plan_fraction_of_matmul_rate": flop / eager_s / rate,
           "plan_fraction_of_matmul_rate_compiled": flop / compiled_s / rate}


def profile(quick: bool = False, what: str = "update", compiled: bool = False, dtype: str = "fp32",
            rows: int = 22) -> Iterator[dict]:
    """torch.profiler of two calls of a float32 (or `dtype`) update at B=16 (`what=update`) or a paper-size plan
    (`what=plan`), after two warm-ups, `compiled` as `compute.compile` compiles them: the seconds of one call
    timed alone before, and the `rows` operators with the most self CPU time (ms per call, share of all self time).
    The profiler's own table is printed to stderr."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    size, dt = sizes(quick), precision.PRECISIONS[dtype]
    if what == "update":
        fn = bench.update_fn(CPU, size.cpu_batch, size.length, dtype=dt, compile_nets=compiled)
    elif what == "plan":
        fn = bench.plan_fn(CPU, *size.plan, dtype=dt, compiled=compiled)
    else:
        from planet.utils import PlanetError

        raise PlanetError(f"probe profile: what={what}; valid: update, plan")
    fn()
    fn()
    call_s = bench.median_time(fn, 1, CPU)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
        fn()
    averages = prof.key_averages()
    print(averages.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60), file=sys.stderr)
    total_us = sum(e.self_cpu_time_total for e in averages)
    top = sorted(averages, key=lambda e: e.self_cpu_time_total, reverse=True)[:rows]
    yield {"what": what, "compiled": compiled, "dtype": dtype, "call_s": call_s,
           "self_cpu_s_per_call": total_us / 2e6,
           "ops": [{"name": e.key, "self_ms_per_call": e.self_cpu_time_total / 2e3,
                    "share": e.self_cpu_time_total / total_us, "calls_per_call": e.count / 2} for e in top]}
