"""Experiment tracking: the run's own files, mirrored to MLflow.

The files are the source of truth (:mod:`planet.tracking.files`); MLflow is a best-effort mirror
(:mod:`planet.tracking.mirror`): if it cannot be imported or reached (bad URI, locked or read-only database, server
down), the tracker logs one warning and keeps writing the files. The store itself (URIs, schema, experiments,
replaced runs) is :mod:`planet.tracking.store`. :class:`Tracker` composes the two for one run.

MLflow is imported lazily inside functions because importing it takes seconds and most users of this package
(tests, the report reading ``metrics.jsonl``) never need it.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from types import TracebackType

from planet.tracking.files import (
    METRICS_FILE,
    PARAMS_FILE,
    RUN_FILE,
    TAGS_FILE,
    RunFiles,
    merge_tags,
    read_metrics,
    read_tags,
)
from planet.tracking.mirror import STATUSES, MlflowMirror
from planet.tracking.store import (
    DEFAULT_TRACKING_URI,
    check_server,
    get_or_create_experiment,
    init_store,
    mark_replaced,
    resolve_tracking_uri,
)
from planet.utils import flatten

__all__ = [
    "DEFAULT_TRACKING_URI",
    "METRICS_FILE",
    "PARAMS_FILE",
    "RUN_FILE",
    "TAGS_FILE",
    "Tracker",
    "check_server",
    "get_or_create_experiment",
    "init_store",
    "mark_replaced",
    "merge_tags",
    "read_metrics",
    "read_tags",
    "resolve_tracking_uri",
]

logger = logging.getLogger(__name__)


class Tracker:
    """Logs params/metrics/tags/artifacts of one run to ``run_dir`` (:class:`~planet.tracking.files.RunFiles`) and
    mirrors them to MLflow (:class:`~planet.tracking.mirror.MlflowMirror`; a resumed run continues its MLflow run).

    ``step`` counts environment steps (after action repeat). After a resume, :meth:`truncate_metrics` cuts the
    file back to the checkpoint, and the re-run steps MLflow already holds are not sent again (MLflow cannot delete
    points; a resume is bit-identical, so they carry the same values): MLflow holds each point once.
    """

    def __init__(self, run_dir: Path, *, experiment: str, run_name: str, params: dict, tags: dict,
                 tracking_uri: str | None = None, enabled: bool = True) -> None:
        self.run_dir = Path(run_dir)
        self.experiment = experiment
        self.run_name = run_name
        self.params = flatten(params)
        self.tags: dict[str, str] = {str(k): str(v) for k, v in tags.items()}
        self.files = RunFiles(self.run_dir, self.params, self.tags)
        self.mirror = MlflowMirror(self.run_dir / RUN_FILE)
        self._mirrored_until: dict[str, int] = {}  # key -> last step whose point MLflow has (see truncate_metrics)
        self._last_point: dict[str, tuple[int, float]] = {}  # key -> (step, value) last mirrored
        self._closed = False
        if enabled:
            self.mirror.start(tracking_uri, experiment, run_name, self.params, self.tags)

    # -- what the mirror is doing
    @property
    def metrics_path(self) -> Path:
        return self.files.metrics_path

    @property
    def mlflow_enabled(self) -> bool:
        """True while metrics are mirrored to MLflow."""
        return self.mirror.enabled

    @property
    def mlflow_error(self) -> str | None:
        """Why the MLflow mirror was disabled, if it was."""
        return self.mirror.error

    @property
    def run_id(self) -> str | None:
        return self.mirror.run_id

    @property
    def resumed(self) -> bool:
        """True if an existing MLflow run was continued."""
        return self.mirror.resumed

    @property
    def tracking_uri(self) -> str | None:
        return self.mirror.tracking_uri

    # -- logging
    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Append ``{"step", "time", **metrics}`` to ``metrics.jsonl`` and mirror the finite values to MLflow."""
        self._check_open()
        if not metrics:
            return
        now, step = time.time(), int(step)
        finite = self.files.append_metrics(metrics, step, now)
        if self._mirrored_until:  # steps re-run after a resume: MLflow has these points already
            finite = {k: v for k, v in finite.items() if step > self._mirrored_until.get(k, -1)}
        # A point already sent (e.g. `episodes` on an episode's line and again on its evaluation's, at one step) is
        # sent once: MLflow would store it twice and draw it twice. metrics.jsonl keeps every line as written.
        finite = {k: v for k, v in finite.items() if self._last_point.get(k) != (step, v)}
        self._last_point.update({k: (step, v) for k, v in finite.items()})
        self.mirror.log_metrics(finite, step, now)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file or directory into the MLflow run's artifacts (no-op without MLflow)."""
        self._check_open()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(path)
        self.mirror.log_artifact(path, artifact_path)

    def set_tags(self, tags: dict) -> None:
        """Add or overwrite run tags (``tags.json`` and MLflow)."""
        self._check_open()
        tags = {str(k): str(v) for k, v in tags.items()}
        self.tags.update(tags)
        self.files.merge_tags(tags)
        self.mirror.set_tags(tags)

    # -- resume
    def metrics_offset(self) -> int:
        """Byte size of ``metrics.jsonl``: store it in checkpoints, pass it to :meth:`truncate_metrics` on resume."""
        self._check_open()
        return self.files.offset()

    def truncate_metrics(self, offset: int) -> None:
        """Cut ``metrics.jsonl`` back to ``offset`` (:meth:`RunFiles.truncate`) and remember, per key, the last
        step MLflow holds, so that the re-run steps are not sent to it twice."""
        self._check_open()
        self._mirrored_until = self.mirror.last_steps(self.files.truncate(offset))

    # -- end
    def close(self, status: str = "FINISHED") -> None:
        """Close the metrics file and end the MLflow run with ``status`` (FINISHED, FAILED, KILLED). Idempotent."""
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        if self._closed:
            return
        self._closed = True
        self.files.close()
        self.mirror.terminate(status)

    def __enter__(self) -> Tracker:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt) or (
            issubclass(exc_type, SystemExit) and getattr(exc, "code", 1) not in (0, None)
        ):
            self.close("KILLED")  # Ctrl-C, or SIGTERM turned into SystemExit by a handler
        elif issubclass(exc_type, SystemExit):
            self.close("FINISHED")
        else:
            self.close("FAILED")

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"Tracker for {self.run_dir} is closed")

