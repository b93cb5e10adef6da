"""Baselines run by the same pipeline as PlaNet: model-free SAC from pixels and CEM with the true simulator.

Both write a run directory that `planet report` reads exactly as it reads PlaNet's (``config.yaml``,
``metrics.jsonl`` with ``eval/*`` lines, ``summary.json``, ``evaluation.json`` on the same 'test' split seeds as
`planet evaluate`), so Table 1 and the curves get their rows without special cases.

Settings: ``params/baselines.yaml`` has one block per agent preset (``paper``, ``cpu``, ``debug``); the
environment, the episode budget and the planner sizes (H, I, J, K) come from the agent preset itself
(``params/presets.yaml``), so the baselines always match the PlaNet runs they are compared with. Dotted overrides
(``sac.batch_size=128``) come last and are validated like the agent's.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from planet import config as config_lib
from planet import rundir
from planet.config import ConfigError
from planet.envs import episode_seed
from planet.utils import PlanetError

log = logging.getLogger(__name__)

KINDS = ("sac", "simulator")
PLANNER_SIZES = ("horizon", "iterations", "candidates", "top_k")
"""The CEM sizes H, I, J, K (P Table 1: 12, 10, 1000, 100) that `SimulatorConfig` may override."""


@dataclass(frozen=True)
class SacConfig:
    """Stable-Baselines3 SAC from pixels (planet/sac.py). Defaults follow SAC-AE / DrQ for DMC where SB3 allows."""

    env_steps: int | None = None
    """Training budget in env (control) steps; null = the agent preset's train.episodes x env.episode_env_steps."""
    frame_stack: int = 3
    """Frames stacked on the channel axis (SAC-AE/DrQ: 3)."""
    augment: Literal["shift", "none"] = "shift"
    """shift = random-shift augmentation (RAD / DrQ K=1 M=1); none = plain pixel SAC."""
    shift_pad: int = 4
    """Padding of the random shift in pixels (DrQ: 4 at 84x84)."""
    buffer_size: int = 100_000
    """Replay capacity in transitions (uint8 frames: ~74 KB each with next observations at frame_stack 3)."""
    learning_starts: int = 1000
    """Agent steps of uniform random actions before the first update (DrQ: 1000)."""
    batch_size: int = 128
    """Transitions per gradient step (SAC-AE: 128)."""
    learning_rate: float = 1e-3
    """Adam learning rate of actor, critic and temperature (SAC-AE/DrQ for DMC: 1e-3)."""
    gamma: float = 0.99
    tau: float = 0.01
    """Polyak rate of the target critics (SAC-AE: 0.01)."""
    gradient_steps: int = 1
    """Gradient steps per agent step."""
    features_dim: int = 50
    """Encoder output size (SAC-AE: 50)."""
    eval_every: int = 10
    """Evaluate after every this many training episodes (PlaNet's eval.every counts the same way)."""


@dataclass(frozen=True)
class SimulatorConfig:
    """CEM with the true simulator (planet/simplan.py); H, I, J, K are the agent preset's planner unless overridden
    here (the CEM hyperparameter grid of paper Fig. 12, planet/cem_grid.py, sets all four)."""

    workers: int = 0
    """Processes stepping simulator copies; 0 = one per CPU core."""
    episodes: int | None = None
    """Test episodes; null = the agent preset's eval.episodes. A control step with reward costs ~0.1 ms on a CPU
    core, so one paper-size plan (J x I x H x R control steps) is minutes: this bounds the cost on small machines."""
    horizon: int | None = None
    """Planning horizon H; null = the agent preset's planner.horizon."""
    iterations: int | None = None
    """CEM iterations I; null = the agent preset's planner.iterations."""
    candidates: int | None = None
    """Candidate sequences J per iteration; null = the agent preset's planner.candidates."""
    top_k: int | None = None
    """Candidates K the belief is refit to; null = the agent preset's planner.top_k."""


@dataclass(frozen=True)
class BaselineSettings:
    sac: SacConfig = field(default_factory=SacConfig)
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)


