"""Figures: the learning curves and ablations (paper Figs. 4, 5, 8, 9), data efficiency, open-loop strips
(paper Fig. 10), state diagnostics (paper Fig. 11), CEM hyperparameters with the true simulator (paper Fig. 12)
and the aggregate, as PNG and PDF under OUT/figures/.

Which variants a figure shows, its title and file come from params/pipeline.yaml (planet/report/grid.py);
`draw_figures` draws every figure described there by its kind. Curves are the median over seeds with a 5-95
percentile band; stars mark PlaNet's published returns at 100k / 500k env steps where the curves reach them, and
dashed lines D4PG and A3C after 1e8 env steps (paper Table 1) on curves at the paper's scale (1000 episodes). A
variant has the same colour in every figure. Figures are built without pyplot (no global state), and PDFs carry no
creation date, so an unchanged report produces byte-identical files.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from planet.cem_grid import AXIS_LABELS
from planet.report.grid import FigureSpec, VariantInfo, pipeline_order
from planet.report.published import PLANET_BUDGET_SOURCE, budget_rows, paper_rows, paper_value
from planet.report.runs import Run, diagnostics_frame, finite
from planet.report.stats import BOOTSTRAP_SEED

log = logging.getLogger(__name__)

DPI = 120
CURVE_REFERENCES = {"D4PG": "0.2", "A3C": "0.55"}  # horizontal lines of paper Fig. 4, with their grey
# Published PlaNet at 100k / 500k env steps on the learning curves (hollow black stars)
BUDGET_MARKER = {"marker": "*", "markersize": 11, "markerfacecolor": "none", "markeredgecolor": "black",
                 "linestyle": ""}
ENV_STEPS_PER_EPISODE = 1000  # every task's episode (the curves' episodes = env steps / 1000, as the table's)
PAPER_EPISODES = 1000  # PlaNet's budget in the paper (Table 1, Fig. 4): the scale where D4PG/A3C lines are drawn
# Published points of the data-efficiency figure: pixel agents at fixed env-step budgets (marker per method).
EFFICIENCY_REFERENCES = {"PlaNet": "o", "SAC (pixels)": "s", "DrQ (K=1 M=1; about RAD)": "^", "CURL": "D"}
LEARNING_CURVES_TITLE = "Eval return vs collected episodes (median, 5-95 percentile band over seeds)"


def variant_palette(names: Iterable[str]) -> dict[str, tuple]:
    """A fixed colour per variant, so a variant looks the same in every figure (and in every preset's report): in
    the order of params/pipeline.yaml's variants and baselines, then other names (sorted)."""
    import seaborn as sns

    known = pipeline_order()
    order = [*known, *sorted(set(names) - set(known))]
    # tab10 first; beyond ten names Dark2's eight (tab10 alone would cycle: the 11th name took PlaNet's colour).
    colours = [*sns.color_palette("tab10"), *sns.color_palette("Dark2")]
    return {name: colours[i % len(colours)] for i, name in enumerate(order)}


def _figure(width: float, height: float):
    """A figure not registered with pyplot: Agg rendering, no global state, nothing to close."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, base: Path, written: list[Path], pdf: bool = True) -> None:
    """BASE.png (and BASE.pdf), appended to `written`."""
    base.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(base.with_suffix(".png"), dpi=DPI)
    written.append(base.with_suffix(".png"))
    if pdf:
        # No creation date, so an unchanged report produces byte-identical PDFs.
        fig.savefig(base.with_suffix(".pdf"), metadata={"CreationDate": None, "ModDate": None})
        written.append(base.with_suffix(".pdf"))


def _references(published: pd.DataFrame, task: str) -> dict[str, float]:
    """D4PG's and A3C's scores on `task` in the paper's Table 1 (the dashed lines)."""
    values = {name: paper_value(published, name, task) for name in CURVE_REFERENCES}
    return {name: value for name, value in values.items() if value is not None}


def _budget_points(published: pd.DataFrame, task: str) -> list[tuple[float, float]]:
    """Published PlaNet at fixed env-step budgets (100k and 500k; planet/report/published.py): (env steps, return)."""
    rows = budget_rows(published)
    if task not in rows.columns:
        return []
    return [(float(b), float(v)) for b, v in zip(rows["budget_env_steps"], rows[task], strict=True)
            if finite(v) is not None]


def _draw_curves(ax, curves: pd.DataFrame, task: str, x: str, variants: Sequence[str],
                 infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple],
                 published: pd.DataFrame) -> tuple[set[str], set[str]]:
    """Median and 5-95 percentile band over seeds per variant, with the published references its x-axis reaches:
    PlaNet's published points at 100k / 500k env steps (episodes = env steps / 1000) where the curves reach that
    budget, and the dashed D4PG/A3C lines (1e8 env steps, paper Fig. 4) only at the paper's scale (curves reaching
    PlaNet's 1000 episodes), where they are the asymptote the paper compares with. Returns (variants drawn,
    references drawn: 'budget' and/or 'asymptotes')."""
    import seaborn as sns

    data = curves[(curves["task"] == task) & curves["variant"].isin(variants)]
    drawn = [v for v in variants if v in set(data["variant"])]
    refs: set[str] = set()
    if drawn:
        # Every seed evaluates at the same episode counts, so each x has one value per seed: the median and the
        # 5-95 percentile band are over seeds. markers: a run with a single eval point still shows.
        sns.lineplot(data=data, x=x, y="return_mean", hue="variant", hue_order=drawn, palette=dict(palette),
                     estimator="median", errorbar=("pi", 90), marker="o", markersize=4, legend=False, ax=ax,
                     seed=BOOTSTRAP_SEED)
        scale = 1.0 if x == "env_steps" else 1.0 / ENV_STEPS_PER_EPISODE
        reach = float(data[x].max()) * 1.05
        for steps, value in _budget_points(published, task):
            if steps * scale <= reach:
                ax.plot([steps * scale], [value], **BUDGET_MARKER)
                refs.add("budget")
        if reach >= PAPER_EPISODES * ENV_STEPS_PER_EPISODE * scale:
            for name, value in _references(published, task).items():
                ax.axhline(value, ls="--", lw=1, color=CURVE_REFERENCES[name])
                refs.add("asymptotes")
    else:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.5")
    ax.set_title(task)
    ax.set_xlabel("collected episodes" if x == "episodes" else "environment steps")
    ax.set_ylabel("return (eval, median over seeds)")
    ax.set_ylim(0, 1050)
    if x == "env_steps":
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 3))
    return set(drawn), refs


