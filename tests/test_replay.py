"""Tests for planet.replay: file format and atomicity, chunk sampling, reproducibility, resume."""

from __future__ import annotations

import copy
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from planet.replay import (
    CorruptEpisodeError,
    Replay,
    ReplayCapacityError,
    episode_path,
    load_episode,
    save_episode,
)

OBS_SHAPE = (4, 4, 3)
ACTION_DIM = 2


def make_episode(rows: int, episode_id: int = 0, seed: int | None = None) -> dict[str, np.ndarray]:
    """An episode whose values encode (episode id, row): obs[..., 0] = id, obs[..., 1] = row."""
    obs = np.zeros((rows, *OBS_SHAPE), dtype=np.uint8)
    obs[..., 0] = episode_id
    obs[..., 1] = np.arange(rows, dtype=np.uint8)[:, None, None]
    if seed is not None:
        obs[..., 2] = np.random.default_rng(seed).integers(0, 256, (rows, *OBS_SHAPE[:2]), dtype=np.uint8)
    action = np.stack([np.full(rows, episode_id), np.arange(rows)], axis=1).astype(np.float32)
    reward = (1000.0 * episode_id + np.arange(rows)).astype(np.float32)
    return {"obs": obs, "action": action, "reward": reward}


def filled_replay(
    directory: Path | None, lengths: list[int], seed: int = 0, capacity: int = 10_000
) -> Replay:
    replay = Replay(directory, OBS_SHAPE, ACTION_DIM, capacity, seed)
    for i, rows in enumerate(lengths):
        assert (
            replay.add(make_episode(rows, episode_id=i, seed=i), {"task": "test", "return": np.float32(i)})
            == i
        )
    return replay


def assert_episodes_equal(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert set(a) == set(b) == {"obs", "action", "reward"}
    for key in a:
        assert a[key].dtype == b[key].dtype
        np.testing.assert_array_equal(a[key], b[key])


# ---------------------------------------------------------------------- file format


def test_save_load_round_trip_exact(tmp_path: Path) -> None:
    episode = make_episode(9, episode_id=3, seed=1)
    episode["action"][1:] = np.random.default_rng(0).standard_normal((8, ACTION_DIM)).astype(np.float32)
    metadata = {
        "task": "cartpole_swingup",
        "seed": 7,
        "split": "train",
        "index": 3,
        "return": np.float32(1.25),
    }
    path = tmp_path / "episode_000003.npz"
    save_episode(path, episode, metadata)
    loaded, loaded_meta = load_episode(path)
    assert_episodes_equal(loaded, episode)
    assert loaded_meta == {
        "task": "cartpole_swingup",
        "seed": 7,
        "split": "train",
        "index": 3,
        "return": 1.25,
    }
    # Uncompressed: the zip members are stored, not deflated.
    with zipfile.ZipFile(path) as archive:
        assert all(info.compress_type == zipfile.ZIP_STORED for info in archive.infolist())


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda e: e.update(obs=e["obs"].astype(np.float32)), "obs"),
        (lambda e: e.update(action=e["action"].astype(np.float64)), "action"),
        (lambda e: e.update(reward=e["reward"][:-1]), "rows"),
        (lambda e: e.update(reward=e["reward"][:, None]), "reward"),
        (lambda e: e.pop("action"), "action"),
        (lambda e: e["reward"].__setitem__(2, np.nan), "reward"),
        # the optional true state (planet/diagnostics.py): float32 [T+1, S], finite
        (lambda e: e.update(state=np.zeros((5, 2))), "state"),
        (lambda e: e.update(state=np.zeros((4, 2), np.float32)), "rows"),
        (lambda e: e.update(state=np.full((5, 2), np.nan, np.float32)), "state"),
    ],
)
def test_save_validates_before_writing(tmp_path: Path, mutate, key: str) -> None:
    episode = make_episode(5)
    mutate(episode)
    path = tmp_path / "episode_000000.npz"
    with pytest.raises(ValueError, match=key):
        save_episode(path, episode, {})
    assert list(tmp_path.iterdir()) == []


