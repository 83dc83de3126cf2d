"""RegisterTaskDefinition's checks, and the definition as ECS stores it (defaults filled, sizes in units)."""

from __future__ import annotations

import copy
import re
from typing import Any

from mayfly.providers.ecs.emulator import fargate
from mayfly.providers.ecs.emulator.errors import client_exception

_FAMILY = re.compile(r"^[A-Za-z0-9_-]{1,255}$")


def _check_containers(containers: Any) -> None:
    if not isinstance(containers, list) or not containers:
        raise client_exception("Container definitions should not be empty.")
    names: set[str] = set()
    for container in containers:
        if not container.get("name"):
            raise client_exception("Container.name should not be null or empty.")
        if not container.get("image"):
            raise client_exception("Container.image should not be null or empty.")
        if container["name"] in names:
            raise client_exception("Container names must be unique within a task definition.")
        names.add(container["name"])
        log = container.get("logConfiguration") or {}
        if log.get("logDriver") == "awslogs":
            for option in ("awslogs-group", "awslogs-region"):
                if not (log.get("options") or {}).get(option):
                    raise client_exception(f"Log driver awslogs option '{option}' should not be null or empty.")


def normalize(req: dict[str, Any]) -> tuple[str, dict[str, Any], list[str]]:
    """``(family, body, compatibilities)`` of a RegisterTaskDefinition request, or the ECS error."""
    family = req.get("family")
    if not isinstance(family, str) or not _FAMILY.match(family):
        raise client_exception(
            "Family contains invalid characters. Family can be up to 255 letters (uppercase and lowercase), "
            "numbers, hyphens, and underscores."
        )
    _check_containers(req.get("containerDefinitions"))
    body = copy.deepcopy({k: v for k, v in req.items() if k != "tags"})
    body["cpu"] = fargate.normalize_cpu(req.get("cpu"))
    body["memory"] = fargate.normalize_memory(req.get("memory"))
    body = {k: v for k, v in body.items() if v is not None}
    body.setdefault("networkMode", "bridge")
    for container in body["containerDefinitions"]:
        container.setdefault("essential", True)
        container.setdefault("cpu", 0)
        for key in ("environment", "mountPoints", "volumesFrom", "portMappings"):
            container.setdefault(key, [])
    if "FARGATE" in (req.get("requiresCompatibilities") or []):
        fargate.check_fargate_definition(body)
    compatibilities = ["EC2"] + (["FARGATE"] if fargate.fargate_compatible(body) else [])
    return family, body, compatibilities
