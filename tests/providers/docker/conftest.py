"""Fixtures of the Docker provider's tests: providers with a home of their own, and a bare image."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.provider import ProviderContext
from mayfly.providers.docker import DockerProvider, DockerSettings

#: Tagged per test session: sessions sharing one engine (parallel checkouts) must not remove each other's.
BARE_IMAGE = f"mayfly-test/busybox-bare:{os.getpid()}"

ProviderFactory = Callable[..., DockerProvider]


def make_context(root: Path, home_id: str | None = None) -> ProviderContext:
    """A provider context under ``root`` with a home id no other test shares."""
    return ProviderContext(
        blobs=LocalBlobStore(root / "blobs"),
        work_dir=root / "run" / "local",
        home_id=home_id or f"test-{uuid.uuid4().hex[:12]}",
        target="local",
    )


@pytest.fixture
def make_provider(tmp_path: Path, docker_client: Any) -> Iterator[ProviderFactory]:
    """Build DockerProviders from settings; every container of their homes is removed at teardown."""
    created: list[DockerProvider] = []

    def factory(**settings: Any) -> DockerProvider:
        provider = DockerProvider(DockerSettings(**settings), make_context(tmp_path))
        created.append(provider)
        return provider

    yield factory
    for provider in created:
        labels = [f"mayfly.home={provider.context.home_id}"]
        for c in docker_client.api.containers(all=True, filters={"label": labels}):
            docker_client.api.remove_container(c["Id"], v=True, force=True)
        provider.close()


@pytest.fixture(scope="session")
def bare_image(docker_client: Any, busybox_image: str) -> Iterator[str]:
    """The busybox image without /mayfly, like a registered image that knows nothing of Mayfly."""
    container = docker_client.containers.create(busybox_image, ["rm", "-rf", "/mayfly"], user="0")
    try:
        container.start()
        assert container.wait()["StatusCode"] == 0
        repo, tag = BARE_IMAGE.rsplit(":", 1)
        container.commit(repository=repo, tag=tag, changes=["WORKDIR /"])
    finally:
        container.remove(force=True)
    yield BARE_IMAGE
    docker_client.images.remove(BARE_IMAGE, force=True)
