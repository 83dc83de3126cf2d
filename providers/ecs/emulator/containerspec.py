"""What ``docker create`` a task becomes: the container definition, the RunTask overrides, the task's size.

Mapped (ECS -> Docker): ``entryPoint``, ``command`` (overridden), ``environment``
(task definition, then the override's), ``user``, ``workingDirectory``,
``readonlyRootFilesystem``, ``linuxParameters.initProcessEnabled`` (``--init``)
and ``capabilities``, ``ulimits``, ``dockerLabels``; the task's ``cpu`` units
become a CPU quota (``cpu/1024`` CPUs, at most the engine's), the task's
``memory`` and the container's ``memory`` a hard limit without swap (so
exceeding it is a real OOM kill, as on Fargate), ``memoryReservation`` a soft
limit, the container's ``cpu`` CPU shares; ``stopTimeout`` the grace period of
StopTask. Fargate also sets ``AWS_REGION``, ``AWS_DEFAULT_REGION`` and
``AWS_EXECUTION_ENV``, and so does the emulator. Anything else of a container
definition (volumes, health checks, port mappings, firelens, ...) is
accepted by RegisterTaskDefinition and ignored when the task runs; ``secrets``
are resolved against moto's SSM and Secrets Manager when the task starts
(:mod:`~mayfly.providers.ecs.emulator.secrets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mayfly.providers.ecs.emulator.fargate import DEFAULT_STOP_TIMEOUT
from mayfly.providers.ecs.emulator.model import Task

MIB = 1024 * 1024
#: Docker refuses limits under 6 MiB.
MIN_MEMORY_MB = 6


@dataclass(frozen=True)
class AwsLogs:
    """The awslogs settings of a container: where its stdout/stderr go in CloudWatch Logs."""

    group: str
    region: str
    stream: str


@dataclass(frozen=True)
class ContainerSpec:
    """One task container, ready for ``docker create`` (the image is resolved separately)."""

    #: The image as the task definition names it.
    image: str
    entrypoint: list[str] | None
    command: list[str] | None
    environment: dict[str, str]
    user: str | None
    working_dir: str | None
    #: Hard memory limit in MiB (task memory, or the container's own if lower).
    memory_mb: int | None
    memory_reservation_mb: int | None
    #: CPU quota in CPUs (task cpu units / 1024, capped at the engine's CPUs).
    cpus: float | None
    cpu_shares: int | None
    stop_timeout: int
    init: bool
    read_only: bool
    cap_add: list[str]
    cap_drop: list[str]
    ulimits: list[dict[str, Any]]
    labels: dict[str, str]
    awslogs: AwsLogs | None

    def create_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``client.containers.create`` (image, name, network excluded)."""
        import docker.types

        kwargs: dict[str, Any] = {
            "entrypoint": self.entrypoint,
            "command": self.command,
            "environment": self.environment,
            "user": self.user,
            "working_dir": self.working_dir,
            "labels": self.labels,
            "init": self.init or None,
            "read_only": self.read_only or None,
            "cap_add": self.cap_add or None,
            "cap_drop": self.cap_drop or None,
            "ulimits": [docker.types.Ulimit(**u) for u in self.ulimits] or None,
            # The logs API needs a driver it can read back, whatever the engine's default is.
            "log_config": docker.types.LogConfig(type="json-file"),
            "detach": True,
        }
        if self.memory_mb is not None:
            kwargs["mem_limit"] = kwargs["memswap_limit"] = self.memory_mb * MIB
        if self.memory_reservation_mb is not None:
            kwargs["mem_reservation"] = self.memory_reservation_mb * MIB
        if self.cpus is not None:
            kwargs["nano_cpus"] = int(self.cpus * 1e9)
        if self.cpu_shares is not None:
            kwargs["cpu_shares"] = self.cpu_shares
        return {k: v for k, v in kwargs.items() if v is not None}


def _env(pairs: Any) -> dict[str, str]:
    return {str(p["name"]): str(p.get("value", "")) for p in pairs or [] if p.get("name")}


def _override(task: Task, name: str) -> Mapping[str, Any]:
    for override in task.overrides.get("containerOverrides") or []:
        if override.get("name") == name:
            return dict(override)
    return {}


