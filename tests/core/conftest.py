"""Fixtures for core tests: a Mayfly on a fresh home, with a tiny runtime catalog of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.common import open_mayfly
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo, RuntimeResolver
from mayfly.core.config import Home
from mayfly.core.errors import RuntimeNotFound
from mayfly.core.store import Store

#: Runtimes core tests know: the busybox test image stands in for a real runtime.
RUNTIMES = {
    "shell": RuntimeInfo("shell", "mayfly-test/busybox:latest", "sh main.sh"),
    "python-3.11": RuntimeInfo("python-3.11", "mayfly/runtime-python-3.11:latest", "python3 main.py"),
}


def resolve(name: str) -> RuntimeInfo:
    try:
        return RUNTIMES[name]
    except KeyError:
        raise RuntimeNotFound(f"unknown runtime {name!r}") from None


@pytest.fixture
def resolver() -> RuntimeResolver:
    return resolve


@pytest.fixture
def mf(home: Path) -> Iterator[Mayfly]:
    app = Mayfly(Home(home), resolve)
    yield app
    app.close()


@pytest.fixture
def project(mf: Mayfly) -> str:
    return mf.project_id()


@pytest.fixture
def hello_dir(tmp_path: Path) -> Path:
    d = tmp_path / "hello"
    d.mkdir()
    (d / "main.sh").write_text('echo "hello $(cat /mayfly/payload.json)"\n')
    return d


@pytest.fixture
def null_on_pg(pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Mayfly, str]]:
    """A Mayfly on PostgreSQL with the null target (its queues and blobs in the store), and a project
    whose code ``noop`` runs there: (mayfly, project id)."""
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = open_mayfly(tmp_path / "home")
    mf.targets.add("null", "null", {})
    pid = mf.project_id()
    mf.codes.register(pid, "noop", "none", CodeOptions(command="true", target="null"))
    yield mf, pid
    mf.close()


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Store]:
    """A store on a fresh PostgreSQL database of this test's own."""
    store = Store(pg_url)
    yield store
    store.close()
