"""Typed, strict configuration: frozen dataclasses, named presets, per-task overrides, dotted overrides.

Resolution order (later wins)::

    dataclass defaults (= the paper's agent, provenance noted per field)
      -> preset from params/presets.yaml (``paper``, ``cpu``, ``debug``, ...)
      -> that preset's ``tasks: {TASK: {...}}`` block for the chosen task
      -> ``key=value`` overrides from the command line (dotted keys, e.g. ``planner.horizon=8``)

Every key is checked: an unknown key or a value of the wrong type is rejected with a message naming the key and
the valid choices. The resolved configuration is saved beside a run's outputs (``config.yaml``).

Provenance tags used in the comments: P = the paper (arXiv 1811.04551 v5), G = the official TensorFlow code
(google-research/planet), K = the Kaixhin/PlaNet PyTorch port.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from planet.tasks import TASKS, get_task, task_list
from planet.utils import flatten

PARAMS_ENV = "PLANET_PARAMS"
SOURCE_PARAMS = Path(__file__).resolve().parent.parent / "params"  # beside the package in a source checkout


def params_dir() -> Path:
    """The params directory every command reads (presets.yaml, baselines.yaml), in this order: $PLANET_PARAMS (set
    by `planet --params DIR`), ./params of the working directory (the checkout a pipeline runs in), the params/
    beside the package source (an editable install used from elsewhere).

    The working directory wins over the package's location: a package installed from one clone and run in another
    used to read the *other* clone's presets silently, while Snakemake had hashed this one's.
    """
    if os.environ.get(PARAMS_ENV):
        path = Path(os.environ[PARAMS_ENV])
        if not (path / "presets.yaml").is_file():
            raise ConfigError(f"{PARAMS_ENV}={path}: no presets.yaml there - point it (or --params) at the "
                              "repository's params/ directory")
        return path
    for path in (Path.cwd() / "params", SOURCE_PARAMS):
        if (path / "presets.yaml").is_file():
            return path
    raise ConfigError("no params/presets.yaml in the working directory or beside the package - run from the "
                      "repository root, or pass --params DIR")


def presets_file() -> Path:
    return params_dir() / "presets.yaml"


class ConfigError(ValueError):
    """A configuration key or value is invalid; the message says which and what is allowed."""


@dataclass(frozen=True)
class EnvConfig:
    """The environment: dm_control task from pixels."""

    action_repeat: int | None = None
    """Agent action repeated this many env steps. null = the paper's per-task value (planet.tasks.TASKS)."""
    episode_env_steps: int = 1000
    """Env steps per episode before action repeat (P: 1000). Must be divisible by the action repeat."""
    image_size: int = 64
    """Observation height and width in pixels (P: 64, rendered at that size as in G)."""
    bit_depth: int = 5
    """Bits per colour channel kept by preprocessing (P/G: 5), plus uniform dequantisation noise."""
    shadow_map_size: int | None = None
    """Side of MuJoCo's shadow map in pixels. null = the model's own (dm_control's suite: 2048, as P/G rendered).
    Deviation for CPUs (the `cpu` preset: 512): the shadow map is most of a 64 px frame's cost with Mesa's software
    renderer; 512 renders it ~2x faster and changes 0.01-0.3% of the pixels (planet/envs.py; tests/test_envs.py)."""


@dataclass(frozen=True)
class ModelConfig:
    """The world model: conv encoder/decoder, latent dynamics, reward head."""

    kind: Literal["rssm", "gru", "ssm", "drnn"] = "rssm"
    """rssm = PlaNet; gru = purely deterministic (mean-only state, no KL; P Fig. 4 / G mean_only);
    ssm = purely stochastic (no deterministic path; P Fig. 4); drnn = doubly recurrent (P Fig. 8, structure from G
    models/drnn.py: encoder and decoder GRUs of deter_size units around s_t; planet/models.py `DRNN`)."""
    deter_size: int = 200
    """GRU units of the deterministic path h_t (P/G: 200); drnn: of each of its two GRUs (G: 200)."""
    stoch_size: int = 30
    """Dimensions of the diagonal-Gaussian stochastic state s_t (P/G: 30)."""
    hidden_size: int = 200
    """Units of the hidden dense layers of the state model (P/G: 200)."""
    hidden_layers: int = 1
    """Hidden layers per prior/posterior/transition-input function. G uses 1; P says 2 ("two FC layers"). We follow G
    because its published curves came from that code."""
    cnn_depth: int = 32
    """Channels of the first conv layer; doubled per layer: 32-64-128-256 (G)."""
    min_std: float = 0.1
    """Added to softplus(std) of prior and posterior (G: 0.1)."""
    reward_layers: int = 2
    """Hidden layers of the reward head (P: 2; G camera-ready: 2; G HEAD: 3)."""
    reward_units: int = 200
    """Units per reward-head layer (P: 200; G camera-ready: 100; G HEAD: 300). We follow P."""
    activation: Literal["relu", "elu"] = "relu"
    """Activation of the dense layers of the state model and the reward head (P Fig. 9 compares relu and elu). As in
    G, the conv encoder and decoder keep ReLU (G passes `config.activation` to the cell and the heads only), and so
    does the drnn state model (G's DRNN ignores the activation it is given)."""


