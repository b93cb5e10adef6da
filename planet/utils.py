"""Small shared helpers: atomic file writes (text, JSON, binary), flattening nested params, seeded generators,
device choice."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch


@contextlib.contextmanager
def atomic_open(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temp file beside `path`; on success fsync and rename it over `path`.

    A crash (SIGKILL included) leaves either the old file or the new one, never a half-written file under `path`.
    Temp files start with ``.tmp-`` so loaders can ignore and remove leftovers.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-" + path.name + ".", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    with atomic_open(path, "w") as handle:
        handle.write(text)


def atomic_write_json(path: Path, data: Any) -> None:
    """Atomically write ``data`` as indented, key-sorted JSON (numpy/torch scalars and small arrays as numbers,
    sets as sorted lists, anything else as its string)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    with contextlib.suppress(TypeError, ValueError):
        return value.item()  # numpy / torch scalars
    with contextlib.suppress(TypeError, ValueError):
        return value.tolist()  # small arrays
    return str(value)


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
    """A 63-bit seed for the component `name` of the run with `seed`; stable across Python versions."""
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
