"""Command-line interface: ``planet train | collect | evaluate | diagnose | config | bench`` (and more: ``--help``).

Examples::

    planet train --task cartpole_swingup --preset cpu --seed 1
    planet train --task walker_walk --preset paper model.kind=ssm planner.horizon=8
    planet train --task all --preset paper --views runs/views     # one agent for all six tasks (paper Figs. 6, 7)
    planet evaluate --run runs/cpu/cartpole_swingup/seed1-... --episodes 10
    planet diagnose --run runs/cpu/cartpole_swingup/seed1-... steps=200
    planet bench
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from planet.tasks import ALL_TASKS, TASKS, task_list

OVERRIDES_HELP = (
    "config overrides as dotted KEY=VALUE (values parsed as YAML: 12, 0.3, true, null, cem), applied after the "
    "preset, e.g. planner.horizon=8 model.kind=ssm loss.overshooting_distance=50. `planet config` lists every key."
)


def _task_name(text: str) -> str:
    """A task, or several for one multi-task agent: "all" or "A+B" (planet.tasks.task_list)."""
    try:
        task_list(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_run_args(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument("--task", required=True, type=_task_name, metavar="TASK",
                       help=f"DeepMind Control task, one of: {', '.join(TASKS)}; or {ALL_TASKS} (one agent trained "
                            "on the six tasks at once, paper Figs. 6, 7) or tasks joined by + (e.g. "
                            "cartpole_swingup+reacher_easy)")
    else:
        p.add_argument("--task", required=True, choices=list(TASKS), metavar="TASK",
                       help=f"DeepMind Control task, one of: {', '.join(TASKS)}")
    p.add_argument("--preset", default="paper",
                   help="named preset from params/presets.yaml: paper (default, GPU-sized), cpu (2-core machine), "
                        "debug (tiny, seconds)")
    p.add_argument("--seed", type=int, default=0, help="run seed: seeds every episode, the replay and the model")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help=OVERRIDES_HELP)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not >= 1")
    return value


def _default_out(config) -> Path:
    return Path("runs") / config.preset / config.task / f"seed{config.seed}-{config.digest()[:8]}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="planet", description="PlaNet (Hafner et al. 2019): train, evaluate, "
                                     "benchmark. Run `planet COMMAND --help` for each command's options.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true",
                        help="show Python tracebacks of expected errors too (also PLANET_DEBUG=1)")
    parser.add_argument("--params", type=Path, metavar="DIR",
                        help="params directory with presets.yaml and baselines.yaml (default: $PLANET_PARAMS, else "
                             "./params of the working directory, else the one beside the package source)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train an agent (resumes from the run directory's checkpoint if present)",
                       description="Train PlaNet: S random seed episodes, then C updates and one CEM-MPC episode, "
                       "repeated; evaluates every eval.every episodes; checkpoints so that the same command "
                       "resumes an interrupted run. With several tasks (--task all), one agent collects one episode "
                       "of each task per round (planet/multitask.py).")
    _add_run_args(p, several=True)
    p.add_argument("--out", type=Path, help="run directory (default: runs/PRESET/TASK/seedN-CONFIGHASH)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available, else cpu)")
    p.add_argument("--init-episodes", type=Path, metavar="DIR",
                   help="a `planet collect` output directory whose seed episodes this run starts from")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE", help="extra MLflow tag (repeatable)")
    p.add_argument("--on-config-change", choices=["error", "archive"], default="error",
                   help="if --out holds a run with another config: error (default), or archive = move it to "
                        "OUT_PARENT/.replaced/ and start afresh (used by the pipeline after a parameter change)")
    p.add_argument("--expect-hash", metavar="HASH",
                   help="fail unless the resolved config has this params hash (the pipeline passes the hash "
                        "Snakemake computed, so a job never trains with other params than were hashed)")
    p.add_argument("--views", type=Path, metavar="DIR",
                   help="several tasks only: also write one view per task, DIR/TASK/seedN, laid out as a single-task "
                        "run (evaluation curve, summary, open-loop strip) for the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("collect", help="collect the S random seed episodes of a run into a directory",
                       description="Collect the random seed episodes of (task, seed); `planet train "
                       "--init-episodes DIR` then starts from them (identical to collecting them itself).")
    _add_run_args(p)
    p.add_argument("--out", type=Path, required=True, help="output directory (episodes/ inside)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("evaluate", help="evaluate a trained run on noise-free held-out episodes",
                       description="Load RUN's final model (or latest checkpoint) and run noise-free episodes seeded "
                       "from the 'test' split (disjoint from training and from in-training evaluation). Writes "
                       "RUN/evaluation.json and logs test/* metrics to the run's MLflow run.")
    p.add_argument("--run", type=Path, required=True, help="run directory written by `planet train`")
    p.add_argument("--episodes", type=_positive_int, help="episodes (default: the run's eval.episodes)")
    p.add_argument("--out", type=Path, help="also write the result here (RUN/evaluation.json is always written)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")

    p = sub.add_parser("diagnose", help="state diagnostics of a trained run: true state from its latent features "
                       "(paper Fig. 11)",
                       description="Freeze RUN's model, train small heads to predict the true simulator state (the "
                       "task's positions, velocities, ...) from its features on RUN's training episodes, and score "
                       "them (R^2 per state group) on held-out 'test'-split episodes, from the posterior and from "
                       "open-loop priors at increasing distances. Settings: params/diagnostics.yaml, the block of "
                       "RUN's agent preset; overrides KEY=VALUE come last. Writes RUN/diagnostics.json and logs the "
                       "scores to the run's MLflow run.")
    p.add_argument("--run", type=Path, required=True, help="run directory written by `planet train`")
    p.add_argument("--out", type=Path, help="also write the result here (RUN/diagnostics.json is always written)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="settings overrides, e.g. steps=200 test_policy=random distances=[0,1,5,10]")

    p = sub.add_parser("config", help="print the resolved config of a task/preset/overrides as YAML",
                       description="Print the resolved config (defaults -> preset -> per-task -> overrides), then, as "
                       "YAML comments, the memory and disk the run needs at its last episode (planet/resources.py; "
                       "`planet train` checks them when it starts) and what is available here.")
    _add_run_args(p, several=True)

    p = sub.add_parser("init-tracking", help="create the MLflow store and experiments once (before parallel jobs)",
                       description="Create/upgrade the MLflow store and the named experiments under a file lock, so "
                       "that parallel jobs never race on the schema. Writes a JSON of experiment ids.")
    p.add_argument("--uri", help="tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", action="append", default=[], help="experiment name (repeatable)")
    p.add_argument("--describe", action="append", default=[], metavar="NAME=TEXT",
                   help="description of experiment NAME, shown in the MLflow UI (repeatable)")
    p.add_argument("--out", type=Path, help="write {experiment: id} JSON here")

    p = sub.add_parser("manifest", help="write a JSON listing of files (pipeline stage outputs for DVC)",
                       description="List files (directories expanded) with their size and a SHA-256 (files up to "
                       "1 MB) or modification time (larger files) into one JSON, written atomically: a small "
                       "stage output for DVC that changes whenever the listed results change.")
    p.add_argument("--out", type=Path, required=True, help="manifest file to write")
    p.add_argument("paths", nargs="*", type=Path, help="files or directories to list (none: an empty manifest, e.g. "
                   "a stage with no jobs in this preset)")

    p = sub.add_parser("baseline", help="run a baseline: SAC from pixels, or CEM with the true simulator",
                       description="sac: Stable-Baselines3 SAC on the same pixel environment and env-step budget "
                       "as the agent preset, evaluated noise-free on the same 'test' seeds as `planet evaluate`. "
                       "simulator: CEM planning (the preset's H, I, J, K) on copies of the true physics, the "
                       "paper's upper bound, on the same seeds. Settings: params/baselines.yaml (keys sac.*, "
                       "simulator.*); overrides KEY=VALUE come last.")
    # One sub-command per kind (not a positional `kind`): argparse binds a `nargs="*"` positional together with the
    # positional before it, so `baseline sac --task T KEY=VALUE` would reject the overrides after the options.
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{sac,simulator}")
    for kind, text in (("sac", "model-free SAC from pixels"), ("simulator", "CEM with the true simulator")):
        k = kinds.add_parser(kind, help=text, description=p.description)
        _add_run_args(k)
        k.add_argument("--out", type=Path, required=True, help="run directory")
        k.add_argument("--device", default="auto", help="SAC's torch device: auto (default), cpu, cuda")
        k.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE",
                       help="extra MLflow tag (repeatable)")
        k.add_argument("--experiment", help="MLflow experiment (default: the agent preset's run.experiment, "
                       "'planet', where `planet train` logs too)")
        k.add_argument("--no-progress", action="store_true", help="no progress output")

    p = sub.add_parser("report", help="generate Table 1, figures and README from pipeline results", add_help=False)
    p.add_argument("report_args", nargs=argparse.REMAINDER, help="arguments of `python -m planet.report --help`")

    # listed here for `planet --help`; main() hands its arguments to planet/record.py's own parser
    p = sub.add_parser("curve", help="one run's learning record: curve.csv and curve.png (eval return vs "
                       "episodes and wall clock)", add_help=False)
    p.add_argument("curve_args", nargs=argparse.REMAINDER, help="arguments of `planet curve --help`")

    p = sub.add_parser("bench", help="time the hot paths at paper sizes and print JSON",
                       description="Time one world-model update (B=50, L=50), one CEM plan (J=1000, I=10, H=12), "
                       "env steps with rendering, and the update's FLOP/s against this machine's matmul rate.")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda if available)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per measurement (median reported)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks the benchmark runs, times nothing useful")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    p.add_argument("--compile", action="store_true", help="also time the update, the plan and the user episode "
                   "compiled (compute.compile; compiling costs ~5-25 s per function on a 2-core CPU)")
    p.add_argument("--no-episode", action="store_true", help="skip the cpu-preset training episode and evaluation "
                   "(a few minutes on a 2-core CPU)")
    p.add_argument("--no-env", action="store_true", help="skip env steps and rendering, and the episode: times only "
                   "the update and the plan, with no dm_control or MuJoCo needed (e.g. a GPU node without them)")
    p.add_argument("--bf16", choices=("auto", "always", "never"), default="auto",
                   help="time the bfloat16 update and plan: auto (default) where bf16 is native (AVX512-BF16, AMX, "
                   "CUDA; emulated bf16 on other CPUs is ~10x slower than float32 and would take most of the run)")
    from planet.benchmarks import PROBES

    probes = p.add_subparsers(dest="bench_command", metavar="probe")  # optional: `planet bench` alone is the bench
    q = probes.add_parser("probe", help="run one named measurement on the CPU and print JSON lines",
                          description="Run one named probe (planet/benchmarks/; docs/speed.md lists what each "
                          "measures) on the CPU at the paper's sizes and print one JSON line per measured row.")
    q.add_argument("name", choices=list(PROBES), metavar="NAME", help=f"one of: {', '.join(PROBES)}")
    q.add_argument("probe_params", nargs="*", metavar="KEY=VALUE",
                   help="the probe's parameters (values parsed as YAML), e.g. repeats=3 dtypes=fp32 what=plan")
    q.add_argument("--quick", action="store_true", default=argparse.SUPPRESS,
                   help="tiny sizes: checks the probe runs, measures nothing useful")
    q.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="torch intra-op threads")

    p = sub.add_parser("cost", help="a pipeline preset's jobs and their expected hours, before they run",
                       description="Count the jobs of a pipeline preset with a Snakemake dry run and price them per "
                       "job kind and per task: with per-unit seconds measured now on this machine at the preset's "
                       "sizes (an update, a model step of the planner, an environment step per task), or from a "
                       "report's compute.csv (--from-records). planet/cost.py; docs/pipeline.md.")
    p.add_argument("--pipeline-preset", metavar="NAME", help="preset of params/pipeline.yaml (default: its `preset:`)")
    p.add_argument("--from-records", nargs="?", const=True, default=False, metavar="CSV",
                   help="price from a report's compute.csv (default reports/PRESET/compute.csv) instead of measuring")
    p.add_argument("--remaining", action="store_true", help="only the jobs Snakemake would still run (default: all)")
    p.add_argument("--repeats", type=_positive_int, default=1, help="timed calls per measurement after a warm-up "
                   "(median; default 1)")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["curve"]:  # a learning record of one run (planet/record.py)
        from planet.record import main as curve_main

        return curve_main(argv[1:])
    if argv[:1] == ["report"]:  # its own parser (argparse cannot forward "--options" through a subparser)
        from planet.report import main as report_main

        return report_main(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("absl", "OpenGL"):  # backend chatter at INFO on every start
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from planet.envs import setup_rendering
    from planet.utils import retain_freed_memory

    retain_freed_memory()  # before the first large tensor (see its docstring)
    setup_rendering()  # before anything imports dm_control
    from planet.config import ConfigError
    from planet.replay import CorruptEpisodeError, SeedEpisodesError
    from planet.utils import DeviceError, PlanetError

    if args.debug or os.environ.get("PLANET_DEBUG") == "1":
        return _dispatch(args)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        print(f"planet: config error: {exc}", file=sys.stderr)
        return 2
    except (SeedEpisodesError, CorruptEpisodeError) as exc:  # bad input files: the message says which and why
        print(f"planet: error: {exc}", file=sys.stderr)
        return 1
    except DeviceError as exc:
        print(f"planet: error: {exc}", file=sys.stderr)
        return 2
    except PlanetError as exc:
        print(f"planet: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a path named on the command line: missing, not writable, a file where a directory goes
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"planet: error: {exc.strerror or exc}{where} - check the path and its permissions "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    import yaml

    from planet import config as config_lib
    from planet.utils import choose_device

    if args.params:
        os.environ[config_lib.PARAMS_ENV] = str(args.params.resolve())  # read by every resolve, baselines too
    if args.command in ("train", "collect", "config"):
        cfg = config_lib.resolve(args.task, args.preset, args.seed, args.overrides)
    if args.command == "config":
        from planet.resources import estimate

        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        print(estimate(cfg).describe())  # comment lines: the output stays the config's YAML
        return 0
    if args.command == "train":
        from planet.train import Trainer

        if args.expect_hash and cfg.digest() != args.expect_hash:
            raise config_lib.ConfigError(
                f"the config resolved from {config_lib.presets_file()} has params hash {cfg.digest()}, not the "
                f"{args.expect_hash} the pipeline computed - the pipeline and this command read different params; "
                f"run Snakemake from the checkout the package is installed from, or pass --params DIR"
            )
        tags = dict(t.split("=", 1) for t in args.tag if "=" in t)
        out = args.out or _default_out(cfg)
        several = len(task_list(cfg.task)) > 1
        if several and args.init_episodes:
            raise config_lib.ConfigError("--init-episodes is for one task; an agent of several tasks collects its "
                                         "own seed episodes")
        if args.views and not several:
            raise config_lib.ConfigError("--views is for an agent of several tasks (--task all or A+B)")
        print(f"planet: run directory {out}", file=sys.stderr)
        if several:
            from planet.multitask import MultiTaskTrainer

            trainer: Trainer = MultiTaskTrainer(cfg, out, choose_device(args.device), progress=not args.no_progress,
                                                tags=tags, on_config_change=args.on_config_change, views=args.views)
        else:
            trainer = Trainer(cfg, out, choose_device(args.device), init_episodes=args.init_episodes,
                              progress=not args.no_progress, tags=tags, on_config_change=args.on_config_change)
        summary = trainer.run()
        print(json.dumps(summary, indent=2))
        return 0
    if args.command == "collect":
        from planet.rollouts import collect_seed_episodes

        n = collect_seed_episodes(cfg, args.out, progress=not args.no_progress)
        print(json.dumps({"out": str(args.out), "episodes": n}))
        return 0
    if getattr(args, "threads", None):  # evaluate, diagnose, bench
        import torch

        torch.set_num_threads(args.threads)
    if args.command == "evaluate":
        from planet.evaluate import evaluate_run

        result = evaluate_run(args.run, choose_device(args.device), args.episodes, progress=not args.no_progress,
                              out=args.out)
        print(json.dumps(result, indent=2))
        return 0
    if args.command == "diagnose":
        from planet.diagnostics import diagnose_run

        result = diagnose_run(args.run, choose_device(args.device), args.overrides, progress=not args.no_progress,
                              out=args.out)
        print(json.dumps({k: result[k] for k in ("task", "seed", "model", "variant", "distances", "r2", "r2_mean",
                                                  "wall_s")}, indent=2))
        return 0
    if args.command == "init-tracking":
        from planet.tracking import get_or_create_experiment, init_store, resolve_tracking_uri
        from planet.utils import atomic_write_text

        uri = resolve_tracking_uri(args.uri)
        init_store(uri)
        descriptions = dict(d.split("=", 1) for d in args.describe if "=" in d)
        ids = {name: get_or_create_experiment(name, uri, description=descriptions.get(name))
               for name in args.experiment}
        text = json.dumps({"tracking_uri": uri, "experiments": ids}, indent=2)
        if args.out:
            atomic_write_text(args.out, text)
        print(text)
        return 0
    if args.command == "manifest":
        from planet.utils import atomic_write_text, manifest

        atomic_write_text(args.out, json.dumps(manifest(args.paths), indent=1, sort_keys=True))
        return 0
    if args.command == "baseline":
        from planet import baselines

        tags = dict(t.split("=", 1) for t in args.tag if "=" in t)
        if args.kind == "sac":
            summary = baselines.train_sac(args.task, args.preset, args.seed, args.out, args.overrides, args.device,
                                          tags, progress=not args.no_progress, experiment=args.experiment)
        else:
            summary = baselines.run_simulator(args.task, args.preset, args.seed, args.out, args.overrides, tags,
                                              progress=not args.no_progress, experiment=args.experiment)
        print(json.dumps(summary, indent=2))
        return 0
    if args.command == "bench" and args.bench_command == "probe":
        from planet import benchmarks

        for row in benchmarks.run(args.name, benchmarks.parse_params(args.name, args.probe_params), quick=args.quick):
            print(json.dumps(row), flush=True)
        return 0
    if args.command == "bench":
        from planet.bench import run_bench

        result = run_bench(choose_device(args.device), quick=args.quick, repeats=args.repeats,
                           compiled=args.compile, episode=not args.no_episode, bf16_choice=args.bf16,
                           env=not args.no_env)
        print(json.dumps(result, indent=2))
        return 0
    if args.command == "cost":
        from planet.cost import run_cost

        records = None if isinstance(args.from_records, bool) else Path(args.from_records)
        print(run_cost(args.pipeline_preset, records, bool(args.from_records), args.remaining, args.repeats))
        return 0
    raise AssertionError(args.command)


if __name__ == "__main__":
    sys.exit(main())
