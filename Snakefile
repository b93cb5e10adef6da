# PlaNet reproduction pipeline: the table of contents.
#
#   snakemake --cores 8                              # the paper's grid (params/pipeline.yaml, preset: paper)
#   snakemake --cores 2 --config preset=smoke        # the whole DAG with tiny settings (CI)
#   snakemake -n --cores 8                           # list the jobs without running them
#   snakemake --cores 2 --config preset=cpu100k next_task   # one task of a long campaign per call (resumable)
#
# Stages: tracking store -> seed episodes per (task, seed) -> train per (variant, task, seed) -> held-out
# evaluation -> report (reports/PRESET/); one multi-task agent per seed trained on all tasks at once (paper Figs. 6,
# 7), whose per-task views join the runs; beside them the baselines, the CEM grid with the true simulator
# (paper Fig. 12) and the state diagnostics of trained runs (paper Fig. 11), which the report also reads. The grid
# lives in params/pipeline.yaml, the agent presets in params/presets.yaml; every rule calls the `planet` CLI.

from snakemake.utils import min_version

min_version("9.0")


# A YAML syntax error in the grid is named with its file and line here (Snakemake's own message omits them).
import yaml as _yaml

try:
    _yaml.safe_load(open("params/pipeline.yaml"))
except _yaml.YAMLError as _exc:
    _mark = getattr(_exc, "problem_mark", None)
    _where = f"params/pipeline.yaml, line {_mark.line + 1}" if _mark else "params/pipeline.yaml"
    raise ValueError(f"config: {_where}: not valid YAML ({getattr(_exc, 'problem', _exc)})") from None


configfile: "params/pipeline.yaml"


# The front page of Snakemake's own report (`snakemake --report report.html`); the results are marked in report.smk.
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/multitask.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/cem_grid.smk"
include: "workflow/rules/diagnostics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/campaign.smk"


# The wrong machine fails before its first job, in one line: a GPU preset run here (not submitted to a cluster) on a
# machine where torch sees no GPU would collect seed episodes for minutes and then fail every training job. A CPU
# preset on a machine with a GPU only warns (it runs, slowly). Dry runs (-n) and cluster submissions are not checked.
onstart:
    check_machine()


# The report and everything it reads: a report already on disk (e.g. a committed partial record of a long
# campaign) does not make the runs it is missing count as done; they run, and the report is redone after them.
rule all:
    default_target: True
    input:
        report_files(),
        rules.report.input,
