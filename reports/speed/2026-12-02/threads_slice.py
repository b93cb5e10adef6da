# A slice of the campaign's work: 8 cpu-preset updates (B=16, L=50, fp32) and 60 CEM plans (J=300, I=5, H=12, fp32)
import sys, time, json, torch
from planet.utils import retain_freed_memory
retain_freed_memory()
torch.set_num_threads(int(sys.argv[1]))
from planet.bench import _update_fn, _plan_fn
upd = _update_fn(torch.device("cpu"), 16, 50)
plan = _plan_fn(torch.device("cpu"), 300, 5, 12, 30)
upd(); plan()
t0 = time.perf_counter()
for _ in range(8): upd()
t1 = time.perf_counter()
for _ in range(60): plan()
t2 = time.perf_counter()
print(json.dumps({"threads": int(sys.argv[1]), "update_s": (t1 - t0) / 8, "plan_s": (t2 - t1) / 60, "wall": t2 - t0}), flush=True)
