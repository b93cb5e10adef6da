"""Tests of the `planet` command line: help, argument and config errors, a changed config on resume, `bench`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cli_helpers import run_main

from planet.envs import TASKS
from planet.rundir import LOCK_FILE

TASK = "cartpole_swingup"


def run_args(command: str, out: Path, *extra: str, task: str = TASK) -> list[str]:
    """Arguments of a train/collect/config command on the debug preset (`out` is used by train and collect)."""
    out_args = ["--out", str(out)] if command in ("train", "collect") else []
    return [command, "--task", task, "--preset", "debug", *out_args, *extra]


# --------------------------------------------------------------------------------------------------------------
# Help.

OPTIONS = {
    (): ["train", "collect", "evaluate", "diagnose", "config", "bench", "report", "curve", "--verbose", "--help"],
    ("train",): ["--task", "--preset", "--seed", "--out", "--device", "--init-episodes", "--tag", "--no-progress",
                 "KEY=VALUE", "--help"],
    ("collect",): ["--task", "--preset", "--seed", "--out", "--no-progress", "KEY=VALUE", "--help"],
    ("evaluate",): ["--run", "--episodes", "--device", "--no-progress", "--help"],
    ("diagnose",): ["--run", "--out", "--device", "--threads", "--no-progress", "KEY=VALUE", "--help"],
    ("config",): ["--task", "--preset", "--seed", "KEY=VALUE", "--help"],
    ("bench",): ["--device", "--repeats", "--quick", "--threads", "--bf16", "--no-env", "--help"],
    ("baseline",): ["sac", "simulator", "--help"],
    ("baseline", "sac"): ["--task", "--preset", "--seed", "--out", "--device", "--tag", "--no-progress", "KEY=VALUE"],
    ("baseline", "simulator"): ["--task", "--preset", "--seed", "--out", "--tag", "--no-progress", "KEY=VALUE"],
}


@pytest.mark.parametrize("command", list(OPTIONS), ids=lambda c: " ".join(c) or "planet")
def test_help_mentions_every_option(command):
    code, out, _ = run_main([*command, "--help"])
    assert code == 0
    missing = [opt for opt in OPTIONS[command] if opt not in out]
    assert not missing, out
    if command == ("train",):
        assert all(task in out for task in TASKS)  # the valid tasks are listed in the help of --task


def test_console_script_help():
    script = Path(sys.executable).with_name("planet")  # installed by `pip install -e .` into the venv
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "usage: planet" in result.stdout and "train" in result.stdout


# --------------------------------------------------------------------------------------------------------------
# Errors: exit code 2, a message naming the problem and the valid choices; nothing written.


@pytest.mark.parametrize("command", ["train", "collect", "config"])
def test_unknown_task_lists_valid_tasks(command, tmp_path):
    code, out, err = run_main(run_args(command, tmp_path / "out", task="cartpole_balance"))
    assert code == 2
    assert "--task" in err and "cartpole_balance" in err
    assert all(task in err for task in TASKS), err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["train", "collect", "config"])
@pytest.mark.parametrize("override, expected", [
    ("planner.horizn=3", ["'planner.horizn'", "valid keys", "planner.horizon", "planner.candidates"]),
    ("planner.horizon=abc", ["'planner.horizon'", "'abc'", "integer"]),
    ("planr.horizon=3", ["'planr'", "valid keys", "planner"]),
    ("planner.kind=bogus", ["'planner.kind'", "'cem'", "'random_shooting'"]),
    ("planner.horizon", ["'planner.horizon'", "KEY=VALUE"]),
])
def test_bad_override_is_a_config_error(command, override, expected, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a train without --out would write under ./runs
    code, out, err = run_main(run_args(command, tmp_path / "out", override))
    assert code == 2
    assert err.startswith("planet: config error: ") and out == ""
    missing = [text for text in expected if text not in err]
    assert not missing, err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind, section", [("sac", "sac"), ("simulator", "simulator")])
def test_baseline_overrides_come_after_the_options(kind, section, tmp_path):
    """KEY=VALUE after --out/--tag/--no-progress reach the baseline's settings (here: rejected by name)."""
    out = tmp_path / "out"
    code, stdout, err = run_main(["baseline", kind, "--task", TASK, "--preset", "debug", "--out", str(out),
                                  "--tag", "variant=x", "--no-progress", f"{section}.bogus=1"])
    assert code == 2 and stdout == ""
    assert err.startswith("planet: config error: ") and f"'{section}.bogus'" in err, err
    assert not out.exists()


