"""A full disk or quota is one line (planet/utils.py `disk_full`): which path, about how much the write needed, how
much is free, and that the same command resumes; the previous checkpoint, episodes and metrics stay intact."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from planet import utils
from planet.replay import save_episode
from planet.tracking.files import RunFiles
from planet.utils import DiskFullError, atomic_save

TORCH_WRITE_FAILED = ("[enforce fail at inline_container.cc:672] . PytorchStreamWriter failed writing file data/0: "
                      "file write failed")


def enospc(code: int = errno.ENOSPC) -> OSError:
    return OSError(code, os.strerror(code))


def assert_one_line(exc: BaseException, path: Path) -> str:
    message = str(exc)
    assert "\n" not in message and str(path) in message
    assert "needs about" in message and "is free there" in message and "run the same command again" in message
    return message


def no_temp_files(directory: Path) -> bool:
    return not [p for p in directory.iterdir() if p.name.startswith(".tmp")]


def test_a_full_disk_while_saving_a_checkpoint_keeps_the_previous_one(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_save(path, lambda f: torch.save({"step": 1, "w": torch.zeros(1000)}, f))
    before = path.read_bytes()

    def write(f):
        f.write(b"x" * 100)
        raise enospc()

    with pytest.raises(DiskFullError) as info:
        atomic_save(path, write)
    message = assert_one_line(info.value, path)
    assert message.startswith("disk full (No space left on device) writing ")
    assert f"needs about {utils.format_bytes(len(before))} (the size of the checkpoint.pt it replaces)" in message
    assert isinstance(info.value.__cause__, OSError)
    assert path.read_bytes() == before and torch.load(path)["step"] == 1 and no_temp_files(tmp_path)


def test_torch_saves_runtime_error_counts_only_on_a_full_filesystem(tmp_path, monkeypatch):
    """torch.save's C++ writer drops the errno ("file write failed"): a full disk only where the filesystem is."""
    path = tmp_path / "checkpoint.pt"

    def write(f):
        f.write(b"x" * 5000)
        raise RuntimeError(TORCH_WRITE_FAILED)

    monkeypatch.setattr(utils, "free_bytes", lambda _path: 0)
    with pytest.raises(DiskFullError) as info:
        atomic_save(path, write)
    message = assert_one_line(info.value, path)
    assert "needs about 5.0 kB (written before it failed) and 0 B is free there" in message
    assert not path.exists() and no_temp_files(tmp_path)

    monkeypatch.setattr(utils, "free_bytes", lambda _path: 10**12)  # plenty of space: some other failure
    with pytest.raises(RuntimeError, match="file write failed"):
        atomic_save(path, write)


def test_an_error_quoting_the_os_error_and_a_quota(tmp_path):
    path = tmp_path / "progress.json"
    with pytest.raises(DiskFullError):
        with utils.atomic_open(path, "w"):
            raise RuntimeError("basic_ios::clear: No space left on device")
    with pytest.raises(DiskFullError) as info:
        with utils.atomic_open(path, "w"):
            raise enospc(errno.EDQUOT)
    assert str(info.value).startswith("disk quota exceeded") and "free space or raise the quota" in str(info.value)
    with pytest.raises(PermissionError):  # other errors pass through unchanged
        with utils.atomic_open(path, "w"):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_a_full_disk_while_saving_an_episode(tmp_path, monkeypatch):
    import planet.replay as replay

    episode = {"obs": np.zeros((5, 3, 8, 8), np.uint8), "action": np.zeros((5, 1), np.float32),
               "reward": np.zeros(5, np.float32)}
    save_episode(tmp_path / "episode_000000.npz", episode, {"index": 0})
    before = (tmp_path / "episode_000000.npz").read_bytes()

    def savez(f, **arrays):
        f.write(b"x" * 10)
        raise enospc()

    monkeypatch.setattr(replay.np, "savez", savez)
    with pytest.raises(DiskFullError) as info:
        save_episode(tmp_path / "episode_000001.npz", episode, {"index": 1})
    size = sum(a.nbytes for a in episode.values())
    assert f"needs about {utils.format_bytes(size)} (the data being written)" in assert_one_line(
        info.value, tmp_path / "episode_000001.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.npz"]
    assert (tmp_path / "episode_000000.npz").read_bytes() == before


def test_a_full_disk_while_appending_metrics(tmp_path):
    files = RunFiles(tmp_path, {}, {})
    files.append_metrics({"a": 1.0}, step=0, now=0.0)

    class Full(io.StringIO):
        def write(self, text):
            raise enospc()

    real = files._metrics_fh
    files._metrics_fh = Full()
    with pytest.raises(DiskFullError) as info:
        files.append_metrics({"a": 2.0}, step=1, now=1.0)
    assert_one_line(info.value, tmp_path / "metrics.jsonl")
    files.close()  # does not raise again on the unwritten rest
    real.close()
    assert [json.loads(line)["a"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1.0]


# --------------------------------------------------------------------------------------------------------------
# The command: one line, exit 1, the run intact, and the same command resumes.


@pytest.mark.slow
def test_train_on_a_full_disk_says_so_in_one_line_and_resumes(tmp_path, monkeypatch):
    from planet.cli import main

    out = tmp_path / "run"
    argv = ["train", "--task", "cartpole_swingup", "--preset", "debug", "--seed", "0", "--device", "cpu", "--out",
            str(out), "--no-progress", "train.episodes=3", "eval.episodes=1", "run.mlflow=false"]
    real_save = torch.save
    checkpoints = []

    def full_at_the_second_checkpoint(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and "counters" in obj:
            checkpoints.append(obj["counters"]["episodes"])
            if len(checkpoints) == 2:
                f.write(b"x" * 1000)
                raise enospc()
        return real_save(obj, f, *args, **kwargs)

    def run() -> tuple[int, str, str]:
        stdout, stderr = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = main(argv)
        return code, stdout.getvalue(), stderr.getvalue()

    with monkeypatch.context() as mp:
        mp.setattr(torch, "save", full_at_the_second_checkpoint)
        code, stdout, stderr = run()
    errors = [line for line in stderr.splitlines() if line.startswith("planet: error:")]
    assert code == 1 and stdout == "" and "Traceback" not in stderr, stderr
    assert len(errors) == 1 and "disk full" in errors[0] and str(out / "checkpoint.pt") in errors[0], stderr
    assert "run the same command again" in errors[0]
    state = torch.load(out / "checkpoint.pt", map_location="cpu", weights_only=False)  # the previous one, intact
    assert state["counters"]["episodes"] == checkpoints[0] == 1
    assert json.loads((out / "progress.json").read_text())["episodes"] == 1
    assert no_temp_files(out) and not (out / "summary.json").exists()

    code, stdout, stderr = run()  # space freed: the same command resumes and completes
    assert code == 0, stderr
    assert json.loads(stdout)["episodes"] == 3
    assert sorted(p.name for p in (out / "episodes").iterdir()) == [f"episode_{i:06d}.npz" for i in range(3)]
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["episodes"] for r in records if "collect/return" in r] == [1.0, 2.0, 3.0]  # none lost, none twice
