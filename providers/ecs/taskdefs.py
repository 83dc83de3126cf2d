"""Task definitions: one per distinct (image, size, roles, logging), shared by every task that fits it.

Registering a task definition per run is what made peers hit ECS's "Too many
concurrent attempts" limits (PrefectHQ/prefect#16485 and others). Here the family
name is content-addressed: ``mayfly-<target>-<hash12>``, the hash covering every
parameter of the definition. A runner describes the family once, registers it
only if it is absent, and remembers the ARN for the life of the process. Two
runners racing to register the same family both succeed (ECS adds a revision with
the same content) and either revision is right, so no cross-process lock is needed.

Sizes are Fargate's: a task gets the smallest valid CPU/memory combination that
is at least what it asks for (see :func:`fargate_size`), so tasks of similar
sizes share a definition.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mayfly.core.errors import LaunchFailed
from mayfly.providers.ecs import sdk
from mayfly.providers.ecs.aws import THROTTLING, Clients, error_code, error_message, translate
from mayfly.providers.ecs.limiter import backoff
from mayfly.runtimes.catalog import IMAGE_PREFIX

#: Name of the one container of every task definition (awslogs streams are ``<prefix>/task/<id>``).
CONTAINER = "task"
#: Fargate's valid (CPU units, memory MiB choices), Linux, platform 1.4.0:
#: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/fargate-tasks-services.html#fargate-tasks-size
FARGATE_SIZES: tuple[tuple[int, Sequence[int]], ...] = (
    (256, (512, 1024, 2048)),
    (512, range(1024, 4096 + 1, 1024)),
    (1024, range(2048, 8192 + 1, 1024)),
    (2048, range(4096, 16384 + 1, 1024)),
    (4096, range(8192, 30720 + 1, 1024)),
    (8192, range(16384, 61440 + 1, 4096)),
    (16384, range(32768, 122880 + 1, 8192)),
)
MAX_CPU = FARGATE_SIZES[-1][0] / 1024
MAX_MEMORY_MB = FARGATE_SIZES[-1][1][-1]
_FAMILY_BAD = re.compile(r"[^A-Za-z0-9_-]")
_REGISTER_RETRIES = 5


def fargate_size(cpu: float, memory_mb: int) -> tuple[int, int]:
    """The smallest Fargate (CPU units, memory MiB) with at least ``cpu`` cores and ``memory_mb``.

    Rounds up: 0.3 CPU and 600 MiB run as 512 units (0.5 vCPU) and 1024 MiB; 0.25
    CPU with 4 GiB runs as 0.5 vCPU because 0.25 vCPU allows at most 2 GiB.

    Raises:
        LaunchFailed: (not retryable) above 16 vCPU or 120 GiB, Fargate's largest task.
    """
    if cpu > MAX_CPU or memory_mb > MAX_MEMORY_MB:
        raise LaunchFailed(
            f"Fargate runs tasks of at most {MAX_CPU:g} vCPU and {MAX_MEMORY_MB // 1024} GiB; "
            f"this task asks for {cpu:g} vCPU and {memory_mb} MiB",
            retryable=False,
        )
    units = max(1, math.ceil(cpu * 1024))
    for cpu_units, memories in FARGATE_SIZES:
        if cpu_units >= units and memories[-1] >= memory_mb:
            return cpu_units, next(m for m in memories if m >= memory_mb)
    raise AssertionError("unreachable: the largest Fargate size covers every accepted request")


def task_image(image: str, image_prefix: str | None) -> str:
    """The image a task runs: ``mayfly/runtime-NAME:V`` becomes ``PREFIX:runtime-NAME-V`` with a prefix."""
    if image_prefix and image.startswith(IMAGE_PREFIX):
        name, sep, version = image[len(IMAGE_PREFIX) :].partition(":")
        if sep and name and version:
            return f"{image_prefix}:runtime-{name}-{version}"
    return image


@dataclass(frozen=True)
class TaskDefinitionSpec:
    """Every parameter of a task definition; equal specs share one family."""

    image: str
    cpu: int
    memory: int
    execution_role_arn: str
    task_role_arn: str | None
    log_group: str
    log_stream_prefix: str
    region: str
    #: Seconds between SIGTERM and SIGKILL when the task is stopped.
    stop_timeout: int
    #: The container's ``secrets`` as (variable, parameter ARN): one attempt's own definition when set.
    secrets: tuple[tuple[str, str], ...] = ()

    def body(self) -> dict[str, Any]:
        """RegisterTaskDefinition's arguments, without the family."""
        container: dict[str, Any] = {
            "name": CONTAINER,
            "image": self.image,
            "essential": True,
            # The container's hard limit is the task's memory. NOTE: moto requires a container-level
            # memory for Fargate too (AWS does not); with it, an OOM kill is reported on the container.
            "memory": self.memory,
            "stopTimeout": self.stop_timeout,
            "linuxParameters": {
                # An init process forwards SIGTERM to the task and reaps zombies (docker-init locally).
                "initProcessEnabled": True,
                "capabilities": {"drop": ["ALL"]},
            },
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": self.log_group,
                    "awslogs-region": self.region,
                    "awslogs-stream-prefix": self.log_stream_prefix,
                },
            },
        }
        if self.secrets:
            container["secrets"] = [{"name": n, "valueFrom": v} for n, v in self.secrets]
        body: dict[str, Any] = {
            "containerDefinitions": [container],
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": str(self.cpu),
            "memory": str(self.memory),
            "executionRoleArn": self.execution_role_arn,
        }
        if self.task_role_arn:
            body["taskRoleArn"] = self.task_role_arn
        return body

    def family(self, target: str) -> str:
        """``mayfly-<target>-<hash12>``: the same parameters always give the same family."""
        digest = hashlib.sha256(json.dumps(self.body(), sort_keys=True).encode()).hexdigest()[:12]
        return f"mayfly-{_FAMILY_BAD.sub('-', target)[:200]}-{digest}"