def test_state_is_stored_beside_the_pixels_and_old_files_still_load(tmp_path: Path) -> None:
    """Episodes carry the true simulator state on disk (not in the RAM buffer); files written before it existed
    (no `state` member) load, and a replay holds both kinds."""
    old = make_episode(6, episode_id=0)
    np.savez(episode_path(tmp_path, 0), **old, metadata=np.array('{"index": 0}'))  # the format before states
    new = {**make_episode(7, episode_id=1), "state": np.arange(14, dtype=np.float32).reshape(7, 2)}
    save_episode(episode_path(tmp_path, 1), new, {"index": 1, "state_groups": [["position", 1], ["velocity", 1]]})

    loaded_old, _ = load_episode(episode_path(tmp_path, 0))
    assert_episodes_equal(loaded_old, old)  # exactly obs, action, reward: no state
    loaded_new, meta = load_episode(episode_path(tmp_path, 1))
    assert set(loaded_new) == {"obs", "action", "reward", "state"} and loaded_new["state"].dtype == np.float32
    np.testing.assert_array_equal(loaded_new["state"], new["state"])
    assert meta["state_groups"] == [["position", 1], ["velocity", 1]]

    replay = Replay(tmp_path, OBS_SHAPE, ACTION_DIM, 100, 0)
    assert replay.num_episodes == 2 and replay.num_steps == 13
    assert_episodes_equal(replay.episode(1), make_episode(7, episode_id=1))  # training never sees the state
    replay.add({**make_episode(5, episode_id=2), "state": np.ones((5, 2), np.float32)})
    assert "state" in load_episode(episode_path(tmp_path, 2))[0]


def test_save_is_atomic_when_replace_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_replace(src, dst):
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated crash"):
        save_episode(tmp_path / "episode_000000.npz", make_episode(5), {})
    assert list(tmp_path.glob("episode_*.npz")) == []
    assert list(tmp_path.iterdir()) == []  # the temp file is cleaned up too


def test_failed_add_leaves_memory_and_disk_untouched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replay = filled_replay(tmp_path, [5])
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError("disk gone")))
    with pytest.raises(OSError):
        replay.add(make_episode(6, episode_id=1))
    # File first, then memory: the failed write must not show up in memory.
    assert replay.num_episodes == 1 and replay.num_steps == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.npz"]


def test_leftover_temp_file_is_ignored_and_removed(tmp_path: Path) -> None:
    filled_replay(tmp_path, [5, 6])
    leftover = tmp_path / ".tmp-episode_000002.npz-abc123"
    leftover.write_bytes(b"half a zip")
    unrelated = tmp_path / "notes.txt"
    unrelated.write_text("keep me")
    replay = Replay(tmp_path, OBS_SHAPE, ACTION_DIM, 100, 0)
    assert replay.num_episodes == 2 and replay.num_steps == 11
    assert not leftover.exists()
    assert unrelated.exists()


def test_truncated_file_raises_corrupt_error_naming_file(tmp_path: Path) -> None:
    path = tmp_path / "episode_000000.npz"
    save_episode(path, make_episode(20, seed=0), {"index": 0})
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptEpisodeError, match="episode_000000.npz") as info:
            load_episode(path)
        assert "delete the file" in str(info.value).lower()
    # The replay refuses to start on it (loudly, rather than training on a silently smaller buffer).
    with pytest.raises(CorruptEpisodeError, match="episode_000000.npz"):
        Replay(tmp_path, OBS_SHAPE, ACTION_DIM, 100, 0)


def test_bit_flip_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "episode_000000.npz"
    save_episode(path, make_episode(20, seed=0), {})
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # inside the obs member: caught by the zip CRC
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptEpisodeError, match="episode_000000.npz"):
        load_episode(path)


def test_missing_key_or_bad_dtype_raises_corrupt_error(tmp_path: Path) -> None:
    episode = make_episode(5)
    missing = tmp_path / "episode_000000.npz"
    np.savez(missing, obs=episode["obs"], action=episode["action"], metadata=np.array("{}"))
    with pytest.raises(CorruptEpisodeError, match=r"episode_000000\.npz.*reward"):
        load_episode(missing)
    wrong_dtype = tmp_path / "episode_000001.npz"
    np.savez(
        wrong_dtype,
        obs=episode["obs"],
        action=episode["action"].astype(np.float64),
        reward=episode["reward"],
        metadata=np.array("{}"),
    )
    with pytest.raises(CorruptEpisodeError, match=r"episode_000001\.npz.*action.*float64"):
        load_episode(wrong_dtype)
    bad_lengths = tmp_path / "episode_000002.npz"
    np.savez(
        bad_lengths,
        obs=episode["obs"],
        action=episode["action"],
        reward=episode["reward"][:3],
        metadata=np.array("{}"),
    )
    with pytest.raises(CorruptEpisodeError, match=r"episode_000002\.npz.*inconsistent"):
        load_episode(bad_lengths)


# ---------------------------------------------------------------------- sampling


