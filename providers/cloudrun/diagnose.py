"""What Cloud Run says about an execution, in Mayfly's terms: its state, and a diagnosis a human can act on.

Cloud Run explains an execution in its ``conditions`` (``type``, ``state``, ``message``
and a ``reason``: a common reason such as ``CONTAINER_MISSING`` or an execution reason
such as ``NON_ZERO_EXIT_CODE``) and the task's ``last_attempt_result`` (an exit code, a
signal, and a ``google.rpc.Status`` whose message says why the attempt ended). The
table :data:`DIAGNOSES` turns their usual contents into one line; anything it does not
know is passed through as Cloud Run wrote it.

==============================================  ====================================================
Cloud Run says                                  Mayfly reports
==============================================  ====================================================
"Memory limit of N MiB exceeded with M used"    ``oom_killed``, "out of memory (limit N MiB)"
"The configured timeout was reached"            Cloud Run's own timeout stopped it (Mayfly's is first)
``CONTAINER_MISSING``, "Image ... not found"    image not found in its registry (not retried)
``CONTAINER_PERMISSION_DENIED``, ``..._IMAGE_   the job's service agent may not pull the image
UNAUTHORIZED``, "permission denied" on pull     (not retried)
"Permission '...' denied", "actAs"              access denied (+ the permission; not retried)
"Quota exceeded", ``RESOURCE_EXHAUSTED``        quota reached: retried as an infrastructure failure
``VPC_NETWORK_NOT_FOUND``                       the target's VPC network does not exist (not retried)
``INTERNAL``, "internal error", retry reasons   Cloud Run failed: retried
execution reason ``CANCELLED``                  nothing when Mayfly cancelled it, else "cancelled
                                                outside Mayfly"
``NON_ZERO_EXIT_CODE`` / exit code              nothing: the task's own exit
==============================================  ====================================================

An execution that ended before its container ran has no exit code; it is reported
``EXITED`` with ``exit_code=None``, the diagnosis as ``detail`` and ``infra`` saying
whether another attempt may work.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from mayfly.core.errors import LaunchFailed
from mayfly.core.models import ContainerState, ContainerStatus, FailureKind

#: Condition states and reasons as the REST API's integers (``enum-encoding=int``) and names.
SUCCEEDED = 4
FAILED = 3
_OOM = re.compile(r"memory limit of (\d+(?:\.\d+)?)\s*([KMG]i?B?)?.*exceeded", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True)
class Diagnosis:
    """One row of the table: a pattern in what Cloud Run said, what Mayfly says, and whether to retry."""

    #: Matched against "REASON_NAME: message" of every failed condition and the attempt's status.
    pattern: re.Pattern[str]
    #: The human line; ``{text}`` is what Cloud Run said.
    human: str
    #: "retry": the platform failed, another attempt may work; "fail": no retry will fix it; "": the task ran.
    infra: str
    #: The kind of failure another target could avoid (moves a task with fallback targets), or None.
    kind: FailureKind | None = None


def _rx(text: str) -> re.Pattern[str]:
    return re.compile(text, re.IGNORECASE | re.DOTALL)


#: Checked in order; the first match wins.
DIAGNOSES: tuple[Diagnosis, ...] = (
    Diagnosis(
        _rx(r"CONTAINER_MISSING|image .*not found|manifest unknown|repository .*not found|failed to resolve"),
        "image not found: Cloud Run cannot find the task's image in its registry ({text})",
        "fail",
        FailureKind.IMAGE,
    ),
    Diagnosis(
        _rx(
            r"CONTAINER_PERMISSION_DENIED|CONTAINER_IMAGE_UNAUTHORIZED|CONTAINER_IMAGE_AUTHORIZATION|"
            r"(pull|read|access).*image.*(denied|forbidden|unauthori[sz]ed)|artifactregistry\.repositories\.downloadArtifacts"
        ),
        "image pull denied: Cloud Run's service agent (or the task's service account) needs "
        "roles/artifactregistry.reader on the image's repository ({text})",
        "fail",
    ),
    Diagnosis(
        _rx(r"permission ['\"]?[\w.]+['\"]? denied|PERMISSION_DENIED|actAs|does not have permission|forbidden"),
        "permission denied: {text} (the runner needs roles/run.developer on the jobs and "
        "roles/iam.serviceAccountUser on the task's service account)",
        "fail",
    ),
    Diagnosis(
        _rx(r"rate limit|too many requests|TooManyRequests"),
        "Cloud Run quota reached: {text} (retried; see https://cloud.google.com/run/quotas)",
        "retry",
        FailureKind.THROTTLED,
    ),
    Diagnosis(
        _rx(r"quota|RESOURCE_EXHAUSTED"),
        "Cloud Run quota reached: {text} (retried; see https://cloud.google.com/run/quotas)",
        "retry",
        FailureKind.QUOTA,
    ),
    Diagnosis(
        _rx(r"VPC_NETWORK_NOT_FOUND|network .*not found|subnetwork .*not found"),
        "the target's VPC network or subnetwork does not exist: {text}",
        "fail",
    ),
    Diagnosis(
        _rx(r"timeout was reached|reached the configured timeout|exceeded .*timeout|deadline exceeded"),
        "Cloud Run stopped the task at its execution timeout (Mayfly's own timeout comes first): {text}",
        "",
    ),
    Diagnosis(
        _rx(r"capacity|ZONE_RESOURCE_POOL_EXHAUSTED"),
        "Cloud Run could not run the task: {text} (retried)",
        "retry",
        FailureKind.CAPACITY,
    ),
    Diagnosis(
        _rx(r"ServiceUnavailable|region .*unavailable|location .*not (available|supported)"),
        "Cloud Run could not run the task: {text} (retried)",
        "retry",
        FailureKind.REGION,
    ),
    Diagnosis(
        _rx(r"INTERNAL|internal error|IMMEDIATE_RETRY|POSTPONED_RETRY|unavailable|try again"),
        "Cloud Run could not run the task: {text} (retried)",
        "retry",
    ),
)


def _get(obj: Any, name: str, default: Any = None) -> Any:
    value = getattr(obj, name, default)
    return default if value is None else value


def _enum_name(value: Any) -> str:
    name = getattr(value, "name", None)
    return str(name) if name else ""


def condition_texts(conditions: Iterable[Any]) -> list[str]:
    """ "REASON: message" of every condition that failed (or carries a reason worth reading)."""
    texts = []
    for c in conditions:
        state = int(_get(c, "state", 0))
        names = [_enum_name(_get(c, field)) for field in ("reason", "execution_reason", "revision_reason")]
        reason = next((n for n in names if n and not n.endswith("_UNDEFINED")), "")
        message = str(_get(c, "message", ""))
        if state == FAILED or (reason and reason not in ("NON_ZERO_EXIT_CODE",)):
            text = f"{reason}: {message}" if reason and message else reason or message
            if text:
                texts.append(text)
    return texts


def diagnose_text(text: str) -> tuple[str, str | None]:
    """(human line, infra) for what Cloud Run said; (``text``, None) when no row matches."""
    for row in DIAGNOSES:
        if row.pattern.search(text):
            return row.human.format(text=text), row.infra
    return text, None


def failure_kind(text: str) -> str | None:
    """The :class:`FailureKind` of the first row matching what Cloud Run said (None: nothing another target avoids)."""
    for row in DIAGNOSES:
        if row.pattern.search(text):
            return row.kind.value if row.kind is not None else None
    return None


def oom_limit(text: str) -> str | None:
    """The memory limit named in Cloud Run's out-of-memory message, or None when ``text`` is not one."""
    found = _OOM.search(text)
    if not found:
        return None
    return f"{found.group(1)} {found.group(2) or 'MiB'}".strip()


