"""torch.profiler of two compiled paper-size plans (then: the one-step imagination compiled, commit cfe52ea, where
the keyword was `compile_step`), after two warm-ups; campaign paused."""

import torch
from torch.profiler import ProfilerActivity, profile

from planet import bench

torch.set_num_threads(2)
fn = bench._plan_fn(torch.device("cpu"), 1000, 10, 12, 100, compiled=True)
fn()
fn()
with profile(activities=[ProfilerActivity.CPU]) as prof:
    fn()
    fn()
print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
