"""The stack's Azure Container Registry: runtime images pushed with an Entra ID token.

Runtime ``mayfly/runtime-NAME:V`` goes in as ``IMAGE_PREFIX/runtime-NAME:V`` (one repository per
runtime under the stack's ``image_repository``), which is where the ``aci`` provider looks
(``AciSettings.image_prefix``). The registry's admin user is disabled, so the login is an ACR
refresh token for the deploying user's Entra identity, obtained one of two ways:

- ``az acr login --name REGISTRY --expose-token`` when the Azure CLI is installed (what a user
  who ran ``az login`` has);
- otherwise the token exchange ACR documents for Entra ID
  (https://github.com/Azure/acr/blob/main/docs/AAD-OAuth.md): an ARM access token from
  ``azure-identity``'s ``DefaultAzureCredential``, POSTed to ``https://SERVER/oauth2/exchange``.

Either way the Docker username is the null GUID ACR expects with such a token. The user needs
``AcrPush`` (or Owner/Contributor) on the registry. Nothing here runs in this project's tests
against a registry (none is reachable); the image naming is tested.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from typing import Any

from mayfly.core.errors import CredentialsMissing, MissingDependency
from mayfly.infra.images import LOCAL_PREFIX, ImageRegistry, Note, PushedImage, RegistryAuth, push_as, remote_tag

#: The Docker username of an ACR token obtained for an Entra identity.
TOKEN_USERNAME = "00000000-0000-0000-0000-000000000000"
#: Scope of the Entra token ACR exchanges for a refresh token.
ARM_SCOPE = "https://management.azure.com/.default"


def destinations(images: Iterable[str], image_prefix: str) -> list[tuple[str, str, str]]:
    """``(local, repository, tag)`` of each runtime image: ``mayfly/runtime-NAME:V`` -> ``PREFIX/runtime-NAME:V``."""
    out = []
    for local in images:
        remote_tag(local)  # refuses anything that is not a versioned runtime image
        repository, _, tag = local.rpartition(":")
        out.append((local, f"{image_prefix}/runtime-{repository.removeprefix(LOCAL_PREFIX)}", tag))
    return out


def acr_auth(server: str, registry: str) -> RegistryAuth:
    """A short-lived ACR login for the current Entra identity (the Azure CLI first, else ``azure-identity``)."""
    if shutil.which("az"):
        return _cli_token(server, registry)
    return _exchanged_token(server)


def _cli_token(server: str, registry: str) -> RegistryAuth:
    command = ["az", "acr", "login", "--name", registry, "--expose-token", "--output", "json"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CredentialsMissing(f"`az acr login --name {registry}` failed: {exc}") from None
    if done.returncode != 0:
        detail = next((line.strip() for line in done.stderr.splitlines() if line.strip()), "no output")
        raise CredentialsMissing(f"`az acr login --name {registry} --expose-token` failed: {detail} (run `az login`)")
    token = json.loads(done.stdout)["accessToken"]
    return RegistryAuth(username=TOKEN_USERNAME, password=token, server=server)


def _exchanged_token(server: str) -> RegistryAuth:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise MissingDependency(
            'pushing to Azure Container Registry needs the Azure CLI (`az`) or `pip install "mayfly-tasks[azure]"`'
        ) from None
    import httpx

    credential: Any = DefaultAzureCredential(exclude_interactive_browser_credential=True)
    try:
        access = credential.get_token(ARM_SCOPE).token
    except Exception as exc:  # azure-identity raises ClientAuthenticationError and friends
        raise CredentialsMissing(f"no Azure credentials for the registry login: {exc}".splitlines()[0]) from None
    response = httpx.post(
        f"https://{server}/oauth2/exchange",
        data={"grant_type": "access_token", "service": server, "access_token": access},
        timeout=60,
    )
    if response.status_code != 200:
        raise CredentialsMissing(f"{server} refused the Entra token: HTTP {response.status_code} {response.text[:200]}")
    return RegistryAuth(username=TOKEN_USERNAME, password=str(response.json()["refresh_token"]), server=server)


class AcrRegistry(ImageRegistry):
    """One ACR per stack; runtime images go under its ``image_prefix``."""

    def __init__(self, server: str, registry: str, image_prefix: str) -> None:
        self.location = image_prefix
        self.server = server
        self.registry = registry

    def push(self, client: Any, images: list[str], progress: Note) -> list[PushedImage]:
        return push_as(client, destinations(images, self.location), acr_auth(self.server, self.registry), progress)