def _legend_handles(variants: Sequence[str], infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple],
                    published: pd.DataFrame, refs: set[str]) -> list:
    """Legend entries: the variants drawn, then the published references drawn (`refs` from `_draw_curves`)."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=palette[v], marker="o", markersize=4, label=infos[v].label) for v in variants]
    if "budget" in refs:
        handles.append(Line2D([], [], ls="", **BUDGET_MARKER,
                              label=f"PlaNet published at 100k / 500k env steps ({PLANET_BUDGET_SOURCE})"))
    if "asymptotes" in refs:
        names = set(paper_rows(published)["method"])
        for name, colour in CURVE_REFERENCES.items():
            if name in names:
                handles.append(Line2D([], [], ls="--", lw=1, color=colour,
                                      label=f"{name} (reference, 1e8 env steps)"))
    return handles


def plot_task_curves(curves: pd.DataFrame, task: str, variants: Sequence[str], infos: Mapping[str, VariantInfo],
                     palette: Mapping[str, tuple], published: pd.DataFrame, base: Path, written: list[Path]) -> None:
    """Two panels: eval return vs collected episodes and vs env steps."""
    fig = _figure(10, 3.8)
    axes = fig.subplots(1, 2)
    drawn: set[str] = set()
    refs: set[str] = set()
    for ax, x in zip(axes, ("episodes", "env_steps"), strict=True):
        variants_drawn, refs_drawn = _draw_curves(ax, curves, task, x, variants, infos, palette, published)
        drawn |= variants_drawn
        refs |= refs_drawn
        ax.set_title(f"vs {ax.get_xlabel()}")
    fig.legend(handles=_legend_handles([v for v in variants if v in drawn], infos, palette, published, refs),
               loc="outside lower center", ncols=3, frameon=False, fontsize="small")
    fig.suptitle(f"{task}: eval return (median, 5-95 percentile band over seeds)")
    _save(fig, base, written)


def plot_task_grid(curves: pd.DataFrame, tasks: Sequence[str], variants: Sequence[str],
                   infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple], published: pd.DataFrame,
                   title: str, base: Path, written: list[Path]) -> set[str]:
    """One panel per task (eval return vs collected episodes); variants without runs are absent from the legend."""
    ncols = 3
    nrows = max(1, math.ceil(len(tasks) / ncols))
    fig = _figure(12, 3.3 * nrows + 0.8)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    drawn: set[str] = set()
    refs: set[str] = set()
    for ax, task in zip(axes, tasks, strict=False):
        variants_drawn, refs_drawn = _draw_curves(ax, curves, task, "episodes", variants, infos, palette, published)
        drawn |= variants_drawn
        refs |= refs_drawn
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    fig.legend(handles=_legend_handles([v for v in variants if v in drawn], infos, palette, published, refs),
               loc="outside lower center", ncols=4, frameon=False, fontsize="small")
    fig.suptitle(title)
    _save(fig, base, written)
    return drawn


def plot_data_efficiency(curves: pd.DataFrame, tasks: Sequence[str], variants: Sequence[str],
                         infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple], published: pd.DataFrame,
                         title: str, base: Path, written: list[Path]) -> None:
    """Eval return vs env steps (log scale), runs made here (median over seeds) beside published pixel agents at
    their budgets (hollow markers: PlaNet's 1e6-step Table 1 score and the 100k / 500k scores of later papers)."""
    from matplotlib.lines import Line2D

    ncols = 3
    nrows = max(1, math.ceil(len(tasks) / ncols))
    fig = _figure(12, 3.3 * nrows + 1.0)
    axes = np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel()
    refs = published[published["method"].isin(EFFICIENCY_REFERENCES) & (published["modality"] == "pixels")]
    drawn: set[str] = set()
    for ax, task in zip(axes, tasks, strict=False):
        data = curves[(curves["task"] == task) & curves["variant"].isin(variants)]
        for variant in variants:
            points = data[data["variant"] == variant].groupby("env_steps")["return_mean"].median()
            points = points[points.index > 0]
            if len(points):
                ax.plot(points.index, points.values, marker="o", markersize=3, color=palette[variant])
                drawn.add(variant)
        if task in refs.columns:
            for _, row in refs.iterrows():
                value = finite(row[task])
                if value is not None:
                    ax.plot([row["budget_env_steps"]], [value], ls="", marker=EFFICIENCY_REFERENCES[row["method"]],
                            mfc="none", color="0.35", markersize=6)
        d4pg = _references(published, task).get("D4PG")
        if d4pg is not None:
            ax.axhline(d4pg, ls="--", lw=1, color=CURVE_REFERENCES["D4PG"])
        ax.set_xscale("log")
        ax.set_xlim(1e3, 2e6)
        ax.set_ylim(0, 1050)
        ax.set_title(task)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("return")
    for ax in axes[len(tasks):]:
        ax.set_visible(False)
    handles = [Line2D([], [], color=palette[v], marker="o", markersize=3, label=f"{infos[v].label} (here)")
               for v in variants if v in drawn]
    handles += [Line2D([], [], ls="", marker=m, mfc="none", color="0.35", label=f"{name} (published)")
                for name, m in EFFICIENCY_REFERENCES.items() if name in set(refs["method"])]
    handles.append(Line2D([], [], ls="--", lw=1, color=CURVE_REFERENCES["D4PG"], label="D4PG (1e8 env steps)"))
    fig.legend(handles=handles, loc="outside lower center", ncols=4, frameon=False, fontsize="small")
    fig.suptitle(f"{title}: eval return vs environment steps")
    _save(fig, base, written)


def plot_aggregate(aggregate: pd.DataFrame, reference: pd.DataFrame, palette: Mapping[str, tuple], base: Path,
                   written: list[Path]) -> None:
    """IQM with 95% CI per variant (runs here), and the paper's rows as reference points (IQM over six tasks)."""
    n = len(aggregate) + len(reference)
    fig = _figure(8, 0.45 * max(n, 2) + 1.6)
    ax = fig.subplots()
    labels = []
    for i, row in enumerate(aggregate.itertuples()):
        colour = palette.get(row.variant, "C0")
        if finite(row.ci_low) is not None:
            ax.errorbar([row.iqm], [i], xerr=[[row.iqm - row.ci_low], [row.ci_high - row.iqm]], color=colour,
                        capsize=4, lw=2)
        ax.plot([row.iqm], [i], "o", color=colour)
        labels.append(f"{row.label} ({row.runs} runs, {row.tasks} tasks)")
    for j, row in enumerate(reference.itertuples(), start=len(aggregate)):
        ax.plot([row.iqm], [j], "D", mfc="none", color="0.3")
        labels.append(f"{row.label} (paper Table 1)")
    if not n:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.5")
    ax.set_yticks(range(n), labels)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xlim(0, 1)
    ax.set_xlabel("IQM of return / 1000 over tasks x seeds\nbars: 95% stratified bootstrap CI; "
                  "diamonds: paper (6 tasks)")
    ax.grid(axis="x", alpha=0.3)
    _save(fig, base, written)


def plot_performance_profile(finals: pd.DataFrame, infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple],
                             base: Path, written: list[Path]) -> pd.DataFrame:
    """The performance profile (Agarwal et al. 2021): per variant, the fraction of runs with return/1000 above each
    threshold, tasks weighted equally, with a 95% stratified-bootstrap band. Returns the plotted numbers."""
    from planet.report.stats import PROFILE_TAUS, performance_profile, score_groups

    fig = _figure(6.5, 4.2)
    ax = fig.subplots()
    rows = []
    for name, info in infos.items():
        groups = score_groups(finals, name)
        if not groups:
            continue
        profile, low, high = performance_profile(groups)
        colour = palette.get(name, "C0")
        ax.plot(PROFILE_TAUS, profile, color=colour, lw=2, ls="--" if info.baseline else "-",
                label=f"{info.label} ({sum(map(len, groups))} runs, {len(groups)} tasks)")
        ax.fill_between(PROFILE_TAUS, low, high, color=colour, alpha=0.15, lw=0)
        rows += [{"variant": name, "tau": t, "fraction": p, "ci_low": lo, "ci_high": hi}
                 for t, p, lo, hi in zip(PROFILE_TAUS, profile, low, high, strict=True)]
    if not rows:
        ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.5")
    else:
        ax.legend(fontsize="small", frameon=False)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("threshold tau on return / 1000")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.grid(alpha=0.3)
    _save(fig, base, written)
    return pd.DataFrame(rows, columns=["variant", "tau", "fraction", "ci_low", "ci_high"])


