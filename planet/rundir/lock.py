"""One writer per run directory: :func:`lock` and the decorator :func:`locked` (the package docstring says who holds
a run how). The lock is an ``flock`` on ``RUN/.lock``, so the kernel frees it when its process dies: a killed run
never leaves a stale lock."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import functools
import inspect
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any, TypeVar

from planet.rundir.layout import LOCK_FILE
from planet.utils import PlanetError

log = logging.getLogger(__name__)


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


def relock(run_dir: Path) -> None:
    """After RUN was moved aside (`claim`), hold the new RUN in its place if this process held the old."""
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
