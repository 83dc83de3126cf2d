"""Between IronWorker's vocabulary and Mayfly's: commands, payloads, statuses, paging and the JSON of each object.

Runtime names are mapped in :mod:`mayfly.api.ironworker.runtimes`.

IronWorker's field names are kept exactly, including its quirks the official
clients depend on: ``code_rev`` is a string (the Go client decodes it into a
string), times are RFC 3339 strings (the Python client parses ``latest_change``
and schedule times with dateutil). Fields without a value are left out rather
than sent as null, as IronWorker's own optional fields were.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import Any
from zoneinfo import ZoneInfo

from mayfly.api.ironworker.errors import MissingField
from mayfly.api.ironworker.runtimes import RuntimeChoice
from mayfly.core import slots
from mayfly.core.errors import InvalidInput
from mayfly.core.models import TaskStatus
from mayfly.core.records import Code, Revision, Task, iso
from mayfly.core.schedules import Schedule

#: IronWorker's status filters of ``GET /tasks``; ``killed`` became ``cancelled`` in IronWorker itself.
STATUS_FLAGS: dict[str, str] = {
    "queued": TaskStatus.QUEUED.value,
    "preparing": TaskStatus.PREPARING.value,
    "running": TaskStatus.RUNNING.value,
    "complete": TaskStatus.COMPLETE.value,
    "error": TaskStatus.ERROR.value,
    "cancelled": TaskStatus.CANCELLED.value,
    "killed": TaskStatus.CANCELLED.value,
    "timeout": TaskStatus.TIMEOUT.value,
}

#: IronWorker's list limits: ``page`` from 0 to 100, ``per_page`` from 1 to 100 (default 30).
MAX_PAGE = 100
MAX_PER_PAGE = 100
DEFAULT_PER_PAGE = 30

#: IronWorker refused schedules that run more often than once a minute; this API keeps that floor.
MIN_RUN_EVERY = 60

# ------------------------------------------------------------------ commands


def entry_file(file_name: str) -> str:
    """``file_name`` as a relative path inside the zip; absolute paths, ``..`` and control characters are refused.

    A leading ``./`` is dropped (zip tools write it). The command runs in the
    unpacked package, so a name that leaves it (``../../etc/passwd``,
    ``/bin/sh``) is never a file of the package.
    """
    if any(ord(c) < 32 or ord(c) == 127 for c in file_name):
        raise InvalidInput("file_name must not contain control characters (NUL, newline, ...)")
    name = file_name.strip()
    if name.startswith("/") or "\\" in name:
        raise InvalidInput(f"file_name {name!r} must be a relative path inside the zip (no leading '/' or '\\')")
    while name.startswith("./"):
        name = name[2:]
    if not name:
        raise InvalidInput("file_name is empty")
    if ".." in name.split("/"):
        raise InvalidInput(f"file_name {name!r} must stay inside the zip (no '..')")
    return name


def command_for(choice: RuntimeChoice, command: str | None, file_name: str | None) -> str | None:
    """The command: IronWorker's ``command`` as given, else the runtime's interpreter on ``file_name``."""
    entry = entry_file(file_name) if file_name is not None else None  # checked even when a command is given
    if command:
        return command
    if entry is None:
        return None  # the runtime's default command
    if choice.template is None:
        raise InvalidInput(f"runtime {choice.runtime!r} has no known way to run file_name: give 'command' as well")
    return choice.template.format(shlex.quote(entry))


def file_name_of(command: str) -> str | None:
    """The entry file of a ``<interpreter> <file>`` command (IronWorker's ``file_name``), if it is one."""
    try:
        argv = shlex.split(command)
    except ValueError:
        return None
    if len(argv) == 1 and argv[0].startswith("./"):
        return argv[0][2:]  # a binary worker, run as ./FILE
    return argv[1] if len(argv) == 2 and not argv[1].startswith("-") else None


# ------------------------------------------------------------------ payloads and times


def payload_text(value: Any, where: str = "payload") -> str:
    """The task payload as stored and written to the worker's payload file: IronWorker's string exactly as given.

    IronWorker payloads are any string ("usually JSON"): plain text, XML, CSV,
    form-encoded... reach the worker byte for byte. A payload sent as a JSON
    object or array (not IronWorker's form, but common) is serialised.
    """
    if value is None:
        raise MissingField(f"{where} is required")
    if isinstance(value, str):
        return value
    return json.dumps(value)


def epoch(value: Any, where: str) -> float | None:
    """An RFC 3339 time (or epoch seconds) as UTC epoch seconds."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return slots.parse_time(value, ZoneInfo("UTC"))
        except InvalidInput:
            raise InvalidInput(f"{where}: invalid time {value!r}; use RFC 3339, e.g. 2026-12-01T09:00:00Z") from None
    raise InvalidInput(f"{where} must be an RFC 3339 time")


def page_window(page: int | None, per_page: int | None) -> tuple[int, int]:
    """IronWorker's ``page``/``per_page`` as (offset, limit)."""
    p = 0 if page is None else page
    n = DEFAULT_PER_PAGE if per_page is None or per_page == 0 else per_page
    if not 0 <= p <= MAX_PAGE:
        raise InvalidInput(f"page must be between 0 and {MAX_PAGE}")
    if not 1 <= n <= MAX_PER_PAGE:
        raise InvalidInput(f"per_page must be between 1 and {MAX_PER_PAGE}")
    return p * n, n


def _compact(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if v is not None}


def cluster_of(target: str) -> str:
    """IronWorker's ``cluster`` of a task: the Mayfly target it runs on."""
    return target


# ------------------------------------------------------------------ objects


def code_json(code: Code, rev: Revision) -> dict[str, Any]:
    """A code package as ``GET /codes/{id}`` shows it."""
    return _compact(
        {
            "id": code.id,
            "project_id": code.project_id,
            "name": code.name,
            "runtime": rev.runtime,
            "stack": rev.runtime,
            "image": rev.image,
            "command": rev.command or None,
            "file_name": file_name_of(rev.command) if rev.kind == "zip" else None,
            "rev": code.latest_rev,
            "latest_checksum": rev.sha256,
            "latest_history_id": rev.id,
            "latest_change": iso(rev.created_at),
            "config": rev.config or None,
            "env_vars": rev.env_dict or None,
            "max_concurrency": rev.max_concurrency,
            "retries": rev.retries,
            "retries_delay": rev.retries_delay,
            "default_priority": rev.default_priority,
            "timeout": rev.timeout,
            "paused": code.paused,
            "created_at": iso(code.created_at),
            "updated_at": iso(code.updated_at),
        }
    )


def revision_json(code: Code, rev: Revision) -> dict[str, Any]:
    """One entry of ``GET /codes/{id}/revisions``."""
    return _compact(
        {
            "id": rev.id,
            "code_id": code.id,
            "project_id": code.project_id,
            "name": code.name,
            "rev": rev.rev,
            "runtime": rev.runtime,
            "image": rev.image,
            "command": rev.command or None,
            "file_name": file_name_of(rev.command) if rev.kind == "zip" else None,
            "checksum": rev.sha256,
            "code_size": rev.size,
            "config": rev.config or None,
            "max_concurrency": rev.max_concurrency,
            "retries": rev.retries,
            "retries_delay": rev.retries_delay,
            "default_priority": rev.default_priority,
            "created_at": iso(rev.created_at),
        }
    )


def task_json(task: Task) -> dict[str, Any]:
    """A task as ``GET /tasks/{id}`` shows it; ``msg`` is the worker's progress message while it has one."""
    return _compact(
        {
            "id": task.id,
            "project_id": task.project_id,
            "code_id": task.code_id,
            "code_name": task.code_name,
            "code_rev": str(task.code_rev),
            "code_history_id": task.revision_id,
            "status": task.status,
            "msg": task.progress_msg or task.msg,
            "percent": task.percent,
            "created_at": iso(task.created_at),
            "updated_at": iso(task.updated_at),
            "start_time": iso(task.start_time),
            "end_time": iso(task.end_time),
            "duration": task.duration_ms,
            "retry_count": task.retry_count,
            # Retry lineage (Titan's retry_of; IronWorker's clients ignore unknown fields): both ways, like /v1.
            "retry_of": task.retry_of,
            "retried_by": task.retried_by,
            "payload": task.payload,
            "label": task.label,
            "priority": task.priority,
            "timeout": task.timeout,
            "delay": task.delay,
            "cluster": cluster_of(task.target),
            "log_size": task.log_size,
            "schedule_id": task.schedule_id,
        }
    )


def schedule_json(sched: Schedule, error_count: int) -> dict[str, Any]:
    """A schedule as ``GET /schedules/{id}`` shows it."""
    return _compact(
        {
            "id": sched.id,
            "project_id": sched.project_id,
            "code_id": sched.code_id,
            "code_name": sched.code_name,
            "status": sched.status,
            "msg": sched.msg,
            "payload": sched.payload,
            "start_at": iso(sched.start_at),
            "end_at": iso(sched.end_at),
            "next_start": iso(sched.next_start),
            "last_run_time": iso(sched.last_run_time),
            "run_every": sched.every if sched.kind == "every" else None,
            "run_times": sched.run_times,
            "run_count": sched.run_count,
            "error_count": error_count,
            "priority": sched.priority,
            "timeout": sched.timeout,
            "label": sched.label,
            "cluster": cluster_of(sched.target) if sched.target else None,
            "created_at": iso(sched.created_at),
            "updated_at": iso(sched.updated_at),
        }
    )


def status_filter(flags: Iterable[str]) -> list[str]:
    """Mayfly statuses for IronWorker's status flags (OR-ed), de-duplicated in order."""
    out: list[str] = []
    for flag in flags:
        status = STATUS_FLAGS[flag]
        if status not in out:
            out.append(status)
    return out
