"""The real Azure SDK's clients, pointed at the emulator.

``azure-core`` refuses to send a bearer token over plain HTTP, so the management
client gets an ``authentication_policy`` that sets the ``Authorization`` header
itself (the emulator needs one and checks none), and a credential it never asks.
Polling interval 0: the emulator's operations finish within the request's
lifetime of a container start, and the SDK's own interval would only add waits.
"""

from __future__ import annotations

import time
from typing import Any

from azure.core.credentials import AccessToken
from azure.core.pipeline import PipelineRequest
from azure.core.pipeline.policies import SansIOHTTPPolicy

#: The token every emulator client sends (any value is accepted).
TOKEN = "mayfly-emulator"


class BearerHeaderPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
    """Sets ``Authorization: Bearer TOKEN`` on every request, over HTTP too."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token

    def on_request(self, request: PipelineRequest) -> None:  # type: ignore[type-arg]
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"


class StaticCredential:
    """A ``TokenCredential`` handing out a fixed token (for the emulator only)."""

    def __init__(self, token: str = TOKEN) -> None:
        self.token = token

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        return AccessToken(self.token, int(time.time()) + 3600)


def management_client(endpoint: str, subscription_id: str, **kwargs: Any) -> Any:
    """A ``ContainerInstanceManagementClient`` on the emulator at ``endpoint``."""
    from azure.mgmt.containerinstance import ContainerInstanceManagementClient

    kwargs.setdefault("polling_interval", 0)
    return ContainerInstanceManagementClient(
        StaticCredential(),
        subscription_id,
        base_url=endpoint,
        authentication_policy=BearerHeaderPolicy(),
        **kwargs,
    )
