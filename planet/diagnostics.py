r"""State diagnostics (P Fig. 11): how much of the true simulator state a trained, frozen world model holds in its
latent features, while filtering and when predicting open loop.

For one run (`planet diagnose --run RUN`, :func:`diagnose_run`):

1. **Features.** The model filters each episode with the posterior q(s_t | h_t, e_t) from a zero state (the mean,
   no sampling, as the open-loop video of P Fig. 10 in planet/video.py). From every posterior at a row j that has
   seen at least ``context`` frames (j >= context - 1), the prior then runs open loop on the true actions; its
   features after d steps are those of row j + d (d = 0 is the posterior itself)::

       rows            0 .. j-1 ..  j      j+1      ...   j+d
       filtering       q    q       q(s_j) <- start (d = 0)
       open loop                           p(s_j+1)  ...   p(s_j+d | s_j, a_j .. a_j+d-1)   -> features at distance d

   Features are the model's own (`LatentDynamics.features`: [h_t, s_t] for the RSSM, s_t for the SSM, d_t for the
   DRNN), taken at the Gaussians' means, so the diagnostics are reproducible.
2. **Heads.** One small MLP per state group (the groups of dm_control's observation dict, stored with every episode
   since this module exists: planet/envs.py, planet/replay.py), on standardised features, predicting the group
   standardised; G's diagnostic heads (`scripts/configs.py` adds a head per task ``state_components``, trained with
   their own optimiser so they never change the model; `networks/basic.py` `feed_forward`: 2 x 100 ReLU, MSE) are
   the model here. With ``readout: posterior`` (default, as G) the heads learn from posterior features and read the
   open-loop features with the same weights, as the decoder reads the open-loop video; with ``per_distance`` one
   set of heads is trained per distance on that distance's features (how much state information they hold at all).
   Trained on the run's most recent training episodes (the final model's own data), Adam, seeded from the run seed.
3. **Scores.** On held-out episodes on the 'test' split's seeds (disjoint from training; played by the run's
   agent without exploration noise, as `planet evaluate`, or by uniform random actions): R^2 per state group and
   distance, 1 - SS_res / SS_tot per state dimension about the held-out mean, averaged over the group's dimensions
   (scikit-learn's ``r2_score`` with uniform averaging); 1 is perfect, 0 is no better than predicting the held-out
   mean. Dimensions constant on the held-out data (e.g. a touch sensor never touched) are left out.

Writes RUN/diagnostics.json (and a copy to ``--out``: the pipeline's RESULTS/diagnostics/VARIANT/TASK/seedN.json)
and logs ``diagnostics/r2/GROUP/dD`` and ``diagnostics/r2_mean/dD`` with the file to the run's MLflow run. Settings:
params/diagnostics.yaml, one block per agent preset (:func:`resolve_settings`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from planet import config as config_lib
from planet import rundir
from planet.agents import RandomAgent
from planet.config import Config, ConfigError
from planet.envs import episode_seed
from planet.models import WorldModel, mlp, preprocess
from planet.replay import STATE_GROUPS_KEY, STATE_KEY, load_episode
from planet.rollouts import EnvPool, evaluate, run_episodes
from planet.utils import PlanetError, derive_seed, numpy_generator, torch_generator

log = logging.getLogger(__name__)

RESULT_FILE = rundir.DIAGNOSTICS_FILE
StateGroups = list[tuple[str, int]]
"""Names and sizes of the state's groups, in the order of the flattened state (planet/envs.py `state_groups`)."""
Samples = dict[int, tuple[np.ndarray, np.ndarray]]
"""{distance: (features [N, F], true states [N, S])}."""