@dataclass(frozen=True)
class LossConfig:
    """The variational bound."""

    free_nats: float = 3.0
    """KL free nats per (batch, time), after summing over latent dims (P/G: 3)."""
    kl_scale: float = 1.0
    """Scale of the KL term (P: not rescaled, 1). Forced to 0 for model.kind=gru (no KL, as P Fig. 4)."""
    reward_scale: float = 10.0
    """Scale of the reward log-likelihood. P does not state it; G uses 10 (K uses 1). We follow G."""
    overshooting_distance: int = 0
    """Latent overshooting distance D (P Eq. 7); 0 = off (P final agent); D = 1 equals the standard bound."""
    overshooting_scale: float = 1.0
    """beta for the overshooting KL terms at distances 2..D (P Eq. 7; targets are stop-gradient posteriors)."""


@dataclass(frozen=True)
class TrainConfig:
    """Data collection and optimisation schedule."""

    episodes: int = 1000
    """Total training episodes, seed episodes included (P Table 1: 1000 episodes = 1e6 env steps)."""
    seed_episodes: int = 5
    """Random-action episodes collected before training (P/G: S = 5)."""
    updates_per_episode: int = 100
    """Model updates between two collected episodes (P/G: C = 100)."""
    batch_size: int = 50
    """Chunks per batch (P/G: B = 50)."""
    chunk_length: int = 50
    """Steps per chunk (P/G: L = 50). Chunks never cross episode boundaries."""
    learning_rate: float = 1e-3
    """Adam learning rate (P/G: 1e-3)."""
    adam_eps: float = 1e-4
    """Adam epsilon (P/G: 1e-4)."""
    grad_clip: float = 1000.0
    """Global gradient-norm clipping (P/G: 1000)."""
    warmup_updates: int = 0
    """Linear learning-rate warm-up over this many updates (P: none; G camera-ready: 200). 0 = off."""


@dataclass(frozen=True)
class PlannerConfig:
    """Model-predictive control in latent space."""

    kind: Literal["cem", "random_shooting"] = "cem"
    """cem = PlaNet; random_shooting = best of `candidates` random sequences, no refinement (P Fig. 5)."""
    horizon: int = 12
    """Planning horizon H (P/G: 12)."""
    iterations: int = 10
    """CEM iterations I (P/G: 10)."""
    candidates: int = 1000
    """Candidate action sequences J per iteration (P/G: 1000)."""
    top_k: int = 100
    """Elite sequences K refitted per iteration (P/G: 100)."""


@dataclass(frozen=True)
class CollectConfig:
    """How training episodes after the seed episodes are collected."""

    policy: Literal["mpc", "random"] = "mpc"
    """mpc = PlaNet (planner + exploration noise); random = the "random collection" variant of P Fig. 5: the model
    sees only random-action episodes, and evaluation still plans with the planner."""
    exploration_noise: float = 0.3
    """Std of Gaussian noise added to planned actions before clipping to [-1, 1] (P/G: 0.3; a std, not a variance)."""


@dataclass(frozen=True)
class EvalConfig:
    """Noise-free evaluation during training."""

    every: int = 10
    """Evaluate after every this many collected episodes (G: 10), and after the last one. 0 = only at the end."""
    episodes: int = 10
    """Noise-free episodes per evaluation, run in parallel with one batched plan per step (P: 10 trajectories)."""
    video: bool = True
    """Write a GIF of the first evaluation episode of the final evaluation."""


