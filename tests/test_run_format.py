"""Old run directories keep working (planet/rundir/): the run directories under tests/fixtures/, written by earlier
releases (tests/fixtures/README.md), are evaluated and resumed by this code; a run this code cannot read is refused in
one line naming the version that wrote it and what to do, and an older format is migrated by the run's writer."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import run_main

from planet import config as config_lib
from planet import rundir
from planet.rundir import layout
from planet.tracking import read_metrics

FIXTURES = Path(__file__).parent / "fixtures"
OLD_RUNS = sorted(p for p in FIXTURES.glob("run-*") if p.is_dir())


def copy_of(fixture: Path, tmp_path: Path) -> Path:
    run = tmp_path / fixture.name
    shutil.copytree(fixture, run)
    return run


def resume_argv(run: Path) -> list[str]:
    """`planet train` that resumes RUN: its task, preset and seed, and every value of its config.yaml as an override
    (so that a later change of the preset does not make it another run)."""
    cfg = config_lib.load(run / rundir.CONFIG_FILE)
    overrides = [f"{key}={json.dumps(value)}" for key, value in cfg.flat().items()
                 if key not in ("task", "seed", "preset")]
    return ["train", "--task", cfg.task, "--preset", cfg.preset, "--seed", str(cfg.seed), "--device", "cpu",
            "--out", str(run), "--no-progress", *overrides]


def evaluate(run: Path) -> dict:
    code, stdout, stderr = run_main(["evaluate", "--run", str(run), "--device", "cpu", "--no-progress"])
    assert code == 0, stderr
    return json.loads(stdout)


def one_line_error(argv: list[str], code: int = 1) -> str:
    status, _, err = run_main(argv)
    assert status == code and "Traceback" not in err, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("planet: error: "), err
    return line


def test_the_fixtures_are_small_and_complete_enough_to_resume():
    assert OLD_RUNS, f"no run-* directories in {FIXTURES}"
    for run in OLD_RUNS:
        size = sum(p.stat().st_size for p in run.rglob("*") if p.is_file())
        assert size < 700_000, f"{run}: {size} bytes"
        for name in (rundir.CONFIG_FILE, rundir.CHECKPOINT_FILE, rundir.PROGRESS_FILE, rundir.METRICS_FILE):
            assert (run / name).is_file(), f"{run}: no {name}"
        assert list((run / rundir.EPISODES_DIR).glob("*.npz")), f"{run}: no episodes"
        assert not (run / rundir.SUMMARY_FILE).exists(), f"{run}: complete, so a resume would have nothing to do"


@pytest.mark.slow
@pytest.mark.parametrize("fixture", OLD_RUNS, ids=[p.name for p in OLD_RUNS])
def test_an_old_run_directory_is_evaluated_resumed_and_evaluated_again(fixture, tmp_path):
    run = copy_of(fixture, tmp_path)
    before = rundir.progress(run)
    cfg = config_lib.load(run / rundir.CONFIG_FILE)

    result = evaluate(run)  # from its checkpoint
    assert (result["complete"], result["train_episodes"], result["env_steps"]) == (
        False, before["episodes"], before["env_steps"])
    assert result["episodes"] == cfg.eval.episodes and len(result["returns"]) == cfg.eval.episodes

    code, stdout, stderr = run_main(resume_argv(run))
    assert code == 0, stderr
    summary = json.loads(stdout)
    assert summary == rundir.finished(run)
    episodes = cfg.train.episodes
    assert (summary["episodes"], summary["env_steps"]) == (episodes, episodes * cfg.env.episode_env_steps)
    resumed_rounds = episodes - max(before["episodes"], cfg.train.seed_episodes)
    assert summary["updates"] == before["updates"] + resumed_rounds * cfg.train.updates_per_episode
    assert summary["params_hash"] == cfg.digest()  # the same run: its hash (and the directory's name) unchanged
    for old in (fixture / rundir.EPISODES_DIR).iterdir():  # its episodes were kept, not collected again
        assert (run / rundir.EPISODES_DIR / old.name).read_bytes() == old.read_bytes()
    assert len(list((run / rundir.EPISODES_DIR).iterdir())) == episodes
    old_metrics = (fixture / rundir.METRICS_FILE).read_bytes()
    assert (run / rundir.METRICS_FILE).read_bytes().startswith(old_metrics)  # logging went on after its lines
    assert read_metrics(run / rundir.METRICS_FILE)[-1]["episodes"] == episodes
    assert (run / rundir.MODEL_FILE).is_file() and (run / rundir.EVAL_DIR / rundir.OPENLOOP_FILE).is_file()
    tags = json.loads((run / rundir.TAGS_FILE).read_text())
    assert (tags["run_format"], tags["planet_version"]) == (str(rundir.FORMAT), rundir.VERSION)
    assert tags["planet_versions"].split()[-1] == rundir.VERSION

    result = evaluate(run)  # from its final model
    assert (result["complete"], result["train_episodes"], result["env_steps"]) == (
        True, episodes, summary["env_steps"])


def test_a_run_of_a_newer_format_is_refused_in_one_line(tmp_path):
    run = copy_of(OLD_RUNS[-1], tmp_path)
    tags = json.loads((run / rundir.TAGS_FILE).read_text())
    (run / rundir.TAGS_FILE).write_text(json.dumps({**tags, "run_format": str(rundir.FORMAT + 1),
                                                    "planet_version": "9.9.0"}))
    line = one_line_error(["evaluate", "--run", str(run), "--device", "cpu"])
    assert f"{run} was written by planet-repro 9.9.0 (run-directory format {rundir.FORMAT + 1})" in line, line
    assert "use planet-repro 9.9.0 or newer for this run" in line, line
    line = one_line_error(resume_argv(run))
    assert "planet-repro 9.9.0" in line and "newer" in line, line
    assert not (run / rundir.SUMMARY_FILE).exists()


def test_an_older_format_is_migrated_by_its_writer_and_refused_by_readers(tmp_path, monkeypatch):
    """With a (pretend) format 2 and a migration from format 1: `planet evaluate` refuses the format-1 fixture and
    says what migrates it; the run's writer migrates it (once) before it resumes it; a format without a migration
    is refused in one line."""
    run = copy_of(OLD_RUNS[-1], tmp_path)
    migrated = []

    def to_format_2(run_dir: Path) -> None:
        migrated.append(run_dir)
        (run_dir / "migrated").write_text("1")

    monkeypatch.setattr(layout, "FORMAT", 2)
    monkeypatch.setattr(layout, "MIGRATIONS", {1: to_format_2})
    line = one_line_error(["evaluate", "--run", str(run), "--device", "cpu"])
    assert "(run-directory format 1)" in line and "to migrate it to format 2" in line, line
    assert not migrated

    config = config_lib.load(run / rundir.CONFIG_FILE)
    with rundir.lock(run, "planet train"):
        assert rundir.claim(run, config) == config  # the same run, resumed after its migration
        assert rundir.claim(run, config) == config  # ... which ran once
    assert migrated == [run] and (run / "migrated").read_text() == "1"
    assert json.loads((run / rundir.TAGS_FILE).read_text())["run_format"] == "2"
    cfg, model = rundir.load_model(run, torch.device("cpu"))  # a reader reads it now
    assert cfg == config

    monkeypatch.setattr(layout, "FORMAT", 3)  # and no migration from 2
    line = one_line_error(resume_argv(run))
    assert "(run-directory format 2)" in line and "has no migration from format 2" in line, line


def test_a_checkpoint_of_another_version_is_refused_in_one_line(tmp_path):
    run = copy_of(OLD_RUNS[-1], tmp_path)
    path = run / rundir.CHECKPOINT_FILE
    state = torch.load(path, map_location="cpu", weights_only=False)
    torch.save({**state, "version": 99, "planet_version": "9.9.0"}, path)
    line = one_line_error(["evaluate", "--run", str(run), "--device", "cpu"])
    assert f"{path} has checkpoint version 99, written by planet-repro 9.9.0" in line, line
    assert f"reads version {rundir.CHECKPOINT_VERSION}" in line, line


def test_a_model_is_built_from_its_run_without_an_environment(tmp_path, monkeypatch):
    """`load_model` takes the action size from the task table: no dm_control environment is built (~0.4 s each)."""
    import planet.envs

    def no_environment(*args, **kwargs):
        raise AssertionError("an environment was built")

    monkeypatch.setattr(planet.envs.PixelEnv, "__init__", no_environment)
    run = OLD_RUNS[-1]
    cfg, model = rundir.load_model(run, torch.device("cpu"))
    weights = torch.load(run / rundir.CHECKPOINT_FILE, map_location="cpu", weights_only=False)["model"]
    assert model.state_dict().keys() == weights.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    assert model.action_dim == 1 and not model.training  # cartpole: one action; eval mode
    assert rundir.action_size("all") == 6 and rundir.action_size("cartpole_swingup+reacher_easy") == 2


def test_a_new_run_is_tagged_with_its_format_and_version_before_anything_else(tmp_path):
    run = tmp_path / "run"
    config = config_lib.resolve("cartpole_swingup", "debug", 0)
    with rundir.lock(run, "planet train"):
        assert rundir.claim(run, config) is None
    assert json.loads((run / rundir.TAGS_FILE).read_text()) == {"run_format": "1", "planet_version": rundir.VERSION}
    assert rundir.run_format(run) == (1, f"planet-repro {rundir.VERSION}")
    assert rundir.run_format(OLD_RUNS[0]) == (1, layout.UNTAGGED)  # a run from before the tags
