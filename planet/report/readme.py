"""The report's README.md: Table 1, every figure, a reading of each against the paper, missing runs, and the runs
still training.

The sections follow the figures of params/pipeline.yaml by kind (learning curves, data efficiency, the ablations,
open-loop strips, state diagnostics, the CEM grid with the true simulator), each under its heading; an ablation is
read against the paper's claim its figure entry quotes.
The numbers come from planet/report/stats.py; nothing here computes a statistic of its own beyond picking values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from planet.cem_grid import AXIS_LABELS, missing_points
from planet.report.grid import FigureSpec, VariantInfo
from planet.report.published import TASKS, later_rows, paper_value
from planet.report.runs import Run, diagnostics_frame, finite
from planet.report.stats import BOOTSTRAP_SEED, N_BOOTSTRAP, diagnostics_summary
from planet.report.tables import MISSING, episodes_needed_markdown, fmt_cell, fmt_num

# Uniform random policy, 10 episodes at the paper's action repeats (measured for this project, reference notes §2).
RANDOM_RETURNS = {"cartpole_swingup": 120, "reacher_easy": 64, "cheetah_run": 13, "finger_spin": 3, "cup_catch": 6,
                  "walker_walk": 40}
TINY_EPISODES = 50  # below this many training episodes no learning is expected (the paper trains 1000)
AGENT = "planet"  # the paper's agent: the variant compared with the paper's PlaNet row and leading each ablation


@dataclass
class ReadmeInputs:
    """Everything the README shows (computed by planet/report/build.py)."""

    out: Path
    title: str
    results: Path
    runs: Sequence[Run]
    table_md: str
    stats: Mapping[str, Mapping[str, Any]]
    infos: Mapping[str, VariantInfo]
    tasks: Sequence[str]
    curves: pd.DataFrame
    published: pd.DataFrame
    aggregate: pd.DataFrame
    reference: pd.DataFrame
    specs: Mapping[str, FigureSpec]
    figures: Mapping[str, Path]  # {file stem: png} of the figures written
    missing: Sequence[Mapping[str, Any]]
    expected_given: bool
    needed: pd.DataFrame | None = None
    cem: pd.DataFrame | None = None  # the CEM grid's results (planet/cem_grid.py `results_frame`), if it has one

    def fig(self, key: str, alt: str) -> str:
        """A Markdown image of a written figure (relative link, with its PDF), or "" when it was not written."""
        path = self.figures.get(key)
        if path is None:
            return ""
        rel = path.relative_to(self.out).as_posix()
        pdf = path.with_suffix(".pdf")
        extra = f" ([PDF]({pdf.relative_to(self.out).as_posix()}))" if pdf.exists() else ""
        return f"![{alt}]({rel}){extra}\n"

    def of_kind(self, kind: str) -> list[FigureSpec]:
        return [s for s in self.specs.values() if s.kind == kind]


# ----------------------------------------------------------------------------------------------------------------
# Paragraphs: the numbers read against the paper


def _stats_text(cell: Mapping[str, Any] | None) -> str:
    return MISSING if not cell else fmt_cell(cell).replace(" (", " (seeds: ", 1)


def tiny_note(runs: Sequence[Run]) -> str | None:
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


def _task_sentence(runs: Sequence[Run], cell: Mapping[str, Any], task: str, published: pd.DataFrame) -> str:
    """PlaNet's final return on one task beside the paper's, and beside a random policy on full-length episodes."""
    episodes = max([r.episodes or 0 for r in runs if r.variant == AGENT and r.task == task], default=0)
    paper, d4pg = paper_value(published, "PlaNet", task), paper_value(published, "D4PG", task)
    text = (f"On {task} this pipeline's PlaNet reaches {_stats_text(cell)} after {episodes:,} "
            f"episodes vs the paper's {fmt_num(paper)} after 1,000 (D4PG {fmt_num(d4pg)} after 100,000)")
    lengths = {r.episode_env_steps for r in runs if r.variant == AGENT and r.task == task}
    if task in RANDOM_RETURNS and lengths and lengths <= {1000}:
        above = cell["mean"] > RANDOM_RETURNS[task]
        text += (f"; a random policy scores about {RANDOM_RETURNS[task]}, so this is "
                 f"{'above' if above else 'not above'} random")
    return text + "."


def table_paragraph(runs: Sequence[Run], stats: Mapping, tasks: Sequence[str], published: pd.DataFrame) -> str:
    """PlaNet's Table 1 row against the paper's, task by task."""
    planet = stats.get(AGENT, {})
    parts = [_task_sentence(runs, planet[task], task, published) for task in tasks if task in planet]
    if not parts:
        return ("No PlaNet (`planet`) run has a final return yet, so nothing can be compared with the paper's "
                "PlaNet row.")
    missing = [t for t in tasks if t not in planet]
    if missing:
        parts.append(f"No PlaNet result for {', '.join(missing)}.")
    return " ".join(parts)


def rank_paragraph(stats: Mapping, variants: Sequence[str], infos: Mapping[str, VariantInfo],
                   tasks: Sequence[str], claim: str | None, leader: str = AGENT) -> str:
    """Per task, the variants' final means, and how often `leader` is best where all variants ran."""
    paper = f"Paper: {claim} " if claim else ""
    present = [v for v in variants if v in stats]
    if len(present) < 2:
        return f"{paper}Here: fewer than two of these variants have results, so there is nothing to compare."
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
    text = f"{paper}Here (final return, mean over seeds, best first): " + "; ".join(lines) + "."
    if complete and leader in infos:
        text += f" {infos[leader].label} is best on {wins} of the {complete} tasks where all of these variants ran."
    return text