@dataclass(frozen=True)
class RunConfig:
    """Bookkeeping: checkpoints and tracking."""

    checkpoint_every: int = 1
    """Write the resumable checkpoint after every this many collected episodes."""
    mlflow: bool = True
    """Mirror params/metrics/artifacts to MLflow (the JSONL files in the run directory are the source of truth)."""
    experiment: str = "planet"
    """MLflow experiment name."""
    threads: int = 0
    """torch intra-op threads; 0 = torch's default."""


@dataclass(frozen=True)
class ComputeConfig:
    """Numerics and compilation of the hot paths (planet/precision.py). The model and the loss are the same at every
    setting; float32 is the reference (the default, and the `paper` preset's). The `cpu` preset runs auto + compile:
    its cartpole run at 100k steps learned inside the float32 run's curve (reports/cpu100k/)."""

    update_precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """Model updates: bf16 runs the dense and conv layers under bfloat16 autocast (weights, Adam and the Gaussians stay
    float32); auto = bf16 where this machine measures it faster (CPUs with AVX512-BF16 or AMX, recent GPUs)."""
    plan_precision: Literal["fp32", "bf16", "auto"] = "fp32"
    """CEM imagination: bf16 plans on a bfloat16 copy of the dynamics and reward head (rewards summed in float32)."""
    tf32: bool = True
    """CUDA only: TF32 tensor cores for float32 matmuls and convolutions (10-bit mantissa inputs, float32
    accumulation; PyTorch's own default for convolutions). false = strict float32. No effect on CPU."""
    compile: bool = False
    """torch.compile the planner's whole-horizon imagination (`WorldModel.imagine_rollout`; CUDA: mode
    reduce-overhead, i.e. one CUDA graph per horizon) and the update's encoder and decoder (default mode). Compiles
    once per process (~5-25 s per function on a 2-core CPU); there the compiled float32 plan was 1.07-1.19x the eager
    one and the update 0.96-1.3x (docs/speed.md)."""


