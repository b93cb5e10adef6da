"""Named probes: the focused measurements behind the dated speed records (reports/speed/), one function each.

`planet bench probe NAME [KEY=VALUE ...]` runs one on the CPU and prints one JSON line per row it measures
(`--quick`: tiny sizes, seconds, to check that it runs; `--threads N`). What `planet bench` times is the summary;
a probe takes one question apart (a layer, a matrix multiply shape, a profile, a switch on and off). Every probe
times with `planet.bench.median_times` (in turns after one warm-up each, so what is compared shares the machine's
drift) on the functions to time of planet/bench.py, at the paper's sizes unless its parameters say otherwise.

| probe | what it measures |
|---|---|
| `conv-layers` | each encoder and decoder convolution alone (800 images, float32): forward, backward, GFLOP/s |
| `subpixel-layers` | the decoder's transposed convolutions natively and in planet/ops.py's sub-pixel form, per layer |
| `subpixel-update` | one world-model update with the sub-pixel layers off and on, in turns, with its FLOP |
| `plan-gemms` | the dense-layer shapes of one CEM plan, those matrix multiplies alone, a 2048^3 block and the plan |
| `plan-compiled` | one CEM plan eager and with its horizon compiled (`compute.compile`), and the 2048^3 block |
| `profile` | torch.profiler's self time per operator of two updates (B=16) or two plans (the table goes to stderr) |
| `threads-slice` | a slice of a `cpu`-preset training episode (8 updates, 60 plans) at this process's threads |
| `memory` | resident memory before and after three paper-size updates (freed memory retained as the CLI does) |
| `user-episode` | one `cpu`-preset cartpole training episode and one 10-episode evaluation in one precision |

`python -m planet.benchmarks.gpu_check` is the prepared CUDA measurement (three `planet bench` processes).
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass

# probe name -> module of planet.benchmarks defining it as a function named like the probe ("-" -> "_")
PROBES = {
    "conv-layers": "layers",
    "subpixel-layers": "layers",
    "subpixel-update": "hot_paths",
    "plan-gemms": "hot_paths",
    "plan-compiled": "hot_paths",
    "profile": "hot_paths",
    "threads-slice": "workload",
    "memory": "workload",
    "user-episode": "workload",
}


@dataclass(frozen=True)
class Sizes:
    """What the probes time: the paper's update and plan, the `cpu` preset's, convolutions at a B=16 x L=50
    update's 800 images, and the float32 matmul block the rates are read against."""

    batch: int  # paper update, B
    cpu_batch: int  # the cpu preset's B
    length: int  # L
    plan: tuple[int, int, int, int]  # paper CEM: candidates J, iterations I, horizon H, top K
    cpu_plan: tuple[int, int, int, int]  # the cpu preset's CEM
    images: int
    matmul_n: int


PAPER_SIZES = Sizes(50, 16, 50, (1000, 10, 12, 100), (300, 5, 12, 30), 800, 2048)
QUICK_SIZES = Sizes(4, 4, 8, (64, 2, 4, 8), (32, 2, 3, 4), 4, 256)


def sizes(quick: bool) -> Sizes:
    return QUICK_SIZES if quick else PAPER_SIZES


def probe(name: str) -> Callable[..., Iterator[dict]]:
    """The function of probe `name`: `fn(quick=False, **params)` yielding one dict per measured row."""
    from planet.utils import PlanetError

    if name not in PROBES:
        raise PlanetError(f"no probe '{name}'; probes: {', '.join(PROBES)}")
    module = importlib.import_module(f"planet.benchmarks.{PROBES[name]}")
    return getattr(module, name.replace("-", "_"))


def parameters(name: str) -> dict[str, object]:
    """A probe's parameters (other than `quick`) and their defaults."""
    return {p.name: p.default for p in inspect.signature(probe(name)).parameters.values() if p.name != "quick"}


def parse_params(name: str, items: list[str]) -> dict[str, object]:
    """KEY=VALUE strings (values parsed as YAML: 16, 0.5, true, fp32,bf16) into probe `name`'s keyword arguments."""
    import yaml

    from planet.utils import PlanetError

    known = parameters(name)
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in known:
            valid = ", ".join(f"{k}={v}" for k, v in known.items()) or "none"
            raise PlanetError(f"probe {name}: '{item}' is not KEY=VALUE with one of its parameters ({valid})")
        params[key] = yaml.safe_load(text)
    return params


def run(name: str, params: dict[str, object] | None = None, quick: bool = False) -> Iterator[dict]:
    """Run probe `name`, yielding its rows, each headed by the probe's name, `quick` and torch's thread count."""
    import torch

    fn = probe(name)
    for row in fn(quick=quick, **(params or {})):
        yield {"probe": name, "quick": quick, "threads": torch.get_num_threads()} | row
