"""Config: presets, per-task overrides, dotted overrides, strict validation, round trip."""

from __future__ import annotations

import pytest
import yaml

from planet import config as config_lib
from planet.config import Config, ConfigError, resolve


def test_paper_defaults_match_the_paper():
    cfg = resolve("cartpole_swingup", "paper")
    assert (cfg.train.batch_size, cfg.train.chunk_length, cfg.train.updates_per_episode) == (50, 50, 100)
    p = cfg.planner
    assert (p.horizon, p.iterations, p.candidates, p.top_k) == (12, 10, 1000, 100)
    assert (cfg.model.deter_size, cfg.model.stoch_size, cfg.loss.free_nats) == (200, 30, 3.0)
    assert (cfg.train.learning_rate, cfg.train.adam_eps, cfg.train.grad_clip) == (1e-3, 1e-4, 1000.0)
    assert cfg.collect.exploration_noise == 0.3 and cfg.train.seed_episodes == 5 and cfg.train.episodes == 1000
    assert config_lib.action_repeat(cfg) == 8


@pytest.mark.parametrize("preset", ["paper", "cpu", "debug"])
@pytest.mark.parametrize("task", ["cartpole_swingup", "walker_walk", "cup_catch"])
def test_every_shipped_preset_resolves(preset, task):
    assert resolve(task, preset).preset == preset


def test_dotted_overrides_win_and_are_typed():
    cfg = resolve("cheetah_run", "cpu", seed=3, overrides=["planner.horizon=8", "model.kind=ssm", "loss.free_nats=2",
                                                            "env.action_repeat=null", "eval.video=false"])
    assert cfg.planner.horizon == 8 and cfg.model.kind == "ssm" and cfg.seed == 3
    assert isinstance(cfg.loss.free_nats, float) and cfg.loss.free_nats == 2.0
    assert cfg.env.action_repeat is None and cfg.eval.video is False
    assert cfg.train.batch_size == 16  # from the cpu preset


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(ConfigError, match=r"planner\.horizn.*valid keys:.*planner\.horizon"):
        resolve("cartpole_swingup", overrides=["planner.horizn=3"])
    with pytest.raises(ConfigError, match=r"unknown config key 'plannr'"):
        resolve("cartpole_swingup", overrides=["plannr.horizon=3"])


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ("planner.horizon=abc", r"planner\.horizon.*an integer"),
        ("planner.horizon=1.5", r"planner\.horizon.*an integer"),
        ("planner.horizon=true", r"planner\.horizon.*an integer"),  # bools are not ints here
        ("model.kind=lstm", r"model\.kind.*one of 'rssm', 'gru', 'ssm', 'drnn'"),
        ("planner.kind=mppi", r"planner\.kind.*'cem', 'random_shooting'"),
        ("planner.top_k=5000", r"top_k must be <= planner\.candidates"),
        ("train.chunk_length=200", r"chunk_length=200 exceeds the episode length \(125"),
        ("env.episode_env_steps=1001", r"not divisible by the action repeat 8"),
        ("planner", r"not KEY=VALUE"),
        ("planner=3", r"'planner' is a section"),
    ],
)
def test_invalid_values_are_rejected_clearly(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        resolve("cartpole_swingup", overrides=[override])


def test_unknown_task_and_preset():
    with pytest.raises(ValueError, match=r"cartpole_swingup"):
        resolve("cartpole_balance")
    with pytest.raises(ConfigError, match=r"unknown preset 'gpu'.*cpu, debug, paper"):
        resolve("cartpole_swingup", "gpu")


def test_per_task_block_applies_only_to_its_task(tmp_path):
    presets = {"mine": {"planner": {"horizon": 7}, "tasks": {"walker_walk": {"planner": {"horizon": 9}}}}}
    path = tmp_path / "presets.yaml"
    path.write_text(yaml.safe_dump(presets))
    assert resolve("walker_walk", "mine", presets_file=path).planner.horizon == 9
    assert resolve("cheetah_run", "mine", presets_file=path).planner.horizon == 7
    # the command line beats the per-task block
    assert resolve("walker_walk", "mine", overrides=["planner.horizon=5"], presets_file=path).planner.horizon == 5
    path.write_text(yaml.safe_dump({"bad": {"tasks": {"walker_run": {}}}}))
    with pytest.raises(ConfigError, match=r"unknown task\(s\) \['walker_run'\]"):
        resolve("walker_walk", "bad", presets_file=path)


def test_save_load_roundtrip_and_diff(tmp_path):
    cfg = resolve("finger_spin", "debug", seed=7, overrides=["loss.overshooting_distance=2"])
    config_lib.save(cfg, tmp_path / "config.yaml")
    again = config_lib.load(tmp_path / "config.yaml")
    assert again == cfg and again.digest() == cfg.digest()
    other = resolve("finger_spin", "debug", seed=7, overrides=["planner.horizon=2"])
    changed = config_lib.diff(cfg, other)
    assert changed == {"loss.overshooting_distance": (2, 0), "planner.horizon": (3, 2)}
    assert cfg.digest() != other.digest()


def test_flat_view_has_every_leaf():
    flat = Config().flat()
    assert flat["planner.candidates"] == 1000 and flat["model.kind"] == "rssm"
    assert all(not isinstance(v, dict) for v in flat.values())


def test_params_come_from_the_working_checkout_then_the_environment(tmp_path, monkeypatch):
    """A package installed from one clone and run in another reads the working directory's params/ (issue: it read
    the install location's, silently), $PLANET_PARAMS (`planet --params DIR`) overrides both."""
    from planet import config as config_lib

    other = tmp_path / "other-clone"
    (other / "params").mkdir(parents=True)
    (other / "params" / "presets.yaml").write_text("mine:\n  planner:\n    horizon: 7\n")
    monkeypatch.delenv(config_lib.PARAMS_ENV, raising=False)
    monkeypatch.chdir(other)
    assert config_lib.params_dir() == other / "params"
    assert resolve("walker_walk", "mine").planner.horizon == 7
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "presets.yaml").parent.mkdir()
    (elsewhere / "presets.yaml").write_text("mine:\n  planner:\n    horizon: 5\n")
    monkeypatch.setenv(config_lib.PARAMS_ENV, str(elsewhere))
    assert resolve("walker_walk", "mine").planner.horizon == 5
    monkeypatch.setenv(config_lib.PARAMS_ENV, str(tmp_path))
    with pytest.raises(ConfigError, match="no presets.yaml there"):
        resolve("walker_walk", "mine")


def test_run_names_say_variant_task_and_seed():
    cfg = resolve("cartpole_swingup", "debug", 2)
    assert cfg.run_name("random_shooting") == "random_shooting-cartpole_swingup-seed2"
    assert cfg.run_name() == "rssm-cartpole_swingup-seed2"
    ablation = resolve("cartpole_swingup", "debug", 0, ["planner.kind=random_shooting", "collect.policy=random",
                                                        "loss.overshooting_distance=4", "model.kind=ssm"])
    assert ablation.run_name() == "ssm+random_shooting+random_collection+overshooting4-cartpole_swingup-seed0"
    drnn = resolve("cartpole_swingup", "debug", 1, ["model.kind=drnn", "loss.overshooting_distance=4"])
    assert drnn.run_name() == "drnn+overshooting4-cartpole_swingup-seed1"