def plot_cem_grid(frame: pd.DataFrame, title: str, base: Path, written: list[Path]) -> None:
    """Paper Fig. 12: one panel per CEM hyperparameter (rows of planet/cem_grid.py `results_frame`), the test return
    of each value (mean, bar: std over its episodes), the default planner marked by a star and a dotted line.
    Fraction and candidates are on log axes; points without a finished run are left out."""
    axes_names = list(dict.fromkeys(frame["axis"]))
    fig = _figure(3.2 * max(len(axes_names), 1), 3.6)
    panels = np.atleast_1d(fig.subplots(1, max(len(axes_names), 1), squeeze=False, sharey=True)).ravel()
    for ax, axis in zip(panels, axes_names, strict=False):
        rows = frame[frame["axis"] == axis].sort_values("value")
        done = rows[rows["episodes"] > 0]
        if len(done):
            ax.errorbar(done["value"], done["return_mean"], yerr=done["return_std"].fillna(0), color="C0",
                        marker="o", markersize=4, capsize=3, lw=1.5)
        else:
            ax.text(0.5, 0.5, "no runs", transform=ax.transAxes, ha="center", va="center", color="0.5")
        default = rows[rows["default"]]
        if len(default):
            ax.axvline(default["value"].iloc[0], ls=":", lw=1, color="0.4")
            ax.plot(default["value"], default["return_mean"], ls="", marker="*", markersize=13, color="C3",
                    zorder=3)
        if axis in ("top_k_fraction", "candidates"):
            ax.set_xscale("log")
        ax.set_xticks(rows["value"], [f"{v:g}" for v in rows["value"]])
        ax.minorticks_off()
        ax.set_xlabel(AXIS_LABELS.get(axis, axis))
    panels[0].set_ylim(bottom=0)  # after every panel is drawn: the shared top fits them all
    panels[0].set_ylabel("return (test episodes: mean, std)")
    if not axes_names:
        panels[0].text(0.5, 0.5, "no CEM grid", transform=panels[0].transAxes, ha="center", va="center",
                       color="0.5")
    fig.suptitle(f"{title} (star: the default planner)")
    _save(fig, base, written)


