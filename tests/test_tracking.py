"""Tests for planet.tracking: JSON files are the source of truth, MLflow (sqlite in tmp_path) a mirror."""

from __future__ import annotations

import json
import logging
import math
import multiprocessing as mp
import os
import sys
from pathlib import Path

import pytest

from planet.tracking import (
    DEFAULT_TRACKING_URI,
    Tracker,
    read_metrics,
    resolve_tracking_uri,
)

N_PROCS = 6
N_STEPS = 20


@pytest.fixture
def mlflow_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A sqlite store under tmp_path, set both via the env var and passed explicitly by the tests."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _warnings(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "planet.tracking" and r.levelno == logging.WARNING and text in r.getMessage()
    ]


def test_resolve_tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert DEFAULT_TRACKING_URI == "sqlite:///mlflow.db"
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///sub/env.db?timeout=30")
    assert resolve_tracking_uri() == f"sqlite:///{tmp_path / 'sub' / 'env.db'}?timeout=30"
    # explicit argument wins over the env var; absolute and non-sqlite URIs are unchanged
    assert resolve_tracking_uri("sqlite:////abs/x.db") == "sqlite:////abs/x.db"
    assert resolve_tracking_uri("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_tracker_writes_files_and_mlflow(tmp_path: Path, mlflow_uri: str) -> None:
    run_dir = tmp_path / "runs" / "cheetah_run" / "seed0"
    params = {
        "model": {"deter": 200, "stoch": 30, "cnn": {"depth": 32}},
        "train": {"lr": 1e-3, "action_repeat": 4},
        "note": "x" * 7000,  # longer than MLflow's 6000-character param limit
        "many": {f"p{i:03d}": i for i in range(150)},  # more than one log_batch of params (100)
    }
    artifact = tmp_path / "config.yaml"
    artifact.write_text("lr: 0.001\n")
    with Tracker(
        run_dir,
        experiment="planet-test",
        run_name="cheetah_run-seed0",
        params=params,
        tags={"task": "cheetah_run", "seed": 0},
        tracking_uri=mlflow_uri,
    ) as tracker:
        assert tracker.mlflow_enabled, tracker.mlflow_error
        for i, step in enumerate((1000, 2000, 3000)):
            tracker.log_metrics({"train/loss/image": 10.0 - i, "train/loss/kl": 3.0}, step=step)
        tracker.log_metrics({"eval/return_mean": 123.5}, step=3000)
        tracker.log_artifact(artifact)
        tracker.set_tags({"status_note": "done"})
        run_id = tracker.run_id

    # files: the source of truth
    flat = json.loads((run_dir / "params.json").read_text())
    assert flat["model.deter"] == 200 and flat["model.cnn.depth"] == 32 and flat["train.lr"] == 1e-3
    assert len(flat["note"]) == 7000
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["step"] for r in rows] == [1000, 2000, 3000, 3000]
    assert [r.get("train/loss/image") for r in rows] == [10.0, 9.0, 8.0, None]
    assert rows[-1]["eval/return_mean"] == 123.5 and all(isinstance(r["time"], float) for r in rows)
    assert json.loads((run_dir / "mlflow_run.json").read_text())["run_id"] == run_id
    assert json.loads((run_dir / "tags.json").read_text())["status_note"] == "done"

    # MLflow mirror
    client = _client(mlflow_uri)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "cheetah_run-seed0"
    assert run.data.params["model.deter"] == "200"
    assert run.data.params["train.action_repeat"] == "4"
    assert run.data.params["many.p149"] == "149"
    assert len(run.data.params["note"]) == 6000
    assert run.data.tags["task"] == "cheetah_run" and run.data.tags["seed"] == "0"
    assert run.data.tags["status_note"] == "done"
    history = client.get_metric_history(run_id, "train/loss/image")
    assert sorted((m.step, m.value) for m in history) == [(1000, 10.0), (2000, 9.0), (3000, 8.0)]
    assert [m.step for m in client.get_metric_history(run_id, "eval/return_mean")] == [3000]
    assert [f.path for f in client.list_artifacts(run_id)] == ["config.yaml"]
    # artifacts next to the database, never ./mlruns of the working directory
    assert (tmp_path / "mlartifacts" / "planet-test").is_dir()
    assert not (tmp_path / "mlruns").exists()


