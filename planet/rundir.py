"""A run directory's lifecycle, written once for `planet train`, `planet evaluate` and `planet baseline`.

A run directory holds one run: its config (``config.yaml``), its files, and, once complete, ``summary.json``.
- :func:`claim` makes a directory the home of a run with a given config: a new directory gets ``config.yaml``; an
  existing one with the same config's *identity* is resumed (bookkeeping such as ``run.*`` may differ and is
  rewritten); one with another identity is refused, or moved aside to ``PARENT/.replaced/NAME-HASH-TIME`` with its
  MLflow run marked replaced (nothing is ever deleted).
- :func:`finished` returns the summary of a complete run, so that a rerun has nothing to do.
- :func:`lock` (and the decorator :func:`locked`) makes one process at a time the writer of RUN: `planet train`,
  the baselines and the CEM grid's points hold it alone, `planet evaluate` and `planet diagnose` (which add results
  to a trained run, and which the pipeline runs side by side) share it. A second process fails at once with one
  line naming the holder. The lock is an ``flock`` on ``RUN/.lock``, so the kernel frees it when its process dies:
  a killed run never leaves a stale lock.
- :func:`run_name` names a run by variant, task and seed; :func:`git_tags` records the code it ran.
- :func:`tracking_uri` is the MLflow store the run's tracking continues in; :func:`load_model` its trained model;
  :func:`tracker` continues its MLflow run for commands that add results to a trained run (`planet evaluate`,
  `planet diagnose`), :func:`variant` and :func:`progress` say what the run is and how far it got.

Configs are either the agent's :class:`~planet.config.Config` (identity: every section but ``run``) or, for the
baselines, a plain mapping (identity: all of it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import hashlib
import inspect
import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, TypeVar

import yaml

from planet import config as config_lib
from planet.config import Config, ConfigError
from planet.tasks import is_multitask
from planet.tracking import RUN_FILE, TAGS_FILE, Tracker, mark_replaced
from planet.utils import PlanetError, atomic_write_text

if TYPE_CHECKING:
    import torch

    from planet.models import WorldModel

log = logging.getLogger(__name__)

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
REPLACED_DIR = ".replaced"
LOCK_FILE = ".lock"
ON_CONFIG_CHANGE = ("error", "archive")


def run_name(variant: str, task: str, seed: int) -> str:
    """The MLflow run name that alone says variant, task and seed, e.g. ``planet-cartpole_swingup-seed0``."""
    return f"{variant}-{task}-seed{seed}"


def digest(identity: Mapping[str, Any]) -> str:
    """Short hash of a config identity (tags runs, names replaced directories, detects a changed config)."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


def finished(run_dir: Path) -> dict | None:
    """The summary of a complete run (``summary.json`` exists: nothing to do), else None."""
    path = Path(run_dir) / SUMMARY_FILE
    if not path.exists():
        return None
    log.info("%s is complete (%s exists); nothing to do", run_dir, SUMMARY_FILE)
    return json.loads(path.read_text())


def claim(run_dir: Path, config: Config | Mapping[str, Any], on_change: str = "error",
          identity: Callable[[Any], Mapping[str, Any]] | None = None) -> Config | dict[str, Any] | None:
    """Make RUN the home of a run with ``config`` (see the module docstring). Returns the config RUN held before
    (None for a new directory or an archived run), so that a caller can react to bookkeeping that changed.
    ``identity`` maps a config to what makes it a different run (default: :meth:`Config.identity`, or the
    whole mapping)."""
    if on_change not in ON_CONFIG_CHANGE:
        raise ValueError(f"on_change must be one of {ON_CONFIG_CHANGE}, got {on_change!r}")
    identity = identity or _identity
    run_dir = Path(run_dir)
    path = run_dir / CONFIG_FILE
    if path.exists():
        old = _load(path, config)
        a, b = config_lib.flatten(dict(identity(old))), config_lib.flatten(dict(identity(config)))
        changed = {k: (a.get(k), b.get(k)) for k in sorted(a.keys() | b.keys()) if a.get(k) != b.get(k)}
        if not changed:
            if old != config:  # bookkeeping changed, e.g. run.mlflow=false: same run, new settings
                _save(path, config)
            return old
        if on_change == "error":
            lines = ", ".join(f"{k}: {x!r} -> {y!r}" for k, (x, y) in changed.items())
            raise ConfigError(
                f"{run_dir} holds a run with a different config ({lines}); use another --out directory, the same "
                "settings to resume it, or --on-config-change archive to set the old run aside"
            )
        _archive(run_dir, old_digest=digest(identity(old)), new_digest=digest(identity(config)))
        _relock(run_dir)  # the lock file moved with the old run: hold the new directory
    run_dir.mkdir(parents=True, exist_ok=True)
    _save(path, config)
    return None


