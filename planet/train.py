"""The training loop: seed episodes, then C model updates and one collected episode, with evaluation, checkpoints
and tracking. Everything a run writes lives in its run directory::

    RUN/config.yaml        resolved config (a rerun with a different config is refused)
    RUN/episodes/          training episodes, one .npz each (uint8 frames), written atomically
    RUN/checkpoint.pt      latest resumable state (model, optimiser, generators, counters), written atomically
    RUN/progress.json      counters of that checkpoint, for humans and tools
    RUN/metrics.jsonl      every logged scalar, one JSON line per log call; the source of truth
    RUN/params.json        flattened params; RUN/mlflow_run.json the mirrored MLflow run
    RUN/eval/              eval.gif, openloop.png of the final evaluation
    RUN/model.pt           final model weights (written when the run completes)
    RUN/summary.json       written last: the run is complete

Step axis: ``env_steps`` counts environment steps after action repeat (1000 per episode) over training episodes.

Randomness: each component owns a generator derived from (run seed, name). Episodes are seeded from (run seed,
split, index) for the environment *and* the acting agent, so a resumed run collects exactly the episodes an
uninterrupted run would; the only generators carried in checkpoints are the training one and the replay's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from planet import config as config_lib
from planet import precision
from planet.agents import MPCAgent, RandomAgent
from planet.config import Config, ConfigError
from planet.envs import PixelEnv, episode_seed
from planet.models import WorldModel, preprocess
from planet.replay import Replay, SeedEpisodesError, load_episode
from planet.tracking import RUN_FILE, Tracker, mark_replaced
from planet.utils import (
    PlanetError,
    atomic_save,
    atomic_write_text,
    derive_seed,
    numpy_generator,
    torch_generator,
)

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


# --------------------------------------------------------------------------------------------------------------
# Episodes.


def make_env(config: Config, seed: int = 0) -> PixelEnv:
    return PixelEnv(config.task, seed, action_repeat=config.env.action_repeat, image_size=config.env.image_size,
                    episode_env_steps=config.env.episode_env_steps)


class EnvPool:
    """Environments of one config, built once and reused (building one costs ~0.4 s, an episode's reset ~1 ms).

    Every episode is reset with its own seed (run seed, split, index), so reuse never changes what is collected.
    """

    def __init__(self, config: Config):
        self.config = config
        self.envs: list[PixelEnv] = []

    def get(self, n: int) -> list[PixelEnv]:
        while len(self.envs) < n:
            self.envs.append(make_env(self.config))
        return self.envs[:n]

    def close(self) -> None:
        for env in self.envs:
            env.close()
        self.envs.clear()


def run_episodes(envs: list[PixelEnv], seeds: list[int], agent, explore: bool,
                 desc: str | None = None) -> list[dict[str, np.ndarray]]:
    """Run one episode in each env in lockstep (equal lengths), acting for all of them with one `act` call.

    Returns episodes in the replay's layout: row t = (o_t, a_{t-1}, r_t), T+1 rows, row 0 = reset.
    """
    n = len(envs)
    steps = envs[0].max_agent_steps
    assert all(e.max_agent_steps == steps for e in envs), "lockstep envs need equal episode lengths"
    action_dim = envs[0].action_dim
    obs = np.empty((n, steps + 1, *envs[0].obs_shape), np.uint8)
    actions = np.zeros((n, steps + 1, action_dim), np.float32)
    rewards = np.zeros((n, steps + 1), np.float32)
    for i, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
        obs[i, 0] = env.reset(seed=seed)
    agent.reset(n)
    for t in tqdm(range(1, steps + 1), desc=desc, leave=False, disable=desc is None):
        action = agent.act(obs[:, t - 1], explore)
        for i, env in enumerate(envs):
            obs[i, t], rewards[i, t], _ = env.step(action[i])
        actions[:, t] = action
    return [{"obs": obs[i], "action": actions[i], "reward": rewards[i]} for i in range(n)]


def evaluate(model: WorldModel, config: Config, device: torch.device, episodes: int, split: str,
             round_name: str, progress: bool = False,
             pool: EnvPool | None = None) -> tuple[np.ndarray, list[dict[str, np.ndarray]]]:
    """`episodes` noise-free episodes in parallel with one batched plan per step; returns returns and episodes.

    Episode m uses env seed (run seed, split, m): the same held-out initial states at every evaluation round,
    disjoint from the training episodes' seeds, different per episode.
    """
    own_pool = pool is None
    pool = pool or EnvPool(config)
    seeds = [episode_seed(config.seed, split, m) for m in range(episodes)]
    gen = torch_generator(config.seed, f"{split}/{round_name}", device)
    agent = MPCAgent(model, config.planner, config.env.bit_depth, 0.0, gen, device, config.compute)
    was_training = model.training
    model.eval()
    try:
        eps = run_episodes(pool.get(episodes), seeds, agent, explore=False,
                           desc=f"{split} {round_name}" if progress else None)
    finally:
        model.train(was_training)
        if own_pool:
            pool.close()
    return np.array([ep["reward"].sum() for ep in eps]), eps


# --------------------------------------------------------------------------------------------------------------
# Training.


def collect_episode(config: Config, env: PixelEnv, replay: Replay, index: int, policy: str,
                    model: WorldModel | None = None, device: torch.device | None = None,
                    progress: bool = False) -> float:
    """Collect training episode `index` into `replay` with the random agent or the MPC agent (exploring).

    Both the environment and the agent are seeded from (run seed, "train"/"collect", index).
    """
    if policy == "random":
        agent = RandomAgent(env.action_dim, numpy_generator(config.seed, f"collect/{index}"))
    else:
        assert model is not None and device is not None, "the MPC agent needs a model and a device"
        gen = torch_generator(config.seed, f"collect/{index}", device)
        agent = MPCAgent(model, config.planner, config.env.bit_depth, config.collect.exploration_noise, gen, device,
                         config.compute)
    seed = episode_seed(config.seed, "train", index)
    (episode,) = run_episodes([env], [seed], agent, explore=True, desc=f"collect {index}" if progress else None)
    ret = float(episode["reward"].sum())
    replay.add(episode, {"task": config.task, "seed": config.seed, "split": "train", "index": index,
                         "policy": policy, "return": ret, "action_repeat": env.action_repeat})
    return ret


@dataclass
class Counters:
    episodes: int = 0
    env_steps: int = 0
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
        if on_config_change not in ("error", "archive"):
            raise ValueError(f"on_config_change must be 'error' or 'archive', got {on_config_change!r}")
        self.on_config_change = on_config_change
        self.counters = Counters()

    # ---- setup

    def _check_config(self) -> None:
        path = self.run_dir / "config.yaml"
        if path.exists():
            old = config_lib.load(path)
            changed = config_lib.diff(old, self.config)
            if changed and self.on_config_change == "archive":
                self._archive(old)
            elif changed:
                lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in ((k, *v) for k, v in changed.items()))
                raise ConfigError(
                    f"{self.run_dir} holds a run with a different config ({lines}); use another --out directory, "
                    "the same settings to resume it, or --on-config-change archive to set the old run aside"
                )
            else:
                if old != self.config:  # bookkeeping (`run.*`) changed, e.g. run.mlflow=false: same run, new settings
                    config_lib.save(self.config, path)
                return
        if not path.exists():
            self.run_dir.mkdir(parents=True, exist_ok=True)
            config_lib.save(self.config, path)

    def _archive(self, old: Config) -> None:
        """Move a run made with another config to RUN_PARENT/.replaced/NAME-OLDHASH-TIME (nothing is deleted)."""
        mark_replaced(self.run_dir, self.config.digest())
        dest = self.run_dir.parent / ".replaced" / f"{self.run_dir.name}-{old.digest()}-{time.strftime('%Y%m%d%H%M%S')}"
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.run_dir.rename(dest)
        log.warning("config changed: moved the old run %s to %s", self.run_dir, dest)
        self.run_dir.mkdir(parents=True)

    def _setup(self) -> None:
        cfg = self.config
        if cfg.run.threads:
            torch.set_num_threads(cfg.run.threads)
        if self.device.type == "cuda":
            cuda_defaults(cfg.compute.tf32)
        self.pool = EnvPool(cfg)
        probe = self.pool.get(1)[0]
        self.action_dim, self.obs_shape = probe.action_dim, probe.obs_shape
        self.agent_steps = probe.max_agent_steps
        self.action_repeat = probe.action_repeat
        torch.manual_seed(derive_seed(cfg.seed, "init"))  # parameter initialisation only
        self.model = WorldModel(cfg.model, self.action_dim).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.train.learning_rate, eps=cfg.train.adam_eps)
        warmup = cfg.train.warmup_updates
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: min(1.0, (step + 1) / warmup) if warmup else 1.0
        )
        self.train_gen = torch_generator(cfg.seed, "train", self.device)
        self.update_dtype = precision.resolve(cfg.compute.update_precision, self.device)
        self.replay = Replay(
            self.run_dir / "episodes", self.obs_shape, self.action_dim,
            capacity_steps=cfg.train.episodes * (self.agent_steps + 1), seed=derive_seed(cfg.seed, "replay"),
        )
        tags = {
            "task": cfg.task, "seed": str(cfg.seed), "agent_preset": cfg.preset, "model": cfg.model.kind,
            "planner": cfg.planner.kind, "collect": cfg.collect.policy, "params_hash": cfg.digest(),
            "device": str(self.device), "update_precision": precision.name(self.update_dtype),
            "plan_precision": precision.name(precision.resolve(cfg.compute.plan_precision, self.device)),
            **_git_tags(), **self.extra_tags,
        }
        self.tracker = Tracker(
            self.run_dir, experiment=cfg.run.experiment,
            run_name=cfg.run_name(self.extra_tags.get("variant")), params=cfg.to_dict(), tags=tags,
            enabled=cfg.run.mlflow, tracking_uri=run_tracking_uri(self.run_dir),
        )

    # ---- checkpoints

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        state = {
            "version": CHECKPOINT_VERSION,
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
        atomic_save(self.checkpoint_path, lambda f: torch.save(state, f))
        atomic_write_text(self.run_dir / "progress.json", json.dumps(vars(self.counters)))

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.exists():
            # A run killed before its first checkpoint can have left episode files (and metrics lines) behind;
            # the replay reloaded them, so collecting episode 0 again would fail on the index. Start from scratch:
            # they are collected again identically (seeded per index).
            self.replay.truncate(0)
            self.tracker.truncate_metrics(0)
            return False
        try:
            # Loaded on the CPU: generator states must be CPU byte tensors for CPU and CUDA generators alike
            # (map_location=cuda put the CUDA generator's state on the GPU and every resume on a GPU failed);
            # load_state_dict moves the model's and the optimiser's tensors to the run's device.
            state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        except Exception as exc:  # atomic writes make this unlikely; say what to do if it happens
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise PlanetError(
                f"cannot read checkpoint {self.checkpoint_path} ({type(exc).__name__}: {first}) - delete it to "
                "restart the run from scratch (its episodes are collected again identically)"
            ) from None
        if state.get("version") != CHECKPOINT_VERSION:
            raise PlanetError(f"{self.checkpoint_path} has checkpoint version {state.get('version')}, "
                               f"this code reads {CHECKPOINT_VERSION}")
        saved_on = state.get("device_type", "cpu")
        if saved_on != self.device.type:
            raise ConfigError(
                f"{self.run_dir} was trained on {saved_on} and this resume runs on {self.device.type}; CPU and CUDA "
                f"random generators differ, so resume it with --device {saved_on} (or start a new --out directory)"
            )
        self.counters = Counters(**state["counters"])
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

    def collect(self, index: int, policy: str) -> float:
        env = self.pool.get(1)[0]
        ret = collect_episode(self.config, env, self.replay, index, policy, self.model, self.device, self.progress)
        self.counters.episodes += 1
        self.counters.env_steps += self.agent_steps * self.action_repeat
        return ret

    def _seed_episode_files(self) -> list[Path]:
        """The `--init-episodes` files this run starts from, checked against the config before the run directory
        or an MLflow run exists, so that a wrong directory leaves nothing behind."""
        cfg = self.config
        src = Path(self.init_episodes) / "episodes"
        files = sorted(src.glob("episode_*.npz"))[: cfg.train.seed_episodes]
        if not files:
            raise SeedEpisodesError(f"--init-episodes {self.init_episodes}: no episodes in {src} (a `planet collect "
                                    "--out DIR` output directory holds DIR/episodes/episode_*.npz)")
        repeat = config_lib.action_repeat(cfg)
        for index, path in enumerate(files):
            episode, meta = load_episode(path)
            expect = {"task": cfg.task, "seed": cfg.seed, "index": index, "action_repeat": repeat}
            wrong = {k: (meta.get(k), v) for k, v in expect.items() if meta.get(k) != v}
            if wrong or len(episode["reward"]) != cfg.env.episode_env_steps // repeat + 1:
                raise SeedEpisodesError(f"{path} does not match this run ({wrong or 'episode length'}); collect "
                                        "seed episodes with the same --task, --seed and settings")
        return files

    def _import_seed_episodes(self, files: list[Path]) -> None:
        """Take seed episodes collected by `planet collect` (checked by `_seed_episode_files`) instead of
        re-collecting them."""
        for path in files:
            episode, meta = load_episode(path)
            self.replay.add(episode, meta)
            self.counters.episodes += 1
            self.counters.env_steps += self.agent_steps * self.action_repeat
            # The same line the seed-episode loop logs, so metrics.jsonl equals that of a run that collected them.
            ret = float(episode["reward"].sum())  # as collect_episode computes it
            self.tracker.log_metrics({"collect/return": ret, "episodes": float(self.counters.episodes)},
                                     step=self.counters.env_steps)

    def _evaluate_and_log(self, final: bool) -> dict[str, float]:
        cfg = self.config
        t0 = time.perf_counter()
        returns, episodes = evaluate(self.model, cfg, self.device, cfg.eval.episodes, "eval",
                                     f"episode{self.counters.episodes}", self.progress, self.pool)
        metrics = {
            "eval/return_mean": float(returns.mean()), "eval/return_std": float(returns.std()),
            "eval/return_min": float(returns.min()), "eval/return_max": float(returns.max()),
            "eval/episodes": float(len(returns)), "episodes": float(self.counters.episodes),
            "perf/eval_s": time.perf_counter() - t0,
        }
        self.tracker.log_metrics(metrics, step=self.counters.env_steps)
        if final:
            self._write_eval_artifacts(episodes[0])
        return metrics

    def _write_eval_artifacts(self, episode: dict[str, np.ndarray]) -> None:
        from planet.video import label_openloop, openloop_strip, save_gif, save_labelled_png  # noqa: PLC0415

        out = self.run_dir / "eval"
        out.mkdir(exist_ok=True)
        if self.config.eval.video:
            save_gif(out / "eval.gif", episode["obs"])
            self.tracker.log_artifact(out / "eval.gif", "eval")
        context = 5  # as the paper's Fig. 10
        strip = openloop_strip(self.model, episode, self.config.env.bit_depth, self.device, context)
        save_labelled_png(out / "openloop.png", label_openloop(strip, context))
        self.tracker.log_artifact(out / "openloop.png", "eval")

    # ---- main loop

    def run(self) -> dict:
        seed_files = (self._seed_episode_files()
                      if self.init_episodes and not self.checkpoint_path.exists() else [])
        self._check_config()
        summary_path = self.run_dir / "summary.json"
        if summary_path.exists():
            log.info("%s is complete (summary.json exists); nothing to do", self.run_dir)
            return json.loads(summary_path.read_text())
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
        bar = tqdm(total=cfg.train.episodes, initial=c.episodes, desc=f"{cfg.task} seed {cfg.seed}", unit="ep",
                   disable=not self.progress)
        if c.episodes == 0 and seed_files:
            self._import_seed_episodes(seed_files)
            self.save_checkpoint()  # a resume must not import them twice
            bar.update(c.episodes)
        while c.episodes < cfg.train.seed_episodes:
            ret = self.collect(c.episodes, "random")
            self.tracker.log_metrics({"collect/return": ret, "episodes": float(c.episodes)}, step=c.env_steps)
            self.save_checkpoint()
            bar.update(1)
        last_eval: dict[str, float] = {}
        while c.episodes < cfg.train.episodes:
            t0 = time.perf_counter()
            metrics = [self.update() for _ in range(cfg.train.updates_per_episode)]
            update_s = time.perf_counter() - t0
            t1 = time.perf_counter()
            ret = self.collect(c.episodes, cfg.collect.policy)
            collect_s = time.perf_counter() - t1
            logged = {"collect/return": ret, "episodes": float(c.episodes), "updates": float(c.updates),
                      "perf/collect_s": collect_s,
                      "perf/env_steps_per_s": self.agent_steps * self.action_repeat / collect_s}
            if metrics:
                logged.update({f"train/{k}": float(torch.stack([m[k] for m in metrics]).float().mean())
                               for k in metrics[0]})
                logged["train/lr"] = self.scheduler.get_last_lr()[0]
                logged["perf/updates_per_s"] = len(metrics) / update_s
            self.tracker.log_metrics(logged, step=c.env_steps)
            final = c.episodes == cfg.train.episodes
            if final or (cfg.eval.every and c.episodes % cfg.eval.every == 0):
                last_eval = self._evaluate_and_log(final)
            if final or c.episodes % cfg.run.checkpoint_every == 0:
                self.save_checkpoint()
            bar.update(1)
            bar.set_postfix(ret=f"{ret:.0f}", eval=f"{last_eval.get('eval/return_mean', float('nan')):.0f}")
        bar.close()
        if not last_eval:  # e.g. train.episodes == train.seed_episodes
            last_eval = self._evaluate_and_log(True)
        return self._finish(last_eval, time.perf_counter() - start_wall)

    def _finish(self, last_eval: dict[str, float], wall_s: float) -> dict:
        model_path = self.run_dir / "model.pt"
        atomic_save(model_path, lambda f: torch.save(self.model.state_dict(), f))
        self.tracker.log_artifact(model_path, "model")
        self.tracker.log_artifact(self.run_dir / "config.yaml")
        summary = {
            "task": self.config.task, "seed": self.config.seed, "preset": self.config.preset,
            "model": self.config.model.kind, "planner": self.config.planner.kind,
            "collect": self.config.collect.policy, "params_hash": self.config.digest(),
            "episodes": self.counters.episodes, "env_steps": self.counters.env_steps,
            "updates": self.counters.updates, "final_eval": last_eval, "wall_s_last_session": wall_s,
        }
        atomic_write_text(self.run_dir / "summary.json", json.dumps(summary, indent=2))
        return summary


def cuda_defaults(tf32: bool) -> None:
    """What a CUDA user expects: TF32 tensor-core matmuls and convolutions (`compute.tf32`; off = strict float32)
    and cuDNN's autotuner (the update's shapes never change within a run)."""
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True


def run_tracking_uri(run_dir: Path) -> str | None:
    """The MLflow store that RUN's tracking continues in: None (the tracker's choice) when MLFLOW_TRACKING_URI is set
    or the run has no MLflow run yet, else the store recorded in RUN/mlflow_run.json.

    Without this, a resume or `planet evaluate` started from another working directory (the default store,
    sqlite:///mlflow.db, is relative to it) started a new MLflow run in another database and overwrote
    RUN/mlflow_run.json, cutting the run's link to its MLflow run.
    """
    path = Path(run_dir) / RUN_FILE
    if os.environ.get("MLFLOW_TRACKING_URI") or not path.exists():
        return None
    with contextlib.suppress(ValueError, OSError):
        return json.loads(path.read_text()).get("tracking_uri")
    return None


def load_model(run_dir: Path, device: torch.device) -> tuple[Config, WorldModel]:
    """The config and trained model of a run (final weights if complete, else the latest checkpoint)."""
    run_dir = Path(run_dir)
    cfg_path = run_dir / "config.yaml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no config.yaml); pass the --out of a train run")
    cfg = config_lib.load(cfg_path)
    probe = make_env(cfg)
    model = WorldModel(cfg.model, probe.action_dim).to(device)
    probe.close()
    if (run_dir / "model.pt").exists():
        model.load_state_dict(torch.load(run_dir / "model.pt", map_location=device))
    elif (run_dir / "checkpoint.pt").exists():
        model.load_state_dict(torch.load(run_dir / "checkpoint.pt", map_location=device, weights_only=False)["model"])
    else:
        raise FileNotFoundError(f"{run_dir} has neither model.pt nor checkpoint.pt: train it first")
    model.eval()
    return cfg, model


def collect_seed_episodes(config: Config, out_dir: Path, progress: bool = True) -> int:
    """Write the run's S random seed episodes to OUT/episodes (identical to those `Trainer` would collect)."""
    with contextlib.closing(make_env(config)) as env:
        replay = Replay(Path(out_dir) / "episodes", env.obs_shape, env.action_dim,
                        capacity_steps=config.train.seed_episodes * (env.max_agent_steps + 1), seed=0)
        for index in tqdm(range(replay.next_index, config.train.seed_episodes), desc="seed episodes",
                          disable=not progress):
            collect_episode(config, env, replay, index, "random")
    return replay.num_episodes


def _git_tags() -> dict[str, str]:
    import subprocess  # noqa: PLC0415

    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {"git_commit": commit} if commit else {}

