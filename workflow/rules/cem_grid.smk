# CEM hyperparameters with the true simulator (paper Fig. 12; planet/cem_grid.py): the preset's `cem_grid:` in
# params/pipeline.yaml varies the top-K fraction, horizon, candidates and iterations one at a time around the agent
# preset's planner. One job per grid point: `planet baseline simulator` with the point's simulator.* sizes, a run
# directory RESULTS/cem_grid/TASK/seedS/H..-I..-J..-K.. (resumable per episode), logged to the study's MLflow
# experiment (tags family=cem_grid, cem_point). The report draws them as one panel per hyperparameter. The grid
# and its helpers (CEM_GRID, CEM_POINTS, cem_items, ...) are in common.smk.

rule cem_grid:
    input:
        tracking=f"{RESULTS}/tracking.json",
    output:
        f"{RESULTS}/cem_grid/{{cem_task}}/seed{{cem_seed}}/{{point}}/summary.json",
    log:
        f"{RESULTS}/logs/cem_grid/{{cem_task}}/seed{{cem_seed}}/{{point}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cem_grid/{{cem_task}}/seed{{cem_seed}}/{{point}}.tsv"
    wildcard_constraints:
        cem_task=CEM_GRID.task if CEM_GRID else "^$",
        cem_seed=str(CEM_GRID.seed) if CEM_GRID else "^$",
        point="|".join(CEM_POINTS) or "^$",
    params:
        preset=P["agent_preset"],
        overrides=lambda wc: " ".join(shlex.quote(i) for i in cem_items(wc.point)),
        settings=lambda wc: cem_settings(wc.point),
        run_dir=lambda wc: cem_grid_dir(wc.point),
        uri=TRACKING_URI,
        pipeline=PRESET,
        experiment=EXPERIMENT,
    threads: P["threads"]
    conda:
        "../envs/planet.yaml"
    resources:
        gpu=0,
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet --params params baseline simulator --task {wildcards.cem_task} "
        "--preset {params.preset} --seed {wildcards.cem_seed} --device cpu --out {params.run_dir:q} "
        "--experiment {params.experiment} --tag variant=cem_grid --tag family=cem_grid "
        "--tag cem_point={wildcards.point} --tag pipeline_preset={params.pipeline} --no-progress "
        "{params.overrides} simulator.workers={threads} > {log:q} 2>&1"


rule cem_grid_all:
    input:
        cem_grid_files(),
    output:
        stage_manifest("cem_grid"),
    log:
        f"{RESULTS}/logs/manifest/cem_grid.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
