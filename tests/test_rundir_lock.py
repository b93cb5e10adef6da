"""One process per run directory (planet/rundir/lock.py `lock`): a second writer fails at once with one line naming the
holder; a killed holder leaves no stale lock; `planet evaluate` and `planet diagnose` share a run, never with a
training. The holder is a real second process (a tiny `python -c` script), so these run in seconds."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_helpers import run_main

from planet import rundir

HOLD = """
import sys, time
from planet import rundir
with rundir.lock(sys.argv[1], sys.argv[2], shared=sys.argv[3] == "shared"):
    print("held", flush=True)
    time.sleep(120)
"""


@contextlib.contextmanager
def holder(run_dir: Path, command: str = "planet train --task cartpole_swingup --seed 0", shared: bool = False):
    """A second process holding RUN (until the block ends, when it is killed); yields its Popen."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(run_dir), command, "shared" if shared else "exclusive"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "held", proc.communicate()[1]
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_a_second_writer_fails_at_once_naming_the_holder(tmp_path):
    run = tmp_path / "run"
    with holder(run) as proc:
        record = json.loads((run / rundir.LOCK_FILE).read_text())
        assert record["pid"] == proc.pid and record["host"] == socket.gethostname() and record["since"] <= time.time()
        start = time.monotonic()
        with pytest.raises(rundir.RunInUseError) as info, rundir.lock(run, "planet train"):
            pytest.fail("took a held run")
        assert time.monotonic() - start < 1
        message = str(info.value)
        assert "\n" not in message and str(run) in message
        assert f"PID {proc.pid} on {socket.gethostname()}" in message
        assert "`planet train --task cartpole_swingup --seed 0`" in message and re.search(r"for \d+ s, since ", message)
        with pytest.raises(rundir.RunInUseError):  # a shared holder (evaluate, diagnose) is refused too
            with rundir.lock(run, "planet evaluate", shared=True):
                pass
    with rundir.lock(run, "planet train"):  # free once the holder is gone
        assert json.loads((run / rundir.LOCK_FILE).read_text())["pid"] == os.getpid()
    assert (run / rundir.LOCK_FILE).read_text() == ""  # an ended holder leaves no record


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    run = tmp_path / "run"
    with holder(run) as proc:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert (run / rundir.LOCK_FILE).read_text()  # its record is still there ...
        with rundir.lock(run, "planet train"):  # ... but the kernel freed the lock with the process
            assert json.loads((run / rundir.LOCK_FILE).read_text())["pid"] == os.getpid()


def test_the_cli_says_so_in_one_line(tmp_path):
    """`planet train`, `planet baseline` and `planet evaluate` on a held run: exit 1, one error line, no traceback,
    and nothing of the run touched (refused before any setting is read or any episode collected)."""
    run = tmp_path / "run"
    commands = {
        "train": ["train", "--task", "cartpole_swingup", "--preset", "debug", "--device", "cpu", "--out", str(run),
                  "--no-progress", "run.mlflow=false"],
        "simulator": ["baseline", "simulator", "--task", "cartpole_swingup", "--preset", "debug", "--out", str(run),
                      "--no-progress"],
        "sac": ["baseline", "sac", "--task", "cartpole_swingup", "--preset", "debug", "--out", str(run),
                "--no-progress"],
        "evaluate": ["evaluate", "--run", str(run), "--device", "cpu", "--no-progress"],
        "diagnose": ["diagnose", "--run", str(run), "--device", "cpu", "--no-progress"],
    }
    with holder(run) as proc:
        for name, argv in commands.items():
            code, stdout, stderr = run_main(argv)
            errors = [line for line in stderr.splitlines() if line.startswith("planet: error:")]
            assert code == 1 and stdout == "" and "Traceback" not in stderr, (name, stderr)
            assert len(errors) == 1 and f"PID {proc.pid}" in errors[0] and "is in use by" in errors[0], (name, stderr)
        assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_FILE]


def test_evaluate_and_diagnose_share_a_run_but_never_with_a_training(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with holder(run, "planet evaluate", shared=True) as proc:
        with rundir.lock(run, "planet diagnose", shared=True):  # the pipeline runs both on one run at once
            train = subprocess.run([sys.executable, "-c", HOLD, str(run), "planet train", "exclusive"],
                                   capture_output=True, text=True, timeout=60)
            assert train.returncode == 1 and "RunInUseError" in train.stderr
            assert f"`planet evaluate` (PID {proc.pid}" in train.stderr
            assert f"`planet diagnose` (PID {os.getpid()}" in train.stderr
    with rundir.lock(run, "planet train"):  # both gone: a training may start
        pass


def test_nested_holds_in_one_process_and_a_run_moved_aside(tmp_path):
    """The multi-task trainer holds its run around the trainer's own hold; `claim` with on_change=archive moves the
    old run (its lock file with it) and the new directory is held in its place."""
    run = tmp_path / "run"
    with rundir.lock(run, "outer"), rundir.lock(run, "inner"):
        rundir.claim(run, {"a": 1})
        rundir.claim(run, {"a": 2}, on_change="archive")
        assert [p.name for p in (tmp_path / rundir.REPLACED_DIR).iterdir()][0].startswith("run-")
        code = subprocess.run([sys.executable, "-c", HOLD, str(run), "other", "exclusive"], capture_output=True,
                              text=True, timeout=60)
        assert code.returncode == 1 and "RunInUseError" in code.stderr and f"PID {os.getpid()}" in code.stderr
    with rundir.lock(run, "after"):
        pass


def test_a_directory_made_only_for_the_lock_is_given_back(tmp_path):
    """A command that fails before writing anything (e.g. on its settings) leaves no empty run directory."""
    run = tmp_path / "new" / "run"
    with pytest.raises(ValueError), rundir.lock(run, "planet baseline sac"):
        raise ValueError("bad setting")
    assert not run.exists()
    with rundir.lock(run, "planet train"):
        (run / "config.yaml").write_text("{}")
    assert sorted(p.name for p in run.iterdir()) == [rundir.LOCK_FILE, "config.yaml"]


def test_a_shared_holder_of_a_missing_run_holds_nothing(tmp_path):
    with rundir.lock(tmp_path / "nope", "planet evaluate", shared=True):
        pass
    assert not (tmp_path / "nope").exists()
