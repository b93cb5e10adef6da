"""Small shared helpers: atomic file writes (text, JSON, binary; a full disk is one clear error), flattening nested
params, seeded generators, device choice."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path, PurePath
from typing import IO, Any

import numpy as np
import torch

TMP_PREFIX = ".tmp-"
"""Temp files of atomic writes start with this (readers ignore them; :func:`remove_stale_temp_files` removes those
left by a killed writer)."""


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`.

    A crash (SIGKILL included) leaves either the old file or the new one, never a half-written file under `path`.
    Temp files start with ``.tmp-`` and are ``flock``ed while written, so that :func:`remove_stale_temp_files` can
    tell the leftovers of a killed writer from a live one's.
    A full disk or quota (ENOSPC, EDQUOT; also as torch.save's RuntimeError) raises :class:`DiskFullError`, one line
    naming the path, the space needed and the space free; the file under `path` stays as it was.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, tmp = _locked_temp_file(path, mode)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.replace(tmp, path)  # while still locked: a cleaner never takes a finished temp file for a leftover
    except BaseException as exc:
        written, free = file_size(tmp), free_bytes(path.parent)  # free: before the temp file's space comes back
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        if (full := disk_full(exc, path, written, free)) is not None:
            raise full from exc
        raise


def _locked_temp_file(path: Path, mode: str) -> tuple[IO, str]:
    """A new temp file beside `path`, open and ``flock``ed (retried if a cleaner removed it before it was locked)."""
    import fcntl

    while True:
        fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX + path.name + ".", dir=path.parent)
        handle = os.fdopen(fd, mode)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX)
        except OSError:  # a filesystem without locks: written unlocked (and never taken for a leftover, below)
            return handle, tmp
        if _same_file(handle, tmp):
            return handle, tmp
        handle.close()  # removed by remove_stale_temp_files between mkstemp and flock: take another


def _same_file(handle: IO, path: str | Path) -> bool:
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def remove_stale_temp_files(directory: Path, name: str = "") -> list[Path]:
    """Remove the temp files of atomic writes of NAME (default: of any file) in `directory` that no live writer holds:
    those a killed process left (:func:`atomic_open` holds an ``flock`` on each while writing it). Returns them."""
    import fcntl

    removed = []
    with contextlib.suppress(OSError):
        for path in Path(directory).glob(f"{TMP_PREFIX}{name}.*" if name else f"{TMP_PREFIX}*"):
            with contextlib.suppress(OSError), open(path, "rb") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # OSError: a live writer holds it
                if _same_file(handle, path):
                    path.unlink()
                    removed.append(path)
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented, key-sorted JSON (:func:`json_default` encodes what JSON lacks)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(value: Any) -> Any:
    """The project's one JSON encoder for what JSON lacks (``json.dumps(..., default=json_default)``): numpy and
    torch scalars as numbers, arrays and tensors as lists, sets as sorted lists, paths as strings; anything else is a
    TypeError naming its type."""
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, (np.generic, np.ndarray, torch.Tensor)):
        return value.tolist()  # a number for scalars (0-d arrays and tensors included)
    raise TypeError(f"a value of type {type(value).__name__} is not JSON serialisable")


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}`` (an empty mapping stays a value)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def atomic_save(path: Path, write: Callable[[IO], None]) -> None:
    """Atomically write a binary file produced by `write(handle)` (e.g. ``lambda f: torch.save(obj, f)``)."""
    with atomic_open(path, "wb") as handle:
        write(handle)


def derive_seed(seed: int, name: str) -> int:
    """A 63-bit seed for the component `name` of the run with `seed`; stable across Python versions.

    One of the project's two seed derivations: this one seeds a run's generators (parameter initialisation, the
    replay's sampler, training noise, ...) by name; :func:`planet.envs.episode_seed` seeds one episode's environment
    and agent by (split, index) as a 32-bit number, which dm_control takes. They cannot share one formula without
    changing every seed a run uses, so each run's episodes and results would change."""
    digest = hashlib.sha256(f"{seed}/{name}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def torch_generator(seed: int, name: str, device: torch.device | str = "cpu") -> torch.Generator:
    """A torch generator owned by one component, seeded from (run seed, component name)."""
    gen = torch.Generator(device=device)
    gen.manual_seed(derive_seed(seed, name))
    return gen


def numpy_generator(seed: int, name: str) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(derive_seed(seed, name)))


# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4
RETAINING_FREED_MEMORY = False  # set by retain_freed_memory(); `planet bench` reports it


def retain_freed_memory() -> bool:
    """Keep freed heap memory in the process instead of giving it back to the OS (glibc only; a no-op elsewhere).

    PyTorch's CPU allocator is plain malloc: every tensor above glibc's mmap threshold (at most 32 MB) is a fresh
    mmap, and touching it page-faults it in again on every use. On these VMs that fault cost was ~0.09 s per 288 MB
    activation, ~40% of a paper-size update (10.8 s -> 6.5 s with this on; `planet bench` measures it). Serving
    large blocks from the heap and never trimming it makes the update's buffers reusable, at the price of keeping
    the peak working set resident (~1 GB more at B=50). Set PLANET_RETAIN_FREED_MEMORY=0 to turn it off.
    Returns whether the setting was applied.
    """
    if os.environ.get("PLANET_RETAIN_FREED_MEMORY", "1") == "0" or not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or another libc: nothing to tune
        return False
    global RETAINING_FREED_MEMORY
    RETAINING_FREED_MEMORY = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    return RETAINING_FREED_MEMORY


def memory_gb() -> dict[str, float]:
    """This process's resident memory now and its peak so far, in GB (10^9 bytes).

    `rss_gb` comes from /proc/self/statm (Linux); elsewhere only the peak is known (ru_maxrss: KiB on Linux, bytes on
    macOS). With `retain_freed_memory` on, the peak working set of an update stays resident, so both read alike.
    """
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 1e9
    out = {"peak_rss_gb": peak}
    with contextlib.suppress(OSError, ValueError, IndexError):
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        out["rss_gb"] = pages * os.sysconf("SC_PAGE_SIZE") / 1e9
    return out


class PlanetError(Exception):
    """An expected failure: the message is one line saying what is wrong, in which file, and how to fix it (the CLI
    prints it as `planet: error: ...`, exit status 1, no traceback unless --debug)."""


DISK_FULL_ERRNOS = {errno.ENOSPC: "disk full", errno.EDQUOT: "disk quota exceeded"}
_TORCH_WRITE_FAILED = ("file write failed", "unexpected pos")
"""torch.save's RuntimeErrors for a failed write: its C++ writer drops the errno, so these count as a full disk only
where the filesystem is (nearly) full."""
_NEARLY_FULL = 16 << 20


class DiskFullError(PlanetError):
    """A write failed because the disk or the quota is full. The message is one line: the path, about how much the
    write needed, how much is free, and that the same command resumes once space is freed. Atomic writes leave the
    previous file in place, so the run's last checkpoint, episodes and metrics are intact."""


def disk_full(exc: BaseException, path: Path, written: int | None = None, free: int | None = None,
              size: int | None = None) -> DiskFullError | None:
    """The :class:`DiskFullError` for a failed write of `path` (`written` bytes had reached its temp file, `free`
    bytes were free when it failed, `size`: the bytes being written, where known), or None if `exc` is another
    failure."""
    code = _disk_full_errno(exc, free) if isinstance(exc, Exception) else None  # not Ctrl-C, SystemExit
    if code is None:
        return None
    path = Path(path)
    needed, basis = max(written or 0, 0), "written before it failed"
    if size is not None:
        needed, basis = max(size, needed), "the data being written"
    elif (previous := file_size(path)) is not None and previous >= needed:
        needed, basis = previous, f"the size of the {path.name} it replaces"
    now_free = free_bytes(path.parent)
    free_text = "unknown" if now_free is None else format_bytes(now_free)
    how = "free space or raise the quota" if code == errno.EDQUOT else "free space"
    return DiskFullError(
        f"{DISK_FULL_ERRNOS[code]} ({os.strerror(code)}) writing {path}: it needs about {format_bytes(needed)} "
        f"({basis}) and {free_text} is free there - {how}, then run the same command again: it resumes from what "
        "was written before (the previous checkpoint, episodes and metrics are intact)"
    )


def _disk_full_errno(exc: BaseException, free: int | None) -> int | None:
    seen: set[int] = set()
    chain: list[BaseException] = []
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:  # the exception, its cause or context, theirs, ...
        seen.add(id(item))
        chain.append(item)
        item = item.__cause__ or item.__context__
    for item in chain:
        if isinstance(item, OSError) and item.errno in DISK_FULL_ERRNOS:
            return item.errno
        for code in DISK_FULL_ERRNOS:
            if os.strerror(code) in str(item):  # e.g. a RuntimeError quoting the OS error
                return code
    torch_failed = any(isinstance(item, RuntimeError) and any(s in str(item) for s in _TORCH_WRITE_FAILED)
                       for item in chain)
    if torch_failed and free is not None and free < _NEARLY_FULL:
        return errno.ENOSPC
    return None


def free_bytes(path: Path) -> int | None:
    """Bytes free to this user on the filesystem of `path` (None if it cannot be asked)."""
    try:
        return shutil.disk_usage(path).free
    except OSError:
        return None


def file_size(path: Path | str | None) -> int | None:
    """The size of the file at `path` in bytes, or None where there is none."""
    if path is None:
        return None
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def format_bytes(n: float) -> str:
    """``1536`` -> ``1.5 kB`` (decimal units, as `df -H`)."""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


class DeviceError(ValueError):
    """The requested device does not exist here; the message says what to pass instead."""


def choose_device(name: str | None = None) -> torch.device:
    """`name` if given ("cpu", "cuda", "cuda:1"), else CUDA when available, else CPU.

    A plain "cuda" on a machine with several visible GPUs claims a free one (`claim_gpu`), so that parallel
    pipeline jobs spread over the GPUs instead of all landing on GPU 0.
    """
    if name:
        try:
            device = torch.device(name)
        except RuntimeError as exc:
            raise DeviceError(f"--device {name}: not a device ({exc}) - use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(f"--device {name}: CUDA is not available on this machine (torch {torch.__version__}) - "
                              "run on a GPU node, or pass --device cpu")
        if device.type == "cuda" and device.index is None and torch.cuda.device_count() > 1:
            return torch.device("cuda", claim_gpu(torch.cuda.device_count()))
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_GPU_LOCKS: list = []  # open lock files of the GPUs this process claimed (released when it exits)


def claim_gpu(count: int, lock_dir: Path | None = None) -> int:
    """Index of a GPU (0..count-1) no other live process of this user has claimed; held until this process exits.

    One lock file per GPU (`flock`, released by the kernel when the process dies, so a killed job frees its GPU).
    If every GPU is claimed, the least recently claimed one is shared (jobs then queue on it).
    """
    import fcntl

    lock_dir = Path(lock_dir or os.environ.get("PLANET_GPU_LOCK_DIR") or
                    Path(tempfile.gettempdir()) / f"planet-gpus-{os.getuid()}")
    lock_dir.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        fh = open(lock_dir / f"gpu{index}.lock", "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            continue
        _GPU_LOCKS.append(fh)
        os.utime(lock_dir / f"gpu{index}.lock")  # "last claimed", for sharing when all are taken
        return index
    stamps = [(lock_dir / f"gpu{i}.lock").stat().st_mtime for i in range(count)]
    return min(range(count), key=stamps.__getitem__)


def manifest(paths: list[Path], small: int = 1 << 20) -> dict[str, dict]:
    """{path: {size, sha256 | mtime_ns}} for files under `paths`; temp and hidden entries are skipped."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += [p for p in sorted(path.rglob("*")) if p.is_file()
                      and not any(part.startswith(".") for part in p.relative_to(path).parts)]
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"manifest: {path} does not exist")
    out = {}
    for f in files:
        st = f.stat()
        entry: dict = {"size": st.st_size}
        if st.st_size <= small:
            entry["sha256"] = hashlib.sha256(f.read_bytes()).hexdigest()
        else:
            entry["mtime_ns"] = st.st_mtime_ns
        out[str(f)] = entry
    return out
