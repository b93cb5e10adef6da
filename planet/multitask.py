"""One agent for several tasks (paper §3, Figs. 6 and 7): a single world model and planner trained on the six tasks at
once, compared per task with the agents trained on one task each.

What the paper states ("one agent trained on all six tasks vs separate agents: collect one episode of each task every
C updates; action spaces padded; agent not told the task") and how it is built here:

- Action spaces padded (G: `control/wrappers.py` PadActions): the model acts in the largest action size of the tasks
  (6: cheetah and walker); :class:`PaddedEnv` passes a task's own first dimensions to its environment and ignores the
  rest. Episodes store the padded actions the agent chose, so one replay holds every task.
- Agent not told the task: the model sees pixels, actions and rewards only; nothing encodes the task.
- One episode of each task every C updates: a *round* is C updates (`train.updates_per_episode`) then one training
  episode per task, in the order of `task_list`. `train.episodes`, `train.seed_episodes` (random rounds), `eval.every`
  and `run.checkpoint_every` count rounds, i.e. episodes per task, so each task gets the data budget of its
  single-task agent and the model gets the same number of updates (P: C updates per collected round).
- Each task keeps its own action repeat (planet.tasks), so episodes have different lengths (e.g. 126 rows on cartpole,
  501 on walker). The replay copes as it is: chunks are drawn from one episode at a time, uniform over episodes and
  over start rows within the chosen one (planet/replay.py), so every task is sampled in proportion to its episodes.
- Training episode i of the run (global index, i = round x tasks + position) is seeded from (run seed, "train", i), as
  every training episode is (planet/rollouts.py), so a resume collects the same episodes.
- Evaluation uses the single-task protocol and seeds, per task: `eval.episodes` noise-free episodes of the 'eval'
  split at the same cadence (every `eval.every` rounds), the same initial states (run seed, "eval", m) and the same
  planner generator name as a single-task agent at the same number of episodes per task. The run logs
  `eval/TASK/return_mean` (...) per task and `eval/return_mean` as their mean over tasks; the final evaluation writes
  RUN/eval/TASK/openloop.png (and eval.gif) per task.

Where it lives (the least invasive layout for the report): the run is ONE run directory (config.yaml with task "all"
or "A+B", checkpoint, episodes, metrics.jsonl; the pipeline puts it at RESULTS/multitask/seedN). The report and DVC
read RESULTS/runs/VARIANT/TASK/seedN as one (variant, task, seed) result each, which a run of six tasks is not; so the
run publishes one *view* per task (:func:`write_views`, with `planet train --views DIR`): DIR/TASK/seedN holds that
task's evaluation curve (metrics.jsonl with the single-task keys), progress, summary, config and open-loop strip, in
exactly the layout of a single-task run, and `view.json` naming the run it is a view of. The report reads them as
variant `multitask` beside `planet` with no change to its reader. Views are derived from the run's own files and
rewritten whole, so they never disagree with the run after a resume.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from planet import rundir
from planet.config import Config, ConfigError
from planet.envs import PixelEnv
from planet.rollouts import EnvPool, collect_episode, evaluate, evaluation_metrics, make_env
from planet.tasks import task_list
from planet.tracking import read_metrics
from planet.train import Trainer
from planet.utils import atomic_write_text
from planet.video import write_eval_artifacts

__all__ = ["MultiTaskTrainer", "PaddedEnv", "TaskEnvPool", "task_config", "write_views"]

log = logging.getLogger(__name__)

VIEW_FILE = rundir.VIEW_FILE
VIEW_EVAL_KEYS = ("return_mean", "return_std", "return_min", "return_max", "episodes")


def task_config(config: Config, task: str) -> Config:
    """The config of one task of a multi-task run: the run's settings with that task (its own action repeat)."""
    return dataclasses.replace(config, task=task)


class PaddedEnv:
    """A :class:`PixelEnv` seen through actions padded to `action_dim` >= its own (G: PadActions): `step` passes the
    first `env.action_dim` dimensions and ignores the rest; everything else is the wrapped environment's."""

    def __init__(self, env: PixelEnv, action_dim: int) -> None:
        if action_dim < env.action_dim:
            raise ValueError(f"{env.task}: padded action size {action_dim} is below its own {env.action_dim}")
        self.env = env
        self.action_dim = int(action_dim)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        action = np.asarray(action)
        if action.shape != (self.action_dim,):
            raise ValueError(f"{self.env.task}: padded action must have shape ({self.action_dim},), got "
                             f"{action.shape}")
        return self.env.step(action[: self.env.action_dim])

    def __getattr__(self, name: str) -> Any:  # reset, state, obs_shape, max_agent_steps, action_repeat, close, ...
        return getattr(self.env, name)

    def __repr__(self) -> str:
        return f"PaddedEnv({self.env!r}, action_dim={self.action_dim})"