def test_unknown_preset_lists_valid_presets(tmp_path):
    code, _, err = run_main(["config", "--task", TASK, "--preset", "tiny"])
    assert code == 2
    assert "'tiny'" in err and all(name in err for name in ("paper", "cpu", "debug")), err


def test_config_prints_resolved_config():
    import yaml

    code, out, _ = run_main(["config", "--task", TASK, "--preset", "debug", "--seed", "3", "planner.horizon=5"])
    assert code == 0
    tree = yaml.safe_load(out)
    assert (tree["task"], tree["seed"], tree["preset"]) == (TASK, 3, "debug")
    assert tree["planner"]["horizon"] == 5 and tree["env"]["episode_env_steps"] == 160


@pytest.mark.slow
def test_resume_with_changed_config_is_refused(tmp_path):
    """The run directory keeps its config: a different one is refused, naming the key, and nothing is touched."""
    run = tmp_path / "run"
    short = ["--no-progress", "train.episodes=2", "eval.episodes=1", "run.mlflow=false"]
    code, _, err = run_main(run_args("train", run, *short))
    assert code == 0, err
    before = {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != LOCK_FILE}  # the lock records its holder

    code, out, err = run_main(run_args("train", run, *short, "planner.horizon=4"))
    assert code == 2 and out == ""
    assert err.startswith(f"planet: run directory {run}\nplanet: config error: "), err
    assert "planner.horizon: 3 -> 4" in err and "--out" in err, err
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*") if p.name != LOCK_FILE} == before

    code, _, err = run_main(run_args("train", run, "--seed", "1", *short))
    assert code == 2 and "seed: 0 -> 1" in err, err


def test_evaluate_without_a_run_fails_clearly(tmp_path):
    code, _, err = run_main(["evaluate", "--run", str(tmp_path / "nothing"), "--no-progress"])
    assert code == 1 and "not a run directory" in err and "Traceback" not in err
    with pytest.raises(FileNotFoundError, match="not a run directory"):  # --debug: the traceback, for developers
        run_main(["--debug", "evaluate", "--run", str(tmp_path / "nothing"), "--no-progress"])


def test_evaluate_refuses_a_multitask_run_in_one_line(tmp_path):
    from planet import config as config_lib

    run = tmp_path / "mt"
    run.mkdir()
    config_lib.save(config_lib.resolve("all", "debug", 0), run / "config.yaml")
    for command in (["evaluate", "--run", str(run), "--no-progress"], ["diagnose", "--run", str(run), "--no-progress"]):
        code, _, err = run_main(command)
        assert code == 1 and "is a multi-task run" in err and "Traceback" not in err, err


# --------------------------------------------------------------------------------------------------------------
# Benchmark.


@pytest.mark.slow
def test_bench_quick_prints_timings():
    code, out, err = run_main(["bench", "--quick", "--repeats", "1"])
    assert code == 0, err
    result = json.loads(out)
    assert result["quick"] is True and result["repeats"] == 1
    assert result["update"]["update_s"] > 0 and result["update"]["update_flop"] > 0
    assert result["plan"]["plan_s"] > 0 and result["plan"]["plan_s_10_beliefs"] > 0
    # quick sizes: J=64 candidates x I=2 iterations x H=4 steps, each a handful of paper-size layers (~0.77 MFLOP
    # per candidate step at J=1000: GRU 240k MAC, reward head 86k, prior 52k, embedding 6k)
    assert 64 * 2 * 4 * 0.5e6 < result["plan"]["plan_flop"] < 64 * 2 * 4 * 1.0e6
    assert result["plan"]["plan_fraction_of_matmul_rate"] > 0
    assert [env["task"] for env in result["env"]] == ["cartpole_swingup", "walker_walk"]
    for env in result["env"]:
        assert env["env_steps_per_s"] > 0 and env["render_s_per_frame"] > 0
        assert env["cpu_preset_shadow_map"] == 512 and env["render_speedup_cpu_preset_shadow_map"] > 0
        assert env["env_steps_per_s"] == pytest.approx(env["agent_steps_per_s"] * env["action_repeat"])
    assert result["matmul_flop_per_s"] > 0 and result["update_fraction_of_matmul_rate"] > 0
    # bfloat16 is timed where it is native here and said to be skipped otherwise, never half of each
    timed = result["auto_precision"]["bf16_timed"]
    assert timed == ("update_s_bf16" in result["update"]) == ("plan_s_bf16" in result["plan"])
    assert timed != ("bf16_skipped" in result["auto_precision"])


