"""Identifiers of the emulated account: ARNs in ECS's formats, and parsing of "name or ARN" references."""

from __future__ import annotations

import re

#: The account every emulated resource belongs to (moto's default account).
ACCOUNT_ID = "123456789012"
#: Region of requests that carry no SigV4 credential scope.
DEFAULT_REGION = "us-east-1"

_SCOPE = re.compile(r"Credential=[^/,\s]+/\d{8}/([a-z0-9-]+)/")


def region_of(authorization: str | None, default: str = DEFAULT_REGION) -> str:
    """The region of a SigV4 ``Authorization`` header's credential scope."""
    match = _SCOPE.search(authorization or "")
    return match.group(1) if match else default


def cluster_arn(region: str, name: str) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT_ID}:cluster/{name}"


def task_definition_arn(region: str, family: str, revision: int) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT_ID}:task-definition/{family}:{revision}"


def task_arn(region: str, cluster: str, task_id: str) -> str:
    """The long ARN format (``task/CLUSTER/ID``), the only one new accounts get."""
    return f"arn:aws:ecs:{region}:{ACCOUNT_ID}:task/{cluster}/{task_id}"


def container_arn(region: str, cluster: str, task_id: str, container_id: str) -> str:
    return f"arn:aws:ecs:{region}:{ACCOUNT_ID}:container/{cluster}/{task_id}/{container_id}"


def resource_of(arn: str) -> tuple[str, str] | None:
    """``(type, rest)`` of an ECS ARN, e.g. ``("task", "CLUSTER/ID")``; None when ``arn`` is no ECS ARN."""
    parts = arn.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[2] != "ecs" or "/" not in parts[5]:
        return None
    kind, rest = parts[5].split("/", 1)
    return kind, rest


def cluster_name(ref: str | None) -> str:
    """The cluster name of a name-or-ARN reference (``default`` when absent, as ECS assumes)."""
    if not ref:
        return "default"
    parsed = resource_of(ref)
    if parsed and parsed[0] == "cluster":
        return parsed[1]
    return ref


def task_id(ref: str) -> str:
    """The task id of a task ARN (long or short format) or of a bare id."""
    parsed = resource_of(ref)
    if parsed and parsed[0] == "task":
        return parsed[1].rsplit("/", 1)[-1]
    return ref
