"""Reading runs: what the report takes from run directories, and what is still missing or training.

Only the files runs write are read (never MLflow), so a report can be rebuilt from a copied results directory::

    RESULTS/runs/{variant}/{task}/seed{seed}/   config.yaml, metrics.jsonl, summary.json (complete runs),
                                                evaluation.json (`planet evaluate`), progress.json, eval/openloop.png
    RESULTS/eval/{variant}/{task}/seed{seed}.json   the same evaluation, where the pipeline writes it
    RUN/diagnostics.json or RESULTS/diagnostics/{variant}/{task}/seed{seed}.json   `planet diagnose` (paper Fig. 11)

A run's final return is ``return_mean`` of its held-out test evaluation (``evaluation.json``, split test); if there
is none, the last in-training evaluation (``summary.json`` ``final_eval["eval/return_mean"]``). An evaluation of a
run that was incomplete when evaluated (``"complete": false``) is not used. A bad file never crashes a report: it
is logged and the run reads as missing that part.

The learning curve of a run (`eval_points`) is also what `planet curve` (planet/record.py) plots.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from planet.rundir import (
    CONFIG_FILE,
    DIAGNOSTICS_FILE,
    EVAL_DIR,
    EVAL_VIDEO_FILE,
    EVALUATION_FILE,
    METRICS_FILE,
    OPENLOOP_FILE,
    PROGRESS_FILE,
    SUMMARY_FILE,
)

log = logging.getLogger(__name__)

CURVE_COLUMNS = ["episodes", "env_steps", "return_mean", "return_std"]


@dataclass
class Run:
    """What the report needs from one run directory."""

    variant: str
    task: str
    seed: int
    path: Path
    complete: bool = False
    final: float | None = None  # final return (see module docstring)
    final_source: str | None = None  # "test" (evaluation.json) or "eval" (summary.json final_eval)
    episodes: int | None = None  # collected training episodes
    env_steps: int | None = None
    planned_episodes: int | None = None  # config train.episodes
    episode_env_steps: int | None = None  # config env.episode_env_steps (the paper's episodes are 1000 env steps)
    preset: str | None = None
    curve: pd.DataFrame = field(default_factory=pd.DataFrame)
    openloop: Path | None = None
    diagnostics: dict | None = None  # `planet diagnose`'s result (planet/diagnostics.py), if the run was diagnosed
    video: Path | None = None  # GIF of its final evaluation (RUN/eval/eval.gif; a record's: the report's small copy)
    cost: dict | None = None  # a record's compute row (planet/report/costs.py); a run directory's is computed
    record: str | None = None  # where a record's numbers come from, when the run is shown from the report's record


def read_json(path: Path) -> dict | None:
    """A JSON object, or None when the file is absent or unreadable (a report never crashes on one bad run)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); ignored", path, exc)
        return None
    return data if isinstance(data, dict) else None