class TaskEnvPool(EnvPool):
    """The environments of one task of a multi-task run, padded to the run's action size (reused as `EnvPool`'s)."""

    def __init__(self, config: Config, action_dim: int, first: PixelEnv | None = None) -> None:
        super().__init__(config)
        self.action_dim = int(action_dim)
        if first is not None:  # the probe that measured the task's action size: no second 0.4 s build
            self.envs.append(PaddedEnv(first, self.action_dim))

    def get(self, n: int) -> list[PaddedEnv]:
        while len(self.envs) < n:
            self.envs.append(PaddedEnv(make_env(self.config), self.action_dim))
        return self.envs[:n]


class TaskPools(dict):
    """task -> TaskEnvPool, closed together (the trainer's `pool`)."""

    def close(self) -> None:
        for pool in self.values():
            pool.close()


class MultiTaskTrainer(Trainer):
    """One agent trained on several tasks (module docstring); `run()` starts or resumes it like `Trainer`.

    `views`: write the per-task views to VIEWS/TASK/seedN after every evaluation and at the end (`write_views`).
    """

    def __init__(self, config: Config, run_dir: Path, device: torch.device, progress: bool = True,
                 tags: dict | None = None, on_config_change: str = "error", views: Path | None = None):
        super().__init__(config, run_dir, device, None, progress, tags, on_config_change)
        self.tasks = task_list(config.task)
        if len(self.tasks) < 2:
            raise ConfigError(f"task {config.task!r} is one task; train it with `Trainer` (planet train)")
        self.task_configs = {task: task_config(config, task) for task in self.tasks}
        self.episodes_per_round = len(self.tasks)
        self.views = None if views is None else Path(views)

    def _build_envs(self) -> None:
        probes = {task: make_env(cfg) for task, cfg in self.task_configs.items()}
        shapes = {p.obs_shape for p in probes.values()}
        assert len(shapes) == 1, f"tasks render different frame shapes {shapes}"
        self.action_dim = max(p.action_dim for p in probes.values())
        self.obs_shape = shapes.pop()
        self.pool = TaskPools({t: TaskEnvPool(self.task_configs[t], self.action_dim, p) for t, p in probes.items()})
        # Every round adds one episode of each task: rows = rounds x sum over tasks of (agent steps + 1).
        self.replay_capacity = self.config.train.episodes * sum(p.max_agent_steps + 1 for p in probes.values())
        log.info("multi-task agent on %s: actions padded to %d dimensions", ", ".join(self.tasks), self.action_dim)

    def collect_round(self, policy: str) -> dict[str, float]:
        """One training episode of each task (global indices, seeded per index); `collect/return` is their mean."""
        returns = {}
        for task in self.tasks:
            env = self.pool[task].get(1)[0]
            returns[task] = collect_episode(self.task_configs[task], env, self.replay, self.counters.episodes, policy,
                                            self.model, self.device, self.progress)
            self.counters.episodes += 1
        return {"collect/return": float(np.mean(list(returns.values()))),
                **{f"collect/{task}/return": ret for task, ret in returns.items()}}

    def _evaluate_and_log(self, final: bool) -> dict[str, float]:
        """Evaluate on every task with the single-task protocol (module docstring); log per-task `eval/TASK/*`."""
        t0 = time.perf_counter()
        metrics: dict[str, float] = {}
        means = []
        for task, cfg in self.task_configs.items():
            returns, episodes = evaluate(self.model, cfg, self.device, cfg.eval.episodes, "eval",
                                         f"episode{self.rounds}", self.progress, self.pool[task])
            metrics.update({key.replace("eval/", f"eval/{task}/", 1): value
                            for key, value in evaluation_metrics(returns).items()})
            means.append(float(returns.mean()))
            if final:
                for path in write_eval_artifacts(self.model, episodes[0], cfg, self.device,
                                                 self.run_dir / rundir.EVAL_DIR / task):
                    self.tracker.log_artifact(path, f"eval/{task}")
        metrics.update({"eval/return_mean": float(np.mean(means)), "episodes": float(self.rounds),
                        "perf/eval_s": time.perf_counter() - t0})
        self.tracker.log_metrics(metrics, step=self.env_steps)
        if self.views is not None:
            write_views(self.run_dir, self.views)
        return metrics

    def run(self) -> dict:
        summary = super().run()
        if self.views is not None:  # also after a rerun of a complete run: views are cheap and idempotent
            write_views(self.run_dir, self.views)
        return summary


