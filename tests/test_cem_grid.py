"""The CEM hyperparameter grid with the true simulator (paper Fig. 12, planet/cem_grid.py): which jobs each pipeline
preset runs, its validation, the figure's numbers from a synthetic results directory, and one real grid point on
cheetah run through `planet baseline simulator` (seconds)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from planet import baselines, cem_grid, cli, report
from planet.cem_grid import CemGrid, Point
from planet.config import SOURCE_PARAMS, ConfigError

PIPELINE = yaml.safe_load((SOURCE_PARAMS / "pipeline.yaml").read_text())


def test_each_preset_runs_the_default_and_one_variation_per_value():
    """One job per distinct planner: the default planner (the agent preset's) and each listed value, one size
    varied at a time; K follows the top-K fraction, and on the candidates axis the default fraction."""
    smoke = cem_grid.preset_grid(PIPELINE, "smoke")  # debug planner: H=3, I=2, J=16, K=4 (fraction 0.25)
    assert (smoke.task, smoke.seed, smoke.episodes, smoke.episode_env_steps) == ("cheetah_run", 0, 1, 160)
    assert [p.name for p in smoke.points()] == ["H3-I2-J16-K4", "H3-I2-J16-K8", "H2-I2-J16-K4", "H3-I2-J8-K2",
                                                "H3-I1-J16-K4"]
    assert smoke.axis_points("top_k_fraction") == [(0.25, Point(3, 2, 16, 4)), (0.5, Point(3, 2, 16, 8))]
    assert smoke.axis_points("candidates") == [(8, Point(3, 2, 8, 2)), (16, Point(3, 2, 16, 4))]
    assert smoke.control_steps() == 160 * (16 * 2 * 3 + 16 * 2 * 3 + 16 * 2 * 2 + 8 * 2 * 3 + 16 * 1 * 3)

    paper = cem_grid.preset_grid(PIPELINE, "paper")
    assert paper.default == Point(12, 10, 1000, 100) and paper.task == "cheetah_run"
    names = [p.name for p in paper.points()]
    assert len(names) == len(set(names)) == 15  # 4 + 5 + 4 + 5 values, the default (listed on each axis) once
    assert {p.name for _, p in paper.axis_points("top_k_fraction")} == {
        "H12-I10-J1000-K10", "H12-I10-J1000-K30", "H12-I10-J1000-K100", "H12-I10-J1000-K300"}
    assert {p.name for _, p in paper.axis_points("candidates")} == {
        "H12-I10-J100-K10", "H12-I10-J300-K30", "H12-I10-J1000-K100", "H12-I10-J3000-K300"}
    cpu = cem_grid.preset_grid(PIPELINE, "cpu")  # cpu planner: H=12, I=5, J=300, K=30; 9 jobs
    assert cpu.default == Point(12, 5, 300, 30) and len(cpu.points()) == 9
    assert cem_grid.preset_grid(PIPELINE, "cpu100k") is None  # the 100k campaign runs PlaNet only
    # the report rule's grid carries it (and the JSON round trip keeps it)
    assert CemGrid.from_json(json.loads(json.dumps(paper.to_json()))) == paper
    assert report.grid_from_pipeline("smoke")["cem_grid"] == smoke.to_json()


@pytest.mark.parametrize(("edit", "message"), [
    ({"horizon": [0]}, r"smoke\.cem_grid\.horizon: 0 is not an integer >= 1"),
    ({"iterations": [2.5]}, r"iterations: 2\.5 is not an integer >= 1"),
    ({"top_k_fraction": [1.5]}, r"top_k_fraction: 1\.5 is not a fraction in \(0, 1\]"),
    ({"top_k_fraction": [0.01]}, r"top_k_fraction: 0\.01 gives K = 0 of J = 16 candidates \(K must be in 1\.\.J"),
    ({"candidates": [1]}, r"candidates: 1 gives K = 0 of J = 1"),  # K = round(0.25 x 1) = 0
    ({"horizon": [2, 2]}, r"horizon: values repeat in \[2, 2\]"),
    ({"horizon": 4}, r"horizon: expected a list of values, got 4"),
    ({"task": "cheetah_walk"}, r"task: 'cheetah_walk' is not a task; valid tasks: cartpole_swingup"),
    ({"episodes": 0}, r"episodes: 0 is not an integer >= 1"),
    ({"horizons": [4]}, r"unknown key 'horizons'; valid keys: task, seed, episodes, top_k_fraction"),
    ({"top_k_fraction": None, "horizon": None, "candidates": None, "iterations": None}, r"no values to vary"),
])
def test_a_bad_grid_is_refused_in_one_line(edit, message):
    pipeline = yaml.safe_load((SOURCE_PARAMS / "pipeline.yaml").read_text())
    pipeline["presets"]["smoke"]["cem_grid"].update(edit)
    with pytest.raises(ConfigError, match=message) as info:
        cem_grid.preset_grid(pipeline, "smoke", source="params/pipeline.yaml")
    assert "\n" not in str(info.value) and str(info.value).startswith("params/pipeline.yaml: presets.smoke.cem_grid")


def test_simulator_planner_sizes_override_the_agent_preset():
    """`planet baseline simulator simulator.horizon=...`: the sizes replace the agent preset's planner; a run
    without them records the same config as before they existed (finished runs keep their identity)."""
    agent, plain = baselines.resolve("cheetah_run", "debug", 0)
    assert baselines.simulator_planner(agent, plain.simulator) == {"horizon": 3, "iterations": 2, "candidates": 16,
                                                                   "top_k": 4}
    record = baselines._run_config("simulator", agent, plain)
    assert record["simulator"] == {"workers": 1, "episodes": None} and record["planner"]["horizon"] == 3
    _, grid = baselines.resolve("cheetah_run", "debug", 0, Point(2, 1, 8, 2).overrides())
    assert baselines.simulator_planner(agent, grid.simulator) == {"horizon": 2, "iterations": 1, "candidates": 8,
                                                                  "top_k": 2}
    with pytest.raises(ConfigError, match=r"top_k=20 must be <= candidates=16"):
        baselines.resolve("cheetah_run", "debug", 0, ["simulator.top_k=20"])
    with pytest.raises(ConfigError, match=r"simulator\.horizon must be >= 1"):
        baselines.resolve("cheetah_run", "debug", 0, ["simulator.horizon=0"])


def _write_point(results: Path, grid: CemGrid, point: Point, returns: list[float], finished: bool = True) -> None:
    """A grid point's run directory as `planet baseline simulator` leaves it (the files the report reads)."""
    run = cem_grid.point_dir(results, grid, point)
    run.mkdir(parents=True)
    mean = sum(returns) / len(returns)
    std = math.sqrt(sum((r - mean) ** 2 for r in returns) / len(returns))
    (run / "evaluation.json").write_text(json.dumps({
        "task": grid.task, "seed": grid.seed, "baseline": "simulator", "split": "test", "episodes": len(returns),
        "returns": returns, "return_mean": mean, "return_std": std, "complete": True, "seconds_per_episode": 2.0,
        "planner": point.sizes()}))
    if finished:
        (run / "summary.json").write_text(json.dumps({"baseline": "simulator"}))


def test_figure_numbers_from_a_synthetic_results_dir(tmp_path):
    grid = CemGrid("cheetah_run", 0, 2, 160, Point(3, 2, 16, 4),
                   {"top_k_fraction": (0.5,), "horizon": (2, 6), "iterations": (1,)})
    results = tmp_path / "results"
    _write_point(results, grid, grid.default, [100.0, 300.0])  # 200 ± 100
    _write_point(results, grid, Point(3, 2, 16, 8), [50.0, 50.0])
    _write_point(results, grid, Point(2, 2, 16, 4), [400.0, 500.0])
    _write_point(results, grid, Point(6, 2, 16, 4), [999.0, 999.0], finished=False)  # still running: not counted
    # iterations 1 (H3-I1-J16-K4) has no run at all
    frame = cem_grid.results_frame(results, grid)
    assert list(frame["axis"]) == ["top_k_fraction"] * 2 + ["horizon"] * 3 + ["iterations"] * 2  # no candidates
    got = {(r.axis, r.value): (r.point, r.default, r.episodes, r.return_mean, r.return_std) for r in frame.itertuples()}
    assert got[("top_k_fraction", 0.25)] == ("H3-I2-J16-K4", True, 2, 200.0, 100.0)
    assert got[("top_k_fraction", 0.5)] == ("H3-I2-J16-K8", False, 2, 50.0, 0.0)
    assert got[("horizon", 2)] == ("H2-I2-J16-K4", False, 2, 450.0, 50.0)
    assert got[("horizon", 3)][:4] == ("H3-I2-J16-K4", True, 2, 200.0)
    assert got[("horizon", 6)][2] == 0 and math.isnan(got[("horizon", 6)][3])
    assert got[("iterations", 1)][2] == 0
    assert cem_grid.missing_points(frame) == ["H6-I2-J16-K4", "H3-I1-J16-K4"]

    out = tmp_path / "report"
    # this figure only (the others take seconds each), as params/pipeline.yaml describes it
    figures = {"cem_grid": report.FigureSpec("cem_grid", "CEM hyperparameters with the true simulator", "cem_grid",
                                             kind="cem_grid", paper="Fig. 12")}
    result = report.build_report(results, out, cem_grid=grid.to_json(), title="Synthetic", figures=figures)
    figure = out / "figures" / "cem_grid.png"
    assert figure.stat().st_size > 1000 and str(figure) in result["files"]
    assert (out / "figures" / "cem_grid.pdf").stat().st_size > 1000
    pd.testing.assert_frame_equal(pd.read_csv(out / "cem_grid.csv"), frame, check_dtype=False)
    text = (out / "README.md").read_text()
    assert "## CEM hyperparameters with the true simulator (paper Fig. 12)" in text
    assert "](figures/cem_grid.png)" in text
    assert ("On cheetah_run, the default planner (H3-I2-J16-K4) scores 200 ± 100 (2) over the test episodes (the "
            "paper's Table 1, CEM + true simulator: ") in text
    assert "horizon H 2 (450)" in text and "top-K fraction K/J 0.25 (200, the default)" in text
    assert "Not finished: H6-I2-J16-K4, H3-I1-J16-K4." in text
    assert "| horizon H | 3 (default) | H3-I2-J16-K4 | 200 ± 100 (2) |" in re.sub(" +", " ", text)
    # a report without a CEM grid draws no such figure and says why
    plain = report.build_report(results, tmp_path / "plain", title="Plain", figures=figures)
    assert not (tmp_path / "plain" / "figures" / "cem_grid.png").exists() and plain["runs"] == 0
    assert "This preset has no CEM grid" in (tmp_path / "plain" / "README.md").read_text()


@pytest.mark.slow
def test_one_grid_point_runs_on_cheetah(tmp_path, isolated_mlflow, capsys):
    """The smoke grid's horizon point through the command line the rule runs: the run plans with the point's sizes,
    its result is what the figure reads, and its MLflow run is named by them."""
    grid = cem_grid.preset_grid(PIPELINE, "smoke")
    point = Point(2, 2, 16, 4)
    run = cem_grid.point_dir(tmp_path / "results", grid, point)
    argv = ["baseline", "simulator", "--task", "cheetah_run", "--preset", "debug", "--seed", "0", "--device", "cpu",
            "--out", str(run), "--experiment", "planet-test", "--tag", "variant=cem_grid", "--tag",
            "family=cem_grid", "--no-progress", *point.overrides(), "simulator.episodes=1", "simulator.workers=1"]
    assert cli.main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert evaluation["planner"] == point.sizes() and evaluation["episodes"] == 1
    assert yaml.safe_load((run / "config.yaml").read_text())["planner"]["horizon"] == 2
    assert summary["final_eval"]["eval/return_mean"] == evaluation["return_mean"]
    row = cem_grid.results_frame(tmp_path / "results", grid).query("axis == 'horizon' and value == 2").iloc[0]
    assert row["episodes"] == 1 and row["return_mean"] == evaluation["return_mean"]

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=isolated_mlflow)
    (mlflow_run,) = client.search_runs([client.get_experiment_by_name("planet-test").experiment_id])
    assert mlflow_run.info.run_name == "cem_grid-cheetah_run-seed0-H2-I2-J16-K4"
    assert mlflow_run.data.tags["family"] == "cem_grid" and "test/return_mean" in mlflow_run.data.metrics
