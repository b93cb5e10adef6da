"""`planet.bench.bench_episode`'s procedure for code without the `compute` config section (commit 4321a1a, before
issue 9): seed episodes, then one `cpu`-preset cartpole training episode (50 updates at B=16 + one collected
episode) and one 10-episode evaluation, timed by the Trainer's own metrics. Run with that commit's environment
(here the campaign's worktree: /work/campaign/.venv/bin/python user_episode_before.py 4321a1a)."""

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from planet import config as config_lib
from planet.train import Trainer

torch.set_num_threads(2)
base = config_lib.resolve("cartpole_swingup", "cpu", 0)
overrides = {"train": {"episodes": base.train.seed_episodes + 1}, "eval": {"every": 0, "video": False},
             "run": {"mlflow": False, "threads": torch.get_num_threads()}}
cfg = config_lib.resolve("cartpole_swingup", "cpu", 0, overrides)
with tempfile.TemporaryDirectory() as tmp:
    t0 = time.perf_counter()
    Trainer(cfg, Path(tmp) / "run", torch.device("cpu"), progress=False).run()
    wall = time.perf_counter() - t0
    lines = [json.loads(line) for line in (Path(tmp) / "run" / "metrics.jsonl").read_text().splitlines()]
train = next(m for m in lines if "perf/updates_per_s" in m)
evaluation = next(m for m in lines if "perf/eval_s" in m)
updates_s = cfg.train.updates_per_episode / train["perf/updates_per_s"]
print(json.dumps({"code": sys.argv[1], "updates_s": updates_s, "collect_s": train["perf/collect_s"],
                  "episode_s": updates_s + train["perf/collect_s"], "eval_s": evaluation["perf/eval_s"],
                  "wall_s_with_seed_episodes": wall}))
