"""Experiment tracking: JSON/JSONL files in the run directory, mirrored to MLflow.

The files are the source of truth. MLflow is a best-effort mirror: if it cannot be imported or reached
(bad URI, locked database, server down), the tracker logs one warning and keeps writing the files.

MLflow is imported lazily inside functions because importing it takes seconds and most users of this
module (tests, report scripts reading ``metrics.jsonl``) never need it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # relative to the current working directory

PARAMS_FILE = "params.json"
TAGS_FILE = "tags.json"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "mlflow_run.json"

# MLflow 3.17 limits (mlflow/utils/validation.py). Kept here so the values are truncated by us, visibly,
# instead of MLflow raising or logging one warning per long value.
MAX_PARAM_VAL_LENGTH = 6000
MAX_TAG_VAL_LENGTH = 8000
MAX_KEY_LENGTH = 250
MAX_PARAMS_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000

_RESERVED_METRIC_KEYS = ("step", "time")
_STATUSES = ("FINISHED", "FAILED", "KILLED")
_FIX_HINT = (
    "Metrics are still written to {path}. To fix: check MLFLOW_TRACKING_URI (or tracking_uri in "
    "params/pipeline.yaml; default sqlite:///mlflow.db), that the server is up or the database is writable and not "
    "locked, or run 'mlflow db upgrade <uri>'; or train without MLflow: `planet train ... run.mlflow=false`."
)


# ----------------------------------------------------------------------------------------------------
# URIs and store setup
# ----------------------------------------------------------------------------------------------------


def _sqlite_path(uri: str) -> Path | None:
    """Return the database file of a ``sqlite:///`` URI, or None (not sqlite, or in-memory)."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri[len("sqlite:///") :].split("?", 1)[0]
    if not path or path == ":memory:":
        return None
    return Path(path)


SERVER_PROBE_TIMEOUT_S = 5.0


def check_server(uri: str, timeout: float = SERVER_PROBE_TIMEOUT_S) -> None:
    """For an http(s) tracking URI, one quick request to the server's /health endpoint before MLflow's client (which
    retries each request 7 times with backoff: an unreachable server stalled every start by ~4 minutes). Raises
    ConnectionError with the URI and the fix if the server does not answer within `timeout` seconds."""
    if not uri.startswith(("http://", "https://")):
        return
    import urllib.error  # noqa: PLC0415
    import urllib.request  # noqa: PLC0415

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
            pass
    except urllib.error.HTTPError:
        return  # it answered (a proxy or an older server without /health): MLflow's client takes over
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"MLflow server {uri} did not answer ({reason}); start it (`mlflow server ...`), "
                              "fix MLFLOW_TRACKING_URI / tracking_uri, or pass run.mlflow=false") from None


