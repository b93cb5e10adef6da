"""`planet bench`'s timing helpers: what is compared is timed in turns, and the medians are the medians."""

from __future__ import annotations

import pytest
import torch

from planet import bench


def test_compared_functions_are_timed_in_turns(monkeypatch):
    """A fake clock that each function advances by its own cost, slower every call (a drifting machine): the calls
    alternate a, b, a, b after one warm-up each, and each median is that function's middle timing."""
    clock = {"now": 0.0, "drift": 1.0}
    calls = []
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock["now"])

    def timed(name: str, cost: float):
        def run() -> None:
            calls.append(name)
            clock["now"] += cost * clock["drift"]
            clock["drift"] += 0.1  # every call runs 10% slower than the first one did

        return run

    a_s, b_s = bench.median_times([timed("a", 1.0), timed("b", 3.0)], 3, torch.device("cpu"))
    assert calls == ["a", "b", "a", "b", "a", "b", "a", "b"]
    # drift at the timed calls: a at 1.2, 1.4, 1.6 and b at 1.3, 1.5, 1.7 -> medians 1.4 * 1 and 1.5 * 3
    assert abs(a_s - 1.4) < 1e-9 and abs(b_s - 4.5) < 1e-9
    in_turns = b_s / a_s  # 3.21 for a true ratio of 3
    # timed one after the other, the same drift makes b look 4x a: a at 1.1, 1.2, 1.3, then b at 1.5, 1.6, 1.7
    clock.update(now=0.0, drift=1.0)
    a_apart = bench.median_time(timed("a", 1.0), 3, torch.device("cpu"))
    b_apart = bench.median_time(timed("b", 3.0), 3, torch.device("cpu"))
    assert abs(b_apart / a_apart - 4.0) < 1e-9 and abs(in_turns - 3.0) < abs(b_apart / a_apart - 3.0)


def test_matmul_block_counts_its_flop():
    fn, flop = bench.matmul_fn(torch.device("cpu"), 8, count=3)
    fn()
    assert flop == 3 * 2 * 8**3


def test_bf16_is_timed_only_where_it_is_native(monkeypatch):
    """`--bf16 auto` times bfloat16 on a CPU with AVX512-BF16 or AMX-BF16, else says why not (flags and the measured
    dense-layer ratio); where the flags are unknown, the measured ratio decides (>= 0.5); `always` and `never`
    override both."""
    cpu = torch.device("cpu")
    monkeypatch.setattr(bench.precision, "cpu_flags", lambda: ["avx2", "fma"])
    monkeypatch.setattr(bench.precision, "bf16_speedup", lambda device: 0.09)  # emulated (AVX2-only EPYC)
    timed, why = bench.bf16_timed("auto", cpu)
    assert not timed and "0.09x" in why and "avx2, fma" in why and "--bf16 always" in why
    assert bench.bf16_timed("always", cpu) == (True, None)
    monkeypatch.setattr(bench.precision, "bf16_speedup", lambda device: 0.6)  # a loaded machine's noisy probe
    assert not bench.bf16_timed("auto", cpu)[0]  # the flags decide where they are known
    monkeypatch.setattr(bench.precision, "cpu_flags", lambda: ["avx2", "fma", "avx512f", "avx512_bf16"])
    monkeypatch.setattr(bench.precision, "bf16_speedup", lambda device: 1.1)  # native, too slow for `auto` to pick
    assert bench.bf16_timed("auto", cpu) == (True, None)
    assert bench.bf16_timed("never", cpu) == (False, "skipped: --bf16 never")
    monkeypatch.setattr(bench.precision, "cpu_flags", lambda: [])  # not Linux: the measurement decides
    assert bench.bf16_timed("auto", cpu) == (True, None)
    monkeypatch.setattr(bench.precision, "bf16_speedup", lambda device: 0.3)
    assert not bench.bf16_timed("auto", cpu)[0]
    with pytest.raises(ValueError, match="valid: auto, always, never"):
        bench.bf16_timed("sometimes", cpu)


@pytest.mark.slow  # compiles the update's encoder and decoder and the planner's horizon (~30-60 s on 2 cores)
def test_quick_bench_times_the_compiled_paths_in_turns():
    """With `compiled`, the compiled plan is compiled first (its first call reported apart) and then timed in turns
    with the eager plan and the matmul block, so its speed-up and its fraction of the matmul rate are like for like."""
    result = bench.run_bench(torch.device("cpu"), quick=True, repeats=1, compiled=True, episode=False,
                             bf16_choice="never")
    plan, update = result["plan"], result["update"]
    assert plan["plan_s_compiled"] > 0 and plan["plan_first_call_s_compiled"] > 0
    assert plan["compiled_speedup"] == pytest.approx(plan["plan_s"] / plan["plan_s_compiled"])
    assert plan["plan_fraction_of_matmul_rate_compiled"] == pytest.approx(
        plan["plan_fraction_of_matmul_rate"] * plan["plan_s"] / plan["plan_s_compiled"])
    assert update["update_s_compiled"] > 0 and update["update_first_call_s_compiled"] > 0
    assert update["update_fraction_of_matmul_rate_compiled"] == pytest.approx(
        update["update_flop_per_s"] / update["matmul_flop_per_s"] * update["compiled_speedup"])
    assert "plan_s_compiled_bf16" not in plan and "update_s_compiled_bf16" not in update


def test_quick_bench_times_bf16_beside_float32_when_asked():
    """`--bf16 always` times the bf16 update and plan in turns with float32 and reports each speed-up as the ratio
    of the two medians (emulated bf16 on a CPU without it is slow, but the quick sizes take a second); with
    `env=False` (`--no-env`, e.g. a GPU node without dm_control) it times no environment."""
    result = bench.run_bench(torch.device("cpu"), quick=True, repeats=1, bf16_choice="always", env=False)
    assert result["env"] == [] and result["user_episode"] == []
    plan, update = result["plan"], result["update"]
    assert plan["bf16_speedup"] == pytest.approx(plan["plan_s"] / plan["plan_s_bf16"])
    assert update["bf16_speedup"] == pytest.approx(update["update_s"] / update["update_s_bf16"])
    assert result["auto_precision"]["bf16_timed"] and "bf16_skipped" not in result["auto_precision"]
