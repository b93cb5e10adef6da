import os, sys, json, torch
os.environ.setdefault("MUJOCO_GL", "egl")
from planet.utils import retain_freed_memory, memory_gb
if sys.argv[1] == "retain": retain_freed_memory()
torch.set_num_threads(2)
from planet.envs import PixelEnv
env = PixelEnv("cartpole_swingup", seed=0); env.reset()
from planet.bench import _update_fn
step = _update_fn(torch.device("cpu"), 50, 50)
print("before updates", memory_gb())
for i in range(3): step()
print(sys.argv[1], "after 3 updates", memory_gb())
