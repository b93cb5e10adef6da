# Random seed episodes per (task, seed); every variant's training starts from them.


rule collect_seed_episodes:
    output:
        directory(f"{RESULTS}/seeds/{{task}}/seed{{seed}}"),
    log:
        f"{RESULTS}/logs/collect/{{task}}/seed{{seed}}.log",
    params:
        preset=P["agent_preset"],
        settings=lambda wc: seed_settings(wc.task, int(wc.seed)),
        overrides=override_args("planet"),
    threads: 1
    conda:
        "../envs/planet.yaml"
    shell:
        "planet --params params collect --task {wildcards.task} --preset {params.preset} --seed {wildcards.seed} --out {output:q} "
        "--no-progress {params.overrides} > {log:q} 2>&1"


rule seeds:
    input:
        expand(f"{RESULTS}/seeds/{{task}}/seed{{seed}}", task=TASKS, seed=SEEDS),
    output:
        stage_manifest("seeds"),
    log:
        f"{RESULTS}/logs/manifest/seeds.log",
    threads: 1
    conda:
        "../envs/planet.yaml"
    localrule: True
    shell:
        "planet manifest --out {output:q} {input:q} > {log:q} 2>&1"
