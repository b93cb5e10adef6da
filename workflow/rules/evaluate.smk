# Evaluate each trained agent on noise-free held-out episodes (the 'test' split: seeds disjoint from training and
# from the evaluations during training).


rule evaluate:
    input:
        f"{RESULTS}/runs/{{variant}}/{{task}}/seed{{seed}}/summary.json",
    output:
        f"{RESULTS}/eval/{{variant}}/{{task}}/seed{{seed}}.json",
    log:
        f"{RESULTS}/logs/evaluate/{{variant}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/evaluate/{{variant}}/{{task}}/seed{{seed}}.tsv"
    params:
        episodes=P["eval_episodes"],
        run_dir=lambda wc: run_dir(wc.variant, wc.task, wc.seed),
        uri=TRACKING_URI,
        device=DEVICE,
    threads: P["threads"]
    conda:
        "../envs/planet.yaml"
    resources:
        gpu=1 if P["gpu"] else 0,
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet evaluate --run {params.run_dir:q} --episodes {params.episodes} "
        "--out {output:q} --threads {threads} --device {params.device} --no-progress > {log:q} 2>&1"


rule evaluate_all:
    input:
        grid(eval_file, multitask=False),
    output:
        stage_manifest("evaluate"),
    log:
        f"{RESULTS}/logs/manifest/evaluate.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