R2_FLOOR = -1.0  # state diagnostics: R^2 below this is drawn at the bottom edge (0 = predicting the held-out mean)


def plot_state_diagnostics(frame: pd.DataFrame, tasks: Sequence[str], variants: Sequence[str],
                           infos: Mapping[str, VariantInfo], palette: Mapping[str, tuple], title: str, base: Path,
                           written: list[Path]) -> set[str]:
    """Paper Fig. 11: one row of panels per task, one panel per state group (the task's own groups, in their
    order), held-out R^2 vs open-loop distance (0 = the posterior; symlog axis), one line per variant: median over
    seeds, band min-max. R^2 below `R2_FLOOR` is drawn at the floor. Returns the variants drawn."""
    from matplotlib.lines import Line2D

    data = frame[frame["variant"].isin(variants)].dropna(subset=["r2"])
    shown = [t for t in tasks if t in set(data["task"])]
    groups = {t: list(dict.fromkeys(data.loc[data["task"] == t, "group"])) for t in shown}
    ncols = max([len(g) for g in groups.values()] + [1])
    fig = _figure(max(3.4 * ncols, 8.0), 2.9 * max(len(shown), 1) + 0.9)
    axes = fig.subplots(max(len(shown), 1), ncols, squeeze=False)
    drawn: set[str] = set()
    for row, task in enumerate(shown):
        for col, ax in enumerate(axes[row]):
            if col >= len(groups[task]):
                ax.set_visible(False)
                continue
            cell = data[(data["task"] == task) & (data["group"] == groups[task][col])]
            for variant in variants:
                stats = cell[cell["variant"] == variant].groupby("distance")["r2"].agg(["median", "min", "max"])
                if stats.empty:
                    continue
                stats = stats.clip(lower=R2_FLOOR)
                ax.plot(stats.index, stats["median"], marker="o", markersize=3, color=palette[variant])
                ax.fill_between(stats.index, stats["min"], stats["max"], color=palette[variant], alpha=0.15, lw=0)
                drawn.add(variant)
            distances = sorted(set(cell["distance"]))
            ax.set_xscale("symlog", linthresh=1, linscale=0.5)
            ax.set_xticks(distances, [str(d) for d in distances])
            ax.minorticks_off()
            ax.axhline(0, ls=":", lw=1, color="0.5")
            ax.set_ylim(R2_FLOOR - 0.05, 1.05)
            ax.set_title(f"{task}: {groups[task][col]}")
            ax.set_xlabel("open-loop distance (0 = posterior)")
            ax.set_ylabel("R² (held out)")
    if not shown:
        axes[0, 0].text(0.5, 0.5, "no diagnosed runs", transform=axes[0, 0].transAxes, ha="center", va="center",
                        color="0.5")
    handles = [Line2D([], [], color=palette[v], marker="o", markersize=3, label=infos[v].label)
               for v in variants if v in drawn]
    if handles:
        fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 5), frameon=False,
                   fontsize="small")
    fig.suptitle(f"{title}\nheld-out R² of the true state (median, min-max band over seeds)")
    _save(fig, base, written)
    return drawn