# ---- views


def _view_records(records: list[dict], task: str, episode_env_steps: int) -> list[dict]:
    """One task's lines of a multi-task metrics.jsonl, as a single-task run writes them: `collect/return` and the
    `eval/*` scalars under their single-task keys, `episodes` = episodes of this task, `step` = its env steps."""
    out = []
    for rec in records:
        episodes = rec.get("episodes")
        if episodes is None:
            continue
        line: dict[str, Any] = {"step": int(episodes) * episode_env_steps, "time": rec.get("time")}
        if f"collect/{task}/return" in rec:
            line["collect/return"] = rec[f"collect/{task}/return"]
        line.update({f"eval/{key}": rec[f"eval/{task}/{key}"] for key in VIEW_EVAL_KEYS
                     if f"eval/{task}/{key}" in rec})
        if len(line) > 2:
            out.append({**line, "episodes": episodes})
    return out


def write_views(run_dir: Path, views: Path) -> list[Path]:
    """Write VIEWS/TASK/seedN for every task of the multi-task run RUN (module docstring) and return their paths.

    Each holds: config.yaml (the run's settings with that task), metrics.jsonl (`_view_records`), progress.json and,
    once the run is complete, summary.json (counters per task and the task's final in-training evaluation), eval/
    (the task's open-loop strip and GIF of the final evaluation), view.json (the run it is a view of). Rewritten whole
    from the run's files: a view never disagrees with its run.
    """
    run_dir, views = Path(run_dir), Path(views)
    config = rundir.load_config(run_dir)
    tasks = task_list(config.task)
    steps = config.env.episode_env_steps
    metrics_path = run_dir / rundir.METRICS_FILE
    records = read_metrics(metrics_path) if metrics_path.exists() else []
    progress = rundir.progress(run_dir)
    summary = rundir.read_json(run_dir / rundir.SUMMARY_FILE)
    out = []
    for task in tasks:
        view = views / task / f"seed{config.seed}"
        view.mkdir(parents=True, exist_ok=True)
        rundir.save_config(view, task_config(config, task))
        lines = _view_records(records, task, steps)
        atomic_write_text(view / rundir.METRICS_FILE, "".join(json.dumps(line) + "\n" for line in lines))
        rounds = progress.get("episodes", 0) // len(tasks)
        rundir.write_progress(view, {"episodes": rounds, "updates": progress.get("updates", 0),
                                     "env_steps": rounds * steps})
        rundir.write_json(view / VIEW_FILE, {"view_of": str(run_dir.resolve()), "task": task, "tasks": tasks})
        _copy_eval(run_dir / rundir.EVAL_DIR / task, view / rundir.EVAL_DIR)
        if summary:
            rounds = summary["episodes"] // len(tasks)
            final = {f"eval/{key}": summary["final_eval"][f"eval/{task}/{key}"] for key in VIEW_EVAL_KEYS
                     if f"eval/{task}/{key}" in summary.get("final_eval", {})}
            rundir.write_summary(view, {
                **{k: summary[k] for k in ("seed", "preset", "model", "planner", "collect", "params_hash", "updates")
                   if k in summary},
                "task": task, "multitask": config.task, "episodes": rounds, "env_steps": rounds * steps,
                "final_eval": final, "view_of": str(run_dir.resolve()),
            })
        else:
            (view / rundir.SUMMARY_FILE).unlink(missing_ok=True)  # a view is complete only when its run is
        out.append(view)
    return out


def _copy_eval(src: Path, dest: Path) -> None:
    """Copy the task's final-evaluation artifacts (openloop.png, eval.gif) into the view, atomically per file."""
    if not src.is_dir():
        return
    dest.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_file() and not path.name.startswith("."):
            tmp = dest / f".tmp-{path.name}"
            shutil.copyfile(path, tmp)
            tmp.replace(dest / path.name)
