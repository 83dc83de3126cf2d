"""The emulator's HTTP endpoint: ECS answered here, every other AWS service by moto, on one port.

Requests whose ``X-Amz-Target`` names ECS go to :class:`~.ecs_api.EcsApi`;
everything else goes to moto's own WSGI application
(``DomainDispatcherApplication``), which routes by SigV4 credential scope and
host exactly as ``moto_server`` does. Both run in this process, in one threaded
werkzeug server per listening address: no second port, no proxy hop, and
moto's ``/moto-api/`` (e.g. ``POST /moto-api/reset``) is there too.

NOTE: moto keeps its state in process-wide globals. Two emulators in one
process share SQS, S3, Logs and IAM state (their ECS states are separate), and
``moto.mock_aws`` used in the same process while an emulator runs sees, and on
exit resets, the emulator's resources.
"""

from __future__ import annotations

import logging
import socket
import threading
import uuid
from collections.abc import Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from mayfly.core.errors import EngineNotRunning, MissingDependency, Unavailable
from mayfly.providers.ecs.emulator.arns import DEFAULT_REGION
from mayfly.providers.ecs.emulator.backend import STOPPED_TASK_RETENTION, EcsBackend
from mayfly.providers.ecs.emulator.cwlogs import FLUSH_INTERVAL, LogShipper
from mayfly.providers.ecs.emulator.ecs_api import EcsApi, StartResponse, is_ecs_request
from mayfly.providers.ecs.emulator.tasks import POLL_INTERVAL, DockerTasks
from mayfly.providers.emulation.network import ANY, Reachability, plan

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 4566
#: Any credentials work (nothing is verified); these are what the emulator's own clients use.
ACCESS_KEY = "mayfly-emulator"
SECRET_KEY = "mayfly-emulator"
FORM = "application/x-www-form-urlencoded"


class _Handler(WSGIRequestHandler):
    """werkzeug's handler, logging requests at DEBUG instead of printing them."""

    def log(self, type: str, message: str, *args: Any) -> None:
        log.log(logging.WARNING if type == "error" else logging.DEBUG, message, *args)


class Dispatcher:
    """One WSGI application: ECS calls to the emulator's ECS, the rest to moto."""

    def __init__(self, ecs: Any, moto: Any) -> None:
        self.ecs = ecs
        self.moto = moto

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if is_ecs_request(environ):
            app = self.ecs
        else:
            app = self.moto
            if environ.get("REQUEST_METHOD") == "PUT" and str(environ.get("CONTENT_TYPE", "")).startswith(FORM):
                # NOTE: moto's Flask app parses a form-encoded body as a form and stores an empty object.
                # S3 keeps any body; urllib sends this type by default (a task PUTting to a presigned URL).
                environ["CONTENT_TYPE"] = "application/octet-stream"
        result: Iterable[bytes] = app(environ, start_response)
        return result


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


def _listen_all(addresses: list[str], port: int) -> list[socket.socket]:
    """One listening socket per address, all on the same port (a free one when ``port`` is 0)."""
    for _attempt in range(20):
        sockets: list[socket.socket] = []
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