def resolve(task: str, preset: str, seed: int, overrides: list[str] | None = None,
            baselines_file: Path | None = None) -> tuple[config_lib.Config, BaselineSettings]:
    """The agent config of (task, preset, seed) and the validated baseline settings of that preset."""
    agent = config_lib.resolve(task, preset, seed)
    block = config_lib.preset_block(baselines_file or config_lib.params_dir() / "baselines.yaml", preset, "baselines")
    settings = config_lib.build_settings(BaselineSettings, block, overrides)
    sac = settings.sac
    for key in ("frame_stack", "buffer_size", "batch_size", "gradient_steps", "features_dim"):
        if getattr(sac, key) < 1:
            raise ConfigError(f"sac.{key} must be >= 1")
    if sac.env_steps is not None and sac.env_steps < 1:
        raise ConfigError("sac.env_steps must be >= 1 (or null for the agent preset's budget)")
    if settings.simulator.workers < 0:
        raise ConfigError("simulator.workers must be >= 0")
    if settings.simulator.episodes is not None and settings.simulator.episodes < 1:
        raise ConfigError("simulator.episodes must be >= 1 (or null for the agent preset's eval.episodes)")
    for key in PLANNER_SIZES:
        value = getattr(settings.simulator, key)
        if value is not None and value < 1:
            raise ConfigError(f"simulator.{key} must be >= 1 (or null for the agent preset's planner.{key})")
    sizes = simulator_planner(agent, settings.simulator)
    if sizes["top_k"] > sizes["candidates"]:
        raise ConfigError(f"simulator planner: top_k={sizes['top_k']} must be <= candidates={sizes['candidates']} "
                          "(simulator.top_k / simulator.candidates, else the agent preset's planner)")
    return agent, settings


def simulator_planner(agent: config_lib.Config, simulator: SimulatorConfig) -> dict[str, int]:
    """The CEM sizes {horizon, iterations, candidates, top_k} the simulator plans with: the agent preset's planner,
    with the sizes `simulator` sets."""
    return {key: getattr(agent.planner, key) if getattr(simulator, key) is None else getattr(simulator, key)
            for key in PLANNER_SIZES}


def planner_label(sizes: dict[str, int]) -> str:
    """A planner's sizes as a name, e.g. ``H12-I10-J1000-K100`` (run names, CEM grid directories)."""
    return "H{horizon}-I{iterations}-J{candidates}-K{top_k}".format(**sizes)


def budget_env_steps(agent: config_lib.Config, sac: SacConfig) -> int:
    return sac.env_steps or agent.train.episodes * agent.env.episode_env_steps


