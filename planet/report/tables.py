"""Tables: Table 1 (paper Table 1) as CSV, Markdown and LaTeX, and the "episodes needed" table.

* A run cell reads ``mean ± std (seeds)``, e.g. ``812 ± 31 (5)`` (statistics in planet/report/stats.py); one seed:
  no std; none: "—" ("--" in LaTeX).
* table1.csv is the numeric form: columns ``{task}``, ``{task}_std``, ``{task}_seeds``; missing values are empty.
  ``episodes``/``env_steps`` of a run row are the largest numbers of collected training episodes / env steps over
  its runs (the md shows a range when runs differ); of a reference row, the published budget (episodes =
  budget_env_steps / 1000).
* Rows: the runs made here in the report's order (params/pipeline.yaml's, planet/report/grid.py), then the published
  reference rows (kind = reference), in groups (column ``group`` of the CSV): the agent, then a group per paper
  figure of ablations (e.g. "Latent overshooting (paper Fig. 8)"), the baselines trained here, and "Published
  (reference)". Markdown opens each group with a row of its label in bold; LaTeX with a ``\\midrule`` (the header's
  for the first) and a ``\\multicolumn`` row of its label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from planet.report.grid import OTHERS_GROUP, VariantInfo
from planet.report.published import table_reference_rows
from planet.report.runs import Run, as_int, finite

MISSING = "—"
REFERENCE_GROUP = "Published (reference)"  # Table 1's group of the published rows
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "—": "--", "–": "--"}


def fmt_num(value: Any) -> str:
    """A score rounded to an integer, or "—"."""
    value = finite(value)
    return MISSING if value is None else f"{value:.0f}"


def fmt_cell(stats: Mapping[str, Any] | None, tex: bool = False) -> str:
    """A run cell: "mean ± std (seeds)"; missing: "—" ("--" in LaTeX)."""
    if not stats or not stats.get("seeds"):
        return "--" if tex else MISSING
    pm = r" $\pm$ " if tex else " ± "
    std = "" if stats.get("std") is None else f"{pm}{stats['std']:.0f}"
    return f"{stats['mean']:.0f}{std} ({stats['seeds']})"


def _fmt_count(lo: int | None, hi: int | None, tex: bool = False) -> str:
    if hi is None:
        return "--" if tex else MISSING
    return f"{hi:,}" if lo == hi else f"{lo:,}{'--' if tex else '–'}{hi:,}"


def tex_escape(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


def _run_sources(runs: Sequence[Run], variant: str) -> str:
    presets = sorted({r.preset for r in runs if r.variant == variant and r.preset})
    return f"this pipeline, preset {', '.join(presets) or 'unknown'}"


def _run_row(runs: Sequence[Run], name: str, info: VariantInfo, stats: Mapping[str, Mapping[str, Any]],
             tasks: Sequence[str]) -> tuple[dict[str, Any], str]:
    """One run row of the numeric table and the md text of its episodes column."""
    mine = [r for r in runs if r.variant == name and r.final is not None]
    episodes = [r.episodes for r in mine if r.episodes is not None]
    steps = [r.env_steps for r in mine if r.env_steps is not None]
    row: dict[str, Any] = {"method": info.label, "variant": name, "kind": "baseline" if info.baseline else "run",
                           "group": info.group or OTHERS_GROUP, "source": _run_sources(runs, name),
                           "episodes": max(episodes, default=None), "env_steps": max(steps, default=None)}
    for task in tasks:
        cell = stats.get(name, {}).get(task)
        row[task] = cell["mean"] if cell else None
        row[f"{task}_std"] = cell["std"] if cell else None
        row[f"{task}_seeds"] = cell["seeds"] if cell else None
    return row, _fmt_count(min(episodes, default=None), max(episodes, default=None))


def _reference_row(ref: pd.Series, tasks: Sequence[str]) -> dict[str, Any]:
    budget = as_int(ref["budget_env_steps"])
    row = {"method": ref["method"], "variant": None, "kind": "reference", "group": REFERENCE_GROUP,
           "source": ref["source"],
           "episodes": None if budget is None else budget // 1000, "env_steps": budget}
    for task in tasks:
        row[task] = finite(ref.get(task))
        row[f"{task}_std"], row[f"{task}_seeds"] = None, None
    return row


def build_table(runs: Sequence[Run], infos: Mapping[str, VariantInfo], stats: Mapping[str, Mapping[str, Any]],
                tasks: Sequence[str], published: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """Numeric Table 1 (runs in the order of `infos`, then reference rows) and, per run row, the md text of its
    episodes column."""
    rows, episode_text = [], {}
    for name, info in infos.items():
        row, episode_text[name] = _run_row(runs, name, info, stats, tasks)
        rows.append(row)
    rows += [_reference_row(ref, tasks) for _, ref in table_reference_rows(published).iterrows()]
    columns = ["method", "variant", "kind", "group", "source", "episodes", "env_steps"]
    columns += [c for t in tasks for c in (t, f"{t}_std", f"{t}_seeds")]
    table = pd.DataFrame(rows, columns=columns)
    for col in ["episodes", "env_steps", *(f"{t}_seeds" for t in tasks)]:
        table[col] = table[col].astype("Int64")
    return table, episode_text


def display_table(table: pd.DataFrame, tasks: Sequence[str], episode_text: Mapping[str, str],
                  tex: bool = False) -> pd.DataFrame:
    """Formatted Table 1 for md (tex=False) or LaTeX (tex=True): cells "mean ± std (seeds)", "—" when missing."""
    rows = []
    for _, row in table.iterrows():
        ours = row["kind"] != "reference"
        episodes = (episode_text.get(row["variant"], MISSING) if ours
                    else _fmt_count(as_int(row["episodes"]), as_int(row["episodes"])))
        if tex:
            episodes = episodes.replace("–", "--").replace(MISSING, "--")
        esc = tex_escape if tex else str
        out = {"method": esc(row["method"]), "kind": row["kind"], "episodes": episodes}
        for task in tasks:
            if ours:
                cell = None if pd.isna(row[task]) else {"mean": row[task], "seeds": int(row[f"{task}_seeds"]),
                                                        "std": None if pd.isna(row[f"{task}_std"])
                                                        else row[f"{task}_std"]}
                out[task] = fmt_cell(cell, tex)
            else:
                out[task] = fmt_num(row[task]).replace(MISSING, "--" if tex else MISSING)
        out["source"] = esc(row["source"])
        rows.append(out)
    return pd.DataFrame(rows, columns=["method", "kind", "episodes", *tasks, "source"])


def _group_starts(groups: Sequence[str]) -> dict[int, str]:
    """{row index: group} of each row that opens a group (the first row, and each row whose group changes)."""
    return {i: g for i, g in enumerate(groups) if i == 0 or g != groups[i - 1]}


def table_markdown(display: pd.DataFrame, groups: Sequence[str]) -> str:
    """Markdown with a row of each group's label in bold before its rows (groups: the group of each row), except
    where the group's first row already reads as its label (the agent itself: "PlaNet (RSSM)")."""
    starts, rows = _group_starts(groups), []
    for i, row in enumerate(display.to_dict("records")):
        if i in starts and starts[i] != row["method"]:  # a group named by its own first row needs no label row
            rows.append({c: "" for c in display.columns} | {"method": f"**{starts[i]}**"})
        rows.append(row)
    return pd.DataFrame(rows, columns=display.columns).to_markdown(index=False, disable_numparse=True)


