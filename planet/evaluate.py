"""`planet evaluate`: noise-free evaluation of a trained run on held-out ('test' split) episodes."""

from __future__ import annotations

from pathlib import Path

import torch

from planet import rundir
from planet.rollouts import evaluate


@rundir.locked("planet evaluate", shared=True)  # beside `planet diagnose`, never beside a training
def evaluate_run(run_dir: Path, device: torch.device, episodes: int | None = None, progress: bool = True,
                 out: Path | None = None) -> dict:
    """Evaluate RUN's model on `episodes` test-split episodes; write RUN/evaluation.json (and a copy to `out`) and
    log test/* metrics and the file to the run's MLflow run."""
    run_dir = Path(run_dir)
    cfg, model = rundir.load_model(run_dir, device)
    episodes = cfg.eval.episodes if episodes is None else episodes
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    returns, _ = evaluate(model, cfg, device, episodes, "test", "final", progress)
    counters = rundir.progress(run_dir)
    result = {
        "task": cfg.task, "seed": cfg.seed, "preset": cfg.preset, "model": cfg.model.kind,
        "planner": cfg.planner.kind, "collect": cfg.collect.policy, "split": "test",
        "episodes": episodes, "returns": [float(r) for r in returns],
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "train_episodes": counters.get("episodes"), "env_steps": counters.get("env_steps"),
        "complete": (run_dir / rundir.SUMMARY_FILE).exists(),
    }
    own = rundir.write_result(run_dir, rundir.EVALUATION_FILE, result, out)
    with rundir.tracker(run_dir, cfg) as tracker:  # the training run's MLflow run, whatever the cwd
        tracker.log_metrics({"test/return_mean": result["return_mean"], "test/return_std": result["return_std"]},
                            step=int(counters.get("env_steps") or 0))
        tracker.log_artifact(own)
    return result
