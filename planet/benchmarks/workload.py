"""Probes of what a run does as a whole, on the CPU: a slice of a training episode at this process's thread count,
the resident memory of paper-size updates, and a user's training episode and evaluation."""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from planet import bench, utils
from planet.benchmarks import sizes

CPU = torch.device("cpu")


def threads_slice(quick: bool = False, updates: int = 8, plans: int = 60) -> Iterator[dict]:
    """A slice of a `cpu`-preset training episode, float32: `updates` updates at B=16, L=50, then `plans` CEM plans
    at J=300, I=5, H=12, K=30, after one warm-up each, with this process's threads (`--threads`). Two processes at
    `--threads 1` side by side against one at 2 say whether splitting a machine's jobs pays."""
    size = sizes(quick)
    update = bench.update_fn(CPU, size.cpu_batch, size.length)
    plan = bench.plan_fn(CPU, *size.cpu_plan)
    update()
    plan()
    t0 = time.perf_counter()
    for _ in range(updates):
        update()
    t1 = time.perf_counter()
    for _ in range(plans):
        plan()
    t2 = time.perf_counter()
    yield {"batch": size.cpu_batch, "candidates": size.cpu_plan[0], "updates": updates, "plans": plans,
           "update_s": (t1 - t0) / updates, "plan_s": (t2 - t1) / plans, "wall_s": t2 - t0}


def memory(quick: bool = False, updates: int = 3, env: bool = True) -> Iterator[dict]:
    """This process's resident memory with a paper-size model (B=50, L=50, float32) before its first update and
    after `updates` updates, and its peak; with a rendering environment made first (`env`: MuJoCo and EGL's share,
    as in a run). Freed memory is retained as the `planet` CLI does unless PLANET_RETAIN_FREED_MEMORY=0
    (`retain_freed_memory` says which)."""
    size = sizes(quick)
    pixel_env = None
    if env:
        from planet.envs import PixelEnv

        pixel_env = PixelEnv("cartpole_swingup", seed=0)
        pixel_env.reset()
    step = bench.update_fn(CPU, size.batch, size.length)
    before = utils.memory_gb()
    for _ in range(updates):
        step()
    after = utils.memory_gb()
    if pixel_env is not None:
        pixel_env.close()
    yield {"retain_freed_memory": utils.RETAINING_FREED_MEMORY, "env": env, "batch": size.batch,
           "length": size.length, "updates": updates, "rss_gb_before_updates": before.get("rss_gb"),
           "rss_gb_after_updates": after.get("rss_gb"), "peak_rss_gb": after["peak_rss_gb"]}


def user_episode(quick: bool = False, precision: str = "fp32", compile: bool = False) -> Iterator[dict]:
    """`planet.bench.bench_episode` in one precision (fp32, bf16 or auto, for the update and the plan alike) and
    `compile` (`compute.compile`): seed episodes (not timed), then one `cpu`-preset cartpole training episode (50
    updates at B=16 and one collected episode) and one 10-episode evaluation, timed by the Trainer's own metrics
    (`quick`: the debug preset)."""
    yield bench.bench_episode(CPU, precision, precision, quick=quick, compile_nets=compile)
