"""Builds that do not come from the catalog's offline path: ``--base`` images and failures."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import docker
import pytest

from mayfly.core.errors import EngineNotRunning, RuntimeBuildFailed
from mayfly.runtimes import BuiltImage, Runtime, build, get_runtime, image_status
from mayfly.runtimes.image import boot_sources, layer_digest

BOOT = "/usr/local/bin/mayfly-boot"


@pytest.fixture
def scratch_runtime(docker_client: Any) -> Iterator[Runtime]:
    """A copy of python-3.11 under a name of its own, so its builds never replace the session's images."""
    runtime = dataclasses.replace(get_runtime("python-3.11"), name="test-base-build")
    yield runtime
    for ref in (runtime.image, runtime.latest):
        with contextlib.suppress(docker.errors.ImageNotFound):
            docker_client.images.remove(ref)


@pytest.mark.docker
def test_a_base_image_with_python_gets_the_boot_agent(
    docker_client: Any, hardened: Any, python_image: BuiltImage, scratch_runtime: Runtime, tmp_path: Path
) -> None:
    messages: list[str] = []
    built = build(scratch_runtime, docker_client, tmp_path, base=python_image.tag, progress=messages.append)
    assert built.tag == "mayfly/runtime-test-base-build:1"
    assert image_status(scratch_runtime, docker_client) == built
    labels = docker_client.images.get(built.tag).attrs["Config"]["Labels"]
    assert labels["mayfly.base"] == python_image.tag
    assert labels["mayfly.runtime"] == "test-base-build"
    assert messages[-1].startswith("built mayfly/runtime-test-base-build:1")
    assert not (tmp_path / "debs").exists()  # nothing was fetched with apt
    assert labels["mayfly.layer.sha256"] == layer_digest(boot_sources())
    code = "python3 -c 'import sys; print(sys.version_info[:2])'; id -u"
    ran = hardened.run(built.tag, [BOOT, code], env={"MAYFLY_TASK_ID": "t"}, writable_mayfly=False)
    assert (ran.code, ran.stdout) == (0, "(3, 11)\n10001\n"), ran.stderr
    # The unpacker in the image is the project's own, copied at build time.
    ran = hardened.run(built.tag, ["cat", "/usr/local/lib/mayfly/mayfly_archive.py"], writable_mayfly=False)
    assert ran.stdout == (files("mayfly.core") / "archive.py").read_text()


@pytest.mark.docker
def test_a_base_image_without_python_is_refused_with_the_reason(
    docker_client: Any, busybox_image: str, scratch_runtime: Runtime, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeBuildFailed, match="python3") as failure:
        build(scratch_runtime, docker_client, tmp_path, base=busybox_image)
    assert "\n" not in failure.value.message
    assert image_status(scratch_runtime, docker_client) is None


@pytest.mark.docker
def test_a_base_image_that_is_neither_local_nor_pullable_fails_clearly(
    docker_client: Any, scratch_runtime: Runtime, tmp_path: Path
) -> None:
    with pytest.raises(RuntimeBuildFailed, match="mayfly-test/no-such-base"):
        build(scratch_runtime, docker_client, tmp_path, base="mayfly-test/no-such-base:1")


@pytest.mark.docker
def test_an_offline_build_without_apt_points_to_base(
    docker_client: Any, scratch_runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no apt-cache, no apt-get, no dpkg-deb
    with pytest.raises(RuntimeBuildFailed, match="--base") as failure:
        build(scratch_runtime, docker_client, tmp_path)
    assert failure.value.code == "runtime_build_failed"


def test_no_engine_is_engine_not_running(tmp_path: Path) -> None:
    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-docker.sock", version="1.41")
    with pytest.raises(EngineNotRunning, match="Docker engine is not running"):
        build(get_runtime("shell"), client, tmp_path)
    with pytest.raises(EngineNotRunning):
        image_status(get_runtime("shell"), client)
