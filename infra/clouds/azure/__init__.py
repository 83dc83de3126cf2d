"""The Azure deploy plug-in: ``cloud: azure`` stack files become ``aci`` targets.

Registered through the ``mayfly.providers`` entry-point group (``azure``), next to the
``aci`` provider it deploys for. Importing this module imports neither Pulumi nor an Azure
library: the component (:mod:`.component`) is imported when a program is built, the ACR
login (:mod:`.registry`) when images are pushed. docs/azure.md, "Deploy", is the user's guide.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from mayfly.core import hookimpl
from mayfly.core.errors import CredentialsMissing
from mayfly.infra.cloud import Cloud
from mayfly.infra.clouds.azure.stack import AzureStack
from mayfly.infra.errors import DeployFailed

if TYPE_CHECKING:
    from mayfly.core.clouds import CloudRegistry
    from mayfly.infra.images import ImageRegistry
    from mayfly.infra.stackfile import StackBase

__all__ = ["AzureCloud", "AzureStack", "mayfly_register_clouds"]

#: How to get credentials, in every message about missing ones.
LOGIN_HINT = (
    "run `az login` (and `az account set --subscription SUBSCRIPTION`), or set ARM_CLIENT_ID, "
    "ARM_CLIENT_SECRET and ARM_TENANT_ID for a service principal"
)


def environment_credentials() -> bool:
    """True when the environment names credentials the azure-native provider uses without the Azure CLI."""
    env = os.environ
    if env.get("ARM_USE_MSI", "").lower() == "true":
        return True
    if env.get("ARM_CLIENT_ID") and env.get("ARM_TENANT_ID"):
        return any(
            env.get(var)
            for var in ("ARM_CLIENT_SECRET", "ARM_CLIENT_CERTIFICATE_PATH", "ARM_OIDC_TOKEN", "ARM_USE_OIDC")
        )
    return False


class AzureCloud(Cloud):
    """Container Instances, Storage queues and blobs, ACR and managed identities (``mayfly:azure:Target``)."""

    name = "azure"
    provider = "aci"
    stack_model = AzureStack
    pulumi_plugin = "azure-native"
    pulumi_package = "pulumi_azure_native"
    label = "Azure"
    install_hint = 'pip install "mayfly-tasks[azure,deploy]"'
    credentials_markers: ClassVar[tuple[str, ...]] = (
        "Please run 'az login'",
        "az login",
        "AADSTS",
        "InvalidAuthenticationToken",
        "ExpiredAuthenticationToken",
        "InvalidAuthenticationTokenTenant",
        "building ARM config",
        "building account",
        "could not acquire access token",
        "DefaultAzureCredential",
    )
    credentials_hint = LOGIN_HINT

    def config(self, stack: StackBase) -> dict[str, str]:
        """The azure-native provider's location and subscription (the stack's, never the CLI's default)."""
        assert isinstance(stack, AzureStack)  # parse_stack picked this model for `cloud: azure`
        return {"azure-native:location": stack.region, "azure-native:subscriptionId": stack.azure.subscription}

    def check_credentials(self, stack: StackBase) -> None:
        """Fail early, in one line, when neither a service principal nor a logged-in Azure CLI is there."""
        if environment_credentials():
            return
        az = shutil.which("az")
        if az is None:
            raise CredentialsMissing(f"no Azure credentials found: {LOGIN_HINT}")
        try:
            shown = subprocess.run(
                [az, "account", "show", "--output", "none"], capture_output=True, text=True, timeout=60, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CredentialsMissing(f"`az account show` failed ({exc}): {LOGIN_HINT}") from None
        if shown.returncode != 0:
            raise CredentialsMissing(f"the Azure CLI is not logged in: {LOGIN_HINT}")

    def program(self, stack: StackBase) -> Callable[[], None]:
        from mayfly.infra.clouds.azure.component import stack_program

        assert isinstance(stack, AzureStack)  # parse_stack picked this model for `cloud: azure`
        return stack_program(stack)

    def image_registry(self, stack: StackBase, outputs: Mapping[str, Any]) -> ImageRegistry:
        from mayfly.infra.clouds.azure.registry import AcrRegistry

        values = [outputs.get(key) for key in ("registry_server", "registry_name", "image_prefix")]
        if not all(isinstance(value, str) and value for value in values):
            raise DeployFailed(f"stack {stack.name!r} has no registry outputs to push runtime images to")
        server, registry, prefix = (str(value) for value in values)
        return AcrRegistry(server, registry, prefix)


@hookimpl
def mayfly_register_clouds(registry: CloudRegistry) -> None:
    """Register :class:`AzureCloud` under the name ``azure``."""
    registry.add(AzureCloud)
