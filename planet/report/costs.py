"""What runs cost: per run from its own `perf/*` metrics (`compute_table`), and per task, measured beside projected
(`task_hours`), so that a long campaign run one task per machine-lifetime says before each task what it will take.

Sources, all files the runs and the pipeline write (never MLflow):
- RUN/metrics.jsonl: `perf/updates_per_s` and `perf/collect_s` of every training episode, `perf/eval_s` of every
  in-training evaluation, `time` of every line;
- RESULTS/benchmarks/evaluate/VARIANT/TASK/seedN.tsv: Snakemake's benchmark of the held-out `planet evaluate` job
  (column `s`), with the number of test episodes from the evaluation file.

A projection for a task is made from the *other* tasks' runs only (so a task's projection is what could be said
before it ran): each cost is split into a part that does not depend on the task (the model updates of a training
episode: same model, batch and chunk on every task) and parts proportional to the agent steps of an episode
(collection, evaluation episodes: one plan and one rendered frame per agent step, i.e. 1000 / action repeat).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from planet.report.runs import Run, _read_config, _section, as_int, finite, read_json
from planet.tasks import get_task

COMPUTE_COLUMNS = ["variant", "task", "seed", "threads", "episodes", "planned_episodes", "episode_s",
                   "episode_s_q25", "update_s_q25", "collect_s_q25", "eval_s", "eval_s_q25", "evaluations",
                   "eval_episodes", "agent_steps", "test_eval_s", "test_episodes", "busy_hours", "wall_hours",
                   "estimated_hours", "commits", "settings"]
TASK_HOURS_COLUMNS = ["task", "action_repeat", "agent_steps", "projected_hours", "projected_from", "measured_hours",
                      "estimated_hours", "status"]


def run_settings(run: Run, config: dict) -> str:
    """What a run's cost depends on besides the machine, in a few words: the precision the update and the plan ran
    at (tags.json: what `auto` chose on the machine), compiled or eager, the shadow map, the evaluation schedule."""
    from planet.tracking import TAGS_FILE

    tags = read_json(run.path / TAGS_FILE) or {}
    compute, env, evaluation = _section(config, "compute"), _section(config, "env"), _section(config, "eval")
    update = tags.get("update_precision_history") or tags.get("update_precision") or compute.get("update_precision")
    plan = tags.get("plan_precision_history") or tags.get("plan_precision") or compute.get("plan_precision")
    shadow = env.get("shadow_map_size") or "suite's"
    return (f"update {update or 'fp32'}, plan {plan or 'fp32'}, {'compiled' if compute.get('compile') else 'eager'}, "
            f"shadow map {shadow}, eval {evaluation.get('episodes')} every {evaluation.get('every')}")


def run_commits(run_dir: Path) -> str | None:
    """The commits a run ran on, oldest first, abbreviated to 7 characters (tags.json `git_commits`, or the one
    `git_commit` of a run written before the history was kept); None if it recorded none."""
    from planet.tracking import TAGS_FILE

    tags = read_json(Path(run_dir) / TAGS_FILE) or {}
    commits = str(tags.get("git_commits") or tags.get("git_commit") or "").split()
    return " ".join(c[:7] for c in commits) or None


def _quantile(values: Sequence[float], q: float) -> float | None:
    return float(pd.Series(values).quantile(q)) if values else None


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def agent_steps(config: dict, task: str) -> int | None:
    """Agent steps (plans, rendered frames) of one episode: env steps / action repeat (the task's unless set)."""
    env = _section(config, "env")
    steps = as_int(env.get("episode_env_steps"))
    try:
        repeat = as_int(env.get("action_repeat")) or get_task(task).action_repeat
    except ValueError:
        return None
    return None if steps is None else max(1, steps // repeat)


def test_evaluation_cost(run: Run) -> tuple[float | None, int | None]:
    """(seconds, episodes) of the run's held-out evaluation, from the pipeline's benchmark of its `evaluate` job and
    its evaluation file; (None, None) where the run was not evaluated by the pipeline."""
    results = run.path.parents[3]  # RESULTS/runs/VARIANT/TASK/seedN
    bench = results / "benchmarks" / "evaluate" / run.variant / run.task / f"seed{run.seed}.tsv"
    try:
        seconds = finite(pd.read_csv(bench, sep="\t")["s"].iloc[-1])
    except (OSError, ValueError, KeyError, IndexError, pd.errors.EmptyDataError):
        return None, None
    evaluation = read_json(run.path / "evaluation.json") or read_json(
        results / "eval" / run.variant / run.task / f"seed{run.seed}.json") or {}
    return seconds, as_int(evaluation.get("episodes"))


def compute_row(run: Run) -> dict[str, Any] | None:
    """What one run cost, from its own `perf/*` metrics (None without any): seconds per training episode (its C
    updates plus collecting one episode; and the two parts) and per evaluation, as medians and lower quartiles; the
    hours it spent working (their sums: time slowed by other jobs included) and on the wall clock (first to last
    metrics line: pauses and restarts included); the hours its planned episodes and evaluations take at the lower
    quartiles; and its held-out evaluation (`test_eval_s`, from the pipeline's benchmark). Every training episode
    of a run does the same work, so on a machine shared part of the time the lower quartile is close to an
    undisturbed episode (the median is too, unless most episodes were slowed). Seed episodes (random actions, no
    updates) are not timed by the runs and left out."""
    from planet.tracking import read_metrics

    if run.cost is not None:  # a run shown from the report's record (planet/report/record.py)
        return dict(run.cost)
    try:
        records = read_metrics(run.path / "metrics.jsonl")
    except (OSError, ValueError):
        return None
    episode_s, update_s, collect_s, eval_s, updates = [], [], [], [], 0
    for rec in records:
        rate, collect = finite(rec.get("perf/updates_per_s")), finite(rec.get("perf/collect_s"))
        if collect is not None:
            done = as_int(rec.get("updates")) or updates
            update_s.append((done - updates) / rate if rate else 0.0)
            collect_s.append(collect)
            episode_s.append(update_s[-1] + collect)
            updates = done
        if finite(rec.get("perf/eval_s")) is not None:
            eval_s.append(float(rec["perf/eval_s"]))
    if not episode_s:
        return None
    config = _read_config(run.path)
    train, every = _section(config, "train"), as_int(_section(config, "eval").get("every")) or 0
    seeds, planned = as_int(train.get("seed_episodes")) or 0, run.planned_episodes
    estimate = None
    if planned is not None and planned > seeds:
        # evaluations as the trainer schedules them: every `every` episodes after the seed episodes, and the last
        evals = len({k for k in range(seeds + 1, planned + 1) if every and k % every == 0} | {planned})
        estimate = ((planned - seeds) * _quantile(episode_s, 0.25) + evals * (_quantile(eval_s, 0.25) or 0.0)) / 3600
    test_s, test_episodes = test_evaluation_cost(run)
    times = [t for t in (finite(rec.get("time")) for rec in records) if t is not None]  # the lines already read
    progress = read_json(run.path / "progress.json") or {}
    return {"variant": run.variant, "task": run.task, "seed": run.seed,
            "threads": as_int(_section(config, "run").get("threads")),
            "episodes": as_int(progress.get("episodes")) or run.episodes, "planned_episodes": planned,
            "episode_s": _round(_quantile(episode_s, 0.5)), "episode_s_q25": _round(_quantile(episode_s, 0.25)),
            "update_s_q25": _round(_quantile(update_s, 0.25)), "collect_s_q25": _round(_quantile(collect_s, 0.25)),
            "eval_s": _round(_quantile(eval_s, 0.5)), "eval_s_q25": _round(_quantile(eval_s, 0.25)),
            "evaluations": len(eval_s), "eval_episodes": as_int(_section(config, "eval").get("episodes")),
            "agent_steps": agent_steps(config, run.task), "test_eval_s": _round(test_s),
            "test_episodes": test_episodes, "busy_hours": round((sum(episode_s) + sum(eval_s)) / 3600, 2),
            "wall_hours": round((times[-1] - times[0]) / 3600, 2) if times else None,
            "estimated_hours": None if estimate is None else round(estimate, 2), "commits": run_commits(run.path),
            "settings": run_settings(run, config),
            # what a projection needs besides the columns (not written to compute.csv)
            "_seed_episodes": seeds, "_every": every}


def compute_table(runs: Sequence[Run]) -> pd.DataFrame:
    """`compute_row` of every run that logged its timings (finished and unfinished alike)."""
    rows = [row for row in map(compute_row, runs) if row is not None]
    return pd.DataFrame(rows, columns=[*COMPUTE_COLUMNS, "_seed_episodes", "_every"])


def _project(ref: pd.Series, steps: int) -> float | None:
    """Hours of a run like `ref` (same planned episodes, schedule and evaluation sizes) on a task of `steps` agent
    steps per episode; None if `ref` lacks a part (no evaluation timed yet, no agent steps)."""
    planned, seeds = finite(ref["planned_episodes"]), finite(ref["_seed_episodes"]) or 0
    every = finite(ref["_every"]) or 0
    ref_steps, update, collect = finite(ref["agent_steps"]), finite(ref["update_s_q25"]), finite(ref["collect_s_q25"])
    eval_s, eval_eps = finite(ref["eval_s_q25"]), finite(ref["eval_episodes"])
    if None in (planned, ref_steps, update, collect, eval_s, eval_eps) or planned <= seeds:
        return None
    scale = steps / ref_steps
    evals = len({k for k in range(int(seeds) + 1, int(planned) + 1) if every and k % every == 0} | {int(planned)})
    seconds = (planned - seeds) * (update + collect * scale) + evals * eval_s * scale
    test_s = finite(ref["test_eval_s"])
    if test_s is not None:
        seconds += test_s * scale
    return seconds / 3600


def project_hours(ref: Mapping[str, Any], steps: int) -> float | None:
    """`_project` of a row given as a mapping of the same columns (`planet cost` prices a pipeline's jobs with it
    before they run, planet/cost.py)."""
    return _project(pd.Series(dict(ref), dtype=object), steps)


def _measured(row: pd.Series) -> float | None:
    """A finished task's hours: its run's wall clock (first to last metrics line) plus its held-out evaluation."""
    wall, test_s = finite(row["wall_hours"]), finite(row["test_eval_s"])
    return None if wall is None or test_s is None else wall + test_s / 3600


def task_hours(compute: pd.DataFrame, tasks: Sequence[str], runs: Sequence[Run], variant: str) -> pd.DataFrame:
    """Per task of `variant`: hours projected from the other tasks' runs (median over them), measured (the run's
    wall clock plus its held-out evaluation, once it has both) and estimated undisturbed (the planned run at its
    lower quartiles plus its held-out evaluation). One seed per task: its first run."""
    done = {(r.task, r.seed) for r in runs if r.variant == variant and r.complete}
    own = compute[compute["variant"] == variant].sort_values("seed")
    rows = []
    for task in tasks:
        repeat = get_task(task).action_repeat
        mine = own[own["task"] == task]
        others = own[own["task"] != task].drop_duplicates("task")
        steps = next((int(s) for s in mine["agent_steps"] if finite(s)), None)
        if steps is None and len(others):
            ref_env = others.iloc[0]
            steps = int(finite(ref_env["agent_steps"]) * get_task(str(ref_env["task"])).action_repeat // repeat)
        projections = {str(o["task"]): _project(o, steps) for _, o in others.iterrows()} if steps else {}
        projections = {t: h for t, h in projections.items() if h is not None}
        row = mine.iloc[0] if len(mine) else None
        status = ("not started" if row is None else "finished" if (task, int(row["seed"])) in done else "running")
        estimated = None
        if row is not None and finite(row["estimated_hours"]) is not None:
            estimated = finite(row["estimated_hours"]) + (finite(row["test_eval_s"]) or 0.0) / 3600
        rows.append({"task": task, "action_repeat": repeat, "agent_steps": steps,
                     "projected_hours": _round(pd.Series(list(projections.values())).median() if projections
                                               else None, 2),
                     "projected_from": " ".join(sorted(projections)) or None,
                     "measured_hours": _round(_measured(row), 2) if row is not None and status == "finished"
                     else None,
                     "estimated_hours": _round(estimated, 2), "status": status})
    return pd.DataFrame(rows, columns=TASK_HOURS_COLUMNS)
