# PlaNet reproduction pipeline: the table of contents.
#
#   snakemake --cores 8                              # the paper's grid (params/pipeline.yaml, preset: paper)
#   snakemake --cores 2 --config preset=smoke        # the whole DAG with tiny settings (CI)
#   snakemake -n --cores 8                           # list the jobs without running them
#
# Stages: tracking store -> seed episodes per (task, seed) -> train per (variant, task, seed) -> held-out
# evaluation -> report (reports/PRESET/). The grid lives in params/pipeline.yaml, the agent presets in
# params/presets.yaml; every rule calls the `planet` CLI.

from snakemake.utils import min_version

min_version("9.0")


configfile: "params/pipeline.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/tracking.smk"
include: "workflow/rules/collect.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        report_files(),
