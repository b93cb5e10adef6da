"""The run's own tracking files, the source of truth: ``params.json`` (flattened params), ``tags.json``,
``metrics.jsonl`` (one ``{"step", "time", **metrics}`` object per line, appended and flushed; cut back to a
checkpoint's byte offset on resume) and the name of ``mlflow_run.json`` (the mirrored MLflow run)."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from planet.utils import atomic_write_json, disk_full

logger = logging.getLogger("planet.tracking")

PARAMS_FILE = "params.json"
TAGS_FILE = "tags.json"
METRICS_FILE = "metrics.jsonl"
RUN_FILE = "mlflow_run.json"
RESERVED_METRIC_KEYS = ("step", "time")


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


def read_tags(run_dir: Path) -> dict[str, str]:
    """RUN/tags.json ({} where it is absent or unreadable: the tags only describe the run)."""
    with contextlib.suppress(OSError, ValueError):
        tags = json.loads((Path(run_dir) / TAGS_FILE).read_text(encoding="utf-8"))
        if isinstance(tags, dict):
            return tags
    return {}


def merge_tags(run_dir: Path, tags: Mapping[str, str]) -> None:
    """Add or overwrite tags in RUN/tags.json (atomically; the other tags stay)."""
    atomic_write_json(Path(run_dir) / TAGS_FILE, {**read_tags(run_dir), **tags})


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
            for key in record.keys() - RESERVED_METRIC_KEYS:
                last[key] = max(step, last.get(key, step))
    return last


class RunFiles:
    """params.json, tags.json and metrics.jsonl of one run directory (see the module docstring)."""

    def __init__(self, run_dir: Path, params: Mapping[str, Any], tags: Mapping[str, str]) -> None:
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.run_dir / METRICS_FILE
        self._warned_nonfinite = False
        self._write_failed = False
        atomic_write_json(self.run_dir / PARAMS_FILE, dict(params))
        self.merge_tags(tags)
        self._drop_partial_tail()
        self._metrics_fh = open(self.metrics_path, "a", encoding="utf-8")  # closed in close()

    def merge_tags(self, tags: Mapping[str, str]) -> None:
        merge_tags(self.run_dir, tags)

    def append_metrics(self, metrics: Mapping[str, float], step: int, now: float) -> dict[str, float]:
        """Append ``{"step", "time", **metrics}`` and return the finite values. NaN/inf are written as ``null``
        (JSON has no NaN); the first occurrence is warned about."""
        record: dict[str, Any] = {"step": step, "time": round(now, 3)}
        finite: dict[str, float] = {}
        bad: list[str] = []
        for key, value in metrics.items():
            if key in RESERVED_METRIC_KEYS:
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
        line = json.dumps(record, allow_nan=False) + "\n"
        try:
            self._metrics_fh.write(line)
            self._metrics_fh.flush()
        except OSError as exc:
            self._write_failed = True
            if (full := disk_full(exc, self.metrics_path, size=len(line.encode()))) is not None:
                raise full from exc
            raise
        return finite

    def offset(self) -> int:
        """Current byte size of ``metrics.jsonl``, flushed and fsynced so that it never points past data lost in a
        machine crash."""
        self._metrics_fh.flush()
        os.fsync(self._metrics_fh.fileno())
        return self.metrics_path.stat().st_size

    def truncate(self, offset: int) -> dict[str, int]:
        """Cut ``metrics.jsonl`` back to ``offset`` (from :meth:`offset`), so that steps re-run after resuming from a
        checkpoint are not duplicated in the file. Returns each metric key's last step in the lines cut.

        A file shorter than ``offset`` (cut, or deleted, after the checkpoint) is kept as it is, with a warning:
        the lines it lost are gone, the run's state is in the checkpoint, and logging continues after the lines that
        remain. An ``offset`` inside a line (the file was edited) cuts back to the line boundary before it.
        """
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
            return {}
        if offset == size:
            return {}
        if offset > 0:
            with open(self.metrics_path, "rb") as fh:
                head = fh.read(offset)
            boundary = head.rfind(b"\n") + 1
            if boundary != offset:
                logger.warning("%s: the checkpoint's offset %d is inside a line (was the file edited?); cutting back "
                               "to the line boundary at %d.", self.metrics_path, offset, boundary)
                offset = boundary
        cut = _last_steps(self.metrics_path, offset)
        os.truncate(self.metrics_path, offset)  # the handle is in append mode, so writes follow the new end
        return cut

    def close(self) -> None:
        if self._write_failed:  # what is left of the failed line is dropped (a resume drops a partial line anyway)
            with contextlib.suppress(OSError):
                self._metrics_fh.close()
            return
        self._metrics_fh.close()

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