@dataclass(frozen=True)
class Config:
    """A whole run. `task` and `seed` come from the CLI; everything else from presets and overrides."""

    task: str = "cartpole_swingup"
    seed: int = 0
    preset: str = "paper"
    env: EnvConfig = field(default_factory=EnvConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    planner: PlannerConfig = field(default_factory=PlannerConfig)
    collect: CollectConfig = field(default_factory=CollectConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    run: RunConfig = field(default_factory=RunConfig)
    compute: ComputeConfig = field(default_factory=ComputeConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def flat(self) -> dict[str, Any]:
        """Dotted-key view, e.g. {"planner.horizon": 12, ...}."""
        return flatten(self.to_dict())

    def run_name(self, variant: str | None = None) -> str:
        """MLflow run name that alone says variant, task and seed, e.g. `planet-cartpole_swingup-seed0`. Without a
        pipeline variant name, one is derived from what differs from PlaNet (`rssm+random_shooting`, ...)."""
        if not variant:
            parts = [self.model.kind]
            if self.planner.kind != "cem":
                parts.append(self.planner.kind)
            if self.collect.policy != "mpc":
                parts.append(f"{self.collect.policy}_collection")
            if self.loss.overshooting_distance:
                parts.append(f"overshooting{self.loss.overshooting_distance}")
            variant = "+".join(parts)
        return f"{variant}-{self.task}-seed{self.seed}"

    def identity(self) -> dict[str, Any]:
        """Every value that changes results: all sections but `run` (checkpoints, tracking and threads are
        bookkeeping, so e.g. `run.mlflow=false` can resume a run made with MLflow)."""
        tree = self.to_dict()
        tree.pop("run")
        return tree

    def digest(self) -> str:
        """Short hash of `identity` (used to tag runs, name run directories and detect a changed config)."""
        return digest(self.identity())


# --------------------------------------------------------------------------------------------------------------
# Validation and composition.


def _unflatten(flat: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for key, value in flat.items():
        node = tree
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"config key '{key}': '{part}' is a value, not a section")
        node[parts[-1]] = value
    return tree


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(c) for c in typing.get_args(tp))
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true/false", str: "a string", type(None): "null"}.get(
        tp, str(tp)
    )


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check `value` against the annotation `tp`; return it (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
    elif isinstance(tp, types.UnionType) or origin is typing.Union:
        for option in typing.get_args(tp):
            try:
                return _coerce(key, value, option)
            except ConfigError:
                continue
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    else:  # pragma: no cover - only if a new annotation kind is added to the dataclasses
        raise TypeError(f"unsupported annotation {tp!r} for {key}")
    raise ConfigError(f"config key '{key}': got {value!r} ({type(value).__name__}); expected {_describe(tp)}")


def _build(cls: type, values: dict[str, Any], prefix: str = "") -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key in values:
        if key not in names:
            where = f"section '{prefix[:-1]}'" if prefix else "the top level"
            raise ConfigError(
                f"unknown config key '{prefix}{key}' in {where}; valid keys: {', '.join(prefix + n for n in names)}"
            )
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in values:
            continue
        tp = hints[f.name]
        value = values[f.name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{prefix}{f.name}' is a section; set its keys, e.g. {f.name}.KEY=VALUE")
            kwargs[f.name] = _build(tp, value, prefix + f.name + ".")
        else:
            kwargs[f.name] = _coerce(prefix + f.name, value, tp)
    return cls(**kwargs)


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def preset_block(path: Path, preset: str, what: str) -> dict[str, Any]:
    """The block of agent preset ``preset`` in a per-preset settings file (params/baselines.yaml,
    params/diagnostics.yaml), its ``description`` dropped; a missing file or block is one ConfigError."""
    try:
        blocks = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{what} file {path} not found") from exc
    if preset not in blocks:
        raise ConfigError(f"preset '{preset}' has no block in {path}; valid: {', '.join(sorted(blocks))}")
    return {k: v for k, v in dict(blocks[preset] or {}).items() if k != "description"}


def build_settings(cls: type, block: dict[str, Any], overrides: list[str] | None = None) -> Any:
    """Dataclass ``cls`` from a params block and ``KEY=VALUE`` overrides, validated as strictly as the agent's
    config (unknown keys and wrong types are refused): what params/baselines.yaml uses."""
    return _build(cls, _merge(block, parse_overrides(list(overrides or []))))


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """Parse ``key=value`` strings; values are YAML scalars (``12``, ``0.3``, ``true``, ``null``, ``cem``)."""
    flat: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override '{item}' is not KEY=VALUE (e.g. planner.horizon=8)")
        try:
            flat[key.strip()] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override '{item}': cannot parse value: {exc}") from exc
    return _unflatten(flat)


def load_presets(path: Path | None = None) -> dict[str, Any]:
    path = path or presets_file()
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as exc:
        raise ConfigError(f"presets file {path} not found") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"presets file {path}: expected a mapping of preset names")
    return data


def resolve(
    task: str,
    preset: str = "paper",
    seed: int = 0,
    overrides: list[str] | dict[str, Any] | None = None,
    presets_file: Path | None = None,
) -> Config:
    """Compose defaults, preset, per-task block and overrides into a validated Config. `task` may name several
    tasks ("all" or "A+B", planet.tasks.task_list) for one agent trained on all of them (planet/multitask.py)."""
    tasks = task_list(task)  # raises with the list of valid task names
    presets = load_presets(presets_file)
    if preset not in presets:
        raise ConfigError(f"unknown preset '{preset}'; valid presets: {', '.join(sorted(presets))}")
    block = dict(presets[preset] or {})
    block.pop("description", None)
    per_task = block.pop("tasks", {}) or {}
    unknown_tasks = set(per_task) - set(TASKS)
    if unknown_tasks:
        raise ConfigError(f"preset '{preset}': unknown task(s) {sorted(unknown_tasks)} in its tasks block")
    blocks = [t for t in tasks if per_task.get(t)]
    if len(tasks) > 1 and blocks:
        raise ConfigError(f"preset '{preset}' has per-task settings for {blocks}; one agent trained on several "
                          "tasks has one config, so its preset must not set any")
    tree = _merge(block, per_task.get(task, {}) or {})
    if isinstance(overrides, list):
        overrides = parse_overrides(overrides)
    tree = _merge(tree, overrides or {})
    for key in ("task", "seed", "preset"):
        if key in tree:
            raise ConfigError(f"'{key}' is set by the command line (--{key}), not by a preset or override")
    tree.update(task=task, seed=seed, preset=preset)
    config = _build(Config, tree)
    check(config)
    return config


def check(config: Config) -> None:
    """Cross-field checks that the types alone cannot express."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    # Several tasks (planet/multitask.py): each keeps its own action repeat, so every repeat must divide the episode
    # and chunks must fit the shortest episode (the largest repeat).
    repeats = [config.env.action_repeat or get_task(t).action_repeat for t in task_list(config.task)]
    for repeat in repeats:
        need(repeat >= 1, "env.action_repeat must be >= 1")
        need(
            config.env.episode_env_steps % repeat == 0,
            f"env.episode_env_steps={config.env.episode_env_steps} is not divisible by the action repeat {repeat}",
        )
    repeat = max(repeats)
    need(config.env.image_size == 64, "env.image_size: the conv encoder/decoder are built for 64 (got "
         f"{config.env.image_size})")
    need(1 <= config.env.bit_depth <= 8, "env.bit_depth must be in 1..8")
    need(config.env.shadow_map_size is None or config.env.shadow_map_size >= 1,
         "env.shadow_map_size must be >= 1, or null for the model's own")
    agent_steps = config.env.episode_env_steps // repeat
    need(
        config.train.chunk_length <= agent_steps + 1,
        f"train.chunk_length={config.train.chunk_length} exceeds the episode length ({agent_steps} agent steps + 1"
        " reset row); lower it or raise env.episode_env_steps",
    )
    for key in ("train.episodes", "train.batch_size", "train.chunk_length", "planner.horizon",
                "planner.iterations", "planner.candidates", "planner.top_k", "eval.episodes", "model.deter_size",
                "model.stoch_size", "model.hidden_size", "model.cnn_depth", "run.checkpoint_every"):
        need(config.flat()[key] >= 1, f"{key} must be >= 1")
    for key in ("train.seed_episodes", "train.updates_per_episode", "eval.every", "loss.overshooting_distance",
                "loss.free_nats", "collect.exploration_noise", "train.warmup_updates", "run.threads",
                "model.reward_layers", "model.hidden_layers"):
        need(config.flat()[key] >= 0, f"{key} must be >= 0")
    need(config.train.seed_episodes >= 1, "train.seed_episodes must be >= 1 (the model needs data to start)")
    need(config.train.seed_episodes <= config.train.episodes,
         "train.seed_episodes must not exceed train.episodes (the total, seed episodes included)")
    need(config.planner.top_k <= config.planner.candidates, "planner.top_k must be <= planner.candidates")
    need(config.loss.overshooting_distance < config.train.chunk_length,
         "loss.overshooting_distance must be < train.chunk_length")


def action_repeat(config: Config) -> int:
    return config.env.action_repeat or get_task(config.task).action_repeat


def save(config: Config, path: Path) -> None:
    """Write the resolved config as YAML, atomically."""
    from planet.utils import atomic_write_text

    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def load(path: Path) -> Config:
    """Read a resolved config written by `save` (validated again); a damaged file is a ConfigError naming it."""
    try:
        tree = yaml.safe_load(Path(path).read_text())
        if not isinstance(tree, dict):
            raise ConfigError(f"expected a mapping of config sections, got {type(tree).__name__}")
        config = _build(Config, tree)
        check(config)
    except (yaml.YAMLError, ConfigError, TypeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(f"{path} is not a valid run config ({first}) - restore it (the run's params.json holds "
                          "the same values) or start a new --out directory") from None
    return config


def identity(config: Config | Mapping[str, Any]) -> Mapping[str, Any]:
    """What makes a config a different run: :meth:`Config.identity` for the agent's config; all of a plain mapping
    (the baselines' run configs)."""
    return config.identity() if isinstance(config, Config) else config


def digest(config: Config | Mapping[str, Any]) -> str:
    """The short hash of a config's :func:`identity` that tags its runs (``params_hash``), names its run directories
    and says when a run directory holds another config; the one such hash."""
    payload = json.dumps(identity(config), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def diff(a: Config | Mapping[str, Any], b: Config | Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """Differences of :func:`identity` (what makes two configs different runs), by dotted key: {key: (a's, b's)},
    None for a key that one of them lacks."""
    fa, fb = flatten(dict(identity(a))), flatten(dict(identity(b)))
    return {k: (fa.get(k), fb.get(k)) for k in sorted(fa.keys() | fb.keys()) if fa.get(k) != fb.get(k)}
