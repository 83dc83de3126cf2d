"""Fixtures for runtime tests: both runtimes built once per session, a hardened runner, an HTTP server."""

from __future__ import annotations

import http.server
import ipaddress
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mayfly.runtimes import BuiltImage, get_runtime, image_status

TASK_USER = "10001:10001"


def _built(client: Any, name: str) -> BuiltImage:
    built = image_status(get_runtime(name), client)
    assert built is not None, f"{name} was not built"
    return built


@pytest.fixture(scope="session")
def shell_image(docker_client: Any, runtime_images: dict[str, str]) -> BuiltImage:
    """The shell runtime, built offline from Debian packages once per session (tests/conftest.py)."""
    return _built(docker_client, "shell")


@pytest.fixture(scope="session")
def python_image(docker_client: Any, runtime_images: dict[str, str]) -> BuiltImage:
    """The python-3.11 runtime, built offline from Debian packages once per session (tests/conftest.py)."""
    return _built(docker_client, "python-3.11")


@dataclass
class Ran:
    """What a finished container left behind."""

    code: int
    stdout: str
    stderr: str


class Hardened:
    """Runs containers with the task hardening of the Docker provider."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def start(
        self,
        image: str,
        command: list[str],
        *,
        env: Mapping[str, str] | None = None,
        mayfly_dir: Path | None = None,
        network: str = "none",
        writable_mayfly: bool = True,
    ) -> Any:
        """Start a container: user 10001, read-only root, tmpfs /tmp, no capabilities, no-new-privileges.

        ``mayfly_dir`` is bind-mounted at /mayfly (the local placement); without it
        /mayfly and /mayfly/task are tmpfs owned by the task user (a read-only root
        with nothing placed, as in the fetch path), unless ``writable_mayfly`` is
        false: then the image's own (read-only) /mayfly shows.
        """
        tmpfs = {"/tmp": "rw,nosuid,nodev,size=64m"}
        volumes = {}
        if mayfly_dir is None and writable_mayfly:
            tmpfs["/mayfly"] = "uid=10001,gid=10001,mode=755"
            tmpfs["/mayfly/task"] = "uid=10001,gid=10001,mode=755"
        elif mayfly_dir is not None:
            volumes[str(mayfly_dir)] = {"bind": "/mayfly", "mode": "rw"}
        return self.client.containers.run(
            image,
            command,
            detach=True,
            user=TASK_USER,
            read_only=True,
            tmpfs=tmpfs,
            volumes=volumes,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            network_mode=network,
            pids_limit=64,
            mem_limit="256m",
            environment=dict(env or {}),
            labels={"mayfly.test": "runtimes"},
        )

    @staticmethod
    def finish(container: Any) -> Ran:
        """Wait for the container, collect its output and remove it."""
        try:
            code = container.wait(timeout=120)["StatusCode"]
            out = container.logs(stdout=True, stderr=False).decode()
            err = container.logs(stdout=False, stderr=True).decode()
            return Ran(code, out, err)
        finally:
            container.remove(force=True)

    def run(self, image: str, command: list[str], **kwargs: Any) -> Ran:
        """Run a hardened container to completion."""
        return self.finish(self.start(image, command, **kwargs))

    @staticmethod
    def wait_for_output(container: Any, text: str, limit: float = 60.0) -> None:
        """Poll the container's log until ``text`` shows up (a readiness wait, not a timing assertion)."""
        deadline = time.monotonic() + limit
        while text not in container.logs().decode():
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} never appeared in the container's output")
            time.sleep(0.05)


@pytest.fixture(scope="session")
def hardened(docker_client: Any) -> Hardened:
    return Hardened(docker_client)


@dataclass
class FileServer:
    """An HTTP server on the host that containers on the bridge network reach."""

    base_url: str
    files: dict[str, bytes] = field(default_factory=dict)
    puts: dict[str, bytes] = field(default_factory=dict)
    gets: list[str] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@pytest.fixture
def file_server(docker_client: Any) -> Iterator[FileServer]:
    """Serves ``files`` on GET, records bodies of PUT; bound to the docker bridge's gateway."""
    ipam = docker_client.networks.get("bridge").attrs["IPAM"]["Config"][0]
    # The default bridge often reports no gateway; it is then the subnet's first address (docker0).
    gateway = ipam.get("Gateway") or str(ipaddress.ip_network(ipam["Subnet"])[1])
    state = FileServer(base_url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.gets.append(self.path)
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            state.puts[self.path] = self.rfile.read(length)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer((gateway, 0), Handler)
    state.base_url = f"http://{gateway}:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
