"""The report, end to end: runs in, every table, figure and the README out (`build_report`)."""

from __future__ import annotations

import math
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from planet.cem_grid import CemGrid, results_frame
from planet.report.costs import COMPUTE_COLUMNS, compute_table, task_hours
from planet.report.figures import FigureInputs, draw_figures, plot_aggregate, plot_performance_profile
from planet.report.grid import FigureSpec, VariantInfo, pipeline_figures, variant_infos
from planet.report.published import PUBLISHED_SCORES, TASKS, load_published
from planet.report.readme import (
    ReadmeInputs,
    append_compute,
    append_progress,
    append_records,
    append_task_hours,
    write_readme,
)
from planet.report.record import RECORD_DIR, RECORD_FILE, kept_records_frame, merge_records, read_records, write_records
from planet.report.runs import Run, collect_runs, curves_frame, missing_runs, progress_table
from planet.report.stats import aggregate_scores, episodes_needed, final_frame, reference_aggregate, summarise
from planet.report.tables import write_table1
from planet.report.videos import videos_section, write_agent_videos
from planet.utils import atomic_write_json


def write_metrics(directory: Path, stats: Mapping[str, Mapping[str, Any]]) -> list[Path]:
    """The DVC metrics: one file per task, ``metrics/TASK.json`` = {variant: {mean, std, seeds}}, so that
    `dvc metrics show` prints a table (a row per task, columns per variant) instead of one row of every number.
    Files of tasks no longer in the results are removed."""
    directory.mkdir(parents=True, exist_ok=True)
    by_task: dict[str, dict[str, Any]] = {}
    for variant, tasks in stats.items():
        for task, cell in tasks.items():
            by_task.setdefault(task, {})[variant] = cell
    written = []
    for task, cells in sorted(by_task.items()):
        path = directory / f"{task}.json"
        atomic_write_json(path, json_clean(cells))
        written.append(path)
    for stale in set(directory.glob("*.json")) - set(written):
        stale.unlink()
    return written


