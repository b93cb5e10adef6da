"""`planet curve`: a committed learning record of one run: eval return vs wall clock, episodes and env steps.

Reads RUN/metrics.jsonl (the `eval/*` lines written during training) and writes OUT/curve.csv and OUT/curve.png
(return vs wall-clock hours and vs collected episodes, with the 10-episode std as a band and the thresholds given),
and OUT/collect.csv: the return of every training episode (with exploration noise; the seed episodes are random),
drawn thin beside the evaluation curve.
Wall clock is measured from `--start` (a Unix time, e.g. `date +%s` taken just before `planet train`), else from
the run's first metrics line.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from planet.report.runs import eval_points
from planet.tracking import read_metrics


def _start(records: list[dict], start: float | None) -> float:
    return float(start) if start is not None else float(records[0]["time"]) if records else 0.0


def curve_frame(records: list[dict], start: float | None = None) -> pd.DataFrame:
    """One row per evaluation of RUN/metrics.jsonl `records` (read as the report reads a run's learning curve,
    planet/report/runs.py `eval_points`); wall_h from `start`, else the first line."""
    frame = eval_points(records)
    frame.insert(2, "wall_h", (frame.pop("time") - _start(records, start)) / 3600)
    return frame


def collect_frame(records: list[dict], start: float | None = None) -> pd.DataFrame:
    """One row per training episode: episodes, env_steps, wall_h (from `start`, else the first line), return."""
    t0 = _start(records, start)
    rows = [{"episodes": int(r["episodes"]), "env_steps": int(r["step"]), "wall_h": (float(r["time"]) - t0) / 3600,
             "collect_return": float(r["collect/return"])} for r in records if "collect/return" in r]
    return pd.DataFrame(rows, columns=["episodes", "env_steps", "wall_h", "collect_return"])


def plot(frame: pd.DataFrame, path: Path, title: str, thresholds: list[tuple[float, float]],
         collect: pd.DataFrame | None = None) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.8), layout="constrained")
    axes = fig.subplots(1, 2)
    for ax, x, label in ((axes[0], "wall_h", "wall-clock hours"), (axes[1], "episodes", "collected episodes")):
        if collect is not None and len(collect):
            ax.plot(collect[x], collect["collect_return"], lw=0.8, color="0.6",
                    label="training episode return (exploration noise)")
        ax.plot(frame[x], frame["return_mean"], marker="o", markersize=3, label="eval return (mean of episodes)")
        ax.fill_between(frame[x], frame["return_mean"] - frame["return_std"],
                        frame["return_mean"] + frame["return_std"], alpha=0.2, label="± std over episodes")
        ax.axhline(120, ls=":", color="0.5", lw=1, label="uniform random policy (~120)")
        ax.set_xlabel(label)
        ax.set_ylabel("return")
        ax.set_ylim(0, 1000)
    for hours, value in thresholds:
        axes[0].plot([0, hours, hours], [value, value, 0], ls="--", lw=1, color="tab:red")
    axes[0].legend(fontsize="small", loc="upper left")
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="planet curve", description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="run directory written by `planet train`")
    p.add_argument("--out", type=Path, required=True, help="output directory (curve.csv, curve.png)")
    p.add_argument("--start", type=float, help="Unix time the run was started (default: its first metrics line)")
    p.add_argument("--title", default="", help="figure title")
    p.add_argument("--threshold", action="append", default=[], metavar="HOURS:RETURN",
                   help="a target drawn on the wall-clock panel, e.g. 1:300 (repeatable)")
    args = p.parse_args(argv)
    records = read_metrics(args.run / "metrics.jsonl")
    if not records:
        raise ValueError(f"{args.run}/metrics.jsonl has no lines")
    frame = curve_frame(records, args.start)
    args.out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out / "curve.csv", index=False, float_format="%.4f")
    collect = collect_frame(records, args.start)
    collect.to_csv(args.out / "collect.csv", index=False, float_format="%.4f")
    thresholds = [tuple(map(float, t.split(":"))) for t in args.threshold]
    plot(frame, args.out / "curve.png", args.title or str(args.run), thresholds, collect)
    reached = {f"{h:g}h>={v:g}": bool(((frame["wall_h"] <= h) & (frame["return_mean"] >= v)).any())
               for h, v in thresholds}
    print(json.dumps({"points": len(frame), "last": frame.iloc[-1].to_dict() if len(frame) else None,
                      "best": frame.loc[frame["return_mean"].idxmax()].to_dict() if len(frame) else None,
                      "reached": reached}, indent=2))
    return 0
