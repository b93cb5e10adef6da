"""Memory and disk a training run needs, estimated from its config before it starts, and the check at its start.

`planet train` (one task, or one agent of several: planet/multitask.py) calls :func:`check_run` before it writes
anything: a run that cannot fit is refused in one line (:class:`ResourceError`, printed by the CLI as `planet: error:
...`), one above 80% of what is available gets a warning line. `planet config` prints the estimate, and the pipeline's
training rules declare it as `resources: mem_mb` (workflow/rules/common.smk), so a local Snakemake starts no more
trainings at once than the machine holds.

What is counted, in bytes, and where each number comes from (the figures are for the paper preset on walker_walk):

- **replay**: the in-RAM buffer at the run's last episode (planet/replay.py): ``train.episodes`` x (agent steps + 1)
  rows per task (agent steps = ``env.episode_env_steps`` / action repeat; summed over the tasks of one agent of
  several), each row a uint8 frame of ``env.image_size`` x ``env.image_size`` x 3, the action as float32 (the task's
  action size, the largest of the tasks for several: planet.tasks) and a float32 reward. Walker: 1000 x 501 rows x
  12316 B = 6.17 GB. The buffer is reserved at the start and becomes resident as episodes arrive, so without this
  check a run too big for the machine dies late, or at once with numpy's allocation error.
- **model and Adam**: 16 bytes per parameter (float32 weights, gradients and Adam's two moments), the parameters
  counted on a `WorldModel` built on torch's meta device (nothing allocated): 5.13M parameters, 82 MB.
- **process and activations**: ``PROCESS_BYTES`` + ``ACTIVATION_BYTES_PER_STEP`` x batch size x chunk length. Fitted to
  the two runs docs/speed.md's Memory section records, beyond their frames: the cpu preset's walker (B=16, L=50) held
  2.0 GB with 129 MB of frames (1.87 GB beyond), a paper-size cartpole run on a CPU (B=50, L=50) 3.38-3.43 GB with
  39 MB of frames (3.39 GB beyond: 0.6 GB of torch and MuJoCo plus the update's working set, which freed-memory
  retention keeps resident). Less the model's 82 MB, the line through both is 1.075 GB + 0.894 MB x B x L, rounded
  up here to 1.1 GB + 0.9 MB x B x L. A debug walker run (B=3, L=8), measured after the fit, peaked at 0.70 GB
  against the 1.12 GB allowed. On a GPU the activations live in device memory and the CUDA runtime's host memory
  takes their place (not measured: no GPU has run this code). Only two measured sizes, both on 2-core CPUs: the line
  is a stated estimate, not a bound.
- **disk**: the run directory at its end: every episode file (uncompressed .npz: the row above plus the true simulator
  state, `state_size` float32 per row from planet.tasks, and ``EPISODE_FILE_OVERHEAD`` for the npy/zip headers and
  the metadata, measured 2.1 kB), two checkpoints (an atomic write holds the new one beside the old: 12 bytes per
  parameter each, weights and Adam's moments), model.pt (4 bytes per parameter), and ``OTHER_FILES_BYTES`` per task
  (evaluation GIF, ~10 kB per frame; open-loop strip; metrics.jsonl, ~1 kB per episode; config and tags). A resumed
  run needs only what its directory does not hold yet. MLflow's copies of the artifacts live in its own store.

Available memory: the smallest of MemAvailable (/proc/meminfo), the memory cgroup's limit of this process and its
parents (v2 ``memory.max``, v1 ``memory.limit_in_bytes``) and the SLURM allocation (``SLURM_MEM_PER_NODE``, or
``SLURM_MEM_PER_CPU`` x the task's CPUs). Free disk: ``shutil.disk_usage`` of the run directory's filesystem.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from planet.config import Config, ModelConfig
from planet.tasks import get_task, task_list
from planet.utils import PlanetError

__all__ = ["ResourceError", "Estimate", "available_memory", "check_run", "estimate", "free_disk"]

log = logging.getLogger(__name__)

PROCESS_BYTES = 1_100_000_000
"""Process (torch, MuJoCo, environments, evaluation, planner) beyond the replay and the model: fitted (module doc)."""
ACTIVATION_BYTES_PER_STEP = 900_000
"""The update's working set per chunk step (B x L), kept resident by freed-memory retention: fitted (module doc)."""
PARAMETER_BYTES = 16
"""float32 weights, gradients, Adam's exp_avg and exp_avg_sq."""
EPISODE_FILE_OVERHEAD = 4096
"""npy headers, zip entries and the metadata JSON of one episode file (2.1 kB measured on a debug walker run)."""
OTHER_FILES_BYTES = 32 << 20
"""Per task: evaluation GIF and open-loop strip, metrics.jsonl, config, params and tags."""
WARN_FRACTION = 0.8
"""Above this fraction of what is available, a run starts with a warning line."""

MEMINFO = Path("/proc/meminfo")
PROC_CGROUP = Path("/proc/self/cgroup")
CGROUP_ROOT = Path("/sys/fs/cgroup")
_NO_CGROUP_LIMIT = 1 << 60  # cgroup v1 writes ~2^63 for "no limit"


