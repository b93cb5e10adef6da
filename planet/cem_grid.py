"""CEM hyperparameters with the true simulator (paper Fig. 12): the grid, its jobs and its results.

The paper's Fig. 12 plans with CEM on the true simulator of cheetah run (here `planet.simplan`, run by
`planet.baselines.run_simulator`) over a grid of the top-K fraction, the horizon, the candidates and the iterations.
The grid here varies one hyperparameter at a time around the agent preset's planner (the paper's H=12, I=10,
J=1000, K=100 for the ``paper`` preset), as the figure's panels do: a point is the default planner with one size
changed, so a grid of n values costs n jobs, not a product.

Axes (``cem_grid:`` of a pipeline preset in params/pipeline.yaml)::

    top_k_fraction  K / J at the default J: K = round(fraction x J)
    horizon         H
    candidates      J, keeping the default top-K fraction: K = round(K0 / J0 x J) (the paper's axis is a fraction,
                    so a panel over J does not turn the refit into "all candidates" at small J)
    iterations      I

Every point is one job: ``planet baseline simulator --task TASK --preset AGENT_PRESET simulator.horizon=H
simulator.iterations=I simulator.candidates=J simulator.top_k=K simulator.episodes=N`` writing the run directory
``RESULTS/cem_grid/TASK/seedS/H{H}-I{I}-J{J}-K{K}/`` (resumable per episode, as every simulator run). The default
point is one job, shared by the four panels.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from planet import rundir
from planet.baselines import PLANNER_SIZES, planner_label
from planet.config import ConfigError
from planet.tasks import TASKS

log = logging.getLogger(__name__)

__all__ = ["AXES", "AXIS_LABELS", "CemGrid", "Point", "missing_points", "parse_grid", "point_dir", "preset_grid",
           "results_frame"]

AXES = ("top_k_fraction", "horizon", "candidates", "iterations")
"""The hyperparameters of paper Fig. 12, in its panels' order here."""
AXIS_LABELS = {
    "top_k_fraction": "top-K fraction K/J",
    "horizon": "horizon H",
    "candidates": "candidates J (K/J kept)",
    "iterations": "iterations I",
}
KEYS = ("task", "seed", "episodes", *AXES)
RESULT_COLUMNS = ["task", "axis", "value", "default", "point", *PLANNER_SIZES, "episodes", "return_mean", "return_std",
                  "seconds_per_episode"]


@dataclass(frozen=True)
class Point:
    """The CEM sizes of one grid point."""

    horizon: int
    iterations: int
    candidates: int
    top_k: int

    @property
    def name(self) -> str:
        """Directory and MLflow-name part, e.g. ``H12-I10-J1000-K100``."""
        return planner_label(self.sizes())

    @property
    def fraction(self) -> float:
        return self.top_k / self.candidates

    def sizes(self) -> dict[str, int]:
        return {key: getattr(self, key) for key in PLANNER_SIZES}

    def overrides(self) -> list[str]:
        """The baseline-setting overrides that make `planet baseline simulator` plan with these sizes."""
        return [f"simulator.{key}={value}" for key, value in self.sizes().items()]

    def episode_control_steps(self, episode_env_steps: int) -> int:
        """Control steps simulated per episode, at most: each of the episode_env_steps / R agent steps scores
        I x J sequences of H agent steps, R control steps each."""
        return episode_env_steps * self.candidates * self.iterations * self.horizon


def _round(x: float) -> int:
    return math.floor(x + 0.5)


@dataclass(frozen=True)
class CemGrid:
    """One pipeline preset's grid: the task, the default planner (the agent preset's) and the values per axis."""

    task: str
    seed: int
    episodes: int
    episode_env_steps: int
    default: Point
    values: Mapping[str, tuple[float, ...]] = field(default_factory=dict)  # axis -> values, as listed

    def vary(self, axis: str, value: float) -> Point:
        """The default planner with one hyperparameter set to `value` (see the module docstring for K)."""
        d = self.default
        if axis == "top_k_fraction":
            return Point(d.horizon, d.iterations, d.candidates, _round(value * d.candidates))
        if axis == "candidates":
            return Point(d.horizon, d.iterations, int(value), _round(d.fraction * value))
        if axis in ("horizon", "iterations"):
            return Point(**{**d.sizes(), axis: int(value)})
        raise ValueError(f"unknown CEM grid axis '{axis}'; valid: {', '.join(AXES)}")

    def default_value(self, axis: str) -> float:
        return self.default.fraction if axis == "top_k_fraction" else getattr(self.default, axis)

    def axes(self) -> list[str]:
        """The axes with values (the figure's panels), in the order of `AXES`."""
        return [axis for axis in AXES if self.values.get(axis)]

    def axis_points(self, axis: str) -> list[tuple[float, Point]]:
        """(value, point) along one axis, the default's value included, in increasing value."""
        values = {float(v) for v in self.values.get(axis, ())}
        default = self.default_value(axis)
        if not any(math.isclose(v, default) for v in values):
            values.add(float(default))
        return [(v if axis == "top_k_fraction" else int(v), self.vary(axis, v)) for v in sorted(values)]

    def points(self) -> list[Point]:
        """Every job of the grid once: the default first, then each axis's other points."""
        out = [self.default]
        for axis in self.axes():
            out += [p for _, p in self.axis_points(axis) if p not in out]
        return out

    def control_steps(self) -> int:
        """Control steps the whole grid simulates, at most (its cost: multiply by a control step's time)."""
        return self.episodes * sum(p.episode_control_steps(self.episode_env_steps) for p in self.points())

    def to_json(self) -> dict[str, Any]:
        return {"task": self.task, "seed": self.seed, "episodes": self.episodes,
                "episode_env_steps": self.episode_env_steps, "default": self.default.sizes(),
                "values": {axis: list(values) for axis, values in self.values.items()}}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CemGrid:
        return cls(task=data["task"], seed=int(data["seed"]), episodes=int(data["episodes"]),
                   episode_env_steps=int(data["episode_env_steps"]), default=Point(**data["default"]),
                   values={axis: tuple(values) for axis, values in data["values"].items()})


