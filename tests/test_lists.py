"""Every list of names has one source: tasks in planet/tasks.py, figure kinds in the report's figure registry
(planet/report/figures.py), variants and figure membership in params/pipeline.yaml (a figure names its variants),
the report's outputs in the Snakemake rules (DVC tracks their manifest). The schema and the other files check
against these sources or read them; nothing copies them."""

from __future__ import annotations

import csv
import inspect
import re
from pathlib import Path

import pytest
import yaml

from planet import tasks as task_table
from planet.config import ConfigError
from planet.report import published
from planet.report.figures import FIGURE_KINDS
from planet.report.grid import figure_specs

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
PIPELINE = yaml.safe_load((ROOT / "params/pipeline.yaml").read_text())


def _task_paths(node, path: tuple[str, ...] = ()) -> set[str]:
    """Dotted paths (below a preset) of the schema's fields typed `$defs/task` (or lists of them)."""
    if not isinstance(node, dict):
        return set()
    if node.get("$ref") == "#/$defs/task" or (node.get("items") or {}).get("$ref") == "#/$defs/task":
        return {".".join(path)}
    return set().union(*(_task_paths(sub, (*path, key)) for key, sub in (node.get("properties") or {}).items()))


def test_the_schema_names_no_task_and_every_task_field_is_checked():
    text = SCHEMA.read_text()
    copied = [t for t in task_table.TASKS if t in text]
    assert not copied, f"{SCHEMA.name} names tasks {copied}: type the field `$ref: '#/$defs/task'` instead"
    preset = yaml.safe_load(text)["properties"]["presets"]["additionalProperties"]
    assert _task_paths(preset) == set(task_table.PRESET_TASK_FIELDS), (
        "a task field of the schema is missing from planet/tasks.py PRESET_TASK_FIELDS (or the reverse)")


@pytest.mark.parametrize("field", task_table.PRESET_TASK_FIELDS)
def test_a_misspelt_task_fails_in_one_line_naming_its_field(field):
    preset: dict = {"tasks": ["cartpole_swingup"]}
    *parents, last = field.split(".")
    node = preset
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = "walker_run" if field == "cem_grid.task" else ["cartpole_swingup", "walker_run"]
    message = (f"config: presets.smoke.{field}: 'walker_run' is not a task; valid tasks (planet/tasks.py): "
               "cartpole_swingup, reacher_easy, cheetah_run, finger_spin, cup_catch, walker_walk")
    with pytest.raises(ValueError) as info:
        task_table.check_preset_tasks(preset, "config: presets.smoke")
    assert str(info.value) == message


def test_every_preset_of_the_grid_names_known_tasks():
    for name, preset in PIPELINE["presets"].items():
        task_table.check_preset_tasks(preset, f"config: presets.{name}")


def test_published_scores_are_keyed_by_the_task_table():
    assert published.TASKS == tuple(task_table.TASKS)
    with published.PUBLISHED_SCORES.open(newline="") as fh:
        header = next(csv.reader(fh))
    columns = header[header.index("source") + 1:header.index("note")]
    assert columns == list(task_table.TASKS), (
        f"planet/data/published_scores.csv: task columns {columns} differ from planet/tasks.py's; rename them")


def test_figure_kinds_come_from_the_registry():
    schema = yaml.safe_load(SCHEMA.read_text())
    kind = schema["properties"]["figures"]["additionalProperties"]["properties"]["kind"]
    assert "enum" not in kind, f"{SCHEMA.name}: figures' kind lists the kinds; planet/report/figures.py owns them"
    grid = {"variants": {"planet": {}}, "figures": {"f": {"title": "F", "file": "f", "kind": "heatmap"}}}
    with pytest.raises(ConfigError, match=r"^config: figure 'f' has unknown kind 'heatmap'; valid kinds "
                                          rf"\(planet/report/figures\.py\): {', '.join(FIGURE_KINDS)}$"):
        figure_specs(grid)
    for kind in FIGURE_KINDS:  # every registered kind is accepted
        grid["figures"]["f"]["kind"] = kind
        assert figure_specs(grid)["f"].kind == kind


def test_every_kind_of_figure_has_a_readme_section():
    from planet.report import readme

    sections = set(re.findall(r'of_kind\("(\w+)"\)', inspect.getsource(readme)))
    assert sections == set(FIGURE_KINDS), (
        f"planet/report/readme.py has sections for kinds {sorted(sections)}, the registry (planet/report/figures.py "
        f"FIGURE_KINDS) {sorted(FIGURE_KINDS)}: give each kind its section in `_figures`")


def test_a_figure_names_its_variants_drawn_in_the_order_of_the_variants():
    grid = {"variants": {"planet": {}, "gru": {}, "ssm": {}},
            "figures": {"new": {"title": "New", "file": "new", "variants": ["ssm", "planet"]}}}
    assert figure_specs(grid)["new"].variants == ("planet", "ssm")
    grid["figures"]["new"]["variants"].append("drnn")
    with pytest.raises(ConfigError, match=r"^config: figure 'new' names unknown variant 'drnn'; valid variants: "
                                          r"planet, gru, ssm$"):
        figure_specs(grid)
    assert not any("figures" in v for v in PIPELINE["variants"].values()), "a variant lists figures: move them"


def test_variants_are_listed_once():
    """The paper preset runs every variant, in the order of `variants:`; the smoke preset reuses that list."""
    presets = PIPELINE["presets"]
    assert presets["paper"]["variants"] == list(PIPELINE["variants"])
    assert presets["smoke"]["variants"] is presets["paper"]["variants"], (
        "params/pipeline.yaml: the smoke preset copies the paper's variants; write `variants: *all_variants`")


def test_dvc_names_none_of_the_reports_files():
    """The report's outputs are the report rule's (workflow/rules/report.smk); DVC's report stage tracks the
    manifest of them (its `report_all` target) and the metrics it reads, never a list of its own."""
    text = (ROOT / "dvc.yaml").read_text()
    stages = text[text.index("stages:"):text.index("\nplots:")]
    named = set(re.findall(r"reports/\$\{preset\}/[\w./]+", stages))
    assert named == {"reports/${preset}/metrics"}, f"dvc.yaml names report files {sorted(named)}; track the manifest"
    report = yaml.safe_load(text)["stages"]["report"]
    assert report["cmd"].split()[-1] == "report_all"
    assert [next(iter(o)) for o in report["outs"]] == ["results/${preset}/stages/report.json"]
