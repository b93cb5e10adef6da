# Table 1, learning curves, ablation figures, open-loop strips, the CEM grid, the state diagnostics and the aggregate,
# generated from the run files (never from MLflow), then logged as artifacts of a run in the planet-reports MLflow
# experiment.


from planet.report.grid import table_layout


# Snakemake's own report (`snakemake --report report.html`, or `.zip`): the report's files, marked with `report()`
# by category beside the workflow's rule graph and runtime statistics; captions in workflow/report/. A file of
# report_files() not listed here goes under "Data", uncaptioned. A figure's subcategory is its heading in
# params/pipeline.yaml (`curves_TASK` and `openloop_VARIANT` belong to `curves` and `openloop`).
REPORT_ENTRIES = {
    "table1.csv": {"category": "Table 1", "caption": "../report/table1.rst"},
    "table1.md": {"category": "Table 1", "caption": "../report/table1.rst"},
    "table1.tex": {"category": "Table 1", "caption": "../report/table1.rst"},
    "README.md": {"category": "README", "caption": "../report/readme.rst"},
    "curves.csv": {"category": "Data", "subcategory": "Learning curves", "caption": "../report/curves.rst"},
    "episodes_needed.csv": {"category": "Data", "subcategory": "Data efficiency",
                            "caption": "../report/episodes_needed.rst"},
    "aggregate.csv": {"category": "Data", "subcategory": "Aggregate", "caption": "../report/aggregate.rst"},
    "performance_profile.csv": {"category": "Data", "subcategory": "Aggregate", "caption": "../report/aggregate.rst"},
}


rule report:
    input:
        evals=grid(eval_file, multitask=False),
        summaries=grid(lambda v, t, s: f"{run_dir(v, t, s)}/summary.json"),
        baselines=baseline_grid(lambda b, t, s: f"{run_dir(b, t, s)}/summary.json"),
        cem_grid=cem_grid_files(),
        diagnostics=diagnostics_grid(diagnostics_file),
        published=PUBLISHED_SCORES,
    output:
        [report(path, **REPORT_ENTRIES.get(os.path.basename(path), {"category": "Data"})) for path in report_files()],
        report(
            directory(f"{REPORT_DIR}/figures"),
            patterns=["{figure}.png"],
            caption="../report/figures.rst",
            category="Figures",
            subcategory=lambda wc: next(
                (s.heading for s in FIGURES.values() if wc.figure == s.file or wc.figure.startswith(f"{s.file}_")),
                "Aggregate (Agarwal et al. 2021)",
            ),
            labels={"figure": "{figure}"},
        ),
        report(
            directory(f"{REPORT_DIR}/metrics"),
            patterns=["{task}.json"],
            caption="../report/metrics.rst",
            category="Data",
            subcategory="Metrics per task",
            labels={"task": "{task}"},
        ),
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


# DVC's report stage (dvc.yaml) runs this target and tracks its manifest, so the report's outputs are declared once,
# above (DVC removes the stage's metrics/ before running it, so Snakemake redoes the report).
rule report_all:
    input:
        rules.report.output,
    output:
        stage_manifest("report"),
    log:
        f"{RESULTS}/logs/manifest/report.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
