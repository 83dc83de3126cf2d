"""What ARM says about a container group, in Mayfly's terms: its state, and a diagnosis a human can act on.

A group's state is read from its GET (api-version 2023-05-01, camelCase JSON):
``properties.provisioningState``, ``properties.instanceView.state`` (``Pending``,
``Running``, ``Succeeded``, ``Failed``, ``Stopped``) and the container's
``properties.instanceView`` (``currentState`` / ``previousState`` with ``state``
``Waiting`` / ``Running`` / ``Terminated``, ``exitCode``, ``startTime``,
``finishTime``, ``detailStatus``; and ``events``).

=====================================================  ===============================================
ARM says                                               Mayfly reports
=====================================================  ===============================================
container Terminated, detailStatus ``OOMKilled``        ``oom_killed``, "out of memory (N GB)"
Waiting / events "Failed to pull image" not found       image not found in its registry (fail)
... unauthorized / denied / 401 / 403                   the pull identity may not pull (fail)
... anything else (timeouts, registry errors)           image pull failed (retry)
group Stopped without an exit code                      stopped (nothing more: Mayfly stopped it)
provisioningState Failed before the container ran       the platform's reason (retry)
=====================================================  ===============================================

Create refusals (:func:`create_failure`): 429 (throttled) and ``ServiceUnavailable``
(region capacity) are retried by the provider, then reported retryable;
quota ``... exceeded in region`` with limit 0 (the subscription may not use ACI
there), ``AuthorizationFailed`` / ``LinkedAuthorizationFailed`` (RBAC),
``InaccessibleImage``, invalid requests and a missing resource group are not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mayfly.core.errors import LaunchFailed
from mayfly.core.models import ContainerState, ContainerStatus, FailureKind
from mayfly.providers.aci.naming import CONTAINER


def _has(text: str, *needles: str) -> bool:
    low = text.lower()
    return any(n.lower() in low for n in needles)


def epoch(value: object) -> float | None:
    """Epoch seconds of an ARM timestamp (ISO 8601, ``Z`` or an offset), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    # ARM writes up to 7 fractional digits; Python parses 6.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def props(group: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``properties`` of a group ({} when absent)."""
    found = group.get("properties")
    return found if isinstance(found, Mapping) else {}


def container_of(group: Mapping[str, Any]) -> Mapping[str, Any]:
    """The ``task`` container's ``properties`` ({} when the group lists none)."""
    containers: Sequence[Mapping[str, Any]] = props(group).get("containers") or []
    for c in containers:
        if c.get("name") == CONTAINER:
            return c.get("properties") or {}
    return (containers[0].get("properties") or {}) if containers else {}


def _view(group: Mapping[str, Any]) -> Mapping[str, Any]:
    return container_of(group).get("instanceView") or {}