def test_resume_sends_only_steps_mlflow_lacks(tmp_path: Path, mlflow_uri: str) -> None:
    """Per key: eval at step 300 was cut before MLflow got it (killed in between), train/loss at 300 was not."""
    run_dir = tmp_path / "run"
    kwargs = dict(experiment="resume", run_name="r", params={}, tags={}, tracking_uri=mlflow_uri)
    first = Tracker(run_dir, **kwargs)
    first.log_metrics({"train/loss": 1.0}, step=100)
    offset = first.metrics_offset()
    first.log_metrics({"train/loss": 0.5}, step=300)
    first.close("KILLED")
    second = Tracker(run_dir, **kwargs)
    second.truncate_metrics(offset)
    second.log_metrics({"train/loss": 0.5}, step=300)
    second.log_metrics({"eval/return": 7.0}, step=300)
    second.log_metrics({"train/loss": 0.25}, step=400)
    second.close()
    client = _client(mlflow_uri)
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "train/loss")] == [
        (100, 1.0), (300, 0.5), (400, 0.25)]
    assert [(m.step, m.value) for m in client.get_metric_history(first.run_id, "eval/return")] == [(300, 7.0)]
    assert [(r["step"], r.get("train/loss")) for r in read_metrics(run_dir / "metrics.jsonl")] == [
        (100, 1.0), (300, 0.5), (300, None), (400, 0.25)]


def test_resume_continues_same_run(tmp_path: Path, mlflow_uri: str, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    kwargs = dict(
        experiment="resume", run_name="r", params={"a": 1}, tags={"t": "1"}, tracking_uri=mlflow_uri
    )
    first = Tracker(run_dir, **kwargs)
    first.log_metrics({"train/loss": 1.0}, step=100)
    first.log_metrics({"train/loss": 0.9}, step=200)
    offset = first.metrics_offset()  # what a checkpoint at step 200 would store
    first.log_metrics({"train/loss": 0.8}, step=300)  # lost work: re-done after resume
    first.close("KILLED")
    first.close("KILLED")  # idempotent

    with caplog.at_level(logging.WARNING, logger="planet.tracking"):
        second = Tracker(run_dir, **{**kwargs, "params": {"a": 5, "b": 2}})
    assert len(_warnings(caplog, "Params changed")) == 1
    assert second.resumed and second.run_id == first.run_id
    second.truncate_metrics(offset)
    second.log_metrics({"train/loss": 0.7}, step=300)
    second.close()

    assert [(r["step"], r["train/loss"]) for r in read_metrics(run_dir / "metrics.jsonl")] == [
        (100, 1.0),
        (200, 0.9),
        (300, 0.7),
    ]
    client = _client(mlflow_uri)
    run = client.get_run(first.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"a": "1", "b": "2"}  # MLflow params are immutable: "a" keeps its first value
    assert json.loads((run_dir / "params.json").read_text()) == {"a": 5, "b": 2}
    assert len(client.search_runs([run.info.experiment_id])) == 1
    # MLflow cannot delete points, so the re-done step 300 is not sent again: each step is there once, with the
    # first value (a real resume is bit-identical, so both values agree; this test makes them differ to see which)
    assert sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, "train/loss")) == [
        (100, 1.0),
        (200, 0.9),
        (300, 0.8),
    ]


