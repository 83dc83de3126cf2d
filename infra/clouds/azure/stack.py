"""The Azure stack file: the common keys with Azure's rules, and the ``azure:`` section.

``region`` is the Azure location (``westeurope``). Azure's naming rules are checked
here, one line per problem, before anything runs: storage account names are 3-24
lowercase letters and digits, registry names 5-50 letters and digits (both globally
unique: the defaults add a hash of the subscription and resource group), resource
group names 1-90 characters, queue and blob container names 3-63 lowercase letters,
digits and single hyphens. The runner's size must fit one ACI container group.
"""

from __future__ import annotations

import hashlib
import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mayfly.infra.stackfile import RunnerSection, StackBase, StrictModel

#: Azure location names as ARM takes them (``westeurope``, ``eastus2``), not display names ("West Europe").
AZURE_LOCATION = re.compile(r"^[a-z][a-z0-9]{2,}\Z")
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
#: Resource group names: 1-90 of letters, digits, ``-_.()``, not ending in a period.
RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]\Z", re.ASCII)
#: Storage account names: 3-24 lowercase letters and digits (globally unique).
STORAGE_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}\Z")
#: Container registry names: 5-50 letters and digits (globally unique; the login server is lowercase).
REGISTRY = re.compile(r"^[a-zA-Z0-9]{5,50}\Z")
#: Queue and blob container names: 3-63 lowercase letters, digits and single hyphens, a letter or digit at each end.
STORAGE_NAME = re.compile(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]\Z")
#: Repository prefix inside the registry (``mayfly`` -> ``NAME.azurecr.io/mayfly/runtime-python-3.11:1``).
REPOSITORY = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*\Z")
#: The longest queue suffix (``-control-poison``): PREFIX plus it must stay within 63 characters.
LONGEST_QUEUE_SUFFIX = len("-control-poison")
#: Names derive resource names (``NAME-runner`` container group: 63 characters at most).
AZURE_MAX_NAME = 40
#: What one ACI container group may request on Linux in most regions (4 vCPU, 16 GB).
ACI_MAX_CPU = 4096
ACI_MAX_MEMORY = 16384


def default_name(kind: str, stack: str, subscription: str, resource_group: str, length: int) -> str:
    """A globally unique-enough account or registry name: ``mayfly`` + the stack's letters + a hash."""
    digest = hashlib.sha256(f"{kind}/{subscription.lower()}/{resource_group.lower()}/{stack}".encode()).hexdigest()
    letters = re.sub(r"[^a-z0-9]", "", stack)[: length - len("mayfly") - 8]
    return f"mayfly{letters}{digest[:8]}"


def aci_size_problem(cpu: int, memory: int) -> str | None:
    """Why (cpu, memory) is not a size this component gives the runner's container group, or None."""
    if not 256 <= cpu <= ACI_MAX_CPU or cpu % 256:
        return f"cpu {cpu} is not an ACI size (256-{ACI_MAX_CPU} units in steps of 256; 1024 = one vCPU)"
    if not 512 <= memory <= ACI_MAX_MEMORY or memory % 512:
        return f"memory {memory} is not an ACI size (512-{ACI_MAX_MEMORY} MiB in steps of 512)"
    return None


class AzureRunnerSection(RunnerSection):
    """The runner as an ACI container group: cpu and memory must fit one group."""

    def size_problem(self) -> str | None:
        return aci_size_problem(self.cpu, self.memory)


class AzurePrincipal(StrictModel):
    """A user, group or service principal given the runner's roles."""

    id: str = Field(description="Entra object id (yours: `az ad signed-in-user show --query id -o tsv`).")
    type: Literal["User", "Group", "ServicePrincipal"] = Field(
        default="User", description="What the id is (Azure refuses a role assignment naming the wrong type)."
    )

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not GUID.match(value):
            raise ValueError(f"{value!r} is not an Entra object id (a GUID)")
        return value.lower()


