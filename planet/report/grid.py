"""What the report takes from the pipeline grid (params/pipeline.yaml): variants, their labels, their order and
groups in Table 1, and which variant appears in which figure.

The report's order of variants is the order of ``variants:`` (the paper's), then the baselines trained here in the
order of ``baselines:`` (`table_layout`; nothing else lists the variants). Table 1 groups its rows (`variant_group`):
the agent itself (family ``agents``, not multitask) alone under its label; every other variant under the heading of
the first ``task_grid`` figure (in the order of ``figures:``) that lists it, e.g. "Latent overshooting (paper Fig.
8)"; the baselines under "Baselines trained here". A group's rows stay together (a variant placed apart from its
group in ``variants:`` joins it). The report rule (workflow/rules/report.smk) and `grid_from_pipeline` pass the
result as the grid's ``variant_order`` and ``variant_groups`` (its ``variants`` mapping loses its order in the
rule's sorted JSON); a report built without them takes both from params/pipeline.yaml (`load_pipeline`).

A figure is described once, under the grid's top-level ``figures:`` (id -> title, the paper figure it reproduces,
output file stem, kind, and the variants it draws, ``variants:``), so a new figure, or a variant joining one, is an
edit of that figure alone. Within a figure, variants keep the report's order (the order of the grid's
``variants:``); ``baselines: true`` adds the baselines trained here, and the figure then follows the report's order
(Table 1's). The kinds, and what draws each, are the report's figure registry (planet/report/figures.py
``FIGURE_KINDS``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from planet.cem_grid import preset_grid
from planet.config import ConfigError

BASELINES_GROUP = "Baselines trained here"  # Table 1's group of the baselines trained here
OTHERS_GROUP = "Other runs here"  # ... of a variant in no task_grid figure, or unknown to the grid


@dataclass
class VariantInfo:
    """A variant of the report: name, legend label, whether it is a baseline trained here, its group in Table 1."""

    name: str
    label: str
    baseline: bool = False
    group: str = ""


@dataclass(frozen=True)
class FigureSpec:
    """One figure of the report, as params/pipeline.yaml describes it (see the module docstring)."""

    id: str
    title: str
    file: str  # output file stem under OUT/figures/
    kind: str = "task_grid"
    paper: str | None = None  # the paper figure it reproduces, e.g. "Fig. 8"
    baselines: bool = False  # also draw the baselines trained here
    claim: str | None = None  # the paper's finding, quoted beside the figure in the README
    note: str | None = None  # what the variants differ in, where the title does not say
    variants: tuple[str, ...] = ()  # the variants it draws, in the order of params/pipeline.yaml's `variants:`

    @property
    def heading(self) -> str:
        """The title with the paper figure, e.g. "Latent overshooting (paper Fig. 8)"."""
        return f"{self.title} (paper {self.paper})" if self.paper else self.title

    def members(self, infos: Mapping[str, VariantInfo]) -> list[str]:
        """The report's variants drawn in this figure: in the order of params/pipeline.yaml, or, where the baselines
        trained here join (`baselines`), in the report's order (Table 1's), baselines included."""
        if self.baselines:
            return [v for v in infos if v in self.variants or infos[v].baseline]
        return [v for v in self.variants if v in infos]

    def to_json(self) -> dict[str, Any]:
        """The resolved figure as the report rule passes it (a list entry of the grid's `figures`)."""
        return {**dataclasses.asdict(self), "variants": list(self.variants)}

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> FigureSpec:
        return cls(**{**entry, "variants": tuple(entry.get("variants", ()))})


def _check_figures(described: Mapping[str, Any], variants: Mapping[str, Any], source: str) -> None:
    """One-line ConfigErrors: a figure naming an unknown variant, an unknown kind, two figures on one file."""
    from planet.report.figures import FIGURE_KINDS  # the registry (it imports this module)

    files: dict[str, str] = {}
    for fid, entry in described.items():
        for name in entry.get("variants") or ():
            if name not in variants:
                raise ConfigError(f"{source}: figure '{fid}' names unknown variant '{name}'; valid variants: "
                                  f"{', '.join(variants) or 'none (no variants: section)'}")
        if entry.get("kind", "task_grid") not in FIGURE_KINDS:
            raise ConfigError(f"{source}: figure '{fid}' has unknown kind '{entry['kind']}'; valid kinds "
                              f"(planet/report/figures.py): {', '.join(FIGURE_KINDS)}")
        if entry["file"] in files:
            raise ConfigError(f"{source}: figures '{files[entry['file']]}' and '{fid}' both write '{entry['file']}'")
        files[entry["file"]] = fid


def figure_specs(grid: Mapping[str, Any], source: str = "config") -> dict[str, FigureSpec]:
    """The figures of a grid ({"figures": {id: {..., "variants": [name, ...]}}, "variants": {name: {...}}}), in the
    order of ``figures:``, each with its variants in the order of ``variants:``. Raises ConfigError (one line;
    `source` names the grid) on an unknown variant or kind, or two figures writing the same file."""
    described, variants = dict(grid.get("figures") or {}), dict(grid.get("variants") or {})
    _check_figures(described, variants, source)
    return {fid: FigureSpec(id=fid, title=entry["title"], file=entry["file"], kind=entry.get("kind", "task_grid"),
                            paper=entry.get("paper"), baselines=bool(entry.get("baselines", False)),
                            claim=entry.get("claim"), note=entry.get("note"),
                            variants=tuple(v for v in variants if v in (entry.get("variants") or ())))
            for fid, entry in described.items()}


def grid_figures(grid: Mapping[str, Any]) -> dict[str, FigureSpec]:
    """The figures of a report grid: its resolved list (`FigureSpec.to_json`, which keeps the order of
    params/pipeline.yaml through the rule's sorted JSON), else those of params/pipeline.yaml. A comparison figure
    (kind `task_grid`: the ablations, the multi-task agent) of which the grid runs fewer than two variants is left
    out: it would compare nothing (e.g. the cpu100k preset runs PlaNet alone)."""
    specs = (pipeline_figures() if not grid.get("figures")
             else {entry["id"]: FigureSpec.from_json(entry) for entry in grid["figures"]})
    present = set(grid.get("variants") or {})
    if not present:
        return specs
    return {fid: spec for fid, spec in specs.items()
            if spec.kind != "task_grid" or len(present & set(spec.variants)) >= 2}


def pipeline_file() -> Path:
    """params/pipeline.yaml of the params directory every command reads (planet.config.params_dir)."""
    from planet.config import params_dir

    return params_dir() / "pipeline.yaml"


def load_pipeline() -> dict[str, Any]:
    return yaml.safe_load(pipeline_file().read_text(encoding="utf-8"))


def pipeline_figures() -> dict[str, FigureSpec]:
    """The figures of params/pipeline.yaml with every variant it defines (a report built without a grid)."""
    return figure_specs(load_pipeline(), source=str(pipeline_file()))


def grid_from_pipeline(preset: str) -> dict:
    """The grid the report rule passes (workflow/rules/report.smk), read from params/pipeline.yaml."""
    path = pipeline_file()
    pipeline = load_pipeline()
    if preset not in pipeline["presets"]:
        raise ConfigError(f"{path}: no pipeline preset '{preset}'; valid: {', '.join(pipeline['presets'])}")
    P = pipeline["presets"][preset]
    tasks, seeds = list(P["tasks"]), [int(s) for s in P["seeds"]]
    ablation_tasks = list(P.get("ablation_tasks", tasks))
    variants = {v: pipeline["variants"][v] for v in P["variants"]}
    baselines = {b: {**pipeline["baselines"][b], "family": "baselines"} for b in P.get("baselines", [])}
    multitask_tasks = list(P.get("multitask_tasks", tasks))  # one agent trained on them all (Figs. 6, 7)
    expected = {v: {"tasks": multitask_tasks if variants[v].get("multitask")
                    else tasks if variants[v]["family"] == "agents" else ablation_tasks, "seeds": seeds}
                for v in variants}
    expected |= {b: {"tasks": list(P.get("baseline_tasks", tasks)),
                     "seeds": [int(s) for s in P.get("baseline_seeds", {}).get(b, seeds)]} for b in baselines}
    cem_grid = preset_grid(pipeline, preset, source=str(path))
    return {"preset": preset, "agent_preset": P["agent_preset"], "tasks": tasks, "seeds": seeds,
            "variants": variants | baselines, "expected": expected,
            **table_layout(pipeline, [*variants, *baselines], source=str(path)),
            "figures": [spec.to_json() for spec in figure_specs(pipeline, source=str(path)).values()],
            "cem_grid": cem_grid.to_json() if cem_grid else None}


def pipeline_entries(pipeline: Mapping[str, Any]) -> dict[str, Any]:
    """Every variant and baseline a pipeline grid defines, in the report's order (``variants:``, then
    ``baselines:``), baselines marked with family "baselines" (as the report rule passes them)."""
    baselines = {b: {**entry, "family": "baselines"} for b, entry in (pipeline.get("baselines") or {}).items()}
    return {**dict(pipeline.get("variants") or {}), **baselines}


def variant_group(name: str, entry: Any, specs: Mapping[str, FigureSpec]) -> str:
    """A variant's group in Table 1 (see the module docstring); entry: its grid entry (label, family, multitask)."""
    if isinstance(entry, Mapping) and entry.get("family") == "baselines":
        return BASELINES_GROUP
    if isinstance(entry, Mapping) and entry.get("family") == "agents" and not entry.get("multitask"):
        return str(entry.get("label") or name)
    return next((spec.heading for spec in specs.values() if spec.kind == "task_grid" and name in spec.variants),
                OTHERS_GROUP)


def _grouped(order: Iterable[str], groups: Mapping[str, str]) -> list[str]:
    """`order`, each group's names moved up beside the first of its group (a stable sort by group)."""
    order = list(order)
    first: dict[str, int] = {}
    for i, name in enumerate(order):
        first.setdefault(groups[name], i)
    return sorted(order, key=lambda name: first[groups[name]])


def table_layout(pipeline: Mapping[str, Any], names: Iterable[str], source: str = "config") -> dict[str, Any]:
    """Table 1's rows of the grid's variants and baselines `names`, from the pipeline grid (params/pipeline.yaml):
    {"variant_order": [name, ...], "variant_groups": {name: group}}, what the report rule and `grid_from_pipeline`
    pass. The order of ``variants:``, then of ``baselines:``, then names the grid does not define (sorted); a group's
    rows together, the groups in the order of their first row."""
    entries, specs = pipeline_entries(pipeline), figure_specs(pipeline, source)
    wanted = set(names)
    order = [n for n in entries if n in wanted] + sorted(wanted - set(entries))
    groups = {n: variant_group(n, entries.get(n), specs) for n in order}
    return {"variant_order": _grouped(order, groups), "variant_groups": groups}


def _label(name: str, value: Any, known: Any) -> str:
    """A variant's label: the caller's (a label, or a dict's "label"), else the pipeline's, else its name."""
    given = value.get("label") if isinstance(value, Mapping) else value
    fallback = known.get("label") if isinstance(known, Mapping) else None
    return str(given or fallback or name)


def variant_infos(variants: Mapping[str, Any] | None, found: Iterable[str], expected: Mapping[str, Any] | None,
                  order: Sequence[str] | None = None, groups: Mapping[str, str] | None = None,
                  ) -> dict[str, VariantInfo]:
    """The report's variants (the caller's, those found in the results, those expected), in Table 1's order.

    variants: {name: label or {"label", "family", ...}} (family "baselines" marks a baseline trained here); order,
    groups: the grid's ``variant_order`` and ``variant_groups`` (`table_layout`). Whatever the caller leaves out
    (the order, a name's group, label or family) comes from params/pipeline.yaml (`load_pipeline`), read only then.
    Names of no order come after those of one (sorted); a group's rows stay together.
    """
    given = dict(variants or {})
    names = [*given, *sorted((set(found) | set(expected or {})) - set(given))]
    complete = (order is not None and groups is not None and all(n in groups for n in names)
                and all(isinstance(given.get(n), Mapping) and given[n].get("label") for n in names))
    pipeline = {} if complete else load_pipeline()
    known = pipeline_entries(pipeline)
    entries = {n: {**(known.get(n) or {}), **(given[n] if isinstance(given.get(n), Mapping) else {})}
               for n in names}
    if order is None:
        order = table_layout(pipeline, names, source=str(pipeline_file()))["variant_order"]
    specs = figure_specs(pipeline, source=str(pipeline_file())) if pipeline else {}
    groups = {n: (groups or {}).get(n) or variant_group(n, entries[n], specs) for n in names}
    ranked = [n for n in order if n in groups] + sorted(set(names) - set(order))
    return {n: VariantInfo(n, _label(n, given.get(n), known.get(n)), entries[n].get("family") == "baselines",
                           groups[n]) for n in _grouped(ranked, groups)}


def pipeline_order() -> list[str]:
    """Every variant and baseline of params/pipeline.yaml in the report's order (e.g. the colours' order)."""
    return list(pipeline_entries(load_pipeline()))
