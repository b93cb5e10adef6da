"""Memory and disk checked before a run starts (planet/resources.py): the estimate by hand, what this machine gives
(MemAvailable, cgroups, SLURM), the one-line refusal and the warning, `planet config`, and the SLURM profiles'
mem_mb against the estimates of the presets they serve."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from cli_helpers import run_main

from planet import config as config_lib
from planet import resources
from planet.replay import STATE_GROUPS_KEY, save_episode

ROOT = Path(__file__).resolve().parent.parent
TASK = "cartpole_swingup"


def limit_memory(monkeypatch, available: int, source: str = "test limit") -> None:
    monkeypatch.setattr(resources, "available_memory", lambda: (available, source))


# --------------------------------------------------------------------------------------------------------------
# The estimate.


def test_debug_estimate_by_hand():
    est = resources.estimate(config_lib.resolve(TASK, "debug"))
    # debug cartpole: 160 env steps at action repeat 8 = 20 agent steps, + the reset row = 21 rows; 4 episodes
    assert est.replay_rows == 4 * 21 == 84
    row = 64 * 64 * 3 + 4 * 1 + 4  # uint8 frame, float32 action (size 1), float32 reward
    assert est.replay_bytes == 84 * row == 1_032_864
    # the debug world model (deter 16, stoch 4, hidden 16, cnn_depth 4, reward 2 x 16), action size 1:
    encoder = (3 * 4 + 4 * 8 + 8 * 16 + 16 * 32) * 4 * 4 + (4 + 8 + 16 + 32)  # four 4x4 convs: 11004
    dynamics = ((4 + 1) * 16 + 16                        # [s, a] -> hidden
                + 3 * 16 * (16 + 16) + 2 * 3 * 16        # GRU cell
                + (16 * 16 + 16) + (16 * 8 + 8)          # prior: hidden, mean and std
                + ((16 + 128) * 16 + 16) + (16 * 8 + 8))  # posterior on [h, e] (embedding 32 x 2 x 2 = 128)
    decoder = (20 * 128 + 128) + (128 * 16 * 25 + 16) + (16 * 8 * 25 + 8) + (8 * 4 * 36 + 4) + (4 * 3 * 36 + 3)
    reward = (20 * 16 + 16) + (16 * 16 + 16) + (16 + 1)
    assert est.parameters == encoder + dynamics + decoder + reward == 74_924
    assert est.parameters == sum(p.numel() for p in _world_model(TASK).parameters())  # the meta-device count
    assert est.model_bytes == 74_924 * 16 == 1_198_784  # weights, gradients, Adam's two moments
    assert est.process_bytes == 1_100_000_000 + 900_000 * 3 * 8 == 1_121_600_000  # B=3, L=8
    assert est.memory_bytes == 1_032_864 + 1_198_784 + 1_121_600_000 == 1_123_831_648
    assert est.mem_mb == 1124
    # disk: each file holds the row plus the state (cartpole: 5 float32) and 4 KiB of headers and metadata
    assert est.episode_files_bytes == 4 * (21 * (row + 4 * 5) + 4096) == 1_050_928
    # + two checkpoints (12 B per parameter) + model.pt (4 B) + 32 MiB of other files
    assert est.disk_bytes == 1_050_928 + 74_924 * 28 + 32 * 2**20 == 36_703_232


def _world_model(task: str, preset: str = "debug"):
    from planet.models import WorldModel
    from planet.tasks import get_task

    return WorldModel(config_lib.resolve(task, preset).model, get_task(task).action_dim)


def test_several_tasks_sum_their_rows_and_pad_actions():
    one = resources.estimate(config_lib.resolve("walker_walk", "debug"))
    two = resources.estimate(config_lib.resolve("cartpole_swingup+walker_walk", "debug"))
    assert two.replay_rows == 4 * (21 + 81) and two.tasks == 2
    assert two.replay_bytes == two.replay_rows * (64 * 64 * 3 + 4 * 6 + 4)  # actions padded to walker's 6
    assert two.parameters == one.parameters  # one model, of the largest action size
    assert "rows of 4 episodes of each of 2 tasks" in two.memory_text()


def test_estimate_is_what_the_trainers_allocate(tmp_path):
    """The replay's rows and the model's action size, as the trainers compute them from their environments."""
    from planet.multitask import MultiTaskTrainer
    from planet.train import Trainer

    for trainer_class, task in ((Trainer, "reacher_easy"), (MultiTaskTrainer, "cartpole_swingup+reacher_easy")):
        cfg = config_lib.resolve(task, "debug", overrides=["train.episodes=7"])
        trainer = trainer_class(cfg, tmp_path / task, torch.device("cpu"), progress=False)
        trainer._build_envs()
        try:
            est = resources.estimate(cfg)
            assert trainer.replay_capacity == est.replay_rows, task
            params = sum(p.numel() for p in _world_model_for(cfg, trainer.action_dim).parameters())
            assert params == est.parameters, task
        finally:
            trainer.pool.close()


def _world_model_for(cfg, action_dim):
    from planet.models import WorldModel

    return WorldModel(cfg.model, action_dim)


def test_an_episode_file_fits_its_estimate(tmp_path):
    """Files are uncompressed .npz: a debug walker episode's file is within 4 KiB above its arrays' bytes."""
    rows, action_dim, state = 81, 6, 24
    episode = {"obs": np.zeros((rows, 64, 64, 3), np.uint8), "action": np.zeros((rows, action_dim), np.float32),
               "reward": np.zeros(rows, np.float32), "state": np.zeros((rows, state), np.float32)}
    metadata = {"task": "walker_walk", "seed": 123456, "split": "train", "index": 999999, "policy": "random",
                "return": 123.456789, "action_repeat": 2, "length": rows,
                STATE_GROUPS_KEY: [["orientations", 14], ["height", 1], ["velocity", 9]]}
    path = tmp_path / "episode_999999.npz"
    save_episode(path, episode, metadata)
    est = resources.estimate(config_lib.resolve("walker_walk", "debug"))  # 4 such episodes
    arrays = sum(a.nbytes for a in episode.values())
    assert arrays < path.stat().st_size <= est.episode_files_bytes / 4 == arrays + resources.EPISODE_FILE_OVERHEAD


# --------------------------------------------------------------------------------------------------------------
# What this machine gives.


def _fake_machine(tmp_path, monkeypatch, cgroup_lines: str, files: dict[str, str], meminfo_kb: int = 8_000_000):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(f"MemTotal:       16000000 kB\nMemAvailable:   {meminfo_kb} kB\n")
    proc = tmp_path / "cgroup"
    proc.write_text(cgroup_lines)
    root = tmp_path / "sys"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    monkeypatch.setattr(resources, "MEMINFO", meminfo)
    monkeypatch.setattr(resources, "PROC_CGROUP", proc)
    monkeypatch.setattr(resources, "CGROUP_ROOT", root)
    for name in ("SLURM_MEM_PER_NODE", "SLURM_MEM_PER_CPU", "SLURM_CPUS_PER_TASK", "SLURM_CPUS_ON_NODE"):
        monkeypatch.delenv(name, raising=False)
    return root


def test_available_memory_is_the_least_of_meminfo_cgroups_and_slurm(tmp_path, monkeypatch):
    # no limits: MemAvailable
    _fake_machine(tmp_path, monkeypatch, "0::/job\n", {"job/memory.max": "max\n"})
    assert resources.available_memory() == (8_000_000 * 1024, "MemAvailable")
    # cgroup v2: the group's parent has the smaller limit
    root = _fake_machine(tmp_path, monkeypatch, "0::/a/b\n",
                         {"a/b/memory.max": "6000000000\n", "a/memory.max": "5000000000\n"})
    assert resources.available_memory() == (5_000_000_000, f"cgroup limit {root / 'a/memory.max'}")
    # cgroup v1 (hybrid): memory controller in its own hierarchy; ~2^63 means no limit
    root = _fake_machine(tmp_path, monkeypatch, "4:memory:/x\n0::/\n",
                         {"memory/x/memory.limit_in_bytes": "3000000000\n",
                          "memory/memory.limit_in_bytes": "9223372036854771712\n"})
    assert resources.available_memory() == (3_000_000_000, f"cgroup limit {root / 'memory/x/memory.limit_in_bytes'}")
    # SLURM: MB (MiB) per node, or per CPU x the task's CPUs
    monkeypatch.setenv("SLURM_MEM_PER_CPU", "1000")
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "2")
    assert resources.available_memory() == (2000 << 20, "SLURM_MEM_PER_CPU=1000 x 2 CPUs")
    monkeypatch.setenv("SLURM_MEM_PER_NODE", "1500")
    assert resources.available_memory() == (1500 << 20, "SLURM_MEM_PER_NODE=1500")


def test_nothing_readable_means_unknown(tmp_path, monkeypatch):
    _fake_machine(tmp_path, monkeypatch, "", {})
    monkeypatch.setattr(resources, "MEMINFO", tmp_path / "missing")
    assert resources.available_memory() == (None, "unknown")
    assert resources.free_disk(tmp_path / "not" / "yet" / "there") > 0  # the nearest existing ancestor's filesystem


# --------------------------------------------------------------------------------------------------------------
# The check at the start of a run.


def test_too_little_memory_refuses_the_run_in_one_line(tmp_path, monkeypatch):
    limit_memory(monkeypatch, 1_000_000_000, "cgroup limit /sys/fs/cgroup/memory.max")
    run = tmp_path / "run"
    code, out, err = run_main(["train", "--task", TASK, "--preset", "debug", "--out", str(run), "--no-progress",
                               "run.mlflow=false"])
    assert code == 1 and out == "", (out, err)
    (line,) = [x for x in err.splitlines() if x.startswith("planet: error:")]
    assert "Traceback" not in err and line == err.splitlines()[-1]
    assert line.startswith("planet: error: not enough memory: this run needs 1.1 GB of memory at its last episode "
                           "(replay 1.0 MB: 84 rows of 4 episodes; model and Adam 1.2 MB; process and activations "
                           "1.1 GB) and 1.0 GB is available (cgroup limit /sys/fs/cgroup/memory.max) - lower "
                           "train.episodes"), line
    assert not run.exists()  # refused before anything was written


def test_the_agent_of_several_tasks_is_checked_too(tmp_path, monkeypatch):
    limit_memory(monkeypatch, 1_000_000_000)
    run = tmp_path / "run"
    code, _, err = run_main(["train", "--task", "cartpole_swingup+reacher_easy", "--preset", "debug", "--out",
                             str(run), "--no-progress", "run.mlflow=false"])
    assert code == 1 and "planet: error: not enough memory: this run needs" in err and "Traceback" not in err, err
    assert "of 4 episodes of each of 2 tasks" in err and not run.exists()


def test_a_replay_larger_than_any_machine_is_refused_not_an_allocation_traceback(tmp_path):
    """Once numpy's _ArrayMemoryError traceback from the replay's allocation; now the check refuses it first."""
    code, _, err = run_main(["train", "--task", "walker_walk", "--preset", "cpu", "--out", str(tmp_path / "run"),
                             "train.episodes=200000", "run.mlflow=false"])
    assert code == 1 and "Traceback" not in err and "MemoryError" not in err, err
    assert "planet: error: not enough memory: this run needs 1.2 TB of memory" in err, err
    assert "100,200,000 rows of 200000 episodes" in err


def test_close_to_the_limit_warns_in_one_line(tmp_path, monkeypatch, caplog):
    cfg = config_lib.resolve(TASK, "debug")
    need = resources.estimate(cfg).memory_bytes
    limit_memory(monkeypatch, int(need / 0.9), "MemAvailable")
    with caplog.at_level(logging.WARNING, logger="planet.resources"):
        assert resources.check_run(cfg, tmp_path / "run") is not None
    (record,) = caplog.records
    assert record.levelno == logging.WARNING and "\n" not in record.getMessage()
    assert record.getMessage().startswith("memory is short: this run needs 1.1 GB of memory"), record.getMessage()
    assert "90% of it" in record.getMessage()
    caplog.clear()
    limit_memory(monkeypatch, int(need / 0.7))  # 70%: silent
    resources.check_run(cfg, tmp_path / "run")
    assert caplog.records == []


def test_disk_is_checked_against_what_the_run_directory_still_needs(tmp_path, monkeypatch, caplog):
    cfg = config_lib.resolve(TASK, "debug")
    est = resources.estimate(cfg)
    limit_memory(monkeypatch, 10**12)
    monkeypatch.setattr(resources, "free_disk", lambda path: est.disk_bytes - 1)
    with pytest.raises(resources.ResourceError) as info:
        resources.check_run(cfg, tmp_path / "run")
    text = str(info.value)
    assert text.startswith(f"not enough disk space: {tmp_path / 'run'} grows to 36.7 MB (1.1 MB of episode files)")
    assert "choose another --out" in text and "\n" not in text
    # a resumed run needs only what its directory does not hold yet (here: all but 5 MB)
    run = tmp_path / "run"
    run.mkdir()
    config_lib.save(cfg, run / "config.yaml")
    (run / "checkpoint.pt").write_bytes(b"\0" * 5_000_000)
    with caplog.at_level(logging.WARNING, logger="planet.resources"):
        resources.check_run(cfg, run)  # 31.7 MB of 36.7 MB free: a warning, not a refusal
    assert "disk space is short" in caplog.text
    # another config's run in that directory counts for nothing (planet train refuses or moves it aside)
    config_lib.save(config_lib.resolve(TASK, "debug", overrides=["planner.horizon=2"]), run / "config.yaml")
    with pytest.raises(resources.ResourceError):
        resources.check_run(cfg, run)
    # a complete run of this config needs nothing
    config_lib.save(cfg, run / "config.yaml")
    (run / "summary.json").write_text("{}")
    monkeypatch.setattr(resources, "free_disk", lambda path: 0)
    limit_memory(monkeypatch, 0)
    assert resources.check_run(cfg, run) is None


# --------------------------------------------------------------------------------------------------------------
# `planet config` and the pipeline.


def test_config_prints_the_estimate_as_comments():
    code, out, _ = run_main(["config", "--task", TASK, "--preset", "debug"])
    assert code == 0
    assert yaml.safe_load(out) == config_lib.resolve(TASK, "debug").to_dict()  # still the config's YAML
    comments = [line for line in out.splitlines() if line.startswith("#")]
    assert comments[0].startswith("# resources (planet/resources.py")
    assert comments[1] == ("#   1.1 GB of memory at its last episode (replay 1.0 MB: 84 rows of 4 episodes; model and "
                           "Adam 1.2 MB; process and activations 1.1 GB)")
    assert comments[2] == "#   36.7 MB of disk for the run directory (1.1 MB of episode files)"
    assert comments[3].startswith("#   available here: ")


def _pipeline_jobs(preset: str, pipeline: dict) -> dict[str, list[config_lib.Config]]:
    """The training configs of a pipeline preset per rule, composed as workflow/rules/common.smk's `overrides` and
    `variant_tasks` do (the preset's overrides, then the variant's, then the preset's for that variant)."""
    from planet.tasks import ALL_TASKS, TASKS

    spec = pipeline["presets"][preset]
    tasks = list(spec["tasks"])
    multitask_tasks = list(spec.get("multitask_tasks", tasks))
    jobs: dict[str, list[config_lib.Config]] = {"train": [], "train_multitask": []}
    for name in spec["variants"]:
        variant = pipeline["variants"][name]
        items = {**spec.get("overrides", {}), **variant["overrides"], **spec.get("variant_overrides", {}).get(name, {})}
        overrides = [f"{k}={json.dumps(v)}" for k, v in items.items()]
        if variant.get("multitask"):
            several = ALL_TASKS if multitask_tasks == list(TASKS) else "+".join(multitask_tasks)
            rule, names = "train_multitask", [several]
        else:
            rule, names = "train", tasks if variant["family"] == "agents" else list(spec.get("ablation_tasks", tasks))
        jobs[rule] += [config_lib.resolve(t, spec["agent_preset"], 0, overrides) for t in names]
    return jobs


def test_slurm_profiles_give_training_jobs_at_least_their_estimate():
    """profiles/slurm serves the GPU presets, profiles/slurm-cpu the others; each one's set-resources mem_mb of the
    training rules must hold the largest estimate among the jobs of those presets (pure Python, no dry run)."""
    pipeline = yaml.safe_load((ROOT / "params/pipeline.yaml").read_text())
    checked = set()
    for preset, spec in pipeline["presets"].items():
        profile = "slurm" if spec["gpu"] else "slurm-cpu"
        settings = yaml.safe_load((ROOT / "profiles" / profile / "profile.yaml").read_text())
        for rule, configs in _pipeline_jobs(preset, pipeline).items():
            if not configs:
                continue
            given = settings["set-resources"][rule]["mem_mb"]
            largest = max(configs, key=lambda c: resources.estimate(c).mem_mb)
            need = resources.estimate(largest).mem_mb
            assert need <= given, (f"{profile}: {rule} gives mem_mb={given}, but preset {preset}'s {largest.task} "
                                   f"({largest.model.kind}) needs {need}")
            checked.add((profile, rule))
    assert checked == {("slurm", "train"), ("slurm", "train_multitask"), ("slurm-cpu", "train"),
                       ("slurm-cpu", "train_multitask")}
