# Create the MLflow store and experiments once, before parallel jobs write to them.


rule init_tracking:
    output:
        f"{RESULTS}/tracking.json",
    log:
        f"{RESULTS}/logs/init_tracking.log",
    params:
        uri=TRACKING_URI,
        experiments=" ".join(
            f"--experiment {e}" for e in sorted({experiment(v) for v in config["variants"]} | {"planet-reports", "planet-baselines"})
        ),
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet init-tracking --uri {params.uri:q} {params.experiments} --out {output:q} > {log:q} 2>&1"
