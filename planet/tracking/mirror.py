"""The MLflow mirror of one run: a best-effort copy of the run's files in an MLflow run. If MLflow cannot be
imported or reached (bad URI, locked or read-only database, server down), it logs one warning and stops; the
run's files go on. Uses ``MlflowClient`` with explicit run ids, never MLflow's global active run, so several
mirrors can coexist in one process."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from planet.tracking.files import METRICS_FILE
from planet.tracking.store import (
    check_server,
    get_or_create_experiment,
    init_store,
    quiet_mlflow_logging,
    resolve_tracking_uri,
)
from planet.utils import atomic_write_json

logger = logging.getLogger("planet.tracking")

# MLflow 3.17 limits (mlflow/utils/validation.py). Kept here so the values are truncated by us, visibly,
# instead of MLflow raising or logging one warning per long value.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
STATUSES = ("FINISHED", "FAILED", "KILLED")
_FIX_HINT = (
    "Metrics are still written to {path}. To fix: check MLFLOW_TRACKING_URI (or tracking_uri in "
    "params/pipeline.yaml; default sqlite:///mlflow.db), that the server is up or the database is writable and not "
    "locked, or run 'mlflow db upgrade <uri>'; or train without MLflow: `planet train ... run.mlflow=false`."
)


def _mlflow_str(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _mlflow_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    return {k[:MAX_KEY_LENGTH]: _mlflow_str(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


class MlflowMirror:
    """The MLflow run that mirrors one run directory (its id kept in ``RUN_FILE`` of that directory)."""

    def __init__(self, run_file: Path) -> None:
        self.run_file = Path(run_file)
        self.tracking_uri: str | None = None
        self.experiment_id: str | None = None
        self.run_id: str | None = None
        self.resumed = False
        self.client: Any = None  # MlflowClient while the mirror works, None once disabled (or never started)
        self.error: str | None = None  # why the mirror was disabled, if it was

    @property
    def enabled(self) -> bool:
        return self.client is not None

    def start(self, tracking_uri: str | None, experiment: str, run_name: str, params: Mapping[str, Any],
              tags: Mapping[str, str]) -> None:
        """Continue the run named in ``mlflow_run.json`` or create one; log params (new keys only: MLflow params are
        immutable) and, on a resume, the tags. Any failure disables the mirror with one warning."""
        try:
            self._start(tracking_uri, experiment, run_name, params, tags)
        except Exception as exc:  # any MLflow failure must not stop training
            self._disable("starting the run", exc)

    def _start(self, tracking_uri: str | None, experiment: str, run_name: str, params: Mapping[str, Any],
               tags: Mapping[str, str]) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        check_server(self.tracking_uri)
        quiet_mlflow_logging()
        from mlflow.tracking import MlflowClient

        init_store(self.tracking_uri)
        self.experiment_id = get_or_create_experiment(experiment, self.tracking_uri)
        client = MlflowClient(tracking_uri=self.tracking_uri)

        run_file = self.run_file
        existing: dict[str, str] = {}
        run_id = None
        if run_file.exists():
            run_id = json.loads(run_file.read_text(encoding="utf-8")).get("run_id")
            try:
                run = client.get_run(run_id)
                existing = dict(run.data.params)
                if run.info.lifecycle_stage == "deleted":
                    logger.warning(
                        "MLflow run %s was deleted; starting a new run for %s.", run_id, run_file.parent
                    )
                    run_id = None
                else:
                    self.resumed = True
            except Exception as exc:  # e.g. a different tracking URI than last time
                logger.warning(
                    "MLflow run %s from %s not found at %s (%s); starting a new run.",
                    run_id,
                    run_file,
                    self.tracking_uri,
                    exc,
                )
                run_id = None
                existing = {}

        if run_id is None:
            run = client.create_run(
                self.experiment_id, run_name=run_name, tags=_mlflow_tags(tags)
            )
            run_id = run.info.run_id
            atomic_write_json(
                run_file,
                {
                    "run_id": run_id,
                    "experiment_id": self.experiment_id,
                    "experiment": experiment,
                    "tracking_uri": self.tracking_uri,
                },
            )
        else:
            # Resumed: the run was FAILED/KILLED (or is still RUNNING after a kill -9).
            client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self.client = client

        from mlflow.entities import Param, RunTag

        params = {k[:MAX_KEY_LENGTH]: _mlflow_str(v, MAX_PARAM_VAL_LENGTH) for k, v in params.items()}
        # MLflow params are immutable: on resume log only new keys, and say which changed values are kept old.
        changed = sorted(k for k, v in params.items() if k in existing and existing[k] != v)
        if changed:
            logger.warning(
                "Params changed since MLflow run %s started; MLflow keeps the old values of %s (params.json "
                "has the new ones).",
                run_id,
                changed,
            )
        new = [Param(k, v) for k, v in params.items() if k not in existing]
        for chunk in _chunks(new, MAX_PARAMS_TAGS_PER_BATCH):
            client.log_batch(run_id, params=chunk, synchronous=True)
        if self.resumed and tags:
            items = [RunTag(k, v) for k, v in _mlflow_tags(tags).items()]
            for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run_id, tags=chunk, synchronous=True)

    def _disable(self, what: str, exc: BaseException) -> None:
        """Warn once and stop mirroring to MLflow; the JSON files keep being written."""
        self.client = None
        if self.error is not None:
            return
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.error = f"{what}: {type(exc).__name__}: {first_line}"
        logger.warning(
            "MLflow tracking disabled for %s after an error while %s (uri=%s): %s: %s. %s",
            self.run_file.parent,
            what,
            self.tracking_uri,
            type(exc).__name__,
            first_line,
            _FIX_HINT.format(path=self.run_file.parent / METRICS_FILE),
        )
        logger.debug("MLflow error details", exc_info=exc)

    def _call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self.client is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # see module docstring
            self._disable(what, exc)

    def log_metrics(self, values: Mapping[str, float], step: int, now: float) -> None:
        if self.client is None or not values:
            return
        from mlflow.entities import Metric

        ts = int(now * 1000)
        points = [Metric(k, v, ts, step) for k, v in values.items()]
        for chunk in _chunks(points, MAX_METRICS_PER_BATCH):
            self._call("logging metrics", self.client.log_batch, self.run_id, metrics=chunk, synchronous=True)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        if self.client is None:
            return
        log = self.client.log_artifacts if path.is_dir() else self.client.log_artifact
        self._call("logging an artifact", log, self.run_id, str(path), artifact_path)

    def set_tags(self, tags: Mapping[str, str]) -> None:
        if self.client is None or not tags:
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in _mlflow_tags(tags).items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._call("setting tags", self.client.log_batch, self.run_id, tags=chunk, synchronous=True)

    def last_steps(self, cut: dict[str, int]) -> dict[str, int]:
        """For each key of the cut lines, the last step MLflow holds (a kill between the JSONL line and the MLflow
        call leaves a point in the file but not in MLflow, so the file alone cannot say). Without MLflow, or if it
        cannot be asked, the cut lines' steps are the best guess."""
        if self.client is None or not cut:
            return cut
        try:
            return {key: max((m.step for m in self.client.get_metric_history(self.run_id, key)), default=-1)
                    for key in cut}
        except Exception as exc:  # see module docstring: MLflow never stops training
            self._disable("reading metric history", exc)
            return cut

    def terminate(self, status: str) -> None:
        if self.client is not None:
            self._call("ending the run", self.client.set_terminated, self.run_id, status)
        self.client = None
