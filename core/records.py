"""Typed views of store rows, and their JSON form for ``--json`` and the API."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Self

from mayfly.core.models import TaskStatus
from mayfly.core.secrets import names_of


def iso(ts: float | None) -> str | None:
    """Epoch seconds as RFC 3339 UTC with milliseconds (IronWorker's date format), or None."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def placement_of(text: str | None, target: str) -> tuple[list[str], dict[str, str]]:
    """A ``placement`` column as (ordered targets, skipped target -> reason); ``[target]`` when there is none."""
    if not text:
        return [target], {}
    body: dict[str, Any] = json.loads(text)
    return list(body.get("targets") or [target]), dict(body.get("skipped") or {})


_FIELD_NAMES: dict[type, tuple[frozenset[str], bool]] = {}


def _field_names(cls: type) -> tuple[frozenset[str], bool]:
    """The record's field names, and whether its ``__init__`` only stores them (see ``_Row.from_row``)."""
    known = _FIELD_NAMES.get(cls)
    if known is None:
        fs = fields(cls)
        plain = (
            all(f.init for f in fs)
            and not hasattr(cls, "__post_init__")
            and not any("__slots__" in vars(k) for k in cls.__mro__ if k is not object)
        )
        known = _FIELD_NAMES[cls] = (frozenset(f.name for f in fs), plain)
    return known


class _Row:
    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Self:
        """Build from a SQLAlchemy row mapping, ignoring columns the record does not name.

        The control plane builds thousands a second, and a frozen dataclass' ``__init__`` sets
        each of some forty fields through ``object.__setattr__``. When the row names every
        field and the generated ``__init__`` does nothing but store them (no ``__post_init__``,
        no slots), the instance's ``__dict__`` is filled at once: the same object, for a fifth
        of the cost. Otherwise (a partial row, defaults to fill) ``__init__`` runs as usual.
        """
        names, plain = _field_names(cls)
        values = {k: v for k, v in row.items() if k in names}
        if plain and len(values) == len(names):
            record = object.__new__(cls)
            record.__dict__.update(values)
            return record
        return cls(**values)


@dataclass(frozen=True)
class Project(_Row):
    id: str
    name: str
    created_at: float


@dataclass(frozen=True)
class Target(_Row):
    name: str
    provider: str
    settings: str
    capacity: int
    embedded_runner: bool
    created_at: float

    @property
    def settings_dict(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.settings)
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "provider": self.provider,
            "capacity": self.capacity,
            "embedded_runner": self.embedded_runner,
            "settings": self.settings_dict,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Revision(_Row):
    id: str
    code_id: str
    rev: int
    kind: str
    sha256: str | None
    size: int
    blob_key: str | None
    runtime: str | None
    image: str
    command: str
    env: str
    config: str
    max_concurrency: int | None
    retries: int
    retries_delay: int
    timeout: int
    default_priority: int
    target: str
    network: str
    cpu: float
    memory_mb: int
    ironworker: bool
    webhook: str | None
    created_at: float
    #: Secret values, sealed (name -> token); never part of ``to_json``, only their names.
    secrets: str | None = field(default=None, repr=False)
    #: Fallback targets as stored (core/placement.py); None: ``target`` alone.
    placement: str | None = None

    @property
    def secret_names(self) -> list[str]:
        return names_of(self.secrets)

    @property
    def targets(self) -> list[str]:
        """The ordered targets of its tasks (``target`` first)."""
        return placement_of(self.placement, self.target)[0]

    @property
    def env_dict(self) -> dict[str, str]:
        value: dict[str, str] = json.loads(self.env)
        return value

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rev": self.rev,
            "kind": self.kind,
            "sha256": self.sha256,
            "size": self.size,
            "runtime": self.runtime,
            "image": self.image,
            "command": self.command,
            "env": self.env_dict,
            "config": self.config,
            "max_concurrency": self.max_concurrency,
            "retries": self.retries,
            "retries_delay": self.retries_delay,
            "timeout": self.timeout,
            "default_priority": self.default_priority,
            "target": self.target,
            "targets": self.targets,
            "skipped_targets": placement_of(self.placement, self.target)[1],
            "network": self.network,
            "cpu": self.cpu,
            "memory_mb": self.memory_mb,
            "ironworker": self.ironworker,
            "webhook": self.webhook,
            "secrets": self.secret_names,
            "created_at": iso(self.created_at),
        }


