# Create the MLflow store and experiments once, before parallel jobs write to them.


rule init_tracking:
    output:
        f"{RESULTS}/tracking.json",
    log:
        f"{RESULTS}/logs/init_tracking.log",
    params:
        uri=TRACKING_URI,
        experiments=" ".join(
            f"--experiment {e} --describe {shlex.quote(f'{e}={text}')}"
            for e, text in (
                (EXPERIMENT, f"Pipeline preset '{PRESET}' (params/pipeline.yaml): {P.get('description', '').strip()} "
                 "Runs are tagged variant, family (agents/ablations/baselines/cem_grid), task and seed."),
                ("planet-reports", "One run per pipeline preset: the generated report (Table 1, figures, README) "
                 "as artifacts, tagged with the git commit it was made from."),
            )
        ),
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet init-tracking --uri {params.uri:q} {params.experiments} --out {output:q} > {log:q} 2>&1"