@pytest.mark.parametrize("device", ["cuda", "foo"])
def test_an_unusable_device_is_one_line(tmp_path, device):
    import torch

    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    argv = ["train", "--task", TASK, "--preset", "debug", "--device", device, "--out", str(tmp_path / "r"),
            "--no-progress", "run.mlflow=false"]
    code, _, err = run_main(argv)
    assert code == 2 and "Traceback" not in err
    assert f"planet: error: --device {device}" in err and "cpu" in err, err


def test_train_refuses_a_config_other_than_the_pipeline_hashed(tmp_path):
    """`--expect-hash` (passed by the pipeline's train rule): a job whose params differ from what Snakemake hashed
    fails in one line before touching the run directory."""
    out = tmp_path / "r"
    argv = ["train", "--task", TASK, "--preset", "debug", "--expect-hash", "000000000000", "--out", str(out),
            "--no-progress", "run.mlflow=false"]
    code, _, err = run_main(argv)
    assert code == 2 and "Traceback" not in err and "params hash" in err and "000000000000" in err, err
    assert not out.exists()


def _completed_debug_run(tmp_path: Path) -> Path:
    run = tmp_path / "done"
    code, _, err = run_main(["train", "--task", TASK, "--preset", "debug", "--device", "cpu", "--out", str(run),
                             "--no-progress", "train.episodes=3", "eval.episodes=1", "run.mlflow=false"])
    assert code == 0, err
    return run


@pytest.mark.slow
def test_everyday_mistakes_are_one_line_without_a_traceback(tmp_path):
    """Each expected failure: `planet: ...error: WHAT (FILE) - HOW TO FIX`, exit 2 for usage and 1 for runtime."""
    run = _completed_debug_run(tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    broken_ckpt = tmp_path / "broken_ckpt"
    broken_ckpt.mkdir()
    (broken_ckpt / "config.yaml").write_text((run / "config.yaml").read_text())
    (broken_ckpt / "checkpoint.pt").write_bytes(b"not a checkpoint")
    broken_cfg = tmp_path / "broken_cfg"
    broken_cfg.mkdir()
    (broken_cfg / "config.yaml").write_text("h: [unclosed\n")
    train = ["train", "--task", TASK, "--preset", "debug", "--device", "cpu", "--no-progress", "run.mlflow=false"]
    cases = [
        (train + ["--out", str(a_file)], 1, "a_file"),  # --out names an existing file
        ([*train[:-1], "--out", str(broken_ckpt), "run.mlflow=false", "train.episodes=3", "eval.episodes=1"], 1,
         "checkpoint.pt"),  # a corrupt checkpoint
        (train + ["--out", str(broken_cfg)], 2, "config.yaml"),  # corrupt config.yaml
        (["evaluate", "--run", str(tmp_path / "nope"), "--device", "cpu"], 1, "nope"),  # missing run directory
        (["evaluate", "--run", str(run), "--episodes", "-2"], 2, "-2"),
        (["evaluate", "--run", str(run), "--episodes", "0"], 2, "0 is not >= 1"),
    ]
    if os.geteuid() != 0:  # root writes anywhere
        cases.append((train + ["--out", str(locked / "run")], 1, "locked"))
    for argv, status, mention in cases:
        try:
            code, _, err = run_main(argv)
        except SystemExit as exc:  # argparse usage errors
            code, err = exc.code, ""
        assert code == status, (argv, code, err)
        assert "Traceback" not in err, (argv, err)
        if err:
            last = err.strip().splitlines()[-1]
            assert last.startswith("planet") and "error: " in last and mention in last, (argv, err)
    locked.chmod(0o700)
