"""The storage of one Mayfly ``aci`` target, created in Azurite, and the target's settings.

What ``mayfly deploy`` would create in Azure, minus what the emulator has no
use for (the resource group exists implicitly, identities and the registry are
not needed: images are looked up locally):

- Storage queues ``mayfly-NAME-tasks``, ``-control`` and ``-events``, each with
  its ``...-poison`` queue for messages past the dequeue limit;
- blob container ``mayfly-NAME``;
- the resource group ``mayfly-NAME`` the target's container groups go to;
- registry ``mayflylocal.azurecr.io`` as the ``image_prefix``
  ``mayflylocal.azurecr.io/mayfly``: runtime ``mayfly/runtime-shell:1`` is asked
  for as ``mayflylocal.azurecr.io/mayfly/runtime-shell:1`` and the emulator runs
  the local image (see :mod:`.images`).

Running it again for the same name reuses what exists.
"""

from __future__ import annotations

import re

from mayfly.core.errors import InvalidInput, MissingDependency
from mayfly.providers.aci.settings import AciSettings

REGISTRY = "mayflylocal.azurecr.io"
#: Storage queue names are at most 63 characters: ``mayfly-NAME-control-poison`` fits with NAME of 41.
MAX_TARGET = 41
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def check_target_name(name: str) -> None:
    """A target name that makes valid queue, container and resource group names (InvalidInput otherwise)."""
    if len(name) > MAX_TARGET or not _NAME.match(name) or "--" in name:
        raise InvalidInput(
            f"invalid target name {name!r}: lowercase letters, digits and single '-' between them, {MAX_TARGET} at most"
        )


def bootstrap_target(
    name: str,
    *,
    subscription_id: str,
    location: str,
    arm_endpoint: str,
    blob_endpoint: str,
    queue_endpoint: str,
    account_name: str,
    account_key: str,
    local_blob_endpoint: str | None = None,
    local_queue_endpoint: str | None = None,
) -> AciSettings:
    """Create target ``name``'s queues and blob container in Azurite; its ``aci`` settings.

    ``local_*_endpoint``: where this process reaches Azurite, when not at the endpoints the
    target records (those are for containers too).
    """
    check_target_name(name)
    try:
        import azure.storage.blob
        import azure.storage.queue  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            f'creating a target needs the Azure Storage SDKs: pip install "mayfly-tasks[azure]" ({exc})'
        ) from None
    from mayfly.providers.aci.transport import create_storage

    base = f"mayfly-{name}"
    settings = AciSettings(
        subscription_id=subscription_id,
        resource_group=base,
        location=location,
        storage_account=account_name,
        queue_prefix=base,
        container=base,
        registry_server=REGISTRY,
        image_prefix=f"{REGISTRY}/mayfly",
        arm_endpoint=arm_endpoint,
        blob_endpoint=blob_endpoint,
        queue_endpoint=queue_endpoint,
        account_key=account_key,
    )
    # The provider's own storage code makes the queues (and their poison queues) and the container,
    # so their names are the ones it uses; through the endpoints this process reaches.
    create_storage(
        settings.model_copy(
            update={
                "blob_endpoint": local_blob_endpoint or blob_endpoint,
                "queue_endpoint": local_queue_endpoint or queue_endpoint,
            }
        )
    )
    return settings
