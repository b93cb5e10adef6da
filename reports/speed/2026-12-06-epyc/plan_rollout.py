"""The paper-size float32 plan (J=1000, I=10, H=12) three ways, in turns (7 repeats) with the 2048^3 block: eager,
the one-step imagination compiled (`compute.compile` up to commit 9e0b420: 12 compiled calls per horizon), and
the whole horizon compiled (`WorldModel.planner_rollout(compile_rollout=True)`, since). Campaign paused;
`python plan_rollout.py` (three runs in plan_rollout.jsonl)."""

import json

import torch

from planet import bench
from planet.config import ModelConfig
from planet.models import WorldModel
from planet.planner import cem, latent_objective

torch.set_num_threads(2)
dev = torch.device("cpu")
model = WorldModel(ModelConfig(), 6).eval()
belief = model.dynamics.initial(1, dev)
gen = torch.Generator().manual_seed(0)
compiled_step = torch.compile(model.imagine_step, dynamic=False)


def step_loop(stoch, deter, actions, noise):
    """The planner's loop as it was: one compiled step call per imagined step."""
    total = actions.new_zeros(actions.shape[0])
    for k in range(actions.shape[1]):
        stoch, deter, reward = compiled_step(stoch, deter, actions[:, k], noise[k])
        total = total + reward
    return total


def plan_with(rollout):
    @torch.inference_mode()
    def run():
        cem(latent_objective(model, belief, gen, rollout=rollout), 1, 12, 6, 10, 1000, 100, gen)

    return run


fns = [plan_with(None), plan_with(step_loop), plan_with(model.planner_rollout(torch.float32, compile_rollout=True)),
       bench._matmul_fn(dev, 2048, count=5)[0]]
eager, step, horizon, block = bench._median_times(fns, 7, dev)
rate = 5 * 2 * 2048**3 / block
print(json.dumps({"eager_s": eager, "compiled_step_s": step, "compiled_horizon_s": horizon,
                  "eager_frac": 92.496e9 / eager / rate, "step_frac": 92.496e9 / step / rate,
                  "horizon_frac": 92.496e9 / horizon / rate, "rate_gflops": rate / 1e9}))
