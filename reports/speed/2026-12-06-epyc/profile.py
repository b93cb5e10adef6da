import sys, torch
from torch.profiler import profile, ProfilerActivity
from planet import bench
torch.set_num_threads(2)
dev = torch.device("cpu")
what = sys.argv[1]
if what == "update":
    fn = bench._update_fn(dev, 16, 50)
else:
    fn = bench._plan_fn(dev, 1000, 10, 12, 100)
fn(); fn()
import time; t=time.perf_counter(); fn(); print("t", time.perf_counter()-t)
with profile(activities=[ProfilerActivity.CPU]) as p:
    fn(); fn()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=22, max_name_column_width=45))
