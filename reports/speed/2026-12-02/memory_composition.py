"""Resident memory of a process before and after three paper-size updates (B=50, L=50, float32, 2 threads).

Usage: python memory_composition.py retain|noretain   (retain: freed memory kept, as the `planet` CLI does)
"""

import os
import sys

os.environ.setdefault("MUJOCO_GL", "egl")

import torch

from planet.bench import _update_fn
from planet.envs import PixelEnv
from planet.utils import memory_gb, retain_freed_memory

if sys.argv[1] == "retain":
    retain_freed_memory()
torch.set_num_threads(2)
env = PixelEnv("cartpole_swingup", seed=0)
env.reset()
step = _update_fn(torch.device("cpu"), 50, 50)
print("before updates", memory_gb())
for _ in range(3):
    step()
print(sys.argv[1], "after 3 updates", memory_gb())
