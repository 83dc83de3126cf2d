"""Plain data that crosses boundaries: task statuses, provider launch specs and results.

Everything here is a frozen dataclass or an enum with no behaviour beyond small
helpers, so providers, queues and the store can share it without importing each
other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class TaskStatus(StrEnum):
    """IronWorker's task statuses. Clients must not assume the set is complete."""

    QUEUED = "queued"
    #: Dispatched to a target: the runner is preparing or launching the container.
    PREPARING = "preparing"
    RUNNING = "running"
    COMPLETE = "complete"
    ERROR = "error"
    CANCELLED = "cancelled"
    TIMEOUT = "timeout"

    @property
    def terminal(self) -> bool:
        """True for the statuses a task never leaves."""
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({TaskStatus.COMPLETE, TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.TIMEOUT})
#: Statuses that hold a concurrency slot of their code and target.
ACTIVE_STATUSES = frozenset({TaskStatus.PREPARING, TaskStatus.RUNNING})


class Reason(StrEnum):
    """Why a task ended the way it did (every non-complete end has one)."""

    #: The command exited with a non-zero code.
    EXIT = "exit"
    #: The container ran out of memory and was killed.
    OOM = "oom"
    #: The task ran past its timeout and was stopped.
    TIMEOUT = "timeout"
    #: A user cancelled it.
    CANCELLED = "cancelled"
    #: The provider could not start the container, on every infrastructure attempt.
    LAUNCH_FAILED = "launch_failed"
    #: The container disappeared (engine restart, removed by hand) before it reported an exit.
    LOST = "lost"
    #: The container engine stopped or restarted while the task ran, and its container died with it.
    ENGINE_RESTARTED = "engine_restarted"


class FailureKind(StrEnum):
    """Why a launch failed, when another target could avoid it: the failures that move a task to its next target.

    Providers classify their launch failures into these kinds as data (their ``diagnose`` tables); a failure
    with no kind (a bad request, access denied, the task's own exit, OOM, timeout) never moves a task.
    """

    #: The region or zone has no capacity for the task's size right now.
    CAPACITY = "capacity"
    #: The account's quota (tasks, vCPUs, container groups) is reached.
    QUOTA = "quota"
    #: The cloud's API throttled the launch past the provider's own retries.
    THROTTLED = "throttled"
    #: The region or the service in it is unavailable.
    REGION = "region"
    #: The task's image is not in the registry this target pulls from.
    IMAGE = "image"


class ContainerStatus(StrEnum):
    """What a provider reports about one container."""

    #: Created but not yet running (pulling, provisioning).
    PENDING = "pending"
    RUNNING = "running"
    EXITED = "exited"
    #: The provider has no such container.
    MISSING = "missing"


@dataclass(frozen=True)
class CodeRef:
    """A code package in the target's blob store."""

    #: Blob key of the zip (content-addressed: ``codes/<sha256>.zip``).
    key: str
    #: Hex sha256 of the zip; the boot script verifies it before unpacking.
    sha256: str
    #: Size of the zip in bytes.
    size: int


@dataclass(frozen=True)
class LaunchSpec:
    """Everything a provider needs to start one container for one (task, attempt)."""

    #: Deterministic container name for this (task, attempt); launching twice with the
    #: same name must never start a second container.
    name: str
    #: Task id, attempt number and project: also written as labels.
    task_id: str
    attempt: int
    project: str
    #: Image to run (a runtime image or a registered image).
    image: str
    #: argv of the container's process.
    command: tuple[str, ...]
    #: Environment of the container (code env, task env and the MAYFLY_* contract).
    env: Mapping[str, str]
    #: The code package to unpack into /mayfly/task, or None for a ready image.
    code: CodeRef | None
    #: The task's payload, written to /mayfly/payload.json.
    payload: bytes
    #: The code's config, written to /mayfly/config.json.
    config: bytes
    #: CPU limit in cores (fractions allowed).
    cpu: float
    #: Memory limit in MiB (hard; no swap beyond it).
    memory_mb: int
    #: Seconds the task may run; the runner enforces it, providers may add their own cap.
    timeout: int
    #: Network: "none" for no network, "bridge" (default egress) or a named network.
    network: str = "bridge"
    #: Extra labels (the provider adds mayfly.task / mayfly.attempt / mayfly.project).
    labels: Mapping[str, str] = field(default_factory=dict)
    #: Whether the image carries the Mayfly boot script (runtime images do).
    has_boot: bool = True
    #: Cap of /mayfly/result.json (the boot script refuses to upload more).
    max_result_bytes: int | None = None
    #: Secret values in clear (name -> bytes), for providers with ``Capability.SECRETS`` only.
    #: Never logged (``repr=False``); a provider passes them by its most private means.
    secrets: Mapping[str, bytes] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class LaunchResult:
    """What a provider returns from ``launch``: an opaque handle to find the container again."""

    #: Provider-specific, opaque to Mayfly (e.g. a Docker container id, ``cluster::taskArn``).
    handle: str
    #: True when the container already existed (idempotent relaunch or reattach).
    existing: bool = False


@dataclass(frozen=True)
class ContainerState:
    """A provider's report on one container."""

    status: ContainerStatus
    #: Exit code once exited, else None.
    exit_code: int | None = None
    #: True when the container was killed for exceeding its memory limit.
    oom_killed: bool = False
    #: Human explanation from the provider (e.g. ECS stoppedReason), if any.
    detail: str = ""
    #: Epoch seconds, when known.
    started_at: float | None = None
    finished_at: float | None = None
    #: The interval the platform bills (its own clock), when it differs from started_at → finished_at
    #: (ECS: image pull start → task stopped). None: the billed interval is started_at → finished_at.
    billed_from: float | None = None
    billed_to: float | None = None
    #: The platform, not the task's code, ended it: "retry" (spot capacity reclaimed, maintenance, no
    #: capacity: another attempt may work) or "fail" (it never ran and never will: image missing, ...).
    infra: str | None = None
    #: With ``infra``: a :class:`Reason` value more precise than ``lost``, e.g. ``engine_restarted``.
    reason: str | None = None
    #: With ``infra``: a :class:`FailureKind` value when another target could avoid the failure.
    kind: str | None = None


@dataclass(frozen=True)
class Attached:
    """A container found again by its labels after a runner restart."""

    task_id: str
    attempt: int
    handle: str
    state: ContainerState
