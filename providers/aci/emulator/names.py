"""Names and versions ACI accepts: container group and container names, api-versions.

Container group and container names: 1 to 63 characters, lowercase letters,
digits and hyphens, neither starting nor ending with a hyphen, no two hyphens in
a row (Azure's naming rules for ``Microsoft.ContainerInstance``).
"""

from __future__ import annotations

import re

from mayfly.providers.aci.emulator.errors import bad_request

#: The api-version of ``azure-mgmt-containerinstance`` 10.x; the others ACI serves are accepted too.
API_VERSION = "2023-05-01"
API_VERSIONS = frozenset(
    {
        "2021-09-01",
        "2021-10-01",
        "2022-09-01",
        "2022-10-01-preview",
        "2023-02-01-preview",
        "2023-05-01",
        "2024-05-01-preview",
        "2024-09-01-preview",
        "2024-10-01-preview",
        "2024-11-01-preview",
        "2025-09-01",
    }
)

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 63


def valid_name(name: str) -> bool:
    """Whether ``name`` is a valid container group (or container) name."""
    return 0 < len(name) <= MAX_NAME and bool(_NAME.match(name)) and "--" not in name


def check_group_name(name: str) -> None:
    """ACI's 400 for an invalid container group name."""
    if not valid_name(name):
        raise bad_request(
            "InvalidContainerGroupName",
            f"The container group name '{name}' is invalid. The container group name must contain no more than "
            "63 characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name'). "
            "Consecutive hyphens are not allowed.",
            target=name,
        )


def check_container_name(name: str) -> None:
    """ACI's 400 for an invalid container name."""
    if not valid_name(name):
        raise bad_request(
            "InvalidContainerName",
            f"The container name '{name}' is invalid. The container name must contain no more than 63 "
            "characters and must match the regex '[a-z0-9]([-a-z0-9]*[a-z0-9])?' (e.g. 'my-name').",
            target=name,
        )


def check_api_version(version: str | None) -> None:
    """ARM's 400 for a missing or unknown api-version."""
    if not version:
        raise bad_request(
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in API_VERSIONS:
        raise bad_request(
            "NoRegisteredProviderFound",
            f"No registered resource provider found for API version '{version}' and type 'containerGroups'. "
            f"The supported api-versions are '{', '.join(sorted(API_VERSIONS))}'.",
        )
