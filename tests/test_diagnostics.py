"""State diagnostics (paper Fig. 11, planet/diagnostics.py): R^2 by hand, heads on a trivially predictable target,
open-loop features aligned with the open-loop video, settings, episode selection, and `planet diagnose` end to end on
a debug run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from cli_helpers import run_main

from planet import config as config_lib
from planet import diagnostics
from planet.config import ConfigError
from planet.models import WorldModel, preprocess
from planet.replay import episode_path, save_episode
from planet.utils import PlanetError


def test_r_squared_by_hand():
    """y = (1, 2, 3) predicted (1, 2, 4): SS_res = 1, SS_tot = 2 about the mean 2, so R^2 = 0.5; a perfect
    dimension scores 1, predicting the mean 0, the reversed order 1 - 8/2 = -3; a constant dimension is left out
    whatever its prediction, and a group of constant dimensions has no score."""
    y = np.array([[1.0, 0.0, 0.0], [2.0, 0.0, 2.0], [3.0, 0.0, 4.0]])
    pred = np.array([[1.0, 5.0, 0.0], [2.0, 5.0, 2.0], [4.0, 5.0, 4.0]])
    assert diagnostics.r_squared(y[:, :1], pred[:, :1]) == pytest.approx(0.5)
    assert diagnostics.r_squared(y[:, 2:], pred[:, 2:]) == pytest.approx(1.0)
    assert diagnostics.r_squared(y, pred) == pytest.approx((0.5 + 1.0) / 2)  # the constant column is left out
    assert diagnostics.r_squared(y[:, :1], np.full((3, 1), 2.0)) == pytest.approx(0.0)
    assert diagnostics.r_squared(y[:, :1], y[::-1, :1]) == pytest.approx(-3.0)
    assert math.isnan(diagnostics.r_squared(y[:, 1:2], pred[:, 1:2]))
    scores = diagnostics.group_r_squared(y, pred, [("a", 2), ("b", 1)])
    assert scores == {"a": pytest.approx(0.5), "b": pytest.approx(1.0)}


SETTINGS = diagnostics.DiagnosticsConfig(hidden_units=32, steps=300, batch_size=64, learning_rate=3e-3)
GROUPS = [("position", 2), ("velocity", 3)]


def trivially_predictable(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Features that contain the state (scaled, shifted, beside noise dimensions)."""
    state = rng.normal(size=(n, 5)).astype(np.float32) * [1, 10, 0.1, 3, 1]
    features = np.concatenate([state * 2 + 7, rng.normal(size=(n, 11))], 1).astype(np.float32)
    return features, state.astype(np.float32)


@pytest.mark.slow
def test_heads_learn_a_trivially_predictable_target_reproducibly():
    rng = np.random.default_rng(0)
    train, test = trivially_predictable(2000, rng), trivially_predictable(500, rng)
    before = torch.get_rng_state()
    heads = diagnostics.fit_heads(*train, GROUPS, SETTINGS, seed=3, name="t", device=torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), before)  # the global generator is left alone
    scores = diagnostics.group_r_squared(test[1], heads.predict(test[0]), GROUPS)
    assert min(scores.values()) > 0.97, scores
    again = diagnostics.fit_heads(*train, GROUPS, SETTINGS, seed=3, name="t", device=torch.device("cpu"))
    np.testing.assert_array_equal(again.predict(test[0]), heads.predict(test[0]))  # seeded from (seed, name)
    other = diagnostics.fit_heads(*train, GROUPS, SETTINGS, seed=4, name="t", device=torch.device("cpu"))
    assert not np.array_equal(other.predict(test[0]), heads.predict(test[0]))
    # the score of features with no information is about zero (or below): the heads are not reading noise
    noise = (rng.normal(size=test[0].shape).astype(np.float32), test[1])
    assert max(diagnostics.group_r_squared(noise[1], heads.predict(noise[0]), GROUPS).values()) < 0.1


@pytest.mark.parametrize("kind", ["rssm", "ssm", "drnn"])
def test_open_loop_features_continue_the_posterior_as_the_open_loop_video(kind):
    """The features at distance d from the first start (row context - 1) are those of the open-loop video's method
    (planet/video.py: filter `context` frames, then imagine on the stored actions), for the target row context-1+d;
    every start j >= context - 1 whose target is in the episode is a sample."""
    cfg = config_lib.resolve("cartpole_swingup", "debug", overrides=[f"model.kind={kind}"])
    torch.manual_seed(0)
    model = WorldModel(cfg.model, action_dim=1).eval()
    rng = np.random.default_rng(0)
    rows, context = 21, 5
    episode = {"obs": rng.integers(0, 256, (rows, 64, 64, 3), dtype=np.uint8),
               "action": rng.uniform(-1, 1, (rows, 1)).astype(np.float32)}
    feats = diagnostics.open_loop_features(model, episode, 5, torch.device("cpu"), context, (0, 1, 3))
    with torch.no_grad():
        obs, actions = torch.as_tensor(episode["obs"][None]), torch.as_tensor(episode["action"][None])
        dyn = model.dynamics
        _, posts = dyn.observe(model.encoder(preprocess(obs[:, :context], 5, None)), actions[:, :context],
                               dyn.initial(1, "cpu"), None)
        last = posts.map(lambda x: x[:, -1])
        imagined = dyn.features(dyn.imagine(last, actions[:, context:context + 3], None))[0]
    expect = {0: dyn.features(last)[0], 1: imagined[0], 3: imagined[2]}
    for d, (features, targets) in feats.items():
        assert len(features) == len(targets) == rows - context + 1 - d
        np.testing.assert_array_equal(targets, np.arange(context - 1, rows - d) + d)
        np.testing.assert_allclose(features[0], expect[d].numpy(), rtol=1e-4, atol=1e-5)


