"""What ECS says about a task, in Mayfly's terms: its state, and a diagnosis a human can act on.

ECS explains a stopped task in three fields: ``stopCode`` (an enum),
``stoppedReason`` (free text) and the container's ``reason``. The table below
turns their usual contents into one line; anything it does not know is passed
through as ECS wrote it.

==========================================================  =========================================
ECS says                                                     Mayfly reports
==========================================================  =========================================
container ``OutOfMemoryError: Container killed ...``          ``oom_killed``, "out of memory (N MiB)"
``CannotPullContainerError`` ... not found / manifest unknown  image not found in its registry
``CannotPullContainerError`` ... 403 / denied / unauthorized   execution role may not pull the image
``CannotPullContainerError`` ... i/o timeout / dial tcp        no network path to the registry
``ResourceInitializationError`` ... registry auth / secrets    cannot fetch registry auth or secrets
``ResourceInitializationError`` ... logger / log group         log group missing or not writable
``Timeout waiting for network interface``, ENI errors          network interface could not be attached
``CannotStartContainerError``                                  container could not start (+ reason)
stopCode ``SpotInterruption``                                  Fargate Spot capacity was reclaimed
stopCode ``TerminationNotice`` / task retirement               AWS stopped it for maintenance
capacity unavailable / ``RESOURCE:*``                          no Fargate capacity
``AccessDenied`` / "not authorized"                            access denied (+ reason)
stopCode ``UserInitiated`` with Mayfly's own reason            nothing (the runner knows why)
stopCode ``UserInitiated`` otherwise                           stopped outside Mayfly (+ reason)
``Essential container in task exited``                         nothing: a normal exit
==========================================================  =========================================

A task that stopped before its container ran has no exit code; it is reported
``EXITED`` with ``exit_code=None`` and the diagnosis as ``detail``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mayfly.core.errors import LaunchFailed
from mayfly.core.models import ContainerState, ContainerStatus, FailureKind
from mayfly.providers.ecs.taskdefs import CONTAINER

#: The reason Mayfly gives StopTask; a stop with it needs no explanation.
STOP_REASON = "stopped by Mayfly"
PENDING_STATUSES = frozenset({"PROVISIONING", "PENDING", "ACTIVATING"})
STOPPING_STATUSES = frozenset({"DEACTIVATING", "STOPPING", "DEPROVISIONING"})
_NORMAL_EXIT = "Essential container in task exited"
_ENI = re.compile(r"\bENI\b")


def _has(text: str, *needles: str) -> bool:
    low = text.lower()
    return any(n.lower() in low for n in needles)


def _epoch(value: object) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, int | float):
        return float(value)
    return None


def task_container(task: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``task`` container of a described task ({} when ECS lists none, e.g. it never started)."""
    containers: Sequence[Mapping[str, Any]] = task.get("containers") or []
    for c in containers:
        if c.get("name") == CONTAINER:
            return c
    return containers[0] if containers else {}


def is_oom(task: Mapping[str, Any]) -> bool:
    """True when ECS says the container was killed for using too much memory."""
    reason = str(task_container(task).get("reason") or "")
    return reason.startswith("OutOfMemoryError") or str(task.get("stoppedReason") or "").startswith("OutOfMemoryError")


