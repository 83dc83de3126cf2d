"""The ARM endpoint: a threaded werkzeug server per listening address, the backend and the Docker runner.

Listening follows :mod:`mayfly.providers.emulation.network`: the requested host
and the Docker bridge's gateway (same port, :mod:`mayfly.providers.emulation.serving`),
advertised as ``http://GATEWAY:PORT`` so the one endpoint works on this host and in
containers.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from mayfly.core.errors import EngineNotRunning
from mayfly.providers.aci.emulator.api import ArmApi
from mayfly.providers.aci.emulator.backend import Backend
from mayfly.providers.aci.emulator.containers import POLL_INTERVAL, RESTART_BACKOFF, STOP_TIMEOUT, DockerContainers
from mayfly.providers.aci.emulator.faults import Fault, Faults
from mayfly.providers.emulation.network import ANY, Reachability, plan
from mayfly.providers.emulation.serving import Servers, listen_all

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4580


class ArmEmulator:
    """Azure Resource Manager for container groups, whose containers run in local Docker.

    ``with ArmEmulator() as arm:`` serves it; :attr:`endpoint_url` is the ARM base URL for
    ``ContainerInstanceManagementClient(base_url=...)``. Leaving the block stops the server
    and removes every container it started.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        network: str = "bridge",
        container_host: str | None = None,
        docker_client: Any = None,
        poll_interval: float = POLL_INTERVAL,
        stop_timeout: int = STOP_TIMEOUT,
        restart_backoff: float = RESTART_BACKOFF,
    ) -> None:
        self.host = host
        self.port = port
        self.network = network
        self.instance = uuid.uuid4().hex[:12]
        self.backend = Backend()
        self.faults = Faults()
        self.reachability: Reachability | None = None
        self._container_host = container_host
        self._docker = docker_client
        self._own_docker = docker_client is None
        self._poll_interval = poll_interval
        self._stop_timeout = stop_timeout
        self._restart_backoff = restart_backoff
        self._servers: Servers | None = None
        self._containers: DockerContainers | None = None

    @property
    def endpoint_url(self) -> str:
        """The ARM base URL, valid on this host and inside containers."""
        if self.reachability is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.reachability.container_host}:{self.port}"

    @property
    def local_url(self) -> str:
        """The ARM base URL on this host's loopback (or the first listening address)."""
        if self.reachability is None:
            raise RuntimeError("the emulator is not started")
        first = self.reachability.bind[0]
        return f"http://{'127.0.0.1' if first in ANY else first}:{self.port}"

    @property
    def docker(self) -> Any:
        """The Docker client the emulator uses."""
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env(max_pool_size=64)
                self._docker.ping()
            except Exception as exc:
                self._docker = None
                raise EngineNotRunning(f"the ACI emulator needs a Docker engine: {exc}") from None
        return self._docker

    def inject_fault(
        self,
        status: int,
        code: str,
        message: str = "",
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int = 1,
        retry_after: int | None = None,
    ) -> None:
        """Answer the next ``times`` matching requests with this ARM error (see :mod:`.faults`)."""
        self.faults.add(Fault(status, code, message or f"{code} (injected)", method, path_contains, times, retry_after))

    def __enter__(self) -> ArmEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> ArmEmulator:
        """Listen and start the container poller."""
        client = self.docker
        self.reachability = plan(client, self.host, self.network, self._container_host)
        sockets = listen_all(self.reachability.bind, self.port)
        self.port = sockets[0].getsockname()[1]
        self._containers = DockerContainers(
            self.backend,
            client,
            instance=self.instance,
            network=self.network,
            extra_hosts=self.reachability.extra_hosts,
            poll_interval=self._poll_interval,
            stop_timeout=self._stop_timeout,
            restart_backoff=self._restart_backoff,
        )
        self.backend.runner = self._containers
        self._servers = Servers(ArmApi(self.backend, self.faults), sockets, "arm-emulator")
        self._containers.start()
        log.info("ARM emulator on %s (listening on %s)", self.endpoint_url, ", ".join(self.reachability.bind))
        return self

    def stop(self) -> None:
        """Stop serving; remove every container of this emulator."""
        if self._servers is not None:
            self._servers.close()
            self._servers = None
        if self._containers is not None:
            self._containers.close()
            self._containers = None
        if self._own_docker and self._docker is not None:
            self._docker.close()
            self._docker = None