def _events(group: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    events = list(_view(group).get("events") or [])
    events += list((props(group).get("instanceView") or {}).get("events") or [])
    return [e for e in events if isinstance(e, Mapping)]


def _terminated(group: Mapping[str, Any]) -> Mapping[str, Any] | None:
    view = _view(group)
    for key in ("currentState", "previousState"):
        st = view.get(key) or {}
        if st.get("state") == "Terminated":
            return st
    return None


def is_oom(group: Mapping[str, Any]) -> bool:
    """True when ACI says the container was killed for using too much memory."""
    st = _terminated(group) or {}
    return _has(str(st.get("detailStatus") or ""), "OOMKilled", "OutOfMemory")


def _memory(group: Mapping[str, Any]) -> str:
    requests = (container_of(group).get("resources") or {}).get("requests") or {}
    gb = requests.get("memoryInGB")
    return f" of {gb} GB" if gb else ""


def pull_failure(group: Mapping[str, Any]) -> tuple[str, str] | None:
    """(diagnosis, "fail" | "retry") when the container's image could not be pulled, else None."""
    view = _view(group)
    current = view.get("currentState") or {}
    detail = str(current.get("detailStatus") or "")
    messages = [
        str(e.get("message") or "")
        for e in _events(group)
        if str(e.get("type") or "") == "Warning" or _has(str(e.get("name") or ""), "Failed")
    ]
    pulled = [m for m in messages if _has(m, "pull", "image")]
    if not pulled and not _has(detail, "ErrImagePull", "ImagePullBackOff", "InvalidImageName"):
        return None
    image = str(container_of(group).get("image") or "")
    text = "; ".join(dict.fromkeys(pulled)) or detail
    if _has(text, "not found", "manifest unknown", "does not exist", "name unknown", "InvalidImageName"):
        return f"image pull failed: image {image} not found in its registry ({text})", "fail"
    if _has(text, "unauthorized", "denied", "401", "403", "authentication required"):
        return (
            f"image pull failed: access denied (the target's pull identity needs AcrPull on the registry of "
            f"{image}) ({text})",
            "fail",
        )
    return f"image pull failed: {text}", "retry"


def container_state(group: Mapping[str, Any]) -> ContainerState:
    """A ContainerState from one container group's GET (instance view included)."""
    p = props(group)
    provisioning = str(p.get("provisioningState") or "")
    group_state = str((p.get("instanceView") or {}).get("state") or "")
    view = _view(group)
    current = view.get("currentState") or {}
    started = epoch(current.get("startTime"))
    ended = _terminated(group)
    if ended is not None:
        begun = epoch(ended.get("startTime")) or started
        finished = epoch(ended.get("finishTime"))
        if begun is not None and finished is not None and finished < begun:
            finished = begun
        exit_code = ended.get("exitCode")
        oom = is_oom(group)
        detail = f"killed: out of memory (the container exceeded its limit{_memory(group)})" if oom else ""
        return ContainerState(
            ContainerStatus.EXITED,
            exit_code=int(exit_code) if exit_code is not None else None,
            oom_killed=oom,
            detail=detail,
            started_at=begun,
            finished_at=finished,
        )
    pull = pull_failure(group)
    if pull is not None:
        kind = FailureKind.IMAGE.value if "not found in its registry" in pull[0] else None
        return ContainerState(ContainerStatus.EXITED, detail=pull[0], infra=pull[1], kind=kind)
    if group_state == "Stopped":
        if current.get("state") == "Running":
            # Asked to stop, the container not ended yet (SIGTERM, grace period): still running.
            return ContainerState(ContainerStatus.RUNNING, started_at=started)
        # Stopped (by Mayfly's cancel, or by someone else) without an exit code: ACI drops the container's
        # instance view when it stops a group.
        return ContainerState(ContainerStatus.EXITED, detail="", started_at=started)
    if provisioning == "Failed" or group_state == "Failed":
        why = "; ".join(dict.fromkeys(str(e.get("message") or "") for e in _events(group) if e.get("message")))
        return ContainerState(
            ContainerStatus.EXITED,
            detail=f"ACI could not run the container group ({why or 'no reason given'})",
            infra="retry",
        )
    if current.get("state") == "Running":
        return ContainerState(ContainerStatus.RUNNING, started_at=started)
    return ContainerState(ContainerStatus.PENDING)


# ---------------------------------------------------------------- create failures

#: HTTP statuses and ARM error codes that another try may get past.
THROTTLED_STATUS = 429
RETRYABLE_CODES = frozenset(
    {"ServiceUnavailable", "InternalServerError", "TooManyRequests", "SubscriptionRequestsThrottled", "Conflict"}
)
DENIED_CODES = frozenset({"AuthorizationFailed", "LinkedAuthorizationFailed", "InvalidAuthenticationToken"})
_ZERO_QUOTA = re.compile(r"Limit:\s*'?0'?[,.\s]", re.IGNORECASE)


def capacity_or_throttle(status: int, code: str) -> bool:
    """True for the refusals the provider retries itself, with backoff, before giving up."""
    return status == THROTTLED_STATUS or status == 503 or code in ("ServiceUnavailable", "TooManyRequests")


#: ARM error codes of a create -> the kind of failure another target could avoid (a table, so a test can read
#: it against recorded ARM responses); :func:`create_failure` also classifies by status and message.
FAILURE_KINDS: Mapping[str, FailureKind] = {
    "TooManyRequests": FailureKind.THROTTLED,
    "SubscriptionRequestsThrottled": FailureKind.THROTTLED,
    "ContainerGroupQuotaReached": FailureKind.QUOTA,
    "ServiceUnavailable": FailureKind.CAPACITY,
    "InaccessibleImage": FailureKind.IMAGE,
    "RegistryErrorResponse": FailureKind.IMAGE,
    "LocationNotAvailableForResourceType": FailureKind.REGION,
    "NoRegisteredProviderFound": FailureKind.REGION,
}


def create_failure(status: int, code: str, message: str) -> LaunchFailed:
    """The LaunchFailed for a container group create ARM refused with ``status`` / ``code`` (with its kind)."""
    failed = _create_failure(status, code, message)
    failed.kind = _create_kind(status, code, message)
    return failed


def _create_kind(status: int, code: str, message: str) -> str | None:
    if code in FAILURE_KINDS:
        return FAILURE_KINDS[code].value
    if status == THROTTLED_STATUS:
        return FailureKind.THROTTLED.value
    if _has(message, "quota") and _has(message, "exceeded"):
        # Quota 0: the subscription may not use ACI in this region at all.
        return (FailureKind.REGION if _ZERO_QUOTA.search(message + " ") else FailureKind.QUOTA).value
    if status == 503 or _has(message, "not available in the location"):
        return FailureKind.CAPACITY.value
    return None


def _create_failure(status: int, code: str, message: str) -> LaunchFailed:
    text = f"{code or status}: {message}".strip()
    if status == THROTTLED_STATUS or code in ("TooManyRequests", "SubscriptionRequestsThrottled"):
        return LaunchFailed(
            f"Azure throttled the container group create (the subscription's ACI create rate is reached; "
            f"lower creates_per_second or ask for a higher quota): {text}",
            retryable=True,
        )
    if _has(message, "quota") and _has(message, "exceeded"):
        if _ZERO_QUOTA.search(message + " "):
            return LaunchFailed(
                f"the subscription may not create container groups in this region (quota 0; ask Azure support, "
                f"or use another region): {text}",
                retryable=False,
            )
        return LaunchFailed(f"the subscription's ACI quota in this region is reached: {text}", retryable=True)
    if code == "ServiceUnavailable" or status == 503 or _has(message, "not available in the location"):
        return LaunchFailed(
            f"no ACI capacity in the region for this size right now (retry later, with a smaller size, or in "
            f"another region): {text}",
            retryable=True,
        )
    if code in DENIED_CODES or status == 403:
        return LaunchFailed(
            "the runner's identity may not create the container group (it needs Contributor on the resource group "
            "and Managed Identity Operator on the pull identity, for "
            f"Microsoft.ManagedIdentity/userAssignedIdentities/assign/action): {text}",
            retryable=False,
        )
    if code == "InaccessibleImage" or _has(message, "not accessible"):
        return LaunchFailed(
            f"image pull failed: the image or its registry is not accessible with the pull identity: {text}",
            retryable=False,
        )
    if code == "ResourceGroupNotFound" or status == 404:
        return LaunchFailed(f"the target's resource group does not exist: {text}", retryable=False)
    if code in RETRYABLE_CODES or status >= 500:
        return LaunchFailed(f"ACI could not create the container group: {text}", retryable=True)
    return LaunchFailed(f"ACI refused the container group: {text}", retryable=False)
