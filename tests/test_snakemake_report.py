"""Snakemake's own report (`snakemake --report`): the report rule's tables and figures, marked with `report()` in
workflow/rules/report.smk, in one self-contained report with the rule graph and the jobs' runtimes (smoke preset)."""

from __future__ import annotations

import json
import re
import zipfile

import pytest
from test_pipeline import copy_pipeline, snakemake

pytestmark = pytest.mark.slow  # runs Snakemake and the report rule's `planet report`

# The rules whose outputs the report rule reads (everything upstream of them, e.g. seed episodes, it does not).
READ_BY_REPORT = {"train", "train_multitask", "baseline", "evaluate", "cem_grid", "diagnose"}


def _finished_smoke_inputs(root) -> None:
    """Write the report rule's inputs as a finished smoke grid leaves them, reduced to what the report reads: a final
    return per run (summary.json) and per held-out evaluation; the CEM grid's and the diagnostics' files are empty
    JSON, which the report logs and leaves out (planet/report/runs.py: a bad file never crashes a report)."""
    summary = snakemake(root, "report", "--summary", "--config", "preset=smoke", timeout=600).stdout
    rows = [line.split("\t") for line in summary.splitlines()[1:] if "\t" in line]
    written = 0
    for i, (path, _, rule, *_) in enumerate(rows):
        if rule not in READ_BY_REPORT:
            continue
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if rule == "evaluate":
            content = {"return_mean": 100.0 + i, "complete": True}
        elif target.name == "summary.json" and "/runs/" in path:
            content = {"final_eval": {"eval/return_mean": 50.0 + i}, "episodes": 4}
        else:
            content = {}
        target.write_text(json.dumps(content))
        written += 1
    assert written > 40, summary[-2000:]  # smoke: 16 trainings and evaluations, 2 baselines, 5 CEM points, ...


@pytest.mark.timeout(1500)  # 1.5 min on 2 cores; 16 min beside a training run at a higher priority
def test_snakemake_report_holds_the_report_rules_tables_and_figures(tmp_path):
    root = copy_pipeline(tmp_path)
    _finished_smoke_inputs(root)
    # the report rule itself, run by Snakemake (which records its runtime); nothing upstream of it runs
    snakemake(root, "report", "--cores", "1", "--allowed-rules", "report", "--config", "preset=smoke", timeout=600)
    out = root / "reports" / "smoke"
    figures = sorted(p.name for p in (out / "figures").glob("*.png"))
    tasks = sorted(p.name for p in (out / "metrics").glob("*.json"))
    assert {"curves.png", "ablation_models.png", "aggregate.png"} <= set(figures) and tasks, (figures, tasks)

    snakemake(root, "--report", "report.zip", "--config", "preset=smoke", timeout=600)
    with zipfile.ZipFile(root / "report.zip") as archive:
        names = archive.namelist()
        html = archive.read("report/report.html").decode()
    shipped = [name.rsplit("/", 1)[-1] for name in names]
    # every table of the report rule, every figure it drew (PNG) and every task's metrics are in the report
    for name in ["table1.csv", "table1.md", "table1.tex", "README.md", "curves.csv", "aggregate.csv",
                 "performance_profile.csv", "episodes_needed.csv", *figures, *tasks]:
        assert name in shipped, (name, names)
    # by category, a figure under its paper figure's heading, with its caption from params/pipeline.yaml
    for text in ['"Table 1"', '"Figures"', '"Data"', "Model designs (paper Fig. 4)", "Metrics per task",
                 "The paper: the RSSM (PlaNet) outperforms"]:
        assert text in html, text
    # the workflow's runtime statistics: the report job, as Snakemake timed it
    assert re.search(r'\{"rule": "report", "runtime": [0-9.]+\}', html), "no runtime of the report rule"
    assert "preset <tt class=\\\"docutils literal\\\">smoke</tt>" in html  # workflow/report/workflow.rst

    # the single-file HTML report of the same results: the files embedded as data URIs
    snakemake(root, "--report", "report.html", "--config", "preset=smoke", timeout=600)
    page = (root / "report.html").read_text()
    for name, mime in [("table1.csv", "text/csv"), ("curves.png", "image/png"), ("ablation_models.png", "image/png")]:
        assert re.search(rf"data:{mime};[^;]*;filename={re.escape(name)};base64,", page), name