# --------------------------------------------------------------------------------------------------------------
# Settings


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Settings of `planet diagnose` (params/diagnostics.yaml; see the module docstring for the method)."""

    context: int = 5
    """Frames a posterior has filtered before it starts an open-loop prediction (G ``open_loop_context`` = 5, the
    context of the open-loop video, P Fig. 10)."""
    distances: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 45)
    """Open-loop distances scored, increasing; 0 = the posterior. 45 is the open-loop part of P Fig. 10 (5 context
    frames, prediction to step 50)."""
    readout: Literal["posterior", "per_distance"] = "posterior"
    """posterior: one set of heads trained on posterior features reads every distance (as G's heads and the
    decoder); per_distance: heads trained on each distance's own features."""
    train_episodes: int = 50
    """The run's most recent training episodes the heads learn from (those holding the state)."""
    test_episodes: int = 10
    """Held-out episodes scored, on the 'test' split's seeds."""
    test_policy: Literal["agent", "random"] = "agent"
    """Who plays the held-out episodes: the run's agent without exploration noise (as `planet evaluate`), or
    uniform random actions (cheap; further from the training data)."""
    hidden_layers: int = 2
    """Hidden layers per head (G `feed_forward`: 2)."""
    hidden_units: int = 100
    """Units per hidden layer (G `feed_forward`: 100), ReLU."""
    steps: int = 500
    """Adam steps of the heads ("a few hundred"; a head is ~30k weights)."""
    batch_size: int = 256
    """Samples per step, drawn uniformly with replacement from every (row, distance) sample of the training set."""
    learning_rate: float = 1e-3
    """Adam learning rate (G's optimisers: 1e-3, eps 1e-4)."""


def override_items(overrides: Mapping[str, Any]) -> list[str]:
    """``KEY=VALUE`` strings of a mapping (values as JSON, which the YAML parser of overrides reads back exactly)."""
    return [f"{key}={json.dumps(value)}" for key, value in overrides.items()]


def resolve_settings(preset: str, overrides: Iterable[str] | Mapping[str, Any] | None = None,
                     params_file: Path | None = None) -> DiagnosticsConfig:
    """The validated settings for runs of agent preset ``preset``: its block of params/diagnostics.yaml, then
    ``KEY=VALUE`` overrides (or a mapping, as a pipeline preset's ``diagnostics: overrides:``). Every mistake is a
    one-line ConfigError naming the key."""
    values = config_lib.preset_block(params_file or config_lib.params_dir() / "diagnostics.yaml", preset,
                                     "diagnostics settings")
    if isinstance(overrides, Mapping):
        overrides = override_items(overrides)
    values.update(config_lib.parse_overrides(list(overrides or [])))
    # planet.config's settings hold scalars only: the list of distances is checked here.
    distances = values.pop("distances", DiagnosticsConfig.distances)
    if (not isinstance(distances, list | tuple) or not distances
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in distances)
            or list(distances) != sorted(set(distances))):
        raise ConfigError(f"config key 'distances': got {distances!r}; expected a list of increasing integers >= 0, "
                          "e.g. [0, 1, 5, 10] (0 = the posterior)")
    settings = dataclasses.replace(config_lib.build_settings(DiagnosticsConfig, values), distances=tuple(distances))
    for key in ("context", "train_episodes", "test_episodes", "hidden_units", "steps", "batch_size"):
        if getattr(settings, key) < 1:
            raise ConfigError(f"config key '{key}' must be >= 1, got {getattr(settings, key)}")
    if settings.hidden_layers < 0:
        raise ConfigError(f"config key 'hidden_layers' must be >= 0, got {settings.hidden_layers}")
    if not settings.learning_rate > 0:
        raise ConfigError(f"config key 'learning_rate' must be > 0, got {settings.learning_rate}")
    return settings


# --------------------------------------------------------------------------------------------------------------
# Episodes and features


def training_episodes(directory: Path, count: int) -> list[tuple[dict[str, np.ndarray], dict]]:
    """The ``count`` most recent episodes in ``directory`` that hold the true state, oldest first (episode files
    written before states were stored are passed over)."""
    chosen: list[Path] = []
    for path in sorted(Path(directory).glob("episode_*.npz"), reverse=True):
        try:
            with np.load(path) as archive:  # lazy: reads the member list, not the arrays
                has_state = STATE_KEY in archive.files
        except Exception:  # unreadable: load_episode raises the error that names the file and what to do
            load_episode(path)
            raise
        if has_state:
            chosen.append(path)
            if len(chosen) == count:
                break
    if len(chosen) < count:
        log.info("%s: %d episodes hold the true state (%d asked for)", directory, len(chosen), count)
    if not chosen:
        raise PlanetError(f"no episode in {directory} holds the true state (they were collected before episodes "
                          "stored it): train the run again with this version to diagnose it")
    return [load_episode(path) for path in reversed(chosen)]


