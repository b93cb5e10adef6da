"""planet.report (the package planet/report/) on synthetic run directories with known numbers (no training, no
rendering), and the figures it takes from params/pipeline.yaml."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from planet import config as config_lib
from planet import report
from planet.report import figures

EPISODE_STEPS = 160  # env steps per episode of the debug preset
EXPECTED = {"planet": {"tasks": ["cartpole_swingup", "reacher_easy", "cheetah_run"], "seeds": [0, 1, 2]},
            "gru": {"tasks": ["cartpole_swingup"], "seeds": [0]},
            "ssm": {"tasks": ["cartpole_swingup"], "seeds": [0]},
            "random_shooting": {"tasks": ["cartpole_swingup"], "seeds": [0, 1]}}
# Table 1's order (params/pipeline.yaml's `variants:`, the paper's) and groups
PAPER_ORDER = ["planet", "gru", "ssm", "random_collection", "random_shooting", "overshooting", "ssm_overshooting",
               "drnn", "drnn_overshooting", "elu", "ssm_elu", "multitask"]
MODELS, AGENTS = "Model designs (paper Fig. 4)", "Agent designs (paper Fig. 5)"
OVERSHOOTING, ACTIVATIONS = "Latent overshooting (paper Fig. 8)", "Activation functions (paper Fig. 9)"
PAPER_GROUPS = {"planet": "PlaNet (RSSM)", "gru": MODELS, "ssm": MODELS, "random_collection": AGENTS,
                "random_shooting": AGENTS, "overshooting": OVERSHOOTING, "ssm_overshooting": OVERSHOOTING,
                "drnn": OVERSHOOTING, "drnn_overshooting": OVERSHOOTING, "elu": ACTIVATIONS, "ssm_elu": ACTIVATIONS,
                "multitask": "One agent for all tasks (paper Figs. 6, 7)", "sac": "Baselines trained here",
                "sac_plain": "Baselines trained here", "simulator": "Baselines trained here"}
REFERENCES = ["A3C", "D4PG", "PlaNet", "CEM + true simulator", "PlaNet", "PlaNet"]  # the published rows, in order


def make_run(results: Path, variant: str, task: str, seed: int, final: float | None, *, curve=(2, 4),
             evaluation: str | None = "run", complete: bool = True, summary_final: float | None = None,
             eval_complete: bool = True, openloop: bool = True) -> Path:
    """A run directory as `planet train` + `planet evaluate` leave it; eval return at episode e is final * e / 4.

    evaluation: "run" (RUN/evaluation.json), "eval" (RESULTS/eval/VARIANT/TASK/seedN.json) or None.
    """
    run = results / "runs" / variant / task / f"seed{seed}"
    run.mkdir(parents=True)
    config_lib.save(config_lib.resolve(task, "debug", seed), run / "config.yaml")
    lines = []
    for episodes in range(1, max(curve) + 1):
        lines.append({"step": episodes * EPISODE_STEPS, "time": 0.0, "collect/return": 1.0, "episodes": episodes})
        if episodes in curve:
            mean = (final or 0.0) * episodes / max(curve)
            lines.append({"step": episodes * EPISODE_STEPS, "time": 0.0, "eval/return_mean": mean,
                          "eval/return_std": 5.0, "eval/episodes": 2.0, "episodes": float(episodes)})
    lines.append({"step": 640, "time": 0.0, "test/return_mean": 1.0})  # `planet evaluate` line: not a curve point
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    if complete:
        last = summary_final if summary_final is not None else final
        (run / "summary.json").write_text(json.dumps({
            "task": task, "seed": seed, "preset": "debug", "model": "rssm", "planner": "cem", "collect": "cem",
            "params_hash": "x", "episodes": max(curve), "env_steps": max(curve) * EPISODE_STEPS, "updates": 4,
            "final_eval": {"eval/return_mean": last, "eval/return_std": 5.0}}))
    if evaluation is not None and final is not None:
        where = results / "eval" / variant / task / f"seed{seed}.json"
        path = run / "evaluation.json" if evaluation == "run" else where
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({
            "task": task, "seed": seed, "model": "rssm", "planner": "cem", "collect": "cem", "split": "test",
            "episodes": 2, "returns": [final - 1, final + 1], "return_mean": final, "return_std": 1.0,
            "train_episodes": max(curve), "env_steps": max(curve) * EPISODE_STEPS, "complete": eval_complete}))
    if openloop:
        import imageio.v3 as iio

        strip = np.zeros((128, 10 * 64, 3), np.uint8)
        strip[:64] = 200  # truth row light, prediction row dark
        (run / "eval").mkdir()
        iio.imwrite(run / "eval" / "openloop.png", strip)
    return run


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One synthetic results tree and its report (built once: figures take seconds)."""
    root = tmp_path_factory.mktemp("report")
    results = root / "results"
    # planet: cartpole 3 seeds (100, 200, 300); reacher seed 2 missing; cheetah_run absent entirely.
    for seed, final in enumerate((100.0, 200.0, 300.0)):
        make_run(results, "planet", "cartpole_swingup", seed, final)
    make_run(results, "planet", "reacher_easy", 0, 400.0)
    make_run(results, "planet", "reacher_easy", 1, 600.0, evaluation="eval")
    # gru: the evaluation was made before the run completed, so the summary's final eval (50) counts, not 999.
    make_run(results, "gru", "cartpole_swingup", 0, 999.0, summary_final=50.0, eval_complete=False)
    # ssm: still training (no summary.json, no evaluation); a kill left a partial last metrics line.
    ssm = make_run(results, "ssm", "cartpole_swingup", 0, None, evaluation=None, complete=False, curve=(2,))
    with open(ssm / "metrics.jsonl", "a") as fh:
        fh.write('{"step": 480, "eval/ret')
    # random_shooting: evaluations where the pipeline writes them (RESULTS/eval/...).
    make_run(results, "random_shooting", "cartpole_swingup", 0, 150.0, evaluation="eval", openloop=False)
    make_run(results, "random_shooting", "cartpole_swingup", 1, 250.0, evaluation="eval", openloop=False)
    out = root / "reports"
    result = report.build_report(results, out, expected=EXPECTED, title="Synthetic")
    return results, out, result


def test_table1_numbers(built):
    _, out, _ = built
    table = pd.read_csv(out / "table1.csv")
    planet = table[table["variant"] == "planet"].iloc[0]
    assert planet["kind"] == "run" and planet["source"] == "this pipeline, preset debug"
    # Sample std over seeds (ddof=1): std(100, 200, 300) = 100 (population std would be 81.65).
    assert (planet["cartpole_swingup"], planet["cartpole_swingup_std"], planet["cartpole_swingup_seeds"]) == (
        200.0, 100.0, 3)
    assert planet["reacher_easy"] == 500.0 and planet["reacher_easy_seeds"] == 2
    assert planet["reacher_easy_std"] == pytest.approx(math.sqrt(2) * 100)
    assert pd.isna(planet["cheetah_run"]) and pd.isna(planet["cheetah_run_seeds"])  # absent task: missing
    assert planet["episodes"] == 4 and planet["env_steps"] == 4 * EPISODE_STEPS
    gru = table[table["variant"] == "gru"].iloc[0]
    assert gru["cartpole_swingup"] == 50.0 and gru["cartpole_swingup_seeds"] == 1
    assert pd.isna(gru["cartpole_swingup_std"])
    ssm = table[table["variant"] == "ssm"].iloc[0]  # a row, all missing: never dropped, never a crash
    assert all(pd.isna(ssm[t]) for t in report.TASKS)
    rs = table[table["variant"] == "random_shooting"].iloc[0]
    assert rs["cartpole_swingup"] == 200.0 and rs["cartpole_swingup_seeds"] == 2