def diagnostics_markdown(summary: pd.DataFrame, tasks: Sequence[str], variants: Sequence[str],
                         infos: Mapping[str, VariantInfo]) -> str:
    """One row per (task, variant), one column per distance: mean over state groups of the median R^2 over seeds
    (planet/report/stats.py `diagnostics_summary`)."""
    distances = sorted(set(summary["distance"]))
    rows = []
    for task in [t for t in tasks if t in set(summary["task"])]:
        for variant in [v for v in variants if v in set(summary.loc[summary["task"] == task, "variant"])]:
            cells = summary[(summary["task"] == task) & (summary["variant"] == variant)].set_index("distance")["r2"]
            rows.append({"task": task, "variant": infos[variant].label,
                         **{("posterior" if d == 0 else f"d={d}"): f"{cells[d]:.2f}" if d in cells.index else MISSING
                            for d in distances}})
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def diagnostics_paragraph(summary: pd.DataFrame, tasks: Sequence[str], infos: Mapping[str, VariantInfo]) -> str:
    """Per task, which variant's features hold the state best from the posterior and at the farthest distance."""
    parts = []
    for task in [t for t in tasks if t in set(summary["task"])]:
        rows = summary[summary["task"] == task]
        best = []
        for d in sorted({0, int(rows["distance"].max())} & set(rows["distance"])):
            at = rows[rows["distance"] == d]
            top = at.loc[at["r2"].idxmax()]
            where = "from the posterior" if d == 0 else f"{d} steps open loop"
            best.append(f"{where}, {infos[top.variant].label} ({top.r2:.2f} of {len(at)} variants)")
        parts.append(f"{task}: best " + "; ".join(best))
    return ("R² of 1 is a perfect readout, 0 no better than the held-out mean (below -1: drawn at -1). Here (mean "
            "over state groups of the median over seeds): " + ". ".join(parts) + ".")


def _cem_cell(row: Any) -> str:
    """A grid point's return: "mean ± std (episodes)", or "—" when its run has not finished."""
    if not row.episodes:
        return MISSING
    return f"{row.return_mean:.0f} ± {row.return_std:.0f} ({row.episodes})"