class ResourceError(PlanetError):
    """The run needs more memory or disk than this machine gives it; the message says how much and what to change."""


@dataclass(frozen=True)
class Estimate:
    """What a run needs at its last episode (bytes); :func:`estimate` computes it from a config."""

    episodes: int
    """Training episodes of the run (per task for an agent of several tasks)."""
    tasks: int
    replay_rows: int
    replay_bytes: int
    parameters: int
    model_bytes: int
    """Weights, gradients and Adam's moments."""
    process_bytes: int
    """Process and activations (``PROCESS_BYTES`` + ``ACTIVATION_BYTES_PER_STEP`` x B x L)."""
    episode_files_bytes: int
    disk_bytes: int
    """The whole run directory: episode files, checkpoints, model, other files."""

    @property
    def memory_bytes(self) -> int:
        return self.replay_bytes + self.model_bytes + self.process_bytes

    @property
    def mem_mb(self) -> int:
        """Memory in Snakemake's `mem_mb` unit (10^6 bytes), rounded up."""
        return math.ceil(self.memory_bytes / 1e6)

    def memory_text(self) -> str:
        episodes = f"{self.episodes} episodes" + (f" of each of {self.tasks} tasks" if self.tasks > 1 else "")
        return (f"{size(self.memory_bytes)} of memory at its last episode (replay {size(self.replay_bytes)}: "
                f"{self.replay_rows:,} rows of {episodes}; model and Adam {size(self.model_bytes)}; "
                f"process and activations {size(self.process_bytes)})")

    def disk_text(self) -> str:
        return f"{size(self.disk_bytes)} ({size(self.episode_files_bytes)} of episode files)"

    def describe(self) -> str:
        """The estimate as YAML comment lines (what `planet config` prints after the config)."""
        lines = [
            "# resources (planet/resources.py; `planet train` checks them when it starts): the run needs",
            f"#   {self.memory_text()}",
            f"#   {size(self.disk_bytes)} of disk for the run directory ({size(self.episode_files_bytes)} of episode "
            "files)",
        ]
        memory, source = available_memory()
        free = free_disk(Path.cwd())
        here = []
        if memory is not None:
            here.append(f"{size(memory)} of memory ({source})")
        if free is not None:
            here.append(f"{size(free)} of disk free in the working directory")
        if here:
            lines.append(f"#   available here: {', '.join(here)}")
        return "\n".join(lines)


def size(n: float) -> str:
    """``1_536_000`` -> ``1.5 MB`` (decimal units, as `df -H`)."""
    for unit in ("B", "kB", "MB", "GB"):
        if abs(n) < 1000:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


@functools.lru_cache(maxsize=64)
def _parameters(model: ModelConfig, action_dim: int) -> int:
    """Parameters of the world model of `model` and `action_dim`, counted on the meta device (nothing allocated)."""
    import torch

    from planet.models import WorldModel

    with torch.device("meta"):
        return sum(p.numel() for p in WorldModel(model, action_dim).parameters())


