"""`planet report`: Table 1, learning curves, ablation figures, open-loop strips and an aggregate, from run files.

Reads only what runs write (never MLflow), so a report can be rebuilt from a copied results directory
(RESULTS/runs/{variant}/{task}/seed{seed}/, RESULTS/eval/...; see runs.py), and writes into OUT::

    table1.md, table1.tex, table1.csv   final returns (runs made here in params/pipeline.yaml's order, then the
                                        published rows: kind = reference), in labelled groups (CSV column `group`)
    curves.csv                          eval/return_mean per (variant, task, seed, episodes): the DVC plots file
    metrics/TASK.json                   {variant: {mean, std, seeds}} per task: the DVC metrics
    aggregate.csv                       IQM over tasks x seeds with a stratified-bootstrap 95% CI
    episodes_needed.csv                 episodes until the curve reaches D4PG's, A3C's and the baselines' scores
    progress.csv                        runs still training (only when there are some)
    compute.csv                         per run: seconds per training episode and per evaluation (median, lower
                                        quartile), busy and wall-clock hours, the planned run's estimated hours
    task_hours.csv                      per task of PlaNet: hours projected from the other tasks' runs, measured
    cem_grid.csv                        the CEM grid with the true simulator (paper Fig. 12; only when the grid has
                                        one): return per (hyperparameter, value), from RESULTS/cem_grid/
    figures/*.png|pdf                   the figures of params/pipeline.yaml (`figures:`): curves, curves_{task},
                                        data_efficiency, ablation_{models,agents,overshooting,activations},
                                        openloop_{variant} (png only), cem_grid, state_diagnostics (+ its .csv:
                                        R^2 per variant, task, seed, state group and distance); and aggregate
    videos/VARIANT_TASK.gif             the agent (PlaNet) after training, one small GIF per finished task
    record/VARIANT/TASK/seedN/          each finished run's numbers, curve, costs, GIF and strip: what stands in
                                        for a run directory that is gone (record.py; never deleted by a report)
    README.md                           the table, every figure, a reading against the paper, missing runs

Modules, one job each (conventions are documented where they are implemented, and tested in
tests/test_report.py):

    runs.py       reading run directories: Run, read_curve / eval_points, read_run, collect_runs, missing_runs,
                  progress_table, diagnostics_frame
    costs.py      what runs cost: compute_table per run, task_hours per task (projected from the other tasks, and
                  measured)
    published.py  the published reference scores and the paper's task order
    grid.py       what the pipeline grid says: variants, labels, their order and groups in Table 1, the figures and
                  which variant appears in which
    stats.py      final returns, mean ± std over seeds, IQM and the stratified bootstrap, episodes needed,
                  the state diagnostics' summary
    tables.py     Table 1 as CSV, Markdown and LaTeX; the episodes-needed table
    figures.py    every figure, drawn by kind
    readme.py     the README text
    videos.py     the agents' final evaluation episodes as small GIFs
    record.py     the record of finished runs: written after each report, read beside RESULTS by the next
    build.py      build_report: all of the above, in order
    cli.py        the command line and the MLflow run of the report
"""

from planet.report.build import build_report
from planet.report.cli import build_parser, log_report, main
from planet.report.costs import compute_table, task_hours
from planet.report.grid import (
    FigureSpec,
    VariantInfo,
    figure_specs,
    grid_figures,
    grid_from_pipeline,
    load_pipeline,
    pipeline_figures,
    table_layout,
    variant_infos,
)
from planet.report.published import PUBLISHED_SCORES, TASKS, load_published, paper_rows
from planet.report.runs import (
    Run,
    collect_runs,
    eval_points,
    missing_runs,
    progress_table,
    read_curve,
    read_run,
)
from planet.report.stats import aggregate_scores, episodes_needed, final_frame, iqm, stratified_bootstrap_ci, summarise
from planet.report.tables import episodes_needed_markdown

__all__ = [
    "PUBLISHED_SCORES", "TASKS", "FigureSpec", "Run", "VariantInfo", "aggregate_scores", "build_parser",
    "build_report", "collect_runs", "compute_table", "episodes_needed", "episodes_needed_markdown", "eval_points",
    "figure_specs", "final_frame", "grid_figures", "grid_from_pipeline", "iqm", "load_pipeline", "load_published",
    "log_report", "main", "missing_runs", "paper_rows", "pipeline_figures", "progress_table", "read_curve", "read_run",
    "stratified_bootstrap_ci", "summarise", "table_layout", "task_hours", "variant_infos",
]