def table_latex(display: pd.DataFrame, groups: Sequence[str]) -> str:
    """LaTeX (booktabs): each group opens with a \\midrule (the header's for the first) and a \\multicolumn row of
    its label in bold (groups: the group of each row)."""
    frame = display.copy()
    frame.columns = [tex_escape(c) for c in frame.columns]  # cells are escaped by display_table(tex=True)
    text = frame.to_latex(index=False, escape=False, column_format="lll" + "r" * (len(frame.columns) - 4) + "l")
    lines = text.splitlines()
    if not len(display):
        return text
    first = lines.index(r"\midrule") + 1  # one line per row from here (cells hold no line breaks)
    starts, body = _group_starts(groups), []
    for i, line in enumerate(lines[first:first + len(display)]):
        if i in starts:
            body += [r"\midrule"] if i else []
            if tex_escape(starts[i]) != display.iloc[i]["method"]:  # a group named by its own first row: no label
                body.append(rf"\multicolumn{{{len(frame.columns)}}}{{l}}{{\textbf{{{tex_escape(starts[i])}}}}} \\")
        body.append(line)
    lines[first:first + len(display)] = body
    return "\n".join(lines) + "\n"


def write_table1(out: Path, runs: Sequence[Run], infos: Mapping[str, VariantInfo],
                 stats: Mapping[str, Mapping[str, Any]], tasks: Sequence[str],
                 published: pd.DataFrame) -> tuple[pd.DataFrame, str, list[Path]]:
    """OUT/table1.csv, table1.md and table1.tex; returns the numeric table, its Markdown and the files."""
    table, episode_text = build_table(runs, infos, stats, tasks, published)
    groups = list(table["group"])
    (out / "table1.csv").write_text(table.to_csv(index=False), encoding="utf-8")
    table_md = table_markdown(display_table(table, tasks, episode_text), groups)
    (out / "table1.md").write_text(table_md + "\n", encoding="utf-8")
    (out / "table1.tex").write_text(table_latex(display_table(table, tasks, episode_text, tex=True), groups),
                                    encoding="utf-8")
    return table, table_md, [out / "table1.csv", out / "table1.md", out / "table1.tex"]


def episodes_needed_markdown(needed: pd.DataFrame) -> str:
    """One line per (task, target): episodes each variant needed, or 'not reached (best B)'."""
    if needed.empty:
        return ""
    labels = list(dict.fromkeys(needed["label"]))
    lines = []
    for (task, target), group in needed.groupby(["task", "target"], sort=False):
        first = group.iloc[0]
        row = {"task": task, "target": f"{target}: {first['target_return']:.0f} after "
                                       f"{first['target_episodes']:,.0f} episodes"}
        for _, r in group.iterrows():
            row[r["label"]] = (f"not reached (best {r['best']:.0f})" if finite(r["episodes"]) is None
                               else f"{r['episodes']:,.0f} ({r['ratio']:,.0f}x fewer)" if r["ratio"] >= 1
                               else f"{r['episodes']:,.0f} ({1 / r['ratio']:,.1f}x more)")
        lines.append(row)
    frame = pd.DataFrame(lines, columns=["task", "target", *labels]).fillna(MISSING)
    return frame.to_markdown(index=False, disable_numparse=True)
