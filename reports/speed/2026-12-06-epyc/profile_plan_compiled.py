import torch
from torch.profiler import profile, ProfilerActivity
from planet import bench
torch.set_num_threads(2)
fn = bench._plan_fn(torch.device("cpu"), 1000, 10, 12, 100, compile_step=True)
fn(); fn()
with profile(activities=[ProfilerActivity.CPU]) as p:
    fn(); fn()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=60))
