"""``GcpEmulator``: the Cloud Run and Logging API in this process, Pub/Sub and Cloud Storage as children.

``with GcpEmulator() as emu:`` starts everything; ``emu.endpoints`` says where
each API is; ``emu.bootstrap_target(name)`` creates a target's resources and
returns its ``cloudrun`` settings. Leaving the block stops the children, the
server, and removes every container the emulator started.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mayfly.core.errors import EngineNotRunning
from mayfly.providers.cloudrun.emulator import bootstrap, processes
from mayfly.providers.cloudrun.emulator.api import CloudRunApi
from mayfly.providers.cloudrun.emulator.backend import CloudRunBackend
from mayfly.providers.cloudrun.emulator.logstore import LogStore
from mayfly.providers.cloudrun.emulator.runner import LABEL, POLL_INTERVAL, STOP_GRACE, DockerExecutions
from mayfly.providers.emulation.containers import OwnedContainers
from mayfly.providers.emulation.network import ANY, Reachability, plan
from mayfly.providers.emulation.serving import Servers, free_port, listen_all

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: The Cloud Run + Logging API; Pub/Sub on the next port, Cloud Storage on the one after.
DEFAULT_PORT = 8780
DEFAULT_PROJECT = "mayfly-local"
DEFAULT_REGION = "europe-west1"


def _reachable(bind: str) -> str:
    """The address to connect to for a listening address (loopback for 0.0.0.0)."""
    return "127.0.0.1" if bind in ANY else bind


@dataclass(frozen=True)
class Endpoints:
    """Where each emulated API answers."""

    #: Cloud Run Admin API (and Cloud Logging) base URL, on this host.
    run: str
    #: Cloud Logging base URL (the same server as ``run``).
    logging: str
    #: Cloud Storage base URL, the same on this host and in task containers (signed URLs use it).
    storage: str | None
    #: ``host:port`` of the Pub/Sub emulator (for ``PUBSUB_EMULATOR_HOST``).
    pubsub: str | None


class GcpEmulator:
    """Google Cloud for Mayfly on this machine (see the package docstring)."""

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        network: str = "bridge",
        container_host: str | None = None,
        pubsub: bool = True,
        pubsub_endpoint: str | None = None,
        storage: bool = True,
        state_dir: Path | None = None,
        docker_client: Any = None,
        poll_interval: float = POLL_INTERVAL,
        stop_grace: int = STOP_GRACE,
    ) -> None:
        self.host = host
        self.port = port
        self._requested_port = port
        self.network = network
        self._container_host = container_host
        self._want_pubsub = pubsub and pubsub_endpoint is None
        #: ``host:port`` of a Pub/Sub emulator already running (then none is started).
        self._external_pubsub = pubsub_endpoint
        self._want_storage = storage
        self._state_dir = state_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._docker = docker_client
        self._own_docker = docker_client is None
        self._poll_interval = poll_interval
        self._stop_grace = stop_grace
        self.backend = CloudRunBackend()
        self.logs = LogStore()
        self.reachability: Reachability | None = None
        self._servers: Servers | None = None
        self._executions: DockerExecutions | None = None
        self._pubsub: processes.ChildProcess | None = None
        self._gcs: processes.ChildProcess | None = None
        self._pubsub_port = 0
        self._gcs_port = 0

    # ------------------------------------------------------------ endpoints

    @property
    def state_dir(self) -> Path:
        """Where the children's logs and the targets' key files go."""
        if self._state_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="mayfly-gcp-emulator-")
            self._state_dir = Path(self._tmp.name)
        return self._state_dir

    @property
    def local_url(self) -> str:
        """The Cloud Run / Logging API on this host's loopback (or the first listening address)."""
        if self.reachability is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{_reachable(self.reachability.bind[0])}:{self.port}"

    @property
    def endpoints(self) -> Endpoints:
        if self.reachability is None:
            raise RuntimeError("the emulator is not started")
        return Endpoints(
            run=self.local_url,
            logging=self.local_url,
            storage=f"http://{self._gcs_public_host}" if self._gcs is not None else None,
            pubsub=self._external_pubsub
            or (f"{_reachable(self._pubsub_bind)}:{self._pubsub_port}" if self._pubsub is not None else None),
        )

    @property
    def _gcs_bind(self) -> str:
        assert self.reachability is not None
        if self.host in ANY:
            return "0.0.0.0"
        ch = self.reachability.container_host
        return ch if ch in self.reachability.bind else self.reachability.bind[0]

    @property
    def _gcs_public_host(self) -> str:
        assert self.reachability is not None
        return f"{self.reachability.container_host}:{self._gcs_port}"

    @property
    def _pubsub_bind(self) -> str:
        return "0.0.0.0" if self.host in ANY else "127.0.0.1" if self.host == "localhost" else self.host

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> GcpEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> GcpEmulator:
        """Listen, start the execution runner, then the Pub/Sub and Cloud Storage emulators."""
        try:
            if self._docker is None:
                import docker

                self._docker = docker.from_env(max_pool_size=64)
            self._docker.ping()
        except Exception as exc:
            raise EngineNotRunning(f"the Cloud Run emulator needs a Docker engine: {exc}") from None
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        assert self._docker is not None
        self.reachability = plan(self._docker, self.host, self.network, self._container_host)
        sockets = listen_all(self.reachability.bind, self.port)
        self.port = sockets[0].getsockname()[1]
        owned = OwnedContainers(self._docker, LABEL)
        self._executions = DockerExecutions(
            self.backend,
            self._docker,
            self.logs,
            owned,
            network=self.network,
            extra_hosts=self.reachability.extra_hosts,
            poll_interval=self._poll_interval,
            stop_grace=self._stop_grace,
        )
        self.backend.launcher = self._executions
        self._servers = Servers(CloudRunApi(self.backend, self.logs), sockets, "cloudrun-emulator")
        self._executions.start()
        if self._want_pubsub:
            self._pubsub_port = self._child_port(1, self._pubsub_bind)
            self._pubsub = processes.start_pubsub(
                self._pubsub_bind, self._pubsub_port, self.state_dir / "pubsub-emulator.log"
            )
        if self._want_storage:
            self._gcs_port = self._child_port(2, self._gcs_bind)
            self._gcs = processes.start_gcs(
                self._gcs_bind, self._gcs_port, self._gcs_public_host, self.state_dir / "gcs-emulator.log"
            )
        # Loopback URLs of the storage emulator (a client configured with 127.0.0.1, say) would point a
        # task container at itself: they are rewritten to the host containers reach.
        if self._gcs is not None:
            public = f"http://{self._gcs_public_host}"
            self._executions.rewrites = {
                f"http://{loopback}:{self._gcs_port}": public
                for loopback in ("127.0.0.1", "localhost")
                if f"http://{loopback}:{self._gcs_port}" != public
            }
        log.info("GCP emulator: %s", self.endpoints)

    def _child_port(self, offset: int, bind: str) -> int:
        if self._requested_port and self._requested_port + offset <= 65535:
            return self._requested_port + offset
        return free_port("127.0.0.1" if bind in ANY else bind)

    def stop(self) -> None:
        """Stop the children, remove the containers, stop serving."""
        for child in (self._pubsub, self._gcs):
            if child is not None:
                child.stop()
        self._pubsub = self._gcs = None
        if self._executions is not None:
            self._executions.close()
            self._executions = None
        if self._servers is not None:
            self._servers.close()
            self._servers = None
        if self._own_docker and self._docker is not None:
            self._docker.close()
            self._docker = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._state_dir = None

    # -------------------------------------------------------------- targets

    def bootstrap_target(
        self, name: str, *, project: str = DEFAULT_PROJECT, region: str = DEFAULT_REGION
    ) -> dict[str, Any]:
        """Create target ``name``'s topics, subscriptions, bucket and key file; return its ``cloudrun`` settings."""
        prefix = bootstrap.resource_prefix(name)
        endpoints = self.endpoints
        if endpoints.pubsub is None or endpoints.storage is None:
            raise RuntimeError("a target needs the Pub/Sub and Cloud Storage emulators")
        bootstrap.create_queues(endpoints.pubsub, project, prefix)
        bootstrap.create_bucket(endpoints.storage, project, prefix)
        key = bootstrap.write_key_file(self.state_dir / f"{name}-key.json", project, f"{self.local_url}/token")
        return {
            "project": project,
            "region": region,
            "queue_prefix": prefix,
            "bucket": prefix,
            "job_prefix": prefix,
            "credentials_file": str(key),
            "run_endpoint": endpoints.run,
            "logging_endpoint": endpoints.logging,
            "storage_endpoint": endpoints.storage,
            "pubsub_endpoint": endpoints.pubsub,
        }
