"""One agent for several tasks (paper Figs. 6, 7; planet/multitask.py): task names, config checks, padded actions,
one replay of episodes of different lengths, per-task views, and (slow, real dm_control) a complete run and a run
interrupted mid-round and resumed, which must equal an uninterrupted one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from planet import config as config_lib
from planet.config import ConfigError
from planet.multitask import PaddedEnv, _view_records
from planet.replay import Replay, load_episode
from planet.tasks import TASKS, is_multitask, task_list

PAIR = "cartpole_swingup+reacher_easy"  # action sizes 1 and 2, action repeats 8 and 4: padding and unequal lengths
FAST = ["run.mlflow=false", "run.threads=1", "eval.episodes=1", "eval.video=false"]


# --------------------------------------------------------------------------------------------------------------
# Task names and config.


def test_task_names():
    assert task_list("all") == list(TASKS) and is_multitask("all")
    assert task_list(PAIR) == ["cartpole_swingup", "reacher_easy"] and is_multitask(PAIR)
    assert task_list("walker_walk") == ["walker_walk"] and not is_multitask("walker_walk")
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        task_list("cartpole_swingup+nope")
    with pytest.raises(ValueError, match="twice"):
        task_list("cartpole_swingup+cartpole_swingup")


def test_config_of_several_tasks():
    cfg = config_lib.resolve("all", "debug", 0)
    assert cfg.task == "all" and cfg.env.action_repeat is None  # each task keeps its own action repeat
    single = config_lib.resolve("cartpole_swingup", "debug", 0)
    assert config_lib.diff(single, cfg) == {"task": ("cartpole_swingup", "all")}
    # Chunks must fit the shortest episode: cartpole repeats 8, so 160 env steps are 20 agent steps (21 rows).
    config_lib.resolve(PAIR, "debug", 0, ["train.chunk_length=21"])
    with pytest.raises(ConfigError, match="chunk_length=22 exceeds"):
        config_lib.resolve(PAIR, "debug", 0, ["train.chunk_length=22"])
    with pytest.raises(ConfigError, match="not divisible by the action repeat 8"):
        config_lib.resolve(PAIR, "debug", 0, ["env.episode_env_steps=164"])


def test_per_task_preset_settings_are_refused_for_several_tasks(tmp_path: Path):
    presets = tmp_path / "presets.yaml"
    presets.write_text("p:\n  env: {episode_env_steps: 160}\n  train: {chunk_length: 8}\n"
                       "  tasks:\n    reacher_easy: {train: {batch_size: 2}}\n")
    assert config_lib.resolve("reacher_easy", "p", 0, presets_file=presets).train.batch_size == 2
    config_lib.resolve("cartpole_swingup+finger_spin", "p", 0, presets_file=presets)  # no block for these
    with pytest.raises(ConfigError, match="per-task settings for \\['reacher_easy'\\]"):
        config_lib.resolve(PAIR, "p", 0, presets_file=presets)


def test_cli_says_all_tasks_where_one_agent_can_train_on_them(tmp_path: Path, capsys):
    from planet.cli import main

    assert main(["config", "--task", "all", "--preset", "debug"]) == 0
    assert "task: all\n" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:  # seed episodes are collected per task
        main(["collect", "--task", "all", "--preset", "debug", "--out", str(tmp_path / "seeds")])
    assert exit_info.value.code == 2
    base = ["train", "--preset", "debug", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main([*base, "--task", PAIR, "--init-episodes", str(tmp_path)]) == 2
    assert "--init-episodes is for one task" in capsys.readouterr().err
    assert main([*base, "--task", "cartpole_swingup", "--views", str(tmp_path / "views")]) == 2
    assert "--views is for an agent of several tasks" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "seeds").exists()


# --------------------------------------------------------------------------------------------------------------
# Padded actions and one replay of episodes of different lengths.


class FakeEnv:
    task, action_dim, max_agent_steps = "fake", 2, 5

    def __init__(self):
        self.actions = []

    def step(self, action):
        self.actions.append(np.array(action))
        return np.zeros((64, 64, 3), np.uint8), 1.0, False


def test_padded_env_passes_the_tasks_own_dimensions():
    fake = FakeEnv()
    env = PaddedEnv(fake, 6)
    assert env.action_dim == 6 and env.max_agent_steps == 5 and env.task == "fake"  # the rest is the env's
    env.step(np.arange(6, dtype=np.float32) / 10)
    np.testing.assert_array_equal(fake.actions[0], np.array([0.0, 0.1], np.float32))
    with pytest.raises(ValueError, match="padded action must have shape \\(6,\\)"):
        env.step(np.zeros(2))
    with pytest.raises(ValueError, match="below its own"):
        PaddedEnv(fake, 1)


def test_one_replay_holds_episodes_of_different_lengths(tmp_path: Path):
    """Cartpole (21 rows) and walker (81 rows) episodes alternate in one replay; chunks stay within one episode and
    come from both tasks; the replay reloads them from disk."""
    lengths = [21, 81] * 3
    replay = Replay(tmp_path / "episodes", (64, 64, 3), 6, capacity_steps=sum(lengths), seed=0)
    for i, rows in enumerate(lengths):
        obs = np.full((rows, 64, 64, 3), i, np.uint8)  # every frame names its episode
        replay.add({"obs": obs, "action": np.zeros((rows, 6), np.float32), "reward": np.zeros(rows, np.float32)})
    batch = replay.sample(200, 21)
    ids = batch["obs"][:, :, 0, 0, 0]
    assert (ids == ids[:, :1]).all()  # no chunk crosses an episode boundary
    assert set(np.unique(ids)) == set(range(6))  # both tasks' episodes are sampled
    assert list(Replay(tmp_path / "episodes", (64, 64, 3), 6, sum(lengths), seed=0).episode_lengths) == lengths


def test_view_records_are_single_task_lines():
    records = [
        {"step": 320, "time": 1.0, "collect/return": 2.0, "collect/a/return": 1.0, "collect/b/return": 3.0,
         "episodes": 1.0},
        {"step": 640, "time": 2.0, "eval/a/return_mean": 5.0, "eval/a/return_std": 0.5, "eval/a/episodes": 2.0,
         "eval/b/return_mean": 7.0, "eval/return_mean": 6.0, "episodes": 2.0, "perf/eval_s": 1.0},
        {"step": 640, "time": 3.0, "train/loss": 1.0},  # no episode count: not a view line
    ]
    assert _view_records(records, "a", 160) == [
        {"step": 160, "time": 1.0, "collect/return": 1.0, "episodes": 1.0},
        {"step": 320, "time": 2.0, "eval/return_mean": 5.0, "eval/return_std": 0.5, "eval/episodes": 2.0,
         "episodes": 2.0},
    ]


def test_the_pipeline_grid_has_one_multitask_job_and_a_figure_beside_planet():
    from planet import report

    smoke = report.grid_from_pipeline("smoke")
    assert smoke["expected"]["multitask"] == {"tasks": ["cartpole_swingup", "reacher_easy"], "seeds": [0]}
    assert report.grid_from_pipeline("paper")["expected"]["multitask"]["tasks"] == list(TASKS)
    figures = report.grid_figures(smoke)
    assert figures["multitask"].variants == ("planet", "multitask") and figures["multitask"].paper == "Figs. 6, 7"
    assert "multitask" in figures["openloop"].variants  # its open-loop predictions per task (Fig. 7)


# --------------------------------------------------------------------------------------------------------------
# Real runs (dm_control, the debug preset).


def train(out: Path, *overrides: str, views: Path | None = None) -> dict:
    from planet.cli import main

    argv = ["train", "--task", PAIR, "--preset", "debug", "--seed", "0", "--device", "cpu", "--out", str(out),
            "--no-progress", *(["--views", str(views)] if views else []), *FAST, *overrides]
    assert main(argv) == 0
    return json.loads((out / "summary.json").read_text())


def comparable_metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [{k: v for k, v in json.loads(line).items() if k != "time" and not k.startswith("perf/")}
            for line in lines]


@pytest.mark.slow
def test_run_on_two_tasks_writes_per_task_views(tmp_path: Path):
    from planet.report.runs import collect_runs

    results = tmp_path / "results"
    run, views = tmp_path / "run", results / "runs" / "multitask"
    summary = train(run, views=views)
    assert summary["episodes"] == 8 and summary["updates"] == 4  # 4 rounds of 2 tasks; C = 2 updates per round
    episodes = [load_episode(p) for p in sorted((run / "episodes").glob("episode_*.npz"))]
    assert [meta["task"] for _, meta in episodes] == ["cartpole_swingup", "reacher_easy"] * 4
    assert [len(ep["reward"]) for ep, _ in episodes] == [21, 41] * 4  # own action repeats: 160 / 8, 160 / 4
    assert all(ep["action"].shape[1] == 2 for ep, _ in episodes)  # padded to reacher's 2 dimensions
    assert [meta["policy"] for _, meta in episodes] == ["random"] * 4 + ["mpc"] * 4
    final = summary["final_eval"]
    assert {"eval/cartpole_swingup/return_mean", "eval/reacher_easy/return_mean"} <= set(final)

    by_task = {r.task: r for r in collect_runs(results)}  # the report reads the views as single-task runs
    assert sorted(by_task) == ["cartpole_swingup", "reacher_easy"]
    for task, r in by_task.items():
        assert r.variant == "multitask" and r.complete and r.episodes == 4 and r.env_steps == 640
        assert r.final == pytest.approx(final[f"eval/{task}/return_mean"]) and r.final_source == "eval"
        assert list(r.curve["episodes"]) == [4] and r.openloop is not None
        assert json.loads((r.path / "view.json").read_text())["view_of"] == str(run.resolve())
        assert config_lib.load(r.path / "config.yaml").task == task

    from planet.report import build_report

    build_report(results, tmp_path / "report")
    assert (tmp_path / "report/figures/multitask.png").is_file()
    assert (tmp_path / "report/figures/openloop_multitask.png").is_file()
    assert "One agent for all tasks (paper Figs. 6, 7)" in (tmp_path / "report/README.md").read_text()


@pytest.mark.slow
def test_run_stopped_mid_round_and_resumed_equals_an_uninterrupted_run(tmp_path: Path, monkeypatch):
    """Stop B in round 3 after its first task's episode was written (beyond the checkpoint of round 2); the resumed
    run drops that episode, collects it again and ends equal to the uninterrupted run A."""
    import planet.multitask as multitask

    train(tmp_path / "A", "eval.every=1")

    class Stop(BaseException):
        pass

    calls = []
    collect = multitask.collect_episode

    def stopping(*args, **kwargs):
        calls.append(args[3])
        if len(calls) == 6:  # round 3, second task: episode 4 (round 3, first task) is on disk
            raise Stop
        return collect(*args, **kwargs)

    with monkeypatch.context() as mp:
        mp.setattr(multitask, "collect_episode", stopping)
        with pytest.raises(Stop):
            train(tmp_path / "B", "eval.every=1")
    b = tmp_path / "B"
    assert json.loads((b / "progress.json").read_text())["episodes"] == 4
    assert (b / "episodes/episode_000004.npz").exists()
    train(b, "eval.every=1")

    a_model, b_model = torch.load(tmp_path / "A/model.pt"), torch.load(b / "model.pt")
    assert all(torch.equal(a_model[k], b_model[k]) for k in a_model)
    assert comparable_metrics(b) == comparable_metrics(tmp_path / "A")
    for name in (f"episode_{i:06d}.npz" for i in range(8)):
        (ea, ma), (eb, mb) = load_episode(tmp_path / "A/episodes" / name), load_episode(b / "episodes" / name)
        assert ma == mb and all(np.array_equal(ea[k], eb[k]) for k in ("obs", "action", "reward")), name
