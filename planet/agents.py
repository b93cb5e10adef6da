"""Agents with one interface: ``reset(n)`` at the start of n parallel episodes, ``act(obs, explore)`` each step.

`obs` is uint8 [N, H, W, 3]; the returned actions are float32 [N, A] in [-1, 1].
"""

from __future__ import annotations

import numpy as np
import torch

from planet import precision
from planet.config import ComputeConfig, PlannerConfig
from planet.models import State, WorldModel, preprocess
from planet.planner import latent_objective, plan


class RandomAgent:
    """Uniform random actions in [-1, 1] (the seed episodes and the "random collection" variant)."""

    def __init__(self, action_dim: int, rng: np.random.Generator):
        self.action_dim = action_dim
        self.rng = rng

    def reset(self, n: int) -> None:
        self.n = n

    def act(self, obs: np.ndarray, explore: bool = True) -> np.ndarray:
        return self.rng.uniform(-1, 1, size=(obs.shape[0], self.action_dim)).astype(np.float32)


class MPCAgent:
    """Model-predictive control: filter the belief with the posterior, plan, act with the first planned action.

    With `explore`, adds N(0, exploration_noise) to the action and clips to [-1, 1] (P/G); evaluation passes
    explore=False, so no noise is added then.
    """

    def __init__(
        self, model: WorldModel, planner: PlannerConfig, bit_depth: int, exploration_noise: float,
        generator: torch.Generator, device: torch.device, compute: ComputeConfig | None = None,
    ):
        self.model = model
        self.planner = planner
        self.bit_depth = bit_depth
        self.noise = exploration_noise
        self.gen = generator
        self.device = device
        compute = compute or ComputeConfig()
        self.plan_dtype = precision.resolve(compute.plan_precision, device)
        self.compile = compute.compile
        self.state: State | None = None
        self.prev_action: torch.Tensor | None = None

    def reset(self, n: int) -> None:
        """Start n episodes; the planner takes the model's weights as they are now (a model is not trained while it
        acts)."""
        self.state = self.model.dynamics.initial(n, self.device)
        self.prev_action = torch.zeros(n, self.model.action_dim, device=self.device)
        self.rollout = self.model.planner_rollout(self.plan_dtype, self.compile)

    @torch.inference_mode()
    def act(self, obs: np.ndarray, explore: bool = True) -> np.ndarray:
        assert self.state is not None, "call reset(n) before act()"
        n = obs.shape[0]
        image = preprocess(torch.as_tensor(obs, device=self.device), self.bit_depth, self.gen)
        dyn = self.model.dynamics
        _, belief = dyn.filter_step(self.state, self.prev_action, self.model.encoder(image), self.gen)
        p = self.planner
        objective = latent_objective(self.model, belief, self.gen, rollout=self.rollout)
        with precision.autocast(self.plan_dtype, self.device):
            mean = plan(p.kind, objective, n, p.horizon, self.model.action_dim, p.iterations, p.candidates, p.top_k,
                        self.gen, self.device)
        action = mean[:, 0]
        if explore and self.noise > 0:
            noise = torch.randn(action.shape, generator=self.gen, device=self.device)
            action = action + self.noise * noise
        action = action.clamp(-1, 1)
        self.state, self.prev_action = belief, action
        return action.float().cpu().numpy()