def finite(value: Any) -> float | None:
    """`value` as a finite float, else None (absent, not a number, NaN or infinite)."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def as_int(value: Any) -> int | None:
    """`value` rounded to an int, else None (see `finite`)."""
    value = finite(value)
    return None if value is None else int(round(value))


def eval_points(records: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """The in-training evaluations among metrics.jsonl records, one row per episode count, sorted by episodes.

    Columns: episodes (collected training episodes), env_steps, time (Unix time of the line), return_mean,
    return_std, eval_episodes. Training lines, `test/*` lines from `planet evaluate` and non-finite values are
    skipped; if an episode count ever repeats (a resumed run never repeats lines), the last line counts.
    """
    rows = []
    for rec in records:
        mean = finite(rec.get("eval/return_mean"))
        if mean is None or finite(rec.get("episodes")) is None:
            continue
        rows.append({"episodes": as_int(rec["episodes"]), "env_steps": as_int(rec.get("step")),
                     "time": finite(rec.get("time")), "return_mean": mean,
                     "return_std": finite(rec.get("eval/return_std")),
                     "eval_episodes": as_int(rec.get("eval/episodes")) or 0})
    frame = pd.DataFrame(rows, columns=["episodes", "env_steps", "time", "return_mean", "return_std",
                                        "eval_episodes"])
    return frame.drop_duplicates("episodes", keep="last").sort_values("episodes", ignore_index=True)


def read_curve(path: Path) -> pd.DataFrame:
    """Eval lines of a metrics.jsonl as a frame (episodes, env_steps, return_mean, return_std), sorted by episodes;
    empty when the file is absent or unreadable."""
    from planet.tracking import read_metrics

    try:
        records = read_metrics(path)
    except FileNotFoundError:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); no learning curve for this run", path, exc)
        return pd.DataFrame(columns=CURVE_COLUMNS)
    return eval_points(records)[CURVE_COLUMNS]


def _read_config(path: Path) -> dict:
    try:
        return yaml.safe_load((path / CONFIG_FILE).read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        return {}
    except (OSError, yaml.YAMLError) as exc:
        log.warning("%s: unreadable config (%s)", path, exc)
        return {}


def _final_return(summary: dict | None, evaluation: dict | None) -> tuple[float | None, str | None]:
    """(final return, "test" or "eval") by the module docstring's rule; (None, None) without one."""
    if evaluation is not None and evaluation.get("complete") is not False and finite(evaluation.get("return_mean")):
        return finite(evaluation["return_mean"]), "test"
    if summary is not None and finite((summary.get("final_eval") or {}).get("eval/return_mean")) is not None:
        return finite(summary["final_eval"]["eval/return_mean"]), "eval"
    return None, None


def _section(config: dict, name: str) -> dict:
    return config.get(name) if isinstance(config.get(name), dict) else {}


def read_run(results: Path, variant: str, task: str, seed: int, path: Path) -> Run:
    """Collect final return, counters, learning curve and open-loop strip of one run directory."""
    run = Run(variant, task, seed, path)
    summary = read_json(path / SUMMARY_FILE)
    evaluation = read_json(path / EVALUATION_FILE) or read_json(
        results / "eval" / variant / task / f"seed{seed}.json")
    config = _read_config(path)
    run.complete = summary is not None
    run.final, run.final_source = _final_return(summary, evaluation)
    run.curve = read_curve(path / METRICS_FILE)
    last = run.curve.iloc[-1] if len(run.curve) else {}
    summary, evaluation = summary or {}, evaluation or {}
    run.episodes = as_int(summary.get("episodes")) or as_int(evaluation.get("train_episodes")) or as_int(
        last.get("episodes") if len(run.curve) else None)
    run.env_steps = as_int(summary.get("env_steps")) or as_int(evaluation.get("env_steps")) or as_int(
        last.get("env_steps") if len(run.curve) else None)
    run.planned_episodes = as_int(_section(config, "train").get("episodes"))
    run.episode_env_steps = as_int(_section(config, "env").get("episode_env_steps"))
    run.preset = summary.get("preset") or config.get("preset") or evaluation.get("preset")
    strip = path / EVAL_DIR / OPENLOOP_FILE
    run.openloop = strip if strip.is_file() and strip.stat().st_size > 0 else None
    video = path / EVAL_DIR / EVAL_VIDEO_FILE
    run.video = video if video.is_file() else None
    run.diagnostics = read_json(path / DIAGNOSTICS_FILE) or read_json(
        results / "diagnostics" / variant / task / f"seed{seed}.json")
    return run


def collect_runs(results: Path) -> list[Run]:
    """Every RESULTS/runs/{variant}/{task}/seed{N}/ directory, sorted by (variant, task, seed)."""
    runs = []
    root = Path(results) / "runs"
    if not root.is_dir():
        return runs
    for variant_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for task_dir in sorted(p for p in variant_dir.iterdir() if p.is_dir()):
            for seed_dir in sorted(p for p in task_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
                match = re.fullmatch(r"seed(\d+)", seed_dir.name)
                if match is None:
                    log.warning("%s: not a seedN directory; ignored", seed_dir)
                    continue
                runs.append(read_run(Path(results), variant_dir.name, task_dir.name, int(match[1]), seed_dir))
    return sorted(runs, key=lambda r: (r.variant, r.task, r.seed))


def curves_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Every run's learning curve in one frame (curves.csv, the DVC plots file)."""
    frames = [r.curve.assign(variant=r.variant, task=r.task, seed=r.seed) for r in runs if len(r.curve)]
    columns = ["variant", "task", "seed", *CURVE_COLUMNS]
    return pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)


