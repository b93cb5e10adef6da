"""Episode collection: the stored row alignment (o_t, a_{t-1}, r_t, state_t) against direct env stepping; the true
state per task; eval seeds."""

from __future__ import annotations

import numpy as np
import pytest

from planet.config import resolve
from planet.envs import PixelEnv, episode_seed
from planet.replay import Replay, episode_path, load_episode
from planet.rollouts import EnvPool, collect_episode, make_env, run_episodes


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


def test_rows_hold_observation_previous_action_reward_and_state():
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
        assert np.array_equal(ep["state"][0], ref.state())
        for t in range(1, steps + 1):
            obs, reward, _ = ref.step(actions[i, t - 1])
            assert np.array_equal(ep["action"][t], actions[i, t - 1])  # row t holds a_{t-1}
            assert ep["reward"][t] == np.float32(reward)  # ... and the reward of that transition
            assert np.array_equal(ep["obs"][t], obs)
            # ... and the true state at o_t: cartpole's position group is [cart x, cos, sin of the pole angle]
            x, angle = ref.physics.named.data.qpos["slider"][0], ref.physics.named.data.qpos["hinge_1"][0]
            np.testing.assert_allclose(ep["state"][t, :3], [x, np.cos(angle), np.sin(angle)], rtol=1e-6, atol=1e-6)
            assert np.array_equal(ep["state"][t], ref.state())
        assert ep["state"].shape == (steps + 1, 5) and ep["state"].dtype == np.float32
        ref.close()


# dm_control's observation dict per task (the groups G's scripts/tasks.py lists as state_components, reward aside)
STATE_GROUPS = {
    "cartpole_swingup": [("position", 3), ("velocity", 2)],
    "reacher_easy": [("position", 2), ("to_target", 2), ("velocity", 2)],
    "cheetah_run": [("position", 8), ("velocity", 9)],
    "finger_spin": [("position", 4), ("velocity", 3), ("touch", 2)],
    "cup_catch": [("position", 4), ("velocity", 4)],
    "walker_walk": [("orientations", 14), ("height", 1), ("velocity", 9)],
}


@pytest.mark.parametrize("task", list(STATE_GROUPS))
def test_collected_episodes_store_the_true_state_of_each_task(tmp_path, task):
    """A collected episode's file holds the state [T+1, S] with the task's groups named in its metadata."""
    cfg = resolve(task, "debug")
    env = make_env(cfg)
    replay = Replay(tmp_path, env.obs_shape, env.action_dim, capacity_steps=env.max_agent_steps + 1, seed=0)
    collect_episode(cfg, env, replay, 0, "random")
    env.close()
    episode, meta = load_episode(episode_path(tmp_path, 0))
    size = sum(n for _, n in STATE_GROUPS[task])
    assert episode["state"].shape == (env.max_agent_steps + 1, size) and episode["state"].dtype == np.float32
    assert [tuple(g) for g in meta["state_groups"]] == STATE_GROUPS[task]
    assert np.isfinite(episode["state"]).all() and episode["state"].std(0).max() > 0  # it moves


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