def diagnose(task: Mapping[str, Any]) -> str:
    """One line on why a stopped task stopped, or "" for a normal exit or a stop by Mayfly."""
    container = task_container(task)
    reason = str(container.get("reason") or "")
    stopped = str(task.get("stoppedReason") or "")
    code = str(task.get("stopCode") or "")
    text = f"{reason} {stopped}".strip()
    if is_oom(task):
        memory = task.get("memory") or container.get("memory")
        limit = f" of {memory} MiB" if memory else ""
        return f"killed: out of memory (the container exceeded its limit{limit})"
    if _has(text, "CannotPullContainerError"):
        if _has(text, "not found", "manifest unknown", "does not exist", "repository not found"):
            return f"image pull failed: image {container.get('image') or ''} not found in its registry ({text})"
        if _has(text, "403", "denied", "unauthorized", "not authorized"):
            return (
                "image pull failed: access denied (the execution role needs ecr:GetAuthorizationToken, "
                f"ecr:BatchGetImage and ecr:GetDownloadUrlForLayer) ({text})"
            )
        if _has(text, "timeout", "dial tcp", "connection", "request canceled"):
            return (
                "image pull failed: the task cannot reach the registry (give it a public IP, a NAT gateway "
                f"or VPC endpoints for ECR and S3) ({text})"
            )
        return f"image pull failed: {text}"
    if _has(text, "ResourceInitializationError"):
        if _has(text, "logger", "log group", "log stream", "cloudwatch"):
            return (
                "task could not start: its CloudWatch log group is missing or the execution role may not "
                f"write to it ({text})"
            )
        if _has(text, "registry auth", "secrets", "secret"):
            return (
                "task could not start: unable to fetch registry auth or secrets (no network path to ECR, "
                f"or the execution role lacks permissions) ({text})"
            )
        return f"task could not start: {text}"
    if _has(text, "network interface") or _ENI.search(text):
        return f"task could not start: its network interface could not be attached ({text})"
    if _has(text, "CannotStartContainerError"):
        return f"container could not start: {text}"
    if code == "SpotInterruption" or _has(text, "spot task was interrupted"):
        return f"Fargate Spot capacity was reclaimed: the task was interrupted ({stopped or code})"
    if code == "TerminationNotice" or _has(text, "retired", "maintenance"):
        return f"AWS stopped the task for Fargate infrastructure maintenance ({stopped or code})"
    if _has(text, "capacity", "RESOURCE:"):
        return f"no Fargate capacity for the task ({text})"
    if _has(text, "AccessDenied", "not authorized"):
        return f"access denied: {text}"
    if stopped.startswith(STOP_REASON):
        return ""  # NOTE: moto sets no stopCode; AWS adds UserInitiated
    if code == "UserInitiated" or stopped.startswith("Task stopped by user"):
        return f"stopped outside Mayfly (StopTask): {stopped or 'no reason given'}"
    if stopped.startswith(_NORMAL_EXIT) and not reason:
        return ""
    return text


def infra_failure(task: Mapping[str, Any], exit_code: object, detail: str) -> str | None:
    """ "retry" when the platform ended the task (spot, maintenance, capacity, a network interface), "fail" when
    it never ran for a reason no retry fixes (image missing, access denied), None when the task's code ended."""
    code = str(task.get("stopCode") or "")
    if code in ("SpotInterruption", "TerminationNotice") or detail.startswith(
        ("Fargate Spot capacity was reclaimed", "AWS stopped the task for Fargate infrastructure maintenance")
    ):
        return "retry"
    if exit_code is not None or not detail or is_oom(task):
        return None
    if str(task.get("stoppedReason") or "").startswith(STOP_REASON):
        return None  # stopped by Mayfly (cancel, timeout) before it ran
    return "retry" if retryable(detail) else "fail"


def container_state(task: Mapping[str, Any]) -> ContainerState:
    """A ContainerState from one task of DescribeTasks.

    ``EXITED`` once the task is STOPPED, or already while it deprovisions if its
    container has stopped with an exit code (the task's code is done; detaching
    the network interface can take many seconds more).
    """
    status = str(task.get("lastStatus") or "")
    container = task_container(task)
    started = _epoch(task.get("startedAt"))
    exit_code = container.get("exitCode")
    container_done = container.get("lastStatus") == "STOPPED" and exit_code is not None
    if status == "STOPPED" or (status in STOPPING_STATUSES and container_done):
        finished = _epoch(task.get("executionStoppedAt")) or _epoch(task.get("stoppedAt"))
        if started is not None and finished is not None and finished < started:
            finished = started
        detail = diagnose(task)
        stopped = str(task.get("stoppedReason") or "")
        if exit_code is None and not detail and not stopped.startswith(STOP_REASON):
            detail = f"the task stopped before its container ran ({stopped or 'ECS gave no reason'})"
        infra = infra_failure(task, exit_code, detail)
        return ContainerState(
            ContainerStatus.EXITED,
            exit_code=int(exit_code) if exit_code is not None else None,
            oom_killed=is_oom(task),
            detail=detail,
            started_at=started,
            finished_at=finished,
            # Fargate bills from the start of the image pull to the task's stop (one-minute minimum); a task
            # seen while it deprovisions has no stoppedAt yet: its execution's stop stands in (seconds early).
            billed_from=_epoch(task.get("pullStartedAt")) or started,
            billed_to=_epoch(task.get("stoppedAt")) or finished,
            infra=infra,
            kind=stopped_kind(detail) if infra else None,
        )
    if status in PENDING_STATUSES or not status:
        return ContainerState(ContainerStatus.PENDING)
    return ContainerState(ContainerStatus.RUNNING, started_at=started)


# ---------------------------------------------------------------- launch failures

