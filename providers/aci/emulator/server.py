"""The ARM endpoint: a threaded werkzeug server per listening address, the backend and the Docker runner.

Listening follows :mod:`mayfly.providers.emulation.network`: the requested host
and the Docker bridge's gateway (same port), advertised as
``http://GATEWAY:PORT`` so the one endpoint works on this host and in containers.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from mayfly.core.errors import EngineNotRunning, Unavailable
from mayfly.providers.aci.emulator.api import ArmApi
from mayfly.providers.aci.emulator.backend import Backend
from mayfly.providers.aci.emulator.containers import POLL_INTERVAL, STOP_TIMEOUT, DockerContainers
from mayfly.providers.emulation.network import ANY, Reachability, plan

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4580


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, logging requests at DEBUG instead of printing them."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.log(logging.WARNING if type == "error" else logging.DEBUG, message, *args)


def _listen(address: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((address, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def listen_all(addresses: list[str], port: int) -> list[socket.socket]:
    """One listening socket per address, all on the same port (a free one when ``port`` is 0)."""
    for _attempt in range(20):
        sockets: list[socket.socket] = []
        address = addresses[0]
        try:
            for address in addresses:
                sockets.append(_listen(address, port or (sockets[0].getsockname()[1] if sockets else 0)))
            return sockets
        except OSError as exc:
            for sock in sockets:
                sock.close()
            if port:
                raise Unavailable(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    raise Unavailable(f"no free port on {', '.join(addresses)}")


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
    ) -> None:
        self.host = host
        self.port = port
        self.network = network
        self.instance = uuid.uuid4().hex[:12]
        self.backend = Backend()
        self.reachability: Reachability | None = None
        self._container_host = container_host
        self._docker = docker_client
        self._own_docker = docker_client is None
        self._poll_interval = poll_interval
        self._stop_timeout = stop_timeout
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []
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
        )
        self.backend.runner = self._containers
        app = ArmApi(self.backend)
        for sock in sockets:
            address = sock.getsockname()[0]
            server = make_server(address, self.port, app, threaded=True, request_handler=_Handler, fd=sock.fileno())
            sock.close()  # the server holds its own duplicate
            thread = threading.Thread(
                target=server.serve_forever, name=f"arm-emulator-{address}", kwargs={"poll_interval": 0.2}, daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self._containers.start()
        log.info("ARM emulator on %s (listening on %s)", self.endpoint_url, ", ".join(self.reachability.bind))
        return self

    def stop(self) -> None:
        """Stop serving; remove every container of this emulator."""
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._containers is not None:
            self._containers.close()
            self._containers = None
        if self._own_docker and self._docker is not None:
            self._docker.close()
            self._docker = None
