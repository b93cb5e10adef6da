"""The run directory's files: their names, the run-directory format and its migrations, the small files (config,
progress, summary, results, tags) and the run's tracker."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from planet import config as config_lib
from planet.config import Config, ConfigError
from planet.tracking import METRICS_FILE, PARAMS_FILE, RUN_FILE, TAGS_FILE, Tracker, merge_tags, read_tags
from planet.utils import PlanetError, atomic_write_text, json_default, remove_stale_temp_files

log = logging.getLogger(__name__)

__all__ = ["METRICS_FILE", "PARAMS_FILE", "RUN_FILE", "TAGS_FILE"]  # the tracker's files, named in planet.tracking

CONFIG_FILE = "config.yaml"
CHECKPOINT_FILE = "checkpoint.pt"
PROGRESS_FILE = "progress.json"
MODEL_FILE = "model.pt"
SUMMARY_FILE = "summary.json"
EVALUATION_FILE = "evaluation.json"
DIAGNOSTICS_FILE = "diagnostics.json"
SIMULATOR_EPISODES_FILE = "episodes.json"
VIEW_FILE = "view.json"
EPISODES_DIR = "episodes"
EVAL_DIR = "eval"
EVAL_VIDEO_FILE = "eval.gif"
OPENLOOP_FILE = "openloop.png"
LOCK_FILE = ".lock"
REPLACED_DIR = ".replaced"


def _package_version() -> str:
    try:
        return metadata.version("planet-repro")
    except metadata.PackageNotFoundError:  # a source tree used without installing it
        return "unknown"


VERSION = _package_version()
"""The version of planet-repro that runs (tags every run it writes: ``planet_version``)."""
FORMAT = 1
"""The run-directory format this code writes (tag ``run_format``). Bump it with any change that older code could
not read, or that this code could not read from older runs, and add the migration from the old format."""
MIGRATIONS: dict[int, Callable[[Path], None]] = {}
"""{format n: a function that rewrites a run directory of format n as format n + 1, in place, each file atomically}.
Run by the exclusive holder of a run (`planet train`, `planet baseline`) before it resumes the run."""
FORMAT_TAG, VERSION_TAG, VERSIONS_TAG = "run_format", "planet_version", "planet_versions"
UNTAGGED = "a planet-repro of before runs were tagged with their version (0.1.0 or earlier)"


class RunFormatError(PlanetError):
    """The run directory was written in a format this code neither reads nor migrates (the message says which
    version wrote it and what to do)."""


def run_format(run_dir: Path) -> tuple[int, str]:
    """(RUN's run-directory format, who wrote it); runs from before the ``run_format`` tag are format 1."""
    tags = read_tags(run_dir)
    writer = f"planet-repro {tags[VERSION_TAG]}" if tags.get(VERSION_TAG) else UNTAGGED
    try:
        return int(tags.get(FORMAT_TAG, 1)), writer
    except (TypeError, ValueError):
        raise RunFormatError(f"{Path(run_dir) / TAGS_FILE}: tag {FORMAT_TAG}={tags[FORMAT_TAG]!r} is not a format "
                             "number - restore the file (or set the tag to the format that wrote the run)") from None


def check_format(run_dir: Path, migrate: bool = False) -> None:
    """Make sure this code can read RUN: a run of the current format passes; an older one is migrated (`migrate`,
    for the run's exclusive holder) or refused with what to run to migrate it; one this code cannot read (newer, or
    without a migration) is refused in one line naming the version that wrote it and what to do."""
    run_dir = Path(run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        return  # not a run (yet): nothing to read
    found, writer = run_format(run_dir)
    if found > FORMAT:
        raise RunFormatError(
            f"{run_dir} was written by {writer} (run-directory format {found}); this is planet-repro {VERSION}, which "
            f"reads formats up to {FORMAT} - use {writer} or newer for this run, or start a new --out directory")
    missing = [n for n in range(found, FORMAT) if n not in MIGRATIONS]
    if missing:
        raise RunFormatError(
            f"{run_dir} was written by {writer} (run-directory format {found}); planet-repro {VERSION} writes format "
            f"{FORMAT} and has no migration from format {missing[0]} - finish or read this run with {writer}, or "
            "start a new --out directory")
    if found < FORMAT and not migrate:
        raise RunFormatError(
            f"{run_dir} was written by {writer} (run-directory format {found}); run its training command (planet "
            f"train or planet baseline, --out {run_dir}) once with planet-repro {VERSION} to migrate it to format "
            f"{FORMAT} (a complete run is only migrated), then this command again")
    for n in range(found, FORMAT):
        MIGRATIONS[n](run_dir)
        merge_tags(run_dir, {FORMAT_TAG: str(n + 1)})
        log.warning("migrated %s from run-directory format %d to %d", run_dir, n, n + 1)


# ---- the code a run ran on


def code_tags(run_dir: Path) -> dict[str, str]:
    """Tags of the code that writes RUN: package version (``planet_version``; ``planet_versions``, every version the
    run has run on), run-directory format, git commit (:func:`git_tags`)."""
    return {VERSION_TAG: VERSION, VERSIONS_TAG: tag_history(run_dir, VERSIONS_TAG, VERSION_TAG, VERSION),
            FORMAT_TAG: str(FORMAT), **git_tags(run_dir)}


def git_tags(run_dir: Path | None = None) -> dict[str, str]:
    """``{"git_commit": SHA}`` of the code that runs (empty outside a git checkout).

    With ``run_dir`` (a run that may be resuming), also ``git_commits``: every commit the run has run on, in order,
    space-separated; tags.json keeps only the latest ``git_commit``, and a run resumed after a ``git pull`` would
    otherwise not say that part of it ran on older code.
    """
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if not commit:
        return {}
    if run_dir is None:
        return {"git_commit": commit}
    return {"git_commit": commit, "git_commits": tag_history(run_dir, "git_commits", "git_commit", commit)}


def tag_history(run_dir: Path, history_key: str, latest_key: str, value: str) -> str:
    """The space-separated values that tag `latest_key` has had over RUN's lives (read from RUN/tags.json's
    `history_key`, or its `latest_key` where the run predates the history), with `value` appended where it differs
    from the last one. An unreadable tags.json loses only the history."""
    old = read_tags(run_dir)
    history = str(old.get(history_key) or old.get(latest_key) or "").split()
    if not history or history[-1] != value:
        history.append(value)
    return " ".join(history)


# ---- the small files


def save_config(run_dir: Path, config: Config | Mapping[str, Any]) -> None:
    """Write RUN/config.yaml (atomically): the agent's resolved config, or a baseline's run config."""
    path = Path(run_dir) / CONFIG_FILE
    if isinstance(config, Config):
        config_lib.save(config, path)
    else:
        atomic_write_text(path, yaml.safe_dump(dict(config), sort_keys=False))


def load_config(run_dir: Path, like: type = Config) -> Config | dict[str, Any]:
    """RUN/config.yaml as the agent's :class:`Config` (`like` = Config, validated) or a plain mapping (`like` = dict,
    a baseline's); a damaged file is one ConfigError naming it."""
    path = Path(run_dir) / CONFIG_FILE
    if like is Config:
        return config_lib.load(path)  # names the file and the problem if it is corrupt
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML ({getattr(exc, 'problem', exc)}); delete the run directory "
                          "or restore the file") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a config mapping; delete the run directory or restore the file")
    return data


def write_json(path: Path, data: Any) -> None:
    """Write one of a run's JSON files atomically (indented, keys in their order, the project's encoder)."""
    atomic_write_text(Path(path), json.dumps(data, indent=2, default=json_default) + "\n")


def read_json(path: Path) -> dict[str, Any] | None:
    """One of a run's JSON files, None where it is absent; a damaged one is one PlanetError naming it."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise PlanetError(f"{path} cannot be read ({exc}) - restore it, or delete it and rerun the command that "
                          "wrote it") from None
    if not isinstance(data, dict):
        raise PlanetError(f"{path} does not hold a JSON object - restore it, or delete it and rerun the command "
                          "that wrote it")
    return data


def finished(run_dir: Path) -> dict | None:
    """The summary of a complete run (``summary.json`` exists: nothing to do), else None."""
    summary = read_json(Path(run_dir) / SUMMARY_FILE)
    if summary is not None:
        log.info("%s is complete (%s exists); nothing to do", run_dir, SUMMARY_FILE)
    return summary


def write_summary(run_dir: Path, summary: Mapping[str, Any]) -> None:
    """Write RUN/summary.json, the last file of a run: it says that the run is complete."""
    write_json(Path(run_dir) / SUMMARY_FILE, dict(summary))


def progress(run_dir: Path) -> dict[str, Any]:
    """The counters of RUN's latest checkpoint (``progress.json``: episodes, updates, env_steps); {} before it."""
    return read_json(Path(run_dir) / PROGRESS_FILE) or {}


def write_progress(run_dir: Path, counters: Mapping[str, Any]) -> None:
    """Write RUN/progress.json, the counters of its latest checkpoint, for people and tools."""
    write_json(Path(run_dir) / PROGRESS_FILE, dict(counters))


def write_result(run_dir: Path, name: str, result: Mapping[str, Any], out: Path | None = None) -> Path:
    """Write a result of RUN as RUN/NAME (JSON, atomically; the file its MLflow run shows, named for what it is) and
    a copy to ``out`` (the pipeline's RESULTS/... file) if given; returns RUN/NAME. The temp files that killed
    writers left beside them are removed."""
    own = Path(run_dir) / name
    write_json(own, dict(result))
    remove_stale_temp_files(own.parent)
    if out and Path(out).resolve() != own.resolve():
        write_json(Path(out), dict(result))
        remove_stale_temp_files(Path(out).parent, Path(out).name)
    return own


def variant(run_dir: Path) -> str | None:
    """The pipeline variant RUN was trained as (its ``variant`` tag, e.g. ``gru``), or None outside the pipeline."""
    return read_tags(run_dir).get("variant")


# ---- tracking


def tracking_uri(run_dir: Path) -> str | None:
    """The MLflow store that RUN's tracking continues in: None (the tracker's choice) when MLFLOW_TRACKING_URI is set
    or the run has no MLflow run yet, else the store recorded in RUN/mlflow_run.json.

    Without this, a resume or `planet evaluate` started from another working directory (the default store,
    sqlite:///mlflow.db, is relative to it) started a new MLflow run in another database and overwrote
    RUN/mlflow_run.json, cutting the run's link to its MLflow run.
    """
    path = Path(run_dir) / RUN_FILE
    if os.environ.get("MLFLOW_TRACKING_URI") or not path.exists():
        return None
    with contextlib.suppress(ValueError, OSError):
        return json.loads(path.read_text()).get("tracking_uri")
    return None


def tracker(run_dir: Path, config: Config, *, tags: Mapping[str, Any] | None = None,
            params: Mapping[str, Any] | None = None, experiment: str | None = None, name_suffix: str = "",
            writer: bool = False) -> Tracker:
    """The tracker of RUN (its files, mirrored to MLflow), continuing its MLflow run whatever the working directory.

    The MLflow run is named by variant (the ``variant`` tag, or the run's own), task and seed (`Config.run_name`),
    then `name_suffix`; its experiment is `experiment` or ``run.experiment``; params are the config's (or `params`).
    `writer`: the command writes the run (`planet train`, `planet baseline`): it also tags the code that runs
    (:func:`code_tags`); a command that adds a result to a trained run (`planet evaluate`, `planet diagnose`) leaves
    the tags its training wrote.
    """
    tags = {**(code_tags(run_dir) if writer else {}), **(tags or {})}
    name = config.run_name(tags.get("variant") or variant(run_dir)) + name_suffix
    return Tracker(run_dir, experiment=experiment or config.run.experiment, run_name=name,
                   params=config.to_dict() if params is None else dict(params), tags=tags,
                   enabled=config.run.mlflow, tracking_uri=tracking_uri(run_dir))