#: RunTask failure reasons (and error messages) that another try may get past.
_RETRYABLE = re.compile(
    r"RESOURCE:|AGENT|capacity|try again|throttl|rate exceeded|limit|temporar|unavailable|timeout|ServerException",
    re.IGNORECASE,
)
#: ... and those it will not (checked first: "limit" also appears in "invalid ... limit").
_PERMANENT = re.compile(
    r"not found|does not exist|invalid|MISSING|ATTRIBUTE|INACTIVE|not supported|unsupported|denied|not authorized|"
    r"platform",
    re.IGNORECASE,
)
#: RunTask error codes that no retry will fix.
PERMANENT_CODES = frozenset(
    {
        "InvalidParameterException",
        "ClusterNotFoundException",
        "PlatformUnknownException",
        "PlatformTaskDefinitionIncompatibilityException",
        "UnsupportedFeatureException",
        "AccessDeniedException",
        "BlockedException",
    }
)


#: What ECS says (an error code, a RunTask failure reason, a diagnosis) -> the kind of failure another target
#: could avoid; the first match wins. Anything else (a bad request, access denied, the task's own exit, OOM)
#: has no kind and never moves a task. Tests check each row against recorded AWS responses.
FAILURE_KINDS: tuple[tuple[re.Pattern[str], FailureKind], ...] = (
    (re.compile(r"ThrottlingException|Rate exceeded|throttled RunTask", re.I), FailureKind.THROTTLED),
    (
        re.compile(r"RESOURCE:(FARGATE|CPU|MEMORY)|Capacity is unavailable|no Fargate capacity", re.I),
        FailureKind.CAPACITY,
    ),
    (re.compile(r"reached the limit|LimitExceeded|quota", re.I), FailureKind.QUOTA),
    (
        re.compile(r"ServiceUnavailable|not available in (this|the) region|region .*unavailable", re.I),
        FailureKind.REGION,
    ),
    (re.compile(r"image pull failed: image .* not found in its registry", re.I), FailureKind.IMAGE),
)


def failure_kind(text: str) -> FailureKind | None:
    """The kind of a launch failure ECS described with ``text`` (:data:`FAILURE_KINDS`), or None."""
    for pattern, kind in FAILURE_KINDS:
        if pattern.search(text):
            return kind
    return None


def stopped_kind(detail: str) -> str | None:
    """The kind of a task ECS stopped before its container ran (image missing, no capacity), or None."""
    kind = failure_kind(detail)
    return kind.value if kind is not None else None


def retryable(text: str) -> bool:
    """Whether a launch refused with ``text`` may work on another try.

    Unknown reasons count as retryable: the control plane bounds infrastructure
    retries, and giving up on a passing fault loses the task.
    """
    return not _PERMANENT.search(text)


def run_task_failure(failures: Sequence[Mapping[str, Any]]) -> LaunchFailed:
    """The LaunchFailed for a RunTask that started no task and listed ``failures``."""
    if not failures:
        return LaunchFailed("ECS RunTask started no task and gave no reason", retryable=True)
    parts = []
    for f in failures:
        reason, detail = str(f.get("reason") or "unknown"), str(f.get("detail") or "")
        parts.append(f"{reason} ({detail})" if detail else reason)
    text = "; ".join(parts)
    kind = failure_kind(text)
    if _has(text, "RESOURCE:", "capacity"):
        human = f"no Fargate capacity for the task right now: {text}"
    elif _has(text, "limit"):
        human = f"the account's Fargate task or vCPU quota is reached: {text}"
    else:
        human = f"ECS could not start the task: {text}"
    ok = retryable(text)
    return LaunchFailed(human, retryable=ok, kind=kind.value if kind is not None and ok else None)


def run_task_error(code: str, message: str) -> LaunchFailed:
    """The LaunchFailed for a RunTask refused with error ``code``."""
    text = f"{code}: {message}"
    if code in PERMANENT_CODES:
        ok = False
    elif code == "ServerException":
        ok = True
    else:
        # ClientException covers both bad requests ("TaskDefinition is inactive") and quotas.
        ok = retryable(message) and bool(_RETRYABLE.search(message))
    if code == "AccessDeniedException" or _has(message, "not authorized"):
        return LaunchFailed(
            f"ECS RunTask was denied (check the runner's IAM policy and iam:PassRole): {text}", retryable=False
        )
    kind = failure_kind(text) if code not in PERMANENT_CODES else None
    return LaunchFailed(f"ECS refused to start the task: {text}", retryable=ok, kind=kind.value if kind else None)
