"""The queues and blob store of an ``aci`` target, built from its settings (``AciProvider.transport``).

One :class:`~mayfly.providers.aci.azure.StorageClients` serves both: the Storage queues
(:mod:`.queues`), whose bodies over 64 KiB go to the blob store, and the blob container
(:mod:`.blobs`). :func:`create_storage` creates what a stack creates in Azure (the six
queues and the container), for the emulator and tests.
"""

from __future__ import annotations

from mayfly.core.provider import Transport
from mayfly.providers.aci.azure import StorageClients
from mayfly.providers.aci.blobs import AzureBlobStore
from mayfly.providers.aci.queues import AzureQueueSet
from mayfly.providers.aci.settings import AciSettings


def storage_transport(settings: AciSettings) -> Transport:
    """The target's Azure Storage queues and blob container (no call to Azure until first use)."""
    clients = StorageClients(settings)
    blobs = AzureBlobStore.from_settings(settings, clients)
    return Transport(AzureQueueSet.from_settings(settings, clients, overflow=blobs), blobs)


def create_storage(settings: AciSettings) -> None:
    """Create the target's queues, poison queues and blob container unless they exist (idempotent)."""
    clients = StorageClients(settings)
    try:
        AzureBlobStore.from_settings(settings, clients).create_container()
        queues = AzureQueueSet.from_settings(settings, clients)
        try:
            queues.create()
        finally:
            queues.close()
    finally:
        clients.close()