def json_clean(value: Any) -> Any:
    """NaN -> None recursively: strict JSON (DVC reads the metrics files)."""
    if isinstance(value, dict):
        return {k: json_clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if value is pd.NA:
        return None
    return value


def _report_tasks(runs: Sequence[Run], expected: Mapping[str, Mapping] | None) -> tuple[list[str], set[str]]:
    """(every task of the report: the paper's order, then others found; the tasks with runs or expected runs)."""
    expected_tasks = [t for cells in (expected or {}).values() for t in cells.get("tasks", ())]
    found = {r.task for r in runs} | set(expected_tasks)
    return [*TASKS, *sorted(found - set(TASKS))], found


def _episodes_needed(out: Path, curves: pd.DataFrame, stats: Mapping, tasks: Sequence[str],
                     infos: Mapping[str, VariantInfo], specs: Mapping[str, FigureSpec],
                     published: pd.DataFrame) -> pd.DataFrame:
    """OUT/episodes_needed.csv for the variants of the data-efficiency figures."""
    shown = {v for s in specs.values() if s.kind == "data_efficiency" for v in s.members(infos)}
    needed = episodes_needed(curves, stats, tasks, [v for v in infos if v in shown], infos, published)
    needed.to_csv(out / "episodes_needed.csv", index=False)
    return needed


# Written only when there is something to say: a file of an earlier report that this one does not write goes.
OPTIONAL_FILES = ("progress.csv", "compute.csv", "task_hours.csv", "cem_grid.csv")
REPLACED_DIRS = ("metrics", "videos")  # directories whose files are all this report's: stale ones go


def build_report(results: Path, out: Path, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Write the report of RESULTS into OUT (`_build`'s arguments and result). The report is built in a staging
    directory beside OUT and each file is then moved into place (os.replace), so a report interrupted at any moment
    leaves every file of OUT complete: the previous report's or the new one's, never half of one. It reads and
    extends OUT's record of finished runs (planet/report/record.py), which it never deletes."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for old in out.parent.glob(f".{out.name}.tmp-*"):  # left by an interrupted build
        shutil.rmtree(old, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
    try:
        result = _build(results, stage, *args, record=out / RECORD_DIR, **kwargs)
        made = {path: out / path.relative_to(stage) for path in sorted(stage.rglob("*"))}
        for path, target in made.items():
            if path.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
        new = set(made.values())
        for name in OPTIONAL_FILES:
            if out / name not in new:
                (out / name).unlink(missing_ok=True)
        rewritten = [out / sub for sub in REPLACED_DIRS] + [p.parent for p in new if p.name == RECORD_FILE]
        for directory in rewritten:  # a record rewritten for a run is all its new files too
            if directory.is_dir():
                for stale in {p for p in directory.iterdir() if p.is_file()} - new:
                    stale.unlink()
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    result["files"] = [str(out / Path(f).relative_to(stage)) for f in result["files"]]
    return result


def _build(results: Path, out: Path, variants: Mapping[str, Any] | None = None,
                 title: str = "PlaNet reproduction: results", expected: Mapping[str, Mapping] | None = None,
                 published: Path = PUBLISHED_SCORES, figures: Mapping[str, FigureSpec] | None = None,
                 cem_grid: CemGrid | Mapping[str, Any] | None = None, order: Sequence[str] | None = None,
                 groups: Mapping[str, str] | None = None, record: Path | None = None) -> dict[str, Any]:
    """Write the report of RESULTS into OUT (see the package docstring); returns {"files", "table", "missing",
    "aggregate", "runs"}.

    variants: {name: label or {"label", "family"}} (family "baselines" marks a baseline trained here; what is not
    given comes from params/pipeline.yaml); order, groups: Table 1's order of variants and their groups, the grid's
    ``variant_order`` and ``variant_groups`` (planet/report/grid.py `table_layout`; default: params/pipeline.yaml's
    for the variants of the report); expected: {variant: {"tasks": [...], "seeds": [...]}} for the list of missing runs;
    figures: the figures to draw (planet/report/grid.py `figure_specs`; default: those of params/pipeline.yaml);
    cem_grid: the preset's CEM grid (planet/cem_grid.py, or its JSON), whose results under RESULTS/cem_grid/ go into
    OUT/cem_grid.csv and the `cem_grid` figures (none without it); record: the record of finished runs to read
    (planet/report/record.py; the report writes its new records to OUT/record).
    """
    results, out = Path(results), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    specs = pipeline_figures() if figures is None else figures
    runs = collect_runs(results)
    if record is not None:
        runs = merge_records(runs, read_records(record))
    pub = load_published(published)
    infos = variant_infos(variants, {r.variant for r in runs}, expected, order, groups)
    tasks, found_tasks = _report_tasks(runs, expected)

    finals = final_frame(runs)
    stats = summarise(finals)
    table, table_md, written = write_table1(out, runs, infos, stats, tasks, pub)
    curves = curves_frame(runs)
    curves.to_csv(out / "curves.csv", index=False)  # the DVC plots file
    written += [out / "curves.csv", *write_metrics(out / "metrics", stats)]

    if isinstance(cem_grid, Mapping):
        cem_grid = CemGrid.from_json(cem_grid)
    cem = None if cem_grid is None else results_frame(results, cem_grid)
    if cem is not None:
        cem.to_csv(out / "cem_grid.csv", index=False)
        written.append(out / "cem_grid.csv")

    data = FigureInputs(runs, curves, infos, tasks, found_tasks, pub, out / "figures", cem=cem)
    drawn = draw_figures(specs, data, written)
    needed = _episodes_needed(out, curves, stats, tasks, infos, specs, pub)
    written.append(out / "episodes_needed.csv")
    aggregate, reference = aggregate_scores(finals, infos), reference_aggregate(pub, TASKS)
    aggregate.to_csv(out / "aggregate.csv", index=False)
    written.append(out / "aggregate.csv")
    plot_aggregate(aggregate, reference, data.palette, out / "figures" / "aggregate", written)
    drawn["aggregate"] = out / "figures" / "aggregate.png"
    profile = plot_performance_profile(finals, infos, data.palette, out / "figures" / "performance_profile", written)
    profile.to_csv(out / "performance_profile.csv", index=False)
    written.append(out / "performance_profile.csv")
    drawn["performance_profile"] = out / "figures" / "performance_profile.png"

    missing = missing_runs(runs, expected)
    readme = write_readme(ReadmeInputs(out, title, results, runs, table_md, stats, infos, tasks, curves, pub,
                                       aggregate, reference, specs, drawn, missing, expected is not None, needed,
                                       cem=cem))
    written.append(readme)
    agent = "planet" if "planet" in infos else next(iter(infos), None)
    shown = {}
    if agent is not None:
        shown = write_agent_videos(runs, agent, tasks, out / "videos", written)
        with open(readme, "a", encoding="utf-8") as fh:
            fh.write("\n".join(["", *videos_section(shown, infos[agent].label, out)]))
    progress = progress_table(runs)
    if len(progress):
        progress.to_csv(out / "progress.csv", index=False)
        written.append(out / "progress.csv")
        append_progress(readme, progress)
    compute = compute_table(runs)
    if len(compute):
        if agent is not None:
            hours = task_hours(compute, [t for t in tasks if t in found_tasks], runs, agent)
            hours.to_csv(out / "task_hours.csv", index=False)
            written.append(out / "task_hours.csv")
            append_task_hours(readme, hours, infos[agent].label)
        compute = compute[COMPUTE_COLUMNS]
        compute.to_csv(out / "compute.csv", index=False)
        written.append(out / "compute.csv")
        append_compute(readme, compute)
    kept = kept_records_frame(runs)
    if len(kept):
        append_records(readme, kept)
    if record is not None:
        written += write_records(runs, out / RECORD_DIR, shown)
    return {"files": [str(p) for p in written], "table": json_clean(table.to_dict(orient="records")),
            "missing": missing, "aggregate": json_clean(aggregate.to_dict(orient="records")), "runs": len(runs)}
