"""Statistics: final returns per run, Table 1's mean ± std over seeds, the IQM aggregate with a stratified
bootstrap, and the paper's "episodes needed" comparison.

* A Table 1 cell is the mean over seeds ± the *sample* standard deviation over seeds (ddof=1: the seeds are a
  sample of the seed population) and the number of seeds.
* State diagnostics (paper Fig. 11): a variant's score at a distance is the median over seeds of each state
  group's held-out R^2, averaged over the task's groups.
* Aggregate score = return / 1000 (DMC returns lie in [0, 1000]); IQM = ``scipy.stats.trim_mean(x, 0.25)`` over all
  (task, seed) scores of a variant (as rliable, Agarwal et al. 2021); the CI resamples seeds within each task
  (stratified bootstrap, percentile method, seeded generator). Tasks with a single seed cannot be resampled and
  enter every resample unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from planet.report.grid import VariantInfo
from planet.report.published import paper_rows
from planet.report.runs import Run, finite

N_BOOTSTRAP = 10_000
BOOTSTRAP_SEED = 0


def iqm(values: Iterable[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as rliable)."""
    from scipy.stats import trim_mean

    values = np.asarray(list(values), dtype=float)
    return float(trim_mean(values, 0.25)) if values.size else math.nan


def stratified_bootstrap_ci(groups: Sequence[Sequence[float]], confidence: float = 0.95,
                            n_resamples: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile CI of the IQM of all values pooled, resampling values (seeds) within each group (task).

    scipy.stats.bootstrap resamples each of several samples independently, which is exactly a stratified bootstrap.
    Groups of one value cannot be resampled (scipy needs two): they enter every resample unchanged. Returns
    (nan, nan) when no group has two values.
    """
    from scipy.stats import bootstrap, trim_mean

    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    resampled = tuple(a for a in arrays if a.size >= 2)
    fixed = np.concatenate([a for a in arrays if a.size == 1] or [np.empty(0)])
    if not resampled:
        return math.nan, math.nan

    def statistic(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        parts = [np.moveaxis(s, axis, -1) for s in samples]
        if fixed.size:
            parts.append(np.broadcast_to(fixed, parts[0].shape[:-1] + fixed.shape))
        return trim_mean(np.concatenate(parts, axis=-1), 0.25, axis=-1)

    result = bootstrap(resampled, statistic, n_resamples=n_resamples, confidence_level=confidence,
                       method="percentile", vectorized=True, axis=-1, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def diagnostics_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """The state diagnostics per (task, variant, distance): the median over seeds of each group's held-out R^2, then
    the mean over the task's state groups (columns task, variant, distance, r2; planet/report/runs.py
    `diagnostics_frame` in)."""
    per_group = frame.dropna(subset=["r2"]).groupby(["task", "variant", "group", "distance"])["r2"].median()
    return per_group.groupby(["task", "variant", "distance"]).mean().reset_index()


def final_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """One row per run with a final return."""
    rows = [{"variant": r.variant, "task": r.task, "seed": r.seed, "return": r.final, "source": r.final_source,
             "episodes": r.episodes, "env_steps": r.env_steps, "preset": r.preset} for r in runs if r.final is not None]
    return pd.DataFrame(rows, columns=["variant", "task", "seed", "return", "source", "episodes", "env_steps",
                                       "preset"])


def summarise(finals: pd.DataFrame) -> dict[str, dict[str, dict[str, float | int | None]]]:
    """{variant: {task: {"mean", "std" (sample, ddof=1; None for one seed), "seeds"}}}."""
    out: dict[str, dict[str, dict[str, float | int | None]]] = {}
    for (variant, task), group in finals.groupby(["variant", "task"], sort=False):
        values = group["return"].astype(float)
        std = float(values.std(ddof=1)) if len(values) > 1 else None
        out.setdefault(variant, {})[task] = {"mean": float(values.mean()), "std": std, "seeds": int(len(values))}
    return out


def score_groups(finals: pd.DataFrame, variant: str) -> list[np.ndarray]:
    """A variant's normalised scores (return / 1000) grouped by task, tasks sorted: the strata of the bootstrap."""
    mine = finals[finals["variant"] == variant]
    return [g["return"].to_numpy(float) / 1000 for _, g in mine.groupby("task", sort=True)]


def aggregate_scores(finals: pd.DataFrame, infos: Mapping[str, VariantInfo]) -> pd.DataFrame:
    """Per variant: IQM of return/1000 pooled over tasks x seeds, 95% stratified-bootstrap CI (seeds within tasks)."""
    rows = []
    for name, info in infos.items():
        groups = score_groups(finals, name)
        if not groups:
            continue
        low, high = stratified_bootstrap_ci(groups)
        rows.append({"variant": name, "label": info.label, "kind": "baseline" if info.baseline else "run",
                     "iqm": iqm(np.concatenate(groups)), "ci_low": low, "ci_high": high,
                     "tasks": len(groups), "runs": sum(map(len, groups))})
    return pd.DataFrame(rows, columns=["variant", "label", "kind", "iqm", "ci_low", "ci_high", "tasks", "runs"])


