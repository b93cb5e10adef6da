"""The report's record of finished runs: what a report keeps of each run once it has finished, so that a later report
still shows it after the run's directory is gone (a campaign run one task per machine lifetime loses every run
directory with its machine; only the committed report survives).

Each run of RESULTS that finished with a final return is written to::

    OUT/record/{variant}/{task}/seed{seed}/   run.json      what the report reads of the run (`Run`'s fields,
                                                            its learning curve, its compute row, its diagnostics)
                                              openloop.png  its open-loop prediction strip, if it has one
                                              agent.gif     the report's GIF of its final evaluation, if it has one

a few tens of KB per run, meant to be committed with the report. A report reads RESULTS and the record: a run of
RESULTS that finished with a final return replaces its record (and rewrites it); a record whose run is absent from
RESULTS, or there unfinished, stands in for it and is listed in the README as kept from the record. The report never
deletes a record: delete its directory to forget a run.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from planet.report.runs import CURVE_COLUMNS, Run, as_int, finite, read_json
from planet.utils import atomic_write_json

log = logging.getLogger(__name__)

RECORD_DIR = "record"
RECORD_FILE = "run.json"
RECORD_FORMAT = 1
_SCALARS = ("complete", "final", "final_source", "episodes", "env_steps", "planned_episodes", "episode_env_steps",
            "preset")


def record_path(root: Path, variant: str, task: str, seed: int) -> Path:
    """ROOT/{variant}/{task}/seed{seed}: the record directory of one run (ROOT is OUT/record)."""
    return Path(root) / variant / task / f"seed{seed}"


def recordable(run: Run) -> bool:
    """A run is recorded once it finished (summary.json) with a final return."""
    return run.complete and run.final is not None


def write_record(run: Run, directory: Path, cost: Mapping[str, Any] | None, video: Path | None,
                 source: str) -> Path:
    """Write `run`'s record into `directory` (see the module docstring); `cost` is its compute row
    (planet/report/costs.py `compute_row`), `video` the report's GIF of it, `source` where the numbers come from."""
    from planet.report.build import json_clean

    directory.mkdir(parents=True, exist_ok=True)
    if run.openloop is not None:
        shutil.copyfile(run.openloop, directory / "openloop.png")
    if video is not None:
        shutil.copyfile(video, directory / "agent.gif")
    curve = run.curve[CURVE_COLUMNS] if len(run.curve) else pd.DataFrame(columns=CURVE_COLUMNS)
    payload = {"format": RECORD_FORMAT, "variant": run.variant, "task": run.task, "seed": run.seed,
               **{key: getattr(run, key) for key in _SCALARS},
               "curve": curve.to_dict(orient="records"), "cost": dict(cost) if cost else None,
               "diagnostics": run.diagnostics, "source": source}  # no timestamp: a report is deterministic
    path = directory / RECORD_FILE
    atomic_write_json(path, json_clean(payload))
    return path


def write_records(runs: Sequence[Run], root: Path, videos: Mapping[str, tuple[Run, Path]]) -> list[Path]:
    """Records (under ROOT) of the runs of RESULTS that finished with a final return; `videos`: {task: (run, the
    report's GIF of it)} (planet/report/videos.py `write_agent_videos`). Returns the run.json files written."""
    from planet.report.costs import compute_row

    written = []
    for run in runs:
        if run.record is not None or not recordable(run):
            continue
        shown, video = videos.get(run.task, (None, None))
        written.append(write_record(run, record_path(root, run.variant, run.task, run.seed), compute_row(run),
                                    video if shown is run else None, f"run directory {Path(run.path).resolve()}"))
    return written


def read_record(directory: Path) -> Run | None:
    """The `Run` a record directory stands for (`Run.record` set to the record's `source`), or None when its
    run.json is absent, unreadable or not a record (logged)."""
    data = read_json(directory / RECORD_FILE)
    if data is None:
        return None
    try:
        run = Run(str(data["variant"]), str(data["task"]), int(data["seed"]), directory)
        for key in _SCALARS:
            setattr(run, key, data.get(key))
        run.final, run.complete = finite(run.final), bool(run.complete)
        for key in ("episodes", "env_steps", "planned_episodes", "episode_env_steps"):
            setattr(run, key, as_int(getattr(run, key)))
        run.curve = pd.DataFrame(data.get("curve") or [], columns=CURVE_COLUMNS).astype(
            {"return_mean": float, "return_std": float})
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("%s: not a run record (%s); ignored", directory / RECORD_FILE, exc)
        return None
    run.cost = data.get("cost") if isinstance(data.get("cost"), dict) else None
    run.diagnostics = data.get("diagnostics") if isinstance(data.get("diagnostics"), dict) else None
    run.record = str(data.get("source") or directory)
    for name, attr in (("openloop.png", "openloop"), ("agent.gif", "video")):
        path = directory / name
        setattr(run, attr, path if path.is_file() and path.stat().st_size > 0 else None)
    return run


def read_records(root: Path) -> list[Run]:
    """Every record under ROOT (OUT/record), sorted by (variant, task, seed)."""
    root = Path(root)
    runs = [read_record(path.parent) for path in sorted(root.glob(f"*/*/seed*/{RECORD_FILE}"))] if root.is_dir() \
        else []
    return sorted((r for r in runs if r is not None), key=lambda r: (r.variant, r.task, r.seed))


def merge_records(runs: Sequence[Run], records: Sequence[Run]) -> list[Run]:
    """RESULTS' runs with the records standing in where a run is absent or has not finished with a final return
    (see the module docstring), sorted by (variant, task, seed)."""
    by_key = {(r.variant, r.task, r.seed): r for r in runs}
    for record in records:
        key = (record.variant, record.task, record.seed)
        live = by_key.get(key)
        if live is None or not recordable(live):
            if live is not None:
                log.warning("%s: not finished; the report shows its record (%s) instead", live.path, record.record)
            by_key[key] = record
    return sorted(by_key.values(), key=lambda r: (r.variant, r.task, r.seed))


def kept_records_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """The runs a report shows from the record (their run directories are not in RESULTS): the README's list."""
    rows = [{"variant": r.variant, "task": r.task, "seed": r.seed, "episodes": r.episodes, "final": r.final,
             "commits": (r.cost or {}).get("commits"), "source": r.record} for r in runs if r.record]
    return pd.DataFrame(rows, columns=["variant", "task", "seed", "episodes", "final", "commits", "source"])