def test_sample_shapes_and_dtypes() -> None:
    replay = filled_replay(None, [30, 40])
    batch = replay.sample(7, 10)
    assert batch["obs"].shape == (7, 10, *OBS_SHAPE) and batch["obs"].dtype == np.uint8
    assert batch["action"].shape == (7, 10, ACTION_DIM) and batch["action"].dtype == np.float32
    assert batch["reward"].shape == (7, 10) and batch["reward"].dtype == np.float32


def test_chunks_never_cross_episode_boundaries() -> None:
    lengths = [12, 5, 30, 11, 13, 7, 12, 40, 3]  # 5, 7, 3, 11 are shorter than L = 12
    chunk = 12
    replay = filled_replay(None, lengths, seed=1)
    sampled_ids: set[int] = set()
    for _ in range(50):
        batch = replay.sample(64, chunk)
        ep_ids = batch["obs"][..., 0]  # [B, L, H, W]
        rows = batch["obs"][..., 1].astype(np.int64)
        # Every pixel of a frame agrees, every frame of a chunk comes from one episode.
        assert (ep_ids == ep_ids[:, :1, :1, :1]).all()
        first_rows = rows[:, :, 0, 0]
        consecutive = np.broadcast_to(np.arange(chunk), (64, chunk))
        np.testing.assert_array_equal(first_rows - first_rows[:, :1], consecutive)
        ids = ep_ids[:, 0, 0, 0].astype(np.int64)
        for b, ep in enumerate(ids):
            # The chunk lies inside the episode, and action/reward come from the same rows as obs.
            assert 0 <= first_rows[b, 0] and first_rows[b, -1] < lengths[ep]
            np.testing.assert_array_equal(batch["action"][b, :, 0], ep)
            np.testing.assert_array_equal(batch["action"][b, :, 1], first_rows[b])
            np.testing.assert_array_equal(batch["reward"][b], 1000.0 * ep + first_rows[b])
            # obs[..., 2] holds per-episode random pixels: the gathered frames are the stored frames.
            np.testing.assert_array_equal(batch["obs"][b], replay.episode(int(ep))["obs"][first_rows[b]])
        sampled_ids.update(ids.tolist())
    assert sampled_ids == {i for i, n in enumerate(lengths) if n >= chunk}


def test_sample_without_long_enough_episode_raises() -> None:
    replay = filled_replay(None, [5, 8])
    with pytest.raises(ValueError, match="no stored episode has >= 9 rows"):
        replay.sample(4, 9)
    with pytest.raises(ValueError, match="no stored episode"):
        Replay(None, OBS_SHAPE, ACTION_DIM, 10, 0).sample(1, 1)
    assert replay.sample(2, 8)["obs"].shape[:2] == (2, 8)  # exactly the episode length is allowed


def test_uniform_coverage_of_episodes_and_offsets() -> None:
    replay = filled_replay(None, [10, 20], seed=3)
    batch = replay.sample(20_000, 6)
    ids = batch["obs"][:, 0, 0, 0, 0].astype(np.int64)
    starts = batch["obs"][:, 0, 0, 0, 1].astype(np.int64)
    # Episodes uniform (not proportional to length): each about half.
    assert abs(np.mean(ids == 0) - 0.5) < 0.02
    # Every valid start offset appears, none beyond, roughly uniformly.
    for ep, rows in ((0, 10), (1, 20)):
        counts = np.bincount(starts[ids == ep], minlength=rows)
        valid = rows - 6 + 1
        assert (counts[:valid] > 0).all() and (counts[valid:] == 0).all()
        expected = (ids == ep).sum() / valid
        assert np.abs(counts[:valid] - expected).max() < 0.25 * expected


def test_sampling_reproducible_and_independent_of_global_rng() -> None:
    # The legacy global RNG is used on purpose here: the replay must leave it alone.
    np.random.seed(123)  # noqa: NPY002
    global_state = np.random.get_state()  # noqa: NPY002
    a = filled_replay(None, [30, 25, 40], seed=5)
    b = filled_replay(None, [30, 25, 40], seed=5)
    c = filled_replay(None, [30, 25, 40], seed=6)
    for _ in range(3):
        batch_a, batch_b, batch_c = a.sample(8, 10), b.sample(8, 10), c.sample(8, 10)
        for key in batch_a:
            np.testing.assert_array_equal(batch_a[key], batch_b[key])
    assert not np.array_equal(batch_a["obs"], batch_c["obs"])
    after = np.random.get_state()  # noqa: NPY002
    assert after[0] == global_state[0] and after[2:] == global_state[2:]
    np.testing.assert_array_equal(after[1], global_state[1])


