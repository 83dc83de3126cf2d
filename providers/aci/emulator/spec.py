"""What a PUT of a container group asks for, validated as ACI validates it.

The body is ARM's camelCase JSON (``location``, ``tags``, ``identity``,
``properties.containers[].properties.{image, command, environmentVariables,
resources}``, ``restartPolicy``, ``osType``, ...). What the emulator runs is
reduced to a :class:`GroupSpec`; the request's properties are kept as sent
(minus secrets) and returned on GET, as ARM returns what was stored.

Checks, each ARM's 400 with its code: the location, the names, exactly one
Linux container (the emulator runs one container per group), an image, cpu and
memory requests (positive; requests, or limits when higher, at most ACI's
standard per-group maximum of 4 vCPU and 16 GB), the restart policy,
environment variables (a name and one of value / secureValue).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from mayfly.providers.aci.emulator.errors import bad_request
from mayfly.providers.aci.emulator.names import check_container_name

RESTART_POLICIES = ("Always", "OnFailure", "Never")
#: ACI's standard maximum of a Linux container group in most regions (docs: "Resource availability by region").
MAX_CPU = 4.0
MAX_MEMORY_GB = 16.0


@dataclass(frozen=True)
class GroupSpec:
    """One container group as the emulator runs it."""

    location: str
    tags: dict[str, str]
    restart_policy: str
    container: str
    image: str
    command: list[str] | None
    #: Environment of the container, secure values included.
    environment: dict[str, str]
    cpu: float
    memory_gb: float
    #: The request's ``properties`` with every ``secureValue`` and registry password removed.
    public_properties: dict[str, Any] = field(default_factory=dict)
    identity: dict[str, Any] | None = None

    def same_run(self, other: GroupSpec) -> bool:
        """Whether ``other`` runs the same container (a PUT changing only tags restarts nothing)."""
        fields = ("restart_policy", "container", "image", "command", "environment", "cpu", "memory_gb")
        return all(getattr(self, f) == getattr(other, f) for f in fields)


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_request("InvalidRequestContent", f"The request content was invalid: '{what}' must be a number.")
    return float(value)


def _resources(properties: dict[str, Any], container: str) -> tuple[float, float]:
    resources = properties.get("resources") or {}
    requests = resources.get("requests")
    if not isinstance(requests, dict) or "cpu" not in requests or "memoryInGB" not in requests:
        raise bad_request(
            "InvalidContainerResourceRequests",
            f"The container '{container}' must specify resource requests of cpu and memoryInGB.",
        )
    cpu = _number(requests["cpu"], "cpu")
    memory = _number(requests["memoryInGB"], "memoryInGB")
    limits = resources.get("limits") or {}
    if "cpu" in limits:
        cpu = max(cpu, _number(limits["cpu"], "cpu"))
    if "memoryInGB" in limits:
        memory = max(memory, _number(limits["memoryInGB"], "memoryInGB"))
    if cpu <= 0 or memory <= 0:
        raise bad_request(
            "InvalidContainerResourceRequests",
            f"The container '{container}' resource requests must be greater than 0: "
            f"cpu {cpu:g}, memoryInGB {memory:g}.",
        )
    if cpu > MAX_CPU or memory > MAX_MEMORY_GB:
        raise bad_request(
            "ResourceRequestsExceedMaxAllowed",
            f"The resource requests of container group exceed the maximum allowed: requested {cpu:g} CPU and "
            f"{memory:g} GB memory, the maximum is {MAX_CPU:g} CPU and {MAX_MEMORY_GB:g} GB memory.",
        )
    return cpu, memory


def _environment(properties: dict[str, Any], container: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in properties.get("environmentVariables") or []:
        name = item.get("name") if isinstance(item, dict) else None
        if not name:
            raise bad_request(
                "InvalidEnvironmentVariable", f"An environment variable of container '{container}' has no name."
            )
        value = item.get("secureValue", item.get("value"))
        if value is None:
            raise bad_request(
                "InvalidEnvironmentVariable",
                f"The environment variable '{name}' of container '{container}' must have a value or a secureValue.",
            )
        env[str(name)] = str(value)
    return env


def _public(properties: dict[str, Any]) -> dict[str, Any]:
    """The properties as GET returns them: no secureValue, no registry password."""
    public = copy.deepcopy(properties)
    for container in public.get("containers") or []:
        props = container.get("properties") or {}
        props.pop("instanceView", None)
        for item in props.get("environmentVariables") or []:
            item.pop("secureValue", None)
    for credential in public.get("imageRegistryCredentials") or []:
        credential.pop("password", None)
    for key in ("provisioningState", "instanceView"):
        public.pop(key, None)
    return public


def parse(body: Any) -> GroupSpec:
    """The :class:`GroupSpec` of a PUT body, or ArmError (400)."""
    if not isinstance(body, dict):
        raise bad_request("InvalidRequestContent", "The request content was invalid and could not be deserialized.")
    location = body.get("location")
    if not location or not isinstance(location, str):
        raise bad_request("LocationRequired", "The location property is required for this definition.")
    properties = body.get("properties")
    if not isinstance(properties, dict):
        raise bad_request("InvalidRequestContent", "The request content was invalid: 'properties' is required.")
    containers = properties.get("containers")
    if not isinstance(containers, list) or not containers:
        raise bad_request("InvalidContainerGroupDefinition", "The container group must have at least one container.")
    if len(containers) > 1:
        raise bad_request(
            "UnsupportedByEmulator",
            "The Mayfly ACI emulator runs container groups of exactly one container.",
        )
    container = containers[0] if isinstance(containers[0], dict) else {}
    name = str(container.get("name") or "")
    check_container_name(name)
    props = container.get("properties") or {}
    image = props.get("image")
    if not image or not isinstance(image, str):
        raise bad_request("InvalidContainerImage", f"The container '{name}' must specify an image.")
    os_type = properties.get("osType")
    if os_type not in ("Linux", "Windows"):
        raise bad_request(
            "InvalidOsType", f"The osType '{os_type}' is invalid. The supported values are 'Linux', 'Windows'."
        )
    if os_type == "Windows":
        raise bad_request("UnsupportedByEmulator", "The Mayfly ACI emulator runs Linux container groups only.")
    restart = properties.get("restartPolicy", "Always")
    if restart not in RESTART_POLICIES:
        raise bad_request(
            "InvalidRestartPolicy",
            f"The restart policy '{restart}' is invalid. The supported values are {', '.join(RESTART_POLICIES)}.",
        )
    command = props.get("command")
    if command is not None and (not isinstance(command, list) or not all(isinstance(a, str) for a in command)):
        raise bad_request("InvalidRequestContent", f"The command of container '{name}' must be a list of strings.")
    cpu, memory = _resources(props, name)
    tags = body.get("tags") or {}
    if not isinstance(tags, dict):
        raise bad_request("InvalidRequestContent", "The request content was invalid: 'tags' must be an object.")
    public = _public(properties)
    public["restartPolicy"] = restart
    return GroupSpec(
        location=location,
        tags={str(k): str(v) for k, v in tags.items()},
        restart_policy=restart,
        container=name,
        image=image,
        command=list(command) if command else None,
        environment=_environment(props, name),
        cpu=cpu,
        memory_gb=memory,
        public_properties=public,
        identity=body.get("identity") if isinstance(body.get("identity"), dict) else None,
    )
