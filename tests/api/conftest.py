"""A real ``mayfly server`` process on 127.0.0.1 for API tests: start one on a fresh home, stop it after."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.config import Home


@dataclass(frozen=True)
class Server:
    """A running ``mayfly server`` and the credentials of one project on it."""

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
        """IronWorker's header; the native API takes it as well as ``Bearer``."""
        return {"Authorization": f"OAuth {self.token}"}

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
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


@contextmanager
def running_server(root: Path, project: str, env: dict[str, str] | None = None) -> Iterator[Server]:
    """``mayfly server --host 127.0.0.1 --port P`` on a fresh home under ``root``, with ``project`` and a token."""
    home = root / "home"
    mf = Mayfly(Home(home), resolve_runtime)
    proj = mf.projects.ensure(project)
    _, token = mf.tokens.create(proj.id, name=f"{project}-tests")
    mf.close()
    port = free_port()
    penv = {**os.environ, "MAYFLY_HOME": str(home), **(env or {})}
    penv.pop("MAYFLY_DATABASE_URL", None)
    penv.pop("MAYFLY_URL", None)
    log = root / "server.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "server", "--host", "127.0.0.1", "--port", str(port)],
            env=penv,
            stdout=err,
            stderr=err,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(proc, url, log)
        yield Server(url, port, proj.id, token, home)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@pytest.fixture(scope="session")
def start_server() -> Callable[..., AbstractContextManager[Server]]:
    """:func:`running_server`, for tests in other folders (conftest modules are not importable by name)."""
    return running_server
