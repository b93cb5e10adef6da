"""The training loop: seed episodes, then C model updates and one collected episode, with evaluation, checkpoints
and tracking. Everything a run writes lives in its run directory, whose files planet/rundir/ names, reads and
writes (config, checkpoint, progress, final model, summary, tracker).

Step axis: ``env_steps`` counts environment steps after action repeat (1000 per episode) over training episodes.
The loop runs in rounds (C updates, then `collect_round`): one episode here, one of each task for the agent of
several tasks (planet/multitask.py, paper Figs. 6, 7), which reuses this loop through the hooks `_build_envs`,
`collect_round` and `_evaluate_and_log`.

Randomness: each component owns a generator derived from (run seed, name). Episodes are seeded per index
(planet/rollouts.py), so the only generators carried in checkpoints are the training one and the replay's.

Rooms: episodes and evaluation live in planet/rollouts.py, the run directory (its files, config check, archive,
checkpoint format, model, tracker) in planet/rundir/, the tracking files and MLflow mirror in planet/tracking/; this
module is the loop.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from planet import precision, resources, rundir
from planet.config import Config, ConfigError
from planet.models import preprocess
from planet.replay import Replay, load_episode
from planet.rollouts import EnvPool, collect_episode, evaluate, evaluation_metrics, seed_episode_files
from planet.utils import derive_seed, memory_gb, torch_generator
from planet.video import write_eval_artifacts

log = logging.getLogger(__name__)


@dataclass
class Counters:
    """What a checkpoint counts; env steps are derived (episodes x `env.episode_env_steps`)."""

    episodes: int = 0
    updates: int = 0


class Trainer:
    """One run. `Trainer(config, run_dir).run()` starts it or resumes it from its checkpoint."""

    def __init__(self, config: Config, run_dir: Path, device: torch.device, init_episodes: Path | None = None,
                 progress: bool = True, tags: dict | None = None, on_config_change: str = "error"):
        self.config = config
        self.run_dir = Path(run_dir)
        self.device = device
        self.init_episodes = init_episodes
        self.progress = progress
        self.extra_tags = tags or {}
        self.on_config_change = on_config_change
        self.counters = Counters()

    # ---- setup

    def _setup(self) -> None:
        cfg = self.config
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        if self.device.type == "cuda":
            cuda_defaults(cfg.compute.tf32)
        self._build_envs()
        torch.manual_seed(derive_seed(cfg.seed, "init"))  # parameter initialisation only
        self.model = rundir.build_model(cfg, self.device, self.action_dim)
        if cfg.compute.compile:
            self.model.compile_update()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.learning_rate, eps=cfg.train.adam_eps)
        warmup = cfg.train.warmup_updates
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.train_gen = torch_generator(cfg.seed, "train", self.device)
        self.update_dtype = precision.resolve(cfg.compute.update_precision, self.device)
        chosen = {"update_precision": precision.name(self.update_dtype),
                  "plan_precision": precision.name(precision.resolve(cfg.compute.plan_precision, self.device))}
        # `auto` decides on each machine a run lives on: a run resumed elsewhere may change precision, and says so
        history = {f"{key}_history": rundir.tag_history(self.run_dir, f"{key}_history", key, value)
                   for key, value in chosen.items() if getattr(cfg.compute, key) == "auto"}
        self.replay = Replay(
            self.run_dir / rundir.EPISODES_DIR, self.obs_shape, self.action_dim,
            capacity_steps=self.replay_capacity, seed=derive_seed(cfg.seed, "replay"),
        )
        tags = {
            "task": cfg.task, "seed": str(cfg.seed), "agent_preset": cfg.preset, "model": cfg.model.kind,
            "planner": cfg.planner.kind, "collect": cfg.collect.policy, "params_hash": cfg.digest(),
            "device": str(self.device), **chosen, **history, **self.extra_tags,
        }
        self.tracker = rundir.tracker(self.run_dir, cfg, tags=tags, writer=True)

    def _build_envs(self) -> None:
        """The environments (`self.pool`), the model's action size and frame shape, and the replay's capacity in rows
        (planet/multitask.py builds those of several tasks)."""
        self.pool = EnvPool(self.config)
        probe = self.pool.get(1)[0]
        self.action_dim, self.obs_shape = probe.action_dim, probe.obs_shape
        self.replay_capacity = self.config.train.episodes * (probe.max_agent_steps + 1)

    # ---- checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / rundir.CHECKPOINT_FILE

    def save_checkpoint(self) -> None:
        state = {
            "config_digest": self.config.digest(),
            "device_type": self.device.type,
            "counters": vars(self.counters).copy(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "train_gen": self.train_gen.get_state(),
            "replay": self.replay.state_dict(),
            "metrics_offset": self.tracker.metrics_offset(),
        }
        rundir.save_checkpoint(self.run_dir, state, {**vars(self.counters), "env_steps": self.env_steps})

    def load_checkpoint(self) -> bool:
        state = rundir.read_checkpoint(self.run_dir)  # a damaged or unreadable one: one line saying what to do
        if state is None:
            # A run killed before its first checkpoint can have left episode files (and metrics lines) behind;
            # the replay reloaded them, so collecting episode 0 again would fail on the index. Start from scratch:
            # they are collected again identically (seeded per index).
            self.replay.truncate(0)
            self.tracker.truncate_metrics(0)
            return False
        saved_on = state.get("device_type", "cpu")
        if saved_on != self.device.type:
            raise ConfigError(
                f"{self.run_dir} was trained on {saved_on} and this resume runs on {self.device.type}; CPU and CUDA "
                f"random generators differ, so resume it with --device {saved_on} (or start a new --out directory)"
            )
        counters = dict(state["counters"])
        counters.pop("env_steps", None)  # derived (episodes x episode length); stored by checkpoints before 2026-12
        self.counters = Counters(**counters)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.train_gen.set_state(state["train_gen"])
        # Episodes written after this checkpoint are dropped and collected again, identically (seeded per index).
        self.replay.truncate(self.counters.episodes)
        self.replay.load_state_dict(state["replay"])
        self.tracker.truncate_metrics(state["metrics_offset"])
        self._warn_missing_episodes()
        return True

    def _warn_missing_episodes(self) -> None:
        """Say so when episode files the checkpoint counted are gone (e.g. a corrupt one deleted as advised):
        the run goes on with a smaller replay, so it no longer equals an uninterrupted run."""
        missing = sorted(set(range(self.counters.episodes)) - set(self.replay.episode_indices))
        if missing:
            log.warning(
                "%d of the %d episodes this run collected are missing from %s (indices %s; deleted?): training "
                "resumes with a replay of %d episodes, so from here on it differs from an uninterrupted run",
                len(missing), self.counters.episodes, self.replay.directory, missing[:20],
                len(self.replay.episode_indices),
            )
            self.tracker.set_tags({"replay_missing_episodes": ",".join(map(str, missing))})

    # ---- steps

    def update(self) -> dict[str, torch.Tensor]:
        cfg = self.config
        batch = self.replay.sample(cfg.train.batch_size, cfg.train.chunk_length)
        dev = self.device
        pin = dev.type == "cuda"  # page-locked host memory, so the copies below overlap the GPU's work

        def to_device(x: np.ndarray) -> torch.Tensor:
            t = torch.as_tensor(x)
            return (t.pin_memory() if pin else t).to(dev, non_blocking=True)

        image = preprocess(to_device(batch["obs"]), cfg.env.bit_depth, self.train_gen)
        action = to_device(batch["action"])
        reward = to_device(batch["reward"])
        with precision.autocast(self.update_dtype, dev):
            loss, metrics = self.model.loss(image, action, reward, cfg.loss, self.train_gen)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.train.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.counters.updates += 1
        return metrics

    episodes_per_round = 1
    """Training episodes collected per round (C updates, then one episode of each task): 1 here; the multi-task agent
    (planet/multitask.py) collects one per task. `train.episodes`, `train.seed_episodes`, `eval.every` and
    `run.checkpoint_every` count rounds, i.e. episodes per task."""

    @property
    def rounds(self) -> int:
        """Collection rounds so far (episodes per task)."""
        return self.counters.episodes // self.episodes_per_round

    def collect_round(self, policy: str) -> dict[str, float]:
        """Collect one round of training episodes; returns its `collect/*` scalars (`collect/return` at least)."""
        return {"collect/return": self.collect(self.counters.episodes, policy)}

    def collect(self, index: int, policy: str) -> float:
        env = self.pool.get(1)[0]
        ret = collect_episode(self.config, env, self.replay, index, policy, self.model, self.device, self.progress)
        self.counters.episodes += 1
        return ret

    @property
    def env_steps(self) -> int:
        """The step axis: environment steps of the training episodes so far (after action repeat)."""
        return self.counters.episodes * self.config.env.episode_env_steps

    def _import_seed_episodes(self, files: list[Path]) -> None:
        """Take seed episodes collected by `planet collect` (checked by `rollouts.seed_episode_files`) instead of
        re-collecting them."""
        for path in files:
            episode, meta = load_episode(path)
            self.replay.add(episode, meta)
            self.counters.episodes += 1
            # The same line the seed-episode loop logs, so metrics.jsonl equals that of a run that collected them.
            ret = float(episode["reward"].sum())  # as collect_episode computes it
            self.tracker.log_metrics({"collect/return": ret, "episodes": float(self.counters.episodes)},
                                     step=self.env_steps)

    def _evaluate_and_log(self, final: bool) -> dict[str, float]:
        cfg = self.config
        t0 = time.perf_counter()
        returns, episodes = evaluate(self.model, cfg, self.device, cfg.eval.episodes, "eval",
                                     f"episode{self.counters.episodes}", self.progress, self.pool)
        metrics = {**evaluation_metrics(returns), "episodes": float(self.counters.episodes),
                   "perf/eval_s": time.perf_counter() - t0}
        self.tracker.log_metrics(metrics, step=self.env_steps)
        if final:
            for path in write_eval_artifacts(self.model, episodes[0], cfg, self.device, self.run_dir / rundir.EVAL_DIR):
                self.tracker.log_artifact(path, "eval")
        return metrics

    # ---- main loop

    def run(self) -> dict:
        seed_files = (seed_episode_files(self.config, self.init_episodes)
                      if self.init_episodes and not self.checkpoint_path.exists() else [])
        # Before anything is written: a run that cannot fit this machine's memory or its directory's disk is refused in
        # one line, instead of failing at its replay's allocation or late in training (planet/resources.py).
        resources.check_run(self.config, self.run_dir)
        cfg = self.config
        with rundir.lock(self.run_dir, f"planet train --task {cfg.task} --seed {cfg.seed}"):  # one writer per run
            rundir.claim(self.run_dir, self.config, self.on_config_change)
            if (summary := rundir.finished(self.run_dir)) is not None:
                return summary
            self._setup()
            with self.tracker, contextlib.closing(self.pool):
                resumed = self.load_checkpoint()
                if resumed:
                    log.info("resumed %s at episode %d", self.run_dir, self.counters.episodes)
                return self._loop(seed_files)

    def _loop(self, seed_files: list[Path]) -> dict:
        cfg = self.config
        c = self.counters
        start_wall = time.perf_counter()
        bar = tqdm(total=cfg.train.episodes, initial=self.rounds, desc=f"{cfg.task} seed {cfg.seed}", unit="ep",
                   disable=not self.progress)
        if c.episodes == 0 and seed_files:
            self._import_seed_episodes(seed_files)
            self.save_checkpoint()  # a resume must not import them twice
            bar.update(c.episodes)
        while self.rounds < cfg.train.seed_episodes:
            collected = self.collect_round("random")
            self.tracker.log_metrics({**collected, "episodes": float(self.rounds)}, step=self.env_steps)
            self.save_checkpoint()
            bar.update(1)
        last_eval: dict[str, float] = {}
        while self.rounds < cfg.train.episodes:
            t0 = time.perf_counter()
            metrics = [self.update() for _ in range(cfg.train.updates_per_episode)]
            update_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            collected = self.collect_round(cfg.collect.policy)
            collect_s = time.perf_counter() - t1
            logged = {**collected, "episodes": float(self.rounds), "updates": float(c.updates),
                      "perf/collect_s": collect_s,
                      "perf/env_steps_per_s": self.episodes_per_round * cfg.env.episode_env_steps / collect_s,
                      # memory at scale: the replay's frames vs what the process holds (MLflow plots both)
                      "perf/replay_obs_gb": self.replay.obs_bytes / 1e9,
                      **{f"perf/{k}": v for k, v in memory_gb().items()}}
            if metrics:
                logged.update({f"train/{k}": float(torch.stack([m[k] for m in metrics]).float().mean())
                               for k in metrics[0]})
                logged["train/lr"] = self.scheduler.get_last_lr()[0]
                logged["perf/updates_per_s"] = len(metrics) / update_s
            self.tracker.log_metrics(logged, step=self.env_steps)
            final = self.rounds == cfg.train.episodes
            if final or (cfg.eval.every and self.rounds % cfg.eval.every == 0):
                last_eval = self._evaluate_and_log(final)
            if final or self.rounds % cfg.run.checkpoint_every == 0:
                self.save_checkpoint()
            bar.update(1)
            bar.set_postfix(ret=f"{collected['collect/return']:.0f}",
                            eval=f"{last_eval.get('eval/return_mean', float('nan')):.0f}")
        bar.close()
        if not last_eval:  # e.g. train.episodes == train.seed_episodes
            last_eval = self._evaluate_and_log(True)
        return self._finish(last_eval, time.perf_counter() - start_wall)

    def _finish(self, last_eval: dict[str, float], wall_s: float) -> dict:
        self.tracker.log_artifact(rundir.save_model(self.run_dir, self.model), "model")
        self.tracker.log_artifact(self.run_dir / rundir.CONFIG_FILE)
        summary = {
            "task": self.config.task, "seed": self.config.seed, "preset": self.config.preset,
            "model": self.config.model.kind, "planner": self.config.planner.kind,
            "collect": self.config.collect.policy, "params_hash": self.config.digest(),
            "episodes": self.counters.episodes, "env_steps": self.env_steps,
            "updates": self.counters.updates, "final_eval": last_eval, "wall_s_last_session": wall_s,
        }
        rundir.write_summary(self.run_dir, summary)
        return summary


def cuda_defaults(tf32: bool) -> None:
    """What a CUDA user expects: TF32 tensor-core matmuls and convolutions (`compute.tf32`; off = strict float32)
    and cuDNN's autotuner (the update's shapes never change within a run)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