def compose_openloop(items: Sequence[tuple[str, Path]], out: Path, context: int = 5) -> bool:
    """Stack open-loop strips (truth row above prediction row) vertically, each under its task name, as paper
    Fig. 10; a red line marks the end of the context frames. Returns False when no strip is readable."""
    from PIL import Image, ImageDraw, ImageFont

    from planet.video import LABEL_HEADER, LABEL_MARGIN, LABELLED_KEY  # torch is imported only when strips are drawn

    images = []
    for task, path in items:
        try:
            with Image.open(path) as img:
                strip = img.convert("RGB")
                if LABELLED_KEY in img.info:  # a labelled strip (planet.video.label_openloop): back to the frames
                    strip = strip.crop((LABEL_MARGIN, LABEL_HEADER, strip.width, strip.height))
                images.append((task, strip))
        except (OSError, ValueError) as exc:
            log.warning("%s: unreadable open-loop strip (%s)", path, exc)
    if not images:
        return False
    try:
        font = ImageFont.load_default(size=14)
    except (OSError, TypeError):  # Pillow without FreeType
        font = ImageFont.load_default()
    label_h, margin = 20, 80
    width = margin + max(img.width for _, img in images)
    canvas = Image.new("RGB", (width, sum(label_h + img.height for _, img in images)), "white")
    draw = ImageDraw.Draw(canvas)
    y = 0
    for task, img in images:
        draw.text((4, y + 3), task, fill="black", font=font)
        y += label_h
        canvas.paste(img, (margin, y))
        frame = img.height // 2
        if img.height % 2 == 0 and frame and img.width % frame == 0:  # truth row above prediction row
            draw.text((4, y + frame // 2 - 7), "truth", fill="black", font=font)
            draw.text((4, y + frame + frame // 2 - 7), "model", fill="black", font=font)
            if img.width > context * frame:
                x = margin + context * frame
                draw.line([(x, y), (x, y + img.height - 1)], fill=(220, 0, 0), width=2)
        y += img.height
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(out)
    return True


# ----------------------------------------------------------------------------------------------------------------
# Every figure of params/pipeline.yaml, by kind


@dataclass
class FigureInputs:
    """What the figures are drawn from: the report's runs, curves (curves.csv), variants and tasks."""

    runs: Sequence[Run]
    curves: pd.DataFrame
    infos: Mapping[str, VariantInfo]
    tasks: Sequence[str]  # panels, in the paper's order
    found_tasks: set[str]  # tasks with runs or expected runs (they get a per-task learning-curve figure)
    published: pd.DataFrame
    figdir: Path
    cem: pd.DataFrame | None = None  # the CEM grid's results (planet/cem_grid.py `results_frame`), if it has one
    palette: dict[str, tuple] = field(init=False)

    def __post_init__(self) -> None:
        self.palette = variant_palette(self.infos)


def _learning_curves(spec: FigureSpec, data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    members, base = spec.members(data.infos), data.figdir / spec.file
    plot_task_grid(data.curves, data.tasks, members, data.infos, data.palette, data.published,
                   LEARNING_CURVES_TITLE, base, written)
    out = {spec.file: base.with_suffix(".png")}
    for task in data.tasks:
        if task in data.found_tasks:
            path = data.figdir / f"{spec.file}_{task}"
            plot_task_curves(data.curves, task, members, data.infos, data.palette, data.published, path, written)
            out[path.name] = path.with_suffix(".png")
    return out


def _data_efficiency(spec: FigureSpec, data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    base = data.figdir / spec.file
    plot_data_efficiency(data.curves, data.tasks, spec.members(data.infos), data.infos, data.palette,
                         data.published, spec.title, base, written)
    return {spec.file: base.with_suffix(".png")}


def _task_grid(spec: FigureSpec, data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    base = data.figdir / spec.file
    plot_task_grid(data.curves, data.tasks, spec.members(data.infos), data.infos, data.palette, data.published,
                   spec.heading, base, written)
    return {spec.file: base.with_suffix(".png")}


def _openloop(spec: FigureSpec, data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    """One image per variant (png only): the first seed's strip of every task that has one."""
    out = {}
    for variant in spec.members(data.infos):
        items = []
        for task in data.tasks:
            first = next((r for r in data.runs if r.variant == variant and r.task == task and r.openloop), None)
            if first is not None:
                items.append((f"{task} (seed {first.seed})", first.openloop))
        path = data.figdir / f"{spec.file}_{variant}.png"
        if items and compose_openloop(items, path):
            written.append(path)
            out[path.stem] = path
    return out


def _cem_grid(spec: FigureSpec, data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    """Drawn only where the report's grid has a CEM grid (a preset without one has no such jobs)."""
    if data.cem is None:
        return {}
    base = data.figdir / spec.file
    tasks = ", ".join(dict.fromkeys(data.cem["task"]))
    plot_cem_grid(data.cem, f"{spec.heading}: {tasks}" if tasks else spec.heading, base, written)
    return {spec.file: base.with_suffix(".png")}


def _state_diagnostics(spec: FigureSpec, data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    """The figure and its numbers (FILE.csv beside it, long form); nothing where no run of its variants was
    diagnosed (a preset without a `diagnostics:` block)."""
    members = spec.members(data.infos)
    frame = diagnostics_frame(data.runs)
    frame = frame[frame["variant"].isin(members)]
    if frame.empty:
        return {}
    base = data.figdir / spec.file
    frame.to_csv(base.with_suffix(".csv"), index=False)
    written.append(base.with_suffix(".csv"))
    plot_state_diagnostics(frame, data.tasks, members, data.infos, data.palette, spec.heading, base, written)
    return {spec.file: base.with_suffix(".png")}


# The figure registry: every kind a figure of params/pipeline.yaml may have (`kind:`), and what draws it. The one list
# of kinds (planet/report/grid.py checks the grid's against it). A new kind: a function above, an entry here, a
# README section (planet/report/readme.py `_figures`).
#   task_grid          eval return vs collected episodes, one panel per task (the ablations, paper Figs. 4, 5, 8, 9)
#   learning_curves    the same grid plus one figure per task against episodes and env steps (paper Fig. 4)
#   data_efficiency    eval return vs env steps beside published agents at their budgets (and episodes_needed.csv)
#   openloop           one image per variant: open-loop strips of every task stacked (paper Figs. 7, 10)
#   cem_grid           CEM with the true simulator: return vs each planner hyperparameter, the default marked (paper
#                      Fig. 12; the grid's `cem_grid`, planet/cem_grid.py; no variants)
#   state_diagnostics  R^2 of the true state read from each variant's features vs open-loop distance, a row of
#                      panels per task, a panel per state group (paper Fig. 11; `planet diagnose`)
FIGURE_KINDS = {"task_grid": _task_grid, "learning_curves": _learning_curves, "data_efficiency": _data_efficiency,
                "openloop": _openloop, "cem_grid": _cem_grid, "state_diagnostics": _state_diagnostics}


def draw_figures(specs: Mapping[str, FigureSpec], data: FigureInputs, written: list[Path]) -> dict[str, Path]:
    """Draw every figure described in params/pipeline.yaml; returns {file stem: png} of the figures written (the
    README links them)."""
    figures: dict[str, Path] = {}
    for spec in specs.values():
        figures |= FIGURE_KINDS[spec.kind](spec, data, written)
    return figures
