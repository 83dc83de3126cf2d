"""The emulator's Cloud Run resources (jobs, executions, tasks, operations) and their JSON.

Each ``to_json`` returns the REST (proto3 JSON) form of the v2 message with only
fields the message has, since the Python clients parse responses strictly;
enums are numbers (the clients ask for ``$alt=json;enum-encoding=int``), int64
fields strings, durations ``"600s"``, times RFC 3339 UTC.

Conditions, as Cloud Run reports them (see the package docstring for the
values of each outcome): a job has ``terminalCondition`` ``Ready``; an execution
has ``Completed`` (its outcome), ``ResourcesAvailable`` and ``Started``; a task
has ``Completed``. Condition ``state`` is ``CONDITION_PENDING`` (1),
``CONDITION_RECONCILING`` (2), ``CONDITION_FAILED`` (3), ``CONDITION_SUCCEEDED`` (4).
"""

from __future__ import annotations

import datetime
import uuid
from dataclasses import dataclass, field
from typing import Any

# google.cloud.run.v2.Condition.State
PENDING, RECONCILING, FAILED, SUCCEEDED = 1, 2, 3, 4
# Condition.Severity
ERROR, INFO = 1, 3
# Condition.CommonReason
CONTAINER_MISSING = 6
# Condition.ExecutionReason
NON_ZERO_EXIT_CODE, CANCELLED, CANCELLING = 2, 3, 4
# ExecutionReference.CompletionStatus
STATUS_SUCCEEDED, STATUS_FAILED, STATUS_RUNNING, STATUS_PENDING, STATUS_CANCELLED = 1, 2, 3, 4, 5
# google.api.LaunchStage.GA; ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2
GA = 4
GEN2 = 2
#: Cloud Run's defaults for a job's tasks.
DEFAULT_TIMEOUT = 600
DEFAULT_MAX_RETRIES = 3


def rfc3339(epoch: float | None) -> str | None:
    """RFC 3339 UTC of epoch seconds (microseconds), None for None."""
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def duration(seconds: float) -> str:
    """A ``google.protobuf.Duration`` in JSON."""
    return f"{seconds:g}s"


def parse_duration(value: Any, what: str) -> float:
    """Seconds of a JSON Duration (``"600s"``, ``"1.5s"``); ValueError when malformed."""
    text = str(value)
    if not text.endswith("s"):
        raise ValueError(f"Invalid duration for {what}: '{text}'.")
    try:
        seconds = float(text[:-1])
    except ValueError:
        raise ValueError(f"Invalid duration for {what}: '{text}'.") from None
    if seconds < 0:
        raise ValueError(f"Invalid duration for {what}: '{text}' is negative.")
    return seconds