def resolve_tracking_uri(uri: str | None = None) -> str:
    """Pick the tracking URI: explicit argument > ``MLFLOW_TRACKING_URI`` > :data:`DEFAULT_TRACKING_URI`.

    Relative sqlite paths are made absolute against the current directory now, so that a later
    ``os.chdir`` (or a subprocess started elsewhere) still writes to the same database.
    """
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    path = _sqlite_path(uri)
    if path is None or path.is_absolute():
        return uri
    query = uri.split("?", 1)[1] if "?" in uri else ""
    resolved = "sqlite:///" + str(Path.cwd() / path)
    return f"{resolved}?{query}" if query else resolved


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<db path>.lock`` (sqlite only; no-op otherwise).

    SQLite itself serialises writes, but MLflow's schema creation (alembic migrations in many
    transactions) and get-or-create of experiments are check-then-act sequences that race between
    processes. flock is advisory and may not work on some network file systems; use an MLflow server there.
    """
    path = _sqlite_path(uri)
    if path is None:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, best effort
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _quiet_mlflow_logging() -> None:
    """Silence INFO chatter of schema setup ("Creating initial MLflow database tables...") unless the user
    configured these loggers; warnings and errors still pass."""
    for name in ("alembic", "mlflow.store.db.utils"):
        lg = logging.getLogger(name)
        if lg.level == logging.NOTSET:
            lg.setLevel(logging.WARNING)


def _default_artifact_dir(uri: str) -> Path | None:
    path = _sqlite_path(uri)
    return None if path is None else path.resolve().parent / "mlartifacts"


def init_store(uri: str) -> None:
    """Create (or upgrade) the MLflow schema of a sqlite store once, safe under concurrent process starts.

    Several processes starting on a fresh database would otherwise all run the migrations at once and fail.
    No-op for non-sqlite URIs (an MLflow server manages its own schema).
    """
    path = _sqlite_path(uri)
    if path is None:
        return
    _quiet_mlflow_logging()
    from mlflow.exceptions import MlflowException
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    artifact_root = str(_default_artifact_dir(uri))
    with _store_lock(uri):
        try:
            # Instantiating the store creates all tables on an empty DB and verifies the schema version.
            SqlAlchemyStore(uri, artifact_root)
        except MlflowException as exc:
            if "out-of-date database schema" not in str(exc):
                raise
            # Database written by an older MLflow: same as `mlflow db upgrade <uri>` (private helper, but
            # the one the CLI uses). Older MLflow versions cannot use the DB afterwards, hence the warning.
            import mlflow.store.db.utils as db_utils

            logger.warning("Upgrading MLflow database schema of %s (as 'mlflow db upgrade' would).", path)
            db_utils._upgrade_db(SqlAlchemyStore._get_or_create_engine(uri))
            SqlAlchemyStore(uri, artifact_root)


def _safe_dir_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def get_or_create_experiment(name: str, uri: str, artifact_root: Path | None = None,
                             description: str | None = None) -> str:
    """Return the id of experiment ``name``, creating it if needed (race-safe across processes); ``description``
    (if given) becomes the experiment's description in the UI (the ``mlflow.note.content`` tag).

    Artifacts go to ``artifact_root`` or, for sqlite, ``<dir of the db>/mlartifacts/<name>``; never to
    ``./mlruns`` of whatever the working directory happens to be. For other stores without
    ``artifact_root`` the server/store default applies.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if artifact_root is None:
        base = _default_artifact_dir(uri)
        artifact_root = None if base is None else base / _safe_dir_name(name)
    location = None if artifact_root is None else Path(artifact_root).resolve().as_uri()
    client = MlflowClient(tracking_uri=uri)
    with _store_lock(uri):
        exp = client.get_experiment_by_name(name)
        if exp is None:
            try:
                exp_id = client.create_experiment(name, artifact_location=location)
                if description:
                    client.set_experiment_tag(exp_id, "mlflow.note.content", description)
                return exp_id
            except MlflowException as exc:
                # Another process (without our lock, e.g. on an HTTP server) created it first.
                if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                exp = client.get_experiment_by_name(name)
                if exp is None:
                    raise
    if exp.lifecycle_stage == "deleted":
        # Do not silently undo a deletion made in the UI; same policy as mlflow.set_experiment.
        raise RuntimeError(
            f"MLflow experiment {name!r} (id {exp.experiment_id}) is deleted. Restore it "
            f"('mlflow experiments restore --experiment-id {exp.experiment_id}') or delete it permanently "
            "('mlflow gc') or use another experiment name."
        )
    if description and exp.tags.get("mlflow.note.content") != description:
        client.set_experiment_tag(exp.experiment_id, "mlflow.note.content", description)
    return exp.experiment_id


# ----------------------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------------------


