"""A container group's state and its ARM representation (camelCase, as ACI returns it).

A group has ARM's ``provisioningState`` (``Pending`` while its container is being
created, ``Succeeded`` once it started, ``Failed`` when it could not start), the
group's ``instanceView.state`` (``Pending``, ``Running``, ``Succeeded``,
``Failed``, ``Stopped``) and its container's instance view: ``currentState``
and ``previousState`` (``state`` Waiting / Running / Terminated, ``startTime``,
``finishTime``, ``exitCode``, ``detailStatus``), ``restartCount`` and
``events`` (Pulling, Pulled, Started, Failed, BackOff, Killing).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mayfly.providers.aci.emulator.spec import GroupSpec

RESOURCE_TYPE = "Microsoft.ContainerInstance/containerGroups"


def iso(epoch: float | None) -> str | None:
    """ARM's timestamp of epoch seconds (``2026-01-02T03:04:05.678Z``)."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class ContainerState:
    """``currentState`` / ``previousState`` of a container."""

    state: str = "Waiting"
    detail_status: str = ""
    start_time: float | None = None
    finish_time: float | None = None
    exit_code: int | None = None

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {"state": self.state, "detailStatus": self.detail_status}
        if self.start_time is not None:
            body["startTime"] = iso(self.start_time)
        if self.finish_time is not None:
            body["finishTime"] = iso(self.finish_time)
        if self.exit_code is not None:
            body["exitCode"] = self.exit_code
        return body


@dataclass
class Event:
    """One event of a container's instance view (repeats are counted, as ACI does)."""

    name: str
    message: str
    type: str
    first: float
    last: float
    count: int = 1

    def to_arm(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "firstTimestamp": iso(self.first),
            "lastTimestamp": iso(self.last),
            "name": self.name,
            "message": self.message,
            "type": self.type,
        }


@dataclass
class Group:
    """One container group of the emulator."""

    subscription: str
    resource_group: str
    name: str
    spec: GroupSpec
    provisioning_state: str = "Pending"
    state: str = "Pending"
    current: ContainerState = field(default_factory=ContainerState)
    previous: ContainerState | None = None
    restart_count: int = 0
    events: list[Event] = field(default_factory=list)
    #: Docker container of the current run (None before it is created).
    container_id: str | None = None
    #: Bumped by every (re)launch: work of an older launch is dropped.
    generation: int = 0
    #: Principal and client ids of the user-assigned identities, made up once.
    identity_ids: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
            f"/providers/{RESOURCE_TYPE}/{self.name}"
        )

    def event(self, now: float, name: str, message: str, type: str = "Normal") -> None:
        """Record an event (a repeat of the last one with the same name and message counts up)."""
        for event in self.events:
            if event.name == name and event.message == message:
                event.count += 1
                event.last = now
                return
        self.events.append(Event(name, message, type, now, now))

    def _identity(self) -> dict[str, Any] | None:
        identity = self.spec.identity
        if not identity:
            return None
        body: dict[str, Any] = {"type": identity.get("type", "None")}
        assigned = identity.get("userAssignedIdentities") or {}
        if assigned:
            for resource_id in assigned:
                self.identity_ids.setdefault(
                    resource_id, {"principalId": str(uuid.uuid4()), "clientId": str(uuid.uuid4())}
                )
            body["userAssignedIdentities"] = {rid: dict(self.identity_ids[rid]) for rid in assigned}
        if "SystemAssigned" in str(body["type"]):
            body["principalId"] = self.identity_ids.setdefault(
                "system", {"principalId": str(uuid.uuid4()), "clientId": ""}
            )["principalId"]
            body["tenantId"] = "00000000-0000-0000-0000-000000000000"
        return body

    def to_arm(self, *, instance_view: bool = True) -> dict[str, Any]:
        """The group as GET returns it (``instance_view=False``: as a list returns it)."""
        properties: dict[str, Any] = dict(self.spec.public_properties)
        containers = []
        for container in properties.get("containers") or []:
            container = {**container, "properties": dict(container.get("properties") or {})}
            if instance_view:
                view: dict[str, Any] = {
                    "restartCount": self.restart_count,
                    "currentState": self.current.to_arm(),
                    "events": [event.to_arm() for event in self.events],
                }
                if self.previous is not None:
                    view["previousState"] = self.previous.to_arm()
                container["properties"]["instanceView"] = view
            containers.append(container)
        properties["containers"] = containers
        properties["provisioningState"] = self.provisioning_state
        properties.setdefault("sku", "Standard")
        if instance_view:
            properties["instanceView"] = {"events": [], "state": self.state}
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": RESOURCE_TYPE,
            "location": self.spec.location,
            "properties": properties,
        }
        if self.spec.tags:
            body["tags"] = dict(self.spec.tags)
        identity = self._identity()
        if identity is not None:
            body["identity"] = identity
        return body
