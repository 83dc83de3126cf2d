"""Every name Mayfly gives things in ECS: handles, ``startedBy``, ``clientToken``, tags.

Handle
    ``<cluster>::<taskArn>``, the form Prefect's ECS worker uses (``ECSIdentifier``):
    the cluster is needed by every task API call and a task ARN alone may lack it
    (old short ARN format). The cluster part is the target's ``cluster`` setting as
    given (name or ARN). A bare task ARN is accepted and read as being on the
    target's cluster.

``startedBy`` (≤ 36 characters, letters, digits, ``-``, ``_``, ``/``)
    ``m-<task>-<attempt>`` for the runner's container names ``mayfly-<task>-<attempt>``
    (24-character task ids leave room for a 9-digit attempt), else ``h-`` and a hash
    of the name. It is derived from the container name alone because
    :meth:`~mayfly.core.provider.Provider.find` receives only that name.

``clientToken`` (≤ 64 ASCII characters)
    A hash of (home, target, container name): the same attempt of the same home
    always sends the same token, so a RunTask retried after a lost response or a
    crash returns the task it already started instead of a second one (ECS keeps
    tokens 24 h, per cluster).

Tags
    ``mayfly.task``, ``mayfly.attempt``, ``mayfly.project``, ``mayfly.home`` and
    ``mayfly.target`` identify the attempt (reattach, ``result``, ``remove`` read
    them back); ``mayfly.removed`` marks a task whose attempt Mayfly has finished
    with (ECS keeps stopped tasks listed for about an hour and cannot delete them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping

from mayfly.core.errors import InvalidInput

SEP = "::"
T_TASK, T_ATTEMPT, T_PROJECT, T_HOME, T_TARGET, T_REMOVED = (
    "mayfly.task",
    "mayfly.attempt",
    "mayfly.project",
    "mayfly.home",
    "mayfly.target",
    "mayfly.removed",
)
#: Set ("1") on the ECS task of an attempt with secrets: ``remove`` deletes its SSM parameters and definition.
T_SECRETS = "mayfly.secrets"
#: The runner's container names (see ``mayfly.core.messages.container_name``).
_CONTAINER_NAME = re.compile(r"^mayfly-(?P<rest>[A-Za-z0-9_-]+)$")
_STARTED_BY = re.compile(r"^[A-Za-z0-9_/-]{1,36}$")
#: Characters ECS refuses in tag keys and values (it allows UTF-8 letters, digits, spaces and `_.:/=+@-`).
_TAG_BAD = re.compile(r"[^\w .:/=+@-]")
_MAX_TAGS = 50


def make_handle(cluster: str, task_arn: str) -> str:
    """``<cluster>::<taskArn>``."""
    return f"{cluster}{SEP}{task_arn}"


def parse_handle(handle: str, default_cluster: str) -> tuple[str, str]:
    """Split a handle into (cluster, task ARN); a bare task ARN is on ``default_cluster``."""
    cluster, sep, arn = handle.rpartition(SEP)
    if not sep:
        cluster, arn = default_cluster, handle
    if not arn or not cluster or ":task/" not in arn:
        raise InvalidInput(f"not an ECS task handle (expected 'cluster::taskArn'): {handle!r}")
    return cluster, arn


def task_id_of(task_arn: str) -> str:
    """The last part of a task ARN: the id in the CloudWatch stream name and the console."""
    return task_arn.rsplit("/", 1)[-1]


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def started_by(container_name: str) -> str:
    """The ``startedBy`` value of the attempt whose container is ``container_name``."""
    m = _CONTAINER_NAME.match(container_name)
    if m is not None:
        candidate = f"m-{m.group('rest')}"
        if _STARTED_BY.match(candidate):
            return candidate
    return f"h-{_digest(container_name)[:34]}"


def client_token(home_id: str, target: str, container_name: str) -> str:
    """The RunTask ``clientToken`` of one attempt (64 hex characters)."""
    return _digest(home_id, target, container_name)[:64]


def _tag_text(text: str, limit: int) -> str:
    return _TAG_BAD.sub("_", text)[:limit]


def make_tags(ours: Mapping[str, str], extra: Mapping[str, str]) -> list[dict[str, str]]:
    """ECS tags: ``ours`` first, then ``extra`` labels that do not collide, at most 50 in all.

    Characters ECS refuses become ``_``; ``aws:`` keys and empty keys are dropped.
    """
    tags: dict[str, str] = {}
    for pairs, override in ((ours, True), (extra, False)):
        for key, value in pairs.items():
            k = _tag_text(key, 128)
            if not k or k.lower().startswith("aws:") or (k in tags and not override):
                continue
            tags[k] = _tag_text(value, 256)
    return [{"key": k, "value": v} for k, v in list(tags.items())[:_MAX_TAGS]]


def tags_of(task: Mapping[str, object]) -> dict[str, str]:
    """The tags of a described task (``include=["TAGS"]``) as a dict."""
    raw = task.get("tags")
    found: dict[str, str] = {}
    if isinstance(raw, Iterable):
        for tag in raw:
            if isinstance(tag, Mapping) and "key" in tag:
                found[str(tag["key"])] = str(tag.get("value", ""))
    return found


def attempt_of_task(task: Mapping[str, object]) -> tuple[str, int] | None:
    """(task id, attempt) of a described task: from its tags, else from ``startedBy``.

    ECS deletes a task's tags when it is stopped (StopTask), so a stopped task is
    recognised by ``startedBy`` (``m-<task>-<attempt>``), which it keeps.
    """
    found = attempt_of(tags_of(task))
    if found is not None:
        return found
    m = re.match(r"^m-(?P<task>[0-9a-f]{24})-(?P<attempt>\d+)$", str(task.get("startedBy") or ""))
    return (m.group("task"), int(m.group("attempt"))) if m else None


def attempt_of(tags: Mapping[str, str]) -> tuple[str, int] | None:
    """(task id, attempt) from a task's tags, or None when they are absent or malformed."""
    try:
        return tags[T_TASK], int(tags[T_ATTEMPT])
    except (KeyError, ValueError):
        return None
