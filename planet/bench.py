"""`planet bench`: hot-path timings measured in one process, printed as JSON.

* seconds per world-model update (forward, backward, Adam step) at B x L (paper: 50 x 50), paper-size model;
* seconds per plan (paper: CEM J=1000, I=10, H=12) for one belief, and for a batch of beliefs;
* environment steps per second with rendering (after action repeat), and seconds per rendered frame;
* the update's and the plan's achieved FLOP/s (counted by torch's FlopCounterMode) as a fraction of this machine's
  float32 matrix-multiply rate, measured in turns with them (a block of 2048^3 multiplies between their repeats);
* the update and the plan again in bfloat16 (`compute.*_precision=bf16`), their speed-up over float32, the CPU's
  relevant instruction sets and what `auto` chooses here (bfloat16 is timed only where it is native, see
  `bf16_timed`, unless `--bf16 always`); with `compile`, the update with compiled encoder and decoder and the plan
  with the planner's horizon compiled (`compute.compile`);
* what a user feels (`episode=True`): one `cpu`-preset training episode on cartpole (50 updates at B=16, then one
  collected episode) and one 10-episode evaluation, run by the real Trainer in a temporary directory, in float32 and
  in the precision `auto` chooses.

Medians over `repeats` after one warm-up. What is compared (float32 vs bf16, one belief vs ten, work vs matmul rate)
is timed in turns, so a shared machine's drift over minutes cancels in the ratios; absolute seconds still drift.

The building blocks are public, for the named probes of `planet bench probe` (planet/benchmarks/): functions to
time (`update_fn`, `plan_fn`, `matmul_fn`, `render_s`), FLOP counts (`plan_flop`) and the in-turns timer
(`median_times`, from planet/precision.py).
"""

from __future__ import annotations

import contextlib
import json
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from planet import precision, utils
from planet.config import LossConfig, ModelConfig
from planet.models import WorldModel, preprocess
from planet.planner import cem, latent_objective
from planet.precision import median_times  # in turns after one warm-up each: the one timer of the bench and its probes


