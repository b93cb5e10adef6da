"""A run's model files: the checkpoint (resumable state) and the final weights, and the model built from a run."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from planet.config import Config
from planet.rundir.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    MODEL_FILE,
    VERSION,
    RunFormatError,
    check_format,
    load_config,
    write_progress,
)
from planet.tasks import get_task, is_multitask, task_list
from planet.utils import PlanetError, atomic_save

if TYPE_CHECKING:
    import torch

    from planet.models import WorldModel

CHECKPOINT_VERSION = 1
"""The layout of checkpoint.pt's state; a change that older code cannot read bumps it (and the run format)."""


def save_checkpoint(run_dir: Path, state: Mapping[str, Any], counters: Mapping[str, Any]) -> None:
    """Write RUN/checkpoint.pt (`state`, with the checkpoint version and the package version; atomically), then
    RUN/progress.json (`counters`, what the checkpoint counts)."""
    import torch

    state = {"version": CHECKPOINT_VERSION, "planet_version": VERSION, **state}
    atomic_save(Path(run_dir) / CHECKPOINT_FILE, lambda f: torch.save(state, f))
    write_progress(run_dir, counters)


def read_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """RUN's checkpoint state (loaded on the CPU), or None before its first checkpoint. A damaged checkpoint, or one
    of a version this code does not read, is one line saying what to do."""
    import torch

    path = Path(run_dir) / CHECKPOINT_FILE
    if not path.exists():
        return None
    try:
        # On the CPU: generator states must be CPU byte tensors for CPU and CUDA generators alike (map_location=cuda
        # put the CUDA generator's state on the GPU and every resume on a GPU failed); load_state_dict moves the
        # model's and the optimiser's tensors to the run's device.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # atomic writes make this unlikely; say what to do if it happens
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise PlanetError(
            f"cannot read checkpoint {path} ({type(exc).__name__}: {first}) - delete it to restart the run from "
            "scratch (its episodes are collected again identically)"
        ) from None
    version = state.get("version") if isinstance(state, dict) else None
    if version != CHECKPOINT_VERSION:
        writer = f"planet-repro {state['planet_version']}" if isinstance(state, dict) and state.get(
            "planet_version") else "another planet-repro"
        raise RunFormatError(
            f"{path} has checkpoint version {version}, written by {writer}; this planet-repro {VERSION} reads "
            f"version {CHECKPOINT_VERSION} - resume or read the run with {writer}, or start a new --out directory")
    return state


def save_model(run_dir: Path, model: torch.nn.Module) -> Path:
    """Write RUN/model.pt, the final weights (atomically); returns its path."""
    import torch

    path = Path(run_dir) / MODEL_FILE
    atomic_save(path, lambda f: torch.save(model.state_dict(), f))
    return path


def action_size(task: str) -> int:
    """The size of the actions a run's model takes: its task's, or the largest of its tasks' (a multi-task agent's
    actions are padded, planet/multitask.py); from the task table, without building an environment."""
    return max(get_task(name).action_dim for name in task_list(task))


def build_model(config: Config, device: torch.device, action_dim: int | None = None) -> WorldModel:
    """The world model of a run with `config` on `device` (fresh weights from torch's global generator); its action
    size is `action_dim` or :func:`action_size`."""
    from planet.models import WorldModel

    return WorldModel(config.model, action_dim or action_size(config.task)).to(device)


def load_model(run_dir: Path, device: torch.device) -> tuple[Config, WorldModel]:
    """The config and trained model of a single-task run (final weights if complete, else the latest checkpoint), in
    eval mode, for the commands that read a trained run (`planet evaluate`, `planet diagnose`)."""
    import torch

    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {CONFIG_FILE}); pass the --out of a train run")
    check_format(run_dir)
    cfg = load_config(run_dir)
    if is_multitask(cfg.task):
        raise PlanetError(f"{run_dir} is a multi-task run (--task {cfg.task}); `planet evaluate` and `planet diagnose` "
                          "take single-task runs - its per-task evaluations are its eval/TASK/* metrics and the views "
                          "under RESULTS/runs/multitask/TASK/")
    model = build_model(cfg, device)
    if (run_dir / MODEL_FILE).exists():
        weights = torch.load(run_dir / MODEL_FILE, map_location=device)
    elif (state := read_checkpoint(run_dir)) is not None:
        weights = state["model"]
    else:
        raise FileNotFoundError(f"{run_dir} has neither {MODEL_FILE} nor {CHECKPOINT_FILE}: train it first")
    model.load_state_dict(weights)
    model.eval()
    return cfg, model
