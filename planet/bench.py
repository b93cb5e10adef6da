"""`planet bench`: hot-path timings measured in one process, printed as JSON.

* seconds per world-model update (forward, backward, Adam step) at B x L (paper: 50 x 50), paper-size model;
* seconds per plan (paper: CEM J=1000, I=10, H=12) for one belief, and for a batch of beliefs;
* environment steps per second with rendering (after action repeat), and seconds per rendered frame;
* the update's achieved FLOP/s (counted by torch's FlopCounterMode) as a fraction of this machine's float32
  matrix-multiply rate measured in the same run.

Medians over `repeats` after one warm-up. Numbers from a shared machine are noisy: compare ratios from one run.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from planet import utils
from planet.config import LossConfig, ModelConfig
from planet.models import WorldModel, preprocess
from planet.planner import cem, latent_objective


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    fn()
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of an n x n matrix multiply (the machine's practical peak for dense float32 work)."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    seconds = _median_time(lambda: a @ b, repeats, device)
    return 2 * n**3 / seconds


def bench_update(device: torch.device, batch: int, length: int, repeats: int, action_dim: int = 6) -> dict:
    cfg_model, cfg_loss = ModelConfig(), LossConfig()
    model = WorldModel(cfg_model, action_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8))
    act = torch.as_tensor(rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32))
    rew = torch.as_tensor(rng.uniform(0, 1, (batch, length)).astype(np.float32))

    def step() -> None:
        image = preprocess(obs.to(device), 5, gen)
        loss, _ = model.loss(image, act.to(device), rew.to(device), cfg_loss, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()

    seconds = _median_time(step, repeats, device)
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    flops = counter.get_total_flops()
    return {"update_s": seconds, "update_flop": flops, "update_flop_per_s": flops / seconds,
            "batch": batch, "chunk": length}


def _plan_fn(device: torch.device, candidates: int, iterations: int, horizon: int, top_k: int, beliefs: int = 1,
             action_dim: int = 6) -> Callable[[], None]:
    """One CEM plan of an untrained paper-size model for `beliefs` beliefs, as a function to time."""
    model = WorldModel(ModelConfig(), action_dim).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(0)
    belief = model.dynamics.initial(beliefs, device)

    @torch.inference_mode()
    def run() -> None:
        cem(latent_objective(model, belief, gen), beliefs, horizon, action_dim, iterations, candidates, top_k, gen,
            device)

    return run


def bench_plan(device: torch.device, candidates: int, iterations: int, horizon: int, top_k: int, repeats: int,
               beliefs: int = 1) -> float:
    return _median_time(_plan_fn(device, candidates, iterations, horizon, top_k, beliefs), repeats, device)


def plan_flop(device: torch.device, candidates: int, iterations: int, horizon: int, top_k: int) -> int:
    """Matmul FLOP of one CEM plan (one belief), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode  # noqa: PLC0415

    run = _plan_fn(device, candidates, iterations, horizon, top_k)
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_total_flops()


def bench_env(task: str, steps: int) -> dict:
    from planet.envs import PixelEnv  # noqa: PLC0415

    env = PixelEnv(task, seed=0)
    env.reset()
    action = np.zeros(env.action_dim, np.float32)
    env.step(action)
    t0 = time.perf_counter()
    done_steps = 0
    for _ in range(steps):
        _, _, done = env.step(action)
        done_steps += 1
        if done:
            env.reset()
    seconds = time.perf_counter() - t0
    physics = env.physics  # render cost alone, at the observation size
    t1 = time.perf_counter()
    for _ in range(steps):
        physics.render(64, 64, camera_id=0)
    render_s = (time.perf_counter() - t1) / steps
    env.close()
    return {"task": task, "action_repeat": env.action_repeat,
            "env_steps_per_s": done_steps * env.action_repeat / seconds,
            "agent_steps_per_s": done_steps / seconds, "render_s_per_frame": render_s}


def run_bench(device: torch.device, quick: bool = False, repeats: int = 3) -> dict:
    if quick:  # a seconds-long smoke version of the same measurements (tests, CI)
        sizes = dict(batch=4, length=8, candidates=64, iterations=2, horizon=4, top_k=8, env_steps=10)
    else:
        sizes = dict(batch=50, length=50, candidates=1000, iterations=10, horizon=12, top_k=100, env_steps=100)
    rate = matmul_rate(device, n=512 if quick else 2048)
    update = bench_update(device, sizes["batch"], sizes["length"], repeats)
    plan_args = (sizes["candidates"], sizes["iterations"], sizes["horizon"], sizes["top_k"])
    plan_s = bench_plan(device, *plan_args, repeats=max(repeats, 3))
    plan10_s = bench_plan(device, *plan_args, repeats=repeats, beliefs=10)
    flop = plan_flop(device, *plan_args)
    envs = [bench_env(task, sizes["env_steps"]) for task in ("cartpole_swingup", "walker_walk")]
    import resource  # noqa: PLC0415

    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
        or platform.machine(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "retain_freed_memory": utils.RETAINING_FREED_MEMORY,
        "quick": quick,
        "repeats": repeats,
        "update": update,
        "plan": {"plan_s": plan_s, "plan_s_10_beliefs": plan10_s, "plan_flop": flop,
                 "plan_fraction_of_matmul_rate": flop / plan_s / rate, "candidates": sizes["candidates"],
                 "iterations": sizes["iterations"], "horizon": sizes["horizon"], "top_k": sizes["top_k"]},
        "env": envs,
        "matmul_flop_per_s": rate,
        "update_fraction_of_matmul_rate": update["update_flop_per_s"] / rate,
        # peak resident memory of this process (the paper-size update dominates it); Linux reports KiB
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
    }
