"""`planet report`: Table 1, learning curves, ablation figures, open-loop strips and an aggregate, from run files.

Reads only what runs write (never MLflow), so a report can be rebuilt from a copied results directory::

    RESULTS/runs/{variant}/{task}/seed{seed}/   config.yaml, metrics.jsonl, summary.json (complete runs),
                                                evaluation.json (`planet evaluate`), eval/openloop.png
    RESULTS/eval/{variant}/{task}/seed{seed}.json   the same evaluation, where the pipeline writes it

and writes into OUT::

    table1.md, table1.tex, table1.csv   final returns (runs made here, then the paper's rows: kind = reference)
    curves.csv                          eval/return_mean per (variant, task, seed, episodes): the DVC plots file
    metrics.json                        {variant: {task: {mean, std, seeds}}}: the DVC metrics file
    aggregate.csv                       IQM over tasks x seeds with a stratified-bootstrap 95% CI
    figures/*.png|pdf                   curves, curves_{task}, ablation_{models,agents,overshooting}, aggregate,
                                        openloop_{variant} (png only)
    README.md                           the table, every figure, a reading against the paper, missing runs

Conventions (documented once here, tested in tests/test_report.py):

* A run's final return is ``return_mean`` of its held-out test evaluation (``evaluation.json``, split test); if
  there is none, the last in-training evaluation (``summary.json`` ``final_eval["eval/return_mean"]``). An
  evaluation of a run that was incomplete when evaluated (``"complete": false``) is not used.
* A Table 1 cell is the mean over seeds ± the *sample* standard deviation over seeds (ddof=1: the seeds are a
  sample of the seed population), then the number of seeds, e.g. ``812 ± 31 (5)``. One seed: no std. None: "—".
* table1.csv is the numeric form: columns ``{task}``, ``{task}_std``, ``{task}_seeds``; missing values are empty.
  ``episodes``/``env_steps`` of a run row are the largest numbers of collected training episodes / env steps over
  its runs (the md shows a range when runs differ); of a reference row, the published budget (episodes =
  budget_env_steps / 1000).
* Aggregate score = return / 1000 (DMC returns lie in [0, 1000]); IQM = ``scipy.stats.trim_mean(x, 0.25)`` over
  all (task, seed) scores of a variant; the CI resamples seeds within each task (stratified bootstrap, percentile
  method, seeded generator). Tasks with a single seed cannot be resampled and enter every resample unchanged.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

log = logging.getLogger(__name__)

PUBLISHED_SCORES = Path(__file__).parent / "data" / "published_scores.csv"
# The paper's task order (Table 1); tasks found in the results but not here are appended.
TASKS = ("cartpole_swingup", "reacher_easy", "cheetah_run", "finger_spin", "cup_catch", "walker_walk")
DEFAULT_VARIANTS = {
    "planet": "PlaNet (RSSM)",
    "gru": "Deterministic (GRU)",
    "ssm": "Stochastic (SSM)",
    "random_collection": "Random collection",
    "random_shooting": "Random shooting",
    "overshooting": "RSSM + overshooting",
    "ssm_overshooting": "SSM + overshooting",
    "elu": "RSSM + ELU",
    "ssm_elu": "SSM + ELU",
}
MODEL_DESIGNS = ("planet", "gru", "ssm")  # paper Fig. 4
AGENT_DESIGNS = ("planet", "random_collection", "random_shooting")  # paper Fig. 5
OVERSHOOTING = ("planet", "overshooting", "ssm", "ssm_overshooting")  # paper Fig. 8
ACTIVATIONS = ("planet", "elu", "ssm", "ssm_elu")  # paper Fig. 9
OPENLOOP = ("planet", "overshooting", "gru", "ssm")  # paper Fig. 10
PAPER_TABLE_SOURCE = "PlaNet Table 1"  # rows of published_scores.csv whose source starts with this are Table 1
PAPER_METHODS = ("A3C", "D4PG", "PlaNet", "CEM + true simulator")
CURVE_REFERENCES = {"D4PG": "0.2", "A3C": "0.55"}  # horizontal lines of paper Fig. 4, with their grey
# Uniform random policy, 10 episodes at the paper's action repeats (measured for this project, reference notes §2).
RANDOM_RETURNS = {"cartpole_swingup": 120, "reacher_easy": 64, "cheetah_run": 13, "finger_spin": 3, "cup_catch": 6,
                  "walker_walk": 40}
TINY_EPISODES = 50  # below this many training episodes no learning is expected (the paper trains 1000)
MISSING = "—"
DPI = 120
N_BOOTSTRAP = 10_000
BOOTSTRAP_SEED = 0


# ----------------------------------------------------------------------------------------------------------------
# Reading runs


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


def _read_json(path: Path) -> dict | None:
    """A JSON object, or None when the file is absent or unreadable (a report never crashes on one bad run)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); ignored", path, exc)
        return None
    return data if isinstance(data, dict) else None


def _finite(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _int(value: Any) -> int | None:
    value = _finite(value)
    return None if value is None else int(round(value))


def read_curve(path: Path) -> pd.DataFrame:
    """Eval lines of a metrics.jsonl as a frame (episodes, env_steps, return_mean, return_std), sorted by episodes."""
    from planet.tracking import read_metrics  # noqa: PLC0415 - keeps MLflow-free imports light

    columns = ["episodes", "env_steps", "return_mean", "return_std"]
    try:
        records = read_metrics(path)
    except FileNotFoundError:
        return pd.DataFrame(columns=columns)
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); no learning curve for this run", path, exc)
        return pd.DataFrame(columns=columns)
    rows = []
    for rec in records:
        mean = _finite(rec.get("eval/return_mean"))
        if mean is None or _finite(rec.get("episodes")) is None:
            continue  # training lines, test/* lines from `planet evaluate`, non-finite values
        rows.append({"episodes": _int(rec["episodes"]), "env_steps": _int(rec.get("step")), "return_mean": mean,
                     "return_std": _finite(rec.get("eval/return_std"))})
    frame = pd.DataFrame(rows, columns=columns)
    # One point per episode count: a resumed run never repeats lines, but keep the last if a file ever does.
    return frame.drop_duplicates("episodes", keep="last").sort_values("episodes", ignore_index=True)


def read_run(results: Path, variant: str, task: str, seed: int, path: Path) -> Run:
    """Collect final return, counters, learning curve and open-loop strip of one run directory."""
    run = Run(variant, task, seed, path)
    summary = _read_json(path / "summary.json")
    evaluation = _read_json(path / "evaluation.json") or _read_json(
        results / "eval" / variant / task / f"seed{seed}.json")
    config: dict = {}
    try:
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        pass
    except (OSError, yaml.YAMLError) as exc:
        log.warning("%s: unreadable config (%s)", path, exc)
    run.complete = summary is not None
    if evaluation is not None and evaluation.get("complete") is not False and _finite(evaluation.get("return_mean")):
        run.final, run.final_source = _finite(evaluation["return_mean"]), "test"
    elif summary is not None and _finite((summary.get("final_eval") or {}).get("eval/return_mean")) is not None:
        run.final, run.final_source = _finite(summary["final_eval"]["eval/return_mean"]), "eval"
    run.curve = read_curve(path / "metrics.jsonl")
    last = run.curve.iloc[-1] if len(run.curve) else {}
    summary, evaluation = summary or {}, evaluation or {}
    run.episodes = _int(summary.get("episodes")) or _int(evaluation.get("train_episodes")) or _int(
        last.get("episodes") if len(run.curve) else None)
    run.env_steps = _int(summary.get("env_steps")) or _int(evaluation.get("env_steps")) or _int(
        last.get("env_steps") if len(run.curve) else None)
    train = config.get("train") if isinstance(config.get("train"), dict) else {}
    run.planned_episodes = _int(train.get("episodes"))
    env = config.get("env") if isinstance(config.get("env"), dict) else {}
    run.episode_env_steps = _int(env.get("episode_env_steps"))
    run.preset = summary.get("preset") or config.get("preset") or evaluation.get("preset")
    strip = path / "eval" / "openloop.png"
    run.openloop = strip if strip.is_file() and strip.stat().st_size > 0 else None
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


