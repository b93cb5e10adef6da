# Config validation and the job grid. Nothing here runs a job.

import dataclasses
import functools
import json
import os
import shlex
from pathlib import Path

from snakemake.utils import validate

from planet import baselines as baseline_config
from planet import cem_grid as cem_grid_lib
from planet import config as agent_config
from planet import diagnostics as diagnostics_lib
from planet import resources as resources_lib
from planet.report.grid import figure_specs
from planet.report.record import RECORD_DIR, RECORD_FILE, record_path
from planet import tasks as task_table
from planet.tracking import resolve_tracking_uri

validate(config, "../schemas/config.schema.yaml")
# Task names are planet/tasks.py's (the one task table; the schema types them as strings): every preset's are checked,
# so a misspelt task fails in one line whichever preset runs.
for _name, _preset in config["presets"].items():
    task_table.check_preset_tasks(_preset, f"config: presets.{_name}")

PRESET = str(config["preset"])
if PRESET not in config["presets"]:
    raise ValueError(
        f"config: unknown preset '{PRESET}'; valid presets: {', '.join(config['presets'])} "
        "(choose with --config preset=NAME)"
    )
P = config["presets"][PRESET]
for _v in P["variants"]:
    if _v not in config["variants"]:
        raise ValueError(
            f"config: preset '{PRESET}' lists unknown variant '{_v}'; valid variants: {', '.join(config['variants'])}"
        )
for _v in P.get("variant_overrides", {}):
    if _v not in config["variants"]:
        raise ValueError(f"config: presets.{PRESET}.variant_overrides names unknown variant '{_v}'")
# The report's figures (`figures:`), each with the variants it draws: every variant a figure names must be defined
# under `variants:`, and every kind be one of the report's figure registry.
FIGURES = figure_specs(config)

# The device every train, evaluate and baseline job is given explicitly: a GPU preset fails in seconds on a node
# without CUDA (instead of training on the CPU for days), and a CPU preset never takes a GPU it did not declare.
DEVICE = "cuda" if P["gpu"] else "cpu"
RESULTS = f"results/{PRESET}"
REPORT_DIR = f"reports/{PRESET}"
TASKS = list(P["tasks"])
# Ablations (every variant not in the `agents` family) may run on fewer tasks than the agent itself.
ABLATION_TASKS = list(P.get("ablation_tasks", TASKS))
for _t in ABLATION_TASKS:
    if _t not in TASKS:
        raise ValueError(f"config: presets.{PRESET}.ablation_tasks: '{_t}' is not in its tasks {TASKS}")
SEEDS = [int(s) for s in P["seeds"]]
VARIANTS = list(P["variants"])
# One agent for all tasks (paper Figs. 6, 7; workflow/rules/multitask.smk): variants marked `multitask: true` train
# one job per seed on the preset's `multitask_tasks`, whose per-task views are the variant's runs.
MULTITASK_VARIANTS = [v for v in VARIANTS if config["variants"][v].get("multitask")]
MULTITASK_TASKS = list(P.get("multitask_tasks", TASKS))
for _t in MULTITASK_TASKS:
    if _t not in TASKS:
        raise ValueError(f"config: presets.{PRESET}.multitask_tasks: '{_t}' is not in its tasks {TASKS}")
TRACKING_URI = resolve_tracking_uri(config["tracking_uri"])
BASELINES = list(P.get("baselines", []))
for _b in BASELINES:
    if _b not in config.get("baselines", {}):
        raise ValueError(
            f"config: preset '{PRESET}' lists unknown baseline '{_b}'; valid baselines: "
            f"{', '.join(config.get('baselines', {}))}"
        )
for _b in P.get("baseline_seeds", {}):
    if _b not in BASELINES:
        raise ValueError(f"config: presets.{PRESET}.baseline_seeds names '{_b}', which the preset does not run")
BASELINE_TASKS = list(P.get("baseline_tasks", TASKS))
for _t in BASELINE_TASKS:
    if _t not in TASKS:
        raise ValueError(f"config: presets.{PRESET}.baseline_tasks: '{_t}' is not in its tasks {TASKS}")
_clash = set(config["variants"]) & set(config.get("baselines", {}))
if _clash:
    raise ValueError(f"config: {sorted(_clash)} is both a variant and a baseline; names must differ")

wildcard_constraints:
    task="|".join(TASKS),
    variant="|".join(config["variants"]),
    baseline="|".join(config.get("baselines", {})) or "^$",
    seed=r"\d+",


# One MLflow experiment per study (pipeline preset): PlaNet, its ablations and the baselines side by side in one view,
# told apart by the tags `variant` and `family` (the report runs go to `planet-reports`).
EXPERIMENT = f"planet-{PRESET}"


