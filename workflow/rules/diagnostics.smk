# State diagnostics (paper Fig. 11; planet/diagnostics.py): for each trained run of the variants drawn in a figure of
# kind state_diagnostics, freeze the model, train small heads to read the true simulator state from its features
# (posterior and open-loop priors) on the run's training episodes, and score them on held-out test-split episodes.
# Which runs and settings: the preset's `diagnostics:` block (workflow/rules/common.smk). The report draws the figure.


rule diagnose:
    input:
        f"{RESULTS}/runs/{{variant}}/{{task}}/seed{{seed}}/summary.json",
    output:
        f"{RESULTS}/diagnostics/{{variant}}/{{task}}/seed{{seed}}.json",
    log:
        f"{RESULTS}/logs/diagnose/{{variant}}/{{task}}/seed{{seed}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/diagnose/{{variant}}/{{task}}/seed{{seed}}.tsv"
    params:
        run_dir=lambda wc: run_dir(wc.variant, wc.task, wc.seed),
        overrides=" ".join(shlex.quote(item) for item in DIAGNOSTICS_OVERRIDES),
        settings=DIAGNOSTICS_SETTINGS,
        uri=TRACKING_URI,
        device=DEVICE,
    threads: P["threads"]
    conda:
        "../envs/planet.yaml"
    resources:
        gpu=1 if P["gpu"] else 0,
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet --params params diagnose --run {params.run_dir:q} "
        "--out {output:q} --device {params.device} --threads {threads} --no-progress {params.overrides} "
        "> {log:q} 2>&1"


rule diagnostics_all:
    input:
        diagnostics_grid(diagnostics_file),
    output:
        stage_manifest("diagnostics"),
    log:
        f"{RESULTS}/logs/manifest/diagnostics.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