def point_dir(results: Path | str, grid: CemGrid, point: Point) -> Path:
    """The run directory of one grid point: RESULTS/cem_grid/TASK/seedS/H..-I..-J..-K.. (the pipeline's output)."""
    return Path(results) / "cem_grid" / grid.task / f"seed{grid.seed}" / point.name


# --------------------------------------------------------------------------------------------------------------
# The grid of a pipeline preset, validated: one line per mistake.


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _axis_values(block: Mapping[str, Any], axis: str, where: str) -> tuple[float, ...]:
    values = block.get(axis)
    if values is None:
        return ()
    if not isinstance(values, list):
        raise ConfigError(f"{where}.{axis}: expected a list of values, got {values!r}")
    for value in values:
        if axis == "top_k_fraction":
            if not isinstance(value, int | float) or isinstance(value, bool) or not 0 < value <= 1:
                raise ConfigError(f"{where}.{axis}: {value!r} is not a fraction in (0, 1]")
        elif not _is_int(value) or value < 1:
            raise ConfigError(f"{where}.{axis}: {value!r} is not an integer >= 1")
    if len(set(values)) != len(values):
        raise ConfigError(f"{where}.{axis}: values repeat in {values}")
    return tuple(values)


def parse_grid(block: Any, agent_preset: str, where: str = "cem_grid") -> CemGrid:
    """A `CemGrid` from a ``cem_grid:`` block; the default planner and episode length are those of `agent_preset`
    (params/presets.yaml) on the block's task. Raises ConfigError, one line naming `where` and the key, on an
    unknown key, a missing or ill-typed value, or a point whose K would fall outside 1..J."""
    from planet import config as config_lib

    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: expected a mapping with keys {', '.join(KEYS)}, got {block!r}")
    unknown = sorted(set(block) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}'; valid keys: {', '.join(KEYS)}")
    task = block.get("task")
    if task not in TASKS:
        raise ConfigError(f"{where}.task: {task!r} is not a task; valid tasks: {', '.join(TASKS)}")
    seed, episodes = block.get("seed", 0), block.get("episodes")
    if not _is_int(seed) or seed < 0:
        raise ConfigError(f"{where}.seed: {seed!r} is not an integer >= 0")
    if not _is_int(episodes) or episodes < 1:
        raise ConfigError(f"{where}.episodes: {episodes!r} is not an integer >= 1 (test episodes per grid point)")
    values = {axis: _axis_values(block, axis, where) for axis in AXES}
    if not any(values.values()):
        raise ConfigError(f"{where}: no values to vary; give at least one of {', '.join(AXES)}")
    try:
        agent = config_lib.resolve(task, agent_preset, seed)
    except ValueError as exc:
        raise ConfigError(f"{where}: agent preset '{agent_preset}': {exc}") from None
    planner = agent.planner
    grid = CemGrid(task, seed, episodes, agent.env.episode_env_steps,
                   Point(planner.horizon, planner.iterations, planner.candidates, planner.top_k),
                   {axis: v for axis, v in values.items() if v})
    for axis in grid.axes():
        for value, point in grid.axis_points(axis):
            if not 1 <= point.top_k <= point.candidates:
                raise ConfigError(f"{where}.{axis}: {value} gives K = {point.top_k} of J = {point.candidates} "
                                  f"candidates (K must be in 1..J; the default planner is {grid.default.name})")
    return grid


def preset_grid(pipeline: Mapping[str, Any], preset: str, source: str = "config") -> CemGrid | None:
    """The CEM grid of one pipeline preset of params/pipeline.yaml (`pipeline`), or None when it has none."""
    block = pipeline["presets"][preset]
    if block.get("cem_grid") is None:
        return None
    return parse_grid(block["cem_grid"], block["agent_preset"], f"{source}: presets.{preset}.cem_grid")


# --------------------------------------------------------------------------------------------------------------
# Results: the figure's numbers.


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def results_frame(results: Path | str, grid: CemGrid) -> Any:
    """One row per (axis, value) of the grid (pandas DataFrame, columns `RESULT_COLUMNS`): the point's sizes and
    its test returns (mean and population std over its episodes) where its run finished (summary.json written),
    NaN where it did not. The default point appears once per axis (``default`` = True)."""
    import pandas as pd

    rows = []
    for axis in grid.axes():
        for value, point in grid.axis_points(axis):
            run = point_dir(results, grid, point)
            evaluation = _read(run / rundir.EVALUATION_FILE) if (run / rundir.SUMMARY_FILE).exists() else None
            if evaluation is not None and evaluation.get("planner", point.sizes()) != point.sizes():
                log.warning("%s: planned with %s, not %s; left out", run, evaluation["planner"], point.sizes())
                evaluation = None
            found = evaluation or {}
            rows.append({"task": grid.task, "axis": axis, "value": value, "default": point == grid.default,
                         "point": point.name, **point.sizes(), "episodes": int(found.get("episodes", 0)),
                         "return_mean": found.get("return_mean", math.nan),
                         "return_std": found.get("return_std", math.nan),
                         "seconds_per_episode": found.get("seconds_per_episode", math.nan)})
    return pd.DataFrame(rows, columns=RESULT_COLUMNS)


def missing_points(frame: Any) -> Sequence[str]:
    """Names of the grid points without a finished run, once each, in the frame's order."""
    return list(dict.fromkeys(frame.loc[frame["episodes"] == 0, "point"]))
