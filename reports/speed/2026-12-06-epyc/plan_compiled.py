"""One paper-size float32 plan eager vs compiled (`compute.compile`) and the 2048^3 block, in turns (7 repeats).
Run with the campaign paused: `python plan_compiled.py`. The numbers in the README were made on commit cfe52ea,
where `compute.compile` compiled the one-step imagination (the `compiled` keyword was then `compile_step`); since
then it compiles the whole horizon (`WorldModel.imagine_rollout`)."""

import json

import torch

from planet import bench

torch.set_num_threads(2)
dev = torch.device("cpu")
args = (1000, 10, 12, 100)
fns = [bench._plan_fn(dev, *args), bench._plan_fn(dev, *args, compiled=True), bench._matmul_fn(dev, 2048, count=5)[0]]
eager, compiled, block = bench._median_times(fns, 7, dev)
rate = 5 * 2 * 2048**3 / block
print(json.dumps({"eager_s": eager, "compiled_s": compiled, "eager_frac": 92.496e9 / eager / rate,
                  "compiled_frac": 92.496e9 / compiled / rate, "rate_gflops": rate / 1e9}))
