"""The emulator's container groups: ARM's operations on them, independent of HTTP and Docker.

Groups are keyed by subscription, resource group (both case-insensitive, as in
ARM) and name. Every resource group of every subscription exists: the emulator
keeps no resource groups of its own. A :class:`Runner` (Docker, see
:mod:`.containers`) runs each group's container and reports back through the
group's fields under :attr:`Backend.lock`.

PUT on an existing name: a change of tags only updates the record; anything
else (image, command, environment, resources, restart policy) replaces the
container with a new one, as ACI restarts a group whose containers change. A
group cannot move to another location (409).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from mayfly.providers.aci.emulator import spec as specs
from mayfly.providers.aci.emulator.errors import ArmError, container_not_found, group_not_found
from mayfly.providers.aci.emulator.model import ContainerState, Group
from mayfly.providers.aci.emulator.names import check_group_name
from mayfly.providers.aci.emulator.operations import Operation, Operations


class Runner(Protocol):
    """What runs the groups' containers."""

    def launch(self, group: Group, operation: Operation) -> None:
        """Start the group's container (its current generation) and finish ``operation`` when it runs or fails."""

    def stop(self, group: Group) -> None:
        """Stop the group's container (SIGTERM, then SIGKILL)."""

    def remove(self, group: Group, operation: Operation | None) -> None:
        """Remove the group's container, then finish ``operation``."""

    def logs(self, group: Group, tail: int | None, timestamps: bool) -> str:
        """The container's output (stdout and stderr interleaved)."""


Key = tuple[str, str, str]


def _key(subscription: str, resource_group: str, name: str) -> Key:
    return subscription.lower(), resource_group.lower(), name


class Backend:
    """Container groups and their operations."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.operations = Operations()
        self.runner: Runner | None = None
        self._groups: dict[Key, Group] = {}

    def _runner(self) -> Runner:
        if self.runner is None:
            raise RuntimeError("the emulator has no runner")
        return self.runner

    def _get(self, subscription: str, resource_group: str, name: str) -> Group:
        group = self._groups.get(_key(subscription, resource_group, name))
        if group is None:
            raise group_not_found(resource_group, name)
        return group

    # ------------------------------------------------------------- reads

    def get(self, subscription: str, resource_group: str, name: str) -> dict[str, Any]:
        with self.lock:
            return self._get(subscription, resource_group, name).to_arm()

    def list(self, subscription: str, resource_group: str | None = None) -> list[dict[str, Any]]:
        """The groups of a subscription (or of one of its resource groups), as ARM lists them."""
        with self.lock:
            return [
                group.to_arm(instance_view=False)
                for (sub, rg, _), group in sorted(self._groups.items())
                if sub == subscription.lower() and (resource_group is None or rg == resource_group.lower())
            ]

    def logs(
        self, subscription: str, resource_group: str, name: str, container: str, tail: int | None, timestamps: bool
    ) -> str:
        with self.lock:
            group = self._get(subscription, resource_group, name)
            if container != group.spec.container:
                raise container_not_found(name, container)
        return self._runner().logs(group, tail, timestamps)

    # ------------------------------------------------------------- writes

    def put(
        self, subscription: str, resource_group: str, name: str, body: Any, *, only_if_absent: bool = False
    ) -> tuple[dict[str, Any], bool, Operation]:
        """Create or update a group: (its body, created, the operation to poll).

        ``only_if_absent`` is ARM's ``If-None-Match: *``: a group of that name already there is
        left untouched and the PUT answers 412 ``PreconditionFailed``.
        """
        check_group_name(name)
        spec = specs.parse(body)
        with self.lock:
            key = _key(subscription, resource_group, name)
            group = self._groups.get(key)
            created = group is None
            if group is not None and only_if_absent:
                raise ArmError(
                    412,
                    "PreconditionFailed",
                    "The condition specified using HTTP conditional header(s) is not met.",
                )
            if group is None:
                group = Group(subscription, resource_group, name, spec)
                self._groups[key] = group
            elif group.spec.location.lower().replace(" ", "") != spec.location.lower().replace(" ", ""):
                raise ArmError(
                    409,
                    "InvalidResourceLocation",
                    f"The resource '{name}' already exists in location '{group.spec.location}' in resource group "
                    f"'{resource_group}'. A resource with the same name cannot be created in location "
                    f"'{spec.location}'. Please select a new resource name.",
                )
            operation = self.operations.new(subscription, spec.location.lower().replace(" ", ""))
            relaunch = created or not group.spec.same_run(spec) or group.provisioning_state == "Failed"
            group.spec = spec
            if not relaunch:
                operation.finish()
                return group.to_arm(), created, operation
            self._reset(group)
            body_out = group.to_arm()
        self._runner().launch(group, operation)
        return body_out, created, operation

    def _reset(self, group: Group) -> None:
        """A new run of the group: new generation, fresh instance view."""
        group.generation += 1
        group.provisioning_state = "Pending"
        group.state = "Pending"
        group.current = ContainerState()
        group.previous = None
        group.restart_count = 0
        group.events = []

    def update_tags(self, subscription: str, resource_group: str, name: str, tags: Any) -> dict[str, Any]:
        """PATCH: replace the tags."""
        if not isinstance(tags, dict):
            raise ArmError(400, "InvalidRequestContent", "The request content was invalid: 'tags' must be an object.")
        with self.lock:
            group = self._get(subscription, resource_group, name)
            group.spec = dataclasses.replace(group.spec, tags={str(k): str(v) for k, v in tags.items()})
            return group.to_arm()

    def delete(self, subscription: str, resource_group: str, name: str) -> tuple[dict[str, Any], Operation] | None:
        """Delete a group (None when there is none): its last body and the operation removing its container."""
        with self.lock:
            group = self._groups.pop(_key(subscription, resource_group, name), None)
            if group is None:
                return None
            group.generation += 1
            group.provisioning_state = "Deleting"
            body = group.to_arm()
            operation = self.operations.new(subscription, group.spec.location.lower().replace(" ", ""))
        self._runner().remove(group, operation)
        return body, operation

    def stop(self, subscription: str, resource_group: str, name: str) -> None:
        """Stop the group's container; the group stays (state ``Stopped``) until deleted or started."""
        with self.lock:
            group = self._get(subscription, resource_group, name)
            group.generation += 1
            group.state = "Stopped"
            if group.current.state == "Running":
                group.event(self.clock(), "Killing", f"Killing container with id {(group.container_id or '')[:12]}.")
        self._runner().stop(group)

    def start(self, subscription: str, resource_group: str, name: str) -> Operation:
        """Start (or restart) every container of the group anew."""
        with self.lock:
            group = self._get(subscription, resource_group, name)
            operation = self.operations.new(subscription, group.spec.location.lower().replace(" ", ""))
            self._reset(group)
        self._runner().launch(group, operation)
        return operation
