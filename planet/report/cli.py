"""`planet report` / `python -m planet.report`: the command line, and the MLflow run that keeps the report.

The pipeline's report rule (workflow/rules/report.smk) passes its grid as ``--grid-json``; a partial report of a
campaign still running takes the same grid from params/pipeline.yaml with ``--pipeline-preset NAME``. The grid
sets the variants (labels, baselines), their order and groups in Table 1 (``variant_order``, ``variant_groups``:
planet/report/grid.py `table_layout`), the expected runs, the figures and the title.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from planet.report.build import build_report
from planet.report.grid import grid_figures, grid_from_pipeline
from planet.report.published import PUBLISHED_SCORES
from planet.rundir import git_tags


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
    p.add_argument("--grid-json", help="JSON (inline or file) of the pipeline: {preset, tasks, seeds, variants: "
                   "{name: {label, family}}, variant_order: [name, ...], variant_groups: {name: group}, expected, "
                   "figures: [resolved figures], cem_grid} (what workflow/rules/report.smk passes); without "
                   "`figures`, the figures of params/pipeline.yaml, without `variant_order` / `variant_groups`, "
                   "its order and groups")
    p.add_argument("--pipeline-preset", metavar="NAME",
                   help="take the grid from this preset of params/pipeline.yaml (as the pipeline's report rule "
                        "passes it), e.g. for a partial report of a campaign that is still running")
    p.add_argument("--published", type=Path, default=PUBLISHED_SCORES, help="published scores CSV")
    p.add_argument("--mlflow-experiment", metavar="NAME",
                   help="also log the report's files as artifacts of a run in this MLflow experiment (its JSON "
                        "bookkeeping goes to RESULTS/report_run/)")
    return p


def _expected(grid: Mapping[str, Any]) -> dict | None:
    """The grid's expected runs; without them, every variant on every task and seed of the grid."""
    if grid.get("expected") is not None:
        return grid["expected"]
    if grid.get("tasks") and grid.get("variants"):
        return {v: {"tasks": list(grid["tasks"]), "seeds": list(grid.get("seeds", []))} for v in grid["variants"]}
    return None


def _tags(grid: Mapping[str, Any]) -> dict[str, str]:
    """Tags of the report's MLflow run: kind, the grid's presets, the git commit."""
    return {"kind": "report", **({"pipeline_preset": str(grid["preset"])} if grid.get("preset") else {}),
            **({"agent_preset": str(grid["agent_preset"])} if grid.get("agent_preset") else {}), **git_tags()}


def log_report(out: Path, results: Path, experiment: str, tags: dict[str, str]) -> None:
    """Log every file of the report as artifacts of one MLflow run (run files under RESULTS/report_run/)."""
    from planet.tracking import Tracker

    name = f"report-{tags.get('pipeline_preset', '')}"
    with Tracker(Path(results) / "report_run", experiment=experiment, run_name=name,
                 params={"results": str(results), "out": str(out)}, tags=tags) as tracker:
        tracker.log_artifact(Path(out), "report")


def main(argv: Sequence[str] | None = None) -> int:
    """`planet report` / `python -m planet.report`."""
    import matplotlib

    matplotlib.use("Agg")  # headless, whatever the environment asks for
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    grid = grid_from_pipeline(args.pipeline_preset) if args.pipeline_preset else _load_json_arg(args.grid_json) or {}
    title = f"PlaNet reproduction: preset {grid['preset']}" if grid.get("preset") else "PlaNet reproduction: results"
    result = build_report(args.results, args.out, variants=grid.get("variants"), title=title,
                          expected=_expected(grid), published=args.published, figures=grid_figures(grid),
                          cem_grid=grid.get("cem_grid"), order=grid.get("variant_order"),
                          groups=grid.get("variant_groups"))
    if args.mlflow_experiment:
        log_report(args.out, args.results, args.mlflow_experiment, _tags(grid))
    print(json.dumps({"out": str(args.out), "runs": result["runs"], "files": len(result["files"]),
                      "missing": len(result["missing"])}))
    return 0