def _archive(run_dir: Path, old_digest: str, new_digest: str) -> None:
    """Move a run made with another config to PARENT/.replaced/NAME-OLDHASH-TIME and mark its MLflow run replaced."""
    mark_replaced(run_dir, new_digest)
    dest = run_dir.parent / REPLACED_DIR / f"{run_dir.name}-{old_digest}-{time.strftime('%Y%m%d%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_dir.rename(dest)
    log.warning("config changed: moved the old run %s to %s", run_dir, dest)


def _identity(config: Config | Mapping[str, Any]) -> Mapping[str, Any]:
    return config.identity() if isinstance(config, Config) else config


def _load(path: Path, like: Config | Mapping[str, Any]) -> Config | dict[str, Any]:
    if isinstance(like, Config):
        return config_lib.load(path)  # names the file and the problem if it is corrupt
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({getattr(exc, 'problem', exc)}); delete the run directory "
                          "or restore the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a config mapping; delete the run directory or restore the file")
    return data


def _save(path: Path, config: Config | Mapping[str, Any]) -> None:
    if isinstance(config, Config):
        config_lib.save(config, path)
    else:
        atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))


# ---- one writer per run directory


class RunInUseError(PlanetError):
    """Another live process holds the run directory (the message names it: command, PID, host, for how long)."""


@dataclasses.dataclass
class _Held:
    handle: IO[str]
    command: str
    shared: bool
    created: bool  # this lock made the directory (removed again if nothing else was written there)


_HELD: dict[str, _Held] = {}  # run directory (resolved) -> this process's hold on it
_F = TypeVar("_F", bound=Callable[..., Any])


@contextlib.contextmanager
def lock(run_dir: Path, command: str, shared: bool = False) -> Iterator[None]:
    """Hold RUN for this process while the block runs (module docstring): exclusively, or `shared` with other
    holders that share it. Raises :class:`RunInUseError` at once if another process holds it otherwise.

    The lock is ``flock`` on ``RUN/.lock`` (freed by the kernel when the process ends, however it ends); the file
    records each holder's host, PID, start time and `command` for the error message. A nested call for a directory
    this process holds already (one command calling another) holds nothing more. A shared holder of a
    directory that does not exist holds nothing (the command itself reports the missing run); an exclusive one
    creates it.
    """
    run_dir = Path(run_dir)
    key = str(run_dir.resolve())
    if key in _HELD or (shared and not run_dir.is_dir()):
        yield
        return
    created = not run_dir.exists()
    _HELD[key] = _Held(_acquire(run_dir, command, shared), command, shared, created)
    try:
        yield
    finally:
        _release(run_dir, _HELD.pop(key))


def locked(command: str, shared: bool = False) -> Callable[[_F], _F]:
    """Decorate a function with a ``run_dir`` argument so that it runs holding that run (:func:`lock`)."""

    def wrap(fn: _F) -> _F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock(signature.bind(*args, **kwargs).arguments["run_dir"], command, shared):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return wrap


