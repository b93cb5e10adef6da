"""The baselines: the SAC pixel environment against PlaNet's, random shift, settings, and tiny end-to-end runs of
`planet baseline sac|simulator` that write what the report reads."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from planet import baselines, report
from planet.config import ConfigError
from planet.envs import PixelEnv, episode_seed
from planet.sac import PixelGymEnv, random_shift


def test_pixel_gym_env_matches_planet_env():
    """Same seed, same actions: the same rewards (summed over the action repeat), frames and time limit."""
    gym_env = PixelGymEnv("cartpole_swingup", 3, frame_stack=3, episode_env_steps=160)
    env = PixelEnv("cartpole_swingup", 3, episode_env_steps=160)
    try:
        assert gym_env.observation_space.shape == (9, 64, 64) and gym_env.observation_space.dtype == np.uint8
        obs, info = gym_env.reset(seed=11)
        first = env.reset(seed=11)
        assert obs.shape == (9, 64, 64) and obs.dtype == np.uint8 and info["env_steps"] == 0
        for k in range(3):  # the reset frame fills the stack
            np.testing.assert_array_equal(obs[3 * k:3 * k + 3], first.transpose(2, 0, 1))
        rng = np.random.default_rng(0)
        steps, truncated = 0, False
        while not truncated:
            action = rng.uniform(-1, 1, 1).astype(np.float32)
            obs, reward, terminated, truncated, info = gym_env.step(action)
            frame, expected, done = env.step(action)
            steps += 1
            assert reward == expected and truncated == done and not terminated
            np.testing.assert_array_equal(obs[-3:], frame.transpose(2, 0, 1))  # newest frame last
            assert info["env_steps"] == steps * 8  # cartpole's action repeat
        assert steps == 160 // 8
    finally:
        gym_env.close()
        env.close()


def test_training_episodes_use_planets_train_seeds():
    """Whatever seed the library passes, episode k starts where PlaNet's training episode k starts."""
    gym_env = PixelGymEnv("reacher_easy", 5, frame_stack=1, episode_env_steps=40, train_seeds=True)
    env = PixelEnv("reacher_easy", 5, episode_env_steps=40)
    try:
        for k in range(2):
            obs, _ = gym_env.reset(seed=999)
            np.testing.assert_array_equal(obs, env.reset(seed=episode_seed(5, "train", k)).transpose(2, 0, 1))
    finally:
        gym_env.close()
        env.close()


def test_random_shift_crops_the_padded_image():
    images = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    torch.testing.assert_close(random_shift(images, 0), images)  # no padding: identity
    gen = torch.Generator().manual_seed(0)
    shifted = random_shift(images, 2, gen)
    assert shifted.shape == images.shape
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2), mode="replicate")
    for n in range(2):  # each sample is one 8x8 window of its padded image, the same for every channel
        windows = [(dy, dx) for dy in range(5) for dx in range(5)
                   if torch.equal(shifted[n], padded[n, :, dy:dy + 8, dx:dx + 8])]
        assert len(windows) == 1


def test_settings_are_validated_and_budget_follows_the_agent_preset():
    agent, settings = baselines.resolve("walker_walk", "cpu", 1)
    assert settings.sac.augment == "shift" and settings.simulator.episodes == 1
    assert baselines.budget_env_steps(agent, settings.sac) == 100 * 1000  # cpu preset: 100 episodes of 1000 steps
    _, plain = baselines.resolve("walker_walk", "cpu", 1, ["sac.augment=none", "sac.env_steps=5000"])
    assert plain.sac.augment == "none" and baselines.budget_env_steps(agent, plain.sac) == 5000
    with pytest.raises(ConfigError, match=r"unknown config key 'sac\.batchsize'.*sac\.batch_size"):
        baselines.resolve("walker_walk", "cpu", 1, ["sac.batchsize=3"])
    with pytest.raises(ConfigError, match=r"sac\.augment.*one of 'shift', 'none'"):
        baselines.resolve("walker_walk", "cpu", 1, ["sac.augment=crop"])
    with pytest.raises(ConfigError, match="simulator.episodes must be >= 1"):
        baselines.resolve("walker_walk", "cpu", 1, ["simulator.episodes=0"])


def _check_run_dir(run, kind: str, episodes: int) -> dict:
    evaluation = json.loads((run / "evaluation.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    assert evaluation["split"] == "test" and evaluation["baseline"] == kind and len(evaluation["returns"]) == episodes
    assert np.isclose(evaluation["return_mean"], np.mean(evaluation["returns"]))
    assert summary["baseline"] == kind
    tags = json.loads((run / "tags.json").read_text())
    assert tags["variant"] == kind and tags["agent_preset"] == "debug" and "params_hash" in tags
    return summary


@pytest.mark.slow
def test_sac_tiny_run_writes_what_the_report_reads(tmp_path, isolated_mlflow):
    run = tmp_path / "results" / "runs" / "sac" / "cartpole_swingup" / "seed0"
    summary = baselines.train_sac("cartpole_swingup", "debug", 0, run, device="cpu")
    _check_run_dir(run, "sac", 2)  # debug preset: eval.episodes = 2
    assert summary["episodes"] == 4 and summary["env_steps"] == 4 * 160  # the debug budget: 4 episodes of 160
    assert summary["updates"] > 0
    loaded = report.read_run(tmp_path / "results", "sac", "cartpole_swingup", 0, run)
    assert loaded.final_source == "test" and loaded.episodes == 4
    assert list(loaded.curve["episodes"]) == [2, 4]  # eval every 2 episodes (debug block of params/baselines.yaml)
    assert list(loaded.curve["env_steps"]) == [320, 640]
    # a rerun of the finished run (e.g. Snakemake rerunning a job killed after summary.json) leaves it as it is
    mtime = (run / "summary.json").stat().st_mtime_ns
    assert baselines.train_sac("cartpole_swingup", "debug", 0, run, device="cpu") == summary
    assert (run / "summary.json").stat().st_mtime_ns == mtime


@pytest.mark.slow
def test_simulator_tiny_run_and_resume(tmp_path, isolated_mlflow):
    run = tmp_path / "sim"
    first = baselines.run_simulator("cartpole_swingup", "debug", 0, run, ["simulator.episodes=1"])
    _check_run_dir(run, "simulator", 1)
    assert first["episodes"] == 0 and first["workers"] == 1
    done = json.loads((run / "episodes.json").read_text())
    # a rerun with one more episode keeps the finished one (resume) and plays only the new one
    second = baselines.run_simulator("cartpole_swingup", "debug", 0, run, ["simulator.episodes=2"])
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["returns"][0] == done[0]["return"] and len(evaluation["returns"]) == 2
    redone = json.loads((run / "episodes.json").read_text())
    assert redone[0]["seconds"] == done[0]["seconds"]  # the same record, not a replay (timings differ per play)
    mtime = (run / "summary.json").stat().st_mtime_ns
    assert baselines.run_simulator("cartpole_swingup", "debug", 0, run, ["simulator.episodes=2"]) == second
    assert (run / "summary.json").stat().st_mtime_ns == mtime
    assert second["final_eval"]["eval/return_mean"] == pytest.approx(np.mean(evaluation["returns"]))
