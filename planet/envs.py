"""DeepMind Control Suite tasks seen from 64x64 RGB pixels, with action repeat.

This module is the single place that knows about dm_control. It imports dm_control (and
mujoco) lazily, inside functions, because the OpenGL backend is chosen from ``MUJOCO_GL``
at dm_control's import time: ``setup_rendering()`` has to run first.

Episode accounting (PlaNet, Hafner et al. 2019): one episode is ``episode_env_steps``
control steps of the simulator (1000 for all six tasks, dm_control's own time limit);
the agent acts every ``action_repeat`` control steps, so an episode has
``episode_env_steps // action_repeat`` agent steps, and the reward of an agent step is the
sum of the rewards of its repeated control steps. Only one frame is rendered per agent
step, at the end, because rendering (~15-20 ms on the CPU) costs ~100x a physics step.

True state (for the state diagnostics of P Fig. 11, planet/diagnostics.py; never seen by the agent): dm_control's
observation dict of the task (e.g. cartpole: ``position`` [3], ``velocity`` [2]; the groups G's `scripts/tasks.py`
lists as ``state_components``, reward aside) at the rendered frame, flattened in the dict's order into one float32
vector by :meth:`PixelEnv.state`; :attr:`PixelEnv.state_groups` names the groups and their sizes. dm_control
computes the dict at every control step anyway, so keeping the last one costs nothing.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from planet.tasks import TASKS, TaskSpec, get_task

__all__ = [
    "SPLITS",
    "TASKS",
    "PixelEnv",
    "RenderingError",
    "TaskSpec",
    "check_rendering",
    "episode_seed",
    "get_task",
    "setup_rendering",
]


# --------------------------------------------------------------------------- rendering


class RenderingError(RuntimeError):
    """MuJoCo cannot render offscreen with the selected OpenGL backend."""


# Cached outcome of check_rendering(): None = not checked yet, "" = works, else the error message.
_RENDER_STATUS: str | None = None

_INSTALL_HINTS = {
    "egl": (
        "install Mesa's EGL (Debian/Ubuntu: apt-get install libegl1 libgl1 libegl-mesa0), "
        "or on an NVIDIA GPU the driver's EGL (libnvidia-gl)"
    ),
    "osmesa": "install OSMesa (Debian/Ubuntu: apt-get install libosmesa6)",
    "glfw": "GLFW needs a display: run under X (or xvfb-run), or use MUJOCO_GL=egl headless",
}


def setup_rendering() -> str:
    """Choose the headless OpenGL backend before dm_control/mujoco is imported.

    If ``MUJOCO_GL`` is unset, set it to ``"egl"`` (``"glfw"`` on macOS, which has no EGL)
    and ``PYOPENGL_PLATFORM`` to match when that is unset too. A user's choice is kept.
    Returns the backend in effect. Idempotent.
    """
    render_mod = sys.modules.get("dm_control._render")
    if render_mod is not None:
        # dm_control has already fixed its backend at import; changing the variable now
        # would only make the environment lie about what is used.
        return str(getattr(render_mod, "BACKEND", None) or os.environ.get("MUJOCO_GL", ""))
    if not os.environ.get("MUJOCO_GL"):
        os.environ["MUJOCO_GL"] = "glfw" if sys.platform == "darwin" else "egl"
    backend = os.environ["MUJOCO_GL"].lower()
    if backend in ("egl", "osmesa") and not os.environ.get("PYOPENGL_PLATFORM"):
        # PyOpenGL must load the same platform library that the MuJoCo context uses.
        os.environ["PYOPENGL_PLATFORM"] = backend
    return backend


_TINY_XML = """
<mujoco>
  <worldbody>
    <light pos="0 0 1"/>
    <camera name="c" pos="0 0 1"/>
    <geom type="sphere" size="0.1" rgba="1 0 0 1"/>
  </worldbody>
