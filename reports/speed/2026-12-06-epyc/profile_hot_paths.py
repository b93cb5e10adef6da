"""torch.profiler of two float32 updates at B=16 (`python profile_hot_paths.py update`) or two paper-size
plans (`python profile_hot_paths.py plan`), after two warm-ups; self time, top 22. Run on commit cfe52ea (then
named profile.py), campaign paused."""

import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from planet import bench

torch.set_num_threads(2)
dev = torch.device("cpu")
fn = bench._update_fn(dev, 16, 50) if sys.argv[1] == "update" else bench._plan_fn(dev, 1000, 10, 12, 100)
fn()
fn()
t0 = time.perf_counter()
fn()
print("t", time.perf_counter() - t0)
with profile(activities=[ProfilerActivity.CPU]) as prof:
    fn()
    fn()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=45))