def overrides(variant: str) -> dict:
    """Agent-config overrides of one variant in this preset: preset-wide, then variant, then preset x variant."""
    out = dict(P.get("overrides", {}))
    out.update(config["variants"][variant]["overrides"])
    out.update(P.get("variant_overrides", {}).get(variant, {}))
    out["run.experiment"] = EXPERIMENT
    return out


def override_args(variant: str) -> str:
    return " ".join(shlex.quote(f"{k}={json.dumps(v)}") for k, v in overrides(variant).items())


def resolved(variant: str, task: str, seed: int) -> agent_config.Config:
    """The agent config of one job, validated now so that a bad key fails the DAG, naming the job."""
    items = [f"{k}={json.dumps(v)}" for k, v in overrides(variant).items()]
    try:
        return agent_config.resolve(task, P["agent_preset"], int(seed), items)
    except ValueError as exc:
        raise ValueError(f"config: variant '{variant}', task '{task}' (preset '{PRESET}'): {exc}") from None


def variant_tasks(variant: str) -> list[str]:
    if variant in MULTITASK_VARIANTS:
        return MULTITASK_TASKS
    return TASKS if config["variants"][variant]["family"] == "agents" else ABLATION_TASKS


# Validate every (variant, task) of the grid up front.
for _v in VARIANTS:
    for _t in variant_tasks(_v):
        resolved(_v, _t, SEEDS[0])


# The multi-task job's task: "all" for the six tasks (the paper's experiment), else the tasks joined by "+" (e.g. the
# smoke preset's two); validated now, like every job of the grid.
MULTITASK_TASK = task_table.ALL_TASKS if MULTITASK_TASKS == list(task_table.TASKS) else "+".join(MULTITASK_TASKS)
for _v in MULTITASK_VARIANTS:
    resolved(_v, MULTITASK_TASK, SEEDS[0])