def _clean(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop unset fields (None), as proto3 JSON omits them."""
    return {k: v for k, v in doc.items() if v is not None}


@dataclass
class Condition:
    """A ``google.cloud.run.v2.Condition``."""

    type: str
    state: int
    at: float
    message: str | None = None
    severity: int | None = None
    reason: int | None = None
    execution_reason: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _clean(
            {
                "type": self.type,
                "state": self.state,
                "message": self.message,
                "lastTransitionTime": rfc3339(self.at),
                "severity": self.severity,
                "reason": self.reason,
                "executionReason": self.execution_reason,
            }
        )


def _set(conditions: list[Condition], new: Condition) -> None:
    """Replace the condition of the same type (keeping its place), or append it."""
    for index, old in enumerate(conditions):
        if old.type == new.type:
            if (old.state, old.message, old.reason, old.execution_reason) != (
                new.state,
                new.message,
                new.reason,
                new.execution_reason,
            ):
                conditions[index] = new
            return
    conditions.append(new)


@dataclass
class Job:
    """A job: its execution template as the client sent it, and its counters."""

    project: str
    location: str
    id: str
    template: dict[str, Any]
    labels: dict[str, str]
    annotations: dict[str, str]
    created: float
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    client: str | None = None
    client_version: str | None = None
    execution_count: int = 0
    latest: Execution | None = None
    deleted: float | None = None
    generation: int = 1
    updated: float | None = None
    #: ``("startExecutionToken" | "runExecutionToken", token)`` when the job was given one.
    token: tuple[str, str] | None = None

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/jobs/{self.id}"

    def to_json(self) -> dict[str, Any]:
        latest = None
        if self.latest is not None:
            latest = _clean(
                {
                    "name": self.latest.name,
                    "createTime": rfc3339(self.latest.created),
                    "completionTime": rfc3339(self.latest.completed),
                    "completionStatus": self.latest.completion_status(),
                }
            )
        return _clean(
            {
                "name": self.name,
                "uid": self.uid,
                "generation": str(self.generation),
                "labels": self.labels or None,
                "annotations": self.annotations or None,
                "createTime": rfc3339(self.created),
                "updateTime": rfc3339(self.deleted or self.updated or self.created),
                "deleteTime": rfc3339(self.deleted),
                "creator": "mayfly-emulator@local",
                "lastModifier": "mayfly-emulator@local",
                "client": self.client,
                "clientVersion": self.client_version,
                "launchStage": GA,
                "template": self.template,
                "observedGeneration": str(self.generation),
                "terminalCondition": Condition("Ready", SUCCEEDED, self.updated or self.created).to_json(),
                "executionCount": self.execution_count,
                "latestCreatedExecution": latest,
                "reconciling": False,
                **({self.token[0]: self.token[1]} if self.token else {}),
                "etag": f'"{self.uid}/{self.generation}"',
            }
        )


@dataclass
class TaskRun:
    """One task of an execution (``index``) and its attempts."""

    execution: Execution
    index: int
    created: float
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float | None = None
    completed: float | None = None
    #: Attempts started so far (the current one is ``attempts - 1``).
    attempts: int = 0
    exit_code: int | None = None
    #: ``google.rpc.Status`` of the last attempt (code 0: it succeeded).
    attempt_status: dict[str, Any] | None = None
    #: "succeeded" | "failed" | "cancelled" once done.
    outcome: str | None = None
    conditions: list[Condition] = field(default_factory=list)
    updated: float = 0.0

    @property
    def id(self) -> str:
        return f"{self.execution.id}-task{self.index}"

    @property
    def name(self) -> str:
        return f"{self.execution.name}/tasks/{self.id}"

    def finish(self, at: float, outcome: str, condition: Condition) -> None:
        self.outcome = outcome
        self.completed = at
        self.updated = at
        _set(self.conditions, condition)

    def to_json(self) -> dict[str, Any]:
        ex = self.execution
        template = ex.template
        last = None
        if self.exit_code is not None or self.attempt_status is not None:
            last = _clean({"status": self.attempt_status, "exitCode": self.exit_code})
        conditions = self.conditions or [Condition("Completed", PENDING, self.created)]
        return _clean(
            {
                "name": self.name,
                "uid": self.uid,
                "generation": "1",
                "labels": ex.labels or None,
                "annotations": ex.annotations or None,
                "createTime": rfc3339(self.created),
                "scheduledTime": rfc3339(self.created),
                "startTime": rfc3339(self.started),
                "completionTime": rfc3339(self.completed),
                "updateTime": rfc3339(self.updated or self.created),
                "job": ex.job.id,
                "execution": ex.id,
                "containers": ex.containers,
                "volumes": template.get("volumes"),
                "maxRetries": ex.max_retries,
                "timeout": duration(ex.timeout),
                "serviceAccount": template.get("serviceAccount"),
                "executionEnvironment": template.get("executionEnvironment") or GEN2,
                "reconciling": self.outcome is None,
                "conditions": [c.to_json() for c in conditions],
                "observedGeneration": "1",
                "index": self.index,
                "retried": max(self.attempts - 1, 0),
                "lastAttemptResult": last,
                "logUri": ex.log_uri,
                "etag": f'"{self.uid}"',
            }
        )


@dataclass
class Execution:
    """One run of a job: its task template with the overrides applied, and its tasks."""

    job: Job
    id: str
    created: float
    #: The TaskTemplate (JSON) the tasks run: the job's, with the RunJob overrides.
    template: dict[str, Any]
    #: The containers of that template with the container overrides applied.
    containers: list[dict[str, Any]]
    task_count: int
    parallelism: int
    timeout: float
    max_retries: int
    labels: dict[str, str]
    annotations: dict[str, str]
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float | None = None
    completed: float | None = None
    deleted: float | None = None
    cancel_requested: bool = False
    tasks: list[TaskRun] = field(default_factory=list)
    conditions: list[Condition] = field(default_factory=list)
    updated: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.job.name}/executions/{self.id}"

    @property
    def log_uri(self) -> str:
        return (
            "https://console.cloud.google.com/logs/viewer?project="
            f"{self.job.project}&advancedFilter=resource.type%3D%22cloud_run_job%22%0A"
            f"labels.%22run.googleapis.com/execution_name%22%3D%22{self.id}%22"
        )

    def counts(self) -> dict[str, int]:
        outcomes = [t.outcome for t in self.tasks]
        return {
            "runningCount": sum(1 for t in self.tasks if t.outcome is None and t.started is not None),
            "succeededCount": outcomes.count("succeeded"),
            "failedCount": outcomes.count("failed"),
            "cancelledCount": outcomes.count("cancelled"),
            "retriedCount": sum(max(t.attempts - 1, 0) for t in self.tasks),
        }

    @property
    def done(self) -> bool:
        return self.completed is not None

    def completion_status(self) -> int:
        if self.completed is None:
            return STATUS_RUNNING if self.started is not None else STATUS_PENDING
        completed = next((c for c in self.conditions if c.type == "Completed"), None)
        if completed is not None and completed.execution_reason == CANCELLED:
            return STATUS_CANCELLED
        return STATUS_SUCCEEDED if completed is not None and completed.state == SUCCEEDED else STATUS_FAILED

    def set_condition(self, condition: Condition) -> None:
        _set(self.conditions, condition)
        self.updated = max(self.updated, condition.at)

    def to_json(self) -> dict[str, Any]:
        counts = {k: v or None for k, v in self.counts().items()}
        return _clean(
            {
                "name": self.name,
                "uid": self.uid,
                "creator": "mayfly-emulator@local",
                "generation": "1",
                "labels": self.labels or None,
                "annotations": self.annotations or None,
                "createTime": rfc3339(self.created),
                "startTime": rfc3339(self.started),
                "completionTime": rfc3339(self.completed),
                "updateTime": rfc3339(self.updated or self.created),
                "deleteTime": rfc3339(self.deleted),
                "launchStage": GA,
                "job": self.job.id,
                "parallelism": self.parallelism,
                "taskCount": self.task_count,
                "template": self.template,
                "reconciling": self.completed is None,
                "conditions": [c.to_json() for c in self.conditions],
                "observedGeneration": "1",
                **counts,
                "logUri": self.log_uri,
                "etag": f'"{self.uid}"',
            }
        )


@dataclass
class Operation:
    """A long-running operation: metadata and (when done) response are resources, re-rendered on each read."""

    project: str
    location: str
    id: str
    kind: str  # "Job" | "Execution"
    subject: Job | Execution
    #: False: done when the execution (the subject, or ``waits_for``) completes.
    finished: bool = True
    error: dict[str, Any] | None = None
    #: An execution a job's operation waits for (a job created with an execution token).
    waits_for: Execution | None = None
    #: Wait until ``waits_for`` has started (startExecutionToken) rather than completed.
    until_started: bool = False

    @property
    def name(self) -> str:
        return f"projects/{self.project}/locations/{self.location}/operations/{self.id}"

    def is_done(self) -> bool:
        if self.waits_for is not None:
            if self.until_started:
                return self.waits_for.started is not None or self.waits_for.done
            return self.waits_for.done
        if isinstance(self.subject, Execution) and not self.finished:
            return self.subject.done
        return True

    def to_json(self) -> dict[str, Any]:
        body = {"@type": f"type.googleapis.com/google.cloud.run.v2.{self.kind}", **self.subject.to_json()}
        doc: dict[str, Any] = {"name": self.name, "metadata": body, "done": self.is_done()}
        if doc["done"]:
            if self.error is not None:
                doc["error"] = self.error
            else:
                doc["response"] = body
        return doc