def mark_replaced(run_dir: Path, replaced_by: str) -> None:
    """Tag RUN's MLflow run as replaced (a rerun after a config change archived RUN to `.replaced/`): tags
    `replaced=true` and `replaced_by_params_hash`, and " (replaced)" after its name, so that grouping by name or
    variant in the UI no longer mixes it with the new run (filter `tags.replaced != 'true'`). A run without an
    MLflow run, or a store that cannot be reached, is left as it is with a warning: the run files are the record."""
    path = Path(run_dir) / RUN_FILE
    if not path.exists():
        return
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        _quiet_mlflow_logging()
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=info["tracking_uri"])
        run = client.get_run(info["run_id"])
        client.set_tag(run.info.run_id, "replaced", "true")
        client.set_tag(run.info.run_id, "replaced_by_params_hash", replaced_by)
        if not (run.info.run_name or "").endswith(" (replaced)"):
            client.set_tag(run.info.run_id, "mlflow.runName", f"{run.info.run_name} (replaced)")
    except Exception as exc:  # never let bookkeeping of an old run stop a new one
        logger.warning("could not mark the MLflow run of %s as replaced (%s: %s)", run_dir, type(exc).__name__, exc)


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: ``{"a": {"b": 1}} -> {"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_params(value, prefix=f"{full}."))
        else:
            flat[full] = value
    return flat


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    with contextlib.suppress(TypeError, ValueError):
        return value.item()  # numpy / torch scalars
    with contextlib.suppress(TypeError, ValueError):
        return value.tolist()  # small arrays
    return str(value)


def _write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON via a temporary file and rename, so a kill never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=_json_default) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def _mlflow_str(value: Any, limit: int) -> str:
    text = value if isinstance(value, str) else str(value)
    return text[:limit]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def read_metrics(path: Path) -> list[dict]:
    """Parse a ``metrics.jsonl`` file into a list of dicts (non-finite values appear as ``None``).

    A malformed final line (left by a kill mid-write) is skipped with a warning; a malformed line elsewhere
    is real corruption and raises ``ValueError``.
    """
    path = Path(path)
    lines = path.read_bytes().split(b"\n")
    records: list[dict] = []
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            if i == last:
                logger.warning(
                    "%s: skipping partial final line %d (%d bytes): %s", path, i + 1, len(raw), exc
                )
                break
            raise ValueError(f"{path}: malformed line {i + 1}: {exc}") from exc
        records.append(record)
    return records


# ----------------------------------------------------------------------------------------------------
# Tracker
# ----------------------------------------------------------------------------------------------------


def _last_steps(path: Path, offset: int) -> dict[str, int]:
    """For the lines of ``path`` after byte ``offset``: each metric key's last step (unreadable lines skipped)."""
    last: dict[str, int] = {}
    with open(path, "rb") as fh:
        fh.seek(offset)
        for line in fh:
            try:
                record = json.loads(line)
                step = int(record["step"])
            except (ValueError, KeyError, TypeError):
                continue
            for key in record.keys() - _RESERVED_METRIC_KEYS:
                last[key] = max(step, last.get(key, step))
    return last