def median_time(fn: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Median seconds of `fn` over `repeats` calls after one warm-up (CUDA synchronised); compare functions with
    `median_times`, which times them in turns."""
    return median_times([fn], repeats, device)[0]


def matmul_fn(device: torch.device, n: int, count: int = 1) -> tuple[Callable[[], None], int]:
    """`count` float32 n x n matrix multiplies as a function to time, and their FLOP."""
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)

    def run() -> None:
        for _ in range(count):
            a @ b

    return run, 2 * n**3 * count


def matmul_rate(device: torch.device, n: int = 2048, repeats: int = 5) -> float:
    """float32 FLOP/s of an n x n matrix multiply (the machine's practical peak for dense float32 work)."""
    fn, flop = matmul_fn(device, n)
    return flop / median_time(fn, repeats, device)


def update_fn(device: torch.device, batch: int, length: int, action_dim: int = 6,
              dtype: torch.dtype = torch.float32, compile_nets: bool = False,
              subpixel: bool = True) -> Callable[[], None]:
    """One world-model update (forward, backward, clipping, Adam) of a paper-size model on a random B x L batch, in
    `dtype` (as the Trainer updates), as a function to time. `compile_nets`: the encoder and decoder compiled
    (`compute.compile`); `subpixel=False`: the decoder's transposed convolutions all native on CPU (planet/ops.py's
    sub-pixel form off), to compare."""
    cfg_model, cfg_loss = ModelConfig(), LossConfig()
    model = WorldModel(cfg_model, action_dim).to(device)
    if not subpixel:
        model.decoder._subpixel_layers = ()  # the Decoder's CPU switch (indices of its sub-pixel layers)
    if compile_nets:
        model.compile_update()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, eps=1e-4)
    gen = torch.Generator(device=device).manual_seed(0)
    rng = np.random.default_rng(0)
    obs = torch.as_tensor(rng.integers(0, 256, (batch, length, 64, 64, 3), dtype=np.uint8))
    act = torch.as_tensor(rng.uniform(-1, 1, (batch, length, action_dim)).astype(np.float32))
    rew = torch.as_tensor(rng.uniform(0, 1, (batch, length)).astype(np.float32))

    def step() -> None:
        image = preprocess(obs.to(device), 5, gen)
        with precision.autocast(dtype, device):
            loss, _ = model.loss(image, act.to(device), rew.to(device), cfg_loss, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1000.0)
        opt.step()

    return step


def _compile_first(make: Callable[[torch.dtype], Callable[[], None]], what: str, bf16: bool,
                   variants: list) -> dict:
    """Build the compiled float32 (and bf16) variants of `what`, call each once (compiling it; that first call's
    seconds are returned as `WHAT_first_call_s_NAME`) and append them to `variants`, to be timed in turns later."""
    first_call = {}
    for name, dtype in (("compiled", torch.float32),) + ((("compiled_bf16", torch.bfloat16),) if bf16 else ()):
        fn = make(dtype)
        t0 = time.perf_counter()
        fn()
        first_call[f"{what}_first_call_s_{name}"] = time.perf_counter() - t0
        variants.append((name, fn))
    return first_call


def bench_update(device: torch.device, batch: int, length: int, repeats: int, matmul_n: int = 2048,
                 bf16: bool = True, compiled: bool = False) -> dict:
    """float32 updates and a block of float32 matrix multiplies timed in turns, with the bfloat16 update (`bf16`) and
    the compiled ones (`compiled`: compiled first, the first call timed apart) in the same turns; the float32
    update's FLOP (counted by FlopCounterMode) and its fraction of the matmul rate measured between its own repeats."""
    from torch.utils.flop_counter import FlopCounterMode

    fp32 = update_fn(device, batch, length)
    matmul, matmul_flop = matmul_fn(device, matmul_n, count=20)
    variants = [("bf16", update_fn(device, batch, length, dtype=torch.bfloat16))] if bf16 else []
    result = {}
    if compiled:
        result = _compile_first(lambda dtype: update_fn(device, batch, length, dtype=dtype, compile_nets=True),
                                "update", bf16, variants)
    seconds, matmul_s, *variant_s = median_times([fp32, matmul] + [fn for _, fn in variants], repeats, device)
    counter = FlopCounterMode(display=False)
    with counter:
        fp32()
    flops = counter.get_total_flops()
    rate = matmul_flop / matmul_s
    result |= {"update_s": seconds, "update_flop": flops, "update_flop_per_s": flops / seconds,
               "matmul_flop_per_s": rate, "batch": batch, "chunk": length}
    for (name, _), t in zip(variants, variant_s, strict=True):
        result |= {f"update_s_{name}": t, f"{name}_speedup": seconds / t}
    if compiled:
        result["update_fraction_of_matmul_rate_compiled"] = flops / result["update_s_compiled"] / rate
    return result


def plan_fn(device: torch.device, candidates: int, iterations: int, horizon: int, top_k: int, beliefs: int = 1,
            action_dim: int = 6, dtype: torch.dtype = torch.float32, compiled: bool = False) -> Callable[[], None]:
    """One CEM plan of an untrained paper-size model for `beliefs` beliefs, as a function to time (as MPCAgent
    plans: the model's planner rollout in `dtype`, under autocast; `compiled`: its whole horizon compiled, as
    `compute.compile` does)."""
    model = WorldModel(ModelConfig(), action_dim).to(device).eval()
    gen = torch.Generator(device=device).manual_seed(0)
    belief = model.dynamics.initial(beliefs, device)
    rollout = model.planner_rollout(dtype, compiled)

    @torch.inference_mode()
    def run() -> None:
        with precision.autocast(dtype, device):
            cem(latent_objective(model, belief, gen, rollout=rollout), beliefs, horizon, action_dim, iterations,
                candidates, top_k, gen, device)

    return run


def bench_episode(device: torch.device, update_precision: str, plan_precision: str, quick: bool = False,
                  compile_nets: bool = False) -> dict:
    """One `cpu`-preset training episode on cartpole and one evaluation, timed by the real Trainer's own metrics.

    Seed episodes are collected first (not timed); then 50 updates at B=16 and one collected episode (the
    `perf/updates_per_s` and `perf/collect_s` the run logs), then the final 10-episode evaluation (`perf/eval_s`).
    `quick` uses the debug preset. `compile_nets` sets `compute.compile`; its compilation (once per process, ~5 s
    with inductor's on-disk cache warm, up to a minute cold) falls in the timed updates and collection.
    """
    import tempfile

    from planet import config as config_lib
    from planet.train import Trainer

    preset = "debug" if quick else "cpu"
    base = config_lib.resolve("cartpole_swingup", preset, 0)
    overrides = {"train": {"episodes": base.train.seed_episodes + 1}, "eval": {"every": 0, "video": False},
                 "run": {"mlflow": False, "threads": torch.get_num_threads()},
                 "compute": {"update_precision": update_precision, "plan_precision": plan_precision,
                             "compile": compile_nets}}
    cfg = config_lib.resolve("cartpole_swingup", preset, 0, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        Trainer(cfg, Path(tmp) / "run", device, progress=False).run()
        wall = time.perf_counter() - t0
        lines = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
    train = next(m for m in lines if "perf/updates_per_s" in m)
    evaluation = next(m for m in lines if "perf/eval_s" in m)
    updates_s = cfg.train.updates_per_episode / train["perf/updates_per_s"]
    return {"preset": preset, "update_precision": update_precision, "plan_precision": plan_precision,
            "compile": compile_nets,
            "updates_s": updates_s, "collect_s": train["perf/collect_s"],
            "episode_s": updates_s + train["perf/collect_s"], "eval_s": evaluation["perf/eval_s"],
            "eval_episodes": cfg.eval.episodes, "wall_s_with_seed_episodes": wall}


def plan_flop(device: torch.device, candidates: int, iterations: int, horizon: int, top_k: int) -> int:
    """Matmul FLOP of one CEM plan (one belief), counted by torch's FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    run = plan_fn(device, candidates, iterations, horizon, top_k)
    counter = FlopCounterMode(display=False)
    with counter:
        run()
    return counter.get_total_flops()


def bench_env(task: str, steps: int) -> dict:
    """Env steps per second of `task` with rendering, seconds per 64 px frame, and the `cpu` preset's shadow map
    against the suite's (rendered in turns)."""
    from planet.envs import PixelEnv

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
    frame_s = render_s(env, steps)  # render cost alone, at the observation size
    env.close()
    # the cpu preset's smaller shadow map (env.shadow_map_size), timed in turns with the suite's own
    from planet import config as config_lib

    shadow = config_lib.resolve(task, "cpu", 0).env.shadow_map_size
    pair = {"default": PixelEnv(task, seed=0), "small": PixelEnv(task, seed=0, shadow_map_size=shadow)}
    times: dict[str, list[float]] = {name: [] for name in pair}
    for e in pair.values():
        e.reset()
    for _ in range(3):
        for name, e in pair.items():
            times[name].append(render_s(e, max(1, steps // 3)))
    for e in pair.values():
        e.close()
    default_s, small_s = float(np.median(times["default"])), float(np.median(times["small"]))
    return {"task": task, "action_repeat": env.action_repeat,
            "env_steps_per_s": done_steps * env.action_repeat / seconds,
            "agent_steps_per_s": done_steps / seconds, "render_s_per_frame": frame_s,
            "cpu_preset_shadow_map": shadow, "render_speedup_cpu_preset_shadow_map": default_s / small_s}


def render_s(env, frames: int) -> float:
    """Seconds per 64 px frame of `env`'s current state (the GL context is made before the clock starts)."""
    env.physics.render(64, 64, camera_id=0)
    t0 = time.perf_counter()
    for _ in range(frames):
        env.physics.render(64, 64, camera_id=0)
    return (time.perf_counter() - t0) / frames


# `--bf16 auto` times bfloat16 only where it is native: on a CPU with AVX512-BF16 or AMX-BF16, on CUDA, or (where the
# CPU's flags are unknown) where a dense layer runs at >= this fraction of its float32 speed. Emulated on an
# AVX2-only CPU, a paper-size bf16 update took 86 s against 5.9 s in float32 (2-core AMD EPYC, 2026-12-06), most of
# the bench's time; the dense layer there measured 0.09x idle and 0.38x beside a training run.
BF16_NATIVE_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
BF16_BENCH_MIN_DENSE_SPEEDUP = 0.5


def bf16_timed(choice: str, device: torch.device) -> tuple[bool, str | None]:
    """Whether the bench times bfloat16 (`choice`: auto, always, never), and why not when it does not."""
    if choice == "always":
        return True, None
    if choice == "never":
        return False, "skipped: --bf16 never"
    if choice != "auto":
        raise ValueError(f"unknown --bf16 '{choice}'; valid: auto, always, never")
    speedup = precision.bf16_speedup(str(device))
    flags = precision.cpu_flags() if device.type == "cpu" else []
    if flags:
        native = any(f in flags for f in BF16_NATIVE_CPU_FLAGS)
    else:
        native = speedup >= BF16_BENCH_MIN_DENSE_SPEEDUP
    if native:
        return True, None
    return False, (f"skipped: bfloat16 is not native here (instruction sets: {', '.join(flags) or 'unknown'}; a "
                   f"dense layer ran {speedup:.2f}x of its float32 speed); `auto` keeps float32. --bf16 always "
                   "times it anyway")


def run_bench(device: torch.device, quick: bool = False, repeats: int = 3, compiled: bool = False,
              episode: bool = True, bf16_choice: str = "auto", env: bool = True) -> dict:
    with_bf16, bf16_skipped = bf16_timed(bf16_choice, device)
    if quick:  # a seconds-long smoke version of the same measurements (tests, CI)
        sizes = dict(batch=4, length=8, candidates=64, iterations=2, horizon=4, top_k=8, env_steps=10)
    else:
        sizes = dict(batch=50, length=50, candidates=1000, iterations=10, horizon=12, top_k=100, env_steps=100)
    matmul_n = 512 if quick else 2048
    rate = matmul_rate(device, n=matmul_n)
    bf16 = torch.bfloat16
    update = bench_update(device, sizes["batch"], sizes["length"], repeats, matmul_n, bf16=with_bf16,
                          compiled=compiled)
    plan_args = (sizes["candidates"], sizes["iterations"], sizes["horizon"], sizes["top_k"])
    matmul, matmul_flop = matmul_fn(device, matmul_n, count=5)
    variants = [("", plan_fn(device, *plan_args))] + ([("bf16", plan_fn(device, *plan_args, dtype=bf16))]
                                                      if with_bf16 else [])
    first_call = {}
    if compiled:
        first_call = _compile_first(lambda dtype: plan_fn(device, *plan_args, dtype=dtype, compiled=True), "plan",
                                    with_bf16, variants)
    plan_s10, matmul_s, *variant_s = median_times(
        [plan_fn(device, *plan_args, beliefs=10), matmul] + [fn for _, fn in variants], max(repeats, 3), device)
    seconds = {name: t for (name, _), t in zip(variants, variant_s, strict=True)}
    plan_s = seconds.pop("")
    plan = {"plan_s": plan_s, "plan_s_10_beliefs": plan_s10, "ten_beliefs_over_one": plan_s10 / plan_s,
            "matmul_flop_per_s": matmul_flop / matmul_s}
    for name, t in seconds.items():  # bf16, compiled, compiled_bf16: plan_s_NAME and NAME_speedup
        plan |= {f"plan_s_{name}": t, f"{name}_speedup": plan_s / t}
    plan |= first_call
    flop = plan_flop(device, *plan_args)
    chosen = precision.name(precision.resolve("auto", device))  # one measurement serves both settings
    auto = {"update": chosen, "plan": chosen,
            "bf16_dense_speedup": precision.bf16_speedup(str(device)), "min_speedup": precision.AUTO_MIN_SPEEDUP,
            "bf16_timed": with_bf16} | ({"bf16_skipped": bf16_skipped} if bf16_skipped else {})
    envs = [bench_env(task, sizes["env_steps"]) for task in ("cartpole_swingup", "walker_walk")] if env else []
    episodes = []
    if episode and env:  # the episode needs the environments too
        episodes.append(bench_episode(device, "fp32", "fp32", quick))
        if "bf16" in (auto["update"], auto["plan"]):
            episodes.append(bench_episode(device, "auto", "auto", quick))
        if compiled:
            episodes.append(bench_episode(device, "auto", "auto", quick, compile_nets=True))
    import resource

    return {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_name(),
        "cpu_flags": precision.cpu_flags(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "retain_freed_memory": utils.RETAINING_FREED_MEMORY,
        "quick": quick,
        "repeats": repeats,
        "update": update,
        "plan": plan | {"plan_flop": flop, "plan_fraction_of_matmul_rate": flop / plan_s / plan["matmul_flop_per_s"],
                        **({"plan_fraction_of_matmul_rate_compiled": flop / plan["plan_s_compiled"]
                            / plan["matmul_flop_per_s"]} if compiled else {}),
                        "candidates": sizes["candidates"], "iterations": sizes["iterations"],
                        "horizon": sizes["horizon"], "top_k": sizes["top_k"]},
        "auto_precision": auto,
        "user_episode": episodes,
        "env": envs,
        "matmul_flop_per_s": rate,
        "update_fraction_of_matmul_rate": update["update_flop_per_s"] / update["matmul_flop_per_s"],
        # peak resident memory of this process (the paper-size update dominates it); Linux reports KiB
        "max_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,
        **_gpu_memory(device),
    }


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _gpu_memory(device: torch.device) -> dict:
    if device.type != "cuda":
        return {}
    return {"cuda_max_memory_allocated_gb": torch.cuda.max_memory_allocated(device) / 1e9}
