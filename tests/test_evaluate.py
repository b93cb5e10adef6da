"""`planet evaluate` killed (SIGKILL) at random moments, as real processes: every file it leaves in the run
directory and at --out is complete (the original's or a complete evaluation's) or absent, never half-written, and the
rerun finishes the same evaluation; the temp files that killed writers leave are removed, those of live ones kept."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planet import rundir
from planet.utils import TMP_PREFIX

RUN = sorted((Path(__file__).parent / "fixtures").glob("run-*"))[-1]  # a small run, stopped after its checkpoint


def evaluate(run: Path, out: Path, kill_after: float | None = None) -> float:
    """`planet evaluate --run RUN --out OUT` as a process, SIGKILLed after `kill_after` seconds if given (unless it
    ended before); returns the seconds it ran."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "planet.cli", "evaluate", "--run", str(run), "--out", str(out),
                             "--device", "cpu", "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if kill_after is not None:
        time.sleep(kill_after)
        proc.send_signal(signal.SIGKILL)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0 or (kill_after is not None and proc.returncode == -signal.SIGKILL), stderr
    return time.monotonic() - start


def files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.slow  # real processes on a real dm_control task
def test_an_evaluation_killed_at_any_moment_leaves_only_complete_files(tmp_path):
    original = files(RUN)
    reference_run = tmp_path / "reference" / "run"
    shutil.copytree(RUN, reference_run)
    seconds = evaluate(reference_run, tmp_path / "reference" / "seed0.json")
    reference = files(reference_run)
    assert json.loads(reference[rundir.EVALUATION_FILE])["split"] == "test"
    reference_out = (tmp_path / "reference" / "seed0.json").read_bytes()
    assert reference_out == reference[rundir.EVALUATION_FILE]
    test_line = json.loads(reference[rundir.METRICS_FILE][len(original[rundir.METRICS_FILE]):])
    old_metrics = original[rundir.METRICS_FILE]

    run, out = tmp_path / "run", tmp_path / "eval" / "seed0.json"
    shutil.copytree(RUN, run)

    def check() -> None:
        for name, data in files(run).items():
            if Path(name).name.startswith(TMP_PREFIX):
                continue  # a killed writer's temp file: never read, removed by the next command (checked below)
            if name == rundir.LOCK_FILE:
                assert all(json.loads(line)["command"] == "planet evaluate" for line in data.decode().splitlines())
            elif name == rundir.METRICS_FILE:  # the run's lines, then one test line per evaluation that got there
                assert data.startswith(old_metrics)
                for line in data[len(old_metrics):].decode().splitlines():
                    assert {k: v for k, v in json.loads(line).items() if k != "time"} == {
                        k: v for k, v in test_line.items() if k != "time"}
            else:
                assert data in (original.get(name), reference.get(name)), f"{name} is neither before nor after"
        if out.exists():
            assert out.read_bytes() == reference_out

    rng = random.Random(0)
    for _ in range(4):
        evaluate(run, out, kill_after=rng.uniform(0.1, seconds))
        check()
    evaluate(run, out)
    check()
    assert files(run)[rundir.EVALUATION_FILE] == reference[rundir.EVALUATION_FILE]
    assert out.read_bytes() == reference_out
    leftovers = [p for p in [*run.rglob(f"{TMP_PREFIX}*"), *out.parent.glob(f"{TMP_PREFIX}*")]]
    assert not leftovers, leftovers  # the temp files of the killed evaluations are gone


WRITER = """
import sys, time
from planet.utils import atomic_open
with atomic_open(sys.argv[1], "w") as handle:
    handle.write("half of it")
    handle.flush()
    print("writing", flush=True)
    time.sleep(120)
"""


def test_a_result_removes_the_temp_files_of_killed_writers_only(tmp_path):
    run, out = tmp_path / "run", tmp_path / "eval" / "seed0.json"
    run.mkdir()
    out.parent.mkdir()
    dead = [run / f"{TMP_PREFIX}{rundir.TAGS_FILE}.x1", out.parent / f"{TMP_PREFIX}seed0.json.x2"]
    for path in dead:  # as a writer killed mid-write leaves them: unlocked
        path.write_text("half of it")
    other = out.parent / f"{TMP_PREFIX}seed1.json.x3"  # another result's (another job's) in a shared directory
    other.write_text("half of it")
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(run / rundir.PARAMS_FILE)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert writer.stdout.readline().strip() == "writing"
        [live] = run.glob(f"{TMP_PREFIX}{rundir.PARAMS_FILE}.*")
        rundir.write_result(run, rundir.EVALUATION_FILE, {"return_mean": 1.5}, out)
        assert not any(p.exists() for p in dead) and live.read_text() == "half of it" and other.exists()
        assert json.loads(out.read_text()) == json.loads((run / rundir.EVALUATION_FILE).read_text()) == {
            "return_mean": 1.5}
    finally:
        writer.kill()
        writer.communicate()
    rundir.write_result(run, rundir.EVALUATION_FILE, {"return_mean": 2.5})  # its writer is dead now
    assert not live.exists() and not (run / rundir.PARAMS_FILE).exists()
    assert sorted(p.name for p in run.iterdir()) == [rundir.EVALUATION_FILE]