class AzureSection(StrictModel):
    """Options of the Azure component (``mayfly:azure:Target``); only ``subscription`` is required."""

    subscription: str = Field(description="Azure subscription id (a GUID) everything is created in.")
    resource_group: str | None = Field(
        default=None, description="Resource group the stack creates (default: mayfly-NAME). It must not exist yet."
    )
    storage_account: str | None = Field(
        default=None, description="Storage account name, globally unique (default: mayfly + name + a hash)."
    )
    storage_sku: Literal["Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_RAGRS"] = Field(
        default="Standard_LRS", description="Redundancy of the storage account."
    )
    shared_key_access: bool = Field(
        default=False,
        description="Allow account-key (Shared Key) requests; off: Entra ID only, SAS URLs are user-delegation SAS.",
    )
    registry: str | None = Field(
        default=None, description="Container registry name, globally unique (default: mayfly + name + a hash)."
    )
    registry_sku: Literal["Basic", "Standard", "Premium"] = Field(default="Basic", description="ACR tier.")
    image_repository: str = Field(
        default="mayfly", description="Repository prefix of the runtime images in the registry."
    )
    queue_prefix: str | None = Field(
        default=None,
        description="Queues are PREFIX-tasks, -control, -events and their -poison queues (default: the target name).",
    )
    container: str = Field(default="mayfly", description="Blob container for code packages, payloads, results, logs.")
    runs_expiry_days: int = Field(default=30, ge=1, description="Days before payloads and results (runs/) are deleted.")
    logs_expiry_days: int = Field(default=30, ge=1, description="Days before task logs (logs/) are deleted.")
    principals: list[AzurePrincipal] = Field(
        default_factory=list,
        description="Entra principals that run Mayfly against this target from outside Azure, e.g. you for "
        "`mayfly server`; they get the runner's roles.",
    )

    @field_validator("subscription")
    @classmethod
    def _subscription(cls, value: str) -> str:
        if not GUID.match(value):
            raise ValueError(f"{value!r} is not a subscription id (a GUID: `az account show --query id -o tsv`)")
        return value.lower()

    @field_validator("resource_group")
    @classmethod
    def _resource_group(cls, value: str | None) -> str | None:
        if value is not None and not RESOURCE_GROUP.match(value):
            raise ValueError(
                f"{value!r} is not a resource group name (1-90 letters, digits, '-', '_', '.', '(', ')'; "
                "not ending in '.')"
            )
        return value

    @field_validator("storage_account")
    @classmethod
    def _storage_account(cls, value: str | None) -> str | None:
        if value is not None and not STORAGE_ACCOUNT.match(value):
            raise ValueError(f"{value!r} is not a storage account name (3-24 lowercase letters and digits)")
        return value

    @field_validator("registry")
    @classmethod
    def _registry(cls, value: str | None) -> str | None:
        if value is not None and not REGISTRY.match(value):
            raise ValueError(f"{value!r} is not a container registry name (5-50 letters and digits)")
        return value

    @field_validator("image_repository")
    @classmethod
    def _repository(cls, value: str) -> str:
        if not REPOSITORY.match(value):
            raise ValueError(f"{value!r} is not a repository name (lowercase letters, digits, '.', '_', '-', '/')")
        return value

    @field_validator("container")
    @classmethod
    def _container(cls, value: str) -> str:
        if not STORAGE_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a blob container name (3-63 lowercase letters, digits and single hyphens)"
            )
        return value

    @field_validator("queue_prefix")
    @classmethod
    def _queue_prefix(cls, value: str | None) -> str | None:
        if value is not None:
            problem = queue_prefix_problem(value)
            if problem:
                raise ValueError(problem)
        return value


def queue_prefix_problem(prefix: str) -> str | None:
    """Why ``PREFIX-control-poison`` (the longest queue name) would not be a valid queue name, or None."""
    longest = f"{prefix}-control-poison"
    if len(longest) > 63 or not STORAGE_NAME.match(longest):
        return (
            f"{prefix!r} cannot prefix queue names (lowercase letters, digits and single hyphens, "
            f"at most {63 - LONGEST_QUEUE_SUFFIX} characters)"
        )
    return None


class AzureStack(StackBase):
    """A stack on Azure: Container Instances, Storage queues and blobs, ACR (built by ``mayfly:azure:Target``)."""

    cloud: Literal["azure"]
    runner: AzureRunnerSection = Field(default_factory=AzureRunnerSection, description="The optional runner.")
    azure: AzureSection = Field(description="Azure options (subscription required).")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not AZURE_LOCATION.match(value):
            raise ValueError(
                f"{value!r} is not an Azure location (like westeurope: `az account list-locations -o table`)"
            )
        return value

    @field_validator("name", "target")
    @classmethod
    def _azure_name_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) > AZURE_MAX_NAME:
            raise ValueError(f"at most {AZURE_MAX_NAME} characters on azure (container group and identity names)")
        return value

    @model_validator(mode="after")
    def _derived_queue_prefix(self) -> AzureStack:
        if self.azure.queue_prefix is None:
            problem = queue_prefix_problem(self.target_name)
            if problem:
                raise ValueError(f"the target name {problem}: set azure.queue_prefix")
        return self

    # ------------------------------------------------------------ names with their defaults

    @property
    def resource_group(self) -> str:
        """The resource group the stack creates."""
        return self.azure.resource_group or f"mayfly-{self.name}"

    @property
    def storage_account(self) -> str:
        """The storage account's name."""
        return self.azure.storage_account or default_name(
            "storage", self.name, self.azure.subscription, self.resource_group, 24
        )

    @property
    def registry(self) -> str:
        """The container registry's name."""
        return self.azure.registry or default_name(
            "registry", self.name, self.azure.subscription, self.resource_group, 50
        )

    @property
    def queue_prefix(self) -> str:
        """The queues' prefix (``AciSettings.queue_prefix``)."""
        return self.azure.queue_prefix or self.target_name
