"""The MLflow store: tracking URIs, the schema of a sqlite store (created once, under a file lock), experiments,
and marking the MLflow run of a replaced run directory. MLflow is imported lazily (it takes seconds)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from planet.tracking.files import RUN_FILE

logger = logging.getLogger("planet.tracking")

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"  # relative to the current working directory


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
    import urllib.error
    import urllib.request

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


def quiet_mlflow_logging() -> None:
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
    quiet_mlflow_logging()
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
        quiet_mlflow_logging()
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=info["tracking_uri"])
        run = client.get_run(info["run_id"])
        client.set_tag(run.info.run_id, "replaced", "true")
        client.set_tag(run.info.run_id, "replaced_by_params_hash", replaced_by)
        if not (run.info.run_name or "").endswith(" (replaced)"):
            client.set_tag(run.info.run_id, "mlflow.runName", f"{run.info.run_name} (replaced)")
    except Exception as exc:  # never let bookkeeping of an old run stop a new one
        logger.warning("could not mark the MLflow run of %s as replaced (%s: %s)", run_dir, type(exc).__name__, exc)
