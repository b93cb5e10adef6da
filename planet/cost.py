"""`planet cost`: what a pipeline preset's jobs will take, before they run.

Jobs are counted by Snakemake itself (`snakemake -n --forceall`; without `--forceall`, the jobs it would still run),
so no second list of jobs is kept here. A job's hours come from the report's model of a run
(`planet.report.costs.project_hours`: the C updates of a training episode cost the same on every task; collection
and evaluation scale with agent steps = episode env steps / action repeat), fed with seconds per unit measured now
(`measure_units`: an update, an agent step of the model for 1 and M beliefs, at the preset's sizes and precision,
eager, and an environment step with its frame per task) or from a report's compute.csv (`RecordPrices`). Priced: seed
collection, training (single- and multi-task) and held-out evaluation; the baselines, the CEM grid and the state
diagnostics are counted, not priced (their measured costs are in docs/pipeline.md), nor are bookkeeping rules.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from planet import config as config_lib
from planet.report.costs import agent_steps, project_hours
from planet.report.runs import finite
from planet.tasks import TASKS, task_list
from planet.utils import PlanetError

PRICED = ("collect_seed_episodes", "train", "train_multitask", "evaluate")
UNPRICED = {"baseline": "not priced: SAC and CEM with the true simulator (measured costs: docs/pipeline.md)",
            "cem_grid": "not priced: CEM with the true simulator (measured costs: docs/pipeline.md)",
            "diagnose": "not priced (docs/pipeline.md: about a 10-episode evaluation)",
            "collect_seed_episodes": "not priced: a record does not time seed episodes"}
NO_TASK = "(several or none)"


@dataclass(frozen=True)
class Job:
    """One job of the DAG: its rule and wildcards, as `snakemake -n` prints them."""

    rule: str
    wildcards: Mapping[str, str] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.wildcards.get("task") or self.wildcards.get("cem_task") or NO_TASK


def parse_dry_run(text: str) -> list[Job]:
    """The jobs of a `snakemake -n` listing ("rule NAME:" or "localrule NAME:", then an indented "wildcards: k=v,
    ..."), checked against its "Job stats" total, so that a change of Snakemake's format fails in one line."""
    jobs: list[Job] = []
    for line in text.splitlines():
        if m := re.match(r"(?:local)?rule (\w+):$", line):
            jobs.append(Job(m.group(1)))
        elif jobs and (m := re.match(r"\s+wildcards: (.*)$", line)):
            jobs[-1] = Job(jobs[-1].rule, dict(item.split("=", 1) for item in m.group(1).split(", ")))
    total = re.search(r"^total\s+(\d+)\s*$", text, re.MULTILINE)
    if (int(total.group(1)) if total else 0) != len(jobs):
        raise PlanetError(f"snakemake -n counted {total.group(1) if total else 'no'} jobs, planet/cost.py parsed "
                          f"{len(jobs)}: parse_dry_run does not read this Snakemake version's listing")
    return jobs


def snakemake_jobs(preset: str, root: Path, remaining: bool = False) -> list[Job]:
    """The preset's jobs from a Snakemake dry run in `root` (the Snakefile's directory): all of them, or only those
    Snakemake would run now (`remaining`)."""
    cmd = [sys.executable, "-m", "snakemake", "-n", "--cores", "1", "--config", f"preset={preset}",
           *(() if remaining else ("--forceall",))]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    if proc.returncode:
        last = next((ln for ln in reversed((proc.stderr + proc.stdout).splitlines()) if ln.strip()), "")
        raise PlanetError(f"the Snakemake dry run of preset '{preset}' failed in {root}: {last.strip()}")
    return parse_dry_run(proc.stdout + proc.stderr)


def pipeline_root() -> Path:
    """The directory of the Snakefile: the working directory, else the checkout the package runs from."""
    for root in (Path.cwd(), Path(__file__).resolve().parents[1]):
        if (root / "Snakefile").is_file():
            return root
    raise PlanetError("no Snakefile in the working directory or beside the planet package: run `planet cost` from "
                      "the repository root")


def job_configs(pipeline: Mapping, preset: str) -> Callable[[Job], config_lib.Config | None]:
    """The resolved agent config of a priced job (None for other kinds), its overrides merged as workflow/rules/
    common.smk `overrides` merges them; seed collection takes the `planet` variant's, as collect.smk does."""
    P = pipeline["presets"][preset]
    multitask = list(P.get("multitask_tasks", P["tasks"]))
    multitask_name = "all" if multitask == list(TASKS) else "+".join(multitask)

    @functools.cache
    def resolve(variant: str, task: str) -> config_lib.Config:
        merged = {**P.get("overrides", {}), **pipeline["variants"][variant]["overrides"],
                  **P.get("variant_overrides", {}).get(variant, {})}
        return config_lib.resolve(task, P["agent_preset"], 0, [f"{k}={json.dumps(v)}" for k, v in merged.items()])

    def config(job: Job) -> config_lib.Config | None:
        if job.rule not in PRICED:
            return None
        variant = "planet" if job.rule == "collect_seed_episodes" else job.wildcards["variant"]
        return resolve(variant, multitask_name if job.rule == "train_multitask" else job.task)

    return config


@dataclass
class Units:
    """Seconds of the work jobs repeat: one update, one agent step of the model for n beliefs (`step_s[n]`), one
    environment step with its frame per task (`env_s[task]`); `source` says where they came from."""

    update_s: float
    step_s: dict[int, float]
    env_s: dict[str, float]
    source: str = ""


def measured_hours(job: Job, cfg: config_lib.Config, units: Units, test_episodes: int) -> float | None:
    """Hours of a priced job from measured units: training on the trainer's schedule (`project_hours`; random
    collection plans nothing; the multi-task job collects its own seed rounds); `test_episodes` batched to evaluate."""
    steps = {t: agent_steps(cfg.to_dict(), t) for t in task_list(cfg.task)}
    random_s = sum(n * units.env_s[t] for t, n in steps.items())
    if job.rule == "collect_seed_episodes":
        return cfg.train.seed_episodes * random_s / 3600
    if job.rule == "evaluate":
        return sum(n * (units.step_s[test_episodes] + test_episodes * units.env_s[t]) for t, n in steps.items()) / 3600
    plan, m = 0.0 if cfg.collect.policy == "random" else units.step_s[1], cfg.eval.episodes
    ref = {"planned_episodes": cfg.train.episodes, "_seed_episodes": cfg.train.seed_episodes, "_every": cfg.eval.every,
           "agent_steps": 1, "update_s_q25": cfg.train.updates_per_episode * units.update_s,
           "collect_s_q25": sum(n * (plan + units.env_s[t]) for t, n in steps.items()),
           "eval_s_q25": sum(n * (units.step_s[m] + m * units.env_s[t]) for t, n in steps.items()),
           "eval_episodes": m, "test_eval_s": None}
    hours = project_hours(ref, 1)
    if hours is not None and job.rule == "train_multitask":
        hours += cfg.train.seed_episodes * random_s / 3600
    return hours


class RecordPrices:
    """Hours from a report's compute.csv: a job from a recorded run of its variant (its own task first) scaled to its
    task's agent steps (`project_hours`), where the record's schedule is the job's (episodes, evaluation sizes)."""

    def __init__(self, path: Path):
        try:
            self.frame = pd.read_csv(path)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise PlanetError(f"cannot read the record {path} ({exc}): write one with `planet report`, or leave out "
                              "--from-records to measure") from None
        self.path = path

    def source(self) -> str:
        rows = [f"{r.variant}/{r.task} seed {r.seed} (commits {r.commits}; {r.settings}; {r.threads} threads)"
                for r in self.frame.itertuples()]
        return f"from the record {os.path.relpath(self.path)} (its CPU is not recorded): " + "; ".join(rows)

    def hours(self, job: Job, cfg: config_lib.Config, test_episodes: int) -> float | None:
        own = self.frame[self.frame["variant"] == job.wildcards.get("variant")]
        own = pd.concat([own[own["task"] == job.task], own[own["task"] != job.task]])
        if job.rule not in ("train", "evaluate") or not len(own):
            return None
        row, steps = own.iloc[0], agent_steps(cfg.to_dict(), job.task)
        if finite(row["planned_episodes"]) != cfg.train.episodes or finite(row["eval_episodes"]) != cfg.eval.episodes:
            return None
        if job.rule == "evaluate":
            test_s, ref_steps = finite(row["test_eval_s"]), finite(row["agent_steps"])
            same = finite(row["test_episodes"]) == test_episodes
            return test_s * steps / ref_steps / 3600 if same and test_s and ref_steps else None
        return project_hours({**row.to_dict(), "_seed_episodes": cfg.train.seed_episodes, "_every": cfg.eval.every,
                              "test_eval_s": None}, steps)


def measure_units(cfg: config_lib.Config, task_configs: Mapping[str, config_lib.Config], beliefs: Iterable[int],
                  device, repeats: int = 1, env_steps: int = 10) -> Units:
    """Time one update on a random batch and one agent step of the model for each number of beliefs (and one), at
    `cfg`'s sizes and precision, eager, in turns after one warm-up each (`precision.median_times`); then
    `env_steps` environment steps with their frames on each task's environment (`task_configs`)."""
    import numpy as np
    import torch

    from planet import precision
    from planet.agents import MPCAgent
    from planet.bench import _cpu_name
    from planet.models import WorldModel, preprocess
    from planet.rollouts import make_env

    start, rng = time.perf_counter(), np.random.default_rng(0)
    action_dim = max(TASKS[t].action_dim for t in task_configs)
    model = WorldModel(cfg.model, action_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.train.learning_rate, eps=cfg.train.adam_eps)
    update_dtype = precision.resolve(cfg.compute.update_precision, device)
    gen = torch.Generator(device=device).manual_seed(0)
    b, length, size = cfg.train.batch_size, cfg.train.chunk_length, cfg.env.image_size
    obs = torch.as_tensor(rng.integers(0, 256, (b, length, size, size, 3), dtype=np.uint8))
    act = torch.as_tensor(rng.uniform(-1, 1, (b, length, action_dim)).astype(np.float32))
    rew = torch.as_tensor(rng.uniform(0, 1, (b, length)).astype(np.float32))

    def update() -> None:  # as Trainer.update, on a random batch
        image = preprocess(obs.to(device), cfg.env.bit_depth, gen)
        with precision.autocast(update_dtype, device):
            loss, _ = model.loss(image, act.to(device), rew.to(device), cfg.loss, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.train.grad_clip)
        opt.step()

    def agent_step(n: int) -> Callable[[], object]:
        agent = MPCAgent(model, cfg.planner, cfg.env.bit_depth, 0.0, gen, device,
                         dataclasses.replace(cfg.compute, compile=False))
        agent.reset(n)
        frames = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        return lambda: agent.act(frames, explore=False)

    sizes = sorted(set(beliefs) | {1})
    update_s, *step_times = precision.median_times([update, *map(agent_step, sizes)], repeats, device)
    env_s = {}
    for task, task_cfg in task_configs.items():
        env = make_env(task_cfg)
        env.reset(0)
        zero = np.zeros(env.action_dim, np.float32)
        env.step(zero)  # the GL context and the first frame are made before the clock starts
        t0 = time.perf_counter()
        for _ in range(env_steps):
            if env.step(zero)[2]:
                env.reset(0)
        env_s[task] = (time.perf_counter() - t0) / env_steps
        env.close()
    step_s, p = dict(zip(sizes, step_times, strict=True)), cfg.planner
    where = _cpu_name() if device.type == "cpu" else torch.cuda.get_device_name(device)
    plan_dtype = precision.name(precision.resolve(cfg.compute.plan_precision, device))
    source = (f"measured now on {where} ({device}, torch threads {torch.get_num_threads()}, update "
              f"{precision.name(update_dtype)}, plan {plan_dtype}, eager; median of {repeats} after a warm-up; "
              f"{time.perf_counter() - start:.0f} s): update B={b} L={length} {update_s:.3g} s; model step "
              f"({p.kind} J={p.candidates} I={p.iterations} H={p.horizon} K={p.top_k}) "
              + ", ".join(f"{s:.3g} s for {n} belief{'s' * (n > 1)}" for n, s in step_s.items())
              + "; env step with its frame " + ", ".join(f"{t} {s * 1e3:.0f} ms" for t, s in env_s.items()))
    return Units(update_s, step_s, env_s, source)


def cost_tables(jobs: Iterable[Job], hours: Callable[[Job], float | None]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per job kind, in Snakemake's order: jobs, priced jobs, hours of the cheapest and dearest priced job, their
    total; per task (the six, then jobs of several or no task): jobs, priced jobs, hours."""
    frame = pd.DataFrame([{"kind": j.rule, "task": j.task, "hours": hours(j)} for j in jobs],
                         columns=["kind", "task", "hours"]).astype({"hours": float})
    kinds = frame.groupby("kind", sort=False)["hours"].agg(
        jobs="size", priced="count", hours_min="min", hours_max="max", hours_total="sum").reset_index()
    tasks = frame.groupby("task")["hours"].agg(jobs="size", priced="count", hours_total="sum")
    return kinds, tasks.loc[[t for t in (*TASKS, NO_TASK) if t in tasks.index]].reset_index()


def duration(hours: float | None) -> str:
    """Hours as seconds, minutes or hours; "-" for none."""
    if hours is None or pd.isna(hours):
        return "-"
    s = hours * 3600
    return (f"{s:.0f} s" if s < 60 else f"{s / 60:.0f} min" if s < 3600 else f"{hours:.1f} h" if hours < 100
            else f"{hours:,.0f} h")


def render(title: str, notes: list[str], kinds: pd.DataFrame, tasks: pd.DataFrame) -> str:
    """The cost as text: the title and notes, a table per job kind (why a kind is not priced), a table per task."""
    lines = [title, *notes, "", f"{'job kind':<22} {'jobs':>5} {'priced':>6} {'each':>18} {'total':>10}"]
    for r in kinds.itertuples():
        lo, hi = duration(r.hours_min), duration(r.hours_max)
        why = "" if r.priced == r.jobs else "  " + UNPRICED.get(r.kind, "not priced: " + (
            "no record of the same variant and schedule" if r.kind in PRICED else "bookkeeping, not timed"))
        lines.append(f"{r.kind:<22} {r.jobs:>5} {r.priced:>6} {lo if lo == hi else f'{lo} - {hi}':>18} "
                     f"{duration(r.hours_total if r.priced else None):>10}{why}")
    lines += ["", f"{'task':<22} {'jobs':>5} {'priced':>6} {'total':>29}"]
    lines += [f"{r.task:<22} {r.jobs:>5} {r.priced:>6} {duration(r.hours_total if r.priced else None):>29}"
              for r in tasks.itertuples()]
    total, priced = int(kinds["jobs"].sum()), int(kinds["priced"].sum())
    lines += ["", f"total: {total} jobs, {priced} priced: {duration(kinds['hours_total'].sum())} one job after another"
              f" ({total - priced} jobs not priced)"]
    return "\n".join(lines)


def run_cost(preset: str | None = None, records: Path | None = None, from_records: bool = False,
             remaining: bool = False, repeats: int = 1) -> str:
    """`planet cost`: count the preset's jobs with Snakemake, price them (measured now, or from a record) and
    return the tables as text."""
    import torch

    from planet.report.grid import load_pipeline

    pipeline = load_pipeline()
    preset = preset or pipeline["preset"]
    if preset not in pipeline["presets"]:
        raise config_lib.ConfigError(f"no pipeline preset '{preset}'; valid: {', '.join(pipeline['presets'])}")
    P, root = pipeline["presets"][preset], pipeline_root()
    prices = RecordPrices(records or root / "reports" / preset / "compute.csv") if from_records else None
    t0 = time.perf_counter()
    jobs = snakemake_jobs(preset, root, remaining)
    notes = [f"jobs: {len(jobs)} from `snakemake -n{'' if remaining else ' --forceall'}` "
             f"({'those not done yet' if remaining else 'the whole grid'}; {time.perf_counter() - t0:.0f} s)"]
    config_of, test_episodes = job_configs(pipeline, preset), P["eval_episodes"]
    priced = [j for j in jobs if j.rule in PRICED]
    on_gpu = False
    if prices is not None:
        notes.append(f"units: {prices.source()}")

        def hours(job: Job) -> float | None:
            return prices.hours(job, config_of(job), test_episodes) if job.rule in PRICED else None
    else:
        device = torch.device("cuda" if P.get("gpu") and torch.cuda.is_available() else "cpu")
        on_gpu = device.type == "cuda"
        torch.set_num_threads(min(int(P.get("threads") or 1), os.cpu_count() or 1))  # the jobs' `threads`
        tasks = sorted({t for j in priced for t in task_list(config_of(j).task)})
        beliefs = {test_episodes} | {config_of(j).eval.episodes for j in priced}
        base = config_of(Job("train", {"variant": "planet", "task": P["tasks"][0]}))
        units = (measure_units(base, {t: config_of(Job("collect_seed_episodes", {"task": t})) for t in tasks},
                               beliefs, device, repeats) if priced else Units(0.0, {}, {}, "nothing to measure"))
        notes += [f"units: {units.source}",
                  "every variant is priced at the `planet` variant's update and model step (the ablations' models "
                  "and planners are not timed); schedules and collection policies are each variant's own"]
        if any(config_of(j).compute.compile for j in priced):
            notes.append("the preset compiles (compute.compile), which the eager timings above leave out")

        def hours(job: Job) -> float | None:
            cfg = config_of(job)
            return None if cfg is None else measured_hours(job, cfg, units, test_episodes)
    if P.get("gpu") and not on_gpu:
        notes.append(f"GPU: preset '{preset}' runs on GPUs (gpu: true); no GPU was measured here, so these hours are "
                     "not a GPU's")
    return render(f"planet cost: pipeline preset '{preset}' (agent preset '{P['agent_preset']}')", notes,
                  *cost_tables(jobs, hours))
