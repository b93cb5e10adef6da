# One agent for all tasks (paper Figs. 6, 7; planet/multitask.py): per seed, ONE training job of one model on the
# preset's `multitask_tasks` (one episode of each task per round, actions padded, the agent not told the task). The
# run lives in RESULTS/multitask/VARIANT/seedN; it publishes one view per task at RESULTS/runs/VARIANT/TASK/seedN,
# laid out as a single-task run (evaluation curve, summary, open-loop strip), which the report reads beside PlaNet.
# An interrupted job resumes from its checkpoint when rerun, as `train` does. The job grid: workflow/rules/common.smk.

# The views are outputs of this rule, and `train` could name them too (same pattern): this rule makes them.
ruleorder: train_multitask > train


rule train_multitask:
    input:
        tracking=f"{RESULTS}/tracking.json",
    output:
        run=f"{RESULTS}/multitask/{{variant}}/seed{{seed}}/summary.json",
        views=[f"{RESULTS}/runs/{{variant}}/{task}/seed{{seed}}/summary.json" for task in MULTITASK_TASKS],
    log:
        f"{RESULTS}/logs/train/{{variant}}/all/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{variant}}/all/seed{{seed}}.tsv"
    wildcard_constraints:
        variant="|".join(MULTITASK_VARIANTS) or "^$",
    params:
        preset=P["agent_preset"],
        task=MULTITASK_TASK,
        overrides=lambda wc: override_args(wc.variant),
        config_hash=lambda wc: resolved(wc.variant, MULTITASK_TASK, int(wc.seed)).digest(),
        run_dir=lambda wc: multitask_dir(wc.variant, wc.seed),
        views=lambda wc: f"{RESULTS}/runs/{wc.variant}",
        uri=TRACKING_URI,
        pipeline=PRESET,
        family=lambda wc: config["variants"][wc.variant]["family"],
        device=DEVICE,
    threads: P["threads"]
    conda:
        "../envs/planet.yaml"
    resources:
        gpu=1 if P["gpu"] else 0,
        mem_mb=lambda wc: job_mem_mb(wc.variant, MULTITASK_TASK),
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet --params params train --task {params.task:q} "
        "--preset {params.preset} --seed {wildcards.seed} --device {params.device} --expect-hash {params.config_hash} "
        "--out {params.run_dir:q} --views {params.views:q} --on-config-change archive "
        "--tag variant={wildcards.variant} --tag family={params.family} --tag pipeline_preset={params.pipeline} "
        "--no-progress "
        "{params.overrides} run.threads={threads} > {log:q} 2>&1"