# ----------------------------------------------------------------------------------------------------------------
# Numbers


def iqm(values: Iterable[float]) -> float:
    """Interquartile mean: the mean of the middle 50% (25% trimmed from each end, as rliable)."""
    from scipy.stats import trim_mean  # noqa: PLC0415

    values = np.asarray(list(values), dtype=float)
    return float(trim_mean(values, 0.25)) if values.size else math.nan


def stratified_bootstrap_ci(groups: Sequence[Sequence[float]], confidence: float = 0.95,
                            n_resamples: int = N_BOOTSTRAP, seed: int = BOOTSTRAP_SEED) -> tuple[float, float]:
    """Percentile CI of the IQM of all values pooled, resampling values (seeds) within each group (task).

    scipy.stats.bootstrap resamples each of several samples independently, which is exactly a stratified bootstrap.
    Groups of one value cannot be resampled (scipy needs two): they enter every resample unchanged. Returns
    (nan, nan) when no group has two values.
    """
    from scipy.stats import bootstrap, trim_mean  # noqa: PLC0415

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


def load_published(path: Path = PUBLISHED_SCORES) -> pd.DataFrame:
    """published_scores.csv; an absent file gives an empty frame (the report then has no reference rows)."""
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        log.warning("%s not found: no reference rows", path)
        return pd.DataFrame(columns=["method", "modality", "budget_env_steps", "source", *TASKS, "note"])


PLANET_BUDGET_SOURCE = "CURL (ICML 2020)"  # PlaNet at 100k and 500k env steps (Laskin et al. 2020, Table 1)


def table_reference_rows(published: pd.DataFrame) -> pd.DataFrame:
    """Table 1's reference rows: the paper's four, then PlaNet at 100k and 500k env steps as later papers report it
    (the budgets a CPU can reach; issue 10's campaign compares with them)."""
    later = published[published["source"].astype(str).str.startswith(PLANET_BUDGET_SOURCE)
                      & (published["method"] == "PlaNet")].sort_values("budget_env_steps")
    return pd.concat([paper_rows(published), later], ignore_index=True)


def paper_rows(published: pd.DataFrame) -> pd.DataFrame:
    """The paper's Table 1 rows (A3C, D4PG, PlaNet, CEM + true simulator), in that order."""
    rows = published[published["source"].astype(str).str.startswith(PAPER_TABLE_SOURCE)
                     & published["method"].isin(PAPER_METHODS)]
    order = {m: i for i, m in enumerate(PAPER_METHODS)}
    return rows.sort_values("method", key=lambda s: s.map(order), ignore_index=True)


# ----------------------------------------------------------------------------------------------------------------
# Variants


@dataclass
class VariantInfo:
    name: str
    label: str
    baseline: bool = False


def variant_infos(variants: Mapping[str, Any] | None, baselines: Iterable[str], found: Iterable[str],
                  expected: Mapping[str, Any] | None) -> dict[str, VariantInfo]:
    """Ordered variants of the report: the caller's mapping, then the paper's order, then others found (sorted).

    A mapping value is a label or a dict with "label" and optionally "baseline" (or "family": "baselines").
    """
    baselines = set(baselines)
    infos: dict[str, VariantInfo] = {}
    for name, value in (variants or {}).items():
        if isinstance(value, Mapping):
            label = str(value.get("label") or DEFAULT_VARIANTS.get(name, name))
            flagged = bool(value.get("baseline")) or value.get("family") == "baselines"
        else:
            label, flagged = str(value or DEFAULT_VARIANTS.get(name, name)), False
        infos[name] = VariantInfo(name, label, flagged or name in baselines)
    present = set(found) | set(expected or {}) | set(infos)
    for name in [*DEFAULT_VARIANTS, *sorted(present)]:
        if name in present and name not in infos:
            infos[name] = VariantInfo(name, DEFAULT_VARIANTS.get(name, name), name in baselines)
    return infos


def _palette(names: Iterable[str]) -> dict[str, tuple]:
    """A fixed colour per variant (paper variants first), so a variant looks the same in every figure."""
    import seaborn as sns  # noqa: PLC0415

    order = [*DEFAULT_VARIANTS, *sorted(set(names) - set(DEFAULT_VARIANTS))]
    colours = sns.color_palette("tab10", max(10, len(order)))
    return {name: colours[i % len(colours)] for i, name in enumerate(order)}


# ----------------------------------------------------------------------------------------------------------------
# Table 1


def _fmt_num(value: Any) -> str:
    value = _finite(value)
    return MISSING if value is None else f"{value:.0f}"


def _fmt_cell(stats: Mapping[str, Any] | None, tex: bool = False) -> str:
    if not stats or not stats.get("seeds"):
        return "--" if tex else MISSING
    pm = r" $\pm$ " if tex else " ± "
    std = "" if stats.get("std") is None else f"{pm}{stats['std']:.0f}"
    return f"{stats['mean']:.0f}{std} ({stats['seeds']})"


def _fmt_count(lo: int | None, hi: int | None, tex: bool = False) -> str:
    if hi is None:
        return "--" if tex else MISSING
    return f"{hi:,}" if lo == hi else f"{lo:,}{'--' if tex else '–'}{hi:,}"


_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "--", "–": "--"}


def _tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def _run_sources(runs: Sequence[Run], variant: str) -> str:
    presets = sorted({r.preset for r in runs if r.variant == variant and r.preset})
    return f"this pipeline, preset {', '.join(presets) or 'unknown'}"


