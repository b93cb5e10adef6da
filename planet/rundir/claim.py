"""Making a directory the home of a run (:func:`claim`): new, resumed, refused, or the old run moved aside."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from planet import config as config_lib
from planet.config import Config, ConfigError
from planet.rundir.layout import (
    CONFIG_FILE,
    EVAL_DIR,
    FORMAT,
    FORMAT_TAG,
    REPLACED_DIR,
    VERSION,
    VERSION_TAG,
    check_format,
    load_config,
    save_config,
)
from planet.rundir.lock import relock
from planet.tracking import mark_replaced, merge_tags
from planet.utils import remove_stale_temp_files

log = logging.getLogger(__name__)

ON_CONFIG_CHANGE = ("error", "archive")


def claim(run_dir: Path, config: Config | Mapping[str, Any], on_change: str = "error",
          identity: Callable[[Any], Mapping[str, Any]] | None = None) -> Config | dict[str, Any] | None:
    """Make RUN the home of a run with ``config``, for the process that holds it alone (`lock`).

    A new directory gets ``config.yaml`` and the tags of its format and package version. An existing one is first
    brought to the current run-directory format (`check_format`: migrated, or refused in one line); with the same
    config's *identity* it is resumed (bookkeeping such as ``run.*`` may differ and is rewritten); with another
    identity it is refused, or (``on_change="archive"``) moved aside to ``PARENT/.replaced/NAME-HASH-TIME`` with its
    MLflow run marked replaced (nothing is ever deleted). Temp files that killed writers left are removed.

    Returns the config RUN held before (None for a new directory or an archived run), so that a caller can react to
    bookkeeping that changed. ``identity`` maps a config to what makes it a different run (default:
    `planet.config.identity`).
    """
    if on_change not in ON_CONFIG_CHANGE:
        raise ValueError(f"on_change must be one of {ON_CONFIG_CHANGE}, got {on_change!r}")
    identity = identity or config_lib.identity
    run_dir = Path(run_dir)
    if (run_dir / CONFIG_FILE).exists():
        check_format(run_dir, migrate=True)
        for directory in (run_dir, run_dir / EVAL_DIR):
            remove_stale_temp_files(directory)
        old = load_config(run_dir, Config if isinstance(config, Config) else dict)
        changed = config_lib.diff(identity(old), identity(config))
        if not changed:
            if old != config:  # bookkeeping changed, e.g. run.mlflow=false: same run, new settings
                save_config(run_dir, config)
            return old
        if on_change == "error":
            lines = ", ".join(f"{k}: {x!r} -> {y!r}" for k, (x, y) in changed.items())
            raise ConfigError(
                f"{run_dir} holds a run with a different config ({lines}); use another --out directory, the same "
                "settings to resume it, or --on-config-change archive to set the old run aside"
            )
        _archive(run_dir, old_digest=config_lib.digest(identity(old)),
                 new_digest=config_lib.digest(identity(config)))
        relock(run_dir)  # the lock file moved with the old run: hold the new directory
    run_dir.mkdir(parents=True, exist_ok=True)
    merge_tags(run_dir, {FORMAT_TAG: str(FORMAT), VERSION_TAG: VERSION})  # before anything else is written
    save_config(run_dir, config)
    return None


def _archive(run_dir: Path, old_digest: str, new_digest: str) -> None:
    """Move a run made with another config to PARENT/.replaced/NAME-OLDHASH-TIME and mark its MLflow run replaced."""
    mark_replaced(run_dir, new_digest)
    dest = run_dir.parent / REPLACED_DIR / f"{run_dir.name}-{old_digest}-{time.strftime('%Y%m%d%H%M%S')}"
    dest.parent.mkdir(parents=True, exist_ok=True)
    run_dir.rename(dest)
    log.warning("config changed: moved the old run %s to %s", run_dir, dest)
