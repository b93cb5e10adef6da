"""`planet evaluate`: noise-free evaluation of a trained run on held-out ('test' split) episodes."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from planet.rollouts import evaluate
from planet.rundir import load_model, tracking_uri
from planet.tracking import Tracker
from planet.utils import atomic_write_text


def evaluate_run(run_dir: Path, device: torch.device, episodes: int | None = None, progress: bool = True,
                 out: Path | None = None) -> dict:
    """Evaluate RUN's model on `episodes` test-split episodes; write RUN/evaluation.json (and a copy to `out`) and
    log test/* metrics and the file to the run's MLflow run."""
    run_dir = Path(run_dir)
    cfg, model = load_model(run_dir, device)
    episodes = cfg.eval.episodes if episodes is None else episodes
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    returns, _ = evaluate(model, cfg, device, episodes, "test", "final", progress)
    progress_path = run_dir / "progress.json"
    counters = json.loads(progress_path.read_text()) if progress_path.exists() else {}
    result = {
        "task": cfg.task, "seed": cfg.seed, "preset": cfg.preset, "model": cfg.model.kind,
        "planner": cfg.planner.kind, "collect": cfg.collect.policy, "split": "test",
        "episodes": episodes, "returns": [float(r) for r in returns],
        "return_mean": float(returns.mean()), "return_std": float(returns.std()),
        "train_episodes": counters.get("episodes"), "env_steps": counters.get("env_steps"),
        "complete": (run_dir / "summary.json").exists(),
    }
    # The run directory always holds it as evaluation.json (what the MLflow run shows); `out` (the pipeline's
    # RESULTS/eval/VARIANT/TASK/seedN.json) is a copy, so that the artifact is named for what it is.
    text = json.dumps(result, indent=2)
    own = run_dir / "evaluation.json"
    atomic_write_text(own, text)
    if out and Path(out).resolve() != own.resolve():
        atomic_write_text(Path(out), text)
    tags_path = run_dir / "tags.json"
    variant = json.loads(tags_path.read_text()).get("variant") if tags_path.exists() else None
    tracker = Tracker(run_dir, experiment=cfg.run.experiment, run_name=cfg.run_name(variant),
                      params=cfg.to_dict(), tags={}, enabled=cfg.run.mlflow,
                      tracking_uri=tracking_uri(run_dir))  # the training run's store, whatever the cwd
    with tracker:
        tracker.log_metrics({"test/return_mean": result["return_mean"], "test/return_std": result["return_std"]},
                            step=int(counters.get("env_steps") or 0))
        tracker.log_artifact(own)
    return result
