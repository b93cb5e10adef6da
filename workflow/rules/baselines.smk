# Baselines in the same pipeline (planet/baselines.py): model-free SAC from the same pixels on the agent preset's
# env-step budget, and CEM with the true simulator (the paper's upper bound), both evaluated on the same noise-free
# 'test' seeds as PlaNet. They write run directories beside PlaNet's (RESULTS/runs/BASELINE/TASK/seedN), so the
# report reads them the same way. The published reference scores (planet/data/published_scores.csv: the paper's
# A3C, D4PG, PlaNet and CEM + true simulator rows, later pixel agents) are reference rows, never mixed with these.

PUBLISHED_SCORES = "planet/data/published_scores.csv"


rule baseline:
    input:
        tracking=f"{RESULTS}/tracking.json",
    output:
        f"{RESULTS}/runs/{{baseline}}/{{task}}/seed{{seed}}/summary.json",
    log:
        f"{RESULTS}/logs/baseline/{{baseline}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/baseline/{{baseline}}/{{task}}/seed{{seed}}.tsv"
    params:
        kind=lambda wc: config["baselines"][wc.baseline]["kind"],
        preset=P["agent_preset"],
        overrides=lambda wc: " ".join(shlex.quote(i) for i in baseline_items(wc.baseline)),
        settings=lambda wc: baseline_settings(wc.baseline, wc.task, int(wc.seed)),
        run_dir=lambda wc: run_dir(wc.baseline, wc.task, wc.seed),
        uri=TRACKING_URI,
        pipeline=PRESET,
        experiment=EXPERIMENT,
        # SAC trains on the preset's device; the simulator plans on CPU physics (its --device is unused)
        device=lambda wc: DEVICE if config["baselines"][wc.baseline]["kind"] == "sac" else "cpu",
    threads: P["threads"]
    conda:
        "../envs/planet.yaml"
    resources:
        gpu=lambda wc: 1 if P["gpu"] and config["baselines"][wc.baseline]["kind"] == "sac" else 0,
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet --params params baseline {params.kind} --task {wildcards.task} "
        "--preset {params.preset} --seed {wildcards.seed} --device {params.device} --out {params.run_dir:q} "
        "--experiment {params.experiment} --tag variant={wildcards.baseline} --tag family=baselines "
        "--tag pipeline_preset={params.pipeline} --no-progress "
        "{params.overrides} simulator.workers={threads} > {log:q} 2>&1"


rule baselines_all:
    input:
        baseline_grid(lambda b, t, s: f"{run_dir(b, t, s)}/summary.json"),
    output:
        stage_manifest("baselines"),
    log:
        f"{RESULTS}/logs/manifest/baselines.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