def reference_aggregate(published: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """The paper's rows: IQM of their per-task scores / 1000 (no seeds published, so no interval)."""
    rows = []
    for _, ref in paper_rows(published).iterrows():
        values = [finite(ref.get(t)) for t in tasks if t in ref.index]
        values = [v / 1000 for v in values if v is not None]
        if values:
            rows.append({"label": ref["method"], "iqm": iqm(values), "tasks": len(values)})
    return pd.DataFrame(rows, columns=["label", "iqm", "tasks"])


def _needed_targets(curves: pd.DataFrame, stats: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                    variants: Sequence[str], infos: Mapping[str, VariantInfo], published: pd.DataFrame,
                    episode_env_steps: int) -> list[tuple[str, str, float, float, str | None]]:
    """(task, name, return, episodes, variant it comes from) of every target of `episodes_needed`."""
    targets: list[tuple[str, str, float, float, str | None]] = []
    refs = paper_rows(published)
    for task in tasks:
        for method in ("D4PG", "A3C"):
            row = refs[refs["method"] == method]
            if len(row) and task in row.columns and finite(row[task].iloc[0]) is not None:
                targets.append((task, f"{method} (published)", float(row[task].iloc[0]),
                                float(row["budget_env_steps"].iloc[0]) / episode_env_steps, None))
        for variant in variants:
            cell = stats.get(variant, {}).get(task)
            if infos[variant].baseline and cell:
                done = curves[(curves["variant"] == variant) & (curves["task"] == task)]["episodes"]
                if len(done):
                    targets.append((task, f"{infos[variant].label} (here)", float(cell["mean"]), float(done.max()),
                                    variant))
    return targets


def episodes_needed(curves: pd.DataFrame, stats: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                    variants: Sequence[str], infos: Mapping[str, VariantInfo], published: pd.DataFrame,
                    episode_env_steps: int = 1000) -> pd.DataFrame:
    """The paper's "episodes needed" comparison: for each task and target score, the first collected-episode count
    at which a variant's evaluation curve (median over seeds at each evaluation point) reaches the target.

    Targets: the published A3C and D4PG scores after 1e8 env steps (paper Table 1; 1e8 / 1000 = 100,000 episodes),
    and the final test return of each baseline trained here after its own number of episodes. `ratio` = target
    episodes / episodes needed (how many times fewer episodes); NaN where the curve never reaches the target
    (`best` = the highest median point).
    """
    rows = []
    for task, name, value, target_episodes, source in _needed_targets(curves, stats, tasks, variants, infos,
                                                                      published, episode_env_steps):
        for variant in variants:
            if variant == source:  # a baseline is not measured against its own score
                continue
            data = curves[(curves["variant"] == variant) & (curves["task"] == task)]
            if data.empty:
                continue
            median = data.groupby("episodes")["return_mean"].median().sort_index()
            reached = median[median >= value]
            needed = float(reached.index[0]) if len(reached) else math.nan
            rows.append({"task": task, "target": name, "target_return": value, "target_episodes": target_episodes,
                         "variant": variant, "label": infos[variant].label, "episodes": needed,
                         "ratio": target_episodes / needed if needed == needed and needed > 0 else math.nan,
                         "best": float(median.max()), "seeds": int(data["seed"].nunique())})
    columns = ["task", "target", "target_return", "target_episodes", "variant", "label", "episodes", "ratio", "best",
               "seeds"]
    return pd.DataFrame(rows, columns=columns)


# rliable (Agarwal et al. 2021) is the field's standard for IQM, CIs and performance profiles, and these functions
# follow its definitions; it is not a dependency because rliable 1.2.0 (the latest on PyPI) requires arch < 8, and
# arch 7.x fails to import beside the project's pandas 3 (arch 8.0, which imports, is outside rliable's range, and
# `pip check` in CI would fail on it). Checked 2026-12-01.
PROFILE_TAUS = np.linspace(0.0, 1.0, 101)


def performance_profile(groups: Sequence[Sequence[float]], taus: np.ndarray = PROFILE_TAUS,
                        confidence: float = 0.95, n_resamples: int = 2_000,
                        seed: int = BOOTSTRAP_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The performance profile (run-score distribution, rliable `create_performance_profile`): for each threshold
    tau, the fraction of runs whose normalised score exceeds tau (strictly), each task weighted equally (the mean
    over tasks of the fraction of that task's seeds). Returns (profile, ci_low, ci_high), each shaped like ``taus``;
    the band is a percentile stratified bootstrap (seeds resampled within each task, seeded generator)."""
    arrays = [np.asarray(g, dtype=float) for g in groups if len(g)]
    if not arrays:
        nan = np.full(len(taus), math.nan)
        return nan, nan, nan
    taus = np.asarray(taus, dtype=float)
    profile = np.mean([(a[None, :] > taus[:, None]).mean(axis=1) for a in arrays], axis=0)
    rng = np.random.default_rng(seed)
    boot = np.zeros((len(taus), n_resamples))
    for a in arrays:  # per task: resample its seeds, fraction above each tau, for every resample at once
        sample = a[rng.integers(0, a.size, size=(n_resamples, a.size))]
        boot += (sample[None, :, :] > taus[:, None, None]).mean(axis=2)
    boot /= len(arrays)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha], axis=1)
    return profile, low, high
