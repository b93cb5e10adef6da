"""Issue 9's CUDA measurement, prepared for a session lent a GPU (not run yet: no session has had one). From the
repository root of the GPU machine:

    python -m planet.benchmarks.gpu_check                       # writes to $OUT (the device tool's), else gpu_check/
    python -m planet.benchmarks.gpu_check --device cpu --quick  # the same steps on a CPU at tiny sizes (a dry run)

It records `nvidia-smi` and torch's CUDA build, then runs `planet bench --device cuda --compile --no-env --repeats 5`
three times, each in its own process (`bench_cuda_N.json`, its stderr in `bench_cuda_N.err`; further arguments go
to `planet bench`), and prints each run's update and plan in milliseconds: float32, bf16 and compiled
(`compute.compile`: CUDA graphs for the plan's horizon). `--no-env`: the device image has torch, numpy, PyYAML and
tqdm, all the bench needs without environments, but not dm_control and MuJoCo, whose wheels (83 MB) exceed what
one device call can carry (64 MiB); so the paper-preset episode time needs a trimmed dm_control wheel and is not
measured here. Issue 9's GPU targets: update <= 25 ms, plan <= 8 ms. The project pins torch 2.13; the image's
torch was 2.11 when last listed (untested with this code).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUMMARY = {"update_ms": ("update", "update_s"), "update_ms_bf16": ("update", "update_s_bf16"),
           "update_ms_compiled": ("update", "update_s_compiled"), "plan_ms": ("plan", "plan_s"),
           "plan_ms_bf16": ("plan", "plan_s_bf16"), "plan_ms_compiled": ("plan", "plan_s_compiled"),
           "plan_ms_compiled_bf16": ("plan", "plan_s_compiled_bf16")}


def summary(result: dict) -> dict[str, float | None]:
    """One `planet bench` result's update and plan times in milliseconds, rounded to 0.1 (None: not timed)."""
    out = {}
    for key, (part, name) in SUMMARY.items():
        seconds = result[part].get(name)
        out[key] = None if seconds is None else round(seconds * 1e3, 1)
    return out


def bench_command(device: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "planet.cli", "bench", "--device", device, "--compile", "--no-env", "--repeats",
            "5", *extra]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m planet.benchmarks.gpu_check", description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "gpu_check"),
                        help="folder for the outputs (default: $OUT, else ./gpu_check)")
    parser.add_argument("--device", default=os.environ.get("DEVICE") or "cuda", help="default: $DEVICE, else cuda")
    parser.add_argument("--runs", type=int, default=3, help="bench processes, one after the other (default 3)")
    args, extra = parser.parse_known_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                        "PYTHONUNBUFFERED": "1"}
    smi = shutil.which("nvidia-smi")
    with open(args.out / "nvidia_smi.txt", "w") as f:
        if smi:
            subprocess.run([smi], stdout=f, stderr=subprocess.STDOUT, check=False)
        else:
            f.write("nvidia-smi: not found\n")
    import torch

    versions = f"{torch.__version__} {torch.version.cuda} {torch.cuda.is_available() and torch.cuda.get_device_name()}"
    (args.out / "torch.txt").write_text(versions + "\n")
    print(versions, flush=True)
    stem = "bench_" + args.device.split(":")[0]
    for i in range(1, args.runs + 1):
        json_path, err_path = args.out / f"{stem}_{i}.json", args.out / f"{stem}_{i}.err"
        with open(json_path, "w") as out, open(err_path, "w") as err:
            done = subprocess.run(bench_command(args.device, extra), stdout=out, stderr=err, env=env, cwd=REPO,
                                  check=False)
        if done.returncode != 0:
            tail = err_path.read_text().splitlines()[-20:]
            print("\n".join(tail), file=sys.stderr)
            print(f"gpu_check: run {i} exited with status {done.returncode} (stderr: {err_path})", file=sys.stderr)
            return 1
        print(json.dumps(summary(json.loads(json_path.read_text()))), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