DIAGNOSTICS_COLUMNS = ["variant", "task", "seed", "group", "distance", "r2"]


def diagnostics_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The state diagnostics of every diagnosed run in long form: one row per (run, state group, distance) with the
    held-out R^2 (NaN where it does not exist); a malformed result is logged and left out."""
    rows = []
    for r in runs:
        result = r.diagnostics or {}
        try:
            distances = [int(d) for d in result.get("distances", [])]
            rows += [{"variant": r.variant, "task": r.task, "seed": r.seed, "group": str(group), "distance": d,
                      "r2": math.nan if finite(v) is None else finite(v)}
                     for group, values in (result.get("r2") or {}).items()
                     for d, v in zip(distances, values, strict=True)]
        except (TypeError, ValueError, AttributeError) as exc:
            log.warning("%s: malformed diagnostics (%s); ignored", r.path, exc)
    return pd.DataFrame(rows, columns=DIAGNOSTICS_COLUMNS)


def _status(run: Run) -> str:
    return "incomplete" if not run.complete else "no result"


def missing_runs(runs: Sequence[Run], expected: Mapping[str, Mapping[str, Sequence]] | None) -> list[dict[str, Any]]:
    """Expected (variant, task, seed) without a final return: status absent / incomplete / no result.

    Without `expected`, the grid is inferred: every variant found x every task found x every seed found.
    """
    by_key = {(r.variant, r.task, r.seed): r for r in runs}
    if expected is None:
        # Inferred: every variant found over every task and seed found (a gap in one variant shows up).
        tasks, seeds = sorted({r.task for r in runs}), sorted({r.seed for r in runs})
        grid = {v: {"tasks": tasks, "seeds": seeds} for v in sorted({r.variant for r in runs})}
    else:
        grid = expected
    out = []
    for variant, cells in grid.items():
        for task in cells.get("tasks", ()):
            for seed in cells.get("seeds", ()):
                run = by_key.get((variant, task, int(seed)))
                if run is None or run.final is None:
                    status = "absent" if run is None else _status(run)
                    out.append({"variant": variant, "task": task, "seed": int(seed), "status": status})
    # Runs outside the expected grid that have no result are worth listing too.
    listed = {(m["variant"], m["task"], m["seed"]) for m in out}
    for run in runs:
        key = (run.variant, run.task, run.seed)
        if run.final is None and key not in listed and expected is not None:
            out.append({"variant": run.variant, "task": run.task, "seed": run.seed, "status": _status(run)})
    return out


def progress_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Runs still training (a long campaign's partial record): where each is, and its latest in-training
    evaluation. These numbers are never mixed into Table 1, the curves' statistics or the aggregate."""
    rows = []
    for r in runs:
        if r.complete:
            continue
        last = r.curve.iloc[-1] if len(r.curve) else None
        progress = read_json(r.path / PROGRESS_FILE) or {}
        times = _metric_times(r.path / METRICS_FILE)
        rows.append({"variant": r.variant, "task": r.task, "seed": r.seed,
                     "episodes": as_int(progress.get("episodes")) or r.episodes,
                     "planned_episodes": r.planned_episodes,
                     "hours_since_first_episode": None if times is None else round((times[1] - times[0]) / 3600, 2),
                     "latest_eval_episode": None if last is None else as_int(last.get("episodes")),
                     "latest_eval_return": None if last is None else finite(last.get("return_mean"))})
    return pd.DataFrame(rows, columns=["variant", "task", "seed", "episodes", "planned_episodes",
                                       "hours_since_first_episode", "latest_eval_episode", "latest_eval_return"])


def _metric_times(path: Path) -> tuple[float, float] | None:
    """Wall-clock time of the first and last lines of a metrics.jsonl (pauses and restarts included)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
        first, last = json.loads(lines[0])["time"], json.loads(lines[-1])["time"]
    except (OSError, ValueError, IndexError, KeyError):
        return None
    return float(first), float(last)
