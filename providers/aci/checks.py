"""``mayfly target check`` for an aci target: is every resource there, and may the runner use it?

Each step makes the cheapest read call on one resource the runner uses, in the order a
broken setup usually fails: credentials and the resource group (listing its container
groups), then the tasks, control and events queues, then the blob container. The first
problem raises one line that names the resource and the role involved.
"""

from __future__ import annotations

from mayfly.core.errors import MayflyError, NotFound
from mayfly.core.provider import Transport
from mayfly.providers.aci.arm import Arm
from mayfly.providers.aci.settings import AciSettings

_KINDS = ("tasks", "control", "events")


def _again(exc: MayflyError, text: str) -> MayflyError:
    """The same kind of error, its message prefixed with what was being checked."""
    try:
        return type(exc)(f"{text}: {exc.message}")
    except TypeError:  # pragma: no cover - a subclass with another signature
        return exc


def check_target(settings: AciSettings, arm: Arm, transport: Transport) -> None:
    """Raise a one-line MayflyError naming the first resource that is missing or not allowed."""
    s = settings
    try:
        arm.list()
    except NotFound as exc:
        raise NotFound(
            f"resource group {s.resource_group} not found in subscription {s.subscription_id}: {exc.message}"
        ) from exc
    except MayflyError as exc:
        raise _again(
            exc,
            f"listing the container groups of resource group {s.resource_group} (the runner needs Contributor "
            "on it, or Microsoft.ContainerInstance/containerGroups/*)",
        ) from exc
    for kind in _KINDS:
        name = f"{s.queue_prefix}-{kind}"
        try:
            transport.queues.get(kind).depth()
        except MayflyError as exc:
            raise _again(
                exc,
                f"the {kind} queue {name} of storage account {s.storage_account} (the runner needs "
                "Storage Queue Data Contributor)",
            ) from exc
    try:
        transport.blobs.exists("mayfly-target-check")
    except MayflyError as exc:
        raise _again(
            exc,
            f"blob container {s.container} of storage account {s.storage_account} (the runner needs "
            "Storage Blob Data Contributor, and Storage Blob Delegator for user-delegation SAS)",
        ) from exc
