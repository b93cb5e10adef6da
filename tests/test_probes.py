"""The named probes of `planet bench probe` (planet/benchmarks/): each runs at tiny sizes and yields rows of the
documented structure, whose FLOP counts agree with torch's; the CLI prints them as JSON lines; the GPU check runs
its bench processes and summarises them."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
import torch
from cli_helpers import run_main
from torch.utils.flop_counter import FlopCounterMode

from planet import bench, benchmarks
from planet.benchmarks import QUICK_SIZES, gpu_check, layers
from planet.cli import build_parser
from planet.utils import PlanetError

CPU = torch.device("cpu")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "speed.md"


def rows(name: str, **params) -> list[dict]:
    out = list(benchmarks.run(name, params, quick=True))
    assert out and all(r["probe"] == name and r["quick"] and r["threads"] == torch.get_num_threads() for r in out)
    return out


@pytest.fixture
def compiles(monkeypatch) -> list:
    """torch.compile as the identity (compiling takes tens of seconds): records what the probe asked to compile."""
    asked = []

    def fake_compile(fn, **kwargs):
        asked.append(fn)
        return fn

    monkeypatch.setattr(torch, "compile", fake_compile)
    return asked


def test_every_probe_is_a_documented_function():
    docs = DOCS.read_text()
    for name in benchmarks.PROBES:
        fn = benchmarks.probe(name)
        assert fn.__doc__ and f"`{name}`" in benchmarks.__doc__ and f"`{name}`" in docs, name
        quick = next(iter(inspect.signature(fn).parameters.values()))
        assert (quick.name, quick.default) == ("quick", False), name
    with pytest.raises(PlanetError, match="no probe 'nope'; probes: conv-layers"):
        benchmarks.probe("nope")


def test_params_are_parsed_as_yaml_and_checked():
    assert benchmarks.parse_params("profile", ["what=plan", "compiled=true", "rows=5"]) == {
        "what": "plan", "compiled": True, "rows": 5}
    assert benchmarks.parse_params("subpixel-update", ["dtypes=fp32,bf16"]) == {"dtypes": "fp32,bf16"}
    with pytest.raises(PlanetError, match=r"probe memory: 'batch=4' is not KEY=VALUE .*\(updates=3, env=True\)"):
        benchmarks.parse_params("memory", ["batch=4"])
    with pytest.raises(PlanetError, match="'repeats' is not KEY=VALUE"):
        benchmarks.parse_params("conv-layers", ["repeats"])


def test_conv_layers_count_the_flop_torch_counts():
    """One row per encoder convolution and decoder transposed convolution after the first (the two the Decoder
    runs in the sub-pixel form marked), each layer's hand-computed FLOP equal to FlopCounterMode's."""
    out = rows("conv-layers", repeats=1)
    model = layers.model_layers()
    assert [r["layer"] for r in out] == [label + (" subpixel" if sub else "") for label, _, _, sub in model]
    assert [r["layer"] for r in out if r["layer"].endswith("subpixel")] == [
        "dec 128->64 k5 in5 subpixel", "dec 32->3 k6 in30 subpixel"]
    for row, (_, layer, hin, _) in zip(out, model, strict=True):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            layer(torch.randn(QUICK_SIZES.images, layer.in_channels, hin, hin))
        assert row["flop"] == counter.get_total_flops() > 0, row["layer"]
        assert row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0 and row["fwd_gflops"] > 0
        assert row["bwd_gflops"] is None or row["bwd_gflops"] > 0


def test_subpixel_layers_time_both_forms_in_each_precision():
    out = rows("subpixel-layers", repeats=1)
    assert [(r["layer"], r["dtype"]) for r in out] == [
        (layer, dtype) for layer in ("dec 128->64 k5 in5", "dec 64->32 k6 in13", "dec 32->3 k6 in30")
        for dtype in ("fp32", "bf16")]
    for row in out:
        for form in ("native", "subpixel"):
            assert row[f"{form}_forward_ms"] > 0 and row[f"{form}_forward_backward_ms"] > 0


def test_subpixel_update_counts_the_same_flop_both_ways():
    (row,) = rows("subpixel-update", repeats=1, dtypes="fp32")
    assert set(row["update_s"]) == {"fp32_native", "fp32_subpixel"} and min(row["update_s"].values()) > 0
    assert row["flop"]["fp32_native"] == row["flop"]["fp32_subpixel"] > 0
    assert (row["batch"], row["length"]) == (QUICK_SIZES.cpu_batch, QUICK_SIZES.length)


def test_plan_gemms_are_the_plans_flop():
    """The dense-layer shapes recorded from the plan add up to the FLOP FlopCounterMode counts for the plan."""
    (row,) = rows("plan-gemms", repeats=1)
    assert row["plan_gemm_flop"] == bench.plan_flop(CPU, *QUICK_SIZES.plan)
    assert {tuple(s["weight"]) for s in row["shapes"]} >= {(200, 600), (200, 1)}  # the GRU's gates, the reward
    for key in ("gemms_alone_s", "plan_s", "matmul_flop_per_s", "gemms_fraction_of_rate", "gemm_share_of_plan"):
        assert row[key] > 0, key


def test_plan_compiled_times_the_compiled_horizon(compiles):
    (row,) = rows("plan-compiled", repeats=1)
    assert len(compiles) == 1 and compiles[0].__name__ == "imagine_rollout"
    assert row["plan_flop"] == bench.plan_flop(CPU, *QUICK_SIZES.plan)
    assert row["plan_s"] > 0 and row["plan_s_compiled"] > 0
    assert row["compiled_speedup"] == pytest.approx(row["plan_s"] / row["plan_s_compiled"])
    assert row["plan_fraction_of_matmul_rate_compiled"] == pytest.approx(
        row["plan_fraction_of_matmul_rate"] * row["compiled_speedup"])


def test_profile_lists_the_operators_by_self_time(capsys):
    (row,) = rows("profile", what="plan", rows=5)
    assert row["call_s"] > 0 and len(row["ops"]) == 5
    shares = [op["share"] for op in row["ops"]]
    assert shares == sorted(shares, reverse=True) and 0 < sum(shares) <= 1 + 1e-9
    assert "aten::addmm" in [op["name"] for op in row["ops"]]
    assert "Self CPU time total" in capsys.readouterr().err  # the profiler's own table
    with pytest.raises(PlanetError, match="what=conv; valid: update, plan"):
        rows("profile", what="conv")


def test_threads_slice_and_memory_and_user_episode():
    (row,) = rows("threads-slice", updates=1, plans=2)
    assert row["update_s"] > 0 and row["plan_s"] > 0
    assert row["wall_s"] == pytest.approx(row["update_s"] + 2 * row["plan_s"])
    (row,) = rows("memory", updates=1, env=False)
    assert row["rss_gb_before_updates"] > 0 and row["rss_gb_after_updates"] > 0 and row["peak_rss_gb"] > 0
    (row,) = rows("user-episode")
    assert row["preset"] == "debug" and row["update_precision"] == row["plan_precision"] == "fp32"
    assert row["episode_s"] == pytest.approx(row["updates_s"] + row["collect_s"]) and row["eval_s"] > 0


def test_cli_prints_a_json_line_per_row():
    code, out, err = run_main(["bench", "probe", "subpixel-layers", "repeats=1", "dtypes=fp32", "--quick"])
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["layer"] for r in lines] == ["dec 128->64 k5 in5", "dec 64->32 k6 in13",
                                                         "dec 32->3 k6 in30"]
    code, out, err = run_main(["bench", "probe", "memory", "batch=4"])
    assert code == 1 and out == "" and err.startswith("planet: error: probe memory: 'batch=4'") and err.count("\n") == 1
    # `planet bench` alone is still the bench; options before or after `probe NAME` both count
    args = build_parser().parse_args(["bench", "--threads", "2", "--quick"])
    assert args.bench_command is None and args.threads == 2 and args.quick
    args = build_parser().parse_args(["bench", "--threads", "2", "probe", "memory", "updates=1"])
    assert (args.bench_command, args.name, args.probe_params, args.threads, args.quick) == (
        "probe", "memory", ["updates=1"], 2, False)
    args = build_parser().parse_args(["bench", "probe", "memory", "--quick", "--threads", "1"])
    assert args.quick and args.threads == 1


def test_gpu_check_runs_the_bench_processes_and_summarises_them(tmp_path, monkeypatch, capsys):
    """Each run is its own `planet bench --device D --compile --no-env --repeats 5 [more]` process writing
    bench_D_N.json; a run that fails stops the check with its stderr's tail and status 1."""
    monkeypatch.setattr(gpu_check.shutil, "which", lambda name: None)
    calls = []
    result = {"update": {"update_s": 0.0123, "update_s_compiled": 0.011}, "plan": {"plan_s": 0.00456}}

    def fake_run(cmd, stdout, stderr, env, cwd, check):
        calls.append(cmd)
        if len(calls) == 3:
            stderr.write("Traceback\nRuntimeError: CUDA out of memory\n")
            return type("Done", (), {"returncode": 1})()
        stdout.write(json.dumps(result))
        assert str(gpu_check.REPO) in env["PYTHONPATH"].split(":") and cwd == gpu_check.REPO
        return type("Done", (), {"returncode": 0})()

    monkeypatch.setattr(gpu_check.subprocess, "run", fake_run)
    assert gpu_check.main(["--out", str(tmp_path), "--device", "cpu", "--runs", "2", "--quick"]) == 0
    assert calls[0][1:] == ["-m", "planet.cli", "bench", "--device", "cpu", "--compile", "--no-env", "--repeats", "5",
                            "--quick"]
    summaries = [json.loads(line) for line in capsys.readouterr().out.splitlines()[1:]]
    assert summaries == [{"update_ms": 12.3, "update_ms_bf16": None, "update_ms_compiled": 11.0, "plan_ms": 4.6,
                          "plan_ms_bf16": None, "plan_ms_compiled": None, "plan_ms_compiled_bf16": None}] * 2
    assert json.loads((tmp_path / "bench_cpu_2.json").read_text()) == result
    assert (tmp_path / "nvidia_smi.txt").read_text() == "nvidia-smi: not found\n"
    assert (tmp_path / "torch.txt").read_text().startswith(torch.__version__)
    assert gpu_check.main(["--out", str(tmp_path), "--device", "cuda:0", "--runs", "1"]) == 1
    err = capsys.readouterr().err
    assert "CUDA out of memory" in err and "run 1 exited with status 1" in err
    assert (tmp_path / "bench_cuda_1.err").exists()
