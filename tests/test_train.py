"""End-to-end tests of `planet train`, `planet collect` and `planet evaluate` on real dm_control tasks.

Every run uses the tiny `debug` preset (seconds per run). The key test is that a run killed with SIGKILL and resumed
from its checkpoint ends bit-identical to an uninterrupted run. Runs go through `planet.cli.main` in-process, except
where a real process is needed (to be killed), which runs `python -m planet.cli`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import run_main

from planet import config as config_lib
from planet import precision, tracking
from planet.replay import load_episode
from planet.rundir import LOCK_FILE
from planet.train import Trainer

pytestmark = pytest.mark.slow  # the slow lane: every test here trains on real dm_control tasks

TASK = "cartpole_swingup"
EPISODE_ENV_STEPS = 160  # env.episode_env_steps of the debug preset
FAST = ["train.episodes=3", "eval.episodes=1", "run.mlflow=false"]  # a short run that skips MLflow
TRAIN_KEYS = ("train/loss/image", "train/loss/reward", "train/loss/kl", "train/grad_norm")


# --------------------------------------------------------------------------------------------------------------
# Helpers.


def train_argv(out: Path, *overrides: str, task: str = TASK) -> list[str]:
    # --device cpu: bit-identical resume (tested below) is a CPU guarantee; on CUDA a resume continues the same
    # distribution, not the same bits (docs/pipeline.md, "GPUs"), so these tests mean the same on a GPU machine.
    return ["train", "--task", task, "--preset", "debug", "--seed", "0", "--device", "cpu", "--out", str(out),
            "--no-progress", *overrides]


def train(out: Path, *overrides: str, task: str = TASK) -> dict:
    """Train to completion in this process; returns the summary printed on stdout."""
    code, stdout, stderr = run_main(train_argv(out, *overrides, task=task))
    assert code == 0, stderr
    return json.loads(stdout)


def cli_process(argv: list[str], cwd: Path) -> subprocess.Popen:
    """`python -m planet.cli ARGV` as a real process (inherits MLFLOW_TRACKING_URI and MUJOCO_GL)."""
    return subprocess.Popen([sys.executable, "-m", "planet.cli", *argv], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    """Wait for a process to exit successfully; returns its stderr."""
    try:
        _, stderr = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    return stderr


def progress_episodes(run_dir: Path) -> int:
    """Episodes of the latest checkpoint (RUN/progress.json is written with it, atomically), -1 before the first."""
    path = run_dir / "progress.json"
    return json.loads(path.read_text())["episodes"] if path.exists() else -1


def kill_when(proc: subprocess.Popen, condition, what: str, timeout: float = 180) -> None:
    """SIGKILL `proc` as soon as `condition()` holds (polled every 10 ms)."""
    deadline = time.monotonic() + timeout
    try:
        while not condition():
            assert proc.poll() is None, f"run ended (rc {proc.returncode}) before {what}: {proc.communicate()[1]}"
            assert time.monotonic() < deadline, f"no {what} after {timeout} s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def read_metrics(run_dir: Path) -> list[dict]:
    return tracking.read_metrics(run_dir / "metrics.jsonl")  # skips a final line being written


def comparable_metrics(run_dir: Path) -> list[dict]:
    """metrics.jsonl without what legitimately differs between runs: wall-clock `time` and `perf/*`."""
    return [{k: v for k, v in rec.items() if k != "time" and not k.startswith("perf/")}
            for rec in read_metrics(run_dir)]


def comparable_summary(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("wall_s_last_session")
    summary["final_eval"] = {k: v for k, v in summary["final_eval"].items() if not k.startswith("perf/")}
    return summary


def episodes_of(run_dir: Path) -> dict[str, tuple[dict[str, np.ndarray], dict]]:
    return {p.name: load_episode(p) for p in sorted((run_dir / "episodes").glob("episode_*.npz"))}


def assert_same_episodes(a: dict, b: dict, names: list[str] | None = None) -> None:
    """Equal arrays and metadata for episode files `names` (default: all, and both runs have the same files)."""
    if names is None:
        assert sorted(a) == sorted(b)
        names = sorted(a)
    assert names and set(names) <= set(a) and set(names) <= set(b), (sorted(a), sorted(b))
    for name in names:
        (ea, meta_a), (eb, meta_b) = a[name], b[name]
        for key in ("obs", "action", "reward", "state"):  # the true state too (planet/diagnostics.py reads it)
            assert ea[key].dtype == eb[key].dtype and np.array_equal(ea[key], eb[key]), f"{name}: {key} differs"
        assert meta_a == meta_b, name


def assert_same_state_dict(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ: {different}"


def assert_same_model(run_a: Path, run_b: Path) -> None:
    assert_same_state_dict(torch.load(run_a / "model.pt"), torch.load(run_b / "model.pt"))


def mlflow_client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def mlflow_run_id(run_dir: Path) -> str:
    return json.loads((run_dir / "mlflow_run.json").read_text())["run_id"]


@dataclass(frozen=True)
class CompletedRun:
    dir: Path
    uri: str
    stdout_summary: dict


@pytest.fixture(scope="module")
def cartpole_run(tmp_path_factory) -> CompletedRun:
    """One default debug run on cartpole, with MLflow on, shared by the tests that only read it.

    Module-scoped, so it cannot use the function-scoped `isolated_mlflow`; it does the same (own sqlite store in a
    temporary directory, which is also the working directory) for the duration of the run.
    """
    root = tmp_path_factory.mktemp("cartpole_run")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.chdir(root)
        summary = train(root / "run")
    return CompletedRun(root / "run", uri, summary)


# --------------------------------------------------------------------------------------------------------------
# A complete run: files, metrics, MLflow.


def test_train_writes_run_directory(cartpole_run):
    run = cartpole_run.dir
    for name in ("config.yaml", "checkpoint.pt", "progress.json", "model.pt", "metrics.jsonl", "params.json",
                 "mlflow_run.json", "summary.json", "eval/eval.gif", "eval/openloop.png"):
        assert (run / name).is_file(), name
    assert (run / "eval/eval.gif").read_bytes()[:4] == b"GIF8"
    from PIL import Image

    with Image.open(run / "eval/eval.gif") as gif:
        assert gif.size == (64 * 3, 64 * 3)  # enlarged to be watchable in MLflow's artifact viewer
    with Image.open(run / "eval/openloop.png") as strip:  # labelled: truth/model rows, context/open-loop columns
        assert strip.info["planet-openloop"] == "labelled, context=5"
        assert strip.size == (52 + 21 * 64, 18 + 2 * 64)  # the 21-frame episode, margin and header
    assert sorted(p.name for p in (run / "episodes").iterdir()) == [f"episode_{i:06d}.npz" for i in range(4)]
    assert config_lib.load(run / "config.yaml") == config_lib.resolve(TASK, "debug", 0)

    # Episodes: 160 env steps / action repeat 8 = 20 agent steps + the reset row; seed episodes random, then MPC.
    for i, (episode, meta) in enumerate(episodes_of(run).values()):
        assert episode["obs"].shape == (21, 64, 64, 3) and episode["action"].shape == (21, 1)
        assert meta["index"] == i and meta["policy"] == ("random" if i < 2 else "mpc")
        assert meta["return"] == pytest.approx(float(episode["reward"].sum()))

    summary = json.loads((run / "summary.json").read_text())
    assert summary == cartpole_run.stdout_summary  # also printed on stdout
    assert (summary["episodes"], summary["env_steps"], summary["updates"]) == (4, 4 * EPISODE_ENV_STEPS, 2 * 2)
    assert json.loads((run / "progress.json").read_text()) == {"episodes": 4, "env_steps": 640, "updates": 4}
    assert summary["params_hash"] == config_lib.resolve(TASK, "debug", 0).digest()

    # Metrics: the step axis is env steps; one collect line per episode, training lines after the seed episodes.
    records = read_metrics(run)
    assert all(r["step"] % EPISODE_ENV_STEPS == 0 and 0 < r["step"] <= 640 for r in records)
    collect = [r for r in records if "collect/return" in r]
    assert [r["step"] for r in collect] == [160, 320, 480, 640]
    assert [r["episodes"] for r in collect] == [1, 2, 3, 4]
    for r in collect[2:]:
        assert r["perf/updates_per_s"] > 0 and r["perf/env_steps_per_s"] > 0
        # cartpole repeats each action 8 times: 160 / 8 = 20 agent steps, 21 frames of 64 x 64 x 3 bytes per episode
        assert r["perf/replay_obs_gb"] == r["episodes"] * 21 * 64 * 64 * 3 / 1e9
        assert 0.1 < r["perf/rss_gb"] <= r["perf/peak_rss_gb"] + 0.01  # torch alone holds > 100 MB
        for key in TRAIN_KEYS:
            assert math.isfinite(r[key]), key
    assert not any(k.startswith("train/") for r in collect[:2] for k in r)
    evals = [r for r in records if "eval/return_mean" in r]
    assert [r["step"] for r in evals] == [640]  # eval.every=2: first due at episode 4, the last one
    assert evals[-1]["eval/episodes"] == 2 and evals[-1]["eval/return_std"] >= 0
    assert {k: v for k, v in evals[-1].items() if k.startswith("eval/")} == {
        k: v for k, v in summary["final_eval"].items() if k.startswith("eval/")}


def test_train_mirrors_to_mlflow(cartpole_run):
    run, client = cartpole_run.dir, mlflow_client(cartpole_run.uri)
    info = json.loads((run / "mlflow_run.json").read_text())
    mlrun = client.get_run(info["run_id"])
    assert mlrun.info.status == "FINISHED"
    assert client.get_experiment(mlrun.info.experiment_id).name == "planet"
    assert mlrun.data.params["planner.horizon"] == "3" and mlrun.data.params["train.episodes"] == "4"
    tags = mlrun.data.tags
    assert (tags["task"], tags["seed"], tags["agent_preset"], tags["model"]) == (TASK, "0", "debug", "rssm")
    assert tags["params_hash"] == cartpole_run.stdout_summary["params_hash"]

    # Metric history mirrors metrics.jsonl (same steps and values).
    for key in ("eval/return_mean", "collect/return", "train/loss/image"):
        expect = [(r["step"], r[key]) for r in read_metrics(run) if key in r]
        history = sorted((m.step, m.value) for m in client.get_metric_history(info["run_id"], key))
        assert history == expect, key

    def artifacts(path=None):
        return {a.path for a in client.list_artifacts(info["run_id"], path)}

    assert {"config.yaml", "model", "eval"} <= artifacts()
    assert artifacts("model") == {"model/model.pt"}
    assert artifacts("eval") == {"eval/eval.gif", "eval/openloop.png"}


def test_rerun_of_complete_run_is_noop(cartpole_run):
    run = cartpole_run.dir
    before = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run.rglob("*")
              if p.is_file() and p.name != LOCK_FILE}  # the lock file records each holder
    # Same command, same store: returns the stored summary without touching anything.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", cartpole_run.uri)
        summary = train(run)
    assert summary == cartpole_run.stdout_summary == json.loads((run / "summary.json").read_text())
    after = {p: (p.stat().st_mtime_ns, p.stat().st_size) for p in run.rglob("*") if p.is_file() and p.name != LOCK_FILE}
    assert after == before
    client = mlflow_client(cartpole_run.uri)
    assert len(client.search_runs([client.get_experiment_by_name("planet").experiment_id])) == 1


# --------------------------------------------------------------------------------------------------------------
# Resuming.


@pytest.mark.slow
def test_killed_and_resumed_run_equals_uninterrupted_run(isolated_mlflow, tmp_path):
    """SIGKILL B three times, each restart resuming from its checkpoint: during the seed episodes, during training,
    and during the final evaluation (after episode 6 was written and logged, before its checkpoint).

    B must end bit-identical to the uninterrupted run A: same weights, episodes, metrics and summary. One intra-op
    thread makes float reductions reproducible across processes; A and B run in parallel (2 cores).
    """
    overrides = ["train.episodes=6", "eval.every=3", "run.threads=1"]
    a, b = tmp_path / "A", tmp_path / "B"
    proc_a = cli_process(train_argv(a, *overrides), tmp_path)
    try:
        kill_when(cli_process(train_argv(b, *overrides), tmp_path), lambda: progress_episodes(b) >= 1,
                  "checkpoint after episode 1")
        assert progress_episodes(b) == 1 and not (b / "summary.json").exists()  # killed during the seed episodes
        run_id = mlflow_run_id(b)

        kill_when(cli_process(train_argv(b, *overrides), tmp_path), lambda: progress_episodes(b) >= 3,
                  "checkpoint after episode 3")
        assert 3 <= progress_episodes(b) < 6 and not (b / "summary.json").exists()  # killed during training

        def final_episode_logged() -> bool:
            return (b / "metrics.jsonl").exists() and any(
                r.get("episodes") == 6 for r in read_metrics(b) if "collect/return" in r)

        kill_when(cli_process(train_argv(b, *overrides), tmp_path), final_episode_logged, "episode 6 logged")
        # Killed during the final evaluation: episode 6's file and metrics lines are ahead of the checkpoint.
        assert progress_episodes(b) == 5 and not (b / "summary.json").exists()
        assert (b / "episodes/episode_000005.npz").exists()

        stderr = finish(cli_process(train_argv(b, *overrides), tmp_path))
        assert "resumed" in stderr and "at episode 5" in stderr
    finally:
        finish(proc_a)

    assert_same_model(a, b)
    ckpt_a, ckpt_b = (torch.load(r / "checkpoint.pt", weights_only=False) for r in (a, b))
    assert ckpt_a["counters"] == ckpt_b["counters"] == {"episodes": 6, "updates": 8}
    assert torch.equal(ckpt_a["train_gen"], ckpt_b["train_gen"])
    assert ckpt_a["replay"] == ckpt_b["replay"]
    optim_a, optim_b = ckpt_a["optimizer"]["state"], ckpt_b["optimizer"]["state"]
    assert optim_a.keys() == optim_b.keys()
    for param in optim_a:
        assert_same_state_dict(optim_a[param], optim_b[param])
    episodes_a = episodes_of(a)
    assert len(episodes_a) == 6
    assert_same_episodes(episodes_a, episodes_of(b))
    metrics_a = comparable_metrics(a)
    assert [r["step"] for r in metrics_a if "collect/return" in r] == [160 * i for i in range(1, 7)]
    assert [r["step"] for r in metrics_a if "eval/return_mean" in r] == [480, 960]
    assert comparable_metrics(b) == metrics_a  # nothing duplicated or missing after the truncation on resume
    assert comparable_summary(b) == comparable_summary(a)
    # The resumed sessions continued B's MLflow run instead of starting new ones.
    assert mlflow_run_id(b) == run_id
    client = mlflow_client(isolated_mlflow)
    assert client.get_run(run_id).info.status == "FINISHED"
    assert len(client.search_runs([client.get_experiment_by_name("planet").experiment_id])) == 2
    # MLflow holds each point once, as metrics.jsonl does (the steps re-run after each resume are not sent twice)
    for key in ("collect/return", "train/loss/image", "eval/return_mean"):
        expect = [(r["step"], r[key]) for r in read_metrics(b) if key in r]
        assert sorted((m.step, m.value) for m in client.get_metric_history(run_id, key)) == expect, key


class _Interrupted(BaseException):
    pass


@pytest.mark.slow
def test_run_interrupted_before_its_first_checkpoint_restarts_cleanly(isolated_mlflow, tmp_path, monkeypatch,
                                                                      cartpole_run):
    """An interruption after episode 0 was written but before any checkpoint leaves a file and a metrics line.

    The restart must drop them and give exactly the run an uninterrupted one gives (same config, same process).
    It runs from another working directory without MLFLOW_TRACKING_URI, and must still continue the MLflow run
    recorded in RUN/mlflow_run.json.
    """

    def interrupted(self):
        raise _Interrupted

    with monkeypatch.context() as mp:
        mp.setattr(Trainer, "save_checkpoint", interrupted)
        with pytest.raises(_Interrupted):
            run_main(train_argv(tmp_path / "run"))
    run = tmp_path / "run"
    assert [p.name for p in (run / "episodes").iterdir()] == ["episode_000000.npz"]
    assert len(read_metrics(run)) == 1 and not (run / "checkpoint.pt").exists()

    run_id = mlflow_run_id(run)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    monkeypatch.chdir(elsewhere)
    train(run)
    assert mlflow_run_id(run) == run_id and list(elsewhere.iterdir()) == []
    assert mlflow_client(isolated_mlflow).get_run(run_id).info.status == "FINISHED"
    assert_same_model(run, cartpole_run.dir)
    assert_same_episodes(episodes_of(run), episodes_of(cartpole_run.dir))
    assert comparable_metrics(run) == comparable_metrics(cartpole_run.dir)


# --------------------------------------------------------------------------------------------------------------
# Seed episodes from `planet collect`.


@pytest.mark.slow
def test_resume_loads_on_the_cpu_and_refuses_another_device_type(tmp_path, monkeypatch):
    """Checkpoints load with map_location='cpu' (generator states must be CPU byte tensors, for CUDA generators
    too: loading onto the GPU made every CUDA resume fail), and a run is resumed only on the device type it was
    trained on (CPU and CUDA generators differ), with one clear line otherwise."""
    import planet.train as train_module

    out = tmp_path / "run"
    train(out, *FAST)
    (out / "summary.json").unlink()  # make the complete run resumable again
    seen = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        seen.append(kwargs.get("map_location"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(train_module.torch, "load", recording_load)
    train(out, *FAST)  # resumes from the checkpoint (nothing left to train) and finishes
    assert seen and set(seen) == {"cpu"}
    monkeypatch.setattr(train_module.torch, "load", real_load)

    (out / "summary.json").unlink()
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["device_type"] == "cpu"
    torch.save({**state, "device_type": "cuda"}, out / "checkpoint.pt")
    code, _, err = run_main(train_argv(out, *FAST))
    assert code == 2 and "Traceback" not in err
    assert "was trained on cuda" in err and "--device cuda" in err and len(err.strip().splitlines()) == 2, err


def test_tracking_settings_are_not_part_of_a_runs_identity(isolated_mlflow, tmp_path):
    """A run made with MLflow resumes with run.mlflow=false (and other threads): same params hash, same run."""
    out = tmp_path / "run"
    threads = torch.get_num_threads()  # run.threads sets torch's process-wide value: restore it for later tests
    try:
        first = train(out, "train.episodes=3", "eval.episodes=1", "run.threads=2")
        (out / "summary.json").unlink()
        again = train(out, *FAST, "run.threads=1")
    finally:
        torch.set_num_threads(threads)
    assert again["params_hash"] == first["params_hash"]
    assert yaml.safe_load((out / "config.yaml").read_text())["run"]["mlflow"] is False  # the settings it used
    assert not any(p.name == ".replaced" for p in tmp_path.iterdir())
    code, _, err = run_main(train_argv(out, *FAST, "planner.horizon=2"))  # a setting of the agent: refused
    assert code == 2 and "different config" in err and "planner.horizon" in err


def test_a_replaced_run_is_marked_in_mlflow(isolated_mlflow, tmp_path):
    """A rerun after a config change (the pipeline's --on-config-change archive) tags the old MLflow run replaced and
    renames it, so the UI's groups stop mixing old and new runs of one name."""
    out = tmp_path / "run"
    old = train(out, "train.episodes=3", "eval.episodes=1", "--tag", "variant=planet")
    old_id = json.loads((out / "mlflow_run.json").read_text())["run_id"]
    new = train(out, "train.episodes=3", "eval.episodes=1", "planner.horizon=2", "--tag", "variant=planet",
                "--on-config-change", "archive")
    assert new["params_hash"] != old["params_hash"]
    client = mlflow_client(isolated_mlflow)
    replaced = client.get_run(old_id)
    assert replaced.data.tags["replaced"] == "true"
    assert replaced.data.tags["replaced_by_params_hash"] == new["params_hash"]
    assert replaced.info.run_name == "planet-cartpole_swingup-seed0 (replaced)"
    current = client.get_run(json.loads((out / "mlflow_run.json").read_text())["run_id"])
    assert current.info.run_name == "planet-cartpole_swingup-seed0" and "replaced" not in current.data.tags
    assert len(list((tmp_path / ".replaced").iterdir())) == 1  # and the old run directory was kept


@pytest.mark.parametrize("damage", ["cut 100 bytes", "delete"])
def test_resume_copes_with_a_metrics_file_shorter_than_the_checkpoint(tmp_path, damage, caplog):
    """metrics.jsonl cut or deleted after the last checkpoint: the run resumes (warning once) instead of failing
    on every attempt, and keeps logging after the lines that remain."""
    out = tmp_path / "run"
    train(out, *FAST)
    (out / "summary.json").unlink()  # resumable again, from the checkpoint after the last episode
    metrics = out / "metrics.jsonl"
    before = len(read_metrics(out))
    if damage == "delete":
        metrics.unlink()
    else:
        os.truncate(metrics, metrics.stat().st_size - 100)
    with caplog.at_level("WARNING"):
        code, _, err = run_main(train_argv(out, *FAST))
    assert code == 0 and "Traceback" not in err, err
    assert "are lost" in caplog.text
    lines = read_metrics(out)
    assert lines and "eval/return_mean" in lines[-1] and (out / "summary.json").exists()
    assert len(lines) < before + 1


def test_init_episodes_equal_self_collected_seed_episodes(tmp_path, cartpole_run):
    code, stdout, stderr = run_main(["collect", "--task", TASK, "--preset", "debug", "--seed", "0",
                                     "--out", str(tmp_path / "S"), "--no-progress"])
    assert code == 0, stderr
    assert json.loads(stdout) == {"out": str(tmp_path / "S"), "episodes": 2}
    collected = episodes_of(tmp_path / "S")
    assert sorted(collected) == ["episode_000000.npz", "episode_000001.npz"]
    assert_same_episodes(collected, episodes_of(cartpole_run.dir), sorted(collected))

    run = tmp_path / "run"
    code, _, stderr = run_main([*train_argv(run, "run.mlflow=false"), "--init-episodes", str(tmp_path / "S")])
    assert code == 0, stderr
    # Not only the seed episodes: the whole run is that of cartpole_run (which differs only in run.mlflow).
    assert_same_episodes(episodes_of(run), episodes_of(cartpole_run.dir))
    assert_same_model(run, cartpole_run.dir)
    assert comparable_metrics(run) == comparable_metrics(cartpole_run.dir)


def test_init_episodes_of_another_seed_are_refused(tmp_path):
    code, _, stderr = run_main(["collect", "--task", TASK, "--preset", "debug", "--seed", "1",
                                "--out", str(tmp_path / "S1"), "--no-progress", "train.seed_episodes=1"])
    assert code == 0, stderr
    code, _, stderr = run_main([*train_argv(tmp_path / "run", *FAST, "train.seed_episodes=1"),
                                "--init-episodes", str(tmp_path / "S1")])
    assert code == 1 and stderr.splitlines()[-1].startswith("planet: error: "), stderr
    assert re.search(r"does not match this run.*'seed': \(1, 0\)", stderr) and "Traceback" not in stderr, stderr
    assert not (tmp_path / "run").exists()  # refused before a run directory (or an MLflow run) was made
    # a directory without episodes (e.g. a typo'd path) is refused too, instead of silently collecting new ones
    code, _, stderr = run_main([*train_argv(tmp_path / "run2", *FAST), "--init-episodes", str(tmp_path / "nope")])
    assert code == 1 and "no episodes in" in stderr and "nope" in stderr, stderr
    assert not (tmp_path / "run2").exists()


def test_resume_with_a_deleted_episode_warns_and_tags_the_run(tmp_path, caplog):
    """A corrupt episode file deleted as its error message advises: the run resumes with a smaller replay, and says so
    (log warning and the run's tags) instead of silently differing from an uninterrupted run."""
    out = tmp_path / "run"
    train(out, *FAST)
    (out / "summary.json").unlink()  # resumable again, from the checkpoint after the last episode
    (out / "episodes/episode_000001.npz").unlink()
    with caplog.at_level("WARNING"):
        code, _, err = run_main(train_argv(out, *FAST))
    assert code == 0 and "Traceback" not in err, err
    assert re.search(r"1 of the 3 episodes .* missing .*indices \[1\].* replay of 2 episodes", caplog.text)
    assert json.loads((out / "tags.json").read_text())["replay_missing_episodes"] == "1"


def test_a_run_with_auto_precision_says_when_a_resume_changed_it(tmp_path, monkeypatch):
    """`auto` decides on the machine a run is (re)started on: a run begun where bf16 measured slower (float32) and
    resumed where it measured faster keeps training, and its tags say that its precision changed, and when."""
    out = tmp_path / "run"
    auto = ["compute.update_precision=auto", "compute.plan_precision=auto"]
    monkeypatch.setattr(precision, "bf16_speedup", lambda device: 0.5)
    train(out, *FAST, *auto)
    tags = json.loads((out / "tags.json").read_text())
    assert tags["update_precision"] == "fp32" and tags["update_precision_history"] == "fp32"
    (out / "summary.json").unlink()  # resumable again, from the checkpoint after the last episode
    monkeypatch.setattr(precision, "bf16_speedup", lambda device: 3.0)
    train(out, *FAST, *auto)
    tags = json.loads((out / "tags.json").read_text())
    assert tags["update_precision"] == tags["plan_precision"] == "bf16"
    assert tags["update_precision_history"] == tags["plan_precision_history"] == "fp32 bf16"
    train(tmp_path / "fixed", *FAST)  # a fixed precision cannot change without changing the run's config
    assert "update_precision_history" not in json.loads((tmp_path / "fixed" / "tags.json").read_text())


# --------------------------------------------------------------------------------------------------------------
# `planet evaluate`.


def test_evaluate_logs_to_the_training_runs_mlflow_run(tmp_path, monkeypatch, cartpole_run):
    """Also from another working directory without MLFLOW_TRACKING_URI: the store recorded in RUN/mlflow_run.json
    is used, not a new ./mlflow.db."""
    run = tmp_path / "A"
    shutil.copytree(cartpole_run.dir, run)  # a copy: other tests compare the shared run's files
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    copy = tmp_path / "eval" / "seed0.json"  # as the pipeline names it
    code, stdout, stderr = run_main(["evaluate", "--run", str(run), "--episodes", "3", "--no-progress",
                                     "--out", str(copy)])
    assert code == 0, stderr
    result = json.loads((run / "evaluation.json").read_text())
    assert result == json.loads(stdout) == json.loads(copy.read_text())
    assert (result["split"], result["episodes"], len(result["returns"])) == ("test", 3, 3)
    assert result["return_mean"] == pytest.approx(np.mean(result["returns"]))
    assert (result["complete"], result["train_episodes"], result["env_steps"]) == (True, 4, 640)

    client = mlflow_client(cartpole_run.uri)
    run_id = mlflow_run_id(run)
    assert run_id == mlflow_run_id(cartpole_run.dir)
    history = client.get_metric_history(run_id, "test/return_mean")
    assert [(m.step, m.value) for m in history] == [(640, pytest.approx(result["return_mean"]))]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert "evaluation.json" in artifacts and "seed0.json" not in artifacts  # named for what it is
    assert len(client.search_runs([client.get_experiment_by_name("planet").experiment_id])) == 1
    assert not (tmp_path / "mlflow.db").exists()
