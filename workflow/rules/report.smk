# Table 1, learning curves, ablation figures, open-loop strips, the CEM grid, the state diagnostics and the aggregate,
# generated from the run files (never from MLflow), then logged as artifacts of a run in the planet-reports MLflow
# experiment.


from planet.report.grid import table_layout


rule report:
    input:
        evals=grid(eval_file, multitask=False),
        summaries=grid(lambda v, t, s: f"{run_dir(v, t, s)}/summary.json"),
        baselines=baseline_grid(lambda b, t, s: f"{run_dir(b, t, s)}/summary.json"),
        cem_grid=cem_grid_files(),
        diagnostics=diagnostics_grid(diagnostics_file),
        published=PUBLISHED_SCORES,
    output:
        report_files(),
        directory(f"{REPORT_DIR}/figures"),
        directory(f"{REPORT_DIR}/metrics"),
    log:
        f"{RESULTS}/logs/report.log",
    params:
        uri=TRACKING_URI,
        results=lambda wc, input: str(Path(input.evals[0]).parents[3]),  # RESULTS, derived from an input
        out=lambda wc, output: os.path.dirname(output[0]),
        grid=json.dumps(
            {
                "preset": PRESET,
                "agent_preset": P["agent_preset"],
                "tasks": TASKS,
                "seeds": SEEDS,
                "variants": {
                    **{v: config["variants"][v] for v in VARIANTS},
                    **{b: {**config["baselines"][b], "family": "baselines"} for b in BASELINES},
                },
                "expected": {
                    **{v: {"tasks": variant_tasks(v), "seeds": SEEDS} for v in VARIANTS},
                    **{b: {"tasks": BASELINE_TASKS, "seeds": baseline_seeds(b)} for b in BASELINES},
                },
                # Table 1's order (lists survive sort_keys) and groups, from params/pipeline.yaml's order
                **table_layout(config, [*VARIANTS, *BASELINES]),
                # a list: the figures' order (params/pipeline.yaml) survives sort_keys
                "figures": [spec.to_json() for spec in FIGURES.values()],
                "cem_grid": CEM_GRID.to_json() if CEM_GRID else None,
            },
            sort_keys=True,
        ),
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "MLFLOW_TRACKING_URI={params.uri:q} planet report --results {params.results:q} --grid-json {params.grid:q} "
        "--out {params.out:q} --mlflow-experiment planet-reports > {log:q} 2>&1"
