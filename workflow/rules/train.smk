# Train one agent per (variant, task, seed), continuing from the seed episodes with CEM-MPC collection.
# An interrupted job resumes from its checkpoint when rerun (the run directory is not an output, so Snakemake
# keeps it); a changed config archives the old run directory under .replaced/ and starts afresh.


rule train:
    input:
        seeds=f"{RESULTS}/seeds/{{task}}/seed{{seed}}",
        tracking=f"{RESULTS}/tracking.json",
    output:
        f"{RESULTS}/runs/{{variant}}/{{task}}/seed{{seed}}/summary.json",
    log:
        f"{RESULTS}/logs/train/{{variant}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{variant}}/{{task}}/seed{{seed}}.tsv"
    params:
        preset=P["agent_preset"],
        overrides=lambda wc: override_args(wc.variant),
        config_hash=lambda wc: resolved(wc.variant, wc.task, int(wc.seed)).digest(),
        run_dir=lambda wc: run_dir(wc.variant, wc.task, wc.seed),
        uri=TRACKING_URI,
        pipeline=PRESET,
        family=lambda wc: config["variants"][wc.variant]["family"],
        device=DEVICE,
    threads: P["threads"]
    conda:
        "../envs/planet.yaml"
    resources:
        gpu=1 if P["gpu"] else 0,
        mem_mb=lambda wc: job_mem_mb(wc.variant, wc.task),
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet --params params train --task {wildcards.task} --preset {params.preset} "
        "--seed {wildcards.seed} --device {params.device} --expect-hash {params.config_hash} "
        "--out {params.run_dir:q} --init-episodes {input.seeds:q} --on-config-change archive "
        "--tag variant={wildcards.variant} --tag family={params.family} --tag pipeline_preset={params.pipeline} "
        "--no-progress "
        "{params.overrides} run.threads={threads} > {log:q} 2>&1"


rule train_all:
    input:
        grid(lambda v, t, s: f"{run_dir(v, t, s)}/summary.json"),
    output:
        stage_manifest("train"),
    log:
        f"{RESULTS}/logs/manifest/train.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
