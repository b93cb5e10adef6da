"""The Snakemake/DVC pipeline: dry-run job counts, lint, DVC <-> Snakemake agreement, config errors, and the
smoke pipeline end to end with an interruption (the CI run of `snakemake --cores 2 --config preset=smoke`)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow  # the slow lane: every test here runs Snakemake (seconds; the smoke pipeline minutes)

ROOT = Path(__file__).resolve().parent.parent
PIPELINE_FILES = ["Snakefile", "workflow", "params", "profiles", "dvc.yaml", "planet/data/published_scores.csv"]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def copy_pipeline(dest: Path) -> Path:
    for name in PIPELINE_FILES:
        src = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, target)
        else:
            shutil.copy(src, target)
    return dest


def snakemake(cwd: Path, *args: str, check: bool = True, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def job_counts(output: str) -> dict[str, int]:
    table = output.split("Job stats:")[1]
    counts = {}
    for line in table.splitlines()[3:]:
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            break
        counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.parametrize(
    ("preset", "expected"),
    [
        # the paper: 6 tasks x 5 seeds of seed episodes; 11 variants x 6 tasks x 5 seeds of training/evaluation;
        # baselines: SAC on 6 tasks x 5 seeds + CEM with the true simulator on 6 tasks x seed 0
        # CEM grid (Fig. 12) on cheetah: the default planner + 14 one-at-a-time variations
        # state diagnostics (Fig. 11): planet, gru, ssm, overshooting, drnn x 6 tasks x 5 seeds
        # one agent for all tasks (Figs. 6, 7): one job per seed, its per-task views not evaluated on the test split
        ("paper", {"collect_seed_episodes": 30, "train": 330, "evaluate": 330, "baseline": 36, "cem_grid": 15,
                   "diagnose": 150, "train_multitask": 5, "report": 1, "init_tracking": 1}),
        # cpu: cartpole x 3 seeds; planet, gru, ssm (each diagnosed); SAC x 3 seeds + simulator x 1
        ("cpu", {"collect_seed_episodes": 3, "train": 9, "evaluate": 9, "baseline": 4, "cem_grid": 9, "diagnose": 9,
                 "report": 1, "init_tracking": 1}),
        # cpu100k: planet on the six tasks, seed 0, no baselines, no CEM grid, no diagnostics (issue 10's campaign)
        ("cpu100k", {"collect_seed_episodes": 6, "train": 6, "evaluate": 6, "cem_grid": None, "diagnose": None,
                     "train_multitask": None, "report": 1, "init_tracking": 1}),
        # smoke: planet on six tasks + ten ablations on cartpole, one seed; SAC and simulator on cartpole; the five
        # variants of the diagnostics figure diagnosed on cartpole; one multi-task job on cartpole and reacher
        ("smoke", {"collect_seed_episodes": 6, "train": 16, "evaluate": 16, "baseline": 2, "cem_grid": 5,
                   "diagnose": 5, "train_multitask": 1, "report": 1, "init_tracking": 1}),
    ],
)
def test_dry_run_lists_the_expected_jobs(tmp_path, preset, expected):
    proc = snakemake(copy_pipeline(tmp_path), "-n", "--cores", "8", "--config", f"preset={preset}")
    counts = job_counts(proc.stdout + proc.stderr)
    assert {k: counts.get(k) for k in expected} == expected
    # the stage targets DVC calls come on top: seeds/train_all/evaluate_all are manifests of the same jobs
    assert counts["all"] == 1


def test_a_report_on_disk_does_not_stand_in_for_missing_runs(tmp_path):
    """A clone with the committed partial record of a campaign (reports/cpu100k/) but none of its runs: the default
    target still runs every job, the report last (it used to say 'Nothing to be done')."""
    root = copy_pipeline(tmp_path)
    # what the report stage writes, as dvc.yaml lists it (test_dvc_stages_and_snakemake_targets_agree keeps it
    # equal to the report rule's outputs): files, and the figure/metric directories
    for out in _dvc_stages()["report"]["outs"]:
        path = root / _resolve_dvc(next(iter(out)) if isinstance(out, dict) else out, "cpu100k")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial\n") if path.suffix else path.mkdir()
    proc = snakemake(root, "-n", "--cores", "2", "--config", "preset=cpu100k")
    counts = job_counts(proc.stdout + proc.stderr)
    assert {k: counts.get(k) for k in ("collect_seed_episodes", "train", "evaluate", "report")} == {
        "collect_seed_episodes": 6, "train": 6, "evaluate": 6, "report": 1}


def test_next_task_walks_the_campaign_order_one_task_at_a_time(tmp_path):
    """`next_task` (issue 29) targets the first task of cpu100k's campaign_order whose held-out evaluation is
    missing: cartpole first; with cartpole's evaluation on disk, cup_catch; with cup_catch's run in the report's
    record (a lost machine), the third; with every task's evaluation, no job but itself."""
    root = copy_pipeline(tmp_path)
    order = yaml.safe_load((root / "params" / "pipeline.yaml").read_text())["presets"]["cpu100k"]["campaign_order"]
    assert order[:2] == ["cartpole_swingup", "cup_catch"]

    def planned() -> tuple[dict[str, int], set[str]]:
        proc = snakemake(root, "-n", "--cores", "2", "next_task", "--config", "preset=cpu100k")
        out = proc.stdout + proc.stderr
        return job_counts(out), set(re.findall(r"task=(\w+)", out))

    counts, tasks = planned()
    assert {k: counts.get(k) for k in ("collect_seed_episodes", "train", "evaluate", "report")} == {
        "collect_seed_episodes": 1, "train": 1, "evaluate": 1, "report": None}
    assert tasks == {"cartpole_swingup"}
    done = root / "results" / "cpu100k" / "eval" / "planet"
    (done / "cartpole_swingup").mkdir(parents=True)
    (done / "cartpole_swingup" / "seed0.json").write_text("{}")
    counts, tasks = planned()
    assert counts["train"] == 1 and tasks == {"cup_catch"}
    # on the next machine: cup_catch's run directory and evaluation are gone, its committed record is not
    record = root / "reports" / "cpu100k" / "record" / "planet" / "cup_catch" / "seed0"
    record.mkdir(parents=True)
    (record / "run.json").write_text("{}")
    counts, tasks = planned()
    assert counts["train"] == 1 and tasks == {order[2]}
    for task in order:
        (done / task).mkdir(parents=True, exist_ok=True)
        (done / task / "seed0.json").write_text("{}")
    counts, tasks = planned()
    assert counts == {"next_task": 1, "total": 1}, counts
    assert tasks == set()