def _run_config(kind: str, agent: config_lib.Config, settings: BaselineSettings) -> dict[str, Any]:
    """What the run directory's config.yaml records (the report reads train.episodes and env.*)."""
    out: dict[str, Any] = {"baseline": kind, "task": agent.task, "seed": agent.seed, "preset": agent.preset,
                           "env": dataclasses.asdict(agent.env), "eval": {"episodes": agent.eval.episodes}}
    if kind == "sac":
        budget = budget_env_steps(agent, settings.sac)
        out["train"] = {"episodes": budget // agent.env.episode_env_steps, "env_steps": budget}
        out["sac"] = dataclasses.asdict(settings.sac)
    else:
        out["train"] = {"episodes": 0}
        # The sizes it plans with, in `planner` (a run without simulator.* sizes records what it always recorded).
        out["planner"] = {**dataclasses.asdict(agent.planner), **simulator_planner(agent, settings.simulator)}
        out["simulator"] = {key: value for key, value in dataclasses.asdict(settings.simulator).items()
                            if key not in PLANNER_SIZES}
    return out


def _tracker(kind: str, run_dir: Path, agent: config_lib.Config, run_cfg: dict, tags: dict[str, str],
             experiment: str | None, name_suffix: str = ""):
    """The run's tracker (`rundir.tracker`): named by its variant (the pipeline's variant tag, else the baseline's
    kind), task and seed, then `name_suffix`, which tells apart runs of one variant (the CEM grid's planner sizes)."""
    all_tags = {"task": run_cfg["task"], "seed": run_cfg["seed"], "agent_preset": run_cfg["preset"], "variant": kind,
                "baseline": kind, "params_hash": config_lib.digest(run_cfg), **tags}
    return rundir.tracker(run_dir, agent, tags=all_tags, params=run_cfg, experiment=experiment,
                          name_suffix=name_suffix, writer=True)


def _result(run_cfg: dict, returns: list[float], split: str, **extra: Any) -> dict[str, Any]:
    arr = np.asarray(returns, dtype=np.float64)
    return {"task": run_cfg["task"], "seed": run_cfg["seed"], "preset": run_cfg["preset"],
            "baseline": run_cfg["baseline"], "split": split, "episodes": len(returns),
            "returns": [float(r) for r in arr], "return_mean": float(arr.mean()), "return_std": float(arr.std()),
            "complete": True, **extra}


# --------------------------------------------------------------------------------------------------------------
# SAC.


@rundir.locked("planet baseline sac")
def train_sac(task: str, preset: str, seed: int, run_dir: Path, overrides: list[str] | None = None,
              device: str = "auto", tags: dict[str, str] | None = None, progress: bool = False,
              experiment: str | None = None) -> dict:
    """Train SAC on the agent preset's env-step budget, evaluating every `sac.eval_every` episodes; then evaluate
    noise-free (the policy's mean action) on the 'test' split seeds. Writes the run directory; returns the summary.

    An interrupted SAC run starts over (its replay buffer is not checkpointed): `summary.json` and
    `evaluation.json` are written only at the end, so a half-finished run is never mistaken for a finished one;
    a finished run with the same settings is left as it is.
    """
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    from planet.sac import PixelEncoder, PixelGymEnv

    agent, settings = resolve(task, preset, seed, overrides)
    cfg = settings.sac
    run_dir = Path(run_dir)
    run_cfg = _run_config("sac", agent, settings)
    rundir.claim(run_dir, run_cfg, on_change="archive")  # another config's run is moved to .replaced/
    if (summary := rundir.finished(run_dir)) is not None:
        return summary
    for stale in (rundir.EVALUATION_FILE, rundir.METRICS_FILE):
        (run_dir / stale).unlink(missing_ok=True)  # an interrupted run starts over (see above): a fresh curve
    budget = budget_env_steps(agent, cfg)
    env, eval_env = (PixelGymEnv(task, seed, cfg.frame_stack, agent.env.action_repeat, agent.env.episode_env_steps,
                                 train_seeds=train) for train in (True, False))
    repeat = env.env.action_repeat
    steps_per_episode = env.env.max_agent_steps
    episodes_total = budget // agent.env.episode_env_steps
    torch.manual_seed(seed)
    model = SAC("CnnPolicy", env, learning_rate=cfg.learning_rate, buffer_size=min(cfg.buffer_size, budget // repeat),
                learning_starts=cfg.learning_starts, batch_size=cfg.batch_size, tau=cfg.tau, gamma=cfg.gamma,
                train_freq=1, gradient_steps=cfg.gradient_steps, seed=seed, device=device,
                policy_kwargs={"features_extractor_class": PixelEncoder, "normalize_images": True,
                               "features_extractor_kwargs": {"features_dim": cfg.features_dim,
                                                             "augment": cfg.augment, "shift_pad": cfg.shift_pad}})

    def evaluate(split: str, episodes: int) -> list[float]:
        returns = []
        for m in range(episodes):
            obs, _ = eval_env.reset(seed=episode_seed(seed, split, m))
            total, done = 0.0, False
            while not done:
                action, _ = model.predict(obs, deterministic=True)
                obs, reward, _, done, _ = eval_env.step(action)
                total += reward
            returns.append(total)
        return returns

    tracker = _tracker("sac", run_dir, agent, run_cfg, tags or {}, experiment)
    state = {"episodes": 0, "return": 0.0, "last_eval": {}}
    start = time.perf_counter()

    def log_eval(env_steps: int) -> None:
        returns = evaluate("eval", agent.eval.episodes)
        metrics = {"eval/return_mean": float(np.mean(returns)), "eval/return_std": float(np.std(returns)),
                   "eval/episodes": float(len(returns)), "episodes": float(state["episodes"]),
                   "perf/wall_s": time.perf_counter() - start}
        tracker.log_metrics(metrics, step=env_steps)
        state["last_eval"] = metrics

    class Episodes(BaseCallback):
        """Training-episode returns and the evaluation schedule (the vectorised env has one environment)."""

        def _on_step(self) -> bool:
            state["return"] += float(self.locals["rewards"][0])
            if self.locals["dones"][0]:
                state["episodes"] += 1
                env_steps = self.num_timesteps * repeat
                tracker.log_metrics({"collect/return": state["return"], "episodes": float(state["episodes"])},
                                    step=env_steps)
                state["return"] = 0.0
                if cfg.eval_every and state["episodes"] % cfg.eval_every == 0:
                    log_eval(env_steps)
            return True

    with tracker:
        model.learn(total_timesteps=episodes_total * steps_per_episode, callback=Episodes(),
                    progress_bar=progress)
        env_steps = model.num_timesteps * repeat
        if state["last_eval"].get("episodes") != float(state["episodes"]):
            log_eval(env_steps)
        test = evaluate("test", agent.eval.episodes)
        evaluation = _result(run_cfg, test, "test", train_episodes=state["episodes"], env_steps=env_steps)
        own = rundir.write_result(run_dir, rundir.EVALUATION_FILE, evaluation)
        tracker.log_metrics({"test/return_mean": evaluation["return_mean"],
                             "test/return_std": evaluation["return_std"]}, step=env_steps)
        summary = {"task": task, "seed": seed, "preset": preset, "baseline": "sac", "augment": cfg.augment,
                   "episodes": state["episodes"], "env_steps": env_steps, "updates": int(model._n_updates),
                   "final_eval": {k: v for k, v in state["last_eval"].items() if k.startswith("eval/")},
                   "wall_s": time.perf_counter() - start}
        rundir.write_summary(run_dir, summary)
        tracker.log_artifact(own)
    env.close()
    eval_env.close()
    return summary


# --------------------------------------------------------------------------------------------------------------
# CEM + true simulator.


@rundir.locked("planet baseline simulator")
def run_simulator(task: str, preset: str, seed: int, run_dir: Path, overrides: list[str] | None = None,
                  tags: dict[str, str] | None = None, progress: bool = False, experiment: str | None = None) -> dict:
    """CEM planning with the true simulator on the 'test' split seeds (no training: the paper's upper bound).

    The planner is the agent preset's (H, I, J, K), except for the sizes ``simulator.horizon|iterations|candidates|
    top_k`` set (the CEM grid of paper Fig. 12); such a run's MLflow name ends in its sizes (``-H8-I10-J1000-K100``).
    Resumable: each finished episode is recorded in ``episodes.json`` and skipped by a rerun.
    """
    from planet.envs import PixelEnv
    from planet.simplan import SimulatorPlanner, run_episode

    agent, settings = resolve(task, preset, seed, overrides)
    run_dir = Path(run_dir)
    run_cfg = _run_config("simulator", agent, settings)

    def same_episodes(cfg: dict) -> dict:  # what the episodes depend on: not how many are asked for
        return {**cfg, "simulator": {k: v for k, v in cfg["simulator"].items() if k != "episodes"}}

    # Another config's run is moved to .replaced/; asking for more (or fewer) episodes continues this one.
    before = rundir.claim(run_dir, run_cfg, on_change="archive", identity=same_episodes)
    if before is not None and before != run_cfg:
        (run_dir / rundir.SUMMARY_FILE).unlink(missing_ok=True)
    if (summary := rundir.finished(run_dir)) is not None:
        return summary
    done_path = run_dir / rundir.SIMULATOR_EPISODES_FILE
    done: list[dict] = _read_episodes(done_path)

    if done and same_episodes(done[0].get("config") or {"simulator": {}}) != same_episodes(run_cfg):
        log.warning("%s: settings changed; starting the episodes over", run_dir)
        done = []
    sizes = simulator_planner(agent, settings.simulator)
    overridden = any(getattr(settings.simulator, key) is not None for key in PLANNER_SIZES)
    workers = settings.simulator.workers or os.cpu_count() or 1
    tracker = _tracker("simulator", run_dir, agent, run_cfg, tags or {}, experiment,
                       f"-{planner_label(sizes)}" if overridden else "")
    with tracker, PixelEnv(task, seed, action_repeat=agent.env.action_repeat,
                           episode_env_steps=agent.env.episode_env_steps) as env, \
            SimulatorPlanner(task, seed, **sizes, workers=workers, action_repeat=agent.env.action_repeat,
                             episode_env_steps=agent.env.episode_env_steps) as planner:
        for m in range(len(done), settings.simulator.episodes or agent.eval.episodes):
            result = run_episode(env, planner, episode_seed(seed, "test", m))
            done.append({"config": run_cfg, **result})
            rundir.write_json(done_path, done)
            tracker.log_metrics({"test/episode_return": result["return"], "perf/episode_s": result["seconds"]},
                                step=m)
            if progress:
                print(f"{task} simulator CEM episode {m}: return {result['return']:.1f} ({result['seconds']:.0f} s)")
        returns = [d["return"] for d in done]
        evaluation = _result(run_cfg, returns, "test", train_episodes=0, env_steps=0,
                             seconds_per_episode=float(np.mean([d["seconds"] for d in done])), workers=workers,
                             planner=sizes)
        own = rundir.write_result(run_dir, rundir.EVALUATION_FILE, evaluation)
        summary = {"task": task, "seed": seed, "preset": preset, "baseline": "simulator", "episodes": 0,
                   "env_steps": 0, "final_eval": {"eval/return_mean": evaluation["return_mean"],
                                                  "eval/return_std": evaluation["return_std"]},
                   "seconds_per_episode": evaluation["seconds_per_episode"], "workers": workers}
        tracker.log_metrics({"test/return_mean": evaluation["return_mean"],
                             "test/return_std": evaluation["return_std"]}, step=len(done))
        rundir.write_summary(run_dir, summary)
        tracker.log_artifact(own)
    return summary


def _read_episodes(path: Path) -> list[dict]:
    """The simulator baseline's finished episodes (RUN/episodes.json); [] before the first one."""
    try:
        done = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as exc:
        raise PlanetError(f"{path} cannot be read ({exc}) - delete it to play the episodes again") from None
    return done if isinstance(done, list) else []