def estimate(config: Config) -> Estimate:
    """Memory and disk of the run of `config` at its last episode (module docstring); opens no environment."""
    tasks = task_list(config.task)
    specs = [get_task(t) for t in tasks]
    action_dim = max(s.action_dim for s in specs)  # several tasks: actions padded to the largest (planet/multitask.py)
    frame = config.env.image_size**2 * 3
    row = frame + 4 * action_dim + 4  # uint8 frame, float32 action and reward
    episodes = config.train.episodes
    rows = [config.env.episode_env_steps // (config.env.action_repeat or s.action_repeat) + 1 for s in specs]
    replay_rows = episodes * sum(rows)
    parameters = _parameters(config.model, action_dim)
    # episode files: the row plus the float32 true state; the disk beside them: two checkpoints (12 B per parameter
    # each), model.pt (4 B per parameter) and the other files of each task
    files = episodes * sum(r * (row + 4 * s.state_size) + EPISODE_FILE_OVERHEAD
                           for r, s in zip(rows, specs, strict=True))
    disk = files + parameters * (2 * 12 + 4) + OTHER_FILES_BYTES * len(tasks)
    return Estimate(
        episodes=episodes, tasks=len(tasks), replay_rows=replay_rows, replay_bytes=replay_rows * row,
        parameters=parameters, model_bytes=parameters * PARAMETER_BYTES,
        process_bytes=PROCESS_BYTES + ACTIVATION_BYTES_PER_STEP * config.train.batch_size * config.train.chunk_length,
        episode_files_bytes=files, disk_bytes=disk,
    )


# ---- what this machine gives


def available_memory() -> tuple[int | None, str]:
    """(bytes, where the number comes from): the least of MemAvailable, the memory cgroup's limit and the SLURM
    allocation; (None, "unknown") where none can be read (e.g. not Linux)."""
    found: list[tuple[int, str]] = []
    meminfo = _meminfo_available()
    if meminfo is not None:
        found.append((meminfo, "MemAvailable"))
    cgroup = _cgroup_limit()
    if cgroup is not None:
        found.append(cgroup)
    slurm = _slurm_limit()
    if slurm is not None:
        found.append(slurm)
    if not found:
        return None, "unknown"
    return min(found)


def _meminfo_available() -> int | None:
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # kB (KiB)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_limit() -> tuple[int, str] | None:
    """The smallest memory limit of this process's cgroup and its parents (v2 and v1), with the file it is in."""
    try:
        lines = PROC_CGROUP.read_text().splitlines()
    except OSError:
        return None
    candidates: list[Path] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and not controllers:  # v2 (the unified hierarchy; /unified in hybrid setups)
            bases, name = [CGROUP_ROOT, CGROUP_ROOT / "unified"], "memory.max"
        elif "memory" in controllers.split(","):
            bases, name = [CGROUP_ROOT / "memory"], "memory.limit_in_bytes"
        else:
            continue
        steps = Path(path.strip("/")).parts
        for base in bases:  # the group itself and every parent (a container sees its own group as the root)
            candidates += [base.joinpath(*steps[:i]) / name for i in range(len(steps), -1, -1)]
    limits = []
    for path in candidates:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < _NO_CGROUP_LIMIT:
            limits.append((int(text), f"cgroup limit {path}"))
    return min(limits) if limits else None


def _slurm_limit() -> tuple[int, str] | None:
    """The SLURM job's memory: SLURM_MEM_PER_NODE, or SLURM_MEM_PER_CPU x the CPUs of the task (MB = MiB)."""
    def number(name: str) -> int | None:
        text = os.environ.get(name, "").strip()
        return int(text) if text.isdigit() else None

    per_node = number("SLURM_MEM_PER_NODE")
    if per_node:
        return per_node << 20, f"SLURM_MEM_PER_NODE={per_node}"
    per_cpu = number("SLURM_MEM_PER_CPU")
    if per_cpu:
        cpus = number("SLURM_CPUS_PER_TASK") or number("SLURM_CPUS_ON_NODE") or 1
        return (per_cpu * cpus) << 20, f"SLURM_MEM_PER_CPU={per_cpu} x {cpus} CPUs"
    return None


def free_disk(path: Path) -> int | None:
    """Bytes free to this user on the filesystem `path` is (or would be) on: its nearest existing ancestor's."""
    path = Path(path).absolute()
    for candidate in (path, *path.parents):
        if candidate.exists():
            try:
                return shutil.disk_usage(candidate).free
            except OSError:
                return None
    return None


# ---- the check


def _held(config: Config, run_dir: Path) -> tuple[bool, int]:
    """(whether RUN holds this run complete, the bytes RUN holds of this run); 0 bytes for another config's run,
    which `planet train` refuses or moves aside."""
    from planet import config as config_lib

    config_file = run_dir / "config.yaml"
    if not config_file.is_file():
        return False, 0
    try:
        same = config_lib.load(config_file).identity() == config.identity()
    except Exception:  # a corrupt config.yaml: `planet train` itself says so next
        return False, 0
    if not same:
        return False, 0
    held = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file())
    return (run_dir / "summary.json").exists(), held


def check_run(config: Config, run_dir: Path, *, warn_fraction: float = WARN_FRACTION) -> Estimate | None:
    """Refuse a run that cannot fit this machine's memory or the run directory's disk (:class:`ResourceError`, one
    line saying what it needs, what is available and what to change); log a warning line when it needs more than
    `warn_fraction` of either. A complete run of the same config needs nothing (None)."""
    run_dir = Path(run_dir)
    complete, held = _held(config, run_dir)
    if complete:
        return None
    est = estimate(config)
    memory, source = available_memory()
    free = free_disk(run_dir)
    disk_needed = max(est.disk_bytes - held, 0)
    problems, warnings = [], []
    if memory is not None:
        text = (f"this run needs {est.memory_text()} and {size(memory)} is available ({source})")
        if est.memory_bytes > memory:
            problems.append(f"not enough memory: {text} - lower train.episodes (the replay keeps every episode of "
                            "the run in memory: train.episodes x (agent steps + 1) rows), or run where more memory "
                            "is available")
        elif est.memory_bytes > warn_fraction * memory:
            warnings.append(f"memory is short: {text}, {est.memory_bytes / memory:.0%} of it; the run may run out "
                            "of memory late - lower train.episodes, or free memory")
    if free is not None:
        text = (f"{run_dir} grows to {est.disk_text()}, {size(disk_needed)} more than it holds now, and "
                f"{size(free)} is free on its filesystem")
        if disk_needed > free:
            problems.append(f"not enough disk space: {text} - choose another --out on a filesystem with more space, "
                            "or lower train.episodes")
        elif disk_needed > warn_fraction * free:
            warnings.append(f"disk space is short: {text} ({disk_needed / free:.0%} of it) - the run may fill the "
                            "disk; choose another --out, or free space")
    if problems:
        raise ResourceError("; ".join(problems) + " (`planet config` prints the estimate)")
    for warning in warnings:
        log.warning("%s (`planet config` prints the estimate)", warning)
    return est
