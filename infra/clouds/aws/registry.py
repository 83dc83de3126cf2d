"""The stack's ECR repository: runtime images pushed with a short-lived ECR login.

Nothing here runs in this project's tests against a registry (none is reachable);
:func:`mayfly.infra.images.push_images` is tested with a stand-in Docker client.
"""

from __future__ import annotations

import base64
from typing import Any

from mayfly.infra.images import ImageRegistry, Note, PushedImage, RegistryAuth, push_images


def ecr_auth(region: str, endpoint_url: str | None = None) -> RegistryAuth:
    """An ECR login token for the account of the current AWS credentials."""
    from mayfly.providers.ecs.aws import Clients, translate

    with translate("getting an ECR login token"):
        data = Clients(region, endpoint_url)("ecr").get_authorization_token()["authorizationData"][0]
    username, _, password = base64.b64decode(data["authorizationToken"]).decode().partition(":")
    return RegistryAuth(username=username, password=password, server=str(data["proxyEndpoint"]))


class EcrRegistry(ImageRegistry):
    """One ECR repository per stack; ``mayfly/runtime-NAME:V`` goes in as ``REPOSITORY:runtime-NAME-V``."""

    def __init__(self, repository_url: str, region: str) -> None:
        self.location = repository_url
        self.region = region

    def push(self, client: Any, images: list[str], progress: Note) -> list[PushedImage]:
        return push_images(client, images, self.location, ecr_auth(self.region), progress)