@pytest.mark.parametrize(("preset", "device"), [("paper", "cuda"), ("cpu", "cpu"), ("smoke", "cpu")])
def test_every_job_is_given_the_device_its_preset_declares(tmp_path, preset, device):
    """GPU presets pass --device cuda (a node without CUDA fails in seconds), CPU presets --device cpu (never a GPU
    they did not declare); the simulator baseline plans on CPU physics in every preset."""
    proc = snakemake(copy_pipeline(tmp_path), "-n", "-p", "--cores", "8", "--config", f"preset={preset}")
    commands = [line for line in proc.stdout.splitlines()
                if any(f"planet {c}" in line for c in ("train", "evaluate", "baseline", "diagnose"))]
    assert commands
    for line in commands:
        expect = "cpu" if "planet baseline simulator" in line else device
        assert f"--device {expect} " in line, line


def test_the_report_rule_passes_table1_order_from_the_params(tmp_path, monkeypatch):
    """The report rule's grid JSON (sorted keys) carries Table 1's order and groups as planet/report/grid.py's
    `table_layout` makes them from params/pipeline.yaml, as `planet report --pipeline-preset` does: reordering
    `variants:` there reorders the table (here reversed; the baselines stay last)."""
    import shlex

    from planet import config as config_lib
    from planet import report

    root = copy_pipeline(tmp_path)
    path = root / "params" / "pipeline.yaml"
    pipeline = yaml.safe_load(path.read_text())
    pipeline["variants"] = dict(reversed(pipeline["variants"].items()))
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    proc = snakemake(root, "report", "-n", "-p", "--cores", "1", "--config", "preset=smoke")
    line = next(x for x in proc.stdout.splitlines() if "planet report " in x and "--grid-json" in x)
    args = shlex.split(line.split(">")[0])
    grid = json.loads(args[args.index("--grid-json") + 1])
    monkeypatch.setenv(config_lib.PARAMS_ENV, str(root / "params"))
    ours = report.grid_from_pipeline("smoke")
    assert grid["variant_order"] == ours["variant_order"] == [*reversed(pipeline["presets"]["smoke"]["variants"]),
                                                              "sac", "simulator"]
    assert grid["variant_groups"] == ours["variant_groups"]
    assert grid["variant_groups"]["planet"] == "PlaNet (RSSM)"
    assert grid["variant_groups"]["sac"] == "Baselines trained here"


