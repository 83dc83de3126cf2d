"""Cloud Logging for the emulator's executions: entries as Cloud Run writes them, and ``entries:list``.

Each line a task container writes is one entry with ``textPayload``, tagged as
Cloud Run tags job logs (https://cloud.google.com/run/docs/logging): resource
``cloud_run_job`` with labels ``project_id``, ``job_name`` and ``location``;
entry labels ``run.googleapis.com/execution_name``, ``run.googleapis.com/task_index``
and ``run.googleapis.com/task_attempt``; ``logName``
``projects/P/logs/run.googleapis.com%2Fstdout`` (severity ``DEFAULT``) or
``...%2Fstderr`` (severity ``ERROR``), and ``...%2Fvarlog%2Fsystem`` for what
Cloud Run itself reports (out of memory, timeout). ``timestamp`` is when the
line was written (Docker's time), ``receiveTimestamp`` when it was stored.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any

from mayfly.providers.cloudrun.emulator.errors import invalid_argument
from mayfly.providers.cloudrun.emulator.logfilter import compile_filter, parse_time
from mayfly.providers.cloudrun.emulator.model import Execution, rfc3339

MAX_PAGE = 1000
DEFAULT_PAGE = 50
#: Entries kept at most (the oldest go first).
MAX_ENTRIES = 200_000


def _rfc3339_ms(epoch_ms: int) -> str:
    stamp = rfc3339(epoch_ms / 1000)
    assert stamp is not None
    return stamp


class LogStore:
    """Every entry written so far, in order, per project."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._seq = itertools.count(1)

    def _append(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry["insertId"] = f"{next(self._seq):012d}"
            entry["receiveTimestamp"] = rfc3339(time.time())
            self._entries.append(entry)
            if len(self._entries) > MAX_ENTRIES:
                del self._entries[: len(self._entries) - MAX_ENTRIES]

    def _entry(
        self, execution: Execution, index: int, attempt: int, log: str, severity: str, ms: int, text: str
    ) -> None:
        job = execution.job
        self._append(
            {
                "logName": f"projects/{job.project}/logs/run.googleapis.com%2F{log}",
                "resource": {
                    "type": "cloud_run_job",
                    "labels": {"project_id": job.project, "job_name": job.id, "location": job.location},
                },
                "timestamp": _rfc3339_ms(ms),
                "severity": severity,
                "textPayload": text,
                "labels": {
                    "run.googleapis.com/execution_name": execution.id,
                    "run.googleapis.com/task_index": str(index),
                    "run.googleapis.com/task_attempt": str(attempt),
                },
            }
        )

    def append_run_line(self, execution: Execution, index: int, attempt: int, stream: str, ms: int, text: str) -> None:
        """One line of a task container's stdout or stderr."""
        self._entry(execution, index, attempt, stream, "DEFAULT" if stream == "stdout" else "ERROR", ms, text)

    def append_system(self, execution: Execution, index: int, attempt: int, text: str) -> None:
        """A message of Cloud Run itself about a task (its ``varlog/system`` log)."""
        self._entry(execution, index, attempt, "varlog%2Fsystem", "ERROR", int(time.time() * 1000), text)

    def list_entries(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /v2/entries:list``."""
        resources = body.get("resourceNames") or (
            [f"projects/{body['projectIds'][0]}"] if body.get("projectIds") else []
        )
        if not resources:
            raise invalid_argument("resourceNames: at least one resource name is required.")
        projects = set()
        for name in resources:
            parts = str(name).split("/")
            if len(parts) < 2 or parts[0] != "projects" or not parts[1]:
                raise invalid_argument(f"Invalid resource name '{name}'.")
            projects.add(parts[1])
        predicate = compile_filter(body.get("filter"))
        order = str(body.get("orderBy") or "timestamp asc").strip().lower()
        if order not in ("timestamp asc", "timestamp desc", "timestamp"):
            raise invalid_argument(f"Invalid orderBy '{body.get('orderBy')}': only timestamp asc|desc is supported.")
        try:
            size = min(int(body.get("pageSize") or DEFAULT_PAGE), MAX_PAGE)
            start = int(body.get("pageToken") or 0)
        except ValueError:
            raise invalid_argument("Invalid page token or page size.") from None
        with self._lock:
            entries = list(self._entries)
        found = [e for e in entries if e["logName"].split("/")[1] in projects and predicate(e)]
        found.sort(key=lambda e: (parse_time(e["timestamp"]), e["insertId"]), reverse=order.endswith("desc"))
        doc: dict[str, Any] = {"entries": found[start : start + size]}
        if start + size < len(found):
            doc["nextPageToken"] = str(start + size)
        return doc
