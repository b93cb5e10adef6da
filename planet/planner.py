"""Planners over action sequences. Pure functions: the objective is injected, so they know nothing of the model.

An objective maps candidate action sequences [N, J, H, A] (N independent planning problems, e.g. one per
environment) to scores [N, J] (higher is better). PlaNet's objective is the sum of predicted mean rewards over the
horizon (see `latent_objective`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

Objective = Callable[[Tensor], Tensor]


def cem(
    objective: Objective,
    batch: int,
    horizon: int,
    action_dim: int,
    iterations: int,
    candidates: int,
    top_k: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Cross-entropy method (P Sec. 3, G `control/planning.py`); returns the final mean sequences [N, H, A].

    Start from N(0, I) per agent step; sample J sequences, clip to [-1, 1], score them, refit mean and population
    std (not the unbiased estimate) of the top K; repeat I times. The agent acts with the first action of the mean.
    """
    shape = (batch, horizon, action_dim)
    mean = torch.zeros(shape, device=device)
    std = torch.ones(shape, device=device)
    for _ in range(iterations):
        noise = torch.randn((batch, candidates, *shape[1:]), generator=generator, device=device)
        actions = (mean[:, None] + std[:, None] * noise).clamp(-1, 1)
        scores = objective(actions)
        assert scores.shape == (batch, candidates), f"objective returned {tuple(scores.shape)}"
        elite_idx = scores.topk(top_k, dim=1, sorted=False).indices
        elite = actions.gather(1, elite_idx[:, :, None, None].expand(-1, -1, horizon, action_dim))
        mean = elite.mean(1)
        std = elite.std(1, correction=0)
    return mean


def random_shooting(
    objective: Objective,
    batch: int,
    horizon: int,
    action_dim: int,
    candidates: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Best of J random sequences, no refinement (P Fig. 5); returns [N, H, A].

    Candidates come from the same clipped N(0, I) as CEM's first iteration, so the two differ only in refinement.
    """
    noise = torch.randn((batch, candidates, horizon, action_dim), generator=generator, device=device)
    actions = noise.clamp(-1, 1)
    scores = objective(actions)
    assert scores.shape == (batch, candidates), f"objective returned {tuple(scores.shape)}"
    best = scores.argmax(1)
    return actions[torch.arange(batch, device=actions.device), best]


def plan(
    kind: str, objective: Objective, batch: int, horizon: int, action_dim: int, iterations: int, candidates: int,
    top_k: int, generator: torch.Generator, device: torch.device | str = "cpu",
) -> Tensor:
    """Dispatch on the planner kind ("cem" or "random_shooting")."""
    if kind == "cem":
        return cem(objective, batch, horizon, action_dim, iterations, candidates, top_k, generator, device)
    if kind == "random_shooting":
        return random_shooting(objective, batch, horizon, action_dim, candidates, generator, device)
    raise ValueError(f"unknown planner '{kind}'; valid: cem, random_shooting")


def latent_objective(model, belief, generator: torch.Generator | None) -> Objective:
    """PlaNet's objective: sum over the horizon of predicted mean rewards, imagining with prior samples.

    `belief` is a State of N posterior samples; each is tiled J times (P: plan from one posterior sample).
    """
    dyn = model.dynamics

    def objective(actions: Tensor) -> Tensor:
        n, j, h, a = actions.shape
        state = belief.map(lambda x: x.repeat_interleave(j, 0))
        flat = actions.reshape(n * j, h, a)
        total = actions.new_zeros(n * j)
        for k in range(h):
            state = dyn.prior_step(state, flat[:, k], generator)
            total = total + model.predict_reward(state)
        return total.reshape(n, j)

    return objective
