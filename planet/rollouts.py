"""Episodes: the environments of a config, the lockstep episode driver, training-episode collection (random or
CEM-MPC, exploring) and noise-free evaluation. Used by the training loop (planet/train.py), `planet evaluate`
(planet/evaluate.py), `planet collect` and the benchmark.

Randomness: episodes are seeded from (run seed, split, index) for the environment *and* the acting agent, so a
resumed run collects exactly the episodes an uninterrupted run would, and every evaluation round sees the same
held-out initial states ('eval' split during training, 'test' split in `planet evaluate`).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from planet import config as config_lib
from planet.agents import MPCAgent, RandomAgent
from planet.config import Config
from planet.envs import PixelEnv, episode_seed
from planet.models import WorldModel
from planet.replay import STATE_GROUPS_KEY, Replay, SeedEpisodesError, load_episode
from planet.utils import numpy_generator, torch_generator


def make_env(config: Config, seed: int = 0) -> PixelEnv:
    return PixelEnv(config.task, seed, action_repeat=config.env.action_repeat, image_size=config.env.image_size,
                    episode_env_steps=config.env.episode_env_steps, shadow_map_size=config.env.shadow_map_size)


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

    Returns episodes in the replay's layout: row t = (o_t, a_{t-1}, r_t, state_t), T+1 rows, row 0 = reset, where
    state_t is the true simulator state at o_t (`PixelEnv.state`; the agent never sees it).
    """
    n = len(envs)
    steps = envs[0].max_agent_steps
    assert all(e.max_agent_steps == steps for e in envs), "lockstep envs need equal episode lengths"
    action_dim = envs[0].action_dim
    obs = np.empty((n, steps + 1, *envs[0].obs_shape), np.uint8)
    actions = np.zeros((n, steps + 1, action_dim), np.float32)
    rewards = np.zeros((n, steps + 1), np.float32)
    states = np.empty((n, steps + 1, envs[0].state_size), np.float32)
    for i, (env, seed) in enumerate(zip(envs, seeds, strict=True)):
        obs[i, 0] = env.reset(seed=seed)
        states[i, 0] = env.state()
    agent.reset(n)
    for t in tqdm(range(1, steps + 1), desc=desc, leave=False, disable=desc is None):
        action = agent.act(obs[:, t - 1], explore)
        for i, env in enumerate(envs):
            obs[i, t], rewards[i, t], _ = env.step(action[i])
            states[i, t] = env.state()
        actions[:, t] = action
    return [{"obs": obs[i], "action": actions[i], "reward": rewards[i], "state": states[i]} for i in range(n)]


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


def evaluation_metrics(returns: np.ndarray) -> dict[str, float]:
    """The `eval/*` scalars of one evaluation round."""
    return {"eval/return_mean": float(returns.mean()), "eval/return_std": float(returns.std()),
            "eval/return_min": float(returns.min()), "eval/return_max": float(returns.max()),
            "eval/episodes": float(len(returns))}


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
                         "policy": policy, "return": ret, "action_repeat": env.action_repeat,
                         STATE_GROUPS_KEY: env.state_groups})
    return ret


def collect_seed_episodes(config: Config, out_dir: Path, progress: bool = True) -> int:
    """Write the run's S random seed episodes to OUT/episodes (identical to those `Trainer` would collect)."""
    with contextlib.closing(make_env(config)) as env:
        replay = Replay(Path(out_dir) / "episodes", env.obs_shape, env.action_dim,
                        capacity_steps=config.train.seed_episodes * (env.max_agent_steps + 1), seed=0)
        for index in tqdm(range(replay.next_index, config.train.seed_episodes), desc="seed episodes",
                          disable=not progress):
            collect_episode(config, env, replay, index, "random")
    return replay.num_episodes


def seed_episode_files(cfg: Config, init_dir: Path) -> list[Path]:
    """The seed episodes `planet collect --out INIT_DIR` wrote for this run (`planet train --init-episodes`),
    checked against the config (task, seed, index, action repeat, length) before anything is written, so that a
    wrong directory leaves no run directory or MLflow run behind."""
    src = Path(init_dir) / "episodes"
    files = sorted(src.glob("episode_*.npz"))[: cfg.train.seed_episodes]
    if not files:
        raise SeedEpisodesError(f"--init-episodes {init_dir}: no episodes in {src} (a `planet collect "
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