def _seconds(ts: Any) -> float | None:
    """Epoch seconds of a proto-plus timestamp (a datetime), None when unset."""
    if ts is None:
        return None
    stamp = getattr(ts, "timestamp", None)
    if callable(stamp):
        value = float(stamp())
        return value if value > 0 else None
    return None


def _exit_code(execution: Any, task: Any | None) -> int | None:
    """The container's exit code (128 + signal when a signal ended it); None when it never ran."""
    if int(_get(execution, "succeeded_count", 0)) > 0:
        return 0
    result = _get(task, "last_attempt_result")
    if task is None or result is None or _seconds(_get(task, "start_time")) is None:
        return None
    code = int(_get(result, "exit_code", 0))
    signal = int(_get(result, "term_signal", 0))
    if code:
        return code
    # A failed attempt that reports 0 and no signal was ended by Cloud Run (its timeout), not by its own exit.
    return 128 + signal if signal else None


def execution_state(execution: Any, task: Any | None, *, cancelled_by_us: bool = False) -> ContainerState:
    """A ContainerState from an Execution and its one Task (None when Cloud Run lists no task yet)."""
    started = _seconds(_get(execution, "start_time")) or _seconds(_get(task, "start_time"))
    finished = _seconds(_get(execution, "completion_time"))
    if finished is None:
        running = int(_get(execution, "running_count", 0)) > 0 or _seconds(_get(task, "start_time")) is not None
        if running:
            return ContainerState(ContainerStatus.RUNNING, started_at=started)
        return ContainerState(ContainerStatus.PENDING)
    if started is not None and finished < started:
        finished = started
    exit_code = _exit_code(execution, task)
    if exit_code == 0 and int(_get(execution, "succeeded_count", 0)) > 0:
        return ContainerState(ContainerStatus.EXITED, exit_code=0, started_at=started, finished_at=finished)
    status = _get(_get(task, "last_attempt_result"), "status")
    texts = [str(_get(status, "message", "")) if status is not None else ""]
    texts += condition_texts(_get(task, "conditions", ())) + condition_texts(_get(execution, "conditions", ()))
    joined = "; ".join(dict.fromkeys(t for t in texts if t))
    limit = oom_limit(joined)
    if limit is not None:
        return ContainerState(
            ContainerStatus.EXITED,
            exit_code=exit_code or 137,
            oom_killed=True,
            detail=f"killed: out of memory (the container exceeded its limit of {limit})",
            started_at=started,
            finished_at=finished,
        )
    if int(_get(execution, "cancelled_count", 0)) > 0 or "CANCELLED" in joined:
        detail = "" if cancelled_by_us else "cancelled outside Mayfly (CancelExecution)"
        return ContainerState(
            ContainerStatus.EXITED, exit_code=exit_code, detail=detail, started_at=started, finished_at=finished
        )
    if exit_code is not None:
        # The container ran and ended: its own exit, explained only when Cloud Run ended it (its timeout).
        human, infra = diagnose_text(joined) if joined else ("", None)
        detail = human if infra is not None and "NON_ZERO_EXIT_CODE" not in joined else ""
        return ContainerState(
            ContainerStatus.EXITED, exit_code=exit_code, detail=detail, started_at=started, finished_at=finished
        )
    human, infra = diagnose_text(joined) if joined else ("the execution failed and Cloud Run gave no reason", None)
    return ContainerState(
        ContainerStatus.EXITED,
        detail=human,
        started_at=started,
        finished_at=finished,
        infra="retry" if infra is None else infra or None,
        kind=failure_kind(joined) if joined else None,
    )


def launch_error(exc: Any, doing: str) -> LaunchFailed:
    """The LaunchFailed for a RunJob or CreateJob that Cloud Run refused with a google-api-core error."""
    code = type(exc).__name__
    message = str(getattr(exc, "message", "") or exc)
    human, infra = diagnose_text(f"{code}: {message}")
    kind = failure_kind(f"{code}: {message}")
    if not infra:
        retryable = code in ("InternalServerError", "ServiceUnavailable", "TooManyRequests", "ResourceExhausted")
        return LaunchFailed(f"{doing}: Cloud Run refused it ({code}: {message})", retryable=retryable, kind=kind)
    return LaunchFailed(f"{doing}: {human}", retryable=infra == "retry", kind=kind)
