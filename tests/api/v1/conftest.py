"""Fixtures of the ``/v1`` tests: an in-process app with two projects, and helpers shared by fixture."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mayfly.api.app import create_app
from mayfly.core.app import Mayfly
from mayfly.core.codes import RuntimeInfo
from mayfly.core.config import Home

#: The image every code of the in-process app names (nothing runs it: no runner is started there).
IMAGE = "mayfly-test/busybox:latest"


def _any_runtime(name: str) -> RuntimeInfo:
    return RuntimeInfo(name=name, image=IMAGE, default_command="sh main.sh")


def make_zip(files: dict[str, str]) -> bytes:
    """A code package holding ``files``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


@dataclass
class TwoProjects:
    """One home with projects ``alpha`` and ``beta``, a token each, and a client of the app serving it."""

    mf: Mayfly
    client: TestClient
    a: str
    b: str
    token_a: str
    token_b: str

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    @property
    def as_a(self) -> dict[str, str]:
        return self.headers(self.token_a)

    @property
    def as_b(self) -> dict[str, str]:
        return self.headers(self.token_b)


@pytest.fixture
def two(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TwoProjects]:
    """:class:`TwoProjects` over FastAPI's TestClient (no server process, no runner)."""
    monkeypatch.delenv("MAYFLY_API_RATE", raising=False)
    monkeypatch.delenv("MAYFLY_API_BURST", raising=False)
    mf = Mayfly(Home(tmp_path / "home"), _any_runtime)
    a = mf.projects.create("alpha").id
    b = mf.projects.create("beta").id
    _, token_a = mf.tokens.create(a)
    _, token_b = mf.tokens.create(b)
    with TestClient(create_app(mf), raise_server_exceptions=False) as client:
        yield TwoProjects(mf, client, a, b, token_a, token_b)
    mf.close()


@pytest.fixture(scope="session")
def zip_of() -> Callable[[dict[str, str]], bytes]:
    """:func:`make_zip`, for test modules (conftest modules are not importable by name)."""
    return make_zip