</mujoco>
"""


def check_rendering() -> None:
    """Render one 8x8 frame of a tiny model; raise ``RenderingError`` if that fails.

    The result is cached for the process, so calling it before every environment is free.
    """
    global _RENDER_STATUS
    if _RENDER_STATUS is None:
        backend = setup_rendering()
        try:
            # Imported here: importing dm_control itself fails for some bad backends.
            from dm_control import mujoco as dm_mujoco

            physics = dm_mujoco.Physics.from_xml_string(_TINY_XML)
            try:
                frame = physics.render(8, 8, camera_id=0)
            finally:
                physics.free()
            if frame.shape != (8, 8, 3):
                raise RuntimeError(f"unexpected frame shape {frame.shape}")
            _RENDER_STATUS = ""
        except Exception as exc:
            if backend in _INSTALL_HINTS:
                hint = (
                    f"{_INSTALL_HINTS[backend]}; or pick another backend with "
                    "MUJOCO_GL=egl|osmesa|glfw before starting Python"
                )
            else:
                hint = "set MUJOCO_GL to egl (headless), osmesa (headless) or glfw (display)"
            lines = str(exc).strip().splitlines()
            cause = f"{type(exc).__name__}: {lines[-1] if lines else ''}"
            _RENDER_STATUS = (
                f"MuJoCo offscreen rendering failed with MUJOCO_GL={backend!r} ({cause}). To fix: {hint}."
            )
    if _RENDER_STATUS:
        raise RenderingError(_RENDER_STATUS)


# --------------------------------------------------------------------------- seeding

SPLITS: dict[str, int] = {"train": 0, "eval": 1, "test": 2}


def episode_seed(run_seed: int, split: str, index: int) -> int:
    """Deterministic 32-bit seed for episode ``index`` of ``split`` in run ``run_seed``.

    Derived with ``numpy.random.SeedSequence`` so that seeds of different splits and
    indices are decorrelated (not just ``run_seed + index``, which overlaps across runs).
    The generators of a run's components are seeded by name with :func:`planet.utils.derive_seed` instead (63-bit;
    why the two stay separate is said there).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}; valid splits are: {', '.join(SPLITS)}")
    if int(run_seed) < 0 or int(index) < 0:
        raise ValueError(f"run_seed and index must be >= 0, got {run_seed} and {index}")
    seq = np.random.SeedSequence([int(run_seed), SPLITS[split], int(index)])
    return int(seq.generate_state(1)[0])


# --------------------------------------------------------------------------- environment