@dataclass(frozen=True)
class Code(_Row):
    id: str
    project_id: str
    name: str
    latest_rev: int
    paused: bool
    created_at: float
    updated_at: float
    deleted_at: float | None = None

    def to_json(self, latest: Revision | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "project_id": self.project_id,
            "name": self.name,
            "rev": self.latest_rev,
            "paused": self.paused,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }
        if latest is not None:
            body["latest"] = latest.to_json()
        return body


@dataclass(frozen=True)
class Task(_Row):
    id: str
    project_id: str
    code_id: str
    code_name: str
    code_rev: int
    revision_id: str
    status: str
    reason: str | None
    msg: str | None
    payload: str
    env: str
    priority: int
    timeout: int
    delay: int
    run_at: float
    target: str
    label: str | None
    retries: int
    retries_delay: int
    retry_count: int
    retry_of: str | None
    retried_by: str | None
    attempt: int
    infra_failures: int
    exit_code: int | None
    result: str | None
    log_size: int
    log_truncated: bool
    handle: str | None
    cancel_requested: bool
    dispatch_pending: bool
    schedule_id: str | None
    wait_for: str | None
    webhook: str | None
    created_at: float
    updated_at: float
    dispatched_at: float | None
    start_time: float | None
    end_time: float | None
    percent: int | None = None
    progress_msg: str | None = None
    #: The task's own secret values, sealed; ``to_json`` shows their names only.
    secrets: str | None = field(default=None, repr=False)
    #: Fallback targets as stored (core/placement.py); None: ``target`` alone.
    placement: str | None = None

    @property
    def targets(self) -> list[str]:
        """The ordered targets the task may run on; ``target`` is the current (or next) attempt's."""
        return placement_of(self.placement, self.target)[0]

    @property
    def task_status(self) -> TaskStatus:
        return TaskStatus(self.status)

    @property
    def duration_ms(self) -> int | None:
        if self.start_time is None or self.end_time is None:
            return None
        return round((self.end_time - self.start_time) * 1000)

    def to_json(self, *, with_payload: bool = True) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "project_id": self.project_id,
            "code_id": self.code_id,
            "code_name": self.code_name,
            "code_rev": self.code_rev,
            "code_history_id": self.revision_id,
            "status": self.status,
            "reason": self.reason,
            "msg": self.msg,
            "exit_code": self.exit_code,
            "attempt": self.attempt,
            "infra_failures": self.infra_failures,
            "priority": self.priority,
            "timeout": self.timeout,
            "delay": self.delay,
            "target": self.target,
            "targets": self.targets,
            "skipped_targets": placement_of(self.placement, self.target)[1],
            "label": self.label,
            "retries": self.retries,
            "retries_delay": self.retries_delay,
            "retry_count": self.retry_count,
            "retry_of": self.retry_of,
            "retried_by": self.retried_by,
            "schedule_id": self.schedule_id,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
            "run_at": iso(self.run_at),
            "start_time": iso(self.start_time),
            "end_time": iso(self.end_time),
            "duration_ms": self.duration_ms,
            "log_size": self.log_size,
            "log_truncated": self.log_truncated,
            "cancel_requested": self.cancel_requested,
            "percent": self.percent,
            "progress_msg": self.progress_msg,
            "secrets": names_of(self.secrets),
            "result": json.loads(self.result) if self.result is not None else None,
        }
        if with_payload:
            body["payload"] = self.payload
        return body


@dataclass(frozen=True)
class EventRecord(_Row):
    id: int
    task_id: str
    attempt: int
    kind: str
    data: str
    at: float
    applied: bool
    note: str | None
    created_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "attempt": self.attempt,
            "kind": self.kind,
            "data": json.loads(self.data),
            "at": iso(self.at),
            "applied": self.applied,
            "note": self.note,
        }


@dataclass(frozen=True)
class Delivery(_Row):
    """One attempt to deliver a completion webhook; ``attempted_at`` is None while it waits."""

    id: int
    delivery_id: str
    task_id: str
    project_id: str
    status: str
    attempt: int
    url: str
    created_at: float
    next_attempt_at: float
    attempted_at: float | None
    status_code: int | None
    error: str | None
    delivered: bool

    @property
    def event(self) -> str:
        return f"task.{self.status}"

    @property
    def pending(self) -> bool:
        return self.attempted_at is None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "delivery_id": self.delivery_id,
            "event": self.event,
            "attempt": self.attempt,
            "at": iso(self.attempted_at),
            "status_code": self.status_code,
            "error": self.error,
            "delivered": self.delivered,
        }
        if self.pending:
            body["pending"] = True
            body["next_attempt_at"] = iso(self.next_attempt_at)
        return body