def test_reference_rows_equal_published(built):
    _, out, _ = built
    table = pd.read_csv(out / "table1.csv")
    published = pd.read_csv(report.PUBLISHED_SCORES)
    refs = table[table["kind"] == "reference"]
    # the paper's Table 1, then PlaNet at 100k and 500k env steps (CURL, Table 1)
    assert list(refs["method"]) == ["A3C", "D4PG", "PlaNet", "CEM + true simulator", "PlaNet", "PlaNet"]
    assert list(refs["episodes"]) == [100_000, 100_000, 1_000, 0, 100, 500]
    assert list(refs["env_steps"]) == [100_000_000, 100_000_000, 1_000_000, 0, 100_000, 500_000]
    assert refs.index.min() > table[table["kind"] != "reference"].index.max()  # runs first, references after
    index = published.set_index(["method", "budget_env_steps", "source"])
    for _, row in refs.iterrows():
        for task in report.TASKS:
            assert row[task] == index.loc[(row["method"], row["env_steps"], row["source"]), task]
    by_budget = refs[refs["method"] == "PlaNet"].set_index("env_steps")["cartpole_swingup"]
    assert by_budget.to_dict() == {1_000_000: 821, 100_000: 297, 500_000: 475}


def test_table_md_and_tex(built):
    _, out, _ = built
    md = (out / "table1.md").read_text()
    assert "200 ± 100 (3)" in md and "500 ± 141 (2)" in md and "50 (1)" in md
    assert "—" in md and "**Published (reference)**" in md
    planet_line = next(line for line in md.splitlines() if line.startswith("| PlaNet (RSSM)"))
    assert "—" in planet_line  # cheetah_run
    assert md.index("**Published (reference)**") < md.index("| A3C")
    tex = (out / "table1.tex").read_text()
    assert r"200 $\pm$ 100 (3)" in tex and r"cartpole\_swingup" in tex
    # header rule + one rule before each group after the first (PlaNet; model designs; agent designs; published)
    assert tex.count(r"\midrule") == 4
    assert tex.index(r"\midrule", tex.index("Random shooting")) < tex.index("A3C")