def state_groups(metadata: Sequence[Mapping[str, Any]], where: str) -> StateGroups:
    """The state groups the episodes' metadata name, which must be one and the same."""
    found = {tuple((str(n), int(s)) for n, s in meta.get(STATE_GROUPS_KEY) or ()) for meta in metadata}
    if len(found) != 1 or not next(iter(found)):
        raise PlanetError(f"{where}: the episodes name different or no state groups ({sorted(found)})")
    return list(next(iter(found)))


@torch.no_grad()
def open_loop_features(model: WorldModel, episode: Mapping[str, np.ndarray], bit_depth: int, device: torch.device,
                       context: int, distances: Sequence[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{d: (features [n_d, F], target rows [n_d])}: the features at distance d from every posterior start j >=
    context - 1 whose target row j + d lies in the episode (see the module docstring's table)."""
    dyn = model.dynamics
    obs = torch.as_tensor(episode["obs"][None], device=device)
    actions = torch.as_tensor(episode["action"][None], device=device)
    rows = obs.shape[1]
    _, posts = dyn.observe(model.encoder(preprocess(obs, bit_depth, None)), actions, dyn.initial(1, device), None)
    starts = torch.arange(context - 1, rows, device=device)
    state = posts.map(lambda x: x[0, starts])
    out = {}
    for d in range(max(distances) + 1):
        if d:
            # Row j + d holds a_{j+d-1}, the action that leads from row j + d - 1 to row j + d. Starts whose target
            # is past the end step on the last row's action and are dropped below.
            state = dyn.prior_step(state, actions[0, (starts + d).clamp(max=rows - 1)], None)
        if d in distances:
            valid = starts + d < rows
            out[d] = (dyn.features(state)[valid].float().cpu().numpy(), (starts + d)[valid].cpu().numpy())
    return out


def feature_sets(model: WorldModel, episodes: Sequence[Mapping[str, np.ndarray]], bit_depth: int,
                 device: torch.device, context: int, distances: Sequence[int]) -> Samples:
    """The features and true states of every (start, distance) sample of ``episodes`` at each distance."""
    parts: dict[int, tuple[list, list]] = {d: ([], []) for d in distances}
    for episode in episodes:
        for d, (features, rows) in open_loop_features(model, episode, bit_depth, device, context, distances).items():
            parts[d][0].append(features)
            parts[d][1].append(episode[STATE_KEY][rows])
    return {d: (np.concatenate(x), np.concatenate(y)) for d, (x, y) in parts.items()}


def held_out_episodes(model: WorldModel, cfg: Config, device: torch.device, settings: DiagnosticsConfig,
                      pool: EnvPool, progress: bool) -> tuple[list[dict[str, np.ndarray]], list[float]]:
    """``test_episodes`` episodes on the 'test' split's seeds, played by the run's agent (noise-free, one batched
    plan per step, as `planet evaluate`) or by uniform random actions; returns (episodes, returns)."""
    if settings.test_policy == "agent":
        returns, episodes = evaluate(model, cfg, device, settings.test_episodes, "test", "diagnostics", progress,
                                     pool)
        return episodes, [float(r) for r in returns]
    envs = pool.get(settings.test_episodes)
    seeds = [episode_seed(cfg.seed, "test", m) for m in range(settings.test_episodes)]
    agent = RandomAgent(envs[0].action_dim, numpy_generator(cfg.seed, "diagnostics/random"))
    episodes = run_episodes(envs, seeds, agent, explore=False, desc="diagnostics test" if progress else None)
    return episodes, [float(ep["reward"].sum()) for ep in episodes]


# --------------------------------------------------------------------------------------------------------------
# Heads and scores


def r_squared(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """R^2 of predictions [N, k] of k dimensions: 1 - SS_res / SS_tot per dimension (SS_tot about the mean of
    ``y_true``), averaged over the dimensions that vary (scikit-learn's ``r2_score``, uniform average). NaN when
    none varies or N = 0."""
    y_true, y_pred = np.asarray(y_true, np.float64), np.asarray(y_pred, np.float64)
    assert y_true.shape == y_pred.shape and y_true.ndim == 2, (y_true.shape, y_pred.shape)
    ss_tot = ((y_true - y_true.mean(0)) ** 2).sum(0) if len(y_true) else np.zeros(y_true.shape[1])
    ss_res = ((y_true - y_pred) ** 2).sum(0)
    varying = ss_tot > 1e-12 * max(len(y_true), 1)
    return float(np.mean(1 - ss_res[varying] / ss_tot[varying])) if varying.any() else math.nan


def group_r_squared(y_true: np.ndarray, y_pred: np.ndarray, groups: StateGroups) -> dict[str, float]:
    """:func:`r_squared` of each state group (consecutive columns of the flattened state)."""
    out, start = {}, 0
    for name, size in groups:
        out[name] = r_squared(y_true[:, start:start + size], y_pred[:, start:start + size])
        start += size
    return out


class StateHeads(nn.Module):
    """One MLP per state group on standardised features, predicting the group standardised (G's diagnostic heads,
    `feed_forward`). The standardisation (training mean and std of features and targets) is part of the module."""

    def __init__(self, features: np.ndarray, states: np.ndarray, groups: StateGroups, layers: int, units: int):
        super().__init__()
        self.heads = nn.ModuleDict({name: mlp(features.shape[1], units, layers, size, "relu") for name, size in groups})
        for name, data in (("x", features), ("y", states)):
            data = torch.as_tensor(data, dtype=torch.float32)
            self.register_buffer(f"{name}_mean", data.mean(0))
            self.register_buffer(f"{name}_std", data.std(0, unbiased=False).clamp(min=1e-6))

    def normalised(self, features: Tensor) -> Tensor:
        """The heads' outputs: every group's prediction, standardised, concatenated [N, S]."""
        x = (features - self.x_mean) / self.x_std
        return torch.cat([head(x) for head in self.heads.values()], -1)

    def targets(self, states: Tensor) -> Tensor:
        return (states - self.y_mean) / self.y_std

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        """True-state predictions [N, S] in the state's own units."""
        x = torch.as_tensor(features, dtype=torch.float32, device=self.x_mean.device)
        return (self.normalised(x) * self.y_std + self.y_mean).cpu().numpy()


def fit_heads(features: np.ndarray, states: np.ndarray, groups: StateGroups, settings: DiagnosticsConfig,
              seed: int, name: str, device: torch.device) -> StateHeads:
    """Train :class:`StateHeads` on (features, true states) with Adam for ``settings.steps`` steps of uniformly drawn
    minibatches; initialisation and draws are seeded from (run seed, ``name``). The sum over groups of each group's
    mean squared error trains every head on its own, as G's separate optimisers (Adam is per parameter)."""
    with torch.random.fork_rng(devices=[]):  # the heads' initial weights, without touching the global generator
        torch.manual_seed(derive_seed(seed, f"{name}/init"))
        heads = StateHeads(features, states, groups, settings.hidden_layers, settings.hidden_units).to(device)
    x = torch.as_tensor(features, dtype=torch.float32, device=device)
    y = heads.targets(torch.as_tensor(states, dtype=torch.float32, device=device))
    gen = torch_generator(seed, f"{name}/batches", device)
    optimiser = torch.optim.Adam(heads.parameters(), lr=settings.learning_rate, eps=1e-4)
    for _ in range(settings.steps):
        index = torch.randint(0, len(x), (settings.batch_size,), generator=gen, device=device)
        loss = (heads.normalised(x[index]) - y[index]).pow(2).mean(0).sum()
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return heads.eval()


def score_heads(train: Samples, test: Samples, groups: StateGroups, settings: DiagnosticsConfig, seed: int,
                device: torch.device) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Fit heads (``settings.readout``) and score them per group and distance: ({group: [held-out R^2 per
    distance]}, {group: [training R^2 per distance]}); training scores are NaN where no head learnt from that
    distance (posterior readout: every d > 0)."""
    test_r2: dict[str, list[float]] = {name: [] for name, _ in groups}
    train_r2: dict[str, list[float]] = {name: [] for name, _ in groups}
    shared = None
    if settings.readout == "posterior":
        shared = fit_heads(*train[0], groups, settings, seed, "diagnostics/heads", device)
    for d in settings.distances:
        own = shared is None  # heads of this distance, trained on its own features
        heads = fit_heads(*train[d], groups, settings, seed, f"diagnostics/heads/d{d}", device) if own else shared
        scores = group_r_squared(test[d][1], heads.predict(test[d][0]), groups)
        fit = group_r_squared(train[d][1], heads.predict(train[d][0]), groups) if own or d == 0 else {}
        for name, _ in groups:
            test_r2[name].append(scores[name])
            train_r2[name].append(fit.get(name, math.nan))
    return test_r2, train_r2


# --------------------------------------------------------------------------------------------------------------
# One run


def _finite(value: float) -> float | None:
    """JSON has no NaN: a score that does not exist is null."""
    return float(value) if math.isfinite(value) else None


def _mean(values: Iterable[float]) -> float | None:
    """The mean of the finite values (the groups' R^2 at one distance), None without any."""
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


@rundir.locked("planet diagnose", shared=True)  # beside `planet evaluate`, never beside a training
def diagnose_run(run_dir: Path, device: torch.device, overrides: Sequence[str] | None = None, progress: bool = True,
                 out: Path | None = None) -> dict[str, Any]:
    """The state diagnostics of RUN (module docstring): write RUN/diagnostics.json (and a copy to ``out``), log the
    scores and the file to the run's MLflow run, return the result."""
    start_time = time.perf_counter()
    run_dir = Path(run_dir)
    cfg, model = rundir.load_model(run_dir, device)
    settings = resolve_settings(cfg.preset, overrides)
    train = training_episodes(run_dir / rundir.EPISODES_DIR, settings.train_episodes)
    groups = state_groups([meta for _, meta in train], str(run_dir / rundir.EPISODES_DIR))
    rows = len(train[0][0]["reward"])
    if settings.context - 1 + settings.distances[-1] >= rows:
        raise ConfigError(f"distance {settings.distances[-1]} after {settings.context} context frames does not fit "
                          f"in this run's episodes of {rows} rows: use distances up to {rows - settings.context}")
    pool = EnvPool(cfg)
    try:
        if pool.get(1)[0].state_groups != groups:
            raise PlanetError(f"{run_dir}: its episodes' state groups {groups} differ from the environment's "
                              f"{pool.get(1)[0].state_groups}")
        test, returns = held_out_episodes(model, cfg, device, settings, pool, progress)
    finally:
        pool.close()
    train_distances = (0,) if settings.readout == "posterior" else settings.distances
    train_sets = feature_sets(model, [ep for ep, _ in train], cfg.env.bit_depth, device, settings.context,
                              train_distances)
    test_sets = feature_sets(model, test, cfg.env.bit_depth, device, settings.context, settings.distances)
    test_r2, train_r2 = score_heads(train_sets, test_sets, groups, settings, cfg.seed, device)
    counters = rundir.progress(run_dir)
    result = {
        "task": cfg.task, "seed": cfg.seed, "preset": cfg.preset, "model": cfg.model.kind,
        "variant": rundir.variant(run_dir), "settings": dataclasses.asdict(settings),
        "state_groups": [[name, size] for name, size in groups], "distances": list(settings.distances),
        "r2": {name: [_finite(v) for v in values] for name, values in test_r2.items()},
        "r2_mean": [_mean(column) for column in zip(*test_r2.values(), strict=True)],
        "r2_train": {name: [_finite(v) for v in values] for name, values in train_r2.items()},
        "samples": {"train": [len(train_sets[d][0]) for d in train_distances],
                    "test": [len(test_sets[d][0]) for d in settings.distances]},
        "train_episodes": [meta.get("index") for _, meta in train], "test_returns": returns,
        "train_env_steps": counters.get("env_steps"), "complete": (run_dir / rundir.SUMMARY_FILE).exists(),
        "wall_s": round(time.perf_counter() - start_time, 2),
    }
    own = rundir.write_result(run_dir, RESULT_FILE, result, out)
    metrics = {f"diagnostics/r2/{name}/d{d}": v for name, values in result["r2"].items()
               for d, v in zip(settings.distances, values, strict=True) if v is not None}
    metrics |= {f"diagnostics/r2_mean/d{d}": v for d, v in zip(settings.distances, result["r2_mean"], strict=True)
                if v is not None}
    with rundir.tracker(run_dir, cfg) as tracker:
        tracker.log_metrics(metrics, step=int(counters.get("env_steps") or 0))
        tracker.log_artifact(own)
    return result