def test_state_dict_resumes_exact_sample_sequence() -> None:
    replay = filled_replay(None, [30, 25, 40], seed=9)
    replay.sample(8, 10)
    state = replay.state_dict()
    snapshot = copy.deepcopy(state)
    expected = [replay.sample(8, 10) for _ in range(3)]
    resumed = filled_replay(None, [30, 25, 40], seed=1234)
    resumed.load_state_dict(state)
    for want in expected:
        got = resumed.sample(8, 10)
        for key in want:
            np.testing.assert_array_equal(got[key], want[key])
    # The state is a copy: later sampling must not alter what a checkpoint already holds.
    assert state == snapshot
    with pytest.raises(ValueError, match="PCG64"):
        resumed.load_state_dict({"rng": {"bit_generator": "MT19937"}})


# ---------------------------------------------------------------------- persistence and resume


def test_reload_from_directory_gives_identical_buffer(tmp_path: Path) -> None:
    lengths = [12, 5, 30, 11]
    original = filled_replay(tmp_path, lengths)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"episode_{i:06d}.npz" for i in range(4)]
    _, metadata = load_episode(episode_path(tmp_path, 2))
    assert metadata == {"task": "test", "return": 2.0, "index": 2, "length": 30}
    reloaded = Replay(tmp_path, OBS_SHAPE, ACTION_DIM, 10_000, 0)
    assert reloaded.num_episodes == 4 and reloaded.num_steps == sum(lengths)
    np.testing.assert_array_equal(reloaded.episode_lengths, lengths)
    for i in range(4):
        assert_episodes_equal(reloaded.episode(i), original.episode(i))
    n = sum(lengths)
    np.testing.assert_array_equal(reloaded._obs[:n], original._obs[:n])
    assert reloaded.add(make_episode(6, episode_id=4)) == 4


def test_episode_views_are_read_only() -> None:
    replay = filled_replay(None, [5])
    view = replay.episode(0)
    assert np.shares_memory(view["obs"], replay._obs)
    with pytest.raises(ValueError):
        view["obs"][0] = 0
    with pytest.raises(KeyError):
        replay.episode(1)


def test_truncate_removes_files_and_rows(tmp_path: Path) -> None:
    replay = filled_replay(tmp_path, [12, 5, 30, 11])
    replay.truncate(2)
    assert replay.num_episodes == 2 and replay.num_steps == 17
    np.testing.assert_array_equal(replay.episode_lengths, [12, 5])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["episode_000000.npz", "episode_000001.npz"]
    # Sampling no longer reaches the dropped rows; a new episode reuses the freed index and rows.
    assert replay.sample(16, 12)["obs"][..., 0].max() == 0
    assert replay.add(make_episode(7, episode_id=9)) == 2
    assert replay.episode(2)["obs"][0, 0, 0, 0] == 9
    reloaded = Replay(tmp_path, OBS_SHAPE, ACTION_DIM, 100, 0)
    np.testing.assert_array_equal(reloaded.episode_lengths, [12, 5, 7])
    replay.truncate(10)  # nothing beyond: no-op
    assert replay.num_episodes == 3
    replay.truncate(0)
    assert replay.num_episodes == 0 and replay.num_steps == 0 and list(tmp_path.iterdir()) == []


def test_capacity_overflow_raises_before_writing(tmp_path: Path) -> None:
    replay = filled_replay(tmp_path, [10, 10], capacity=25)
    with pytest.raises(ReplayCapacityError, match=r"capacity_steps=25.*capacity_steps >= 30"):
        replay.add(make_episode(10, episode_id=2))
    assert replay.num_episodes == 2 and len(list(tmp_path.iterdir())) == 2
    replay.add(make_episode(5, episode_id=2))  # exactly full is fine
    assert replay.num_steps == 25
    with pytest.raises(ReplayCapacityError, match="capacity_steps=20"):
        Replay(tmp_path, OBS_SHAPE, ACTION_DIM, 20, 0)  # reloading into a smaller buffer


def test_incompatible_episode_rejected() -> None:
    replay = Replay(None, OBS_SHAPE, ACTION_DIM, 100, 0)
    bad = make_episode(5)
    bad["action"] = np.zeros((5, 3), np.float32)
    with pytest.raises(ValueError, match="action size 3"):
        replay.add(bad)
    with pytest.raises(ValueError, match="unexpected key"):
        replay.add({**make_episode(5), "discount": np.ones(5, np.float32)})
    assert replay.num_episodes == 0
