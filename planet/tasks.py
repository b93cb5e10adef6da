"""The six DeepMind Control tasks of the paper and their action repeats: the one task table, importable without
dm_control (the config validates task names with it; planet/envs.py builds the environments)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ALL_TASKS", "PRESET_TASK_FIELDS", "TASKS", "TaskSpec", "check_preset_tasks", "get_task", "is_multitask",
           "task_list"]


@dataclass(frozen=True)
class TaskSpec:
    """A dm_control suite task, the paper's action repeat for it, and its sizes (for estimates made without building
    the environment, planet/resources.py; tests/test_envs.py checks them against dm_control)."""

    domain: str
    task: str
    action_repeat: int
    action_dim: int
    """Size of the action vector (dm_control's action spec)."""
    state_size: int
    """Floats of the true simulator state stored per episode row (dm_control's observation dict, flattened)."""


# The one table of tasks, in the paper's order. Action repeats are the paper's (Table/appendix):
# cartpole 8, reacher 4, cheetah 4, finger 2, cup 4, walker 2.
TASKS: dict[str, TaskSpec] = {
    "cartpole_swingup": TaskSpec("cartpole", "swingup", 8, action_dim=1, state_size=5),
    "reacher_easy": TaskSpec("reacher", "easy", 4, action_dim=2, state_size=6),
    "cheetah_run": TaskSpec("cheetah", "run", 4, action_dim=6, state_size=17),
    "finger_spin": TaskSpec("finger", "spin", 2, action_dim=2, state_size=9),
    "cup_catch": TaskSpec("ball_in_cup", "catch", 4, action_dim=2, state_size=8),
    "walker_walk": TaskSpec("walker", "walk", 2, action_dim=6, state_size=24),
}


def get_task(name: str) -> TaskSpec:
    """Look up a task by its user-facing name (e.g. ``"cheetah_run"``)."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {name!r}; valid tasks are: {', '.join(TASKS)}") from None


# One agent for several tasks (P Figs. 6, 7): a run's task is "all" (the six, in the paper's order) or task names
# joined by "+" (e.g. "cartpole_swingup+reacher_easy"); planet/multitask.py trains it.
ALL_TASKS = "all"


def task_list(name: str) -> list[str]:
    """The tasks a run's task name stands for: one task, the six for ``"all"``, or the "+"-joined tasks in the
    order given (no repeats). Raises ValueError naming the valid tasks."""
    if name == ALL_TASKS:
        return list(TASKS)
    names = name.split("+") if isinstance(name, str) else [name]
    for task in names:
        get_task(task)
    if len(set(names)) != len(names):
        raise ValueError(f"task {name!r} names a task twice")
    return names


def is_multitask(name: str) -> bool:
    """Whether a run's task name stands for more than one task (one agent trained on all of them)."""
    return len(task_list(name)) > 1


# The task names of a pipeline preset (params/pipeline.yaml; workflow/schemas/config.schema.yaml types each as
# `$defs/task`, a string): checked against TASKS by workflow/rules/common.smk, so TASKS is the one list of tasks.
PRESET_TASK_FIELDS = ("tasks", "ablation_tasks", "multitask_tasks", "campaign_order", "baseline_tasks",
                      "diagnostics.tasks", "cem_grid.task")


def check_preset_tasks(preset: Mapping[str, Any], where: str) -> None:
    """Raise ValueError, one line naming `where` (e.g. "config: presets.smoke") and the field, if a task field of a
    pipeline preset names a task that is not in TASKS."""
    for field in PRESET_TASK_FIELDS:
        value: Any = preset
        for part in field.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        for name in [value] if isinstance(value, str) else list(value or ()):
            if name not in TASKS:
                raise ValueError(f"{where}.{field}: {name!r} is not a task; valid tasks (planet/tasks.py): "
                                 f"{', '.join(TASKS)}")
