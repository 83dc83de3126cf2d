"""Fixtures for core tests: a Mayfly on a fresh home, with a tiny runtime catalog of its own."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from bench.common import open_mayfly
from mayfly.core import hookimpl
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo, RuntimeResolver
from mayfly.core.config import Home
from mayfly.core.errors import RuntimeNotFound
from mayfly.core.plugins import ProviderRegistry, build_plugins
from mayfly.core.provider import Provider
from mayfly.core.serving import Serving
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


class _ProviderPlugin:
    """Registers one provider class a test defines."""

    __name__ = "test-provider"

    def __init__(self, provider: type[Provider[Any]]) -> None:
        self.provider = provider

    @hookimpl
    def mayfly_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(self.provider)


@pytest.fixture
def serve_provider(home: Path) -> Iterator[Callable[..., Mayfly]]:
    """A target on a provider class the test defines, served by a control plane and a runner.

    One code per name in ``codes``, each a ready image with no retries.
    """
    opened: list[tuple[Mayfly, Serving]] = []

    def serve(provider: type[Provider[Any]], codes: Sequence[str], capacity: int = 8) -> Mayfly:
        mf = Mayfly(Home(home), lambda n: None, plugins=build_plugins((_ProviderPlugin(provider),)))  # type: ignore[arg-type,return-value]
        mf.targets.add(provider.name, provider.name, {}, capacity=capacity)
        pid = mf.project_id()
        for name in codes:
            mf.codes.register(pid, name, "img", CodeOptions(command="true", target=provider.name, retries=0))
        serving = Serving(mf, [provider.name])
        serving.start()
        opened.append((mf, serving))
        return mf

    yield serve
    for mf, serving in reversed(opened):
        serving.stop()
        mf.close()
