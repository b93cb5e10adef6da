"""Planners on known objectives, the latent objective, and the MPC agent."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from planet.agents import MPCAgent, RandomAgent
from planet.config import ModelConfig, PlannerConfig
from planet.models import WorldModel
from planet.planner import cem, latent_objective, plan, random_shooting


def quadratic(target: torch.Tensor):
    """Score = -||a - target||^2 per candidate; target [N, H, A] (one optimum per planning problem)."""

    def objective(actions: torch.Tensor) -> torch.Tensor:
        return -(actions - target[:, None]).pow(2).sum((-1, -2))

    return objective


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_cem_finds_the_optimum_of_a_known_objective_batched():
    target = torch.tensor([[[0.5, -0.3], [0.1, 0.9], [-0.7, 0.0]],
                           [[-0.2, 0.4], [0.8, -0.8], [0.3, 0.3]]])  # N=2 problems, H=3, A=2
    mean = cem(quadratic(target), 2, 3, 2, iterations=10, candidates=1000, top_k=100, generator=gen())
    assert mean.shape == (2, 3, 2)
    assert torch.allclose(mean, target, atol=0.03), (mean - target).abs().max()


def test_cem_respects_action_bounds():
    target = torch.full((1, 2, 1), 3.0)  # optimum outside [-1, 1]: best feasible is the bound
    mean = cem(quadratic(target), 1, 2, 1, iterations=6, candidates=500, top_k=50, generator=gen())
    assert torch.all(mean <= 1.0) and torch.allclose(mean, torch.ones_like(mean), atol=1e-3)


def test_cem_is_reproducible_under_a_seed():
    target = torch.zeros(1, 4, 3)
    run = lambda seed: cem(quadratic(target), 1, 4, 3, 3, 100, 10, gen(seed))  # noqa: E731
    assert torch.equal(run(1), run(1)) and not torch.equal(run(1), run(2))


def test_cem_refines_beyond_random_shooting():
    target = torch.full((1, 6, 2), 0.37)
    obj = quadratic(target)
    cem_err = (cem(obj, 1, 6, 2, 10, 200, 20, gen()) - target).pow(2).sum()
    rs_err = (random_shooting(obj, 1, 6, 2, 200, gen()) - target).pow(2).sum()
    assert cem_err < rs_err / 10


def test_random_shooting_returns_the_best_of_its_candidates():
    target = torch.tensor([[[0.2, -0.1]], [[-0.6, 0.5]]])
    best = random_shooting(quadratic(target), 2, 1, 2, candidates=50, generator=gen(3))
    # regenerate the same candidates and check by brute force
    candidates = torch.randn((2, 50, 1, 2), generator=gen(3)).clamp(-1, 1)
    scores = quadratic(target)(candidates)
    expected = candidates[torch.arange(2), scores.argmax(1)]
    assert torch.equal(best, expected)
    assert torch.equal(plan("random_shooting", quadratic(target), 2, 1, 2, 99, 50, 1, gen(3)), expected)
    with pytest.raises(ValueError, match="unknown planner 'mppi'"):
        plan("mppi", quadratic(target), 2, 1, 2, 1, 50, 1, gen(3))


def test_latent_objective_sums_predicted_rewards_from_tiled_beliefs():
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(deter_size=8, stoch_size=3, hidden_size=8, cnn_depth=2, reward_units=8), 2)
    dyn = model.dynamics
    belief = dyn.initial(2, "cpu").map(lambda x: x + torch.randn_like(x))
    actions = torch.rand(2, 5, 4, 2) * 2 - 1  # N=2 beliefs, J=5 candidates, H=4
    scores = latent_objective(model, belief, None)(actions)  # None: prior means, deterministic
    assert scores.shape == (2, 5)
    n, j = 1, 3
    one = belief.map(lambda x: x[n : n + 1])
    states = dyn.imagine(one, actions[n : n + 1, j], None)
    assert torch.allclose(scores[n, j], model.predict_reward(states).sum(), atol=1e-5)


def _agent(noise: float, seed: int) -> MPCAgent:
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(deter_size=8, stoch_size=3, hidden_size=8, cnn_depth=2, reward_units=8), 2)
    planner = PlannerConfig(horizon=3, iterations=2, candidates=16, top_k=4)
    return MPCAgent(model, planner, 5, noise, gen(seed), torch.device("cpu"))


def test_mpc_agent_acts_in_bounds_and_reproducibly():
    obs = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    acts = []
    for _ in range(2):
        agent = _agent(0.3, seed=1)
        agent.reset(3)
        acts.append(np.stack([agent.act(obs, explore=False) for _ in range(3)]))
    assert acts[0].shape == (3, 3, 2) and acts[0].dtype == np.float32
    assert np.array_equal(acts[0], acts[1])
    assert np.all(np.abs(acts[0]) <= 1)
    agent = _agent(5.0, seed=1)  # huge noise: explored actions are clipped to the bounds
    agent.reset(3)
    explored = agent.act(obs, explore=True)
    assert np.all(np.abs(explored) <= 1) and np.mean(np.abs(explored) == 1) > 0.5


def test_random_agent_is_uniform_in_bounds_and_seeded():
    a = RandomAgent(3, np.random.default_rng(0)).act(np.zeros((1000, 1)))
    b = RandomAgent(3, np.random.default_rng(0)).act(np.zeros((1000, 1)))
    assert np.array_equal(a, b) and a.shape == (1000, 3)
    assert a.min() >= -1 and a.max() <= 1 and abs(a.mean()) < 0.05 and abs(a.std() - 1 / np.sqrt(3)) < 0.02