def cem_grid_paragraph(cem: pd.DataFrame, published: pd.DataFrame) -> str:
    """The default planner's return, the best value of each hyperparameter, and the paper's Table 1 row."""
    if cem.empty:
        return "The CEM grid has no points."
    task = cem["task"].iloc[0]
    default = cem[cem["default"]].iloc[0]
    paper = paper_value(published, "CEM + true simulator", task)
    text = (f"On {task}, the default planner ({default.point}) scores {_cem_cell(default)} over the test "
            f"episodes (the paper's Table 1, CEM + true simulator: {fmt_num(paper)}).")
    best = []
    for axis, rows in cem.groupby("axis", sort=False):
        done = rows[rows["episodes"] > 0]
        if len(done) >= 2:
            top = done.loc[done["return_mean"].idxmax()]
            best.append(f"{AXIS_LABELS.get(axis, axis)} {top.value:g} ({top.return_mean:.0f}"
                        f"{', the default' if top.default else ''})")
    if best:
        text += " Best value of each hyperparameter (mean return): " + "; ".join(best) + "."
    else:
        text += " No hyperparameter has two finished points yet, so nothing is compared."
    missing = missing_points(cem)
    if missing:
        text += f" Not finished: {', '.join(missing)}."
    return text


def cem_grid_markdown(cem: pd.DataFrame) -> str:
    """The grid's numbers: one row per (hyperparameter, value), the default marked."""
    rows = [{"hyperparameter": AXIS_LABELS.get(r.axis, r.axis),
             "value": f"{r.value:g}" + (" (default)" if r.default else ""),
             "planner": r.point, "return (test: mean ± std (episodes))": _cem_cell(r)} for r in cem.itertuples()]
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def curves_paragraph(curves: pd.DataFrame, tasks: Sequence[str], published: pd.DataFrame) -> str:
    """PlaNet's last in-training evaluation per task beside the paper's final score."""
    parts = []
    for task in tasks:
        mine = curves[(curves["variant"] == AGENT) & (curves["task"] == task)]
        if mine.empty:
            continue
        last = int(mine["episodes"].max())
        median = float(mine.loc[mine["episodes"] == last, "return_mean"].median())
        paper = fmt_num(paper_value(published, "PlaNet", task))
        parts.append(f"{task}: {median:.0f} at {last:,} episodes (paper {paper} at 1,000)")
    if not parts:
        return "No PlaNet learning curve yet."
    return ("Last evaluation of PlaNet during training (median over seeds): " + "; ".join(parts) + ". The paper's "
            "curves (Fig. 4) rise within the first 100-500 episodes and end near D4PG's 1e8-step score on most tasks.")


