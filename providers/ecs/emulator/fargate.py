"""Fargate's rules for task definitions and RunTask, as ECS validates them.

Only what a Fargate user meets: the task-level cpu/memory combinations, the
``awsvpc`` network mode, the execution role that ``awslogs`` needs and the
network configuration RunTask must carry. The messages are ECS's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from mayfly.providers.ecs.emulator.errors import client_exception, invalid_parameter

#: Task cpu units -> the memory sizes (MiB) Fargate offers with them (Linux).
FARGATE_SIZES: dict[int, frozenset[int]] = {
    256: frozenset({512, 1024, 2048}),
    512: frozenset(range(1024, 4096 + 1, 1024)),
    1024: frozenset(range(2048, 8192 + 1, 1024)),
    2048: frozenset(range(4096, 16384 + 1, 1024)),
    4096: frozenset(range(8192, 30720 + 1, 1024)),
    8192: frozenset(range(16384, 61440 + 1, 4096)),
    16384: frozenset(range(32768, 122880 + 1, 8192)),
}
#: Fargate's stopTimeout range; 30 s when not given.
STOP_TIMEOUT_RANGE = (2, 120)
DEFAULT_STOP_TIMEOUT = 30

_VCPU = re.compile(r"^\s*(\d*\.?\d+)\s*vcpu\s*$", re.IGNORECASE)
_GB = re.compile(r"^\s*(\d*\.?\d+)\s*gb\s*$", re.IGNORECASE)


def normalize_cpu(value: str | None) -> str | None:
    """Task cpu as ECS stores it: units (``"1 vCPU"`` -> ``"1024"``)."""
    if value is None:
        return None
    match = _VCPU.match(value)
    if match:
        return str(int(float(match.group(1)) * 1024))
    if value.strip().isdigit():
        return str(int(value))
    raise client_exception(f"Invalid 'cpu' setting for task: {value!r}.")


def normalize_memory(value: str | None) -> str | None:
    """Task memory as ECS stores it: MiB (``"2 GB"`` -> ``"2048"``)."""
    if value is None:
        return None
    match = _GB.match(value)
    if match:
        return str(int(float(match.group(1)) * 1024))
    if value.strip().isdigit():
        return str(int(value))
    raise client_exception(f"Invalid 'memory' setting for task: {value!r}.")


def fargate_compatible(definition: Mapping[str, Any]) -> bool:
    """Whether a (normalized) task definition can run on Fargate."""
    cpu, memory = definition.get("cpu"), definition.get("memory")
    if definition.get("networkMode") != "awsvpc" or cpu is None or memory is None:
        return False
    return int(memory) in FARGATE_SIZES.get(int(cpu), frozenset())


def check_fargate_definition(definition: Mapping[str, Any]) -> None:
    """RegisterTaskDefinition's checks for a definition that requires FARGATE."""
    if definition.get("networkMode") != "awsvpc":
        raise client_exception("Fargate only supports network mode 'awsvpc'.")
    cpu, memory = definition.get("cpu"), definition.get("memory")
    if cpu is None:
        raise client_exception("Fargate requires that 'cpu' be defined at the task level.")
    if memory is None:
        raise client_exception("Fargate requires that 'memory' be defined at the task level.")
    if int(memory) not in FARGATE_SIZES.get(int(cpu), frozenset()):
        raise client_exception(
            f"No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. "
            "See the Amazon ECS documentation for the valid combinations."
        )
    for container in definition.get("containerDefinitions", []):
        log = container.get("logConfiguration") or {}
        if log.get("logDriver") == "awslogs":
            if not definition.get("executionRoleArn"):
                raise client_exception(
                    "Fargate requires task definition to have execution role ARN to support log driver awslogs."
                )
            if not (log.get("options") or {}).get("awslogs-stream-prefix"):
                raise client_exception("Fargate requires awslogs-stream-prefix to be set for log driver awslogs.")
        timeout = container.get("stopTimeout")
        if timeout is not None and not STOP_TIMEOUT_RANGE[0] <= timeout <= STOP_TIMEOUT_RANGE[1]:
            raise client_exception("Fargate supports a container stopTimeout between 2 and 120 seconds.")


def check_fargate_run(definition: Mapping[str, Any], network_configuration: Mapping[str, Any] | None) -> None:
    """RunTask's checks for a task launched on FARGATE (or a FARGATE capacity provider)."""
    if not fargate_compatible(definition):
        raise invalid_parameter("Task definition does not support launch_type FARGATE.")
    vpc = (network_configuration or {}).get("awsvpcConfiguration")
    if not vpc:
        raise invalid_parameter("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
    if not vpc.get("subnets"):
        raise invalid_parameter("subnets can not be empty.")
    if vpc.get("assignPublicIp", "DISABLED") not in ("ENABLED", "DISABLED"):
        raise invalid_parameter("assignPublicIp must be ENABLED or DISABLED.")