def test_a_gpu_preset_on_a_machine_without_one_stops_before_its_first_job(tmp_path):
    """`snakemake --cores 8` (the paper preset, gpu: true) where torch sees no GPU: exit 1 with one line naming the
    CPU presets, before any job ran (no seed episodes collected); a dry run still lists the jobs."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    root = copy_pipeline(tmp_path)
    proc = snakemake(root, "--cores", "2", check=False)
    assert proc.returncode == 1
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("config: preset 'paper'")]
    assert len(lines) == 1 and "torch sees none" in lines[0] and "cpu100k" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (root / "results" / "paper" / "seeds").exists()
    assert job_counts(snakemake(root, "-n", "--cores", "2").stdout)["train"] == 330


def test_default_target_is_the_paper_grid(tmp_path):
    proc = snakemake(copy_pipeline(tmp_path), "-n", "--cores", "8")
    assert job_counts(proc.stdout + proc.stderr)["train"] == 330


def test_lint_is_clean(tmp_path):
    proc = snakemake(copy_pipeline(tmp_path), "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda c: c.update(preset="nope"), r"unknown preset 'nope'; valid presets: .*smoke.*--config preset=NAME"),
        (lambda c: c["presets"]["smoke"]["ablation_tasks"].append("walker_run"),
         r"config: presets\.smoke\.ablation_tasks: 'walker_run' is not a task; valid tasks \(planet/tasks\.py\): "
         r"cartpole_swingup, reacher_easy"),
        (lambda c: c["variants"]["gru"]["overrides"].update({"model.knd": "gru"}),
         r"variant 'gru', task '\w+' \(preset 'smoke'\).*unknown config key 'model\.knd'"),
        (lambda c: c["presets"]["smoke"]["variants"].append("dreamer"), r"unknown variant 'dreamer'"),
        (lambda c: c["presets"]["smoke"].update(seed=[0]), r"Additional properties are not allowed \('seed'"),
        (lambda c: c["baselines"]["sac"]["overrides"].update({"sac.batchsize": 4}),
         r"baseline 'sac', task 'cartpole_swingup' \(preset 'smoke'\).*unknown config key 'sac\.batchsize'"),
        (lambda c: c["presets"]["smoke"]["baselines"].append("ppo"), r"unknown baseline 'ppo'"),
        # a variant a report figure names must be defined under `variants:`; its kind, one of the registry's
        (lambda c: c["figures"]["models"]["variants"].append("gru_x"),
         r"config: figure 'models' names unknown variant 'gru_x'; valid variants: .*planet"),
        (lambda c: c["figures"]["models"].update(kind="heatmap"),
         r"config: figure 'models' has unknown kind 'heatmap'; valid kinds \(planet/report/figures\.py\): task_grid"),
        # an entry no preset of this run uses is validated too
        (lambda c: c["baselines"].update(sac_big={"label": "x", "kind": "sac", "overrides": {"sac.batchsiz": 4}}),
         r"baseline 'sac_big'.*unknown config key 'sac\.batchsiz'"),
        # the CEM grid (Fig. 12): the schema, then planet/cem_grid.py (a point whose K falls outside 1..J)
        (lambda c: c["presets"]["smoke"].update(campaign_order=["cup_catch"]),
         r"config: presets\.smoke\.campaign_order must list the preset's tasks"),
        (lambda c: c["presets"]["smoke"]["cem_grid"].update(horizon=[0]), r"0 is less than the minimum of 1"),
        (lambda c: c["presets"]["smoke"]["cem_grid"].update(top_k_fraction=[0.01]),
         r"config: presets\.smoke\.cem_grid\.top_k_fraction: 0\.01 gives K = 0 of J = 16 candidates"),
        # the state diagnostics (Fig. 11): the schema, then planet/diagnostics.py's settings, then the grid
        (lambda c: c["presets"]["smoke"]["diagnostics"].update(task=["cartpole_swingup"]),
         r"Additional properties are not allowed \('task'"),
        (lambda c: c["presets"]["smoke"]["diagnostics"].update(overrides={"stepz": 3}),
         r"config: presets\.smoke\.diagnostics \(agent preset 'debug'\): unknown config key 'stepz'"),
        (lambda c: c["presets"]["smoke"]["diagnostics"].update(overrides={"distances": [5, 1]}),
         r"config key 'distances': got \[5, 1\]; expected a list of increasing integers"),
        (lambda c: c["figures"]["state_diagnostics"].update(variants=[]),
         r"config: presets\.smoke\.diagnostics: none of its variants appears in a figure of kind state_diagnostics"),
    ],
)
def test_bad_config_fails_with_a_clear_message(tmp_path, edit, pattern):
    root = copy_pipeline(tmp_path)
    path = root / "params" / "pipeline.yaml"
    cfg = yaml.safe_load(path.read_text())
    cfg["preset"] = "smoke"
    edit(cfg)
    path.write_text(yaml.safe_dump(cfg))
    proc = snakemake(root, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert re.search(pattern, proc.stdout + proc.stderr), (proc.stdout + proc.stderr)[-2000:]


def test_a_yaml_syntax_error_in_the_grid_names_file_and_line(tmp_path):
    root = copy_pipeline(tmp_path)
    path = root / "params" / "pipeline.yaml"
    lines = path.read_text().splitlines()
    broken = lines.index("    overrides: {model.kind: gru}")  # a flow mapping: text after it is a syntax error
    lines[broken] = lines[broken] + " ]["
    path.write_text("\n".join(lines) + "\n")
    proc = snakemake(root, "-n", "--cores", "1", check=False)
    assert proc.returncode != 0
    assert re.search(rf"params/pipeline\.yaml, line {broken + 1}: not valid YAML", proc.stdout + proc.stderr), (
        proc.stdout + proc.stderr)[-2000:]


def _dvc_stages() -> dict:
    return yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def _resolve_dvc(text: str, preset: str) -> str:
    return text.replace("${preset}", preset)


def _lookup(tree: dict, dotted: str):
    node = tree
    for part in dotted.split("."):
        node = node[part]
    return node


def test_dvc_stages_and_snakemake_targets_agree(tmp_path):
    """Each DVC stage runs one Snakemake target whose output is the stage's tracked output; deps chain the same
    way in both; every tracked parameter exists; nothing of the grid is written in dvc.yaml."""
    root = copy_pipeline(tmp_path)
    preset = yaml.safe_load((ROOT / "params" / "pipeline.yaml").read_text())["preset"]
    params = {f: yaml.safe_load((ROOT / f).read_text())
              for f in ("params/pipeline.yaml", "params/presets.yaml", "params/baselines.yaml",
                        "params/diagnostics.yaml")}
    stages = _dvc_stages()
    # a stage per target rule that writes a stage manifest (common.smk's `stage_manifest`), and no other
    rules = "".join(path.read_text() for path in sorted((ROOT / "workflow/rules").glob("*.smk")))
    assert set(stages) == set(re.findall(r'stage_manifest\("(\w+)"\)', rules)), list(stages)
    targets = [stage["cmd"].split()[-1] for stage in stages.values()]
    # one summary of every stage's target (the paper grid's DAG is built once, not once per stage)
    summary = snakemake(root, "--summary", "--cores", "1", *targets).stdout
    rows = [line.split("\t") for line in summary.splitlines()[1:] if "\t" in line]
    produced = [row[0] for row in rows]
    # the report's record of finished runs (planet/report/record.py) outlives them: never an output to delete
    assert not [p for p in produced if p.startswith(f"reports/{preset}/record")], produced
    for name, stage in stages.items():
        cmd = stage["cmd"].split()
        assert cmd[:2] == ["snakemake", "--cores"], stage["cmd"]
        target = cmd[-1]
        outs = [_resolve_dvc(next(iter(o)) if isinstance(o, dict) else o, preset) for o in stage.get("outs", [])]
        outs += [_resolve_dvc(next(iter(o)), preset) for o in stage.get("metrics", []) + stage.get("plots", [])]
        # the target's own outputs are exactly what DVC tracks (or lie inside a tracked directory)
        own = {row[0] for row in rows if row[2] == target}
        assert own, f"stage {name}: target {target} produces nothing ({summary[-500:]})"
        for path in own:
            assert any(path == o or path.startswith(o.rstrip("/") + "/") for o in outs), (name, path, outs)
        for o in outs:
            assert any(p == o or p.startswith(o.rstrip("/") + "/") for p in produced), (name, o)
        for dep in stage.get("deps", []):
            dep = _resolve_dvc(dep, preset)
            assert (ROOT / dep).exists() or dep.startswith(f"results/{preset}/stages/"), (name, dep)
        # whole params files, the package and the stage's rule file: nothing hand-picked that could drift
        for entry in stage.get("params", []):
            for file, keys in entry.items():
                assert file in params and keys is None, (name, file, keys)
        assert "planet" in stage["deps"] and any(d.startswith("workflow/rules/") for d in stage["deps"]), name
        # common.smk defines the grid, the file names and the report's outputs every rule file uses
        assert "workflow/rules/common.smk" in stage["deps"], name
    # the upstream manifest each stage depends on is the output of the previous stage
    for down, up in (("train", "seeds"), ("evaluate", "train"), ("diagnostics", "train")):
        assert stages[down]["deps"][0] == next(iter(stages[up]["outs"][0])), (down, up)
    # the report waits for every result stage
    for up in ("evaluate", "train", "baselines", "cem_grid", "diagnostics"):
        assert next(iter(stages[up]["outs"][0])) in stages["report"]["deps"], up
    # the grid lives in params/pipeline.yaml only
    text = (ROOT / "dvc.yaml").read_text()
    assert "cartpole_swingup" not in text and "seed0" not in text


def test_dvc_names_no_agent_preset_and_plots_every_task_and_variant():
    """A fourth agent preset is tracked like the three of today (whole params files); `dvc plots show` draws one
    panel per task and one line per variant from the report's long curves.csv (the template facets by its columns)."""
    text = (ROOT / "dvc.yaml").read_text()
    body = text[text.index("stages:"):]
    for preset in yaml.safe_load((ROOT / "params/presets.yaml").read_text()):
        assert not re.search(rf"\b{preset}\.", body) and f"- {preset}\n" not in body, preset
    plots = yaml.safe_load(text)["plots"]
    (target, spec), = plots[0].items()
    assert target == "reports/${preset}/curves.csv" and (spec["x"], spec["y"]) == ("env_steps", "return_mean")
    template = json.loads((ROOT / spec["template"]).read_text())
    assert template["facet"]["field"] == "task"
    assert template["spec"]["encoding"]["color"]["field"] == "variant"
    assert "dvc_plots/" in (ROOT / ".gitignore").read_text().split()