def _capability(name: str) -> str:
    """ECS's ``SYS_ADMIN`` / ``ALL`` as Docker's ``CAP_SYS_ADMIN`` / ``ALL``."""
    return name if name == "ALL" or name.startswith("CAP_") else f"CAP_{name}"


def _rewrite(value: str, rewrites: Mapping[str, str]) -> str:
    for old, new in rewrites.items():
        value = value.replace(old, new)
    return value


def container_spec(
    task: Task,
    *,
    host_cpus: float,
    labels: Mapping[str, str],
    rewrites: Mapping[str, str] | None = None,
) -> ContainerSpec:
    """The container of ``task`` (its one container definition with the RunTask overrides).

    ``rewrites`` replaces substrings in environment values and command arguments:
    the emulator uses it to turn its loopback URL into one containers can reach.
    """
    rewrites = rewrites or {}
    definition = task.definition.containers[0]
    override = _override(task, definition["name"])
    environment = {
        "AWS_REGION": task.region,
        "AWS_DEFAULT_REGION": task.region,
        "AWS_EXECUTION_ENV": "AWS_ECS_FARGATE",
        **_env(definition.get("environment")),
        **_env(override.get("environment")),
    }
    environment = {k: _rewrite(v, rewrites) for k, v in environment.items()}
    command = override.get("command") or definition.get("command")
    if command is not None:
        command = [_rewrite(str(arg), rewrites) for arg in command]
    entrypoint = definition.get("entryPoint")

    limits = [int(task.memory)] if task.memory else []
    container_memory = override.get("memory", definition.get("memory"))
    if container_memory:
        limits.append(int(container_memory))
    memory_mb = max(min(limits), MIN_MEMORY_MB) if limits else None
    reservation = override.get("memoryReservation", definition.get("memoryReservation"))
    cpus = min(int(task.cpu) / 1024, host_cpus) if task.cpu else None
    shares = override.get("cpu", definition.get("cpu"))

    linux = definition.get("linuxParameters") or {}
    capabilities = linux.get("capabilities") or {}
    log_config = definition.get("logConfiguration") or {}
    awslogs = None
    if log_config.get("logDriver") == "awslogs":
        options = log_config.get("options") or {}
        prefix = options.get("awslogs-stream-prefix")
        name = definition["name"]
        awslogs = AwsLogs(
            group=str(options["awslogs-group"]),
            region=str(options.get("awslogs-region") or task.region),
            # ECS's stream name: prefix/container-name/task-id (without a prefix: the task id).
            stream=f"{prefix}/{name}/{task.id}" if prefix else task.id,
        )
    return ContainerSpec(
        image=str(definition["image"]),
        entrypoint=[str(a) for a in entrypoint] if entrypoint else None,
        command=command,
        environment=environment,
        user=definition.get("user") or None,
        working_dir=definition.get("workingDirectory") or None,
        memory_mb=memory_mb,
        memory_reservation_mb=int(reservation) if reservation else None,
        cpus=cpus,
        cpu_shares=max(int(shares), 2) if shares else None,
        stop_timeout=int(definition.get("stopTimeout") or DEFAULT_STOP_TIMEOUT),
        init=bool(linux.get("initProcessEnabled")),
        read_only=bool(definition.get("readonlyRootFilesystem")),
        cap_add=[_capability(c) for c in capabilities.get("add") or []],
        cap_drop=[_capability(c) for c in capabilities.get("drop") or []],
        ulimits=[
            {"name": u["name"], "soft": int(u["softLimit"]), "hard": int(u["hardLimit"])}
            for u in definition.get("ulimits") or []
        ],
        labels={
            "com.amazonaws.ecs.cluster": task.cluster.arn,
            "com.amazonaws.ecs.container-name": str(definition["name"]),
            "com.amazonaws.ecs.task-arn": task.arn,
            "com.amazonaws.ecs.task-definition-family": task.definition.family,
            "com.amazonaws.ecs.task-definition-version": str(task.definition.revision),
            **{str(k): str(v) for k, v in (definition.get("dockerLabels") or {}).items()},
            **labels,
        },
        awslogs=awslogs,
    )
