"""What travels on the queues: task and cancel messages down, events up.

Bodies are JSON with a version field ``v`` so runners and control planes of
neighbouring versions can tell each other apart. Everything a runner needs is in
the message: cloud runners have no access to the store. Secret values travel
sealed (Fernet tokens); only a runner holding the home's key can open them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Self

from mayfly.core.models import CodeRef

VERSION = 1


class EventKind(StrEnum):
    """Events a runner reports about one (task, attempt)."""

    #: The container is running (``data.handle``, ``data.started_at``).
    STARTED = "started"
    #: The container ended (``data.exit_code``, ``data.oom``, ``data.stopped`` = cancel|timeout|None, logs, result).
    EXITED = "exited"
    #: The provider could not start it (``data.message``, ``data.retryable``).
    LAUNCH_FAILED = "launch_failed"
    #: The container is gone without an exit record (``data.message``).
    LOST = "lost"
    #: Recorded by the control plane, never sent by a runner: the task's next attempt runs on another
    #: target (``data.from``, ``data.to``, ``data.kind``, ``data.message``).
    MOVED = "moved"


#: The events that end an attempt; the runner names its target and provider in them (core.costs records them).
END_KINDS = frozenset({EventKind.EXITED, EventKind.LOST, EventKind.LAUNCH_FAILED})


@dataclass(frozen=True)
class TaskMessage:
    """One (task, attempt) that may start now."""

    task_id: str
    attempt: int
    project_id: str
    code_name: str
    code_rev: int
    image: str
    #: The code's command string (run by /bin/sh -c); empty for an image's own command.
    command: str
    code: CodeRef | None
    payload: str
    config: str
    env: dict[str, str]
    timeout: int
    cpu: float
    memory_mb: int
    network: str
    ironworker: bool
    #: Whether the image carries the boot script (runtime images do, registered images may not).
    has_boot: bool
    max_log_bytes: int
    max_result_bytes: int
    stop_grace_seconds: float
    #: Secret values, each still sealed (name -> Fernet token): the runner opens them at launch.
    secrets: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        """The deterministic container name of this attempt."""
        return container_name(self.task_id, self.attempt)

    def dumps(self) -> str:
        # A shallow copy (the fields in order), not ``asdict``: its recursive deep copy was a tenth of
        # a control plane's publish. The values are plain JSON values but ``code``.
        body = dict(self.__dict__)
        if self.code is not None:
            body["code"] = asdict(self.code)
        body["kind"] = "task"
        body["v"] = VERSION
        return json.dumps(body, separators=(",", ":"))

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> Self:
        body = {k: v for k, v in body.items() if k not in ("kind", "v")}
        if body.get("code") is not None:
            body["code"] = CodeRef(**body["code"])
        return cls(**body)


@dataclass(frozen=True)
class CancelMessage:
    """Stop the container of (task, attempt) if it exists, and never launch it."""

    task_id: str
    attempt: int

    def dumps(self) -> str:
        return json.dumps({"kind": "cancel", "v": VERSION, "task_id": self.task_id, "attempt": self.attempt})


@dataclass(frozen=True)
class Event:
    """A runner's report about one (task, attempt)."""

    task_id: str
    attempt: int
    kind: EventKind
    at: float
    data: dict[str, Any] = field(default_factory=dict)

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": VERSION,
                "task_id": self.task_id,
                "attempt": self.attempt,
                "kind": self.kind.value,
                "at": self.at,
                "data": self.data,
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str) -> Self:
        body = json.loads(text)
        return cls(
            body["task_id"],
            int(body["attempt"]),
            EventKind(body["kind"]),
            float(body["at"]),
            dict(body.get("data") or {}),
        )


def parse_down(text: str) -> TaskMessage | CancelMessage:
    """Parse a message from a target's task or control queue."""
    body = json.loads(text)
    if body.get("kind") == "cancel":
        return CancelMessage(body["task_id"], int(body["attempt"]))
    return TaskMessage.from_dict(body)


def container_name(task_id: str, attempt: int) -> str:
    """``mayfly-<task>-<attempt>``: the same (task, attempt) always gets the same name."""
    return f"mayfly-{task_id}-{attempt}"


def parse_container_name(name: str) -> tuple[str, int] | None:
    """(task id, attempt) of a name made by :func:`container_name`, or None for any other name."""
    prefix, _, rest = name.partition("-")
    task_id, _, attempt = rest.rpartition("-")
    if prefix != "mayfly" or not task_id or not attempt.isdigit():
        return None
    return task_id, int(attempt)


def run_key(task_id: str, attempt: int, name: str) -> str:
    """Blob key of a per-attempt record: ``runs/<task>/<attempt>/<name>``."""
    return f"runs/{task_id}/{attempt}/{name}"


def log_prefix(task_id: str, attempt: int) -> str:
    """Blob folder holding an attempt's log chunks."""
    return f"logs/{task_id}/{attempt}/"