class Tracker:
    """Logs params/metrics/tags/artifacts of one training run to ``run_dir`` and mirrors them to MLflow.

    Files written in ``run_dir``: ``params.json`` (flattened params), ``tags.json``, ``metrics.jsonl`` (one
    ``{"step", "time", **metrics}`` object per line) and ``mlflow_run.json`` (the MLflow run id, so that a
    resumed training continues the same MLflow run). Uses ``MlflowClient`` with explicit run ids, never
    MLflow's global active run, so several trackers can coexist in one process.
    """

    def __init__(
        self,
        run_dir: Path,
        *,
        experiment: str,
        run_name: str,
        params: dict,
        tags: dict,
        tracking_uri: str | None = None,
        enabled: bool = True,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.experiment = experiment
        self.run_name = run_name
        self.params = flatten_params(params)
        self.tags: dict[str, str] = {str(k): str(v) for k, v in tags.items()}
        self.metrics_path = self.run_dir / METRICS_FILE
        self.tracking_uri: str | None = None
        self.run_id: str | None = None
        self.experiment_id: str | None = None
        self.resumed = False
        self._client: Any = None  # MlflowClient while the mirror works, None once disabled
        self._closed = False
        self._warned_nonfinite = False
        self.mlflow_error: str | None = None  # why the MLflow mirror was disabled, if it was
        self._mirrored_until: dict[str, int] = {}  # key -> last step whose point MLflow has (see truncate_metrics)

        _write_json_atomic(self.run_dir / PARAMS_FILE, self.params)
        self._merge_tags_file(self.tags)
        self._drop_partial_tail()
        self._metrics_fh = open(self.metrics_path, "a", encoding="utf-8")  # closed in close()

        if enabled:
            try:
                self._start_mlflow(tracking_uri)
            except Exception as exc:  # any MLflow failure must not stop training
                self._disable_mlflow("starting the run", exc)

    # -- MLflow side

    @property
    def mlflow_enabled(self) -> bool:
        """True while metrics are mirrored to MLflow."""
        return self._client is not None

    def _start_mlflow(self, tracking_uri: str | None) -> None:
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        check_server(self.tracking_uri)
        _quiet_mlflow_logging()
        from mlflow.tracking import MlflowClient

        init_store(self.tracking_uri)
        self.experiment_id = get_or_create_experiment(self.experiment, self.tracking_uri)
        client = MlflowClient(tracking_uri=self.tracking_uri)

        run_file = self.run_dir / RUN_FILE
        existing: dict[str, str] = {}
        run_id = None
        if run_file.exists():
            run_id = json.loads(run_file.read_text(encoding="utf-8")).get("run_id")
            try:
                run = client.get_run(run_id)
                existing = dict(run.data.params)
                if run.info.lifecycle_stage == "deleted":
                    logger.warning(
                        "MLflow run %s was deleted; starting a new run for %s.", run_id, self.run_dir
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
                self.experiment_id, run_name=self.run_name, tags=self._mlflow_tags(self.tags)
            )
            run_id = run.info.run_id
            _write_json_atomic(
                run_file,
                {
                    "run_id": run_id,
                    "experiment_id": self.experiment_id,
                    "experiment": self.experiment,
                    "tracking_uri": self.tracking_uri,
                },
            )
        else:
            # Resumed: the run was FAILED/KILLED (or is still RUNNING after a kill -9).
            client.update_run(run_id, status="RUNNING")
        self.run_id = run_id
        self._client = client

        from mlflow.entities import Param, RunTag

        params = {k[:MAX_KEY_LENGTH]: _mlflow_str(v, MAX_PARAM_VAL_LENGTH) for k, v in self.params.items()}
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
        if self.resumed and self.tags:
            tags = [RunTag(k, v) for k, v in self._mlflow_tags(self.tags).items()]
            for chunk in _chunks(tags, MAX_PARAMS_TAGS_PER_BATCH):
                client.log_batch(run_id, tags=chunk, synchronous=True)

    @staticmethod
    def _mlflow_tags(tags: Mapping[str, Any]) -> dict[str, str]:
        return {k[:MAX_KEY_LENGTH]: _mlflow_str(v, MAX_TAG_VAL_LENGTH) for k, v in tags.items()}

    def _disable_mlflow(self, what: str, exc: BaseException) -> None:
        """Warn once and stop mirroring to MLflow; the JSON files keep being written."""
        self._client = None
        if self.mlflow_error is not None:
            return
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        self.mlflow_error = f"{what}: {type(exc).__name__}: {first_line}"
        logger.warning(
            "MLflow tracking disabled for %s after an error while %s (uri=%s): %s: %s. %s",
            self.run_dir,
            what,
            self.tracking_uri,
            type(exc).__name__,
            first_line,
            _FIX_HINT.format(path=self.metrics_path),
        )
        logger.debug("MLflow error details", exc_info=exc)

    def _mirror(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        if self._client is None:
            return
        try:
            fn(*args, **kwargs)
        except Exception as exc:  # see module docstring
            self._disable_mlflow(what, exc)

    # -- public API

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Append ``{"step", "time", **metrics}`` to ``metrics.jsonl`` and mirror to MLflow.

        ``step`` counts environment steps (after action repeat). NaN/inf are written as ``null`` (JSON has
        no NaN) and not sent to MLflow; the first occurrence is warned about.
        """
        self._check_open()
        if not metrics:
            return
        now = time.time()
        step = int(step)
        record: dict[str, Any] = {"step": step, "time": round(now, 3)}
        finite: dict[str, float] = {}
        bad: list[str] = []
        for key, value in metrics.items():
            if key in _RESERVED_METRIC_KEYS:
                raise ValueError(f"metric name {key!r} is reserved in {METRICS_FILE}")
            value = float(value)
            if math.isfinite(value):
                record[key] = finite[key] = value
            else:
                record[key] = None
                bad.append(key)
        if bad and not self._warned_nonfinite:
            self._warned_nonfinite = True
            logger.warning(
                "Non-finite metric values at step %d: %s; written as null to %s and not sent to MLflow "
                "(further occurrences are not reported).",
                step,
                sorted(bad),
                self.metrics_path,
            )
        self._metrics_fh.write(json.dumps(record, allow_nan=False) + "\n")
        self._metrics_fh.flush()

        if self._mirrored_until:  # steps re-run after a resume: MLflow has these points already
            finite = {k: v for k, v in finite.items() if step > self._mirrored_until.get(k, -1)}
        if self._client is not None and finite:
            from mlflow.entities import Metric

            ts = int(now * 1000)
            points = [Metric(k, v, ts, step) for k, v in finite.items()]
            for chunk in _chunks(points, MAX_METRICS_PER_BATCH):
                self._mirror(
                    "logging metrics", self._client.log_batch, self.run_id, metrics=chunk, synchronous=True
                )

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        """Copy a file or directory into the MLflow run's artifacts (no-op without MLflow)."""
        self._check_open()
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(path)
        if self._client is None:
            return
        if path.is_dir():
            self._mirror(
                "logging an artifact", self._client.log_artifacts, self.run_id, str(path), artifact_path
            )
        else:
            self._mirror(
                "logging an artifact", self._client.log_artifact, self.run_id, str(path), artifact_path
            )

    def set_tags(self, tags: dict) -> None:
        """Add or overwrite run tags (``tags.json`` and MLflow)."""
        self._check_open()
        tags = {str(k): str(v) for k, v in tags.items()}
        self.tags.update(tags)
        self._merge_tags_file(tags)
        if self._client is None or not tags:
            return
        from mlflow.entities import RunTag

        items = [RunTag(k, v) for k, v in self._mlflow_tags(tags).items()]
        for chunk in _chunks(items, MAX_PARAMS_TAGS_PER_BATCH):
            self._mirror("setting tags", self._client.log_batch, self.run_id, tags=chunk, synchronous=True)

    def metrics_offset(self) -> int:
        """Current byte size of ``metrics.jsonl``: store it in checkpoints, pass it to
        :meth:`truncate_metrics` on resume. Flushed and fsynced so that the offset never points past data
        lost in a machine crash."""
        self._check_open()
        self._metrics_fh.flush()
        os.fsync(self._metrics_fh.fileno())
        return self.metrics_path.stat().st_size

    def truncate_metrics(self, offset: int) -> None:
        """Cut ``metrics.jsonl`` back to ``offset`` (from :meth:`metrics_offset`), so that steps re-run after
        resuming from a checkpoint are not duplicated in the file.

        MLflow cannot delete metric points, so the cut lines' points stay there, and the re-run steps are not sent
        to MLflow a second time: a key's points up to the last step MLflow holds for it are skipped (a resume is
        bit-identical, so they carry the same values), and MLflow holds each point once.

        A file shorter than ``offset`` (cut, or deleted, after the checkpoint) is kept as it is, with a warning:
        the lines it lost are gone, the run's state is in the checkpoint, and logging continues after the lines that
        remain. An ``offset`` inside a line (the file was edited) cuts back to the line boundary before it.
        """
        self._check_open()
        if offset < 0:
            raise ValueError(f"offset {offset} is negative")
        self._metrics_fh.flush()
        size = self.metrics_path.stat().st_size
        if offset > size:
            logger.warning(
                "%s is shorter (%d bytes) than the checkpoint recorded (%d bytes): the metrics logged in between "
                "are lost; the run resumes from its checkpoint and logs on after the lines that remain.",
                self.metrics_path, size, offset,
            )
            return
        if offset == size:
            return
        if offset > 0:
            with open(self.metrics_path, "rb") as fh:
                head = fh.read(offset)
            boundary = head.rfind(b"\n") + 1
            if boundary != offset:
                logger.warning("%s: the checkpoint's offset %d is inside a line (was the file edited?); cutting back "
                               "to the line boundary at %d.", self.metrics_path, offset, boundary)
                offset = boundary
        self._mirrored_until = self._mlflow_last_steps(_last_steps(self.metrics_path, offset))
        os.truncate(self.metrics_path, offset)  # the handle is in append mode, so writes follow the new end

    def _mlflow_last_steps(self, cut: dict[str, int]) -> dict[str, int]:
        """For each key of the cut lines, the last step MLflow holds (a kill between the JSONL line and the MLflow
        call leaves a point in the file but not in MLflow, so the file alone cannot say). Without MLflow, or if it
        cannot be asked, the cut lines' steps are the best guess."""
        if self._client is None or not cut:
            return cut
        try:
            return {key: max((m.step for m in self._client.get_metric_history(self.run_id, key)), default=-1)
                    for key in cut}
        except Exception as exc:  # see module docstring: MLflow never stops training
            self._disable_mlflow("reading metric history", exc)
            return cut

    def close(self, status: str = "FINISHED") -> None:
        """Close the metrics file and end the MLflow run with ``status`` (FINISHED, FAILED, KILLED).
        Idempotent."""
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {_STATUSES}, got {status!r}")
        if self._closed:
            return
        self._closed = True
        self._metrics_fh.close()
        if self._client is not None:
            self._mirror("ending the run", self._client.set_terminated, self.run_id, status)
        self._client = None

    def __enter__(self) -> Tracker:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
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

    # -- file helpers

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"Tracker for {self.run_dir} is closed")

    def _merge_tags_file(self, tags: Mapping[str, str]) -> None:
        path = self.run_dir / TAGS_FILE
        merged: dict[str, str] = {}
        if path.exists():
            with contextlib.suppress(ValueError):
                merged = json.loads(path.read_text(encoding="utf-8"))
        merged.update(tags)
        _write_json_atomic(path, merged)

    def _drop_partial_tail(self) -> None:
        """Remove a partial last line (kill mid-write) so appended lines do not glue onto it."""
        if not self.metrics_path.exists():
            return
        with open(self.metrics_path, "rb") as fh:
            end = fh.seek(0, os.SEEK_END)
            pos = end
            # Scan backwards in blocks for the last newline; lines are short, so this reads little.
            while pos > 0:
                start = max(0, pos - 65536)
                fh.seek(start)
                block = fh.read(pos - start)
                if pos == end and block.endswith(b"\n"):
                    return
                idx = block.rfind(b"\n")
                if idx >= 0:
                    pos = start + idx + 1
                    break
                pos = start
        if pos == end:
            return
        logger.warning(
            "%s: dropping partial last line (%d bytes) left by an interrupted write.",
            self.metrics_path,
            end - pos,
        )
        os.truncate(self.metrics_path, pos)