def test_figures_written(built):
    _, out, result = built
    figs = out / "figures"
    names = ["curves", "curves_cartpole_swingup", "curves_reacher_easy", "curves_cheetah_run", "ablation_models",
             "ablation_agents", "ablation_overshooting", "aggregate", "data_efficiency", "performance_profile"]
    for name in names:
        for ext in (".png", ".pdf"):
            path = figs / f"{name}{ext}"
            assert path.is_file() and path.stat().st_size > 1000, path
            assert str(path) in result["files"]
    assert (figs / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # Open-loop strips: variants with a strip only; two tasks stacked for planet.
    from PIL import Image

    with Image.open(figs / "openloop_planet.png") as img:
        assert img.height == 2 * (20 + 128) and img.width == 80 + 640
    assert (figs / "openloop_gru.png").is_file() and (figs / "openloop_ssm.png").is_file()
    assert not (figs / "openloop_random_shooting.png").exists() and not (figs / "openloop_overshooting.png").exists()


def test_curves_csv(built):
    _, out, _ = built
    curves = pd.read_csv(out / "curves.csv")
    assert list(curves.columns) == ["variant", "task", "seed", "episodes", "env_steps", "return_mean", "return_std"]
    # 8 complete runs x 2 eval points + the ssm run's single point (its partial last line skipped).
    assert len(curves) == 8 * 2 + 1
    row = curves[(curves["variant"] == "planet") & (curves["task"] == "cartpole_swingup") & (curves["seed"] == 2)
                 & (curves["episodes"] == 2)].iloc[0]
    assert (row["env_steps"], row["return_mean"], row["return_std"]) == (2 * EPISODE_STEPS, 150.0, 5.0)
    assert not curves.duplicated(["variant", "task", "seed", "episodes"]).any()


def test_metrics_one_file_per_task(built):
    """`dvc metrics show` reads metrics/TASK.json: a row per task, columns per variant."""
    _, out, _ = built
    assert sorted(p.name for p in (out / "metrics").iterdir()) == ["cartpole_swingup.json", "reacher_easy.json"]
    metrics = json.loads((out / "metrics" / "cartpole_swingup.json").read_text())
    assert metrics["planet"] == {"mean": 200.0, "std": 100.0, "seeds": 3}
    assert metrics["gru"] == {"mean": 50.0, "std": None, "seeds": 1}
    assert "ssm" not in metrics  # no final return
    assert set(json.loads((out / "metrics" / "reacher_easy.json").read_text())) == {"planet"}


def test_iqm_and_bootstrap():
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
    assert report.iqm(scores) == pytest.approx((0.3 + 0.4 + 0.5 + 0.6) / 4)  # middle 50%
    assert report.iqm(scores[::-1]) == pytest.approx(0.45)
    groups = [[0.1, 0.2, 0.3], [0.5, 0.6, 0.7], [0.9, 0.95]]
    low, high = report.stratified_bootstrap_ci(groups, n_resamples=2000)
    assert low <= report.iqm(np.concatenate(groups)) <= high and low < high
    assert report.stratified_bootstrap_ci(groups, n_resamples=2000) == (low, high)  # seeded: deterministic
    # Strata are kept: every resample has 3 + 3 + 2 values, so the IQM stays within the pooled range's middle.
    assert 0.2 <= low and high <= 0.9
    assert report.stratified_bootstrap_ci([[0.5, 0.5], [0.2, 0.2]]) == (0.35, 0.35)  # nothing varies
    assert all(math.isnan(v) for v in report.stratified_bootstrap_ci([[0.1], [0.2]]))  # one seed per task


def test_missing_runs_inferred_grid():
    """Without an expected grid, every variant is expected on every task and seed found."""
    runs = [report.Run("planet", "cartpole_swingup", 0, Path("a"), complete=True, final=1.0),
            report.Run("planet", "reacher_easy", 1, Path("b"), complete=True, final=1.0),
            report.Run("gru", "cartpole_swingup", 0, Path("c"), complete=False)]
    missing = {(m["variant"], m["task"], m["seed"], m["status"]) for m in report.missing_runs(runs, None)}
    assert missing == {("planet", "cartpole_swingup", 1, "absent"), ("planet", "reacher_easy", 0, "absent"),
                       ("gru", "cartpole_swingup", 0, "incomplete"), ("gru", "cartpole_swingup", 1, "absent"),
                       ("gru", "reacher_easy", 0, "absent"), ("gru", "reacher_easy", 1, "absent")}


def test_aggregate(built):
    _, out, result = built
    agg = pd.read_csv(out / "aggregate.csv").set_index("variant")
    # planet: scores 0.1, 0.2, 0.3 (cartpole) and 0.4, 0.6 (reacher); trim_mean(0.25) of 5 drops one each side.
    assert agg.loc["planet", "iqm"] == pytest.approx(0.3)
    assert agg.loc["planet", "runs"] == 5 and agg.loc["planet", "tasks"] == 2
    assert agg.loc["planet", "ci_low"] <= 0.3 <= agg.loc["planet", "ci_high"]
    assert math.isnan(agg.loc["gru", "ci_low"])  # one seed: no interval
    assert {a["variant"] for a in result["aggregate"]} == {"planet", "gru", "random_shooting"}
    # the performance profile of the same scores: planet's cartpole 0.1, 0.2, 0.3 and reacher 0.4, 0.6
    profile = pd.read_csv(out / "performance_profile.csv")
    planet = profile[profile["variant"] == "planet"].set_index("tau")
    assert planet.loc[0.0, "fraction"] == 1.0
    assert planet.loc[0.25, "fraction"] == pytest.approx((1 / 3 + 2 / 2) / 2)  # 0.3 of cartpole; 0.4, 0.6 of reacher
    assert planet.loc[0.5, "fraction"] == pytest.approx((0 + 1 / 2) / 2)
    assert (planet["ci_low"] <= planet["fraction"] + 1e-12).all()
    assert (planet["fraction"] <= planet["ci_high"] + 1e-12).all()


def test_readme(built):
    _, out, result = built
    text = (out / "README.md").read_text()
    for line in ("planet / reacher_easy / seed 2: absent", "planet / cheetah_run / seed 0: absent",
                 "ssm / cartpole_swingup / seed 0: incomplete"):
        assert line in text
    assert len(result["missing"]) == 5  # planet reacher s2 + cheetah s0-2, ssm cartpole s0
    for png in sorted((out / "figures").glob("*.png")):
        assert f"](figures/{png.name})" in text, png.name
    assert "tiny runs" in text and "No learning is expected" in text
    assert "On cartpole_swingup this pipeline's PlaNet reaches 200 ± 100 (seeds: 3) after 4 episodes vs the " \
           "paper's 821 after 1,000" in text
    assert (out / "table1.md").read_text().strip() in text
    # debug episodes are 160 env steps: the 1000-step random-policy score is not a fair comparison there
    assert "random policy" not in text


@pytest.mark.parametrize("length, expected", [(1000, "not above random"), (160, None)])
def test_random_comparison_only_for_full_episodes(length, expected):
    runs = [report.Run("planet", "cartpole_swingup", 0, Path("x"), complete=True, final=100.0, episodes=50,
                       episode_env_steps=length)]
    stats = {"planet": {"cartpole_swingup": {"mean": 100.0, "std": float("nan"), "n": 1}}}
    text = report.readme.table_paragraph(runs, stats, ["cartpole_swingup"], report.load_published())
    assert "after 50 episodes" in text
    if expected is None:
        assert "random policy" not in text
    else:
        assert f"a random policy scores about 120, so this is {expected}" in text


def test_empty_results_and_cli(tmp_path, capsys):
    """No runs at all: reference table and a README that says so, through the command line."""
    (tmp_path / "results").mkdir()
    grid = {"preset": "smoke", "tasks": ["cartpole_swingup"], "seeds": [0],
            "variants": {"planet": {"label": "PlaNet", "family": "agents"}}}
    assert report.main(["--results", str(tmp_path / "results"), "--out", str(tmp_path / "out"),
                        "--grid-json", json.dumps(grid)]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == 0
    out = tmp_path / "out"
    table = pd.read_csv(out / "table1.csv")
    assert list(table["kind"]) == ["run"] + ["reference"] * 6
    assert table["cartpole_swingup"].isna().iloc[0]
    text = (out / "README.md").read_text()
    assert "No runs were found" in text and "planet / cartpole_swingup / seed 0: absent" in text
    assert "# PlaNet reproduction: preset smoke" in text
    assert pd.read_csv(out / "curves.csv").empty and not list((out / "metrics").iterdir())
    for name in ("curves", "aggregate", "performance_profile"):
        assert (out / "figures" / f"{name}.png").stat().st_size > 0
        assert (out / "figures" / f"{name}.pdf").stat().st_size > 0
    assert not (out / "figures" / "ablation_models.png").exists()  # a grid of PlaNet alone compares no designs


def test_learning_record_curve(tmp_path, capsys):
    """`planet curve`: wall-clock hours from --start, eval lines only, thresholds checked against the points."""
    from planet import cli

    run = tmp_path / "run"
    run.mkdir()
    lines = [{"step": 1000, "time": 1000.0 + 600, "collect/return": 5.0, "episodes": 1.0},
             {"step": 5000, "time": 1000.0 + 1800, "eval/return_mean": 310.0, "eval/return_std": 20.0,
              "eval/episodes": 10.0, "episodes": 5.0},
             {"step": 10000, "time": 1000.0 + 7200, "eval/return_mean": 440.0, "eval/return_std": 10.0,
              "eval/episodes": 10.0, "episodes": 10.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert cli.main(["curve", "--run", str(run), "--out", str(tmp_path / "out"), "--start", "1000",
                     "--threshold", "1:300", "--threshold", "2:450"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["reached"] == {"1h>=300": True, "2h>=450": False}
    frame = pd.read_csv(tmp_path / "out" / "curve.csv")
    assert list(frame["episodes"]) == [5, 10] and list(frame["wall_h"]) == [0.5, 2.0]
    collect = pd.read_csv(tmp_path / "out" / "collect.csv")
    assert collect.to_dict("records") == [{"episodes": 1, "env_steps": 1000, "wall_h": 0.1667,  # %.4f
                                           "collect_return": 5.0}]
    assert (tmp_path / "out" / "curve.png").stat().st_size > 1000


def test_episodes_needed_hand_computed():
    """First eval point where the seed-median curve reaches each target; ratio = target episodes / needed."""
    rows = [("planet", s, 100, r) for s, r in enumerate([500.0, 600.0, 700.0])]  # median 600
    rows += [("planet", s, 200, r) for s, r in enumerate([800.0, 900.0, 870.0])]  # median 870
    rows += [("sac", 0, 50, 300.0), ("sac", 0, 100, 640.0)]
    curves = pd.DataFrame([{"variant": v, "task": "cartpole_swingup", "seed": s, "episodes": e,
                            "env_steps": e * 1000, "return_mean": r, "return_std": 0.0} for v, s, e, r in rows])
    stats = {"planet": {"cartpole_swingup": {"mean": 880.0, "std": 10.0, "seeds": 3}},
             "sac": {"cartpole_swingup": {"mean": 650.0, "std": None, "seeds": 1}}}  # sac's final test return
    infos = {"planet": report.VariantInfo("planet", "PlaNet (RSSM)"),
             "sac": report.VariantInfo("sac", "SAC", baseline=True)}
    needed = report.episodes_needed(curves, stats, ["cartpole_swingup"], ["planet", "sac"], infos,
                                    report.load_published())
    got = {(r.target, r.variant): (r.episodes, r.ratio, r.best) for r in needed.itertuples()}
    # published cartpole: D4PG 862, A3C 558, both after 1e8 env steps = 100,000 episodes
    assert got[("D4PG (published)", "planet")] == (200.0, 500.0, 870.0)
    assert got[("A3C (published)", "planet")] == (100.0, 1000.0, 870.0)
    assert got[("SAC (here)", "planet")] == (200.0, 0.5, 870.0)  # SAC's 650 after its 100 episodes
    episodes, ratio, best = got[("D4PG (published)", "sac")]
    assert math.isnan(episodes) and math.isnan(ratio) and best == 640.0
    assert got[("A3C (published)", "sac")] == (100.0, 1000.0, 640.0)
    assert ("SAC (here)", "sac") not in got  # a baseline is not its own target
    text = " ".join(report.episodes_needed_markdown(needed).split())  # without the column padding
    for line in ("| cartpole_swingup | D4PG (published): 862 after 100,000 episodes | 200 (500x fewer) | "
                 "not reached (best 640) |", "| SAC (here): 650 after 100 episodes | 200 (2.0x more) | — |"):
        assert line in text, text


def test_grid_from_the_pipeline_params_matches_the_report_rule():
    """`planet report --pipeline-preset NAME` (a partial report of a running campaign) uses the grid the report
    rule passes: agents on every task, ablations on ablation_tasks, baselines with their own tasks and seeds."""
    smoke = report.grid_from_pipeline("smoke")
    assert smoke["preset"] == "smoke" and smoke["agent_preset"] == "debug" and smoke["seeds"] == [0]
    assert smoke["expected"]["planet"]["tasks"] == list(report.TASKS)
    assert smoke["expected"]["gru"]["tasks"] == ["cartpole_swingup"]
    assert smoke["variants"]["sac"]["family"] == "baselines"
    assert smoke["expected"]["simulator"] == {"tasks": ["cartpole_swingup"], "seeds": [0]}
    # Table 1's order and groups, passed as lists/mappings that survive the rule's sorted JSON
    assert smoke["variant_order"] == PAPER_ORDER + ["sac", "simulator"]
    assert smoke["variant_groups"] == {v: PAPER_GROUPS[v] for v in smoke["variant_order"]}
    campaign = report.grid_from_pipeline("cpu100k")
    assert set(campaign["variants"]) == {"planet"} and campaign["agent_preset"] == "cpu"
    assert campaign["variant_order"] == ["planet"]
    with pytest.raises(ValueError, match="no pipeline preset 'nope'"):
        report.grid_from_pipeline("nope")


def test_runs_still_training_are_listed_apart(tmp_path):
    """A campaign's partial record: an unfinished run appears in progress.csv and its README section with its
    checkpoint's episode count and latest in-training evaluation, and never in Table 1's numbers."""
    run = tmp_path / "results" / "runs" / "planet" / "walker_walk" / "seed0"
    run.mkdir(parents=True)
    (run / "progress.json").write_text(json.dumps({"episodes": 23, "env_steps": 23000, "updates": 900}))
    lines = [{"step": 1000, "time": 1000.0, "collect/return": 30.0, "episodes": 1.0},
             {"step": 20000, "time": 1000.0 + 5400, "eval/return_mean": 87.5, "eval/return_std": 3.0,
              "episodes": 20.0}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out = tmp_path / "out"
    grid = {"preset": "x", "tasks": ["walker_walk"], "seeds": [0],
            "variants": {"planet": {"label": "PlaNet", "family": "agents"}}}
    assert report.main(["--results", str(tmp_path / "results"), "--out", str(out), "--grid-json",
                        json.dumps(grid)]) == 0
    progress = pd.read_csv(out / "progress.csv")
    row = progress.iloc[0]
    assert (row["task"], row["episodes"], row["latest_eval_episode"]) == ("walker_walk", 23, 20)
    assert row["latest_eval_return"] == 87.5 and row["hours_since_first_episode"] == 1.5
    assert pd.read_csv(out / "table1.csv").query("kind == 'run'")["walker_walk"].isna().all()
    assert "Runs still training" in (out / "README.md").read_text()


def test_compute_table_by_hand(tmp_path):
    """Per-run cost from the runs' own perf/* lines: seconds per training episode = its updates / updates_per_s +
    collect_s (seed episodes untimed), medians and lower quartiles, busy and wall hours, and the planned run at the
    lower quartiles with the trainer's evaluation schedule."""
    run = tmp_path / "results" / "runs" / "planet" / "walker_walk" / "seed0"
    run.mkdir(parents=True)
    cfg = config_lib.resolve("walker_walk", "debug", 0, {"train": {"episodes": 12, "seed_episodes": 2},
                                                         "eval": {"every": 5}, "run": {"threads": 2}})
    config_lib.save(cfg, run / "config.yaml")
    lines = [{"step": 160 * e, "time": 1000.0 * e, "collect/return": 1.0, "episodes": float(e)} for e in (1, 2)]
    # training episodes 3..6: 2 updates each at 0.5 updates/s (4 s) + collection 6, 6, 6 and 96 s (a slowed one)
    for e, collect in zip((3, 4, 5, 6), (6.0, 6.0, 6.0, 96.0), strict=True):
        lines.append({"step": 160 * e, "time": 1000.0 * e, "collect/return": 1.0, "episodes": float(e),
                      "updates": 2.0 * (e - 2), "perf/updates_per_s": 0.5, "perf/collect_s": collect})
        if e == 5:
            lines.append({"step": 800, "time": 5000.0, "eval/return_mean": 3.0, "episodes": 5.0,
                          "perf/eval_s": 36.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "progress.json").write_text(json.dumps({"episodes": 6, "env_steps": 960, "updates": 8}))
    # resumed on newer code: both commits, abbreviated, oldest first
    (run / "tags.json").write_text(json.dumps({"git_commit": "b" * 40, "git_commits": f"{'a' * 40} {'b' * 40}"}))
    row = report.compute_table([report.read_run(tmp_path / "results", "planet", "walker_walk", 0, run)]).iloc[0]
    assert (row["threads"], row["episodes"], row["planned_episodes"], row["evaluations"]) == (2, 6, 12, 1)
    # episodes: 10, 10, 10, 100 s -> median 10, lower quartile 10; one evaluation of 36 s
    assert (row["episode_s"], row["episode_s_q25"], row["eval_s"], row["eval_s_q25"]) == (10.0, 10.0, 36.0, 36.0)
    assert row["busy_hours"] == round((130 + 36) / 3600, 2) and row["wall_hours"] == round(5000 / 3600, 2)
    # planned: 10 training episodes x 10 s + evaluations after episodes 5, 10 and 12 (the last) x 36 s = 208 s
    assert row["estimated_hours"] == round(208 / 3600, 2)
    assert row["commits"] == "aaaaaaa bbbbbbb"
    assert row["settings"] == "update fp32, plan fp32, eager, shadow map suite's, eval 2 every 5"
    out = tmp_path / "out"
    grid = {"preset": "x", "tasks": ["walker_walk"], "seeds": [0],
            "variants": {"planet": {"label": "PlaNet", "family": "agents"}}}
    assert report.main(["--results", str(tmp_path / "results"), "--out", str(out), "--grid-json",
                        json.dumps(grid)]) == 0
    assert pd.read_csv(out / "compute.csv").iloc[0]["episode_s"] == 10.0
    assert "## Compute: wall clock per run" in (out / "README.md").read_text()


def test_figure_groups_are_the_papers():
    """params/pipeline.yaml's figures: the variants of each paper figure, and the files they are written to."""
    specs = report.pipeline_figures()
    groups = {fid: set(spec.variants) for fid, spec in specs.items()}
    assert groups["models"] == {"planet", "gru", "ssm"}  # paper Fig. 4
    assert groups["agents"] == {"planet", "random_collection", "random_shooting"}  # paper Fig. 5
    assert groups["overshooting"] >= {"planet", "overshooting", "ssm", "ssm_overshooting"}  # paper Fig. 8 (+ DRNN)
    assert groups["activations"] == {"planet", "elu", "ssm", "ssm_elu"}  # paper Fig. 9
    assert groups["openloop"] == {"planet", "overshooting", "gru", "ssm", "multitask"}  # paper Fig. 10 (+ Fig. 7)
    assert groups["multitask"] == {"planet", "multitask"}  # paper Figs. 6, 7
    assert groups["state_diagnostics"] == {"planet", "gru", "ssm", "overshooting", "drnn"}  # paper Fig. 11
    assert groups["curves"] == groups["models"] and groups["data_efficiency"] == {"planet"}
    assert specs["curves"].baselines and specs["data_efficiency"].baselines and not specs["models"].baselines
    assert {spec.file for spec in specs.values()} == {"curves", "data_efficiency", "ablation_models",
                                                       "ablation_agents", "ablation_overshooting",
                                                       "ablation_activations", "openloop", "cem_grid",
                                                       "state_diagnostics", "multitask"}
    assert specs["cem_grid"].kind == "cem_grid" and not specs["cem_grid"].variants  # drawn from RESULTS/cem_grid
    assert specs["overshooting"].heading == "Latent overshooting (paper Fig. 8)"
    infos = report.variant_infos({"planet": "P", "sac": {"label": "SAC", "family": "baselines"}}, ["ssm"], None)
    assert specs["curves"].members(infos) == ["planet", "ssm", "sac"]  # the report's order; baselines join, last
    assert specs["overshooting"].members(infos) == ["planet", "ssm"]
    colours = figures.variant_palette([*infos, "extra"])
    assert len(colours) == 16  # params/pipeline.yaml's 12 variants and 3 baselines, then others
    assert len(set(colours.values())) == len(colours)  # no two variants share a colour


@pytest.fixture
def params_copy(tmp_path, monkeypatch):
    """A copy of params/ that every command reads (PLANET_PARAMS), and its pipeline.yaml as a dict."""
    params = tmp_path / "params"
    params.mkdir()
    for name in ("presets.yaml", "baselines.yaml", "pipeline.yaml"):
        (params / name).write_text((config_lib.SOURCE_PARAMS / name).read_text())
    monkeypatch.setenv(config_lib.PARAMS_ENV, str(params))
    return params / "pipeline.yaml", yaml.safe_load((params / "pipeline.yaml").read_text())


def test_a_variant_joins_a_figure_by_a_params_edit(params_copy):
    """Adding a variant to a paper figure is an edit of params/pipeline.yaml: the figure's `variants:` list."""
    path, pipeline = params_copy
    pipeline["figures"]["overshooting"]["variants"].append("gru")
    pipeline["variants"]["gru_elu"] = {"label": "GRU + ELU", "family": "ablations",
                                       "overrides": {"model.kind": "gru", "model.activation": "elu"}}
    pipeline["figures"]["activations"]["variants"].append("gru_elu")
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    specs = report.pipeline_figures()
    assert specs["overshooting"].variants[:5] == ("planet", "gru", "ssm", "overshooting", "ssm_overshooting")
    assert specs["activations"].variants[-1] == "gru_elu"
    grid = report.grid_from_pipeline("smoke")  # the grid the report rule passes carries the same figures
    assert "gru" in report.grid_figures(grid)["overshooting"].variants
    assert [f["id"] for f in grid["figures"]] == list(specs)  # a list: the order survives the rule's sorted JSON


@pytest.mark.parametrize(("edit", "message"), [
    (lambda p: p["figures"]["models"]["variants"].append("gru_x"),
     r"figure 'models' names unknown variant 'gru_x'; valid variants: planet, gru, ssm"),
    (lambda p: p["figures"]["models"].update(kind="heatmap"), r"figure 'models' has unknown kind 'heatmap'"),
    (lambda p: p["figures"]["agents"].update(file="ablation_models"),
     r"figures 'models' and 'agents' both write 'ablation_models'"),
])
def test_bad_figures_are_rejected_with_one_line(params_copy, edit, message):
    path, pipeline = params_copy
    edit(pipeline)
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))
    with pytest.raises(config_lib.ConfigError, match=message) as info:
        report.pipeline_figures()
    assert "\n" not in str(info.value) and str(info.value).startswith(str(path))


def _md_methods(md: str) -> list[str]:
    """The method column of a Markdown table, row by row (label rows included)."""
    return [line.split("|")[1].strip() for line in md.splitlines()[2:]]


def _tex_body(tex: str) -> list[str]:
    """The lines of a LaTeX table between the header's rule and the bottom rule."""
    lines = tex.splitlines()
    return lines[lines.index(r"\midrule") + 1:lines.index(r"\bottomrule")]


def test_table1_in_the_papers_order_and_groups_in_every_format(tmp_path):
    """Table 1 follows the grid's variant_order whatever the order of its `variants` mapping (the report rule's JSON
    is sorted): the agent, the paper's ablations figure by figure, the baselines trained here, the published rows,
    each group opened by its label in md, csv (`group`) and tex (a rule and a \\multicolumn row)."""
    from planet.report.grid import pipeline_entries

    results = tmp_path / "results"
    names = ["sac", "multitask", "ssm_elu", "drnn", "random_collection", "gru", "planet"]  # scrambled
    for name in names:
        make_run(results, name, "cartpole_swingup", 0, 100.0, openloop=False)
    entries = pipeline_entries(report.load_pipeline())
    grid = {"preset": "x", "tasks": ["cartpole_swingup"], "seeds": [0], "figures": [],
            "variants": {n: entries[n] for n in names},
            **report.table_layout(report.load_pipeline(), names)}
    assert list(grid["variants"]) == names and grid["variant_order"][0] == "planet"
    out = tmp_path / "out"
    assert report.main(["--results", str(results), "--out", str(out),
                        "--grid-json", json.dumps(grid, sort_keys=True)]) == 0
    order = ["planet", "gru", "random_collection", "drnn", "ssm_elu", "multitask", "sac"]
    groups = [PAPER_GROUPS[v] for v in order]
    labels = [entries[v]["label"] for v in order]

    table = pd.read_csv(out / "table1.csv")
    assert list(table["variant"].iloc[:len(order)]) == order
    assert list(table["group"]) == groups + ["Published (reference)"] * len(REFERENCES)
    assert list(table["kind"]) == ["run"] * 6 + ["baseline"] + ["reference"] * len(REFERENCES)
    assert list(table["method"]) == labels + REFERENCES

    expected_md = []
    starts = [i for i, group in enumerate(groups) if i == 0 or group != groups[i - 1]]
    for i, (group, label) in enumerate(zip(groups, labels, strict=True)):
        # a group whose first row reads as its label (the agent, "PlaNet (RSSM)") gets no label row
        expected_md += [f"**{group}**", label] if i in starts and group != label else [label]
    expected_md += ["**Published (reference)**", *REFERENCES]
    md = (out / "table1.md").read_text()
    assert _md_methods(md) == expected_md
    label_row = next(line for line in md.splitlines() if "**Latent overshooting (paper Fig. 8)**" in line)
    assert not "".join(label_row.split("|")[2:]).strip()  # a label row: the label, then empty cells
    assert len({len(line) for line in md.splitlines()}) == 1  # columns aligned (readable as plain text)

    body = _tex_body((out / "table1.tex").read_text())
    tex_rows = [line.split(" & ")[0] for line in body if " & " in line]
    assert tex_rows == labels + REFERENCES
    heads = [(i, line) for i, line in enumerate(body) if line.startswith(r"\multicolumn")]
    columns = 3 + len(report.TASKS) + 1  # method, kind, episodes, the paper's tasks, source
    labelled = [groups[i] for i in starts if groups[i] != labels[i]]
    assert [line for _, line in heads] == [rf"\multicolumn{{{columns}}}{{l}}{{\textbf{{{g}}}}} \\"
                                           for g in [*labelled, "Published (reference)"]]
    assert all(body[i - 1] == r"\midrule" for i, _ in heads if i)  # every group but the first opens with a rule
    assert sum(line == r"\midrule" for line in body) == len(starts)  # ... the published rows' group included


def test_table1_order_and_groups_come_from_the_pipeline_params(params_copy):
    """Reordering `variants:` in params/pipeline.yaml reorders Table 1 (through the grid, and without one); labels
    and groups come from there too: a variant placed apart from its figure's group joins it."""
    from planet.report.tables import write_table1

    path, pipeline = params_copy
    variants = pipeline["variants"]
    first = ["elu", "ssm_elu", "gru"]
    variants = {**{v: variants[v] for v in first}, **{v: e for v, e in variants.items() if v not in first}}
    variants["gru"]["label"] = "GRU (edited)"
    variants["gru_late"] = {"label": "GRU, listed last", "family": "ablations", "overrides": {"model.kind": "gru"}}
    pipeline["variants"] = variants
    pipeline["figures"]["models"]["variants"].append("gru_late")
    pipeline["presets"]["smoke"]["variants"].append("gru_late")
    path.write_text(yaml.safe_dump(pipeline, sort_keys=False))

    grid = report.grid_from_pipeline("smoke")
    assert grid["variant_order"][:5] == ["elu", "ssm_elu", "gru", "ssm", "gru_late"]
    assert grid["variant_order"][-3:] == ["multitask", "sac", "simulator"]
    assert grid["variant_groups"]["gru_late"] == MODELS
    names = ["planet", "gru", "elu", "gru_late"]
    expected = [("elu", "RSSM + ELU", ACTIVATIONS), ("gru", "GRU (edited)", MODELS),
                ("gru_late", "GRU, listed last", MODELS), ("planet", "PlaNet (RSSM)", "PlaNet (RSSM)")]
    with_grid = report.variant_infos({n: grid["variants"][n] for n in names}, [], None, grid["variant_order"],
                                     grid["variant_groups"])
    without = report.variant_infos(None, names, None)  # a report built without a grid reads params/pipeline.yaml
    for infos in (with_grid, without):
        assert [(i.name, i.label, i.group) for i in infos.values()] == expected
    write_table1(path.parent, [], without, {}, ["cartpole_swingup"], report.load_published())
    table = pd.read_csv(path.parent / "table1.csv")
    assert list(table["variant"].iloc[:4]) == ["elu", "gru", "gru_late", "planet"]
    assert _md_methods((path.parent / "table1.md").read_text())[:6] == [
        f"**{ACTIVATIONS}**", "RSSM + ELU", f"**{MODELS}**", "GRU (edited)", "GRU, listed last",
        "PlaNet (RSSM)"]


def test_openloop_figure_reads_labelled_and_raw_strips_alike(tmp_path):
    """Runs write labelled strips (planet.video.label_openloop); the report composes the frames, not the labels."""
    from PIL import Image

    from planet.report.figures import compose_openloop
    from planet.video import label_openloop, save_labelled_png

    rng = np.random.default_rng(0)
    strip = rng.integers(0, 255, size=(128, 7 * 64, 3), dtype=np.uint8)
    Image.fromarray(strip).save(tmp_path / "raw.png")
    save_labelled_png(tmp_path / "labelled.png", label_openloop(strip, 5))
    compose_openloop([("cartpole_swingup", tmp_path / "raw.png")], tmp_path / "a.png")
    compose_openloop([("cartpole_swingup", tmp_path / "labelled.png")], tmp_path / "b.png")
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_state_diagnostics_figure_table_and_paragraph(tmp_path):
    """Paper Fig. 11 from the runs' diagnostics.json: per group the median over seeds, then the mean over groups
    (planet 0.65 from the posterior, 0.30 five steps open loop; gru 0.30 and -2.50); a null score is left out."""
    results = tmp_path / "results"
    scores = {("planet", 0): {"position": [0.9, 0.5], "velocity": [0.6, 0.2]},
              ("planet", 1): {"position": [0.7, 0.3], "velocity": [0.4, None]},
              ("gru", 0): {"position": [0.5, -3.0], "velocity": [0.1, -2.0]}}
    for (variant, seed), r2 in scores.items():
        run = make_run(results, variant, "cartpole_swingup", seed, 100.0, openloop=False)
        (run / "diagnostics.json").write_text(json.dumps({"distances": [0, 5], "r2": r2}))
    out = tmp_path / "report"
    result = report.build_report(results, out, title="Diagnostics")
    figs = out / "figures"
    for ext in (".png", ".pdf"):
        assert (figs / f"state_diagnostics{ext}").stat().st_size > 1000 and str(figs / f"state_diagnostics{ext}") \
            in result["files"]
    frame = pd.read_csv(figs / "state_diagnostics.csv")
    assert len(frame) == 12 and frame["r2"].isna().sum() == 1
    text = (out / "README.md").read_text()
    assert "## State diagnostics (paper Fig. 11)" in text and "](figures/state_diagnostics.png)" in text
    rows = {" ".join(line.replace("|", " ").split()) for line in text.splitlines() if line.startswith("| cartpole")}
    assert {"cartpole_swingup PlaNet (RSSM) 0.65 0.30", "cartpole_swingup Deterministic (GRU) 0.30 -2.50"} <= rows
    assert ("cartpole_swingup: best from the posterior, PlaNet (RSSM) (0.65 of 2 variants); 5 steps open loop, "
            "PlaNet (RSSM) (0.30 of 2 variants)") in text


def test_performance_profile_by_hand():
    """Task A scores 0.2 and 0.6, task B 0.9: above tau = 0, 0.5, 0.8, 1 are A 2/2, 1/2, 0, 0 and B 1, 1, 1, 0;
    each task weighs half."""
    from planet.report.stats import performance_profile

    taus = np.array([0.0, 0.5, 0.8, 1.0])
    profile, low, high = performance_profile([[0.2, 0.6], [0.9]], taus)
    np.testing.assert_allclose(profile, [1.0, 0.75, 0.5, 0.0])
    # resampling A's two seeds gives 0, 1/2 or 1 above tau = 0.5 (B stays 1): the band spans 0.5 .. 1
    assert (low[1], high[1]) == (0.5, 1.0)
    assert (low[0], high[0]) == (1.0, 1.0) and (low[3], high[3]) == (0.0, 0.0)  # certain where no seed varies
    again = performance_profile([[0.2, 0.6], [0.9]], taus)
    for a, b in zip(again, (profile, low, high), strict=True):
        np.testing.assert_array_equal(a, b)  # seeded


def test_a_grid_of_one_variant_drops_the_comparisons():
    """The cpu100k grid runs PlaNet alone: no ablation or multi-task comparison of one line, the rest stays."""
    from planet.report.grid import grid_figures, grid_from_pipeline

    full = grid_figures({})
    alone = grid_figures(grid_from_pipeline("cpu100k"))
    dropped = {fid for fid, spec in full.items() if spec.kind == "task_grid"}
    assert dropped >= {"models", "agents", "overshooting", "activations", "multitask"}
    assert set(alone) == set(full) - dropped
    assert set(grid_figures(grid_from_pipeline("smoke"))) == set(full)  # smoke runs every variant


@pytest.mark.parametrize(("last_episode", "stars", "asymptotes"), [
    (4, [], 0),  # a smoke-sized curve reaches no published budget: no star, no 1e8-step line
    (100, [(100.0, 297.0)], 0),  # the 100k-step campaign: PlaNet's published 100k point, no D4PG/A3C lines
    (1000, [(100.0, 297.0), (500.0, 475.0)], 2),  # the paper's scale: both published points and both asymptotes
])
def test_curves_draw_the_published_references_their_axis_reaches(last_episode, stars, asymptotes):
    """Published PlaNet at 100k / 500k env steps (CURL Table 1: cartpole 297, 475) as star markers where the curve
    reaches that budget; D4PG's and A3C's 1e8-step lines only on curves at the paper's 1000-episode scale."""
    from matplotlib.figure import Figure

    from planet.report.grid import VariantInfo
    from planet.report.published import load_published

    curves = pd.DataFrame({"variant": "planet", "task": "cartpole_swingup", "seed": 0,
                           "episodes": [last_episode / 2, last_episode],
                           "env_steps": [last_episode * 500, last_episode * 1000], "return_mean": [100.0, 200.0]})
    infos = {"planet": VariantInfo(name="planet", label="PlaNet")}
    for x, scale in (("episodes", 1.0), ("env_steps", 1000.0)):
        ax = Figure().subplots()
        variants, refs = figures._draw_curves(ax, curves, "cartpole_swingup", x, ["planet"], infos,
                                              {"planet": (0, 0, 1)}, load_published())
        assert variants == {"planet"}
        markers = [line for line in ax.get_lines() if line.get_marker() == "*"]
        assert [(float(m.get_xdata()[0]), float(m.get_ydata()[0])) for m in markers] == [
            (e * scale, r) for e, r in stars]
        horizontal = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert sorted(float(line.get_ydata()[0]) for line in horizontal) == ([558.0, 862.0] if asymptotes else [])
        assert refs == ({"budget"} if stars else set()) | ({"asymptotes"} if asymptotes else set())


def test_agent_gif_fits_the_budget_and_keeps_the_agents_view(tmp_path):
    """A 500-frame evaluation GIF (walker's length, 3x as runs write it) becomes a copy under the byte budget: the
    64 px frames shown 2x, every k-th frame kept, pixels unchanged (a few colours, so the palette is exact)."""
    import imageio.v3 as iio

    from planet.report import videos
    from planet.video import save_gif

    rng = np.random.default_rng(0)
    colours = np.array([[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 255]], np.uint8)
    frames = colours[rng.integers(0, len(colours), (500, 16, 16))].repeat(4, 1).repeat(4, 2)  # 64 x 64 blocks
    source = tmp_path / "eval.gif"
    save_gif(source, frames)
    assert source.stat().st_size > 400_000  # the run's own copy is over the budget
    out = tmp_path / "copy.gif"
    assert videos.agent_gif(source, out, max_bytes=400_000)
    assert out.stat().st_size <= 400_000
    copy = np.asarray(iio.imread(out, index=None))[..., :3]
    step = 500 // len(copy) if 500 % len(copy) == 0 else math.ceil(500 / len(copy))
    assert step > 1 and copy.shape[1:3] == (128, 128)
    np.testing.assert_array_equal(copy[:, ::2, ::2], frames[::step])
    assert not videos.agent_gif(source, tmp_path / "tiny.gif", max_bytes=100)  # nothing fits: nothing written
    assert not (tmp_path / "tiny.gif").exists()


def test_report_shows_the_finished_agents(tmp_path):
    """A finished PlaNet run with an evaluation GIF gets its copy under OUT/videos/ and a README section; an
    unfinished run gets none."""
    from planet.video import save_gif

    results = tmp_path / "results"
    done = make_run(results, "planet", "cartpole_swingup", 0, 300.0)
    save_gif(done / "eval" / "eval.gif", np.full((10, 64, 64, 3), 90, np.uint8))
    running = make_run(results, "planet", "reacher_easy", 0, None, complete=False, evaluation=None)
    save_gif(running / "eval" / "eval.gif", np.full((10, 64, 64, 3), 90, np.uint8))
    report.build_report(results, tmp_path / "out")
    assert sorted(p.name for p in (tmp_path / "out" / "videos").iterdir()) == ["planet_cartpole_swingup.gif"]
    text = (tmp_path / "out" / "README.md").read_text()
    assert "## The agents after training" in text
    assert "**cartpole_swingup** (seed 0, 4 episodes, held-out return 300)" in text
    assert "(videos/planet_cartpole_swingup.gif)" in text and "reacher_easy.gif" not in text


def make_campaign_run(results: Path, task: str = "cartpole_swingup", test_return: float = 500.0) -> Path:
    """A finished 105-episode campaign run (100 collected after 5 seed episodes): 50 s of updates + 12.5 s of
    collection per training episode, 40 s per 5-episode evaluation (episodes 20, 40, ..., 100 and 105), a 10-episode
    held-out evaluation of `test_return` that the pipeline's benchmark timed at 80 s."""
    run = results / "runs" / "planet" / task / "seed0"
    run.mkdir(parents=True)
    cfg = config_lib.resolve(task, "debug", 0, {
        "env": {"episode_env_steps": 1000}, "train": {"episodes": 105, "seed_episodes": 5},
        "eval": {"every": 20, "episodes": 5}})
    config_lib.save(cfg, run / "config.yaml")
    lines = []
    for e in range(6, 106):
        lines.append({"step": 1000 * e, "time": 100.0 * e, "collect/return": 1.0, "episodes": float(e),
                      "updates": 50.0 * (e - 5), "perf/updates_per_s": 1.0, "perf/collect_s": 12.5})
        if e % 20 == 0 or e == 105:
            lines.append({"step": 1000 * e, "time": 100.0 * e + 40, "eval/return_mean": 5.0 * e,
                          "episodes": float(e), "perf/eval_s": 40.0})
    (run / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (run / "summary.json").write_text(json.dumps({"episodes": 105, "env_steps": 105000, "final_eval": {}}))
    (results / "eval" / "planet" / task).mkdir(parents=True)
    (results / "eval" / "planet" / task / "seed0.json").write_text(json.dumps(
        {"episodes": 10, "return_mean": test_return, "returns": [test_return] * 10, "complete": True}))
    bench = results / "benchmarks" / "evaluate" / "planet" / task
    bench.mkdir(parents=True)
    (bench / "seed0.tsv").write_text("s\th:m:s\tmax_rss\n80.0\t0:01:20\t900\n")
    return run


def test_task_hours_projects_from_the_other_tasks_and_measures_the_finished(tmp_path):
    """cartpole (action repeat 8: 125 agent steps) finished (`make_campaign_run`). walker (repeat 2: 500 steps, 4x
    cartpole's) not started: its projection = 100 training episodes x (50 + 12.5 x 4) s + 6 evaluations (episodes
    20, 40, ..., 100 and the last, 105) x 40 x 4 s + 80 x 4 s = 11,280 s = 3.13 h."""
    results = tmp_path / "results"
    make_campaign_run(results)

    runs = report.collect_runs(results)
    compute = report.compute_table(runs)
    row = compute.iloc[0]
    assert (row["update_s_q25"], row["collect_s_q25"], row["agent_steps"]) == (50.0, 12.5, 125)
    assert (row["test_eval_s"], row["test_episodes"], row["evaluations"], row["eval_episodes"]) == (80.0, 10, 6, 5)
    hours = report.task_hours(compute, ["cartpole_swingup", "walker_walk"], runs, "planet").set_index("task")
    walker, cartpole = hours.loc["walker_walk"], hours.loc["cartpole_swingup"]
    assert (walker["agent_steps"], walker["projected_hours"], walker["projected_from"]) == (
        500, round(11280 / 3600, 2), "cartpole_swingup")
    assert walker["status"] == "not started" and pd.isna(walker["measured_hours"])
    assert pd.isna(cartpole["projected_hours"]) and cartpole["status"] == "finished"
    # measured: wall clock from the first line (600 s) to the last (10,540 s) plus the held-out 80 s
    assert cartpole["measured_hours"] == round((10540 - 600 + 80) / 3600, 2)
    # estimated undisturbed: 100 x 62.5 s + 6 x 40 s + 80 s
    assert cartpole["estimated_hours"] == round((6250 + 240 + 80) / 3600, 2)


def _record_view(out: Path) -> dict:
    """What a reader sees of cartpole in a report: its Table 1 cell, curve, compute row, hours, GIF and strip."""
    def read(name: str) -> pd.DataFrame:  # NaN as None, so that two views compare equal
        frame = pd.read_csv(out / name)
        return frame.astype(object).where(frame.notna(), None)

    table, curves, compute = read("table1.csv"), read("curves.csv"), read("compute.csv")
    hours = read("task_hours.csv").set_index("task")
    return {"cell": table.loc[table["method"] == "PlaNet (RSSM)", "cartpole_swingup"].tolist(),
            "curve": curves[curves["task"] == "cartpole_swingup"].to_dict(orient="records"),
            "compute": compute[compute["task"] == "cartpole_swingup"].to_dict(orient="records"),
            "hours": hours.loc["cartpole_swingup"].to_dict(),
            "gif": (out / "videos" / "planet_cartpole_swingup.gif").read_bytes(),
            "strip": (out / "record" / "planet" / "cartpole_swingup" / "seed0" / "openloop.png").read_bytes()}


def test_a_finished_run_outlives_its_run_directory(tmp_path):
    """A campaign loses every run directory with its machine: the report's record keeps a finished run's numbers,
    curve, costs, GIF and open-loop strip, so the next machine's report (another task training, cartpole's run
    directory gone) shows cartpole exactly as before and says it comes from the record. An unfinished rerun of a
    recorded run does not replace it; a finished one does."""
    import shutil

    from planet.video import save_gif

    first = tmp_path / "machine1"
    run = make_campaign_run(first)
    (run / "eval").mkdir()
    save_gif(run / "eval" / "eval.gif", np.full((10, 64, 64, 3), 90, np.uint8))
    import imageio.v3 as iio

    iio.imwrite(run / "eval" / "openloop.png", np.full((128, 640, 3), 200, np.uint8))
    out = tmp_path / "out"
    report.build_report(first, out)
    record = out / "record" / "planet" / "cartpole_swingup" / "seed0"
    assert sorted(p.name for p in record.iterdir()) == ["agent.gif", "openloop.png", "run.json"]
    assert json.loads((record / "run.json").read_text())["final"] == 500.0
    before = _record_view(out)
    assert before["cell"] == [500.0]
    assert "Runs shown from the record" not in (out / "README.md").read_text()

    shutil.rmtree(first)  # the machine is gone; the next one trains walker
    second = tmp_path / "machine2"
    make_run(second, "planet", "walker_walk", 0, None, complete=False, evaluation=None)
    report.build_report(second, out)
    assert _record_view(out) == before
    text = (out / "README.md").read_text()
    assert "## Runs shown from the record" in text and "run directory" in text
    hours = pd.read_csv(out / "task_hours.csv").set_index("task")
    assert hours.loc["cartpole_swingup", "status"] == "finished"
    assert (out / "figures" / "openloop_planet.png").is_file()

    make_run(second, "planet", "cartpole_swingup", 0, None, complete=False, evaluation=None)  # a mistaken rerun
    report.build_report(second, out)
    assert _record_view(out) == before
    shutil.rmtree(second / "runs" / "planet" / "cartpole_swingup")
    shutil.rmtree(second / "eval", ignore_errors=True)
    shutil.rmtree(second / "benchmarks", ignore_errors=True)
    make_campaign_run(second, test_return=700.0)  # finished again, with another result: it replaces the record
    report.build_report(second, out)
    assert json.loads((record / "run.json").read_text())["final"] == 700.0
    assert sorted(p.name for p in record.iterdir()) == ["run.json"]  # the new run has no GIF and no strip
    table = pd.read_csv(out / "table1.csv")
    assert table.loc[table["method"] == "PlaNet (RSSM)", "cartpole_swingup"].tolist() == [700.0]
    assert "Runs shown from the record" not in (out / "README.md").read_text()


@pytest.mark.slow
def test_a_report_killed_at_any_moment_leaves_only_complete_files(tmp_path):
    """`planet report` killed (SIGKILL) at random moments: every file in OUT is then byte-identical to a complete
    report's (the report is deterministic) or absent, never half-written; the rerun finishes the same report."""
    import random
    import signal
    import subprocess
    import sys
    import time

    results = tmp_path / "results"
    for seed, final in enumerate((100.0, 300.0)):
        make_run(results, "planet", "cartpole_swingup", seed, final)
    make_run(results, "planet", "reacher_easy", 0, 200.0, complete=False, evaluation=None)

    def build(out: Path, kill_after: float | None = None) -> float:
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "planet.report", "--results", str(results), "--out", str(out)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if kill_after is not None:
            time.sleep(kill_after)
            proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=300) in (0, -signal.SIGKILL)
        return time.monotonic() - t0

    def files(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    seconds = build(tmp_path / "ref")
    reference = files(tmp_path / "ref")
    assert "README.md" in reference and "table1.md" in reference and any(k.endswith(".png") for k in reference)
    out, rng = tmp_path / "out", random.Random(0)
    for _ in range(5):
        build(out, kill_after=rng.uniform(0.1, seconds))
        for name, data in files(out).items():
            assert reference.get(name) == data, f"{name} is not the complete report's"
    build(out)
    assert files(out) == reference
    assert not list(tmp_path.glob(".out.tmp-*"))  # the staging directories of the killed builds are gone
