"""The emulated ECS resources (clusters, task definitions, tasks) and their JSON as the API returns it.

Plain mutable records. They are not thread-safe on their own: every read and
write happens under :attr:`mayfly.providers.ecs.emulator.backend.EcsBackend.lock`.
Timestamps are epoch seconds (floats), which is what ECS's JSON protocol sends.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from mayfly.providers.ecs.emulator.arns import ACCOUNT_ID, container_arn

#: The platform version ``LATEST`` resolves to on Fargate (Linux).
PLATFORM_VERSION = "1.4.0"


def tag_list(tags: dict[str, str]) -> list[dict[str, str]]:
    """ECS's tag shape: ``[{"key": ..., "value": ...}]``."""
    return [{"key": k, "value": v} for k, v in tags.items()]


def _compact(doc: dict[str, Any]) -> dict[str, Any]:
    """Drop members without a value: ECS omits them rather than sending null."""
    return {k: v for k, v in doc.items() if v is not None}


@dataclass
class Cluster:
    """One ECS cluster."""

    region: str
    name: str
    arn: str
    tags: dict[str, str] = field(default_factory=dict)
    settings: list[dict[str, Any]] = field(default_factory=list)
    configuration: dict[str, Any] | None = None
    capacity_providers: list[str] = field(default_factory=list)
    default_strategy: list[dict[str, Any]] = field(default_factory=list)
    status: str = "ACTIVE"

    def to_json(self, *, running: int, pending: int, include: frozenset[str] = frozenset()) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "clusterArn": self.arn,
            "clusterName": self.name,
            "status": self.status,
            "registeredContainerInstancesCount": 0,
            "runningTasksCount": running,
            "pendingTasksCount": pending,
            "activeServicesCount": 0,
            "statistics": [],
            "capacityProviders": list(self.capacity_providers),
            "defaultCapacityProviderStrategy": copy.deepcopy(self.default_strategy),
            "configuration": copy.deepcopy(self.configuration),
        }
        if "SETTINGS" in include:
            doc["settings"] = copy.deepcopy(self.settings) or [{"name": "containerInsights", "value": "disabled"}]
        if "TAGS" in include:
            doc["tags"] = tag_list(self.tags)
        return _compact(doc)


@dataclass
class TaskDefinition:
    """One revision of a task definition family; ``body`` is the registered definition, normalized."""

    region: str
    family: str
    revision: int
    arn: str
    body: dict[str, Any]
    compatibilities: list[str]
    registered_at: float
    tags: dict[str, str] = field(default_factory=dict)
    status: str = "ACTIVE"
    deregistered_at: float | None = None

    @property
    def containers(self) -> list[dict[str, Any]]:
        return list(self.body.get("containerDefinitions", []))

    def to_json(self) -> dict[str, Any]:
        doc = copy.deepcopy(self.body)
        doc.update(
            taskDefinitionArn=self.arn,
            family=self.family,
            revision=self.revision,
            status=self.status,
            compatibilities=list(self.compatibilities),
            requiresAttributes=[],
            registeredAt=self.registered_at,
            registeredBy=f"arn:aws:iam::{ACCOUNT_ID}:root",
            deregisteredAt=self.deregistered_at,
        )
        doc.setdefault("volumes", [])
        doc.setdefault("placementConstraints", [])
        return _compact(doc)


@dataclass
class Container:
    """The state of one container of a task, as ``Task.containers[]`` reports it."""

    arn: str
    name: str
    image: str
    cpu: str
    memory: str | None
    memory_reservation: str | None
    last_status: str = "PENDING"
    exit_code: int | None = None
    reason: str | None = None
    runtime_id: str | None = None
    image_digest: str | None = None
    private_ip: str | None = None

    def to_json(self, task_arn: str, attachment_id: str) -> dict[str, Any]:
        return _compact(
            {
                "containerArn": self.arn,
                "taskArn": task_arn,
                "name": self.name,
                "image": self.image,
                "imageDigest": self.image_digest,
                "runtimeId": self.runtime_id,
                "lastStatus": self.last_status,
                "exitCode": self.exit_code,
                "reason": self.reason,
                "networkBindings": [],
                "networkInterfaces": [{"attachmentId": attachment_id, "privateIpv4Address": self.private_ip}]
                if self.private_ip
                else [],
                "healthStatus": "UNKNOWN",
                "cpu": self.cpu,
                "memory": self.memory,
                "memoryReservation": self.memory_reservation,
            }
        )