def build_table(runs: Sequence[Run], infos: Mapping[str, VariantInfo], stats: Mapping[str, Mapping[str, Any]],
                tasks: Sequence[str], published: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Numeric Table 1 (runs, then reference rows) and, per run row, the md text of its episodes column."""
    rows, episode_text = [], {}
    for name, info in infos.items():
        mine = [r for r in runs if r.variant == name and r.final is not None]
        episodes = [r.episodes for r in mine if r.episodes is not None]
        steps = [r.env_steps for r in mine if r.env_steps is not None]
        row: dict[str, Any] = {"method": info.label, "variant": name, "kind": "baseline" if info.baseline else "run",
                               "source": _run_sources(runs, name), "episodes": max(episodes, default=None),
                               "env_steps": max(steps, default=None)}
        episode_text[name] = _fmt_count(min(episodes, default=None), max(episodes, default=None))
        for task in tasks:
            cell = stats.get(name, {}).get(task)
            row[task] = cell["mean"] if cell else None
            row[f"{task}_std"] = cell["std"] if cell else None
            row[f"{task}_seeds"] = cell["seeds"] if cell else None
        rows.append(row)
    for _, ref in table_reference_rows(published).iterrows():
        budget = _int(ref["budget_env_steps"])
        row = {"method": ref["method"], "variant": None, "kind": "reference", "source": ref["source"],
               "episodes": None if budget is None else budget // 1000, "env_steps": budget}
        for task in tasks:
            row[task] = _finite(ref.get(task))
            row[f"{task}_std"], row[f"{task}_seeds"] = None, None
        rows.append(row)
    columns = ["method", "variant", "kind", "source", "episodes", "env_steps"]
    columns += [c for t in tasks for c in (t, f"{t}_std", f"{t}_seeds")]
    table = pd.DataFrame(rows, columns=columns)
    for col in ["episodes", "env_steps", *(f"{t}_seeds" for t in tasks)]:
        table[col] = table[col].astype("Int64")
    return table, episode_text


def display_table(table: pd.DataFrame, tasks: Sequence[str], episode_text: Mapping[str, str],
                  tex: bool = False) -> pd.DataFrame:
    """Formatted Table 1 for md (tex=False) or LaTeX (tex=True): cells "mean ± std (seeds)", "—" when missing."""
    rows = []
    for _, row in table.iterrows():
        ours = row["kind"] != "reference"
        episodes = (episode_text.get(row["variant"], MISSING) if ours
                    else _fmt_count(_int(row["episodes"]), _int(row["episodes"])))
        if tex:
            episodes = episodes.replace("–", "--").replace(MISSING, "--")
        esc = _tex_escape if tex else str
        out = {"method": esc(row["method"]), "kind": row["kind"], "episodes": episodes}
        for task in tasks:
            if ours:
                cell = None if pd.isna(row[task]) else {"mean": row[task], "seeds": int(row[f"{task}_seeds"]),
                                                        "std": None if pd.isna(row[f"{task}_std"])
                                                        else row[f"{task}_std"]}
                out[task] = _fmt_cell(cell, tex)
            else:
                out[task] = _fmt_num(row[task]).replace(MISSING, "--" if tex else MISSING)
        out["source"] = esc(row["source"])
        rows.append(out)
    return pd.DataFrame(rows, columns=["method", "kind", "episodes", *tasks, "source"])


def table_markdown(display: pd.DataFrame, n_runs: int) -> str:
    """Markdown with a labelled separator row between runs made here and published reference rows."""
    if 0 < n_runs < len(display):
        sep = pd.DataFrame([{c: "" for c in display.columns} | {"method": "**published (reference)**"}])
        display = pd.concat([display.iloc[:n_runs], sep, display.iloc[n_runs:]], ignore_index=True)
    return display.to_markdown(index=False, disable_numparse=True)


def table_latex(display: pd.DataFrame, n_runs: int) -> str:
    """LaTeX (booktabs) with a \\midrule between runs made here and the published reference rows."""
    frame = display.copy()
    frame.columns = [_tex_escape(c) for c in frame.columns]  # cells are escaped by display_table(tex=True)
    text = frame.to_latex(index=False, escape=False, column_format="lll" + "r" * (len(frame.columns) - 4) + "l")
    lines = text.splitlines()
    if 0 < n_runs < len(display):
        header = lines.index(r"\midrule")
        lines.insert(header + 1 + n_runs, r"\midrule")
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------------------------------
# Figures


def _figure(width: float, height: float):
    """A figure not registered with pyplot: Agg rendering, no global state, nothing to close."""
    from matplotlib.figure import Figure  # noqa: PLC0415

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, base: Path, written: list[Path], pdf: bool = True) -> None:
    base.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(base.with_suffix(".png"), dpi=DPI)
    written.append(base.with_suffix(".png"))
    if pdf:
        # No creation date, so an unchanged report produces byte-identical PDFs.
        fig.savefig(base.with_suffix(".pdf"), metadata={"CreationDate": None, "ModDate": None})
        written.append(base.with_suffix(".pdf"))


def _references(published: pd.DataFrame, task: str) -> dict[str, float]:
    refs = paper_rows(published)
    out = {}
    for name in CURVE_REFERENCES:
        value = refs.loc[refs["method"] == name, task] if task in refs.columns else pd.Series(dtype=float)
        if len(value) and _finite(value.iloc[0]) is not None:
            out[name] = float(value.iloc[0])
    return out


def _draw_curves(ax, curves: pd.DataFrame, task: str, x: str, variants: Sequence[str],
                 infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple], published: pd.DataFrame) -> set[str]:
    """Median and 5-95 percentile band over seeds per variant, plus D4PG/A3C reference lines; returns variants
    drawn."""
    import seaborn as sns  # noqa: PLC0415

    data = curves[(curves["task"] == task) & curves["variant"].isin(variants)]
    drawn = [v for v in variants if v in set(data["variant"])]
    if drawn:
        # Every seed evaluates at the same episode counts, so each x has one value per seed: the median and the
        # 5-95 percentile band are over seeds. markers: a run with a single eval point still shows.
        sns.lineplot(data=data, x=x, y="return_mean", hue="variant", hue_order=drawn, palette=dict(palette),
                     estimator="median", errorbar=("pi", 90), marker="o", markersize=4, legend=False, ax=ax,
                     seed=BOOTSTRAP_SEED)
    else:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.5")
    for name, value in _references(published, task).items():
        ax.axhline(value, ls="--", lw=1, color=CURVE_REFERENCES[name])
    ax.set_title(task)
    ax.set_xlabel("collected episodes" if x == "episodes" else "environment steps")
    ax.set_ylabel("return (eval, median over seeds)")
    ax.set_ylim(0, 1050)
    if x == "env_steps":
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    return set(drawn)


def _legend_handles(variants: Sequence[str], infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple],
                    published: pd.DataFrame) -> list:
    from matplotlib.lines import Line2D  # noqa: PLC0415

    handles = [Line2D([], [], color=palette[v], marker="o", markersize=4, label=infos[v].label) for v in variants]
    refs = paper_rows(published)
    for name, colour in CURVE_REFERENCES.items():
        if name in set(refs["method"]):
            handles.append(Line2D([], [], ls="--", lw=1, color=colour,
                                  label=f"{name} (reference, 1e8 env steps)"))
    return handles


def plot_task_curves(curves: pd.DataFrame, task: str, variants: Sequence[str], infos: Mapping[str, VariantInfo],
                     palette: Mapping[str, tuple], published: pd.DataFrame, base: Path, written: list[Path]) -> None:
    """Two panels: eval return vs collected episodes and vs env steps."""
    fig = _figure(10, 3.8)
    axes = fig.subplots(1, 2)
    drawn = set()
    for ax, x in zip(axes, ("episodes", "env_steps"), strict=True):
        drawn |= _draw_curves(ax, curves, task, x, variants, infos, palette, published)
        ax.set_title(f"vs {ax.get_xlabel()}")
    fig.legend(handles=_legend_handles([v for v in variants if v in drawn], infos, palette, published),
               loc="outside lower center", ncols=3, frameon=False, fontsize="small")
    fig.suptitle(f"{task}: eval return (median, 5-95 percentile band over seeds)")
    _save(fig, base, written)


def plot_task_grid(curves: pd.DataFrame, tasks: Sequence[str], variants: Sequence[str],
                   infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple], published: pd.DataFrame,
                   title: str, base: Path, written: list[Path]) -> set[str]:
    """One panel per task (eval return vs collected episodes); variants without runs are absent from the legend."""
    ncols = 3
    nrows = max(1, math.ceil(len(tasks) / ncols))
    fig = _figure(12, 3.3 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    drawn: set[str] = set()
    for ax, task in zip(axes, tasks, strict=False):
        drawn |= _draw_curves(ax, curves, task, "episodes", variants, infos, palette, published)
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    fig.legend(handles=_legend_handles([v for v in variants if v in drawn], infos, palette, published),
               loc="outside lower center", ncols=4, frameon=False, fontsize="small")
    fig.suptitle(title)
    _save(fig, base, written)
    return drawn


# Published points of the data-efficiency figure: pixel agents at fixed env-step budgets (marker per method).
EFFICIENCY_REFERENCES = {"PlaNet": "o", "SAC (pixels)": "s", "DrQ (K=1 M=1; about RAD)": "^", "CURL": "D"}


def plot_data_efficiency(curves: pd.DataFrame, tasks: Sequence[str], variants: Sequence[str],
                         infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple], published: pd.DataFrame,
                         base: Path, written: list[Path]) -> None:
    """Eval return vs env steps (log scale), runs made here (median over seeds) beside published pixel agents at
    their budgets (hollow markers: PlaNet's 1e6-step Table 1 score and the 100k / 500k scores of later papers)."""
    from matplotlib.lines import Line2D  # noqa: PLC0415

    ncols = 3
    nrows = max(1, math.ceil(len(tasks) / ncols))
    fig = _figure(12, 3.3 * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    refs = published[published["method"].isin(EFFICIENCY_REFERENCES) & (published["modality"] == "pixels")]
    drawn: set[str] = set()
    for ax, task in zip(axes, tasks, strict=False):
        data = curves[(curves["task"] == task) & curves["variant"].isin(variants)]
        for variant in variants:
            points = data[data["variant"] == variant].groupby("env_steps")["return_mean"].median()
            points = points[points.index > 0]
            if len(points):
                ax.plot(points.index, points.values, marker="o", markersize=3, color=palette[variant])
                drawn.add(variant)
        if task in refs.columns:
            for _, row in refs.iterrows():
                value = _finite(row[task])
                if value is not None:
                    ax.plot([row["budget_env_steps"]], [value], ls="", marker=EFFICIENCY_REFERENCES[row["method"]],
                            mfc="none", color="0.35", markersize=6)
        d4pg = _references(published, task).get("D4PG")
        if d4pg is not None:
            ax.axhline(d4pg, ls="--", lw=1, color=CURVE_REFERENCES["D4PG"])
        ax.set_xscale("log")
        ax.set_xlim(1e3, 2e6)
        ax.set_ylim(0, 1050)
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return")
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=palette[v], marker="o", markersize=3, label=f"{infos[v].label} (here)")
               for v in variants if v in drawn]
    handles += [Line2D([], [], ls="", marker=m, mfc="none", color="0.35", label=f"{name} (published)")
                for name, m in EFFICIENCY_REFERENCES.items() if name in set(refs["method"])]
    handles.append(Line2D([], [], ls="--", lw=1, color=CURVE_REFERENCES["D4PG"], label="D4PG (1e8 env steps)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize="small")
    fig.suptitle("Data efficiency: eval return vs environment steps")
    _save(fig, base, written)


def plot_aggregate(aggregate: pd.DataFrame, reference: pd.DataFrame, palette: Mapping[str, tuple], base: Path,
                   written: list[Path]) -> None:
    """IQM with 95% CI per variant (runs here), and the paper's rows as reference points (IQM over six tasks)."""
    n = len(aggregate) + len(reference)
    fig = _figure(8, 0.45 * max(n, 2) + 1.6)
    ax = fig.subplots()
    labels = []
    for i, row in enumerate(aggregate.itertuples()):
        colour = palette.get(row.variant, "C0")
        if _finite(row.ci_low) is not None:
            ax.errorbar([row.iqm], [i], xerr=[[row.iqm - row.ci_low], [row.ci_high - row.iqm]], color=colour,
                        capsize=4, lw=2)
        ax.plot([row.iqm], [i], "o", color=colour)
        labels.append(f"{row.label} ({row.runs} runs, {row.tasks} tasks)")
    for j, row in enumerate(reference.itertuples(), start=len(aggregate)):
        ax.plot([row.iqm], [j], "D", mfc="none", color="0.3")
        labels.append(f"{row.label} (paper Table 1)")
    if not n:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.5")
    ax.set_yticks(range(n), labels)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("IQM of return / 1000 over tasks x seeds\nbars: 95% stratified bootstrap CI; "
                  "diamonds: paper (6 tasks)")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, base, written)


def compose_openloop(items: Sequence[tuple[str, Path]], out: Path, context: int = 5) -> bool:
    """Stack open-loop strips (truth row above prediction row) vertically, each under its task name, as paper
    Fig. 10; a red line marks the end of the context frames. Returns False when no strip is readable."""
    from PIL import Image, ImageDraw, ImageFont  # noqa: PLC0415

    images = []
    for task, path in items:
        try:
            with Image.open(path) as img:
                images.append((task, img.convert("RGB")))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable open-loop strip (%s)", path, exc)
    if not images:
        return False
    try:
        font = ImageFont.load_default(size=14)
    except (OSError, TypeError):  # Pillow without FreeType
        font = ImageFont.load_default()
    label_h, margin = 20, 80
    width = margin + max(img.width for _, img in images)
    canvas = Image.new("RGB", (width, sum(label_h + img.height for _, img in images)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for task, img in images:
        draw.text((4, y + 3), task, fill="black", font=font)
        y += label_h
        canvas.paste(img, (margin, y))
        frame = img.height // 2
        if img.height % 2 == 0 and frame and img.width % frame == 0:  # truth row above prediction row
            draw.text((4, y + frame // 2 - 7), "truth", fill="black", font=font)
            draw.text((4, y + frame + frame // 2 - 7), "model", fill="black", font=font)
            if img.width > context * frame:
                x = margin + context * frame
                draw.line([(x, y), (x, y + img.height - 1)], fill=(220, 0, 0), width=2)
        y += img.height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return True


# ----------------------------------------------------------------------------------------------------------------
# Aggregate


def aggregate_scores(finals: pd.DataFrame, infos: Mapping[str, VariantInfo]) -> pd.DataFrame:
    """Per variant: IQM of return/1000 pooled over tasks x seeds, 95% stratified-bootstrap CI (seeds within tasks)."""
    rows = []
    for name, info in infos.items():
        mine = finals[finals["variant"] == name]
        if mine.empty:
            continue
        groups = [g["return"].to_numpy(float) / 1000 for _, g in mine.groupby("task", sort=True)]
        low, high = stratified_bootstrap_ci(groups)
        rows.append({"variant": name, "label": info.label, "kind": "baseline" if info.baseline else "run",
                     "iqm": iqm(np.concatenate(groups)), "ci_low": low, "ci_high": high,
                     "tasks": len(groups), "runs": len(mine)})
    return pd.DataFrame(rows, columns=["variant", "label", "kind", "iqm", "ci_low", "ci_high", "tasks", "runs"])


def reference_aggregate(published: pd.DataFrame, tasks: Sequence[str]) -> pd.DataFrame:
    """The paper's rows: IQM of their per-task scores / 1000 (no seeds published, so no interval)."""
    rows = []
    for _, ref in paper_rows(published).iterrows():
        values = [_finite(ref.get(t)) for t in tasks if t in ref.index]
        values = [v / 1000 for v in values if v is not None]
        if values:
            rows.append({"label": ref["method"], "iqm": iqm(values), "tasks": len(values)})
    return pd.DataFrame(rows, columns=["label", "iqm", "tasks"])


# ----------------------------------------------------------------------------------------------------------------
# Missing runs


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
                if run is None:
                    status = "absent"
                elif run.final is not None:
                    continue
                else:
                    status = "incomplete" if not run.complete else "no result"
                out.append({"variant": variant, "task": task, "seed": int(seed), "status": status})
    # Runs outside the expected grid that have no result are worth listing too.
    listed = {(m["variant"], m["task"], m["seed"]) for m in out}
    for run in runs:
        key = (run.variant, run.task, run.seed)
        if run.final is None and key not in listed and expected is not None:
            out.append({"variant": run.variant, "task": run.task, "seed": run.seed,
                        "status": "incomplete" if not run.complete else "no result"})
    return out


# ----------------------------------------------------------------------------------------------------------------
# README text


def _stats_text(cell: Mapping[str, Any] | None) -> str:
    return MISSING if not cell else _fmt_cell(cell).replace(" (", " (seeds: ", 1)


def _paper_value(published: pd.DataFrame, method: str, task: str) -> float | None:
    refs = paper_rows(published)
    value = refs.loc[refs["method"] == method, task] if task in refs.columns else pd.Series(dtype=float)
    return _finite(value.iloc[0]) if len(value) else None


def _tiny_note(runs: Sequence[Run]) -> str | None:
    """A plain statement when the runs are too short to learn anything."""
    notes = []
    for preset in sorted({r.preset or "unknown" for r in runs}):
        mine = [r for r in runs if (r.preset or "unknown") == preset]
        most = max([r.episodes or 0 for r in mine] + [r.planned_episodes or 0 for r in mine])
        if most < TINY_EPISODES:
            notes.append(f"preset `{preset}` trains for at most {most} episodes")
    if not notes:
        return None
    return (f"**These are tiny runs:** {'; '.join(notes)} (fewer than {TINY_EPISODES}; the paper trains 1,000). "
            "No learning is expected: the numbers below check the pipeline's plumbing, not the paper's claims.")


def _table_paragraph(runs: Sequence[Run], stats: Mapping, tasks: Sequence[str], published: pd.DataFrame) -> str:
    planet = stats.get("planet", {})
    episodes = {t: max([r.episodes or 0 for r in runs if r.variant == "planet" and r.task == t], default=0)
                for t in tasks}
    parts = []
    for task in tasks:
        if task not in planet:
            continue
        paper, d4pg = _paper_value(published, "PlaNet", task), _paper_value(published, "D4PG", task)
        text = (f"On {task} this pipeline's PlaNet reaches {_stats_text(planet[task])} after {episodes[task]:,} "
                f"episodes vs the paper's {_fmt_num(paper)} after 1,000 (D4PG {_fmt_num(d4pg)} after 100,000)")
        lengths = {r.episode_env_steps for r in runs if r.variant == "planet" and r.task == task}
        if task in RANDOM_RETURNS and lengths and lengths <= {1000}:
            above = planet[task]["mean"] > RANDOM_RETURNS[task]
            text += (f"; a random policy scores about {RANDOM_RETURNS[task]}, so this is "
                     f"{'above' if above else 'not above'} random")
        parts.append(text + ".")
    if not parts:
        return ("No PlaNet (`planet`) run has a final return yet, so nothing can be compared with the paper's "
                "PlaNet row.")
    missing = [t for t in tasks if t not in planet]
    if missing:
        parts.append(f"No PlaNet result for {', '.join(missing)}.")
    return " ".join(parts)


def _rank_paragraph(stats: Mapping, variants: Sequence[str], infos: Mapping[str, VariantInfo],
                    tasks: Sequence[str], claim: str, leader: str) -> str:
    """Per task, the variants' final means, and how often `leader` is best where all variants ran."""
    present = [v for v in variants if v in stats]
    if len(present) < 2:
        return f"Paper: {claim} Here: fewer than two of these variants have results, so there is nothing to compare."
    lines, complete, wins = [], 0, 0
    for task in tasks:
        have = {v: stats[v][task]["mean"] for v in present if task in stats[v]}
        if len(have) < 2:
            continue
        lines.append(f"{task}: " + ", ".join(f"{infos[v].label} {m:.0f}" for v, m in
                                             sorted(have.items(), key=lambda kv: -kv[1])))
        if len(have) == len(present) and leader in have:
            complete += 1
            wins += have[leader] >= max(have.values())
    text = f"Paper: {claim} Here (final return, mean over seeds, best first): " + "; ".join(lines) + "."
    if complete and leader in infos:
        text += f" {infos[leader].label} is best on {wins} of the {complete} tasks where all of these variants ran."
    return text


def _curves_paragraph(curves: pd.DataFrame, tasks: Sequence[str], published: pd.DataFrame) -> str:
    parts = []
    for task in tasks:
        mine = curves[(curves["variant"] == "planet") & (curves["task"] == task)]
        if mine.empty:
            continue
        last = int(mine["episodes"].max())
        median = float(mine.loc[mine["episodes"] == last, "return_mean"].median())
        paper = _fmt_num(_paper_value(published, "PlaNet", task))
        parts.append(f"{task}: {median:.0f} at {last:,} episodes (paper {paper} at 1,000)")
    if not parts:
        return "No PlaNet learning curve yet."
    return ("Last evaluation of PlaNet during training (median over seeds): " + "; ".join(parts) + ". The paper's "
            "curves (Fig. 4) rise within the first 100-500 episodes and end near D4PG's 1e8-step score on most tasks.")


def _aggregate_paragraph(aggregate: pd.DataFrame, reference: pd.DataFrame) -> str:
    if aggregate.empty:
        return "No final returns, so no aggregate."
    parts = []
    for row in aggregate.itertuples():
        ci = ("no interval (one seed per task)" if _finite(row.ci_low) is None
              else f"95% CI [{row.ci_low:.3f}, {row.ci_high:.3f}]")
        parts.append(f"{row.label} {row.iqm:.3f} ({ci}; {row.runs} runs over {row.tasks} tasks)")
    refs = "; ".join(f"{r.label} {r.iqm:.3f}" for r in reference.itertuples())
    text = "IQM of return/1000 over tasks x seeds: " + "; ".join(parts) + "."
    if refs:
        text += f" The paper's Table 1 rows, IQM over their six task scores (no seeds published): {refs}."
    if (aggregate["tasks"] < len(TASKS)).any():
        text += " Variants with fewer than six tasks are not comparable with the reference rows."
    return text


def _later_references(published: pd.DataFrame, tasks: Sequence[str]) -> str:
    rows = published[~published["source"].astype(str).str.startswith(PAPER_TABLE_SOURCE)]
    if rows.empty:
        return ""
    frame = rows[["method", "budget_env_steps", *[t for t in tasks if t in rows.columns], "source"]].copy()
    frame["budget_env_steps"] = [f"{int(v):,}" for v in frame["budget_env_steps"]]
    for task in tasks:
        if task in frame.columns:
            frame[task] = [_fmt_num(v) for v in frame[task]]
    return frame.to_markdown(index=False, disable_numparse=True)


def write_readme(out: Path, title: str, results: Path, runs: Sequence[Run], table_md: str, stats: Mapping,
                 infos: Mapping[str, VariantInfo], tasks: Sequence[str], curves: pd.DataFrame,
                 published: pd.DataFrame, aggregate: pd.DataFrame, reference: pd.DataFrame,
                 figures: Mapping[str, Path], missing: Sequence[Mapping[str, Any]], expected_given: bool,
                 needed: pd.DataFrame | None = None) -> Path:
    """README.md: the table, every figure (relative links) and a reading of each against the paper."""

    def fig(key: str, alt: str) -> str:
        path = figures.get(key)
        if path is None:
            return ""
        rel = path.relative_to(out).as_posix()
        pdf = path.with_suffix(".pdf")
        extra = f" ([PDF]({pdf.relative_to(out).as_posix()}))" if pdf.exists() else ""
        return f"![{alt}]({rel}){extra}\n"

    done = [r for r in runs if r.final is not None]
    lines = [f"# {title}", "", f"Generated by `planet report` from `{results}` (run files only; MLflow is a mirror).",
             ""]
    if not runs:
        lines += ["**No runs were found** under "
                  f"`{Path(results) / 'runs'}` (expected `runs/VARIANT/TASK/seedN/`). Only the published reference "
                  "rows are shown.", ""]
    else:
        n_seeds = len({r.seed for r in runs})
        lines += [f"{len(runs)} run directories ({len(done)} with a final return) over "
                  f"{len({r.variant for r in runs})} variants, {len({r.task for r in runs})} tasks, {n_seeds} seeds.",
                  ""]
        note = _tiny_note(runs)
        if note:
            lines += [note, ""]
        fallback = [r for r in done if r.final_source == "eval"]
        if fallback:
            lines += [f"{len(fallback)} runs have no held-out evaluation (evaluation.json); their final return is "
                      "the last in-training evaluation (summary.json).", ""]
    lines += ["## Table 1: final return", "",
              "Runs made here: mean ± sample standard deviation over seeds (ddof=1), number of seeds in brackets, of "
              "each seed's noise-free held-out test return; `episodes` = collected training episodes. Reference "
              "rows: published numbers with their budget (episodes = env steps / 1000). — = missing.", "",
              table_md, "", _table_paragraph(runs, stats, tasks, published), "",
              "Also as [CSV](table1.csv) (numeric, with `_std` and `_seeds` columns) and [LaTeX](table1.tex).", ""]
    lines += ["## Learning curves (paper Fig. 4)", "",
              "Eval return (noise-free, `eval/return_mean`) vs collected episodes; line = median over seeds, band = "
              "5-95 percentile over seeds; dashed: D4PG and A3C after 1e8 env steps (reference).", "",
              fig("curves", "learning curves, six tasks"), _curves_paragraph(curves, tasks, published), ""]
    for task in tasks:
        if f"curves_{task}" in figures:
            lines += [f"### {task}", "", fig(f"curves_{task}", f"learning curves {task} (episodes, env steps)")]
    lines += ["## Data efficiency", "",
              "Eval return vs environment steps on a log axis: PlaNet and the baselines trained here (median over "
              "seeds) beside published pixel agents at their budgets (hollow markers; sources in "
              "`planet/data/published_scores.csv`). The paper's claim is that PlaNet reaches with ~1e6 steps what "
              "D4PG reaches with 1e8; the model-free agents trained here show what the same budget buys without a "
              "model.", "", fig("data_efficiency", "data efficiency")]
    if needed is not None and not needed.empty:
        lines += ["### Episodes needed", "",
                  "Collected episodes after which the median-over-seeds evaluation curve first reaches a target "
                  "score, and how many times fewer episodes than the target's own (the paper: PlaNet approaches "
                  "D4PG's 1e8-step scores with 1000 episodes, 100x fewer). Also as "
                  "[episodes_needed.csv](episodes_needed.csv).", "", episodes_needed_markdown(needed), ""]
    lines += ["## Ablations", "", "### Model designs (paper Fig. 4)", "", fig("ablation_models", "model designs"),
              _rank_paragraph(stats, MODEL_DESIGNS, infos, tasks, "the RSSM (PlaNet) outperforms both the purely "
                              "deterministic GRU and the purely stochastic SSM; both parts of the state matter.",
                              "planet"), "",
              "### Agent designs (paper Fig. 5)", "", fig("ablation_agents", "agent designs"),
              _rank_paragraph(stats, AGENT_DESIGNS, infos, tasks, "PlaNet (CEM planning, data collected by the "
                              "agent) beats a model trained on random episodes only and random-shooting planning.",
                              "planet"), "",
              "### Latent overshooting (paper Fig. 8)", "", fig("ablation_overshooting", "latent overshooting"),
              _rank_paragraph(stats, OVERSHOOTING, infos, tasks, "latent overshooting helps the weaker SSM and "
                              "slightly hurts the RSSM.", "planet"), "",
              "### Activation functions (paper Fig. 9)", "",
              "ReLU (the default) vs ELU in the dense layers of the state model and the reward head, for the RSSM "
              "and the SSM; the conv encoder and decoder keep ReLU, as in the official code.", "",
              fig("ablation_activations", "activation functions"),
              _rank_paragraph(stats, ACTIVATIONS, infos, tasks, "Fig. 9 compares ReLU and ELU for the RSSM and the "
                              "SSM (appendix); the final agent uses ReLU, the official code's default.", "planet"), ""]
    strips = [k for k in figures if k.startswith("openloop_")]
    lines += ["## Open-loop predictions (paper Fig. 10)", ""]
    if strips:
        lines += ["Per task, first available seed: true frames (top) and the model's frames (bottom); 5 context "
                  "frames (left of the red line), then open-loop prediction from the true actions. The paper's RSSM "
                  "keeps the objects in place for many steps where the GRU and SSM blur or drift.", ""]
        for key in strips:
            variant = key.removeprefix("openloop_")
            label = infos[variant].label if variant in infos else variant
            lines += [f"### {label}", "", fig(key, f"open-loop predictions {label}")]
    else:
        lines += ["No open-loop strips (eval/openloop.png) were found.", ""]
    lines += ["## Aggregate over tasks", "",
              "Interquartile mean (IQM) of return/1000 pooled over tasks x seeds, 95% stratified bootstrap CI "
              f"(seeds resampled within each task, {N_BOOTSTRAP:,} resamples, seed {BOOTSTRAP_SEED}).", "",
              fig("aggregate", "aggregate IQM")]
    if not aggregate.empty:
        shown = aggregate.copy()
        for col in ("iqm", "ci_low", "ci_high"):
            shown[col] = [MISSING if _finite(v) is None else f"{v:.3f}" for v in shown[col]]
        lines += [shown.drop(columns="variant").to_markdown(index=False, disable_numparse=True), ""]
    lines += [_aggregate_paragraph(aggregate, reference), ""]
    later = _later_references(published, tasks)
    if later:
        lines += ["## Later published pixel agents (reference)", "",
                  "Scores after 100k / 500k env steps from later papers, for baselines trained here.", "", later, ""]
    lines += ["## Missing runs", ""]
    if not expected_given:
        lines += ["(No expected grid was given: expected = every variant found x every task found x every seed "
                  "found.)", ""]
    if missing:
        lines += [f"{len(missing)} expected runs have no final return:", ""]
        lines += [f"- {m['variant']} / {m['task']} / seed {m['seed']}: {m['status']}" for m in missing]
    else:
        lines += ["None."]
    lines += ["", "Files: [table1.csv](table1.csv), [table1.tex](table1.tex), [curves.csv](curves.csv) (DVC plots), "
              "[metrics.json](metrics.json) (DVC metrics), [aggregate.csv](aggregate.csv), "
              "[episodes_needed.csv](episodes_needed.csv).", ""]
    path = out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------------------------
# Entry points


def _json_clean(value: Any) -> Any:
    """NaN -> None recursively: strict JSON (DVC reads metrics.json)."""
    if isinstance(value, dict):
        return {k: _json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if value is pd.NA:
        return None
    return value


def build_report(results: Path, out: Path, variants: Mapping[str, Any] | None = None, baselines: Iterable[str] = (),
                 title: str = "PlaNet reproduction: results", expected: Mapping[str, Mapping] | None = None,
                 published: Path = PUBLISHED_SCORES) -> dict[str, Any]:
    """Write the report of RESULTS into OUT (see module docstring); returns {"files", "table", "missing",
    "aggregate", "runs"}.

    variants: {name: label or {"label", "baseline"}} (defaults: the paper's labels); baselines: variant names that
    are model-free baselines trained here; expected: {variant: {"tasks": [...], "seeds": [...]}} for the list of
    missing runs.
    """
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    figdir = out / "figures"
    figdir.mkdir(exist_ok=True)
    runs = collect_runs(results)
    pub = load_published(published)
    infos = variant_infos(variants, baselines, {r.variant for r in runs}, expected)
    expected_tasks = [t for cells in (expected or {}).values() for t in cells.get("tasks", ())]
    found_tasks = {r.task for r in runs} | set(expected_tasks)
    tasks = [*TASKS, *sorted(found_tasks - set(TASKS))]
    written: list[Path] = []

    finals = final_frame(runs)
    stats = summarise(finals)

    # Table 1.
    table, episode_text = build_table(runs, infos, stats, tasks, pub)
    n_runs = int((table["kind"] != "reference").sum())
    (out / "table1.csv").write_text(table.to_csv(index=False), encoding="utf-8")
    table_md = table_markdown(display_table(table, tasks, episode_text), n_runs)
    (out / "table1.md").write_text(table_md + "\n", encoding="utf-8")
    (out / "table1.tex").write_text(table_latex(display_table(table, tasks, episode_text, tex=True), n_runs),
                                    encoding="utf-8")
    written += [out / "table1.csv", out / "table1.md", out / "table1.tex"]

    # curves.csv and metrics.json (DVC plots and metrics).
    frames = [r.curve.assign(variant=r.variant, task=r.task, seed=r.seed) for r in runs if len(r.curve)]
    columns = ["variant", "task", "seed", "episodes", "env_steps", "return_mean", "return_std"]
    curves = pd.concat(frames, ignore_index=True)[columns] if frames else pd.DataFrame(columns=columns)
    curves.to_csv(out / "curves.csv", index=False)
    (out / "metrics.json").write_text(json.dumps(_json_clean(stats), indent=2, sort_keys=True) + "\n",
                                      encoding="utf-8")
    written += [out / "curves.csv", out / "metrics.json"]

    # Figures. Curves show the model designs (Fig. 4) and any baselines trained here.
    palette = _palette(infos)
    figures: dict[str, Path] = {}
    curve_variants = [v for v in infos if v in MODEL_DESIGNS or infos[v].baseline]
    plot_task_grid(curves, tasks, curve_variants, infos, palette, pub,
                   "Eval return vs collected episodes (median, 5-95 percentile band over seeds)", figdir / "curves",
                   written)
    figures["curves"] = figdir / "curves.png"
    for task in tasks:
        if task in found_tasks:
            plot_task_curves(curves, task, curve_variants, infos, palette, pub, figdir / f"curves_{task}", written)
            figures[f"curves_{task}"] = figdir / f"curves_{task}.png"
    efficiency_variants = [v for v in infos if v == "planet" or infos[v].baseline]
    plot_data_efficiency(curves, tasks, efficiency_variants, infos, palette, pub, figdir / "data_efficiency", written)
    figures["data_efficiency"] = figdir / "data_efficiency.png"
    needed = episodes_needed(curves, stats, tasks, efficiency_variants, infos, pub)
    needed.to_csv(out / "episodes_needed.csv", index=False)
    written.append(out / "episodes_needed.csv")
    for key, members, name in (("ablation_models", MODEL_DESIGNS, "Model designs (paper Fig. 4)"),
                               ("ablation_agents", AGENT_DESIGNS, "Agent designs (paper Fig. 5)"),
                               ("ablation_overshooting", OVERSHOOTING, "Latent overshooting (paper Fig. 8)"),
                               ("ablation_activations", ACTIVATIONS, "Activation functions (paper Fig. 9)")):
        plot_task_grid(curves, tasks, list(members), infos, palette, pub, name, figdir / key, written)
        figures[key] = figdir / f"{key}.png"
    for variant in OPENLOOP:
        items = []
        for task in tasks:
            first = next((r for r in runs if r.variant == variant and r.task == task and r.openloop), None)
            if first is not None:
                items.append((f"{task} (seed {first.seed})", first.openloop))
        path = figdir / f"openloop_{variant}.png"
        if items and compose_openloop(items, path):
            written.append(path)
            figures[f"openloop_{variant}"] = path

    aggregate = aggregate_scores(finals, infos)
    reference = reference_aggregate(pub, TASKS)
    aggregate.to_csv(out / "aggregate.csv", index=False)
    written.append(out / "aggregate.csv")
    plot_aggregate(aggregate, reference, palette, figdir / "aggregate", written)
    figures["aggregate"] = figdir / "aggregate.png"

    missing = missing_runs(runs, expected)
    readme = write_readme(out, title, results, runs, table_md, stats, infos, tasks, curves, pub, aggregate,
                          reference, figures, missing, expected is not None, needed)
    written.append(readme)
    progress = progress_table(runs)
    if len(progress):
        progress.to_csv(out / "progress.csv", index=False)
        written.append(out / "progress.csv")
        shown = progress.astype(object).where(progress.notna(), MISSING)
        with open(readme, "a", encoding="utf-8") as fh:
            fh.write("\n## Runs still training (partial record)\n\n"
                     "Where each unfinished run is (`episodes` from its last checkpoint; hours of wall clock since "
                     "its first episode, pauses and restarts included), and its latest in-training evaluation "
                     "(noise-free, `eval` split; not a final result, and not used in Table 1, the statistics or the "
                     "aggregate). Also as "
                     "[CSV](progress.csv).\n\n" + shown.to_markdown(index=False) + "\n")
    return {"files": [str(p) for p in written], "table": _json_clean(table.to_dict(orient="records")),
            "missing": missing, "aggregate": _json_clean(aggregate.to_dict(orient="records")), "runs": len(runs)}


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
    targets: list[tuple[str, str, float, float, str | None]] = []  # (task, name, return, episodes, variant)
    refs = paper_rows(published)
    for task in tasks:
        for method in ("D4PG", "A3C"):
            row = refs[refs["method"] == method]
            if len(row) and task in row.columns and _finite(row[task].iloc[0]) is not None:
                targets.append((task, f"{method} (published)", float(row[task].iloc[0]),
                                float(row["budget_env_steps"].iloc[0]) / episode_env_steps, None))
        for variant in variants:
            cell = stats.get(variant, {}).get(task)
            if infos[variant].baseline and cell:
                done = curves[(curves["variant"] == variant) & (curves["task"] == task)]["episodes"]
                if len(done):
                    targets.append((task, f"{infos[variant].label} (here)", float(cell["mean"]), float(done.max()),
                                    variant))
    rows = []
    for task, name, value, target_episodes, source in targets:
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


def episodes_needed_markdown(needed: pd.DataFrame) -> str:
    """One line per (task, target): episodes each variant needed, or 'not reached (best B)'."""
    if needed.empty:
        return ""
    labels = list(dict.fromkeys(needed["label"]))
    lines = []
    for (task, target), group in needed.groupby(["task", "target"], sort=False):
        first = group.iloc[0]
        row = {"task": task, "target": f"{target}: {first['target_return']:.0f} after "
                                       f"{first['target_episodes']:,.0f} episodes"}
        for _, r in group.iterrows():
            row[r["label"]] = (f"not reached (best {r['best']:.0f})" if _finite(r["episodes"]) is None
                               else f"{r['episodes']:,.0f} ({r['ratio']:,.0f}x fewer)" if r["ratio"] >= 1
                               else f"{r['episodes']:,.0f} ({1 / r['ratio']:,.1f}x more)")
        lines.append(row)
    frame = pd.DataFrame(lines, columns=["task", "target", *labels]).fillna(MISSING)
    return frame.to_markdown(index=False, disable_numparse=True)


def _load_json_arg(value: str | None) -> Any:
    """A JSON argument given inline ('{...}') or as a file path."""
    if value is None:
        return None
    text = value if value.lstrip().startswith(("{", "[")) else Path(value).read_text(encoding="utf-8")
    return json.loads(text)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="planet report", description="Table 1, learning curves, ablation figures, "
                                "open-loop strips and an IQM aggregate from a results directory's run files.")
    p.add_argument("--results", type=Path, required=True, help="results root holding runs/VARIANT/TASK/seedN/")
    p.add_argument("--out", type=Path, required=True, help="report directory (created)")
    p.add_argument("--variants-json", help="JSON (inline or file): {variant: label or {label, baseline}}")
    p.add_argument("--expected-json", help="JSON (inline or file): {variant: {tasks: [...], seeds: [...]}}")
    p.add_argument("--grid-json", help="JSON (inline or file) of the pipeline: {preset, tasks, seeds, variants: "
                   "{name: {label, family}}}; sets variants, expected and title unless given")
    p.add_argument("--pipeline-preset", metavar="NAME",
                   help="take the grid from this preset of params/pipeline.yaml (as the pipeline's report rule "
                        "passes it), e.g. for a partial report of a campaign that is still running")
    p.add_argument("--baseline", action="append", default=[], metavar="VARIANT",
                   help="variant that is a model-free baseline trained here (repeatable)")
    p.add_argument("--title", help="report title")
    p.add_argument("--published", type=Path, default=PUBLISHED_SCORES, help="published scores CSV")
    p.add_argument("--mlflow-experiment", metavar="NAME",
                   help="also log the report's files as artifacts of a run in this MLflow experiment (its JSON "
                        "bookkeeping goes to RESULTS/report_run/)")
    return p


def grid_from_pipeline(preset: str) -> dict:
    """The grid the report rule passes (workflow/rules/report.smk), read from params/pipeline.yaml."""
    import yaml  # noqa: PLC0415

    from planet.config import ConfigError, params_dir  # noqa: PLC0415

    path = params_dir() / "pipeline.yaml"
    pipeline = yaml.safe_load(path.read_text())
    if preset not in pipeline["presets"]:
        raise ConfigError(f"{path}: no pipeline preset '{preset}'; valid: {', '.join(pipeline['presets'])}")
    P = pipeline["presets"][preset]
    tasks, seeds = list(P["tasks"]), [int(s) for s in P["seeds"]]
    ablation_tasks = list(P.get("ablation_tasks", tasks))
    variants = {v: pipeline["variants"][v] for v in P["variants"]}
    baselines = {b: {**pipeline["baselines"][b], "family": "baselines"} for b in P.get("baselines", [])}
    expected = {v: {"tasks": tasks if variants[v]["family"] == "agents" else ablation_tasks, "seeds": seeds}
                for v in variants}
    expected |= {b: {"tasks": list(P.get("baseline_tasks", tasks)),
                     "seeds": [int(s) for s in P.get("baseline_seeds", {}).get(b, seeds)]} for b in baselines}
    return {"preset": preset, "agent_preset": P["agent_preset"], "tasks": tasks, "seeds": seeds,
            "variants": variants | baselines, "expected": expected}


def progress_table(runs: Sequence[Run]) -> pd.DataFrame:
    """Runs still training (a long campaign's partial record): where each is, and its latest in-training
    evaluation. These numbers are never mixed into Table 1, the curves' statistics or the aggregate."""
    rows = []
    for r in runs:
        if r.complete:
            continue
        last = r.curve.iloc[-1] if len(r.curve) else None
        progress = _read_json(r.path / "progress.json") or {}
        times = _metric_times(r.path / "metrics.jsonl")
        rows.append({"variant": r.variant, "task": r.task, "seed": r.seed,
                     "episodes": _int(progress.get("episodes")) or r.episodes, "planned_episodes": r.planned_episodes,
                     "hours_since_first_episode": None if times is None else round((times[1] - times[0]) / 3600, 2),
                     "latest_eval_episode": None if last is None else _int(last.get("episodes")),
                     "latest_eval_return": None if last is None else _finite(last.get("return_mean"))})
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


def _git_commit() -> dict[str, str]:
    from planet.train import _git_tags  # noqa: PLC0415

    return _git_tags()


def log_report(out: Path, results: Path, experiment: str, tags: dict[str, str]) -> None:
    """Log every file of the report as artifacts of one MLflow run (run files under RESULTS/report_run/)."""
    from planet.tracking import Tracker  # noqa: PLC0415

    name = f"report-{tags.get('pipeline_preset', '')}"
    with Tracker(Path(results) / "report_run", experiment=experiment, run_name=name,
                 params={"results": str(results), "out": str(out)}, tags=tags) as tracker:
        tracker.log_artifact(Path(out), "report")


def main(argv: Sequence[str] | None = None) -> int:
    """`planet report` / `python -m planet.report`."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")  # headless, whatever the environment asks for
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    grid = grid_from_pipeline(args.pipeline_preset) if args.pipeline_preset else _load_json_arg(args.grid_json) or {}
    variants = _load_json_arg(args.variants_json) or grid.get("variants")
    expected = _load_json_arg(args.expected_json) or grid.get("expected")
    if expected is None and grid.get("tasks") and grid.get("variants"):
        expected = {v: {"tasks": list(grid["tasks"]), "seeds": list(grid.get("seeds", []))} for v in grid["variants"]}
    title = args.title or (f"PlaNet reproduction: preset {grid['preset']}" if grid.get("preset")
                           else "PlaNet reproduction: results")
    result = build_report(args.results, args.out, variants=variants, baselines=args.baseline, title=title,
                          expected=expected, published=args.published)
    if args.mlflow_experiment:
        tags = {"kind": "report", **({"pipeline_preset": str(grid["preset"])} if grid.get("preset") else {}),
                **({"agent_preset": str(grid["agent_preset"])} if grid.get("agent_preset") else {}), **_git_commit()}
        log_report(args.out, args.results, args.mlflow_experiment, tags)
    print(json.dumps({"out": str(args.out), "runs": result["runs"], "files": len(result["files"]),
                      "missing": len(result["missing"])}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
