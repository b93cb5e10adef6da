"""CEM with the true simulator: PlaNet's planner scoring candidates on copies of the real physics (P Table 1).

The paper's upper-bound row ("CEM + true simulator") plans exactly like PlaNet (`planet.planner.cem`, same
horizon, iterations, candidates and top-k), but a candidate action sequence is scored by its true return: the
simulator is set to the environment's current state and stepped through the sequence, with the action repeat, as
dm_control's ``control.Environment.step`` would step it. No rendering: only physics and rewards.

Exactness. A state is MuJoCo's ``mjSTATE_INTEGRATION`` (time, qpos, qvel, act, actuator history, constraint-solver
warm start, ctrl, applied forces, equality flags, mocap, userdata, plugin state), not dm_control's default
``get_state()`` (qpos, qvel, act only): the solver's warm start changes the next step's constraint forces at the
level of the solver tolerance, so without it rollouts of contact-rich tasks are not repeatable. After setting a
state, ``mj_forward`` recomputes the position/velocity-dependent quantities that dm_control's legacy step assumes
``mj_step1`` left in ``mjData``. A few tasks also change the *model* when an episode starts (finger: hinge damping;
reacher: target position and size), so the simulators copy the model fields that differ from a freshly loaded model
(`model_patch`); textures (``tex_*``, rendering only) are left out.

Parallelism. With ``workers > 1`` the J candidates of each CEM iteration are split into one chunk per process; each
process holds its own dm_control environment of the task, loaded once without a rendering backend. Every candidate
starts from the same saved state, so its return does not depend on which process scores it or on what it scored
before: the plan is the same for any number of workers.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any

import numpy as np

from planet.envs import PixelEnv, get_task

__all__ = [
    "Simulator",
    "SimulatorPlanner",
    "load_simulator",
    "model_patch",
    "model_snapshot",
    "restore_state",
    "rollout_returns",
    "run_episode",
    "save_state",
]

ModelFields = dict[str, Any]
"""Model fields by name: ``MjModel`` array attributes, and ``opt.NAME`` for the ``MjOption`` fields."""


# --------------------------------------------------------------------------- state and model


def _state_sig() -> int:
    import mujoco

    return int(mujoco.mjtState.mjSTATE_INTEGRATION)


def save_state(physics: Any) -> np.ndarray:
    """Everything in ``physics.data`` that the next steps depend on, as a float64 vector (``mjSTATE_INTEGRATION``)."""
    return physics.get_state(sig=_state_sig())


def restore_state(physics: Any, state: np.ndarray) -> None:
    """Set ``physics`` to a state from `save_state` and recompute the derived quantities (``mj_forward``)."""
    physics.set_state(state, sig=_state_sig())
    physics.forward()


def model_snapshot(model: Any) -> ModelFields:
    """Copies of the model's array fields (textures excluded) and of its ``opt`` fields."""
    fields: ModelFields = {}
    for name in dir(model):
        if name.startswith(("_", "tex_")):
            continue
        value = getattr(model, name)
        if isinstance(value, np.ndarray):
            fields[name] = value.copy()
    for name in dir(model.opt):
        value = getattr(model.opt, name)
        if not name.startswith("_") and isinstance(value, (int, float, np.ndarray)):
            fields["opt." + name] = np.copy(value) if isinstance(value, np.ndarray) else value
    return fields


def model_patch(model: Any, pristine: ModelFields) -> ModelFields:
    """The fields of `model` that differ from `pristine` (a `model_snapshot` of the freshly loaded model)."""
    current = model_snapshot(model)
    return {name: value for name, value in current.items() if not np.array_equal(value, pristine[name])}


def _set_model_field(model: Any, name: str, value: Any) -> None:
    if name.startswith("opt."):
        target, attr = model.opt, name[4:]
    else:
        target, attr = model, name
    if isinstance(value, np.ndarray):
        np.copyto(getattr(target, attr), value)
    else:
        setattr(target, attr, value)


# --------------------------------------------------------------------------- rollouts


def load_simulator(task: str) -> Any:
    """A dm_control ``control.Environment`` of `task` (a `planet.envs.TASKS` name) for rollouts; never rendered."""
    from dm_control import suite

    spec = get_task(task)
    return suite.load(spec.domain, spec.task, environment_kwargs={"flat_observation": False})


