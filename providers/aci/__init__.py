"""The ``aci`` provider: tasks on Azure Container Instances, with Storage queues and Blob storage.

What it creates
    One container group per (task, attempt) in the target's resource group and
    location: Linux, ``restartPolicy: Never``, one container ``task`` with the
    code's cpu and memory as requests (rounded up to steps of 0.1 core and 0.1 GB;
    above 4 cores or 16 GB a task is refused), tagged ``mayfly.task``,
    ``mayfly.attempt``, ``mayfly.project``, ``mayfly.home`` and ``mayfly.target``
    (plus the code's labels) so a restarted runner finds it again. Its name is
    ``mayfly-<task>-<attempt>-<hash>`` (ACI's rules: lowercase, at most 63
    characters), the same for every launch of the attempt by the same home and
    target; a launch finds an existing group and reattaches it, and creates with
    ``If-None-Match: *`` so it never updates (and restarts) one (docs/decisions.md).
    Handles are the group names. Runtime images ``mayfly/runtime-NAME:V`` run as
    ``<image_prefix>/runtime-NAME:V``, pulled from ``registry_server`` with the
    user-assigned identity ``pull_identity_id`` (no registry password anywhere).

    The container gets the task's command and environment, plus signed (SAS) URLs
    for its code, payload and config and for uploading its result, as
    ``secureValue`` variables (ARM never returns them); secrets go the same way as
    ``MAYFLY_SECRET_<NAME>`` (base64), which the boot agent moves to 0400 files.
    Logs come from ACI's ``list_logs``: ACI keeps them only while the group exists,
    so the provider reads them while the container runs and once more before it
    stops or deletes the group. Cancel stops the group; remove deletes it and the
    staged payload and config.

Azure roles
    The runner's identity: Contributor on the resource group (or a custom role with
    ``Microsoft.ContainerInstance/containerGroups/*``:
    read, write, delete, stop/action, containers/logs/read); Managed Identity
    Operator on the pull identity (``Microsoft.ManagedIdentity/userAssignedIdentities/
    assign/action``, to give it to the groups); Storage Queue Data Contributor on
    the account's queues; Storage Blob Data Contributor on the container and Storage
    Blob Delegator on the account (user-delegation SAS). The pull identity: AcrPull
    on the registry, nothing else. The task itself gets no Azure role; the boot
    script uses the SAS URLs.

Limits
    Creates go through a token bucket shared by the process (``creates_per_second``,
    ``create_burst``: by default 1 every 15 s with a burst of 60, within ACI's
    documented 300 creates per hour and 100 per 5 minutes, see
    :mod:`~mayfly.providers.aci.limiter` for the source), and back off on throttling
    (429) and ``ServiceUnavailable`` (no capacity in the region) before the launch is
    reported as a retryable infrastructure failure. Each watched group is read
    (GET with instance view) at most every ``status_poll_seconds``; ARM's own read
    limits apply to the whole subscription. ACI keeps 4 MB of a running container's
    log but only the last 16 KB or 1,000 lines of a stopped one: a task that writes
    more and exits before the next read loses the front of its log. Stopping a group
    cannot choose the grace period, and ACI may drop the log of a stopped group: the
    log read just before the stop is kept. Standard (CPU) groups only: no GPUs, no
    Spot, and no ``network: none`` (a group always has outbound access).

What the local emulator (``mayfly emulator azure``) does not cover
    Azure AD tokens, RBAC and managed identities (every call is allowed; the pull
    identity is recorded, not used), registry pulls from ACR, region capacity and
    quotas, ARM's real throttling, the truncation of a stopped container's log, and
    the exact instance view of a stopped group. Those paths are tested with
    recorded ARM responses instead (tests/providers/aci/test_diagnose.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mayfly.core import hookimpl
from mayfly.providers.aci.provider import AciProvider
from mayfly.providers.aci.settings import AciSettings

if TYPE_CHECKING:
    from mayfly.core.plugins import ProviderRegistry

__all__ = ["AciProvider", "AciSettings", "mayfly_register_providers"]


@hookimpl
def mayfly_register_providers(registry: ProviderRegistry) -> None:
    """Register :class:`AciProvider` under the name ``aci``."""
    registry.add(AciProvider)
