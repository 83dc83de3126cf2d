"""The stack's Artifact Registry repository: runtime images pushed with a short-lived OAuth token.

A runtime ``mayfly/runtime-NAME:V`` goes in as ``REGION-docker.pkg.dev/PROJECT/REPO/runtime-NAME:V``
(one image per runtime in the repository, the name the ``cloudrun`` provider derives from its
``image_prefix``). Docker logs in to ``https://REGION-docker.pkg.dev`` as ``oauth2accesstoken``
with an access token: the application-default credentials' (``gcloud auth
application-default login``, a service account key in ``GOOGLE_APPLICATION_CREDENTIALS``, or the
metadata server), else ``gcloud auth print-access-token``.

Artifact Registry is not reachable from this project's tests: the real Docker engine pushes to a
local registry that takes the token the same way (Basic auth as ``oauth2accesstoken``), the ADC
token comes from a local OAuth token endpoint, and the ``gcloud`` fallback from a stand-in.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from mayfly.core.errors import CredentialsMissing
from mayfly.infra.images import (
    LOCAL_PREFIX,
    ImageRegistry,
    Note,
    PushedImage,
    RegistryAuth,
    push_as,
    remote_tag,
)

#: Docker's user name for an OAuth access token on Google's registries.
TOKEN_USER = "oauth2accesstoken"
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)
NO_TOKEN = (
    "no Google Cloud credentials to push images to Artifact Registry: run `gcloud auth application-default login` "
    "(or set GOOGLE_APPLICATION_CREDENTIALS), or deploy with --skip-images"
)


def image_name(local: str, repository_url: str) -> tuple[str, str, str]:
    """``mayfly/runtime-python-3.11:1`` -> (it, ``URL/runtime-python-3.11``, ``1``): where it runs from on a
    target whose ``image_prefix`` is ``repository_url``."""
    remote_tag(local)  # InvalidInput for anything but a versioned runtime image
    repository, _, version = local.rpartition(":")
    return local, f"{repository_url}/runtime-{repository.removeprefix(LOCAL_PREFIX)}", version


def adc_token() -> str | None:
    """An access token of the application-default credentials, or None when there are none."""
    try:
        import google.auth
        import google.auth.exceptions
        from google.auth.transport.requests import Request
    except ImportError:
        return None
    try:
        credentials, _ = google.auth.default(scopes=list(SCOPES))
        credentials.refresh(Request())  # type: ignore[no-untyped-call]  # google-auth is partly untyped
    except google.auth.exceptions.GoogleAuthError:
        return None
    token = getattr(credentials, "token", None)
    return str(token) if token else None


def gcloud_token() -> str | None:
    """``gcloud auth print-access-token`` (the user's gcloud login), or None without gcloud or a login."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    try:
        done = subprocess.run(
            [gcloud, "auth", "print-access-token"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    token = done.stdout.strip()
    return token if done.returncode == 0 and token else None


def registry_auth(host: str) -> RegistryAuth:
    """Docker credentials for ``host`` (``REGION-docker.pkg.dev``): an OAuth access token, ADC first."""
    token = adc_token() or gcloud_token()
    if not token:
        raise CredentialsMissing(NO_TOKEN)
    return RegistryAuth(username=TOKEN_USER, password=token, server=f"https://{host}")


class ArtifactRegistry(ImageRegistry):
    """One Artifact Registry docker repository per stack; each runtime is an image in it."""

    def __init__(self, repository_url: str) -> None:
        self.location = repository_url
        self.host = repository_url.split("/", 1)[0]

    def push(self, client: Any, images: list[str], progress: Note) -> list[PushedImage]:
        auth = registry_auth(self.host)
        return push_as(client, (image_name(local, self.location) for local in images), auth, progress)
