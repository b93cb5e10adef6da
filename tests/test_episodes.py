"""Episode collection: the stored row alignment (o_t, a_{t-1}, r_t) against direct env stepping; eval seeds."""

from __future__ import annotations

import numpy as np

from planet.config import resolve
from planet.envs import PixelEnv, episode_seed
from planet.rollouts import EnvPool, run_episodes


class ScriptedAgent:
    """Plays a fixed action sequence per env (the same interface as the real agents)."""

    def __init__(self, actions: np.ndarray):
        self.actions = actions  # [N, T, A]

    def reset(self, n: int) -> None:
        self.t = 0

    def act(self, obs: np.ndarray, explore: bool = True) -> np.ndarray:
        out = self.actions[:, self.t]
        self.t += 1
        return out


def test_rows_hold_observation_previous_action_and_reward():
    cfg = resolve("cartpole_swingup", "debug")
    pool = EnvPool(cfg)
    envs = pool.get(2)
    steps = envs[0].max_agent_steps
    actions = np.random.default_rng(0).uniform(-1, 1, (2, steps, 1)).astype(np.float32)
    seeds = [episode_seed(0, "train", i) for i in range(2)]
    episodes = run_episodes(envs, seeds, ScriptedAgent(actions), explore=True)
    pool.close()
    for i, ep in enumerate(episodes):
        assert ep["obs"].shape == (steps + 1, 64, 64, 3) and ep["obs"].dtype == np.uint8
        assert ep["action"].shape == (steps + 1, 1) and ep["reward"].shape == (steps + 1,)
        assert np.all(ep["action"][0] == 0) and ep["reward"][0] == 0  # reset row
        ref = PixelEnv("cartpole_swingup", seeds[i], episode_env_steps=cfg.env.episode_env_steps)
        assert np.array_equal(ep["obs"][0], ref.reset())
        for t in range(1, steps + 1):
            obs, reward, _ = ref.step(actions[i, t - 1])
            assert np.array_equal(ep["action"][t], actions[i, t - 1])  # row t holds a_{t-1}
            assert ep["reward"][t] == np.float32(reward)  # ... and the reward of that transition
            assert np.array_equal(ep["obs"][t], obs)
        ref.close()


def test_evaluation_seeds_are_distinct_and_disjoint_from_training():
    train = {episode_seed(0, "train", i) for i in range(1000)}
    evals = [episode_seed(0, "eval", m) for m in range(10)]
    tests = [episode_seed(0, "test", m) for m in range(10)]
    assert len(set(evals)) == 10 and len(set(tests)) == 10
    assert not (set(evals) & train) and not (set(tests) & train) and not (set(evals) & set(tests))
    # different initial states per evaluation episode (not the identical-seed bug of earlier ports)
    pool = EnvPool(resolve("cartpole_swingup", "debug"))
    env = pool.get(1)[0]
    starts = []
    for seed in evals[:4]:
        env.reset(seed=seed)
        starts.append(env.physics.data.qpos.copy())
    pool.close()
    assert len({tuple(np.round(s, 8)) for s in starts}) == 4