@pytest.mark.parametrize("kind", ["http_down", "unwritable_sqlite", "no_mlflow"])
def test_mlflow_failure_does_not_stop_training(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
    if kind == "http_down":
        uri = "http://127.0.0.1:9"
    elif kind == "unwritable_sqlite":
        (tmp_path / "a_file").write_text("")
        uri = f"sqlite:///{tmp_path / 'a_file' / 'mlflow.db'}"  # parent is a file: cannot be created
    else:
        uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
        for name in [m for m in sys.modules if m == "mlflow" or m.startswith("mlflow.")] + ["mlflow"]:
            monkeypatch.setitem(sys.modules, name, None)  # makes `import mlflow...` raise ImportError
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    artifact = tmp_path / "ckpt.pt"
    artifact.write_bytes(b"0")

    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="planet.tracking"):
        tracker = Tracker(run_dir, experiment="e", run_name="r", params={"x": 1}, tags={}, tracking_uri=uri)
        for step in range(3):
            tracker.log_metrics({"train/loss": float(step)}, step=step * 10)
        tracker.log_artifact(artifact)
        tracker.set_tags({"k": "v"})
        tracker.close("FINISHED")

    assert not tracker.mlflow_enabled and tracker.mlflow_error
    assert [r["step"] for r in read_metrics(run_dir / "metrics.jsonl")] == [0, 10, 20]
    assert json.loads((run_dir / "params.json").read_text()) == {"x": 1}
    assert len(_warnings(caplog, "MLflow tracking disabled")) == 1
    assert not (tmp_path / "mlruns").exists()