def aggregate_paragraph(aggregate: pd.DataFrame, reference: pd.DataFrame) -> str:
    """Each variant's IQM and interval, beside the paper's rows."""
    if aggregate.empty:
        return "No final returns, so no aggregate."
    parts = []
    for row in aggregate.itertuples():
        ci = ("no interval (one seed per task)" if finite(row.ci_low) is None
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
    rows = later_rows(published)
    if rows.empty:
        return ""
    frame = rows[["method", "budget_env_steps", *[t for t in tasks if t in rows.columns], "source"]].copy()
    frame["budget_env_steps"] = [f"{int(v):,}" for v in frame["budget_env_steps"]]
    for task in tasks:
        if task in frame.columns:
            frame[task] = [fmt_num(v) for v in frame[task]]
    return frame.to_markdown(index=False, disable_numparse=True)


# ----------------------------------------------------------------------------------------------------------------
# Sections


def _intro(r: ReadmeInputs) -> list[str]:
    done = [run for run in r.runs if run.final is not None]
    lines = [f"# {r.title}", "",
             f"Generated by `planet report` from `{r.results}` (run files only; MLflow is a mirror).", ""]
    if not r.runs:
        return lines + ["**No runs were found** under "
                        f"`{Path(r.results) / 'runs'}` (expected `runs/VARIANT/TASK/seedN/`). Only the published "
                        "reference rows are shown.", ""]
    n_seeds = len({run.seed for run in r.runs})
    lines += [f"{len(r.runs)} run directories ({len(done)} with a final return) over "
              f"{len({run.variant for run in r.runs})} variants, {len({run.task for run in r.runs})} tasks, "
              f"{n_seeds} seeds.", ""]
    note = tiny_note(r.runs)
    if note:
        lines += [note, ""]
    fallback = [run for run in done if run.final_source == "eval"]
    if fallback:
        lines += [f"{len(fallback)} runs have no held-out evaluation (evaluation.json); their final return is "
                  "the last in-training evaluation (summary.json).", ""]
    return lines


def _table1(r: ReadmeInputs) -> list[str]:
    return ["## Table 1: final return", "",
            "Runs made here: mean ± sample standard deviation over seeds (ddof=1), number of seeds in brackets, of "
            "each seed's noise-free held-out test return; `episodes` = collected training episodes. Reference "
            "rows: published numbers with their budget (episodes = env steps / 1000). — = missing.", "",
            r.table_md, "", table_paragraph(r.runs, r.stats, r.tasks, r.published), "",
            "Also as [CSV](table1.csv) (numeric, with `_std` and `_seeds` columns) and [LaTeX](table1.tex).", ""]


def _learning_curves(r: ReadmeInputs, spec: FigureSpec) -> list[str]:
    lines = [f"## {spec.heading}", "",
             "Eval return (noise-free, `eval/return_mean`) vs collected episodes; line = median over seeds, band = "
             "5-95 percentile over seeds; hollow stars: PlaNet's published returns after 100k and 500k env steps "
             "(CURL, Laskin et al. 2020, Table 1) where the curves reach those budgets; dashed: D4PG and A3C after "
             "1e8 env steps (paper Table 1), drawn only on curves at the paper's scale (1000 episodes).", "",
             r.fig(spec.file, f"{spec.title.lower()}, six tasks"), curves_paragraph(r.curves, r.tasks, r.published),
             ""]
    for task in r.tasks:
        if f"{spec.file}_{task}" in r.figures:
            lines += [f"### {task}", "",
                      r.fig(f"{spec.file}_{task}", f"{spec.title.lower()} {task} (episodes, env steps)")]
    return lines


def _data_efficiency(r: ReadmeInputs, spec: FigureSpec) -> list[str]:
    lines = [f"## {spec.heading}", "",
             "Eval return vs environment steps on a log axis: PlaNet and the baselines trained here (median over "
             "seeds) beside published pixel agents at their budgets (hollow markers; sources in "
             "`planet/data/published_scores.csv`). The paper's claim is that PlaNet reaches with ~1e6 steps what "
             "D4PG reaches with 1e8; the model-free agents trained here show what the same budget buys without a "
             "model.", "", r.fig(spec.file, spec.title.lower())]
    if r.needed is not None and not r.needed.empty:
        lines += ["### Episodes needed", "",
                  "Collected episodes after which the median-over-seeds evaluation curve first reaches a target "
                  "score, and how many times fewer episodes than the target's own (the paper: PlaNet approaches "
                  "D4PG's 1e8-step scores with 1000 episodes, 100x fewer). Also as "
                  "[episodes_needed.csv](episodes_needed.csv).", "", episodes_needed_markdown(r.needed), ""]
    return lines


def _ablation(r: ReadmeInputs, spec: FigureSpec) -> list[str]:
    lines = [f"### {spec.heading}", ""]
    if spec.note:
        lines += [spec.note, ""]
    return lines + [r.fig(spec.file, spec.title.lower()),
                    rank_paragraph(r.stats, spec.members(r.infos), r.infos, r.tasks, spec.claim), ""]


def _openloop(r: ReadmeInputs, spec: FigureSpec) -> list[str]:
    strips = [v for v in spec.members(r.infos) if f"{spec.file}_{v}" in r.figures]
    lines = [f"## {spec.heading}", ""]
    if not strips:
        return lines + ["No open-loop strips (eval/openloop.png) were found.", ""]
    lines += ["Per task, first available seed: true frames (top) and the model's frames (bottom); 5 context "
              "frames (left of the red line), then open-loop prediction from the true actions. The paper's RSSM "
              "keeps the objects in place for many steps where the GRU and SSM blur or drift.", ""]
    for variant in strips:
        label = r.infos[variant].label
        lines += [f"### {label}", "", r.fig(f"{spec.file}_{variant}", f"open-loop predictions {label}")]
    return lines


def _state_diagnostics(r: ReadmeInputs, spec: FigureSpec) -> list[str]:
    lines = [f"## {spec.heading}", ""]
    members = spec.members(r.infos)
    frame = diagnostics_frame(r.runs)
    summary = diagnostics_summary(frame[frame["variant"].isin(members)])
    if spec.file not in r.figures or summary.empty:
        return lines + ["No run of this figure's variants was diagnosed (`planet diagnose`; the pipeline runs it for "
                        "the presets with a `diagnostics:` block in params/pipeline.yaml).", ""]
    if spec.note:
        lines += [spec.note, ""]
    return lines + [r.fig(spec.file, spec.title.lower()), diagnostics_paragraph(summary, r.tasks, r.infos), "",
                    diagnostics_markdown(summary, r.tasks, members, r.infos), "",
                    f"Per state group and seed: [figures/{spec.file}.csv](figures/{spec.file}.csv); per run: "
                    "`diagnostics.json` in its run directory (training R², sample counts, settings).", ""]


def _cem_grid(r: ReadmeInputs, spec: FigureSpec) -> list[str]:
    lines = [f"## {spec.heading}", ""]
    if r.cem is None:
        return lines + ["This preset has no CEM grid (`cem_grid:` of its entry in params/pipeline.yaml).", ""]
    if spec.note:
        lines += [spec.note, ""]
    return lines + [r.fig(spec.file, spec.title.lower()), cem_grid_paragraph(r.cem, r.published), "",
                    cem_grid_markdown(r.cem), "", "Also as [cem_grid.csv](cem_grid.csv).", ""]


def _figures(r: ReadmeInputs) -> list[str]:
    """The figures' sections in a fixed order of kinds; within a kind, in the order of params/pipeline.yaml."""
    lines = []
    for spec in r.of_kind("learning_curves"):
        lines += _learning_curves(r, spec)
    for spec in r.of_kind("data_efficiency"):
        lines += _data_efficiency(r, spec)
    if r.of_kind("task_grid"):
        lines += ["## Ablations", ""]
        for spec in r.of_kind("task_grid"):
            lines += _ablation(r, spec)
    for spec in r.of_kind("openloop"):
        lines += _openloop(r, spec)
    for spec in r.of_kind("state_diagnostics"):
        lines += _state_diagnostics(r, spec)
    for spec in r.of_kind("cem_grid"):
        lines += _cem_grid(r, spec)
    return lines


def _aggregate(r: ReadmeInputs) -> list[str]:
    lines = ["## Aggregate over tasks", "",
             "Interquartile mean (IQM) of return/1000 pooled over tasks x seeds, 95% stratified bootstrap CI "
             f"(seeds resampled within each task, {N_BOOTSTRAP:,} resamples, seed {BOOTSTRAP_SEED}).", "",
             r.fig("aggregate", "aggregate IQM")]
    if not r.aggregate.empty:
        shown = r.aggregate.copy()
        for col in ("iqm", "ci_low", "ci_high"):
            shown[col] = [MISSING if finite(v) is None else f"{v:.3f}" for v in shown[col]]
        lines += [shown.drop(columns="variant").to_markdown(index=False, disable_numparse=True), ""]
    lines += [aggregate_paragraph(r.aggregate, r.reference), ""]
    lines += ["Performance profile (Agarwal et al. 2021): the fraction of runs whose return/1000 exceeds each "
              "threshold, tasks weighted equally; the band is a 95% stratified bootstrap (numbers: "
              "[performance_profile.csv](performance_profile.csv)). A curve above another at every threshold "
              "dominates it.", "", r.fig("performance_profile", "performance profile")]
    later = _later_references(r.published, r.tasks)
    if later:
        lines += ["## Later published pixel agents (reference)", "",
                  "Scores after 100k / 500k env steps from later papers, for baselines trained here.", "", later, ""]
    return lines


def _missing(r: ReadmeInputs) -> list[str]:
    lines = ["## Missing runs", ""]
    if not r.expected_given:
        lines += ["(No expected grid was given: expected = every variant found x every task found x every seed "
                  "found.)", ""]
    if r.missing:
        lines += [f"{len(r.missing)} expected runs have no final return:", ""]
        lines += [f"- {m['variant']} / {m['task']} / seed {m['seed']}: {m['status']}" for m in r.missing]
    else:
        lines += ["None."]
    return lines + ["", "Files: [table1.csv](table1.csv), [table1.tex](table1.tex), [curves.csv](curves.csv) "
                    "(DVC plots), [metrics/](metrics) (DVC metrics, one file per task), "
                    "[aggregate.csv](aggregate.csv), "
                    "[episodes_needed.csv](episodes_needed.csv).", ""]


def write_readme(r: ReadmeInputs) -> Path:
    """OUT/README.md: the table, every figure (relative links) and a reading of each against the paper."""
    lines = [*_intro(r), *_table1(r), *_figures(r), *_aggregate(r), *_missing(r)]
    path = r.out / "README.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _append_section(readme: Path, title: str, text: str, frame: pd.DataFrame, csv_name: str | None) -> None:
    """Append `## title`, `text`, a link to the frame's CSV (if it has one) and the frame as a Markdown table to the
    README."""
    shown = frame.astype(object).where(frame.notna(), MISSING)
    link = f" Also as [CSV]({csv_name})." if csv_name else ""
    with open(readme, "a", encoding="utf-8") as fh:
        fh.write(f"\n## {title}\n\n{text}{link}\n\n" + shown.to_markdown(index=False) + "\n")


def append_progress(readme: Path, progress: pd.DataFrame) -> None:
    """The README's section on runs still training (planet/report/runs.py `progress_table`)."""
    _append_section(readme, "Runs still training (partial record)",
                    "Where each unfinished run is (`episodes` from its last checkpoint; hours of wall clock since its "
                    "first episode, pauses and restarts included), and its latest in-training evaluation "
                    "(noise-free, `eval` split; not a final result, and not used in Table 1, the statistics or the "
                    "aggregate).", progress, "progress.csv")


def append_records(readme: Path, kept: pd.DataFrame) -> None:
    """The README's list of the runs shown from the report's record (planet/report/record.py)."""
    _append_section(readme, "Runs shown from the record",
                    "These runs' directories are not in the results directory (a run of a long campaign lives only "
                    "on the machine that ran it); their numbers, curves, costs, GIFs and open-loop strips come from "
                    "the record the report wrote when they finished (`record/VARIANT/TASK/seedN/`, committed with "
                    "the report; `source` says where each record's numbers were taken from).", kept, None)


def append_task_hours(readme: Path, hours: pd.DataFrame, label: str) -> None:
    """The README's section on each task's hours, projected and measured (planet/report/costs.py `task_hours`)."""
    _append_section(readme, f"Compute: hours per task ({label})",
                    "`projected_hours`: what the task's planned run and its held-out evaluation take, projected "
                    "from the other tasks' runs (`projected_from`; median over them) before it ran: the updates of a "
                    "training episode cost the same on every task, collection and evaluation scale with the agent "
                    "steps of an episode (1000 / action repeat). `measured_hours`: the finished run's wall clock, "
                    "first to last metrics line, plus its held-out evaluation (pauses included); "
                    "`estimated_hours`: the same run undisturbed, at its lower-quartile episode and evaluation "
                    "times (seed episodes excluded).", hours, "task_hours.csv")


def append_compute(readme: Path, compute: pd.DataFrame) -> None:
    """The README's section on what each run cost (planet/report/costs.py `compute_table`)."""
    _append_section(readme, "Compute: wall clock per run",
                    "From each run's own `perf/*` metrics: seconds per training episode (its updates plus collecting "
                    "one episode) and per evaluation, median and lower quartile (`_q25`; every training episode does "
                    "the same work, so where the machine was shared part of the time the lower quartile is close to "
                    "an undisturbed episode); `busy_hours` sums them (slowdowns included), `wall_hours` runs from "
                    "the first to the last metrics line (pauses and restarts included), and `estimated_hours` is the "
                    "run's planned episodes and evaluations at the lower quartiles: about what it costs on the same "
                    "machine undisturbed; `update_s_q25` and `collect_s_q25` split a training episode into its "
                    "updates and its collection (`agent_steps` plans and frames); `test_eval_s` is the held-out "
                    "evaluation of `test_episodes` (the pipeline's benchmark of the evaluate job); `commits` is the "
                    "code it ran on (more than one: it was resumed on newer code), `settings` the precision of its "
                    "update and plan (what `auto` chose), compilation, shadow map and evaluation schedule. The random "
                    "seed episodes are not timed.", compute, "compute.csv")