def _acquire(run_dir: Path, command: str, shared: bool) -> IO[str]:
    import fcntl

    path = run_dir / LOCK_FILE
    for _ in range(10):  # retried only if the lock file was replaced or removed while this process took it
        run_dir.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(path, "a+", encoding="utf-8")  # held open for the life of the hold
        except FileNotFoundError:  # the directory was removed just now (an empty one given back by its creator)
            continue
        try:
            fcntl.flock(handle, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except OSError as exc:
            holders = _holders(path)
            handle.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RunInUseError(_in_use_message(run_dir, holders)) from None
            log.warning("cannot lock %s (%s): running without the one-writer-per-run check", path, exc)
            return open(os.devnull, "a+", encoding="utf-8")  # stands in for the lock file
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if not same:  # we locked a file that is no longer RUN/.lock: take the one that is
            handle.close()
            continue
        record = {"host": socket.gethostname(), "pid": os.getpid(), "since": int(time.time() * 1000) / 1000,
                  "command": command, "shared": shared}
        with contextlib.suppress(OSError):  # the record only explains the lock; a full disk must not stop it
            if not shared:
                handle.truncate(0)  # the exclusive holder is the only one: drop the records of ended holders
            handle.write(json.dumps(record) + "\n")  # appended (O_APPEND): shared holders never clobber each other
            handle.flush()
        return handle
    raise PlanetError(f"cannot take the lock {path}: it keeps being replaced or removed by another process")


def _release(run_dir: Path, held: _Held) -> None:
    with contextlib.suppress(OSError):
        if not held.shared:
            held.handle.truncate(0)  # nobody holds it now
        if held.created and not held.shared and {p.name for p in run_dir.iterdir()} == {LOCK_FILE}:
            # A directory made only to hold the lock (e.g. a command that failed on its settings): give it back.
            # Removed while still locked, so that no other process can hold the file being removed.
            (run_dir / LOCK_FILE).unlink()
            run_dir.rmdir()
    held.handle.close()  # frees the flock


def _relock(run_dir: Path) -> None:
    """After RUN was moved aside (:func:`_archive`), hold the new RUN in its place if this process held the old."""
    key = str(Path(run_dir).resolve())
    held = _HELD.get(key)
    if held is None:
        return
    handle = _acquire(Path(run_dir), held.command, held.shared)
    with contextlib.suppress(OSError):
        if not held.shared:
            held.handle.truncate(0)  # the old run's lock file (moved with it) names no holder
    held.handle.close()
    held.handle, held.created = handle, False


def _holders(path: Path) -> list[dict[str, Any]]:
    """The holders recorded in a lock file, those known to have ended left out (their records stay until the next
    exclusive holder clears them)."""
    holders = []
    with contextlib.suppress(OSError):
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, TypeError):
                record = json.loads(line)
                if isinstance(record, dict) and _may_live(record):
                    holders.append(record)
    return holders


def _may_live(record: Mapping[str, Any]) -> bool:
    if record.get("host") != socket.gethostname():
        return True  # another machine's process (a shared filesystem): it cannot be asked from here
    try:
        os.kill(int(record["pid"]), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, KeyError, ValueError, TypeError, OverflowError):
        return True
    return True


