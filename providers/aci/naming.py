"""Every name Mayfly gives things in Azure Container Instances: container groups, handles, tags.

Container group name (the handle)
    ACI's rules: 1-63 characters, lowercase letters, digits and ``-``, neither first nor
    last, no ``--``. The runner's container name ``mayfly-<task>-<attempt>`` is lowercased,
    anything else becomes ``-``, and a 10-character hash of (home, target, container name)
    is appended: two Mayfly homes (or two targets) sharing a resource group never collide
    on a name, and the same attempt of the same home always gets the same name, which is
    what makes ``launch`` idempotent (see docs/decisions.md). The handle is that name; the
    resource group comes from the target's settings.

Tags
    ``mayfly.task``, ``mayfly.attempt``, ``mayfly.project``, ``mayfly.home`` and
    ``mayfly.target`` on the group identify the attempt (``reattach``, ``result`` and
    ``remove`` read them back), plus the code's labels that do not collide, at most 50 in
    all (Azure's limit). Azure refuses ``<>%&\\?/`` in tag names; they become ``_``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from mayfly.core.errors import InvalidInput

T_TASK, T_ATTEMPT, T_PROJECT, T_HOME, T_TARGET = (
    "mayfly.task",
    "mayfly.attempt",
    "mayfly.project",
    "mayfly.home",
    "mayfly.target",
)
#: The one container of every group.
CONTAINER = "task"
MAX_NAME = 63
_HASH = 10
_VALID = re.compile(r"^(?!-)(?!.*--)[a-z0-9-]{1,63}(?<!-)$")
_TAG_KEY_BAD = re.compile(r"[<>%&\\?/]")
_MAX_TAGS = 50


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def group_name(home_id: str, target: str, container_name: str) -> str:
    """The container group of one attempt: ``<container name>-<hash>``, within ACI's naming rules."""
    base = re.sub(r"[^a-z0-9]+", "-", container_name.lower()).strip("-")
    base = base[: MAX_NAME - _HASH - 1].rstrip("-") or "mayfly"
    return f"{base}-{_digest(home_id, target, container_name)[:_HASH]}"


def check_handle(handle: str) -> str:
    """The handle, if it is a valid container group name; else InvalidInput."""
    if not _VALID.match(handle):
        raise InvalidInput(f"not an ACI container group name: {handle!r}")
    return handle


def make_tags(ours: Mapping[str, str], extra: Mapping[str, str]) -> dict[str, str]:
    """Azure tags: ``ours`` first, then ``extra`` labels that do not collide, at most 50 in all."""
    tags: dict[str, str] = {}
    for pairs, override in ((ours, True), (extra, False)):
        for key, value in pairs.items():
            k = _TAG_KEY_BAD.sub("_", key)[:512]
            if not k or (k in tags and not override) or (k not in tags and len(tags) >= _MAX_TAGS):
                continue
            tags[k] = str(value)[:256]
    return tags


def attempt_of(tags: Mapping[str, str] | None) -> tuple[str, int] | None:
    """(task id, attempt) from a group's tags, or None when they are absent or malformed."""
    try:
        return str((tags or {})[T_TASK]), int((tags or {})[T_ATTEMPT])
    except (KeyError, ValueError, TypeError):
        return None