class TaskDefinitions:
    """Task definition ARNs by family: described or registered at most once per process (thread-safe)."""

    def __init__(
        self,
        clients: Clients,
        target: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._clients = clients
        self._target = target
        self._sleep = sleep
        self._rng = rng
        self._arns: dict[str, str] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def forget(self, arn: str) -> None:
        """Drop a (deregistered) definition from the cache."""
        with self._guard:
            for family in [f for f, a in self._arns.items() if a == arn]:
                del self._arns[family]

    def arn_for(self, spec: TaskDefinitionSpec) -> str:
        """The ARN of the task definition for ``spec``, registering it if ECS has none.

        Raises:
            LaunchFailed: registration was refused (retryable only when ECS throttled it).
        """
        family = spec.family(self._target)
        arn = self._arns.get(family)
        if arn is not None:
            return arn
        with self._guard:
            lock = self._locks.setdefault(family, threading.Lock())
        # One lock per family: launches of other images are not held up by this registration.
        with lock:
            arn = self._arns.get(family)
            if arn is None:
                with translate(f"looking up ECS task definition {family}"):
                    arn = self._describe(family, spec) or self._register(family, spec)
                self._arns[family] = arn
            return arn

    def _describe(self, family: str, spec: TaskDefinitionSpec) -> str | None:
        """The latest ACTIVE revision of ``family`` if it matches ``spec``."""
        bx = sdk.errors()
        try:
            found = self._clients("ecs").describe_task_definition(taskDefinition=family)["taskDefinition"]
        except bx.ClientError as exc:
            # ECS answers ClientException "Unable to describe task definition." for an unknown family.
            if error_code(exc) == "ClientException":
                return None
            raise
        containers = found.get("containerDefinitions") or [{}]
        same = (
            found.get("status") == "ACTIVE"
            and containers[0].get("image") == spec.image
            and str(found.get("cpu")) == str(spec.cpu)
            and str(found.get("memory")) == str(spec.memory)
        )
        return str(found["taskDefinitionArn"]) if same else None

    def _register(self, family: str, spec: TaskDefinitionSpec) -> str:
        bx = sdk.errors()
        delays = backoff(_REGISTER_RETRIES, rng=self._rng)
        while True:
            try:
                registered = self._clients("ecs").register_task_definition(
                    family=family, tags=[{"key": "mayfly.target", "value": self._target}], **spec.body()
                )
                return str(registered["taskDefinition"]["taskDefinitionArn"])
            except bx.ClientError as exc:
                code, message = error_code(exc), error_message(exc)
                # "Too many concurrent attempts to create a new revision of the specified family."
                busy = code in THROTTLING or "concurrent" in message.lower()
                if not busy:
                    raise LaunchFailed(
                        f"ECS refused to register task definition {family}: {code}: {message}",
                        retryable=code == "ServerException",
                    ) from exc
                delay = next(delays, None)
                if delay is None:
                    raise LaunchFailed(
                        f"ECS kept refusing to register task definition {family} ({code}: {message})",
                        retryable=True,
                    ) from exc
            self._sleep(delay)
            # Another runner was registering the same family: its revision will do.
            arn = self._describe(family, spec)
            if arn is not None:
                return arn
