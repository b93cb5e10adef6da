"""The run directory, one owner: every command that writes or reads a run (`planet train`, the multi-task agent,
`planet baseline`, the CEM grid's points, `planet evaluate`, `planet diagnose`, the report's reader) names its files
and reads and writes them through this package::

    RUN/config.yaml        resolved config (a rerun with a different config is refused)   save_config, load_config
    RUN/episodes/          training episodes, one .npz each (uint8 frames; planet/replay.py), written atomically
    RUN/checkpoint.pt      latest resumable state (model, optimiser, generators, counters)  save/read_checkpoint
    RUN/progress.json      counters of that checkpoint, for people and tools                write_progress, progress
    RUN/metrics.jsonl      every logged scalar, one JSON line per log call; the source of truth     (the tracker)
    RUN/params.json        flattened params; RUN/tags.json its tags; RUN/mlflow_run.json its MLflow run
    RUN/eval/              eval.gif, openloop.png of the final evaluation (a multi-task run: eval/TASK/)
    RUN/model.pt           final model weights (written when the run completes)               save_model
    RUN/summary.json       written last: the run is complete                                  write_summary, finished
    RUN/evaluation.json    `planet evaluate`; RUN/diagnostics.json `planet diagnose`          write_result
    RUN/episodes.json      the simulator baseline's finished episodes (it resumes per episode)
    RUN/.lock              who holds the run (:func:`lock`)

Every file is written to a temp name and renamed, so a killed command leaves each file complete or absent; the temp
files of killed writers are removed by the next command (``planet.utils.remove_stale_temp_files``).

- :func:`claim` makes a directory the home of a run with a given config (new, resumed, refused, or the old run moved
  to ``PARENT/.replaced/``); :func:`finished` returns the summary of a complete run, so that a rerun has nothing to do.
- :func:`lock` (and the decorator :func:`locked`) makes one process at a time the writer of RUN: `planet train`, the
  baselines and the CEM grid's points hold it alone, `planet evaluate` and `planet diagnose` (which add results to a
  trained run, and which the pipeline runs side by side) share it. A second process fails at once with one line
  naming the holder.
- :func:`build_model` builds a run's model from its config alone (no environment: the action size comes from the task
  table); :func:`load_model` adds its trained weights.
- :func:`tracker` builds every run's tracker (files + MLflow), continuing its MLflow run whatever the working
  directory; writers tag the code they run (:func:`code_tags`: package version, run-directory format, git commit).
- Formats: every run is tagged with the package version and the run-directory format it was written in
  (``planet_version``, ``run_format`` in tags.json). :func:`check_format` migrates an older run (``MIGRATIONS``) or
  refuses, in one line naming the version that wrote it and what to do, a run this code cannot read. A run from
  before the tags is format 1. tests/fixtures/ keeps run directories written by earlier releases, which the tests
  resume and evaluate.

Configs are either the agent's :class:`~planet.config.Config` (identity: every section but ``run``) or, for the
baselines, a plain mapping (identity: all of it); :func:`planet.config.digest` and :func:`planet.config.diff` are
the one hash and the one difference of two configs.
"""

from planet.rundir.claim import ON_CONFIG_CHANGE, claim
from planet.rundir.layout import (
    CHECKPOINT_FILE,
    CONFIG_FILE,
    DIAGNOSTICS_FILE,
    EPISODES_DIR,
    EVAL_DIR,
    EVAL_VIDEO_FILE,
    EVALUATION_FILE,
    FORMAT,
    FORMAT_TAG,
    LOCK_FILE,
    METRICS_FILE,
    MIGRATIONS,
    MODEL_FILE,
    OPENLOOP_FILE,
    PARAMS_FILE,
    PROGRESS_FILE,
    REPLACED_DIR,
    RUN_FILE,
    SIMULATOR_EPISODES_FILE,
    SUMMARY_FILE,
    TAGS_FILE,
    VERSION,
    VERSION_TAG,
    VIEW_FILE,
    RunFormatError,
    check_format,
    code_tags,
    finished,
    git_tags,
    load_config,
    progress,
    read_json,
    run_format,
    save_config,
    tag_history,
    tracker,
    tracking_uri,
    variant,
    write_json,
    write_progress,
    write_result,
    write_summary,
)
from planet.rundir.lock import RunInUseError, lock, locked
from planet.rundir.model import (
    CHECKPOINT_VERSION,
    action_size,
    build_model,
    load_model,
    read_checkpoint,
    save_checkpoint,
    save_model,
)

__all__ = [
    "CHECKPOINT_FILE", "CHECKPOINT_VERSION", "CONFIG_FILE", "DIAGNOSTICS_FILE", "EPISODES_DIR", "EVALUATION_FILE",
    "EVAL_DIR", "EVAL_VIDEO_FILE", "FORMAT", "FORMAT_TAG", "LOCK_FILE", "METRICS_FILE", "MIGRATIONS", "MODEL_FILE",
    "ON_CONFIG_CHANGE", "OPENLOOP_FILE", "PARAMS_FILE", "PROGRESS_FILE", "REPLACED_DIR", "RUN_FILE",
    "SIMULATOR_EPISODES_FILE", "SUMMARY_FILE", "TAGS_FILE", "VERSION", "VERSION_TAG", "VIEW_FILE", "RunFormatError",
    "RunInUseError", "action_size", "build_model", "check_format", "claim", "code_tags", "finished", "git_tags",
    "load_config", "load_model", "lock", "locked", "progress", "read_checkpoint", "read_json", "run_format",
    "save_checkpoint", "save_config", "save_model", "tag_history", "tracker", "tracking_uri", "variant",
    "write_json", "write_progress", "write_result", "write_summary",
]
