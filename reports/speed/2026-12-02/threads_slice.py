"""A slice of the campaign's work, timed: 8 `cpu`-preset updates (B=16, L=50) and 60 CEM plans (J=300, I=5,
H=12, K=30), float32. Usage: python threads_slice.py THREADS (run two with 1 thread at once to compare)."""

import json
import sys
import time

import torch

from planet.bench import _plan_fn, _update_fn
from planet.utils import retain_freed_memory

retain_freed_memory()
torch.set_num_threads(int(sys.argv[1]))
update = _update_fn(torch.device("cpu"), 16, 50)
plan = _plan_fn(torch.device("cpu"), 300, 5, 12, 30)
update()
plan()
t0 = time.perf_counter()
for _ in range(8):
    update()
t1 = time.perf_counter()
for _ in range(60):
    plan()
t2 = time.perf_counter()
result = {"threads": int(sys.argv[1]), "update_s": (t1 - t0) / 8, "plan_s": (t2 - t1) / 60, "wall": t2 - t0}
print(json.dumps(result), flush=True)
