"""The Google Cloud deploy plug-in: ``cloud: gcp`` stack files become ``cloudrun`` targets.

Registered through the ``mayfly.providers`` entry-point group (``gcp``), next to the
``cloudrun`` provider it deploys for. Importing this module imports neither Pulumi nor a
Google library: the component (:mod:`.component`, pulumi-gcp) is imported when a program
is built, google-auth (:mod:`.registry`) when images are pushed. The credentials check
reads files and environment variables only: it never probes a metadata server.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mayfly.core import hookimpl
from mayfly.core.errors import CredentialsMissing
from mayfly.infra.cloud import Cloud
from mayfly.infra.clouds.gcp.stack import GcpStack
from mayfly.infra.errors import DeployFailed

if TYPE_CHECKING:
    from mayfly.core.clouds import CloudRegistry
    from mayfly.infra.images import ImageRegistry
    from mayfly.infra.stackfile import StackBase

__all__ = ["GcpCloud", "GcpStack", "find_credentials", "mayfly_register_clouds"]

#: Environment variables through which pulumi-gcp (and google-auth) take credentials.
CREDENTIAL_VARS = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "GOOGLE_CREDENTIALS",
    "GOOGLE_CLOUD_KEYFILE_JSON",
    "GCLOUD_KEYFILE_JSON",
    "GOOGLE_OAUTH_ACCESS_TOKEN",
)
#: Where Linux reports the machine's product: "Google Compute Engine" on GCE, Cloud Shell and GKE nodes.
PRODUCT_NAME_FILE = Path("/sys/class/dmi/id/product_name")
HINT = "run `gcloud auth application-default login` (or set GOOGLE_APPLICATION_CREDENTIALS to a key file)"


def adc_file() -> Path:
    """The application-default credentials file ``gcloud auth application-default login`` writes."""
    config = os.environ.get("CLOUDSDK_CONFIG")
    root = Path(config) if config else Path.home() / ".config" / "gcloud"
    return root / "application_default_credentials.json"


def find_credentials() -> str | None:
    """Where Google credentials would come from (a variable, the ADC file, the machine), or None."""
    for var in CREDENTIAL_VARS:
        if os.environ.get(var):
            return var
    if adc_file().is_file():
        return str(adc_file())
    try:
        if PRODUCT_NAME_FILE.read_text().strip().startswith("Google"):
            return "the metadata server"
    except OSError:
        pass
    return None


class GcpCloud(Cloud):
    """Cloud Run Jobs, Pub/Sub, Cloud Storage and Artifact Registry, built by the ``mayfly:gcp:Target`` component."""

    name = "gcp"
    provider = "cloudrun"
    stack_model = GcpStack
    pulumi_plugin = "gcp"
    pulumi_package = "pulumi_gcp"
    label = "Google Cloud"
    install_hint = 'pip install "mayfly-tasks[gcp,deploy]"'
    credentials_markers: ClassVar[tuple[str, ...]] = (
        "could not find default credentials",
        "No credentials loaded",
        "oauth2: cannot fetch token",
        "invalid_grant",
        "Reauthentication is needed",
        "Request had invalid authentication credentials",
        "UNAUTHENTICATED",
        "Error 401",
    )
    credentials_hint = HINT

    def config(self, stack: StackBase) -> dict[str, str]:
        assert isinstance(stack, GcpStack)  # parse_stack picked this model for `cloud: gcp`
        return {"gcp:project": stack.gcp.project, "gcp:region": stack.region}

    def check_credentials(self, stack: StackBase) -> None:
        """Fail early, and in one line, when no Google credentials are found at all."""
        if find_credentials() is None:
            raise CredentialsMissing(f"no Google Cloud application-default credentials found: {HINT}")

    def program(self, stack: StackBase) -> Callable[[], None]:
        from mayfly.infra.clouds.gcp.component import stack_program

        assert isinstance(stack, GcpStack)
        return stack_program(stack)

    def image_registry(self, stack: StackBase, outputs: Mapping[str, Any]) -> ImageRegistry:
        from mayfly.infra.clouds.gcp.registry import ArtifactRegistry

        repository = outputs.get("repository_url")
        if not isinstance(repository, str) or not repository:
            raise DeployFailed(f"stack {stack.name!r} has no 'repository_url' output to push runtime images to")
        return ArtifactRegistry(repository)


@hookimpl
def mayfly_register_clouds(registry: CloudRegistry) -> None:
    """Register :class:`GcpCloud` under the name ``gcp``."""
    registry.add(GcpCloud)
