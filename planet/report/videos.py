"""The agents after training, as a reader watches them: one small GIF per task of the report (OUT/videos/), made
from the final evaluation episode each run recorded (RUN/eval/eval.gif, planet/video.py), and the README section
that shows them.

A run's own GIF is enlarged 3x for MLflow's viewer (a 500-frame walker episode is ~5 MB); the report's copy is at
most `MAX_BYTES` so that a committed record stays small: the frames are taken back to the agent's 64 px view,
enlarged 2x, and every k-th frame is kept (k chosen so the file fits; the playback rate is divided by k, so the
clip still runs in real time)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from planet.report.runs import Run
from planet.video import GIF_SCALE, save_gif

log = logging.getLogger(__name__)

MAX_BYTES = 400_000
SCALE = 2
FPS = 20


def agent_gif(source: Path, out: Path, max_bytes: int = MAX_BYTES) -> bool:
    """A copy of a run's evaluation GIF that fits in `max_bytes` (see the module docstring); False (nothing
    written) if the source cannot be read or no frame step makes it fit."""
    import imageio.v3 as iio

    try:
        frames = np.asarray(iio.imread(source, index=None))
    except (OSError, ValueError) as exc:
        log.warning("%s: not readable (%s); no video of this run", source, exc)
        return False
    if frames.ndim != 4 or len(frames) == 0:
        return False
    frames = frames[..., :3]
    if frames.shape[1] % GIF_SCALE == 0 and frames.shape[2] % GIF_SCALE == 0:
        frames = frames[:, ::GIF_SCALE, ::GIF_SCALE]  # nearest-neighbour enlargement undone: the agent's view
    for step in (1, 2, 3, 4, 6, 8, 12, 16):
        save_gif(out, frames[::step], fps=max(1, round(FPS / step)), scale=SCALE)
        if out.stat().st_size <= max_bytes:
            return True
    out.unlink()
    log.warning("%s: no frame step fits %d bytes; no video of this run", source, max_bytes)
    return False


def write_agent_videos(runs: Sequence[Run], variant: str, tasks: Sequence[str], out: Path,
                       written: list[Path]) -> dict[str, tuple[Run, Path]]:
    """OUT/VARIANT_TASK.gif for each task: the final evaluation of the first finished seed of `variant` that
    recorded one. Returns {task: (run, gif)}."""
    shown: dict[str, tuple[Run, Path]] = {}
    for task in tasks:
        candidates = sorted((r for r in runs if r.variant == variant and r.task == task and r.complete
                             and r.video is not None), key=lambda r: r.seed)
        for run in candidates:
            out.mkdir(parents=True, exist_ok=True)
            path = out / f"{variant}_{task}.gif"
            if run.record is not None:  # a record keeps the report's copy (planet/report/record.py)
                shutil.copyfile(run.video, path)
                written.append(path)
                shown[task] = (run, path)
                break
            if agent_gif(run.video, path):
                written.append(path)
                shown[task] = (run, path)
                break
    if out.is_dir():  # a video of a run no longer in the results goes
        for stale in set(out.glob("*.gif")) - {p for _, p in shown.values()}:
            stale.unlink()
    return shown


def videos_section(shown: Mapping[str, tuple[Run, Path]], label: str, root: Path) -> list[str]:
    """README lines: one GIF per task with its run's final held-out return."""
    if not shown:
        return []
    lines = ["## The agents after training", "",
             f"{label}: the first episode of each finished run's final noise-free evaluation, as the agent sees it "
             "(64 x 64 pixels, shown 2x; long episodes keep every k-th frame).", ""]
    for task, (run, path) in shown.items():
        final = "" if run.final is None else f", held-out return {run.final:.0f}"
        lines += [f"**{task}** (seed {run.seed}, {run.episodes} episodes{final})", "",
                  f"![{label} on {task}]({path.relative_to(root).as_posix()})", ""]
    return lines
