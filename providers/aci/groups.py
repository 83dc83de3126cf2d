"""The container group of one attempt, as the JSON body of ARM's PUT (api-version 2023-05-01).

One Linux container named ``task``, ``restartPolicy: Never`` (an attempt runs once;
retries are Mayfly's), cpu and memory *requests* from the code (ACI's limits default
to the requests, so they are hard limits too), the command and environment of the
spec. Anything secret travels as ``secureValue`` (ARM never returns it in a GET): the
boot script's signed URLs and each secret as ``MAYFLY_SECRET_<NAME>`` (base64; the
boot agent moves it to a 0400 file). With a pull identity, the group carries it as a
user-assigned identity and pulls images from ``registry_server`` with it
(``imageRegistryCredentials`` with ``identity``, no password anywhere).

Sizes: ACI takes cpu in cores and memory in GB (taken as GiB here); both are rounded
*up* to steps of 0.1, so 0.25 cpu and 64 MiB run as 0.3 cores and 0.1 GB. Standard
Linux container groups have at most 4 cores and 16 GB (same source as
:mod:`~mayfly.providers.aci.limiter`); more is refused.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

from mayfly.core.errors import LaunchFailed
from mayfly.core.models import LaunchSpec
from mayfly.providers.aci.naming import CONTAINER
from mayfly.providers.aci.settings import AciSettings

MAX_CPU = 4.0
MAX_MEMORY_MB = 16 * 1024
#: Environment variables of a secret value (the boot agent reads them, see runtimes/boot/mayfly-boot).
SECRET_PREFIX = "MAYFLY_SECRET_"
#: ACI's cap on the JSON of one environment variable value is not documented; a secret this large
#: would also exceed ARM's request size limit (4 MB) long before.
MAX_SECRET_BYTES = 64 * 1024
_RUNTIME_PREFIX = "mayfly/"


def size(cpu: float, memory_mb: int) -> tuple[float, float]:
    """(cores, GB) ACI runs ``cpu`` and ``memory_mb`` as, rounded up to steps of 0.1; beyond 4 / 16 refused."""
    if cpu > MAX_CPU or memory_mb > MAX_MEMORY_MB:
        raise LaunchFailed(
            f"{cpu:g} cpu and {memory_mb} MiB exceed ACI's largest Linux container group "
            f"({MAX_CPU:g} cores, {MAX_MEMORY_MB // 1024} GB)",
            retryable=False,
        )
    cores = max(1, math.ceil(round(cpu * 10, 6))) / 10
    gb = max(1, math.ceil(round(memory_mb / 102.4, 6))) / 10
    return cores, gb


def image_of(image: str, settings: AciSettings) -> str:
    """The image to run: runtime images ``mayfly/runtime-NAME:V`` come from ``image_prefix`` when set."""
    if settings.image_prefix and image.startswith(_RUNTIME_PREFIX):
        return f"{settings.image_prefix.rstrip('/')}/{image[len(_RUNTIME_PREFIX) :]}"
    return image


def environment(env: Mapping[str, str], secure: Mapping[str, str]) -> list[dict[str, str]]:
    """ACI environment variables: ``env`` as values, ``secure`` as secureValues (which win on a clash)."""
    out = [{"name": k, "value": v} for k, v in sorted(env.items()) if k not in secure]
    out += [{"name": k, "secureValue": v} for k, v in sorted(secure.items())]
    return out


def secret_env(secrets: Mapping[str, bytes]) -> dict[str, str]:
    """``MAYFLY_SECRET_<NAME>`` = base64 of each value (an environment variable cannot hold a NUL byte)."""
    out = {}
    for name, value in secrets.items():
        if len(value) > MAX_SECRET_BYTES:
            raise LaunchFailed(
                f"secret {name!r} is {len(value)} bytes; ACI targets pass secrets of at most {MAX_SECRET_BYTES} bytes",
                retryable=False,
            )
        out[f"{SECRET_PREFIX}{name}"] = base64.b64encode(value).decode()
    return out


def group_body(
    spec: LaunchSpec,
    settings: AciSettings,
    *,
    env: Mapping[str, str],
    secure: Mapping[str, str],
    tags: Mapping[str, str],
) -> dict[str, Any]:
    """The PUT body of the attempt's container group."""
    cores, gb = size(spec.cpu, spec.memory_mb)
    image = image_of(spec.image, settings)
    container: dict[str, Any] = {
        "image": image,
        "environmentVariables": environment(env, secure),
        "resources": {"requests": {"cpu": cores, "memoryInGB": gb}},
    }
    if spec.command:
        container["command"] = list(spec.command)
    properties: dict[str, Any] = {
        "osType": "Linux",
        "restartPolicy": "Never",
        "sku": "Standard",
        "containers": [{"name": CONTAINER, "properties": container}],
    }
    body: dict[str, Any] = {"location": settings.location, "tags": dict(tags), "properties": properties}
    if settings.pull_identity_id:
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {settings.pull_identity_id: {}}}
        server = settings.registry_server
        if server and image.startswith(f"{server.rstrip('/')}/"):
            properties["imageRegistryCredentials"] = [{"server": server, "identity": settings.pull_identity_id}]
    return body