def test_read_only_store_is_one_warning_line_naming_the_cli_switch(
    tmp_path: Path, mlflow_uri: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A read-only mlflow.db (as a non-root user meets it; root writes through chmod, so it is simulated with the
    error sqlite raises there): one warning without a traceback, naming the store and `run.mlflow=false`."""
    import sqlite3

    from sqlalchemy.exc import OperationalError

    def read_only(uri: str) -> None:
        raise OperationalError("INSERT INTO experiments ...", {}, sqlite3.OperationalError(
            "attempt to write a readonly database"))

    monkeypatch.setattr("planet.tracking.mirror.init_store", read_only)
    with caplog.at_level(logging.DEBUG, logger="planet.tracking"):
        tracker = Tracker(tmp_path / "run", experiment="e", run_name="r", params={}, tags={}, tracking_uri=mlflow_uri)
        tracker.log_metrics({"a": 1.0}, step=1)
        tracker.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and warnings[0].exc_info is None
    message = warnings[0].getMessage()
    assert "\n" not in message and "readonly database" in message and mlflow_uri in message
    assert "run.mlflow=false" in message
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 1


def test_failure_mid_run_warns_once(
    tmp_path: Path, mlflow_uri: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracker = Tracker(
        tmp_path / "run", experiment="e", run_name="r", params={}, tags={}, tracking_uri=mlflow_uri
    )
    assert tracker.mlflow_enabled
    calls = []

    def broken(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("database is locked")

    monkeypatch.setattr(tracker.mirror.client, "log_batch", broken)
    with caplog.at_level(logging.WARNING, logger="planet.tracking"):
        for step in range(5):
            tracker.log_metrics({"a": 1.0}, step=step)
        tracker.close()
    assert len(calls) == 1  # MLflow is not called again after the first failure
    assert len(_warnings(caplog, "MLflow tracking disabled")) == 1
    assert "database is locked" in tracker.mlflow_error
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 5


def test_nonfinite_metrics_and_context_manager_status(
    tmp_path: Path, mlflow_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING, logger="planet.tracking"), pytest.raises(ZeroDivisionError):
        with Tracker(run_dir, experiment="e", run_name="r", params={}, tags={}, tracking_uri=mlflow_uri) as t:
            t.log_metrics({"a": math.nan, "b": 1.0}, step=1)
            t.log_metrics({"a": math.inf, "b": 2.0}, step=2)
            with pytest.raises(ValueError, match="reserved"):
                t.log_metrics({"step": 1.0}, step=3)
            1 / 0  # noqa: B018 - a crash inside training
    assert len(_warnings(caplog, "Non-finite")) == 1
    assert "NaN" not in (run_dir / "metrics.jsonl").read_text()  # valid JSON: null, not NaN
    rows = read_metrics(run_dir / "metrics.jsonl")
    assert [r["a"] for r in rows] == [None, None] and [r["b"] for r in rows] == [1.0, 2.0]
    client = _client(mlflow_uri)
    assert client.get_metric_history(t.run_id, "a") == []
    assert [m.value for m in client.get_metric_history(t.run_id, "b")] == [1.0, 2.0]
    assert client.get_run(t.run_id).info.status == "FAILED"
    with pytest.raises(RuntimeError, match="closed"):
        t.log_metrics({"b": 3.0}, step=3)

    with pytest.raises(KeyboardInterrupt):
        with Tracker(tmp_path / "run2", experiment="e", run_name="r2", params={}, tags={}) as t2:
            raise KeyboardInterrupt
    assert t2.tracking_uri == mlflow_uri  # picked up from MLFLOW_TRACKING_URI
    assert client.get_run(t2.run_id).info.status == "KILLED"


def test_truncate_and_read_metrics_with_partial_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run_dir = tmp_path / "run"
    path = run_dir / "metrics.jsonl"
    tracker = Tracker(run_dir, experiment="e", run_name="r", params={}, tags={}, enabled=False)
    assert tracker.metrics_offset() == 0
    tracker.log_metrics({"a": 1.0}, step=1)
    tracker.log_metrics({"a": 2.0}, step=2)
    offset = tracker.metrics_offset()
    tracker.log_metrics({"a": 3.0}, step=3)
    with pytest.raises(ValueError, match="negative"):
        tracker.truncate_metrics(-1)
    size = tracker.metrics_offset()
    with caplog.at_level("WARNING"):
        tracker.truncate_metrics(size + 10_000)  # a file shorter than the checkpoint says: kept, with a warning
    assert tracker.metrics_offset() == size and "are lost" in caplog.text
    with caplog.at_level("WARNING"):
        tracker.truncate_metrics(size - 3)  # inside the last line: back to its start, i.e. the offset after step 2
    assert tracker.metrics_offset() == offset and "inside a line" in caplog.text
    tracker.log_metrics({"a": 3.0}, step=3)
    tracker.truncate_metrics(offset)
    assert tracker.metrics_offset() == offset
    tracker.log_metrics({"a": 3.5}, step=3)
    tracker.close()
    assert [(r["step"], r["a"]) for r in read_metrics(path)] == [(1, 1.0), (2, 2.0), (3, 3.5)]

    # a kill in the middle of a write leaves a partial final line
    with open(path, "ab") as fh:
        fh.write(b'{"step": 4, "time": 17000')
    with caplog.at_level(logging.WARNING, logger="planet.tracking"):
        rows = read_metrics(path)
    assert [r["step"] for r in rows] == [1, 2, 3]
    assert len(_warnings(caplog, "partial final line")) == 1

    # a resumed tracker drops the partial tail before appending, so lines never glue together
    with caplog.at_level(logging.WARNING, logger="planet.tracking"):
        resumed = Tracker(run_dir, experiment="e", run_name="r", params={}, tags={}, enabled=False)
    assert len(_warnings(caplog, "dropping partial last line")) == 1
    resumed.log_metrics({"a": 4.0}, step=4)
    resumed.close()
    assert [r["step"] for r in read_metrics(path)] == [1, 2, 3, 4]

    # corruption elsewhere than the last line is an error, not silently skipped
    lines = path.read_text().splitlines(keepends=True)
    path.write_text(lines[0] + "garbage\n" + "".join(lines[1:]))
    with pytest.raises(ValueError, match="malformed line 2"):
        read_metrics(path)


def _concurrent_worker(index: int, uri: str, root: str, barrier, queue) -> None:
    """Runs in a spawned process: start a tracker at the same moment as the others, log N_STEPS points."""
    try:
        import mlflow  # noqa: F401 - import before the barrier so all processes hit the DB together

        barrier.wait(timeout=120)
        tracker = Tracker(
            Path(root) / f"run{index}",
            experiment="concurrent",
            run_name=f"worker{index}",
            params={"index": index},
            tags={},
            tracking_uri=uri,
        )
        for step in range(N_STEPS):
            tracker.log_metrics({"train/loss": float(index * 100 + step)}, step=(step + 1) * 1000)
        tracker.close()
        queue.put((index, tracker.run_id, tracker.mlflow_error))
    except BaseException as exc:  # report instead of dying silently
        queue.put((index, None, repr(exc)))
        raise


@pytest.mark.slow
def test_concurrent_processes_on_fresh_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db = tmp_path / "fresh.db"
    assert not db.exists()
    uri = f"sqlite:///{db}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(N_PROCS)
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_concurrent_worker, args=(i, uri, str(tmp_path), barrier, queue))
        for i in range(N_PROCS)
    ]
    for p in procs:
        p.start()
    results = [queue.get(timeout=180) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [p.exitcode for p in procs] == [0] * N_PROCS
    assert all(err is None for _, _, err in results), results

    client = _client(uri)
    exp = client.get_experiment_by_name("concurrent")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == N_PROCS
    assert {r.info.run_id for r in runs} == {run_id for _, run_id, _ in results}
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "train/loss")
        assert sorted(m.step for m in history) == [(s + 1) * 1000 for s in range(N_STEPS)]
        assert run.info.status == "FINISHED"
    for i in range(N_PROCS):
        assert len(read_metrics(tmp_path / f"run{i}" / "metrics.jsonl")) == N_STEPS
    assert os.path.exists(f"{db}.lock")


def test_an_unreachable_server_costs_seconds_and_one_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Port 9 (discard) refuses connections: the /health probe fails at once instead of MLflow's seven retries."""
    import time

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    t0 = time.perf_counter()
    with caplog.at_level(logging.WARNING):
        tracker = Tracker(tmp_path / "run", experiment="e", run_name="r", params={}, tags={})
        tracker.log_metrics({"a": 1.0}, step=1)
        tracker.close()
    assert time.perf_counter() - t0 < 10
    assert not tracker.mlflow_enabled and "did not answer" in (tracker.mlflow_error or "")
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING and "MLflow" in r.getMessage()]
    assert len(warnings) == 1 and "run.mlflow=false" in warnings[0].getMessage()
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[0]["a"] == 1.0  # the files are still written


