"""Episode storage on disk and chunk sampling from one contiguous in-RAM buffer.

Time alignment (fixed project-wide; the same as the official PlaNet code). An episode of T agent steps is
stored as T+1 rows; row t holds the observation after t agent steps, the action that led to it and the
reward received for that transition:

    row t    | 0            | 1    | 2    | ... | T
    ---------+--------------+------+------+-----+--------
    obs      | o_0 (reset)  | o_1  | o_2  | ... | o_T
    action   | 0 (no a_-1)  | a_0  | a_1  | ... | a_{T-1}
    reward   | 0            | r_1  | r_2  | ... | r_T       (r_t is earned by a_{t-1}, arriving with o_t)

Arrays per episode: ``obs`` uint8 [T+1, H, W, C], ``action`` float32 [T+1, A], ``reward`` float32 [T+1], and
optionally ``state`` float32 [T+1, S]: the true simulator state at o_t (dm_control's observation dict flattened, see
planet/envs.py), whose groups' names and sizes the metadata lists under ``state_groups`` ([[name, size], ...], in
order). Only the state diagnostics (P Fig. 11, planet/diagnostics.py) read it: it is written to disk but not kept in
the in-RAM buffer, so training neither samples nor pays for it. Episode files written before it existed have no
``state`` and load as before.
A training chunk is L consecutive rows of ONE episode (chunks never cross an episode boundary), so a
chunk starting at row k gives the model (o_k..o_{k+L-1}, a_{k-1}..a_{k+L-2}, r_k..r_{k+L-1}).

On disk: one uncompressed ``episode_{index:06d}.npz`` per episode (keys obs, action, reward, [state,] metadata),
written atomically (temp file ``.tmp-episode_...`` in the same directory, fsync, ``os.replace``). In RAM: one
preallocated uint8 frame buffer; frames are never converted to float here (5-bit quantisation and
dequantisation noise belong to the consumer).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import numpy as np

from planet.utils import json_default

__all__ = [
    "STATE_GROUPS_KEY",
    "STATE_KEY",
    "CorruptEpisodeError",
    "ReplayCapacityError",
    "Replay",
    "episode_path",
    "load_episode",
    "save_episode",
]

EPISODE_KEYS = ("obs", "action", "reward")
STATE_KEY = "state"  # optional: the true simulator state per row (module docstring)
STATE_GROUPS_KEY = "state_groups"  # metadata: [[name, size], ...] of the state's groups
_METADATA_KEY = "metadata"
_TMP_PREFIX = ".tmp-"
_EPISODE_RE = re.compile(r"^episode_(\d{6,})\.npz$")
_EXPECTED = {"obs": (np.uint8, 4), "action": (np.float32, 2), "reward": (np.float32, 1), STATE_KEY: (np.float32, 2)}


class CorruptEpisodeError(RuntimeError):
    """An episode file on disk cannot be read or fails validation."""


class SeedEpisodesError(ValueError):
    """Episodes given to start a run from (`planet train --init-episodes`) are missing or belong to another run."""


class ReplayCapacityError(RuntimeError):
    """The in-RAM buffer has no room for more rows."""


def episode_path(directory: Path, index: int) -> Path:
    """File name of episode ``index`` inside ``directory``."""
    return Path(directory) / f"episode_{index:06d}.npz"


def _episode_problem(episode: dict[str, np.ndarray]) -> str | None:
    """Describe what is wrong with an episode dict, or None if it is valid."""
    missing = [k for k in EPISODE_KEYS if k not in episode]
    if missing:
        return f"missing key(s) {missing}; expected {list(EPISODE_KEYS)} (and optionally '{STATE_KEY}')"
    extra = sorted(set(episode) - {*EPISODE_KEYS, STATE_KEY})
    if extra:
        # Refuse rather than silently drop data the caller thinks is stored.
        return f"unexpected key(s) {extra}; expected {list(EPISODE_KEYS)} (and optionally '{STATE_KEY}')"
    for key, (dtype, ndim) in _EXPECTED.items():
        if key not in episode:
            continue
        value = episode[key]
        if not isinstance(value, np.ndarray):
            return f"key '{key}' is {type(value).__name__}, expected np.ndarray"
        if value.dtype != dtype:
            return f"key '{key}' has dtype {value.dtype}, expected {np.dtype(dtype)}"
        if value.ndim != ndim:
            return f"key '{key}' has shape {value.shape} ({value.ndim}-d), expected {ndim}-d"
    lengths = {k: v.shape[0] for k, v in episode.items()}
    if len(set(lengths.values())) != 1:
        return f"inconsistent number of rows per key {lengths} (all must be T+1)"
    if lengths["obs"] < 1:
        return "episode has 0 rows (at least the reset row is required)"
    for key in ("action", "reward", STATE_KEY):
        # A NaN stored once poisons every batch that samples it; catch it at the boundary.
        if key in episode and not np.isfinite(episode[key]).all():
            return f"key '{key}' contains non-finite values"
    return None


def _fsync_directory(directory: Path) -> None:
    """Make a rename/unlink in ``directory`` durable (best effort on filesystems that refuse it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_episode(path: Path, episode: dict[str, np.ndarray], metadata: dict) -> None:
    """Validate, then write one episode atomically as uncompressed .npz (never half-written at ``path``)."""
    path = Path(path)
    problem = _episode_problem(episode)
    if problem is not None:
        raise ValueError(f"cannot save episode to {path}: {problem}")
    if not isinstance(metadata, dict):
        raise ValueError(
            f"cannot save episode to {path}: metadata must be a dict, got {type(metadata).__name__}"
        )
    try:
        metadata_json = json.dumps(metadata, default=json_default, sort_keys=True, allow_nan=True)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot save episode to {path}: metadata: {error}") from error

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_TMP_PREFIX + path.name + "-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **{k: episode[k] for k in _stored_keys(episode)}, **{_METADATA_KEY: np.array(metadata_json)})
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        # Includes KeyboardInterrupt: the final name was never touched, so only the temp file needs removing.
        from planet.utils import disk_full, file_size, free_bytes

        written, free = file_size(tmp_name), free_bytes(path.parent)
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        size = sum(int(episode[k].nbytes) for k in _stored_keys(episode))
        if (full := disk_full(exc, path, written, free, size)) is not None:  # one line: path, space needed, free
            raise full from exc
        raise
    _fsync_directory(path.parent)


def _stored_keys(episode: dict[str, np.ndarray]) -> tuple[str, ...]:
    """The array keys an episode file holds: obs, action, reward, and state where the episode has one."""
    return (*EPISODE_KEYS, STATE_KEY) if STATE_KEY in episode else EPISODE_KEYS


def load_episode(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read and validate one episode file; any failure raises CorruptEpisodeError naming the file. The episode has
    a ``state`` array only if the file holds one (files written before states were stored have none)."""
    path = Path(path)

    def corrupt(what: str) -> CorruptEpisodeError:
        return CorruptEpisodeError(
            f"corrupt episode file {path}: {what}. Delete the file to drop that episode, or restore it "
            f"from a copy (a crash can only leave '{_TMP_PREFIX}*' temp files, so this usually means the "
            f"file was truncated or modified outside the program)."
        )

    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [k for k in (*EPISODE_KEYS, _METADATA_KEY) if k not in archive.files]
            if missing:
                raise corrupt(f"missing key(s) {missing} (has {sorted(archive.files)})")
            # Indexing reads each member fully, so zip CRC checks run here, inside the try.
            episode = {k: archive[k] for k in (*EPISODE_KEYS, STATE_KEY) if k in archive.files}
            metadata_raw = archive[_METADATA_KEY]
    except (CorruptEpisodeError, FileNotFoundError):
        raise
    except Exception as error:  # zipfile, numpy header and reshape errors all mean the same: unreadable bytes
        raise corrupt(f"unreadable ({type(error).__name__}: {error})") from error

    problem = _episode_problem(episode)
    if problem is not None:
        raise corrupt(problem)
    if metadata_raw.ndim != 0 or metadata_raw.dtype.kind != "U":
        raise corrupt(f"'{_METADATA_KEY}' must be a JSON string, got dtype {metadata_raw.dtype}")
    try:
        metadata = json.loads(str(metadata_raw))
    except json.JSONDecodeError as error:
        raise corrupt(f"'{_METADATA_KEY}' is not valid JSON ({error})") from error
    if not isinstance(metadata, dict):
        raise corrupt(f"'{_METADATA_KEY}' must decode to a JSON object, got {type(metadata).__name__}")
    return episode, metadata


class Replay:
    """Episodes on disk (one .npz per episode) + one contiguous uint8 frame buffer in RAM, sampled as chunks.

    Episodes occupy consecutive row ranges of the buffer in index order. Indices normally run 0..N-1; if an
    episode file was deleted by hand (e.g. after a CorruptEpisodeError) the remaining ones keep their indices,
    so ``next_index`` can exceed ``num_episodes``.
    """

    def __init__(
        self,
        directory: Path | None,
        obs_shape: tuple[int, int, int],
        action_dim: int,
        capacity_steps: int,
        seed: int,
    ) -> None:
        obs_shape = tuple(int(d) for d in obs_shape)
        if len(obs_shape) != 3 or min(obs_shape) < 1:
            raise ValueError(f"obs_shape must be (H, W, C) with positive sizes, got {obs_shape}")
        if int(action_dim) < 1:
            raise ValueError(f"action_dim must be >= 1, got {action_dim}")
        if int(capacity_steps) < 1:
            raise ValueError(f"capacity_steps must be >= 1, got {capacity_steps}")
        self.directory = None if directory is None else Path(directory)
        self.obs_shape: tuple[int, int, int] = obs_shape  # type: ignore[assignment]
        self.action_dim = int(action_dim)
        self.capacity_steps = int(capacity_steps)
        # Own generator: sampling must not depend on (or disturb) anyone else's random draws.
        self._rng = np.random.Generator(np.random.PCG64(seed))
        # np.empty only reserves virtual memory; pages become resident as rows are written.
        self._obs = np.empty((self.capacity_steps, *self.obs_shape), dtype=np.uint8)
        self._action = np.empty((self.capacity_steps, self.action_dim), dtype=np.float32)
        self._reward = np.empty((self.capacity_steps,), dtype=np.float32)
        self._indices: list[int] = []  # episode index per stored episode, increasing
        self._starts = np.zeros(0, dtype=np.int64)  # first buffer row per stored episode
        self._lengths = np.zeros(0, dtype=np.int64)  # rows per stored episode
        self._num_steps = 0
        if self.directory is not None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._load_directory()

    # ------------------------------------------------------------------ properties

    @property
    def num_episodes(self) -> int:
        """Number of stored episodes."""
        return len(self._indices)

    @property
    def num_steps(self) -> int:
        """Number of stored rows (T+1 per episode)."""
        return self._num_steps

    @property
    def obs_bytes(self) -> int:
        """Bytes of the stored uint8 observations (the replay's resident memory, all but the small action and reward
        rows)."""
        return self._num_steps * int(np.prod(self.obs_shape))

    @property
    def episode_lengths(self) -> np.ndarray:
        """Rows per stored episode, in index order (a copy)."""
        return self._lengths.copy()

    @property
    def episode_indices(self) -> list[int]:
        """Indices of the stored episodes, increasing."""
        return list(self._indices)

    @property
    def next_index(self) -> int:
        """Index that the next ``add`` will use."""
        return self._indices[-1] + 1 if self._indices else 0

    # ------------------------------------------------------------------ loading / adding

    def _load_directory(self) -> None:
        """Load every episode file in index order; remove temp files left by an interrupted write."""
        assert self.directory is not None
        found: dict[int, Path] = {}
        for entry in self.directory.iterdir():
            if entry.name.startswith(_TMP_PREFIX + "episode_"):
                entry.unlink(missing_ok=True)
                continue
            match = _EPISODE_RE.match(entry.name)
            if match is None:
                continue
            index = int(match.group(1))
            if index in found:
                raise ValueError(
                    f"two files for episode {index} in {self.directory}: {found[index].name} and "
                    f"{entry.name}; delete one of them"
                )
            found[index] = entry
        for index in sorted(found):
            episode, metadata = load_episode(found[index])
            if "index" in metadata and metadata["index"] != index:
                raise CorruptEpisodeError(
                    f"corrupt episode file {found[index]}: metadata index {metadata['index']} does not "
                    "match the file name. Delete the file to drop that episode, or rename it to match its "
                    "metadata."
                )
            self._check_compatible(episode, where=str(found[index]))
            self._check_capacity(episode["obs"].shape[0], index)
            self._append(index, episode)

    def _check_compatible(self, episode: dict[str, np.ndarray], where: str) -> None:
        """Frame shape and action size must match this replay's configuration."""
        if episode["obs"].shape[1:] != self.obs_shape:
            raise ValueError(
                f"{where}: obs frames have shape {episode['obs'].shape[1:]}, this replay stores "
                f"{self.obs_shape} (episodes from a different task or image size?)"
            )
        if episode["action"].shape[1] != self.action_dim:
            raise ValueError(
                f"{where}: action size {episode['action'].shape[1]}, this replay stores {self.action_dim} "
                "(episodes from a different task?)"
            )

    def _check_capacity(self, rows: int, index: int) -> None:
        """Refuse an episode that does not fit, before anything is written."""
        if self._num_steps + rows > self.capacity_steps:
            raise ReplayCapacityError(
                f"replay is full: episode {index} has {rows} rows, {self._num_steps} of "
                f"capacity_steps={self.capacity_steps} rows are used, so it needs "
                f"capacity_steps >= {self._num_steps + rows}. "
                "Raise the replay capacity (train.episodes ...)."
            )

    def _append(self, index: int, episode: dict[str, np.ndarray]) -> None:
        """Copy a validated episode into the buffer after the last stored row."""
        rows = episode["obs"].shape[0]
        start = self._num_steps
        self._obs[start : start + rows] = episode["obs"]
        self._action[start : start + rows] = episode["action"]
        self._reward[start : start + rows] = episode["reward"]
        self._indices.append(index)
        self._starts = np.append(self._starts, start)
        self._lengths = np.append(self._lengths, rows)
        self._num_steps = start + rows

    def add(self, episode: dict[str, np.ndarray], metadata: dict | None = None) -> int:
        """Store one episode (file first, then memory) and return its index; a ``state`` array goes to the file
        only (see the module docstring)."""
        index = self.next_index
        problem = _episode_problem(episode)
        if problem is not None:
            raise ValueError(f"cannot add episode {index}: {problem}")
        self._check_compatible(episode, where=f"episode {index}")
        self._check_capacity(episode["obs"].shape[0], index)
        metadata = dict(metadata or {})
        if metadata.setdefault("index", index) != index:
            raise ValueError(f"metadata index {metadata['index']} != the index this episode gets ({index})")
        metadata.setdefault("length", int(episode["obs"].shape[0]))
        if self.directory is not None:
            # Disk before memory: a crash can leave disk ahead of memory (reloaded on restart), never behind.
            save_episode(episode_path(self.directory, index), episode, metadata)
        self._append(index, episode)
        return index

    def episode(self, index: int) -> dict[str, np.ndarray]:
        """Read-only views of the rows of stored episode ``index``."""
        try:
            position = self._indices.index(index)
        except ValueError:
            raise KeyError(f"episode {index} is not stored (stored: {self.num_episodes} episodes)") from None
        start, stop = int(self._starts[position]), int(self._starts[position] + self._lengths[position])
        views = {
            "obs": self._obs[start:stop],
            "action": self._action[start:stop],
            "reward": self._reward[start:stop],
        }
        for view in views.values():
            view.flags.writeable = False  # the buffer is the replay's; callers must copy to modify
        return views

    # ------------------------------------------------------------------ sampling

    def sample(self, batch_size: int, chunk_length: int) -> dict[str, np.ndarray]:
        """Draw ``batch_size`` chunks of ``chunk_length`` consecutive rows, each within one episode.

        The episode is uniform over episodes with at least ``chunk_length`` rows, the start offset uniform
        within it. Returns obs uint8 [B, L, H, W, C], action float32 [B, L, A], reward float32 [B, L].
        """
        if batch_size < 1 or chunk_length < 1:
            raise ValueError(f"batch_size and chunk_length must be >= 1, got {batch_size}, {chunk_length}")
        valid = np.flatnonzero(self._lengths >= chunk_length)
        if valid.size == 0:
            longest = int(self._lengths.max()) if self._lengths.size else 0
            raise ValueError(
                f"no stored episode has >= {chunk_length} rows (chunk_length); {self.num_episodes} episodes, "
                f"longest has {longest} rows"
            )
        chosen = valid[self._rng.integers(0, valid.size, size=batch_size)]
        # Array-valued `high`: one draw per chunk, each uniform over that episode's valid starts.
        offsets = self._rng.integers(0, self._lengths[chosen] - chunk_length + 1)
        rows = (self._starts[chosen] + offsets)[:, None] + np.arange(chunk_length)
        return {
            "obs": np.take(self._obs, rows, axis=0),
            "action": np.take(self._action, rows, axis=0),
            "reward": np.take(self._reward, rows, axis=0),
        }

    # ------------------------------------------------------------------ resume support

    def truncate(self, num_episodes: int) -> None:
        """Drop episodes with index >= ``num_episodes`` from memory and delete their files."""
        if num_episodes < 0:
            raise ValueError(f"num_episodes must be >= 0, got {num_episodes}")
        keep = sum(1 for index in self._indices if index < num_episodes)
        dropped = self._indices[keep:]
        if self.directory is not None:
            # Files too: otherwise the next start reloads them as if collected before the checkpoint.
            for path in self.directory.iterdir():
                match = _EPISODE_RE.match(path.name)
                if match is not None and int(match.group(1)) >= num_episodes:
                    path.unlink(missing_ok=True)
            _fsync_directory(self.directory)
        if dropped:
            self._num_steps = int(self._starts[keep])
            self._indices = self._indices[:keep]
            self._starts = self._starts[:keep].copy()
            self._lengths = self._lengths[:keep].copy()

    def state_dict(self) -> dict:
        """Sampling state (the generator's bit_generator.state); the episodes themselves live on disk."""
        return {"rng": self._rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        """Restore the sampling state saved by ``state_dict``."""
        rng_state = state["rng"]
        if rng_state.get("bit_generator") != "PCG64":
            raise ValueError(f"expected a PCG64 generator state, got {rng_state.get('bit_generator')!r}")
        self._rng.bit_generator.state = rng_state
