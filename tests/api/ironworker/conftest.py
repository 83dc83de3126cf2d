"""A real ``mayfly server`` on 127.0.0.1 with a project and token, and IronWorker's own Python client pointed at it."""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from iron_worker import IronWorker

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.config import Home

#: What ``import iron_worker`` needs inside the container: the client and its dependencies, pure Python only.
IRON_WORKER_MODULES = (
    "iron_worker",
    "iron_core",
    "requests",
    "urllib3",
    "idna",
    "charset_normalizer",
    "certifi",
    "dateutil",
    "six",
)

#: An IronWorker worker program, unchanged: it reads its payload and task id the IronWorker way.
WORKER = """\
import json

from iron_worker import IronWorker

print("payload:", json.dumps(IronWorker.payload()))
print("task:", IronWorker.task_id())
"""


@dataclass(frozen=True)
class Server:
    """A running ``mayfly server`` and the credentials of its ``iw`` project."""

    url: str
    port: int
    project_id: str
    token: str
    home: Path

    def path(self, rest: str) -> str:
        """The URL of an IronWorker API path of the project, e.g. ``path("tasks")``."""
        return f"{self.url}/2/projects/{self.project_id}/{rest}"

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"OAuth {self.token}"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_until_serving(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mayfly server exited with {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"mayfly server did not answer on {url}:\n{log.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, runtime_images: dict[str, str]) -> Iterator[Server]:
    """``mayfly server --host 127.0.0.1 --port P`` on a fresh home with project ``iw`` and a token for it."""
    root = tmp_path_factory.mktemp("ironworker")
    home = root / "home"
    mf = Mayfly(Home(home), resolve_runtime)
    project = mf.projects.ensure("iw")
    _, token = mf.tokens.create(project.id, name="ironworker-tests")
    mf.close()
    port = free_port()
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    env.pop("MAYFLY_DATABASE_URL", None)
    log = root / "server.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "server", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=err,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(proc, url, log)
        yield Server(url, port, project.id, token, home)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="module")
def iw(server: Server) -> IronWorker:
    """IronWorker's Python client, configured for the server by its own arguments."""
    return IronWorker(
        token=server.token,
        project_id=server.project_id,
        host="127.0.0.1",
        port=server.port,
        protocol="http",
        api_version=2,
    )


def _add_module(zf: zipfile.ZipFile, name: str) -> None:
    module = importlib.import_module(name)
    path = Path(str(module.__file__))
    if path.name != "__init__.py":
        zf.write(path, path.name)
        return
    for file in sorted(path.parent.rglob("*.py")):
        if "__pycache__" not in file.parts:
            zf.write(file, f"{name}/{file.relative_to(path.parent).as_posix()}")


@pytest.fixture(scope="module")
def hello_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The worker program plus ``iron_worker`` and what it imports, as a worker shipped them to IronWorker."""
    path = tmp_path_factory.mktemp("code") / "hello.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("worker.py", WORKER)
        for module in IRON_WORKER_MODULES:
            _add_module(zf, module)
    return path