def test_a_run_resumed_on_newer_code_keeps_every_commit(tmp_path: Path) -> None:
    """tags.json's git_commit is the latest code; git_commits lists every commit the run ran on, oldest first, each
    once (a campaign resumed after a `git pull` says which of its episodes ran on which code)."""
    from planet import rundir

    sha = rundir.git_tags().get("git_commit")
    if not sha:
        pytest.skip("not a git checkout")
    old = "a" * 40
    assert rundir.git_tags(tmp_path) == {"git_commit": sha, "git_commits": sha}  # a new run
    (tmp_path / "tags.json").write_text(json.dumps({"git_commit": old}))  # started before the history was kept
    assert rundir.git_tags(tmp_path) == {"git_commit": sha, "git_commits": f"{old} {sha}"}
    (tmp_path / "tags.json").write_text(json.dumps({"git_commit": sha, "git_commits": f"{old} {sha}"}))
    assert rundir.git_tags(tmp_path)["git_commits"] == f"{old} {sha}"  # resumed again on the same code
    (tmp_path / "tags.json").write_text("{not json")
    assert rundir.git_tags(tmp_path)["git_commits"] == sha  # an unreadable tags.json loses only the history


def test_a_point_logged_twice_is_mirrored_once(tmp_path: Path, mlflow_uri: str) -> None:
    """The trainer logs `episodes` on an episode's line and again on its evaluation's, at one step: MLflow gets the
    point once (a chart with `episodes` as x-axis draws each once), metrics.jsonl keeps both lines as written; the
    same value at a later step, or another value at the same step, is a new point."""
    with Tracker(tmp_path / "run", experiment="e", run_name="r", params={}, tags={}, tracking_uri=mlflow_uri) as t:
        t.log_metrics({"collect/return": 5.0, "episodes": 4.0}, step=640)
        t.log_metrics({"eval/return_mean": 7.0, "episodes": 4.0}, step=640)
        t.log_metrics({"episodes": 4.0}, step=800)
        t.log_metrics({"episodes": 5.0}, step=800)
    history = _client(mlflow_uri).get_metric_history(t.run_id, "episodes")
    assert sorted((m.step, m.value) for m in history) == [(640, 4.0), (800, 4.0), (800, 5.0)]
    assert [r.get("episodes") for r in read_metrics(tmp_path / "run" / "metrics.jsonl")] == [4.0, 4.0, 4.0, 5.0]
