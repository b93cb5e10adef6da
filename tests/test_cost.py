"""`planet cost` (planet/cost.py): jobs counted from Snakemake's dry run, priced per kind and per task from measured
units or a report's compute.csv. Expected hours are worked out by hand in the comments."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
import torch
from cli_helpers import run_main

from planet import config as config_lib
from planet import cost
from planet.cost import Job, Units
from planet.tasks import TASKS
from planet.utils import PlanetError

LISTING = """Building DAG of jobs...
Job stats:
job      count
-----  -------
train        2
all          1
total        3

[Tue Dec  8 03:00:26 2026]
rule train:
    input: results/p/seeds/cartpole_swingup/seed0
    output: results/p/runs/planet/cartpole_swingup/seed0/summary.json
    wildcards: variant=planet, task=cartpole_swingup, seed=0
    threads: 2
[Tue Dec  8 03:00:26 2026]
rule train:
    wildcards: variant=gru, task=walker_walk, seed=1
[Tue Dec  8 03:00:26 2026]
localrule all:
    input: results/p/runs/planet/cartpole_swingup/seed0/summary.json
This was a dry-run (flag -n). The order of jobs does not reflect the order of execution.
"""

# debug preset: 160 env steps per episode, so 20 agent steps on cartpole (R=8) and 40 on reacher (R=4); 4 episodes
# after 2 seed episodes, C=2 updates, evaluations of 2 episodes every 2 episodes.
UNITS = Units(update_s=1.0, step_s={1: 0.5, 2: 0.8}, env_s={"cartpole_swingup": 0.1, "reacher_easy": 0.2})


def debug(task: str = "cartpole_swingup", *items: str) -> config_lib.Config:
    return config_lib.resolve(task, "debug", 0, list(items))


def test_parse_dry_run_reads_rules_and_wildcards_and_checks_the_total():
    jobs = cost.parse_dry_run(LISTING)
    assert [j.rule for j in jobs] == ["train", "train", "all"]
    assert dict(jobs[1].wildcards) == {"variant": "gru", "task": "walker_walk", "seed": "1"}
    assert [j.task for j in jobs] == ["cartpole_swingup", "walker_walk", cost.NO_TASK]
    assert cost.parse_dry_run("Building DAG of jobs...\nNothing to be done (all requested files are present).") == []
    with pytest.raises(PlanetError, match="counted 4 jobs, planet/cost.py parsed 3"):
        cost.parse_dry_run(LISTING.replace("total        3", "total        4"))


def test_measured_hours_of_each_priced_kind():
    train = Job("train", {"variant": "planet", "task": "cartpole_swingup", "seed": "0"})
    # episodes 3 and 4: 2 x (2 updates x 1 s + 20 steps x (0.5 plan + 0.1 env)) = 28 s; one evaluation (episode 4,
    # the schedule's and the last): 20 x (0.8 for 2 beliefs + 2 x 0.1) = 20 s
    assert cost.measured_hours(train, debug(), UNITS, 2) == pytest.approx(48 / 3600)
    # random collection does not plan: 2 x (2 + 20 x 0.1) + 20 = 28 s
    random = debug("cartpole_swingup", "collect.policy=random")
    assert cost.measured_hours(train, random, UNITS, 2) == pytest.approx(28 / 3600)
    # seed collection: 2 episodes x 20 steps x 0.1 s
    assert cost.measured_hours(Job("collect_seed_episodes", {"task": "cartpole_swingup"}), debug(), UNITS,
                               2) == pytest.approx(4 / 3600)
    # held-out evaluation of 2 episodes: 20 x (0.8 + 2 x 0.1); of 1: 20 x (0.5 + 0.1)
    evaluate = Job("evaluate", {"variant": "planet", "task": "cartpole_swingup", "seed": "0"})
    assert cost.measured_hours(evaluate, debug(), UNITS, 2) == pytest.approx(20 / 3600)
    assert cost.measured_hours(evaluate, debug(), UNITS, 1) == pytest.approx(12 / 3600)
    # one agent for cartpole and reacher: a round is 2 updates + 20 x 0.6 + 40 x (0.5 + 0.2) = 42 s, 2 rounds; one
    # evaluation 20 x (0.8 + 0.2) + 40 x (0.8 + 0.4) = 68 s; its own 2 random seed rounds 2 x (20 x 0.1 + 40 x 0.2)
    multi = Job("train_multitask", {"variant": "multitask", "seed": "0"})
    assert cost.measured_hours(multi, debug("cartpole_swingup+reacher_easy"), UNITS, 2) == pytest.approx(
        (84 + 68 + 20) / 3600)


def test_job_configs_merge_overrides_as_the_pipeline_does():
    pipeline = {"presets": {"p": {"agent_preset": "debug", "tasks": ["cartpole_swingup", "reacher_easy"],
                                  "overrides": {"train.episodes": 6, "eval.every": 1},
                                  "variant_overrides": {"ssm": {"eval.every": 3}}}},
                "variants": {"planet": {"overrides": {}}, "ssm": {"overrides": {"model.kind": "ssm", "eval.every": 2}},
                             "multitask": {"overrides": {}}}}
    config_of = cost.job_configs(pipeline, "p")
    planet = config_of(Job("train", {"variant": "planet", "task": "reacher_easy", "seed": "1"}))
    assert (planet.task, planet.train.episodes, planet.eval.every, planet.model.kind) == ("reacher_easy", 6, 1, "rssm")
    ssm = config_of(Job("evaluate", {"variant": "ssm", "task": "cartpole_swingup", "seed": "0"}))
    assert (ssm.model.kind, ssm.eval.every, ssm.train.episodes) == ("ssm", 3, 6)  # preset x variant comes last
    assert config_of(Job("collect_seed_episodes", {"task": "cartpole_swingup", "seed": "0"})).model.kind == "rssm"
    assert config_of(Job("train_multitask", {"variant": "multitask", "seed": "0"})).task == \
        "cartpole_swingup+reacher_easy"
    assert config_of(Job("baseline", {"baseline": "sac", "task": "cartpole_swingup", "seed": "0"})) is None


def test_record_prices_scale_a_recorded_run_to_each_task(tmp_path):
    path = tmp_path / "compute.csv"
    pd.DataFrame([{"variant": "planet", "task": "cartpole_swingup", "seed": 0, "threads": 2, "planned_episodes": 4,
                   "update_s_q25": 2.0, "collect_s_q25": 12.0, "eval_s_q25": 20.0, "eval_episodes": 2,
                   "agent_steps": 20, "test_eval_s": 30.0, "test_episodes": 2, "commits": "abc1234",
                   "settings": "update fp32"}]).to_csv(path, index=False)
    prices = cost.RecordPrices(path)
    train = Job("train", {"variant": "planet", "task": "cartpole_swingup", "seed": "0"})
    # 2 episodes x (2 + 12) + one evaluation of 20 s
    assert prices.hours(train, debug(), 2) == pytest.approx(48 / 3600)
    # reacher has twice cartpole's agent steps: 2 x (2 + 24) + 40
    reacher = Job("train", {"variant": "planet", "task": "reacher_easy", "seed": "0"})
    assert prices.hours(reacher, debug("reacher_easy"), 2) == pytest.approx(92 / 3600)
    evaluate = Job("evaluate", {"variant": "planet", "task": "reacher_easy", "seed": "0"})
    assert prices.hours(evaluate, debug("reacher_easy"), 2) == pytest.approx(60 / 3600)
    assert prices.hours(evaluate, debug("reacher_easy"), 10) is None  # recorded with 2 test episodes, not 10
    assert prices.hours(Job("train", {"variant": "gru", "task": "cartpole_swingup"}), debug(), 2) is None
    assert prices.hours(train, debug("cartpole_swingup", "train.episodes=5"), 2) is None  # another schedule
    assert "planet/cartpole_swingup seed 0 (commits abc1234; update fp32; 2 threads)" in prices.source()


def test_tables_and_text_per_kind_and_task():
    jobs = [Job("train", {"task": "cartpole_swingup"}), Job("train", {"task": "walker_walk"}),
            Job("evaluate", {"task": "cartpole_swingup"}), Job("baseline", {"task": "walker_walk"}), Job("all")]
    hours = {0: 1.0, 1: 3.0, 2: 0.5}
    kinds, tasks = cost.cost_tables(jobs, lambda j: hours.get(jobs.index(j)))
    assert kinds.set_index("kind").loc["train"].tolist() == [2, 2, 1.0, 3.0, 4.0]
    assert tasks.set_index("task")["hours_total"].to_dict() == {"cartpole_swingup": 1.5, "walker_walk": 3.0,
                                                               cost.NO_TASK: 0.0}
    text = cost.render("title", ["a note"], kinds, tasks)
    assert "1.0 h - 3.0 h" in text and "not priced: SAC and CEM" in text
    assert text.splitlines()[-1] == "total: 5 jobs, 3 priced: 4.5 h one job after another (2 jobs not priced)"
    assert [cost.duration(h) for h in (0.01, 0.5, 150.0, 1234.4, None)] == ["36 s", "30 min", "150 h", "1,234 h",
                                                                            "-"]


def test_measure_units_at_debug_sizes():
    cfg = debug()
    threads = torch.get_num_threads()
    units = cost.measure_units(cfg, {"cartpole_swingup": cfg}, [2], torch.device("cpu"), env_steps=3)
    torch.set_num_threads(threads)
    assert set(units.step_s) == {1, 2} and set(units.env_s) == {"cartpole_swingup"}
    assert min(units.update_s, *units.step_s.values(), *units.env_s.values()) > 0
    assert "update B=3 L=8" in units.source and "cem J=16 I=2 H=3 K=4" in units.source


@pytest.mark.slow  # runs Snakemake, as every test of tests/test_pipeline.py (a dry run of 899 jobs: ~10 s)
def test_paper_grid_cost_from_snakemake(monkeypatch):
    """The real DAG of the paper preset, priced with fixed units (env steps free, so every number is by hand)."""
    jobs = cost.snakemake_jobs("paper", cost.pipeline_root())
    # 6 tasks x 5 seeds; 11 single-task variants x 30; one multi-task agent per seed; SAC on 30, the simulator on
    # 6 (seed 0); 15 CEM grid points; diagnostics of 5 variants x 30; tracking, report, all
    assert Counter(j.rule for j in jobs) == {"collect_seed_episodes": 30, "train": 330, "evaluate": 330,
                                             "train_multitask": 5, "baseline": 36, "cem_grid": 15, "diagnose": 150,
                                             "init_tracking": 1, "report": 1, "all": 1}
    monkeypatch.setattr(cost, "snakemake_jobs", lambda *args: jobs)
    units = Units(1.0, {1: 1.0, 10: 2.0}, dict.fromkeys(TASKS, 0.0), "fixed")
    monkeypatch.setattr(cost, "measure_units", lambda cfg, tasks, beliefs, *a: units)
    threads = torch.get_num_threads()
    text = cost.run_cost("paper")
    torch.set_num_threads(threads)
    # agent steps s: cartpole 125, reacher, cheetah, cup 250, finger, walker 500 (sum 1875). A job plans 995
    # episodes of 100 updates + s plans of 1 s, and 100 evaluations of s steps at 2 s: 99500 + 1195 s seconds;
    # random collection plans only in its evaluations: 99500 + 200 s. Per task 5 seeds x (10 + 1 such jobs).
    train_s = 5 * (10 * (6 * 99500 + 1195 * 1875) + (6 * 99500 + 200 * 1875))
    assert f"{train_s / 3600:,.0f} h" == "40,761 h"
    line = next(ln for ln in text.splitlines() if ln.startswith("train "))
    # cheapest: random collection on cartpole 124,500 s; dearest: finger or walker 697,000 s
    assert line.split() == ["train", "330", "330", "34.6", "h", "-", "194", "h", "40,761", "h"]
    # held-out evaluations: 55 runs per task x s steps x 2 s = 206,250 s; the multi-task agent: 995 rounds of
    # 100 + 1875 s, 100 evaluations of 1875 x 2 s: 2,340,125 s per seed, 5 seeds = 3,250 h
    assert next(ln for ln in text.splitlines() if ln.startswith("evaluate ")).split()[-2:] == ["57.3", "h"]
    assert next(ln for ln in text.splitlines() if ln.startswith("train_multitask ")).split()[-2:] == ["3,250", "h"]
    assert "GPU: preset 'paper' runs on GPUs" in text or torch.cuda.is_available()


def test_cli_errors_are_one_line(tmp_path):
    code, out, err = run_main(["cost", "--pipeline-preset", "nope"])
    assert code == 2 and err.count("\n") == 1 and "no pipeline preset 'nope'; valid: paper" in err
    code, out, err = run_main(["cost", "--pipeline-preset", "smoke", "--from-records", str(tmp_path / "none.csv")])
    assert code == 1 and err.count("\n") == 1 and "cannot read the record" in err


def test_cli_help_lists_the_options():
    code, out, _ = run_main(["cost", "--help"])
    assert code == 0
    assert [opt for opt in ("--pipeline-preset", "--from-records", "--remaining", "--repeats") if opt not in out] == []