@dataclass
class Task:
    """One task: what RunTask was asked, and where its lifecycle is.

    ``lastStatus`` moves PROVISIONING -> PENDING -> RUNNING -> DEPROVISIONING ->
    STOPPED (a task that fails to start skips RUNNING); ``desiredStatus`` moves
    RUNNING -> STOPPED once the task is asked to stop or its container exits.
    ``version`` counts the changes, as ECS's does.
    """

    region: str
    id: str
    arn: str
    cluster: Cluster
    definition: TaskDefinition
    overrides: dict[str, Any]
    launch_type: str
    capacity_provider: str | None
    platform_version: str | None
    network: dict[str, Any] | None
    started_by: str | None
    group: str
    tags: dict[str, str]
    cpu: str | None
    memory: str | None
    containers: list[Container]
    created_at: float
    client_token: str | None = None
    last_status: str = "PROVISIONING"
    desired_status: str = "RUNNING"
    version: int = 1
    stop_code: str | None = None
    stopped_reason: str | None = None
    pull_started_at: float | None = None
    pull_stopped_at: float | None = None
    started_at: float | None = None
    connectivity_at: float | None = None
    stopping_at: float | None = None
    execution_stopped_at: float | None = None
    stopped_at: float | None = None
    attachment_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    eni_id: str = field(default_factory=lambda: "eni-" + uuid.uuid4().hex[:17])

    @property
    def container(self) -> Container:
        """The task's (one) essential container."""
        return self.containers[0]

    @property
    def stopped(self) -> bool:
        return self.last_status == "STOPPED"

    # ---------------------------------------------------------- transitions

    def _changed(self) -> None:
        self.version += 1

    def pending(self, now: float) -> None:
        """The launch began: image lookup (ECS's pull) and container creation."""
        self.last_status = "PENDING"
        self.pull_started_at = now
        self._changed()

    def pulled(self, now: float, image_digest: str | None) -> None:
        self.pull_stopped_at = now
        self.container.image_digest = image_digest
        self._changed()

    def running(self, now: float, runtime_id: str, private_ip: str | None) -> None:
        """The container started."""
        self.last_status = "RUNNING"
        self.started_at = self.connectivity_at = now
        self.container.last_status = "RUNNING"
        self.container.runtime_id = runtime_id
        self.container.private_ip = private_ip
        self._changed()

    def request_stop(self, now: float, code: str, reason: str) -> bool:
        """Desired status STOPPED, with why; False when the task was already stopping."""
        if self.desired_status == "STOPPED":
            return False
        self.desired_status = "STOPPED"
        self.stopping_at = now
        self.stop_code = code
        self.stopped_reason = reason
        self._changed()
        return True

    def failed_to_start(self, now: float, reason: str) -> None:
        """The launch failed: ECS's TaskFailedToStart, the reason on the task and its container."""
        self.request_stop(now, "TaskFailedToStart", reason)
        # A failure wins over a stop request that raced with it: the task never ran.
        self.stop_code, self.stopped_reason = "TaskFailedToStart", reason
        self.container.reason = reason
        self.container.last_status = "STOPPED"
        self.last_status = "DEPROVISIONING"
        self.execution_stopped_at = now
        self._changed()

    def exited(self, now: float, exit_code: int | None, reason: str | None, finished_at: float | None) -> None:
        """The essential container exited (on its own or stopped): the task deprovisions."""
        self.request_stop(now, "EssentialContainerExited", "Essential container in task exited")
        self.container.exit_code = exit_code
        self.container.reason = reason
        self.container.last_status = "STOPPED"
        self.last_status = "DEPROVISIONING"
        self.execution_stopped_at = finished_at or now
        self._changed()

    def finished(self, now: float) -> None:
        """Deprovisioned: logs shipped, container removed."""
        self.last_status = "STOPPED"
        self.container.last_status = "STOPPED"
        self.stopped_at = now
        self._changed()

    # ------------------------------------------------------------------ JSON

    def _attachment(self) -> dict[str, Any]:
        status = {"PROVISIONING": "PRECREATED", "STOPPED": "DELETED"}.get(self.last_status, "ATTACHED")
        vpc = (self.network or {}).get("awsvpcConfiguration") or {}
        details = [
            {"name": "subnetId", "value": (vpc.get("subnets") or [""])[0]},
            {"name": "networkInterfaceId", "value": self.eni_id},
        ]
        if self.container.private_ip:
            details.append({"name": "privateIPv4Address", "value": self.container.private_ip})
        return {"id": self.attachment_id, "type": "ElasticNetworkInterface", "status": status, "details": details}

    def to_json(self, *, include_tags: bool) -> dict[str, Any]:
        overrides = copy.deepcopy(self.overrides)
        overrides.setdefault("containerOverrides", [])
        overrides.setdefault("inferenceAcceleratorOverrides", [])
        doc: dict[str, Any] = {
            "attachments": [self._attachment()] if self.network else [],
            "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
            "availabilityZone": f"{self.region}a",
            "capacityProviderName": self.capacity_provider,
            "clusterArn": self.cluster.arn,
            "connectivity": "CONNECTED" if self.connectivity_at is not None else None,
            "connectivityAt": self.connectivity_at,
            "containers": [c.to_json(self.arn, self.attachment_id) for c in self.containers],
            "cpu": self.cpu,
            "memory": self.memory,
            "createdAt": self.created_at,
            "desiredStatus": self.desired_status,
            "enableExecuteCommand": False,
            "executionStoppedAt": self.execution_stopped_at,
            "group": self.group,
            "healthStatus": "UNKNOWN",
            "lastStatus": self.last_status,
            "launchType": self.launch_type,
            "overrides": overrides,
            "platformVersion": self.platform_version,
            "platformFamily": "Linux" if self.launch_type == "FARGATE" else None,
            "pullStartedAt": self.pull_started_at,
            "pullStoppedAt": self.pull_stopped_at,
            "startedAt": self.started_at,
            "startedBy": self.started_by,
            "stopCode": self.stop_code,
            "stoppedAt": self.stopped_at,
            "stoppedReason": self.stopped_reason,
            "stoppingAt": self.stopping_at,
            "taskArn": self.arn,
            "taskDefinitionArn": self.definition.arn,
            "version": self.version,
            "ephemeralStorage": {"sizeInGiB": 20} if self.launch_type == "FARGATE" else None,
        }
        if include_tags:
            doc["tags"] = tag_list(self.tags)
        return _compact(doc)


def new_container(region: str, cluster: str, task_id: str, definition: dict[str, Any]) -> Container:
    """The container record of a new task, from its container definition."""
    memory = definition.get("memory")
    reservation = definition.get("memoryReservation")
    return Container(
        arn=container_arn(region, cluster, task_id, str(uuid.uuid4())),
        name=str(definition["name"]),
        image=str(definition["image"]),
        cpu=str(definition.get("cpu", 0)),
        memory=None if memory is None else str(memory),
        memory_reservation=None if reservation is None else str(reservation),
    )