class PixelEnv:
    """One dm_control task from 64x64 RGB pixels (camera 0), with action repeat."""

    def __init__(
        self,
        task: str,
        seed: int,
        *,
        action_repeat: int | None = None,
        image_size: int = 64,
        episode_env_steps: int = 1000,
        camera_id: int = 0,
        offscreen_size: int | None = None,
        shadow_map_size: int | None = None,
    ) -> None:
        """``offscreen_size``: width and height of MuJoCo's offscreen framebuffer (None: ``image_size``). Frames of
        ``image_size`` are the same pixels in any buffer that holds them (the suite's models ask for 640x480), and a
        buffer of the frame's size renders 1.1-1.5x faster with Mesa's software renderer (reports/speed/
        2026-12-07-render/); ``render(size)`` needs ``offscreen_size >= size``.
        ``shadow_map_size``: side of MuJoCo's shadow map (None: the model's own, 2048 in the suite): the largest cost
        of a 64 px frame on a CPU; 512 renders ~2x faster and changes 0.01-0.3% of the pixels (config key
        ``env.shadow_map_size``, tests/test_envs.py bounds the change)."""
        spec = get_task(task)
        repeat = spec.action_repeat if action_repeat is None else int(action_repeat)
        if repeat < 1:
            raise ValueError(f"action_repeat must be >= 1, got {repeat}")
        if episode_env_steps < 1 or episode_env_steps % repeat != 0:
            raise ValueError(
                f"episode_env_steps={episode_env_steps} must be a positive multiple of "
                f"action_repeat={repeat} (so that every agent step repeats its action fully)"
            )
        if image_size < 1:
            raise ValueError(f"image_size must be >= 1, got {image_size}")
        if offscreen_size is not None and offscreen_size < image_size:
            raise ValueError(f"offscreen_size={offscreen_size} must hold a frame of image_size={image_size}")
        if shadow_map_size is not None and shadow_map_size < 1:
            raise ValueError(f"shadow_map_size must be >= 1, got {shadow_map_size}")

        check_rendering()  # one clear error instead of a deep OpenGL traceback later
        from dm_control import suite

        self.task = task
        self.spec = spec
        self.seed = int(seed)
        self.action_repeat = repeat
        self.image_size = int(image_size)
        self.camera_id = int(camera_id)
        self.episode_env_steps = int(episode_env_steps)
        self.max_agent_steps = self.episode_env_steps // repeat

        # flat_observation=False is dm_control's default; observations are ignored anyway
        # because the agent sees only pixels.
        self._env = suite.load(
            spec.domain,
            spec.task,
            task_kwargs={"random": self.seed},
            environment_kwargs={"flat_observation": False},
        )
        # Before the first render, which creates the GL context and its buffers from these values.
        vis = self._env.physics.model.vis
        self.offscreen_size = int(offscreen_size or image_size)
        vis.global_.offwidth = vis.global_.offheight = self.offscreen_size
        if shadow_map_size is not None:
            vis.quality.shadowsize = int(shadow_map_size)
        aspec = self._env.action_spec()
        if len(aspec.shape) != 1 or not (np.all(aspec.minimum == -1.0) and np.all(aspec.maximum == 1.0)):
            # The agent's actions live in [-1, 1]; a different range would need rescaling.
            raise RuntimeError(
                f"{task}: expected a 1-D action spec in [-1, 1], got shape {aspec.shape}, "
                f"[{aspec.minimum}, {aspec.maximum}]"
            )
        self.action_dim = int(aspec.shape[0])
        self._action_dtype = aspec.dtype
        # Names and sizes of the observation dict's groups, in its order (a scalar such as walker's height is 1).
        self.state_groups: list[tuple[str, int]] = [
            (str(name), int(np.prod(spec.shape))) for name, spec in self._env.observation_spec().items()
        ]
        self._observation: Any = None  # dm_control's observation dict of the current frame

        # dm_control's own time limit in control steps (1000 for all six tasks).
        step_limit = float(self._env._step_limit)
        if self.episode_env_steps > step_limit:
            raise ValueError(
                f"episode_env_steps={episode_env_steps} exceeds dm_control's time limit of "
                f"{step_limit:g} control steps for {task}"
            )
        # When the two limits coincide, dm_control must also end the episode at our last step.
        self._limit_coincides = self.episode_env_steps == round(step_limit)

        self._agent_steps = 0
        self._done = True  # step() before reset() is an error
        self._closed = False

    # ----------------------------------------------------------------- properties

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        """Shape of one observation: (image_size, image_size, 3), uint8."""
        return (self.image_size, self.image_size, 3)

    @property
    def physics(self) -> Any:
        """The underlying dm_control ``Physics`` (for tests and diagnostics)."""
        return self._env.physics

    @property
    def agent_steps(self) -> int:
        """Agent steps taken in the current episode."""
        return self._agent_steps

    # ----------------------------------------------------------------- API

    def _frame(self, size: int) -> np.ndarray:
        frame = self._env.physics.render(size, size, camera_id=self.camera_id)
        # dm_control returns a vertically flipped view (negative stride), which torch.from_numpy
        # rejects; a contiguous copy of a 12 KB frame costs microseconds.
        return np.ascontiguousarray(frame)

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start a new episode and return its first frame, uint8 [H, W, 3].

        With ``seed``, the task's random state is reseeded first, so the initial state
        depends only on ``seed`` (for evaluation episodes); otherwise episodes continue the
        environment's own random stream started from the constructor's seed.
        """
        if self._closed:
            raise RuntimeError("environment is closed")
        if seed is not None:
            self._env.task.random.seed(int(seed))
        self._observation = self._env.reset().observation
        self._agent_steps = 0
        self._done = False
        return self._frame(self.image_size)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """Apply ``action`` for ``action_repeat`` control steps.

        Returns (frame after the last repeat, sum of the repeats' rewards, done).
        """
        if self._done:
            raise RuntimeError("Episode is over (or not started): call reset()")
        act = np.asarray(action, dtype=self._action_dtype)
        if act.shape != (self.action_dim,):
            raise ValueError(f"{self.task}: action must have shape ({self.action_dim},), got {act.shape}")
        if not np.all(np.isfinite(act)):
            raise ValueError(f"{self.task}: action contains non-finite values: {act}")
        act = np.clip(act, -1.0, 1.0)

        env = self._env
        reward = 0.0
        last = False
        for _ in range(self.action_repeat):
            ts = env.step(act)
            if ts.reward is not None:
                reward += float(ts.reward)
            if ts.last():
                last = True
                break
        self._observation = ts.observation
        self._agent_steps += 1
        at_limit = self._agent_steps >= self.max_agent_steps
        if at_limit and self._limit_coincides and not last:
            raise RuntimeError(
                f"{self.task}: episode reached {self.episode_env_steps} control steps but "
                "dm_control did not end it; its time limit changed?"
            )
        # dm_control may end an episode earlier than our count (task termination).
        self._done = at_limit or last
        return self._frame(self.image_size), reward, self._done

    @property
    def state_size(self) -> int:
        """Length of :meth:`state`: the sum of the sizes in :attr:`state_groups`."""
        return sum(size for _, size in self.state_groups)

    def state(self) -> np.ndarray:
        """The true simulator state of the current frame: the task's observation dict flattened in the order of
        :attr:`state_groups`, float32 [state_size] (for diagnostics only; the agent sees pixels)."""
        if self._observation is None:
            raise RuntimeError("no state before reset()")
        return np.concatenate([np.ravel(self._observation[name]) for name, _ in self.state_groups]).astype(
            np.float32, copy=False)

    def render(self, size: int) -> np.ndarray:
        """An RGB frame of the current state at ``size`` x ``size`` (e.g. for videos).

        Sizes above the offscreen buffer (``offscreen_size``, by default ``image_size``) raise ValueError.
        """
        return self._frame(int(size))

    def close(self) -> None:
        """Release the rendering context and MuJoCo data. Idempotent."""
        if not self._closed:
            self._closed = True
            self._done = True
            self._env.physics.free()

    def __enter__(self) -> PixelEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"PixelEnv({self.task!r}, seed={self.seed}, action_repeat={self.action_repeat}, "
            f"image_size={self.image_size}, episode_env_steps={self.episode_env_steps})"
        )