def _in_use_message(run_dir: Path, holders: list[dict[str, Any]]) -> str:
    def one(record: Mapping[str, Any]) -> str:
        since = float(record.get("since") or time.time())
        start = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        return (f"`{record.get('command', '?')}` (PID {record.get('pid', '?')} on {record.get('host', '?')}, "
                f"for {_duration(time.time() - since)}, since {start})")

    who = "; ".join(one(r) for r in holders) if holders else "another process (it has not recorded itself yet)"
    return (f"{run_dir} is in use by {who} - one process writes a run at a time: wait for it to end or end it "
            f"(a killed process frees the run at once; a suspended one keeps it), then run this command again")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def git_tags(run_dir: Path | None = None) -> dict[str, str]:
    """``{"git_commit": SHA}`` of the code that runs (empty outside a git checkout).

    With ``run_dir`` (a run that may be resuming), also ``git_commits``: every commit the run has run on, in order,
    space-separated; tags.json keeps only the latest ``git_commit``, and a run resumed after a ``git pull`` would
    otherwise not say that part of it ran on older code.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if not commit:
        return {}
    if run_dir is None:
        return {"git_commit": commit}
    return {"git_commit": commit, "git_commits": tag_history(run_dir, "git_commits", "git_commit", commit)}


def tag_history(run_dir: Path, history_key: str, latest_key: str, value: str) -> str:
    """The space-separated values that tag `latest_key` has had over RUN's lives (read from RUN/tags.json's
    `history_key`, or its `latest_key` where the run predates the history), with `value` appended where it differs
    from the last one. An unreadable tags.json loses only the history."""
    old: dict = {}
    with contextlib.suppress(OSError, ValueError):
        old = json.loads((Path(run_dir) / TAGS_FILE).read_text(encoding="utf-8"))
    history = str(old.get(history_key) or old.get(latest_key) or "").split() if isinstance(old, dict) else []
    if not history or history[-1] != value:
        history.append(value)
    return " ".join(history)


def tracking_uri(run_dir: Path) -> str | None:
    """The MLflow store that RUN's tracking continues in: None (the tracker's choice) when MLFLOW_TRACKING_URI is set
    or the run has no MLflow run yet, else the store recorded in RUN/mlflow_run.json.

    Without this, a resume or `planet evaluate` started from another working directory (the default store,
    sqlite:///mlflow.db, is relative to it) started a new MLflow run in another database and overwrote
    RUN/mlflow_run.json, cutting the run's link to its MLflow run.
    """
    path = Path(run_dir) / RUN_FILE
    if os.environ.get("MLFLOW_TRACKING_URI") or not path.exists():
        return None
    with contextlib.suppress(ValueError, OSError):
        return json.loads(path.read_text()).get("tracking_uri")
    return None


def variant(run_dir: Path) -> str | None:
    """The pipeline variant RUN was trained as (its ``variant`` tag, e.g. ``gru``), or None outside the pipeline."""
    path = Path(run_dir) / TAGS_FILE
    return json.loads(path.read_text()).get("variant") if path.exists() else None


def progress(run_dir: Path) -> dict[str, Any]:
    """The counters of RUN's latest checkpoint (``progress.json``: episodes, updates, env_steps); {} before it."""
    path = Path(run_dir) / "progress.json"
    return json.loads(path.read_text()) if path.exists() else {}


def tracker(run_dir: Path, config: Config) -> Tracker:
    """A tracker that continues RUN's own MLflow run (its store whatever the working directory, its experiment and
    name), for results added to a trained run; the metrics also go to RUN/metrics.jsonl."""
    return Tracker(run_dir, experiment=config.run.experiment, run_name=config.run_name(variant(run_dir)),
                   params=config.to_dict(), tags={}, enabled=config.run.mlflow, tracking_uri=tracking_uri(run_dir))


def write_result(run_dir: Path, name: str, result: Mapping[str, Any], out: Path | None = None) -> Path:
    """Write a result of RUN as RUN/NAME (JSON, atomically; the file its MLflow run shows, named for what it is) and
    a copy to ``out`` (the pipeline's RESULTS/... file) if given; returns RUN/NAME."""
    text = json.dumps(result, indent=2)
    own = Path(run_dir) / name
    atomic_write_text(own, text)
    if out and Path(out).resolve() != own.resolve():
        atomic_write_text(Path(out), text)
    return own


def load_model(run_dir: Path, device: torch.device) -> tuple[Config, WorldModel]:
    """The config and trained model of a run (final weights if complete, else the latest checkpoint)."""
    import torch

    from planet.models import WorldModel
    from planet.rollouts import make_env

    run_dir = Path(run_dir)
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); pass the --out of a train run")
    cfg = config_lib.load(cfg_path)
    if is_multitask(cfg.task):
        raise PlanetError(f"{run_dir} is a multi-task run (--task {cfg.task}); `planet evaluate` and `planet diagnose` "
                          "take single-task runs - its per-task evaluations are its eval/TASK/* metrics and the views "
                          "under RESULTS/runs/multitask/TASK/")
    probe = make_env(cfg)
    model = WorldModel(cfg.model, probe.action_dim).to(device)
    probe.close()
    if (run_dir / "model.pt").exists():
        model.load_state_dict(torch.load(run_dir / "model.pt", map_location=device))
    elif (run_dir / "checkpoint.pt").exists():
        model.load_state_dict(torch.load(run_dir / "checkpoint.pt", map_location=device, weights_only=False)["model"])
    else:
        raise FileNotFoundError(f"{run_dir} has neither model.pt nor checkpoint.pt: train it first")
    model.eval()
    return cfg, model
