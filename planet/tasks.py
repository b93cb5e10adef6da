"""The six DeepMind Control tasks of the paper and their action repeats: the one task table, importable without
dm_control (the config validates task names with it; planet/envs.py builds the environments)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TASKS", "TaskSpec", "get_task"]


@dataclass(frozen=True)
class TaskSpec:
    """A dm_control suite task and the paper's action repeat for it."""

    domain: str
    task: str
    action_repeat: int


# The one table of tasks, in the paper's order. Action repeats are the paper's (Table/appendix):
# cartpole 8, reacher 4, cheetah 4, finger 2, cup 4, walker 2.
TASKS: dict[str, TaskSpec] = {
    "cartpole_swingup": TaskSpec("cartpole", "swingup", 8),
    "reacher_easy": TaskSpec("reacher", "easy", 4),
    "cheetah_run": TaskSpec("cheetah", "run", 4),
    "finger_spin": TaskSpec("finger", "spin", 2),
    "cup_catch": TaskSpec("ball_in_cup", "catch", 4),
    "walker_walk": TaskSpec("walker", "walk", 2),
}


def get_task(name: str) -> TaskSpec:
    """Look up a task by its user-facing name (e.g. ``"cheetah_run"``)."""
    try:
        return TASKS[name]
    except (KeyError, TypeError):
        raise ValueError(f"Unknown task {name!r}; valid tasks are: {', '.join(TASKS)}") from None