# --------------------------------------------------------------------------------------------------------------
# The smoke pipeline end to end, interrupted once.


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(0.2)
    return False


@pytest.mark.slow
def test_smoke_pipeline_end_to_end_with_an_interruption(tmp_path):
    root = copy_pipeline(tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    runs = root / "results" / "smoke" / "runs"

    benchmarks = root / "results" / "smoke" / "benchmarks"
    first_seen: dict[Path, float] = {}

    def job_done(run: Path) -> bool:
        """The job of RUN ended a while ago: its run wrote summary.json and Snakemake its benchmark (written when
        the job's command has exited), seen >= 2 s ago so that Snakemake has also recorded the job as complete
        (a job killed in between is incomplete to Snakemake, which then deletes its outputs and reruns it)."""
        rel = run.relative_to(runs)
        done = (run / "summary.json").exists() and any(
            (benchmarks / rule / rel).with_suffix(".tsv").exists() for rule in ("train", "baseline"))
        if done:
            first_seen.setdefault(run, time.time())
        return done and time.time() - first_seen[run] >= 2.0

    def snapshot() -> tuple[list[Path], list[Path]]:
        """(finished runs, runs early in training: checkpointed at the end of the seed episodes, not finished)."""
        finished = [p.parent for p in runs.glob("*/*/seed*/summary.json") if job_done(p.parent)]
        early = []
        for p in runs.glob("*/*/seed*/progress.json"):
            try:
                episodes = json.loads(p.read_text())["episodes"]
            except (OSError, ValueError):
                continue
            if episodes <= 2 and not (p.parent / "summary.json").exists():  # debug preset: 2 seed episodes of 4
                early.append(p.parent)
        return finished, early

    proc = subprocess.Popen([*SNAKEMAKE, "--cores", "2", "--config", "preset=smoke"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    state: dict = {}

    def ready() -> bool:
        state["finished"], state["early"] = snapshot()
        return bool(state["finished"] and state["early"])

    assert _wait_for(ready, 400, proc), "no training job was caught early in its run"
    finished_before = {p / "summary.json": (p / "summary.json").stat().st_mtime_ns for p in state["finished"]}
    in_progress = state["early"]
    # The hardest interruption: the session dies, snakemake and its jobs with it (SIGKILL to the process group).
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    for run in in_progress:
        assert not (run / "summary.json").exists()

    snakemake(root, "--unlock")  # a killed snakemake leaves its lock behind (docs/pipeline.md: Interruptions)
    out = snakemake(root, "--cores", "2", "--config", "preset=smoke", timeout=900)
    log = out.stdout + out.stderr
    # finished jobs were kept, not rerun
    for path, mtime in finished_before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was recomputed"
    # interrupted training continued from its checkpoint
    train_logs = {run: (root / "results/smoke/logs/train" / run.relative_to(runs)).with_suffix(".log")
                  for run in in_progress}
    assert any("resumed" in p.read_text() for p in train_logs.values()), log[-3000:]

    report = root / "reports" / "smoke"
    for name in ["table1.md", "table1.tex", "table1.csv", "README.md", "metrics/cartpole_swingup.json", "curves.csv"]:
        assert (report / name).stat().st_size > 0, name
    for fig in ["curves", "ablation_models", "ablation_agents", "ablation_overshooting", "ablation_activations",
                "multitask", "cem_grid", "state_diagnostics", "aggregate", "performance_profile"]:
        for ext in ("png", "pdf"):
            assert (report / "figures" / f"{fig}.{ext}").stat().st_size > 0
    assert (report / "figures" / "openloop_planet.png").exists()
    assert (report / "figures" / "openloop_multitask.png").exists()  # the multi-task agent's, per task (Fig. 7)
    table = (report / "table1.csv").read_text()
    for row in ["PlaNet (RSSM)", "Stochastic (SSM)", "Random shooting", "A3C", "D4PG", "CEM + true simulator",
                "SAC + random shift (pixels, SB3)", "CEM + true simulator (here)"]:
        assert row in table
    metrics = {p.stem: json.loads(p.read_text()) for p in (report / "metrics").glob("*.json")}
    assert set(metrics) == {"cartpole_swingup", "reacher_easy", "cheetah_run", "finger_spin", "cup_catch",
                            "walker_walk"}
    assert {v for v, cells in metrics.items() if "gru" in cells} == {"cartpole_swingup"}
    readme = (report / "README.md").read_text()
    assert "figures/curves.png" in readme and "ablation_agents.png" in readme
    assert "Activation functions (paper Fig. 9)" in readme and "ablation_activations.png" in readme
    assert "CEM hyperparameters with the true simulator (paper Fig. 12)" in readme and "cem_grid.png" in readme
    assert "State diagnostics (paper Fig. 11)" in readme and "state_diagnostics.png" in readme
    import pandas as pd

    cem = pd.read_csv(report / "cem_grid.csv")  # every point of the smoke grid ran (5 jobs, 8 rows: 4 panels)
    assert len(cem) == 8 and (cem["episodes"] == 1).all() and cem["return_mean"].notna().all()
    diagnosed = pd.read_csv(report / "figures" / "state_diagnostics.csv")  # the figure's five variants on cartpole
    assert set(diagnosed["variant"]) == {"planet", "gru", "ssm", "overshooting", "drnn"}
    assert {t for t, cells in metrics.items() if "ssm_elu" in cells} == {"cartpole_swingup"}

    # Every training run of the grid, checked once here (tests/test_train.py does not train them again): each
    # variant on cartpole and PlaNet on the six tasks, with the debug preset's 4 episodes (2 of them seed episodes).
    _check_trained_runs(root, runs)

    # MLflow: one store, one experiment for the study (everything of preset smoke in one view), every run tagged
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiments = {e.name: e for e in client.search_experiments()}
    assert {"planet-smoke", "planet-reports"} <= set(experiments)
    assert "Pipeline preset 'smoke'" in experiments["planet-smoke"].tags["mlflow.note.content"]
    study = client.search_runs([experiments["planet-smoke"].experiment_id])
    by_family = {f: [r for r in study if r.data.tags.get("family") == f]
                 for f in ("agents", "ablations", "baselines", "cem_grid")}
    smoke = yaml.safe_load((root / "params/pipeline.yaml").read_text())["presets"]["smoke"]
    assert len(study) == sum(map(len, by_family.values()))  # every run carries its family
    # PlaNet on six tasks, and one multi-task run (Figs. 6, 7) trained on the preset's multitask_tasks at once
    multitask = [r for r in by_family["agents"] if r.data.tags["variant"] == "multitask"]
    assert len(multitask) == 1 and multitask[0].data.tags["task"] == "+".join(smoke["multitask_tasks"])
    assert all(f"eval/{t}/return_mean" in multitask[0].data.metrics for t in smoke["multitask_tasks"])
    assert len(by_family["agents"]) == 7 and len(by_family["ablations"]) == len(smoke["variants"]) - 2
    baseline_runs = by_family["baselines"]
    assert len(baseline_runs) == 2
    assert {r.data.tags["variant"] for r in baseline_runs} == {"sac", "simulator"}
    assert all("test/return_mean" in r.data.metrics for r in baseline_runs)
    cem_runs = by_family["cem_grid"]  # one run per grid point, named by its planner sizes
    assert len({r.info.run_name for r in cem_runs}) == len(cem_runs) == 5
    assert all(r.info.run_name.startswith("cem_grid-cheetah_run-seed0-H") for r in cem_runs)
    for run in [r for r in by_family["agents"] + by_family["ablations"] if r.data.tags["variant"] != "multitask"]:
        tags = run.data.tags
        assert {"task", "seed", "agent_preset", "variant", "pipeline_preset", "params_hash"} <= set(tags), tags
        assert tags["pipeline_preset"] == "smoke" and tags["agent_preset"] == "debug"
        assert run.info.run_name == f"{tags['variant']}-{tags['task']}-seed{tags['seed']}"  # names never collide
        assert "test/return_mean" in run.data.metrics and "eval/return_mean" in run.data.metrics
        if tags["variant"] in ("planet", "gru", "ssm", "overshooting", "drnn") and tags["task"] == "cartpole_swingup":
            assert "diagnostics/r2/position/d0" in run.data.metrics  # `planet diagnose` logged to the run
    names = {name: e.experiment_id for name, e in experiments.items()}
    report_runs = client.search_runs([names["planet-reports"]])
    assert len(report_runs) == 1
    assert report_runs[0].data.tags["pipeline_preset"] == "smoke" and "git_commit" in report_runs[0].data.tags
    artifacts = [a.path for a in client.list_artifacts(report_runs[0].info.run_id, "report")]
    assert "report/table1.md" in artifacts

    # a second invocation has nothing to do
    again = snakemake(root, "-n", "--cores", "2", "--config", "preset=smoke")
    assert "Nothing to be done" in again.stdout + again.stderr

    # editing the CEM horizon reruns training (and what follows), never seed collection: Snakemake decides per job
    presets = root / "params/presets.yaml"
    debug = yaml.safe_load(presets.read_text())["debug"]
    assert debug["planner"]["horizon"] == 3
    text = presets.read_text()
    start = text.index("\ndebug:")
    presets.write_text(text[:start] + text[start:].replace("    horizon: 3\n", "    horizon: 2\n", 1))
    assert yaml.safe_load(presets.read_text())["debug"]["planner"]["horizon"] == 2
    edited = snakemake(root, "-n", "--cores", "2", "--config", "preset=smoke")
    counts = job_counts(edited.stdout + edited.stderr)
    assert counts.get("train", 0) > 0 and "collect_seed_episodes" not in counts, counts


def test_slurm_profile_dry_run(tmp_path):
    """The cluster profiles resolve, and the GPU request follows the pipeline preset in the one form the SLURM plugin
    expects: the rules' `gpu` resource (-> sbatch --gpus=1), never also a `gres` (SLURM rejects --gres + --gpus)."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string

    class Resources(dict):
        __getattr__ = dict.__getitem__

    def jobs(out: str) -> list[tuple[str, str, dict, list[str]]]:
        """(rule, wildcards, resources, GPU part of the plugin's sbatch call) of every job a dry run lists."""
        found = []
        for rule, body in re.findall(r"^(?:local)?rule (\w+):\n((?:    .*\n?)+)", out, flags=re.M):
            fields = dict(line.strip().split(": ", 1) for line in body.splitlines() if ": " in line)
            items = (i.split("=", 1) for i in fields.get("resources", "").split(", ") if "=" in i)
            res = Resources({k: int(v) if v.isdigit() else v for k, v in items})
            gpu_args = set_gres_string(SimpleNamespace(resources=res)).split()
            found.append((rule, fields.get("wildcards", ""), res, gpu_args))
        return found

    root = copy_pipeline(tmp_path)
    pipeline = yaml.safe_load((root / "params/pipeline.yaml").read_text())
    kinds = {name: baseline["kind"] for name, baseline in pipeline["baselines"].items()}
    # A GPU preset on the GPU profile: train, evaluate and SAC ask for one GPU, everything else for none.
    proc = snakemake(root, "-n", "--workflow-profile", "profiles/slurm", "--config", "preset=paper")
    gpu_jobs = jobs(proc.stdout + proc.stderr)
    assert {rule for rule, *_ in gpu_jobs} >= {"collect_seed_episodes", "train", "evaluate", "baseline"}
    for rule, wildcards, res, gpu_args in gpu_jobs:
        baseline = wildcards.split(",")[0].removeprefix("baseline=")
        wants_gpu = (rule in ("train", "train_multitask", "evaluate", "diagnose")
                     or (rule == "baseline" and kinds[baseline] == "sac"))
        assert "gres" not in res and gpu_args == (["--gpus=1"] if wants_gpu else []), (rule, wildcards, res)
    train = next(res for rule, _, res, _ in gpu_jobs if rule == "train")
    assert train["mem_mb"] == 16000 and train["runtime"] == 2880, train
    # A CPU preset on the CPU profile: no GPU request at all.
    proc = snakemake(root, "-n", "--workflow-profile", "profiles/slurm-cpu", "--config", "preset=cpu")
    out = proc.stdout + proc.stderr
    assert job_counts(out)["train"] == 9
    cpu_jobs = jobs(out)
    assert {rule for rule, *_ in cpu_jobs} >= {"collect_seed_episodes", "train", "evaluate", "baseline"}
    for rule, wildcards, res, gpu_args in cpu_jobs:
        assert "gres" not in res and res.get("gpu", 0) == 0 and gpu_args == [], (rule, wildcards, res)
    for profile in ("slurm", "slurm-cpu"):
        settings = yaml.safe_load((root / "profiles" / profile / "profile.yaml").read_text())
        assert settings["executor"] == "slurm" and settings["slurm-status-command"] == "squeue", settings


def _check_trained_runs(root: Path, runs: Path) -> None:
    """Per run of the smoke grid: finite losses, its episodes shaped by its task's action repeat with actions in
    [-1, 1], random seed episodes then MPC (random throughout for random collection), the variant's overrides in
    its config, a model and a labelled open-loop strip."""
    import math

    import numpy as np

    from planet import config as config_lib
    from planet.replay import load_episode
    from planet.tasks import TASKS
    from planet.tracking import read_metrics

    grid = yaml.safe_load((root / "params/pipeline.yaml").read_text())
    smoke = grid["presets"]["smoke"]
    single = [v for v in smoke["variants"] if not grid["variants"][v].get("multitask")]  # tests/test_multitask.py
    checked = 0
    for variant in single:
        overrides = {**grid["variants"][variant]["overrides"], **smoke.get("variant_overrides", {}).get(variant, {})}
        for run in sorted((runs / variant).glob("*/seed0")):
            task, checked = run.parent.name, checked + 1
            summary = json.loads((run / "summary.json").read_text())
            assert (summary["task"], summary["episodes"]) == (task, 4), run
            trained = [r for r in read_metrics(run / "metrics.jsonl") if "train/loss/total" in r]
            assert trained and all(math.isfinite(r["train/loss/total"]) for r in trained), run
            flat = config_lib.load(run / "config.yaml").flat()
            assert all(flat[k] == v for k, v in overrides.items()), (run, overrides)
            steps = flat["env.episode_env_steps"] // TASKS[task].action_repeat
            policies = []
            for path in sorted((run / "episodes").glob("episode_*.npz")):
                episode, meta = load_episode(path)
                assert episode["obs"].shape == (steps + 1, 64, 64, 3) and np.abs(episode["action"]).max() <= 1
                assert (meta["task"], meta["action_repeat"]) == (task, TASKS[task].action_repeat)
                policies.append(meta["policy"])
            later = "random" if variant == "random_collection" else "mpc"
            assert policies == ["random", "random", later, later], (run, policies)
            assert (run / "model.pt").is_file() and (run / "eval/openloop.png").is_file()
    assert checked == 6 + len(single) - 1  # planet on six tasks, each ablation on cartpole


# --------------------------------------------------------------------------------------------------------------
# What each DVC stage runs: its deps name every file of code its command reaches.


def _rule_files(root: Path) -> tuple[dict[str, str], list[str]]:
    """{rule: the file defining it} over the Snakefile and its includes, and the included files that define no
    rule (common.smk: the grid every rule reads)."""
    files = ["Snakefile", *re.findall(r'^include: "(.+)"', (root / "Snakefile").read_text(), re.M)]
    defined = {f: re.findall(r"^(?:rule|checkpoint) (\w+):", (root / f).read_text(), re.M) for f in files}
    return {r: f for f, rules in defined.items() for r in rules}, [f for f in files[1:] if not defined[f]]


def test_every_dvc_stage_lists_the_code_its_command_runs(tmp_path):
    """A stage's deps name the Snakefile, the package, the included files of no rule (common.smk) and the file of
    every rule its target reaches, beyond the rules of the stages whose manifests it depends on (those stages
    track them); read from Snakemake's rule graph of every stage target (no job runs)."""
    root = copy_pipeline(tmp_path)
    stages = _dvc_stages()
    targets = {name: stage["cmd"].split()[-1] for name, stage in stages.items()}
    dot = snakemake(root, "--rulegraph", "--forceall", "--cores", "1", *targets.values(),
                    "--config", "preset=smoke").stdout
    label = dict(re.findall(r'^\s*(\d+)\[label = "(\w+)"', dot, re.M))
    parents: dict[str, set[str]] = {}
    for src, dst in re.findall(r"^\s*(\d+) -> (\d+)", dot, re.M):
        parents.setdefault(label[dst], set()).add(label[src])

    def reached(rule: str) -> set[str]:
        seen, todo = set(), [rule]
        while todo:
            r = todo.pop()
            if r not in seen:
                seen.add(r)
                todo += parents.get(r, ())
        return seen

    rule_file, shared = _rule_files(ROOT)
    manifests = {next(iter(stage["outs"][0])): name for name, stage in stages.items()}
    missing = {}
    for name, stage in stages.items():
        upstream = [manifests[d] for d in stage["deps"] if d in manifests]
        own = reached(targets[name]) - set().union(*(reached(targets[u]) for u in upstream))
        need = {"Snakefile", "planet", *shared, *(rule_file[r] for r in own)}
        if need - set(stage["deps"]):
            missing[name] = sorted(need - set(stage["deps"]))
    assert not missing, f"dvc.yaml: stages run code their deps do not list ({missing}); add it to their deps"