# Memory (planet/resources.py): the training rules declare `mem_mb`, their run's estimate at its last episode. On one
# machine (`snakemake --cores N`: profiles/default) the limit is the memory a process may use here (MemAvailable,
# cgroup, SLURM allocation) unless `--resources mem_mb=N` sets one, so Snakemake starts no more trainings at once than
# fit; a job above the limit declares the limit, runs alone, and `planet train` refuses it in one line if it cannot
# fit. Cluster runs (`--jobs N`: the SLURM profiles, whose set-resources give each rule its mem_mb) get no limit.
def _memory_limit_mb() -> int | None:
    if "mem_mb" in workflow.global_resources:  # --resources mem_mb=N, or a profile's `resources: mem_mb:`
        return workflow.global_resources["mem_mb"].value
    if workflow.resource_settings.nodes is not None or workflow.exec_mode.name != "DEFAULT":
        return None
    available, _ = resources_lib.available_memory()
    if available is None:
        return None
    workflow.register_resource("mem_mb", int(available // 1e6))
    return int(available // 1e6)


MEM_LIMIT_MB = _memory_limit_mb()


@functools.cache
def job_mem_mb(variant: str, task: str) -> int:
    """A training job's `resources: mem_mb` (the seed changes nothing), at most the limit."""
    mem_mb = resources_lib.estimate(resolved(variant, task, SEEDS[0])).mem_mb
    return min(mem_mb, MEM_LIMIT_MB) if MEM_LIMIT_MB else mem_mb


def multitask_dir(variant, seed) -> str:
    """The multi-task run itself (its per-task views are `run_dir(variant, task, seed)`)."""
    return f"{RESULTS}/multitask/{variant}/seed{seed}"


def baseline_seeds(name: str) -> list[int]:
    return [int(s) for s in P.get("baseline_seeds", {}).get(name, SEEDS)]


def baseline_items(name: str) -> list[str]:
    return [f"{k}={json.dumps(v)}" for k, v in config["baselines"][name]["overrides"].items()]


def baseline_settings(name: str, task: str, seed: int) -> str:
    """Everything a baseline run depends on (a params value of its rule: a change reruns it); validated now."""
    try:
        agent, settings = baseline_config.resolve(task, P["agent_preset"], int(seed), baseline_items(name))
    except ValueError as exc:
        raise ValueError(f"config: baseline '{name}', task '{task}' (preset '{PRESET}'): {exc}") from None
    kind = config["baselines"][name]["kind"]
    sub = agent.to_dict()["planner"] if kind == "simulator" else agent.to_dict()["train"]
    payload = {"env": agent.to_dict()["env"], "eval": agent.to_dict()["eval"], "agent": sub,
               kind: getattr(settings, kind).__dict__}
    return json.dumps(payload, sort_keys=True)


for _b in BASELINES:
    for _t in BASELINE_TASKS:
        baseline_settings(_b, _t, baseline_seeds(_b)[0])
# Entries no preset of this run uses are validated too (on the first task), so a typo surfaces before the preset
# that needs it runs.
for _b in set(config.get("baselines", {})) - set(BASELINES):
    baseline_settings(_b, TASKS[0], SEEDS[0])


def baseline_grid(pattern) -> list[str]:
    return [pattern(b, t, s) for b in BASELINES for t in BASELINE_TASKS for s in baseline_seeds(b)]


# CEM with the true simulator over its hyperparameters (paper Fig. 12; workflow/rules/cem_grid.smk): the preset's
# `cem_grid:`, one job per grid point (planet/cem_grid.py); None: this preset has no grid, hence no such jobs.
try:
    CEM_GRID = cem_grid_lib.preset_grid(config, PRESET)
except ValueError as _exc:
    raise ValueError(str(_exc)) from None  # its one line ("config: presets.P.cem_grid.KEY: ..."), no chain
CEM_POINTS = {p.name: p for p in CEM_GRID.points()} if CEM_GRID else {}


def cem_items(point: str) -> list[str]:
    """The baseline-setting overrides of one grid point: its CEM sizes and the test episodes."""
    return [*CEM_POINTS[point].overrides(), f"simulator.episodes={CEM_GRID.episodes}"]


def cem_settings(point: str) -> str:
    """Everything a grid point's run depends on (a params value: a change reruns it); validated now."""
    try:
        agent, settings = baseline_config.resolve(CEM_GRID.task, P["agent_preset"], CEM_GRID.seed, cem_items(point))
    except ValueError as exc:
        raise ValueError(f"config: presets.{PRESET}.cem_grid, point {point}: {exc}") from None
    return json.dumps({"env": agent.to_dict()["env"], "simulator": settings.simulator.__dict__}, sort_keys=True)


for _point in CEM_POINTS:
    cem_settings(_point)


def cem_grid_dir(point: str) -> str:
    return str(cem_grid_lib.point_dir(RESULTS, CEM_GRID, CEM_POINTS[point]))


def cem_grid_files() -> list[str]:
    """The summaries of every grid point of this preset (none without a grid)."""
    return [f"{cem_grid_dir(p)}/summary.json" for p in CEM_POINTS]


# State diagnostics (paper Fig. 11; workflow/rules/diagnostics.smk): every run of the variants drawn in a figure of
# kind state_diagnostics, on the tasks of the preset's `diagnostics:` block; a preset without the block runs none.
# Settings: params/diagnostics.yaml (the agent preset's block), then the block's `overrides`.
DIAGNOSTICS = P.get("diagnostics")
DIAGNOSTICS_VARIANTS = [
    v for v in VARIANTS
    if DIAGNOSTICS is not None and any(s.kind == "state_diagnostics" and v in s.variants for s in FIGURES.values())
]
DIAGNOSTICS_TASKS = list((DIAGNOSTICS or {}).get("tasks", TASKS))
for _t in DIAGNOSTICS_TASKS:
    if _t not in TASKS:
        raise ValueError(f"config: presets.{PRESET}.diagnostics.tasks: '{_t}' is not in its tasks {TASKS}")
if DIAGNOSTICS is not None and not DIAGNOSTICS_VARIANTS:
    raise ValueError(
        f"config: presets.{PRESET}.diagnostics: none of its variants appears in a figure of kind state_diagnostics "
        "(name them under the figure's `variants:`)"
    )
DIAGNOSTICS_OVERRIDES = diagnostics_lib.override_items((DIAGNOSTICS or {}).get("overrides", {}))
# Resolved now, so that a bad key fails the DAG; a param of the rule, so that a changed setting reruns the jobs.
DIAGNOSTICS_SETTINGS = ""
if DIAGNOSTICS is not None:
    try:
        _settings = diagnostics_lib.resolve_settings(P["agent_preset"], DIAGNOSTICS_OVERRIDES)
    except ValueError as _exc:
        raise ValueError(f"config: presets.{PRESET}.diagnostics (agent preset '{P['agent_preset']}'): {_exc}") from None
    DIAGNOSTICS_SETTINGS = json.dumps(dataclasses.asdict(_settings), sort_keys=True)


def diagnostics_file(variant, task, seed) -> str:
    return f"{RESULTS}/diagnostics/{variant}/{task}/seed{seed}.json"


def diagnostics_grid(pattern) -> list[str]:
    """The preset's diagnosed runs: every seed of the diagnostics variants on the diagnostics tasks they run on."""
    return [pattern(v, t, s) for v in DIAGNOSTICS_VARIANTS for t in variant_tasks(v) if t in DIAGNOSTICS_TASKS
            for s in SEEDS]


def seed_settings(task: str, seed: int) -> str:
    """What the seed episodes depend on (params of the collect rule: a change reruns it, nothing else does)."""
    cfg = resolved("planet", task, seed)
    return json.dumps({"env": cfg.to_dict()["env"], "seed_episodes": cfg.train.seed_episodes}, sort_keys=True)


def run_dir(variant, task, seed) -> str:
    return f"{RESULTS}/runs/{variant}/{task}/seed{seed}"


def eval_file(variant, task, seed) -> str:
    return f"{RESULTS}/eval/{variant}/{task}/seed{seed}.json"


def grid(pattern, multitask: bool = True) -> list[str]:
    """`pattern(variant, task, seed)` over the preset's runs; multitask=False leaves out the multi-task variants'
    per-task views (they are not run directories of their own: no held-out `planet evaluate` of them)."""
    return [pattern(v, t, s) for v in VARIANTS if multitask or v not in MULTITASK_VARIANTS
            for t in variant_tasks(v) for s in SEEDS]


def stage_manifest(stage: str) -> str:
    """The small file a DVC stage tracks as its output (lists the stage's results; see dvc.yaml)."""
    return f"{RESULTS}/stages/{stage}.json"


def report_files() -> list[str]:
    """The report's files besides its figures/ and metrics/ (the report rule's outputs; DVC's report stage tracks
    their manifest). Not its record/ (planet/report/record.py): committed, it outlives the runs, never deleted."""
    return [f"{REPORT_DIR}/{name}" for name in
            ("table1.md", "table1.csv", "table1.tex", "README.md", "curves.csv", "aggregate.csv",
             "performance_profile.csv", "episodes_needed.csv")]


# The campaign's task order (workflow/rules/campaign.smk's `next_task` target; default: the preset's tasks).
CAMPAIGN_ORDER = list(P.get("campaign_order", TASKS))
if sorted(CAMPAIGN_ORDER) != sorted(TASKS):
    raise ValueError(
        f"config: presets.{PRESET}.campaign_order must list the preset's tasks {TASKS} in some order, "
        f"got {CAMPAIGN_ORDER}"
    )


def task_runs(task: str) -> list[tuple[str, int]]:
    """(variant, seed) of every single-task run on `task`."""
    return [(v, s) for v in VARIANTS if v not in MULTITASK_VARIANTS and task in variant_tasks(v) for s in SEEDS]


def task_evals(task: str) -> list[str]:
    """The held-out evaluation files that finish `task`: every single-task variant and seed that runs on it."""
    return [eval_file(v, task, s) for v, s in task_runs(task)]


def task_done(task: str) -> bool:
    """Every run on `task` has its held-out evaluation on disk, or its record in the committed report (a campaign's
    run directories go with their machine; its report's record stays: planet/report/record.py)."""
    return all(os.path.exists(eval_file(v, task, s))
               or os.path.exists(record_path(f"{REPORT_DIR}/{RECORD_DIR}", v, task, s) / RECORD_FILE)
               for v, s in task_runs(task))


def next_campaign_task() -> str | None:
    """The first task of `campaign_order` not done (`task_done`); None once every task is done."""
    return next((t for t in CAMPAIGN_ORDER if not task_done(t)), None)


NEXT_TASK = next_campaign_task()


def check_machine() -> None:
    """The Snakefile's onstart check (see there): exit 1 with one line if this preset needs a GPU torch cannot see."""
    if not workflow.local_exec:
        return
    import sys

    import torch

    fits = [name for name, p in config["presets"].items() if not p.get("gpu")]
    if P["gpu"] and not torch.cuda.is_available():
        print(
            f"config: preset '{PRESET}' trains on a GPU (gpu: true in params/pipeline.yaml) and torch sees none on "
            f"this machine; presets for a CPU: {', '.join(fits)} (e.g. snakemake --cores 2 --config preset=cpu100k "
            "next_task), or submit to GPU nodes with --workflow-profile profiles/slurm",
            file=sys.stderr,
        )
        sys.exit(1)
    if not P["gpu"] and torch.cuda.is_available():
        print(f"warning: preset '{PRESET}' is CPU-sized (gpu: false) and runs on the CPU; this machine has a GPU "
              "(the paper preset uses it)", file=sys.stderr)