class AwsEmulator:
    """AWS for Mayfly on this machine: moto + an ECS whose tasks are local Docker containers.

    ``with AwsEmulator() as emu:`` starts it; ``emu.endpoint_url`` is the URL for
    boto3 clients, targets and task containers alike; ``emu.bootstrap_target(name)``
    creates a target's resources and returns its ``ecs`` settings. Leaving the
    block stops the server and removes every container it started.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        *,
        region: str = DEFAULT_REGION,
        network: str = "bridge",
        container_host: str | None = None,
        docker_client: Any = None,
        poll_interval: float = POLL_INTERVAL,
        log_interval: float = FLUSH_INTERVAL,
        stopped_task_retention: float = STOPPED_TASK_RETENTION,
        delete_tags_on_stop: bool = True,
    ) -> None:
        self.host = host
        self.port = port
        self.region = region
        self.network = network
        self.instance = uuid.uuid4().hex[:12]
        self._container_host = container_host
        self._docker = docker_client
        self._own_docker = docker_client is None
        self._poll_interval = poll_interval
        self._log_interval = log_interval
        self.backend = EcsBackend(
            stopped_task_retention=stopped_task_retention, delete_tags_on_stop=delete_tags_on_stop
        )
        self._servers: list[BaseWSGIServer] = []
        self._threads: list[threading.Thread] = []
        self._tasks: DockerTasks | None = None
        self._logs: LogShipper | None = None
        self._clients: dict[tuple[str, str, str], Any] = {}
        self._clients_lock = threading.Lock()
        self.reachability: Reachability | None = None

    # ------------------------------------------------------------- endpoints

    @property
    def endpoint_url(self) -> str:
        """The endpoint to use everywhere: on this host, in targets, and inside task containers."""
        if self.reachability is None:
            raise RuntimeError("the emulator is not started")
        return f"http://{self.reachability.container_host}:{self.port}"

    @property
    def local_url(self) -> str:
        """The endpoint on this host's loopback (or the first listening address)."""
        if self.reachability is None:
            raise RuntimeError("the emulator is not started")
        first = self.reachability.bind[0]
        return f"http://{'127.0.0.1' if first in ANY else first}:{self.port}"

    def client(self, service: str, region: str | None = None, *, local: bool = False) -> Any:
        """A boto3 client of ``service`` on the emulator (``local``: through :attr:`local_url`)."""
        import boto3
        from botocore.config import Config

        region = region or self.region
        url = self.local_url if local else self.endpoint_url
        key = (service, region, url)
        with self._clients_lock:
            if key not in self._clients:
                config = Config(retries={"max_attempts": 3, "mode": "standard"})
                if service == "s3":
                    config = config.merge(Config(s3={"addressing_style": "path"}, signature_version="s3v4"))
                self._clients[key] = boto3.session.Session().client(
                    service,
                    region_name=region,
                    endpoint_url=url,
                    aws_access_key_id=ACCESS_KEY,
                    aws_secret_access_key=SECRET_KEY,
                    config=config,
                )
            return self._clients[key]

    # ------------------------------------------------------------- lifecycle

    def __enter__(self) -> AwsEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> AwsEmulator:
        """Listen, and start the task poller and the log shipper."""
        try:
            from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        except ImportError as exc:
            raise MissingDependency(
                f'the AWS emulator needs moto\'s server: pip install "moto[server]>=5" ({exc})'
            ) from None

        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env(max_pool_size=128)
                self._docker.ping()
            except Exception as exc:
                raise EngineNotRunning(f"the ECS emulator needs a Docker engine: {exc}") from None
        self.reachability = plan(self._docker, self.host, self.network, self._container_host)
        sockets = _listen_all(self.reachability.bind, self.port)
        self.port = sockets[0].getsockname()[1]

        self._logs = LogShipper(lambda region: self.client("logs", region, local=True), self._log_interval)
        # Loopback URLs of this emulator (presigned by a client configured with 127.0.0.1, say) would
        # point a container at itself: they are rewritten to the endpoint containers reach. This works
        # because moto checks neither the signature nor the Host of presigned URLs.
        rewrites = {f"http://{loopback}:{self.port}": self.endpoint_url for loopback in ("127.0.0.1", "localhost")}
        self._tasks = DockerTasks(
            self.backend,
            self._docker,
            self._logs,
            network=self.network,
            rewrites={k: v for k, v in rewrites.items() if k != v},
            extra_hosts=self.reachability.extra_hosts,
            poll_interval=self._poll_interval,
            instance=self.instance,
            # As ECS with the task execution role: read SSM / Secrets Manager when a task starts.
            aws_client=lambda service, region: self.client(service, region, local=True),
        )
        self.backend.launcher = self._tasks
        app = Dispatcher(EcsApi(self.backend, self.region), DomainDispatcherApplication(create_backend_app))
        for sock in sockets:
            address = sock.getsockname()[0]
            server = make_server(address, self.port, app, threaded=True, request_handler=_Handler, fd=sock.fileno())
            sock.close()  # the server holds its own duplicate
            thread = threading.Thread(
                target=server.serve_forever, name=f"aws-emulator-{address}", kwargs={"poll_interval": 0.2}, daemon=True
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self._logs.start()
        self._tasks.start()
        log.info("AWS emulator on %s (listening on %s)", self.endpoint_url, ", ".join(self.reachability.bind))
        return self

    def stop(self) -> None:
        """Remove the containers, ship the last logs, stop serving."""
        if self._tasks is not None:
            self._tasks.close()
            self._tasks = None
        if self._logs is not None:
            self._logs.close()
            self._logs = None
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._own_docker and self._docker is not None:
            self._docker.close()
            self._docker = None

    # ------------------------------------------------------------- faults

    def inject_fault(
        self,
        cluster: str | None,
        *,
        reason: str | None = None,
        code: str | None = None,
        message: str = "",
        detail: str | None = None,
        times: int | None = 1,
        status: int = 400,
    ) -> None:
        """Answer the next ``times`` RunTask calls on ``cluster`` (None: any) as ECS refuses them (see :mod:`.faults`).

        ``reason``: no task and a ``failures`` entry (capacity, quota); ``code``: an API error (ThrottlingException;
        ``ServiceUnavailable`` with ``status=503``).
        """
        from mayfly.providers.ecs.emulator.faults import Fault

        if (reason is None) == (code is None):
            raise ValueError("give exactly one of reason (a RunTask failure) or code (an API error)")
        self.backend.faults.add(Fault(cluster, reason, detail, code, message, times, status=status))

    def inject_missing_image(self, cluster: str | None, *, times: int | None = 1) -> None:
        """The next ``times`` tasks started on ``cluster`` (None: any) stop as ECS's do when their image is not in
        the registry (``CannotPullContainerError: ... not found``), whatever the local engine holds."""
        from mayfly.providers.ecs.emulator.faults import PULL, Fault

        self.backend.faults.add(Fault(cluster, times=times, action=PULL))

    def clear_faults(self, cluster: str | None = None) -> None:
        """Drop the injected faults not used up yet (of one cluster, or all)."""
        self.backend.faults.clear(cluster)

    # ------------------------------------------------------------- targets

    def bootstrap_target(self, name: str, region: str | None = None) -> dict[str, Any]:
        """Create the resources of target ``name`` and return its ``ecs`` settings (see :mod:`.bootstrap`)."""
        from mayfly.providers.ecs.emulator.bootstrap import bootstrap_target

        region = region or self.region
        return bootstrap_target(lambda service: self.client(service, region), self.endpoint_url, name, region)