def test_settings_per_agent_preset_and_one_line_errors():
    debug = diagnostics.resolve_settings("debug")
    assert debug.distances == (0, 1, 2, 5, 10) and debug.steps == 50 and debug.test_episodes == 1
    paper = diagnostics.resolve_settings("paper")
    assert (paper.hidden_layers, paper.hidden_units, paper.context) == (2, 100, 5)  # G's heads, G's context
    changed = diagnostics.resolve_settings("debug", ["steps=7", "distances=[0, 3]", "test_policy=random"])
    assert (changed.steps, changed.distances, changed.test_policy) == (7, (0, 3), "random")
    assert diagnostics.resolve_settings("debug", {"distances": [1], "readout": "per_distance"}).distances == (1,)
    for overrides, message in [
        (["stepz=3"], r"unknown config key 'stepz'"),
        (["steps=many"], r"config key 'steps': got 'many'"),
        (["distances=[3, 1]"], r"config key 'distances': got \[3, 1\]; expected a list of increasing integers"),
        (["distances=5"], r"config key 'distances'"),
        (["context=0"], r"config key 'context' must be >= 1"),
        (["test_policy=expert"], r"config key 'test_policy'.*one of 'agent', 'random'"),
    ]:
        with pytest.raises(ConfigError, match=message) as info:
            diagnostics.resolve_settings("debug", overrides)
        assert "\n" not in str(info.value)
    with pytest.raises(ConfigError, match=r"preset 'tiny' has no block in .*diagnostics\.yaml; valid: cpu, debug"):
        diagnostics.resolve_settings("tiny")


def test_training_episodes_are_the_most_recent_with_a_state(tmp_path):
    """Episode files from before states were stored are passed over; without any state, one clear error."""
    def episode(rows: int, state: bool) -> dict[str, np.ndarray]:
        out = {"obs": np.zeros((rows, 4, 4, 3), np.uint8), "action": np.zeros((rows, 1), np.float32),
               "reward": np.zeros(rows, np.float32)}
        return {**out, "state": np.zeros((rows, 2), np.float32)} if state else out

    meta = {"state_groups": [["position", 2]]}
    for index, state in enumerate([False, False, True, True, True]):
        save_episode(episode_path(tmp_path, index), episode(3, state), {"index": index, **(meta if state else {})})
    chosen = diagnostics.training_episodes(tmp_path, 2)
    assert [m["index"] for _, m in chosen] == [3, 4]
    assert [m["index"] for _, m in diagnostics.training_episodes(tmp_path, 10)] == [2, 3, 4]
    assert diagnostics.state_groups([m for _, m in chosen], "here") == [("position", 2)]
    for index in (2, 3, 4):
        save_episode(episode_path(tmp_path, index), episode(3, False), {"index": index})
    with pytest.raises(PlanetError, match=r"no episode in .* holds the true state"):
        diagnostics.training_episodes(tmp_path, 2)


# --------------------------------------------------------------------------------------------------------------
# `planet diagnose` on a real (tiny) run


@pytest.fixture(scope="module")
def debug_run(tmp_path_factory) -> Path:
    """A debug-preset cartpole run of 3 episodes (seconds), without MLflow."""
    run = tmp_path_factory.mktemp("diagnose") / "run"
    code, _, err = run_main(["train", "--task", "cartpole_swingup", "--preset", "debug", "--device", "cpu",
                             "--out", str(run), "--no-progress", "train.episodes=3", "eval.episodes=1",
                             "run.mlflow=false"])
    assert code == 0, err
    return run


@pytest.mark.slow
@pytest.mark.parametrize("overrides", [[], ["test_policy=random", "readout=per_distance", "distances=[0,2,4]"]])
def test_diagnose_a_debug_run_end_to_end(debug_run, tmp_path, overrides):
    out = tmp_path / "copy.json"
    code, stdout, err = run_main(["diagnose", "--run", str(debug_run), "--out", str(out), "--device", "cpu",
                                  "--no-progress", *overrides])
    assert code == 0, err
    result = json.loads((debug_run / "diagnostics.json").read_text())
    assert json.loads(out.read_text()) == result and json.loads(stdout)["r2"] == result["r2"]
    settings = diagnostics.resolve_settings("debug", overrides)
    assert result["distances"] == list(settings.distances) and result["settings"]["readout"] == settings.readout
    assert result["state_groups"] == [["position", 3], ["velocity", 2]] and result["model"] == "rssm"
    assert result["train_episodes"] == [0, 1, 2] and len(result["test_returns"]) == settings.test_episodes
    # cartpole debug episodes have 21 rows: 21 - 5 + 1 - d samples per episode at distance d
    assert result["samples"]["test"] == [17 - d for d in settings.distances]
    for group in ("position", "velocity"):
        scores = result["r2"][group]
        assert len(scores) == len(settings.distances) and all(s is None or s <= 1 for s in scores)
        fits = result["r2_train"][group]  # posterior readout: only distance 0 has heads fitted on it
        assert (fits[0] is not None) and all((f is None) == (settings.readout == "posterior") for f in fits[1:])
    logged = [json.loads(line) for line in (debug_run / "metrics.jsonl").read_text().splitlines()]
    assert any("diagnostics/r2_mean/d0" in line for line in logged)


@pytest.mark.slow
def test_diagnose_refuses_distances_longer_than_the_episodes(debug_run):
    code, _, err = run_main(["diagnose", "--run", str(debug_run), "--device", "cpu", "--no-progress",
                             "distances=[0,17]"])
    assert code == 2 and "does not fit in this run's episodes of 21 rows: use distances up to 16" in err
    assert len(err.strip().splitlines()) == 1
