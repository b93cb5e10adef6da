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


# Rows (candidates x beliefs) imagined at once: about the J = 1000 of one paper-size plan, whose working set (a few
# [rows, 200-600] activations) stays in the CPU's caches; ten beliefs of 1000 candidates in one [10000, ...] batch
# ran at ~0.6 of the per-row speed of one (planet bench, 2-core EPYC and Xeon). Chunking never changes the samples.
CHUNK_ROWS = 1024


def latent_objective(model, belief, generator: torch.Generator | None, chunk_rows: int = CHUNK_ROWS,
                     rollout: Callable | None = None) -> Objective:
    """PlaNet's objective: sum over the horizon of predicted mean rewards, imagining with prior samples.

    `belief` is a State of N posterior samples; each is tiled J times (P: plan from one posterior sample).
    `rollout` is the model's open-loop imagination over the horizon (`WorldModel.imagine_rollout`, or its
    reduced-precision or compiled form from `WorldModel.planner_rollout`); rewards are summed in float32. The prior
    noise of a whole call is drawn first, in the order of an unchunked loop (step by step, all candidates of all
    beliefs), then the candidates are imagined in chunks of about `chunk_rows` rows, whole beliefs per chunk, so
    chunking never changes the samples.
    """
    dyn = model.dynamics
    rollout = rollout or model.imagine_rollout

    def objective(actions: Tensor) -> Tensor:
        n, j, h, a = actions.shape
        flat = actions.reshape(n * j, h, a)
        noise = ([torch.randn((n * j, dyn.stoch_size), generator=generator, device=actions.device)
                  for _ in range(h)] if dyn.samples(generator) else None)
        per = max(1, chunk_rows // j)
        totals = []
        for b0 in range(0, n, per):
            rows = slice(b0 * j, min(n, b0 + per) * j)
            stoch = belief.stoch[b0:b0 + per].repeat_interleave(j, 0)
            deter = belief.deter[b0:b0 + per].repeat_interleave(j, 0)
            totals.append(rollout(stoch, deter, flat[rows], None if noise is None else [x[rows] for x in noise]))
        return torch.cat(totals).reshape(n, j)

    return objective
