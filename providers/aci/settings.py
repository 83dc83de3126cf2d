"""Settings of an ``aci`` target: where its container groups, queues, blobs and registry are.

``mayfly deploy`` fills them from the stack's outputs (``infra/clouds/azure``); ``mayfly
emulator azure`` prints them for a target on the local emulator; ``mayfly target add``
takes them by hand. The JSON schema of this model validates stack outputs.
"""

from __future__ import annotations

from pydantic import Field

from mayfly.core.provider import ProviderSettings


class AciSettings(ProviderSettings):
    """One Azure Container Instances target."""

    subscription_id: str = Field(description="Azure subscription id of the target's resource group.")
    resource_group: str = Field(description="Resource group the container groups are created in.")
    location: str = Field(description="Azure region of the container groups, e.g. westeurope.")
    storage_account: str = Field(description="Storage account holding the queues and the blob container.")
    queue_prefix: str = Field(
        description="Storage queues are PREFIX-tasks, PREFIX-control and PREFIX-events "
        "(each with a PREFIX-KIND-poison queue for messages past the dequeue limit)."
    )
    container: str = Field(description="Blob container for code packages, payloads, results and logs.")
    registry_server: str | None = Field(
        default=None, description="Container registry login server of the runtime images (NAME.azurecr.io)."
    )
    image_prefix: str | None = Field(
        default=None,
        description="Repository prefix of the runtime images (NAME.azurecr.io/mayfly); "
        "runtime image 'mayfly/runtime-NAME:V' runs as 'PREFIX/runtime-NAME:V'.",
    )
    pull_identity_id: str | None = Field(
        default=None,
        description="Resource id of the user-assigned identity container groups pull images with (AcrPull only).",
    )
    runner_client_id: str | None = Field(
        default=None,
        description="Client id of the runner's user-assigned managed identity; None: DefaultAzureCredential.",
    )
    arm_endpoint: str | None = Field(
        default=None, description="Azure Resource Manager base URL instead of Azure's (the local emulator)."
    )
    blob_endpoint: str | None = Field(
        default=None, description="Blob service URL instead of https://ACCOUNT.blob.core.windows.net (Azurite)."
    )
    queue_endpoint: str | None = Field(
        default=None, description="Queue service URL instead of https://ACCOUNT.queue.core.windows.net (Azurite)."
    )
    account_key: str | None = Field(
        default=None,
        description="Storage account key; only for the emulator (Azurite's well-known key). "
        "In Azure leave it unset: the runner's identity signs user-delegation SAS URLs.",
    )
    creates_per_second: float = Field(
        default=1 / 15,
        gt=0,
        description="Sustained container group create rate of this process. The default (one every 15 s, "
        "with create_burst 60) stays within ACI's documented 300 creates per hour and 100 per 5 minutes "
        "per subscription and region; raise both with a raised quota.",
    )
    create_burst: int = Field(
        default=60, ge=1, description="Burst of container group creates (see creates_per_second)."
    )
    status_poll_seconds: float = Field(default=2.0, gt=0, description="How often the runner asks ACI about its groups.")