def _sequence_return(sim: Any, actions: np.ndarray, action_repeat: int, n_sub_steps: int, steps: int) -> float:
    """Step one sequence [H, A] from the current state for `steps` control steps; sum of rewards.

    Mirrors ``control.Environment.step`` (before_step, physics.step(n_sub_steps), after_step, get_reward) and
    `PixelEnv.step` (rewards summed per agent step, then over agent steps, in the same order). A task termination
    ends the sequence; a divergent simulation (``PhysicsError``) scores -inf, since the real environment would fail.
    """
    from dm_control.rl.control import PhysicsError

    physics, task = sim.physics, sim.task
    total = 0.0
    try:
        for start in range(0, steps, action_repeat):
            action = actions[start // action_repeat]
            agent_reward = 0.0
            for _ in range(min(action_repeat, steps - start)):
                task.before_step(action, physics)
                physics.step(n_sub_steps)
                task.after_step(physics)
                agent_reward += float(task.get_reward(physics))
                if task.get_termination(physics) is not None:
                    return total + agent_reward
            total += agent_reward
    except PhysicsError:
        return -np.inf
    return total


def rollout_returns(
    sim: Any, state: np.ndarray, actions: np.ndarray, action_repeat: int, steps_left: int | None = None
) -> np.ndarray:
    """Return of each candidate sequence (float64 [J]) from `state`, on the dm_control environment `sim`.

    `actions` [J, H, A] are clipped to [-1, 1] and each is applied for `action_repeat` control steps. At most
    `steps_left` control steps are taken (the steps left in the episode; None = no limit): rewards after the
    episode's end do not count. `sim` is left in `state` afterwards.
    """
    seqs = np.clip(np.asarray(actions, dtype=sim.action_spec().dtype), -1.0, 1.0)
    if seqs.ndim != 3:
        raise ValueError(f"actions must be [J, H, A], got shape {seqs.shape}")
    if action_repeat < 1:
        raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")
    steps = seqs.shape[1] * action_repeat
    if steps_left is not None:
        steps = max(0, min(steps, int(steps_left)))
    n_sub_steps = round(sim.control_timestep() / sim.physics.timestep())
    returns = np.empty(seqs.shape[0])
    for j, seq in enumerate(seqs):
        restore_state(sim.physics, state)
        returns[j] = _sequence_return(sim, seq, action_repeat, n_sub_steps, steps)
    restore_state(sim.physics, state)
    return returns


class Simulator:
    """A rollout environment of a task (loaded once) that takes the model patch of the environment it plans for."""

    def __init__(self, task: str) -> None:
        self.env = load_simulator(task)
        self.pristine = model_snapshot(self.env.physics.model)
        self._patched: set[str] = set()

    def returns(
        self, state: np.ndarray, patch: ModelFields, actions: np.ndarray, action_repeat: int, steps_left: int | None
    ) -> np.ndarray:
        """Apply `patch` to the model (undoing the previous one), then `rollout_returns`."""
        model = self.env.physics.model
        for name in self._patched - patch.keys():
            _set_model_field(model, name, self.pristine[name])
        for name, value in patch.items():
            _set_model_field(model, name, value)
        self._patched = set(patch)
        return rollout_returns(self.env, state, actions, action_repeat, steps_left)


# Per-process simulator of a pool worker (set by _init_worker).
_WORKER_SIM: Simulator | None = None


def _init_worker(task: str) -> None:
    """Pool initializer: load this process's simulator once; no rendering backend is needed."""
    global _WORKER_SIM
    os.environ["MUJOCO_GL"] = "disable"  # no OpenGL, unless the parent's main module already imported dm_control
    _WORKER_SIM = Simulator(task)


def _worker_returns(job: tuple[np.ndarray, ModelFields, np.ndarray, int, int]) -> np.ndarray:
    assert _WORKER_SIM is not None, "worker not initialised"
    return _WORKER_SIM.returns(*job)


def _worker_pid(_: int) -> int:
    """A no-op job (its process id); submitting one per worker makes the pool start them all."""
    return os.getpid()


# --------------------------------------------------------------------------- planner


class SimulatorPlanner:
    """PlaNet's CEM (`planet.planner.cem`) scoring candidates by their true return, over `workers` processes.

    ``workers=1`` simulates in this process; more start a pool of "spawn" processes (never forked, so torch and
    EGL state of this process are not inherited; as with any "spawn" pool, a script must create the planner under
    ``if __name__ == "__main__":``). The CEM noise comes from ``torch_generator(seed, "simplan")``, one stream for
    the planner's lifetime. Use as a context manager or call `close`.
    """

    def __init__(
        self,
        task: str,
        seed: int,
        horizon: int,
        iterations: int,
        candidates: int,
        top_k: int,
        workers: int = 1,
        action_repeat: int | None = None,
        episode_env_steps: int = 1000,
    ) -> None:
        from planet.utils import torch_generator

        spec = get_task(task)
        for name, value in (("horizon", horizon), ("iterations", iterations), ("candidates", candidates),
                            ("top_k", top_k), ("workers", workers), ("episode_env_steps", episode_env_steps)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if top_k > candidates:
            raise ValueError(f"top_k={top_k} must be <= candidates={candidates}")
        self.task = task
        self.horizon, self.iterations, self.candidates, self.top_k = horizon, iterations, candidates, top_k
        self.workers = int(workers)
        self.action_repeat = spec.action_repeat if action_repeat is None else int(action_repeat)
        self.episode_env_steps = int(episode_env_steps)
        self._generator = torch_generator(seed, "simplan")
        # The local simulator runs the rollouts when workers == 1; its pristine model is the reference for patches.
        self._local = Simulator(task)
        self._action_dim = int(self._local.env.action_spec().shape[0])
        self._pool: ProcessPoolExecutor | None = None
        if self.workers > 1:
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=get_context("spawn"), initializer=_init_worker, initargs=(task,)
            )
            # Start every process now (the pool spawns them on demand), so that the first plan is not slower.
            list(self._pool.map(_worker_pid, range(self.workers)))

    def _returns(self, state: np.ndarray, patch: ModelFields, actions: np.ndarray, steps_left: int) -> np.ndarray:
        """True returns of the candidates [J, H, A], on the local simulator or split over the pool."""
        if self._pool is None:
            return self._local.returns(state, patch, actions, self.action_repeat, steps_left)
        chunks = np.array_split(actions, self.workers)
        jobs = [(state, patch, chunk, self.action_repeat, steps_left) for chunk in chunks]
        return np.concatenate(list(self._pool.map(_worker_returns, jobs)))

    def plan(self, env: PixelEnv) -> np.ndarray:
        """CEM from the environment's current state; returns the first action of the final mean (float64 [A])."""
        import torch

        from planet.planner import cem

        if env.task != self.task or env.action_repeat != self.action_repeat:
            raise ValueError(f"planner is for {self.task} with action repeat {self.action_repeat}, got {env!r}")
        if env.episode_env_steps != self.episode_env_steps:
            raise ValueError(f"planner episodes have {self.episode_env_steps} env steps, the environment's "
                             f"{env.episode_env_steps}")
        steps_left = self.episode_env_steps - env.agent_steps * self.action_repeat
        if steps_left <= 0:
            raise RuntimeError("the episode is over: reset the environment first")
        state = save_state(env.physics)
        patch = model_patch(env.physics.model, self._local.pristine)

        def objective(actions: torch.Tensor) -> torch.Tensor:
            returns = self._returns(state, patch, actions[0].double().numpy(), steps_left)
            return torch.from_numpy(returns)[None]

        mean = cem(objective, 1, self.horizon, self._action_dim, self.iterations, self.candidates, self.top_k,
                   self._generator)
        return mean[0, 0].double().numpy()

    def close(self) -> None:
        """Stop the worker processes. Idempotent."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> SimulatorPlanner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --------------------------------------------------------------------------- episodes


def run_episode(env: PixelEnv, planner: SimulatorPlanner, seed: int) -> dict[str, float | int]:
    """Reset `env` with `seed` and play one episode with ``planner.plan``; return, steps and wall-clock seconds."""
    start = time.perf_counter()
    env.reset(seed=seed)
    total, done = 0.0, False
    while not done:
        _, reward, done = env.step(planner.plan(env))
        total += reward
    return {
        "return": total,
        "agent_steps": env.agent_steps,
        "env_steps": env.agent_steps * env.action_repeat,
        "seconds": time.perf_counter() - start,
    }
