"""RunTask's rules: client tokens, where a task goes (launch type or capacity provider), and the new tasks.

``clientToken``: 1 to 64 printable ASCII characters. The same token with the
same request returns the tasks it created; with any other parameter it is a
``ConflictException`` naming the token (the fingerprint is the whole request
but the token). Tokens are forgotten with their tasks, an hour after they stop.
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

from mayfly.providers.ecs.emulator import arns, fargate
from mayfly.providers.ecs.emulator.errors import EcsError, invalid_parameter
from mayfly.providers.ecs.emulator.model import PLATFORM_VERSION, Cluster, Task, TaskDefinition, new_container
from mayfly.providers.ecs.emulator.params import parse_tags

#: RunTask's cap on the JSON of ``overrides`` (formatting characters included).
MAX_OVERRIDES_CHARS = 8192
MAX_COUNT = 10
NO_CONTAINER_INSTANCES = "No Container Instances were found in your cluster."

_STARTED_BY = re.compile(r"^[A-Za-z0-9_/-]{1,128}$")


def check_client_token(token: Any) -> None:
    if token is not None and (
        not isinstance(token, str) or not 1 <= len(token) <= 64 or any(not 33 <= ord(c) <= 126 for c in token)
    ):
        raise invalid_parameter("clientToken must be 1 to 64 characters in the range 33-126.")


def fingerprint(req: dict[str, Any]) -> str:
    """What must match for a reused clientToken: the request without the token."""
    return json.dumps({k: v for k, v in req.items() if k != "clientToken"}, sort_keys=True)


def launch_target(cluster: Cluster, req: dict[str, Any]) -> tuple[str, str | None]:
    """``(launchType, capacityProviderName)`` from launchType, a strategy or the cluster's default strategy."""
    launch_type = req.get("launchType")
    strategy = req.get("capacityProviderStrategy")
    if launch_type and strategy:
        raise invalid_parameter(
            "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again."
        )
    if launch_type:
        if launch_type not in ("EC2", "FARGATE", "EXTERNAL", "MANAGED_INSTANCES"):
            raise invalid_parameter(f"launchType {launch_type!r} is not valid.")
        return str(launch_type), None
    strategy = strategy or cluster.default_strategy
    if not strategy:
        # No launch type and no strategy anywhere: ECS uses EC2.
        return "EC2", None
    for item in strategy:
        if item.get("capacityProvider") not in cluster.capacity_providers:
            raise invalid_parameter(
                "The specified capacity provider strategy cannot contain a capacity provider that is not "
                "associated with the cluster. Associate the capacity provider with the cluster or specify a "
                "valid capacity provider and try again."
            )
    # Capacity is unlimited here: the first provider with a weight (or base) takes every task.
    weighted = [item for item in strategy if item.get("weight", 0) or item.get("base", 0)] or strategy
    return "FARGATE", str(weighted[0]["capacityProvider"])


def _check_overrides(definition: TaskDefinition, overrides: dict[str, Any]) -> None:
    if len(json.dumps(overrides, separators=(",", ":"))) > MAX_OVERRIDES_CHARS:
        raise invalid_parameter(f"Container Overrides length must be at most {MAX_OVERRIDES_CHARS}")
    names = {c["name"] for c in definition.containers}
    for override in overrides.get("containerOverrides") or []:
        if override.get("name") not in names:
            raise invalid_parameter(
                f"Override for container named {override.get('name')} is not a container in the TaskDefinition."
            )


def _task_tags(cluster: Cluster, definition: TaskDefinition, req: dict[str, Any]) -> dict[str, str]:
    tags = parse_tags(req.get("tags"))
    if req.get("enableECSManagedTags"):
        tags["aws:ecs:clusterName"] = cluster.name
    if req.get("propagateTags") == "TASK_DEFINITION":
        tags = {**definition.tags, **tags}
    elif req.get("propagateTags") == "SERVICE":
        raise invalid_parameter("The SERVICE option of propagateTags is only valid for tasks started by a service.")
    return tags


def new_tasks(
    region: str, cluster: Cluster, definition: TaskDefinition, req: dict[str, Any], now: float
) -> tuple[list[Task], list[dict[str, Any]]]:
    """The tasks a valid RunTask creates (PROVISIONING), or ECS's failures; raises EcsError for a bad request."""
    count = req.get("count", 1)
    if not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise invalid_parameter(f"count must be between 1 and {MAX_COUNT}.")
    started_by = req.get("startedBy")
    if started_by is not None and not _STARTED_BY.match(str(started_by)):
        raise invalid_parameter(
            "startedBy can have up to 128 letters (uppercase and lowercase), numbers, hyphens, forward slashes "
            "and underscores."
        )
    overrides = req.get("overrides") or {}
    _check_overrides(definition, overrides)
    tags = _task_tags(cluster, definition, req)
    launch_type, capacity_provider = launch_target(cluster, req)
    if launch_type != "FARGATE":
        # The emulator has no container instances: ECS's answer for EC2/EXTERNAL with none registered.
        return [], [{"reason": NO_CONTAINER_INSTANCES}]
    fargate.check_fargate_run(definition.body, req.get("networkConfiguration"))
    if len(definition.containers) != 1:
        raise EcsError(
            "UnsupportedFeatureException", "The Mayfly ECS emulator runs task definitions with exactly one container."
        )
    platform = req.get("platformVersion") or "LATEST"
    tasks = []
    for _ in range(count):
        task_id = uuid.uuid4().hex
        tasks.append(
            Task(
                region=region,
                id=task_id,
                arn=arns.task_arn(region, cluster.name, task_id),
                cluster=cluster,
                definition=definition,
                overrides=json.loads(json.dumps(overrides)),
                launch_type=launch_type,
                capacity_provider=capacity_provider,
                platform_version=PLATFORM_VERSION if platform == "LATEST" else str(platform),
                network=req.get("networkConfiguration"),
                started_by=started_by,
                group=str(req.get("group") or f"family:{definition.family}"),
                tags=dict(tags),
                cpu=overrides.get("cpu") or definition.body.get("cpu"),
                memory=overrides.get("memory") or definition.body.get("memory"),
                containers=[new_container(region, cluster.name, task_id, c) for c in definition.containers],
                created_at=now,
                client_token=req.get("clientToken"),
            )
        )
    return tasks, []
