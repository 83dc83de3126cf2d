"""How task containers reach the emulator, and which addresses it listens on.

The boot script in a task container downloads its code and payload from S3
presigned URLs and PUTs its result, all on the emulator's endpoint, so the one
endpoint URL a target uses must work both on this host and inside containers.
On Linux that is the gateway of the Docker bridge network the tasks run on
(``172.17.0.1`` for the default ``bridge``): it is an address of this host, and
containers on that bridge route to it. The emulator therefore listens on the
requested host (127.0.0.1 by default, so nothing is exposed to the LAN) *and*
on that gateway address, same port, and advertises ``http://GATEWAY:PORT``.
Presigned URLs made with that endpoint are signed for the host containers use.

When the gateway is not an address of this host (Docker Desktop, a remote
engine), containers are given ``host.docker.internal`` (mapped to the engine's
``host-gateway``) and the emulator listens only on ``--host``: use
``--host 0.0.0.0`` there, or ``--container-host`` to name the address yourself.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import Any

DOCKER_DESKTOP_HOST = "host.docker.internal"
ANY = ("0.0.0.0", "")


@dataclass(frozen=True)
class Reachability:
    """Where the emulator listens and how containers name it."""

    #: Addresses to listen on (same port on each).
    bind: list[str]
    #: Host (IP or name) of the emulator as task containers see it; also used in the advertised endpoint.
    container_host: str
    #: ``/etc/hosts`` entries task containers need for ``container_host``.
    extra_hosts: dict[str, str] = field(default_factory=dict)


def bridge_gateway(client: Any, network: str) -> str | None:
    """The IPv4 gateway of a Docker network (the subnet's first address when the engine lists none)."""
    attrs = client.networks.get(network).attrs
    for config in (attrs.get("IPAM") or {}).get("Config") or []:
        gateway = config.get("Gateway")
        if gateway and ":" not in gateway:
            return str(gateway).split("/")[0]
        subnet = config.get("Subnet")
        if subnet and ":" not in subnet:
            return str(next(ipaddress.ip_network(subnet, strict=False).hosts()))
    return None


def is_local_address(address: str) -> bool:
    """Whether this host can listen on ``address``."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((address, 0))
    except OSError:
        return False
    return True


def plan(client: Any, host: str, network: str, container_host: str | None = None) -> Reachability:
    """Listening addresses and the containers' name of the emulator (see the module docstring)."""
    if container_host:
        return Reachability(bind=[host], container_host=container_host)
    gateway = bridge_gateway(client, network)
    if gateway and is_local_address(gateway):
        bind = [host] if host in ANY or host == gateway else [host, gateway]
        return Reachability(bind=bind, container_host=gateway)
    return Reachability(
        bind=[host], container_host=DOCKER_DESKTOP_HOST, extra_hosts={DOCKER_DESKTOP_HOST: "host-gateway"}
    )
