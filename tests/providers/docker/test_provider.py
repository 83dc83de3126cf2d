"""Docker-only behaviour of the provider: settings, handles, error translation, task files, leftovers."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, BinaryIO

import docker.errors
import pydantic
import pytest

from mayfly.core.blobs import BlobStore
from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.errors import InvalidInput, LaunchFailed, TaskContainerNotFound
from mayfly.core.messages import container_name
from mayfly.core.models import CodeRef, ContainerStatus, LaunchSpec
from mayfly.core.plugins import build_plugins
from mayfly.core.provider import ProviderContext
from mayfly.providers.docker import DockerProvider, DockerSettings
from mayfly.providers.docker.files import build_task_dir
from mayfly.providers.docker.provider import container_state, make_handle, parse_handle
from mayfly.testing import make_code

ProviderFactory = Callable[..., DockerProvider]
TASK_UID = 10001

docker_only = pytest.mark.docker


def spec_for(image: str, command: str, task_id: str, **changes: Any) -> LaunchSpec:
    spec = LaunchSpec(
        name=container_name(task_id, 1),
        task_id=task_id,
        attempt=1,
        project="p",
        image=image,
        command=("/bin/sh", "-c", command),
        env={},
        code=None,
        payload=b'{"n": 1}',
        config=b'{"c": 2}',
        cpu=0.5,
        memory_mb=64,
        timeout=60,
        network="none",
    )
    return replace(spec, **changes)


def containers_named(docker_client: Any, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = docker_client.api.containers(all=True, filters={"name": f"^/{name}$"})
    return found


def zip_of(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            zf.writestr(info, data)
    return buf.getvalue()


# ---------------------------------------------------------------- declarations (no engine needed)


def test_registered_through_the_entry_point() -> None:
    assert build_plugins().registry.get("docker") is DockerProvider


def test_settings_defaults_are_the_hardened_baseline() -> None:
    s = DockerSettings()
    assert (s.base_url, s.user, s.pids_limit, s.tmpfs_size) == (None, "10001:10001", 256, "64m")
    assert (s.placement, s.init, s.runtime, s.log_max_size) == ("bind", True, None, "20m")
    assert s.numeric_user() == (10001, 10001)
    assert DockerSettings(user="mayfly").numeric_user() is None
    schema = DockerSettings.model_json_schema()["properties"]
    assert set(schema) == {
        "base_url",
        "user",
        "pids_limit",
        "tmpfs_size",
        "placement",
        "init",
        "runtime",
        "log_max_size",
    }
    assert all(prop.get("description") for prop in schema.values())


@pytest.mark.parametrize(
    "bad",
    [
        {"user": "0:0"},
        {"user": "root"},
        {"user": "0"},
        {"pids_limit": 0},
        {"tmpfs_size": "lots"},
        {"placement": "copy"},
        {"unknown": 1},
    ],
)
def test_settings_reject_unsafe_or_unknown_values(bad: dict[str, Any]) -> None:
    with pytest.raises(pydantic.ValidationError):
        DockerSettings(**bad)


def test_handles_carry_the_name_and_the_id() -> None:
    handle = make_handle("mayfly-t1-2", "abc123")
    assert handle == "mayfly-t1-2::abc123"
    assert parse_handle(handle) == ("abc123", "mayfly-t1-2")
    assert parse_handle("abc123") == ("abc123", None)
    assert parse_handle("../../etc::abc") == ("abc", None)


def test_container_state_from_inspect() -> None:
    assert container_state({"State": {"Status": "created"}}).status is ContainerStatus.PENDING
    running = container_state({"State": {"Status": "running", "StartedAt": "2024-05-01T12:00:00.123456789Z"}})
    assert running.status is ContainerStatus.RUNNING
    assert running.started_at == pytest.approx(1714564800.123456)
    oom = container_state(
        {
            "State": {
                "Status": "exited",
                "ExitCode": 137,
                "OOMKilled": True,
                "StartedAt": "2024-05-01T12:00:00Z",
                "FinishedAt": "2024-05-01T12:00:02.5Z",
            },
            "HostConfig": {"Memory": 32 << 20},
        }
    )
    assert (oom.status, oom.exit_code, oom.oom_killed) == (ContainerStatus.EXITED, 137, True)
    assert oom.finished_at is not None
    assert oom.started_at is not None
    assert oom.finished_at - oom.started_at == pytest.approx(2.5)
    assert "32 MiB" in oom.detail
    never = container_state(
        {
            "State": {
                "Status": "exited",
                "ExitCode": 127,
                "StartedAt": "0001-01-01T00:00:00Z",
                "Error": "exec: not found",
            }
        }
    )
    assert (never.started_at, never.detail) == (None, "exec: not found")
    # The engine may record StartedAt after FinishedAt for a task that exits at once.
    quick = container_state(
        {
            "State": {
                "Status": "exited",
                "ExitCode": 0,
                "StartedAt": "2024-05-01T12:00:00.2Z",
                "FinishedAt": "2024-05-01T12:00:00.1Z",
            }
        }
    )
    assert quick.started_at == quick.finished_at


def test_without_root_the_task_dir_is_writable_for_everyone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    blobs = LocalBlobStore(tmp_path / "blobs")
    data = zip_of({"main.sh": b"echo hi\n"})
    sha = hashlib.sha256(data).hexdigest()
    blobs.put(f"codes/{sha}.zip", data)
    spec = spec_for("img", "true", "t1", code=CodeRef(f"codes/{sha}.zip", sha, len(data)))
    dest = tmp_path / "run" / spec.name
    build_task_dir(dest, spec, blobs, (TASK_UID, TASK_UID))
    assert stat.S_IMODE(dest.stat().st_mode) == 0o777
    assert stat.S_IMODE((dest / "task").stat().st_mode) == 0o777
    assert stat.S_IMODE((dest / "result.json").stat().st_mode) == 0o666
    assert (dest / "task" / "main.sh").read_bytes() == b"echo hi\n"
    assert (dest / "payload.json").read_bytes() == b'{"n": 1}'


# ---------------------------------------------------------------- launch failures


@docker_only
def test_a_missing_image_is_not_retryable(make_provider: ProviderFactory, docker_client: Any) -> None:
    provider = make_provider()
    spec = spec_for("mayfly-test/no-such-image:1", "true", "noimage")
    with pytest.raises(LaunchFailed, match="'mayfly-test/no-such-image:1' is not on the Docker engine") as info:
        provider.launch(spec)
    assert info.value.retryable is False
    assert info.value.kind == "image"  # another target's registry may have it: a fallback target is tried
    assert containers_named(docker_client, spec.name) == []
    assert not (provider.context.work_dir / spec.name).exists()


@docker_only
def test_a_corrupt_code_package_is_not_extracted(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    code = make_code(provider, {"main.sh": b"echo hi\n"})
    spec = spec_for(busybox_image, "true", "corrupt", code=replace(code, sha256="0" * 64))
    with pytest.raises(LaunchFailed, match="corrupt: sha256") as info:
        provider.launch(spec)
    assert info.value.retryable is False
    assert containers_named(docker_client, spec.name) == []
    assert list(provider.context.work_dir.iterdir()) == []


@docker_only
def test_a_missing_code_package_is_not_retryable(make_provider: ProviderFactory, busybox_image: str) -> None:
    spec = spec_for(busybox_image, "true", "nocode", code=CodeRef("codes/" + "a" * 64 + ".zip", "a" * 64, 10))
    with pytest.raises(LaunchFailed, match="missing from the target's blob store") as info:
        make_provider().launch(spec)
    assert info.value.retryable is False


@docker_only
def test_an_unsafe_code_package_is_rejected(make_provider: ProviderFactory, busybox_image: str) -> None:
    provider = make_provider()
    data = zip_of({"ok.txt": b"x", "../escape.txt": b"boom"})
    sha = hashlib.sha256(data).hexdigest()
    provider.context.blobs.put(f"codes/{sha}.zip", data)
    spec = spec_for(busybox_image, "true", "zipslip", code=CodeRef(f"codes/{sha}.zip", sha, len(data)))
    with pytest.raises(LaunchFailed, match="was rejected") as info:
        provider.launch(spec)
    assert info.value.retryable is False
    assert not (provider.context.work_dir / "escape.txt").exists()
    assert list(provider.context.work_dir.iterdir()) == []


@docker_only
def test_a_missing_executable_fails_the_launch_and_leaves_nothing(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider(init=False)
    spec = replace(spec_for(busybox_image, "", "noexec"), command=("/no/such/program",))
    with pytest.raises(LaunchFailed, match="no/such/program") as info:
        provider.launch(spec)
    assert info.value.retryable is False
    assert containers_named(docker_client, spec.name) == []
    assert not (provider.context.work_dir / spec.name).exists()


@docker_only
def test_with_docker_init_a_missing_executable_exits_127(make_provider: ProviderFactory, busybox_image: str) -> None:
    provider = make_provider()
    spec = replace(spec_for(busybox_image, "", "noexec"), command=("/no/such/program",))
    handle = provider.launch(spec).handle
    assert provider.wait(handle, 60).exit_code == 127
    assert b"/no/such/program" in b"".join(provider.logs(handle))


@docker_only
def test_a_memory_limit_below_the_engines_minimum_is_not_retryable(
    make_provider: ProviderFactory, busybox_image: str
) -> None:
    with pytest.raises(LaunchFailed) as info:
        make_provider().launch(spec_for(busybox_image, "true", "tinymem", memory_mb=1))
    assert info.value.retryable is False


@docker_only
@pytest.mark.parametrize("network", ["host", "container:abc"])
def test_host_namespaces_are_refused(make_provider: ProviderFactory, busybox_image: str, network: str) -> None:
    with pytest.raises(LaunchFailed, match="namespace") as info:
        make_provider().launch(spec_for(busybox_image, "true", "hostnet", network=network))
    assert info.value.retryable is False


# ---------------------------------------------------------------- idempotency and leftovers


@docker_only
def test_relaunch_leaves_exactly_one_container_in_the_engine(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    spec = spec_for(busybox_image, "sleep 300", "once")
    first, second = provider.launch(spec), provider.launch(spec)
    assert (first.existing, second.existing) == (False, True)
    assert first.handle == second.handle
    assert provider.find(spec.name) == second
    assert len(containers_named(docker_client, spec.name)) == 1


@docker_only
def test_a_container_of_another_home_is_never_adopted(make_provider: ProviderFactory, busybox_image: str) -> None:
    mine, theirs = make_provider(), make_provider()
    spec = spec_for(busybox_image, "sleep 300", "samename")
    theirs.launch(spec)
    assert mine.find(spec.name) is None
    with pytest.raises(LaunchFailed, match="does not belong to this Mayfly home") as info:
        mine.launch(spec)
    assert info.value.retryable is False
    assert [a.task_id for a in mine.reattach()] == []


def _create_never_started(provider: DockerProvider, docker_client: Any, spec: LaunchSpec) -> str:
    """What a runner crash between create and start leaves behind."""
    labels = {
        "mayfly.home": provider.context.home_id,
        "mayfly.target": "local",
        "mayfly.task": spec.task_id,
        "mayfly.attempt": "1",
    }
    created = docker_client.api.create_container(spec.image, ["true"], name=spec.name, labels=labels)
    return make_handle(spec.name, created["Id"])


@docker_only
def test_a_never_started_container_is_replaced_by_launch(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    spec = spec_for(busybox_image, "echo fresh", "leftover")
    stale = _create_never_started(provider, docker_client, spec)
    assert provider.state(stale).status is ContainerStatus.PENDING
    result = provider.launch(spec)
    assert not result.existing
    assert result.handle != stale
    assert provider.wait(result.handle, 60).exit_code == 0
    assert b"".join(provider.logs(result.handle)) == b"fresh\n"
    assert len(containers_named(docker_client, spec.name)) == 1


@docker_only
def test_cancelling_a_never_started_container_removes_it(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    stale = _create_never_started(provider, docker_client, spec_for(busybox_image, "true", "neverran"))
    provider.cancel(stale, 0)
    assert provider.state(stale).status is ContainerStatus.MISSING


@docker_only
def test_a_missing_container_is_reported_as_such(make_provider: ProviderFactory, busybox_image: str) -> None:
    provider = make_provider()
    gone = make_handle("mayfly-gone-1", "0" * 64)
    assert provider.state(gone).status is ContainerStatus.MISSING
    assert provider.wait(gone, 5).status is ContainerStatus.MISSING
    provider.remove(gone)
    with pytest.raises(TaskContainerNotFound):
        list(provider.logs(gone))
    with pytest.raises(TaskContainerNotFound):
        provider.cancel(gone, 1)
    with pytest.raises(TaskContainerNotFound):
        provider.result(gone, 100)


# ---------------------------------------------------------------- task files


@docker_only
def test_the_bind_directory_belongs_to_the_task_user_and_goes_with_the_container(
    make_provider: ProviderFactory, busybox_image: str
) -> None:
    provider = make_provider()
    spec = spec_for(busybox_image, "sleep 300", "binddir")
    spec = replace(spec, code=make_code(provider, {"main.sh": b"echo hi\n"}))
    handle = provider.launch(spec).handle
    task_dir = provider.context.work_dir / spec.name
    assert sorted(p.name for p in task_dir.iterdir()) == ["config.json", "payload.json", "result.json", "task"]
    assert (task_dir / "payload.json").read_bytes() == b'{"n": 1}'
    assert (task_dir / "task" / "main.sh").read_bytes() == b"echo hi\n"
    for path in (task_dir, *task_dir.rglob("*")):
        assert (path.stat().st_uid, path.stat().st_gid) == (TASK_UID, TASK_UID), path
    provider.remove(handle)
    assert not task_dir.exists()
    assert list(provider.context.work_dir.iterdir()) == []


@docker_only
def test_the_archive_volume_goes_with_the_container(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider(placement="archive")
    spec = spec_for(busybox_image, "true", "volume")
    handle = provider.launch(spec).handle
    (mount,) = docker_client.api.inspect_container(parse_handle(handle)[0])["Mounts"]
    assert mount["Type"] == "volume"
    assert list(provider.context.work_dir.iterdir()) == []  # nothing stays on the runner's host
    provider.remove(handle)
    with pytest.raises(docker.errors.NotFound):
        docker_client.api.inspect_volume(mount["Name"])


@docker_only
@pytest.mark.parametrize("placement", ["bind", "archive"])
@pytest.mark.parametrize(
    ("command", "reason"),
    [
        ("busybox ln -sf /etc/passwd /mayfly/result.json", "link"),
        ("rm /mayfly/result.json && busybox mkfifo /mayfly/result.json", "not a regular file"),
    ],
    ids=["symlink", "fifo"],
)
def test_a_result_that_is_not_a_regular_file_is_refused(
    make_provider: ProviderFactory, busybox_image: str, placement: str, command: str, reason: str
) -> None:
    provider = make_provider(placement=placement)
    handle = provider.launch(spec_for(busybox_image, command, f"res{placement}")).handle
    assert provider.wait(handle, 60).exit_code == 0
    with pytest.raises(InvalidInput, match=reason):
        provider.result(handle, 1 << 20)


@docker_only
@pytest.mark.parametrize("placement", ["bind", "archive"])
def test_an_image_without_mayfly_gets_the_contract_too(
    make_provider: ProviderFactory, bare_image: str, placement: str
) -> None:
    """A registered image has no /mayfly owned by the task user: the task can still read and write it."""
    provider = make_provider(placement=placement)
    spec = spec_for(bare_image, "pwd; cat /mayfly/payload.json; sh main.sh > /mayfly/result.json", f"bare{placement}")
    spec = replace(spec, code=make_code(provider, {"main.sh": b"printf '{\"ok\": true}'\n"}))
    handle = provider.launch(spec).handle
    st = provider.wait(handle, 60)
    log = b"".join(provider.logs(handle))
    assert st.exit_code == 0, log
    assert log == b'/mayfly/task\n{"n": 1}'
    assert provider.result(handle, 1024) == b'{"ok": true}'


@docker_only
def test_a_ready_image_without_code_keeps_its_working_directory(
    make_provider: ProviderFactory, bare_image: str
) -> None:
    provider = make_provider()
    handle = provider.launch(spec_for(bare_image, "pwd; ls /mayfly/task | wc -l", "ready")).handle
    assert provider.wait(handle, 60).exit_code == 0
    assert b"".join(provider.logs(handle)).split() == [b"/", b"0"]


class _RemoteLikeBlobs(BlobStore):
    """A blob store that is not a LocalBlobStore, so code is streamed as from S3 or GCS."""

    def __init__(self, inner: LocalBlobStore) -> None:
        self.inner = inner
        self.opened: list[str] = []

    def put(self, key: str, data: bytes) -> None:
        self.inner.put(key, data)

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        self.inner.put_file(key, fileobj)

    def get(self, key: str) -> bytes:
        return self.inner.get(key)

    def open(self, key: str) -> BinaryIO:
        self.opened.append(key)
        return self.inner.open(key)

    def exists(self, key: str) -> bool:
        return self.inner.exists(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def delete(self, key: str) -> None:
        self.inner.delete(key)


@docker_only
def test_code_is_streamed_from_a_remote_blob_store(
    make_provider: ProviderFactory, busybox_image: str, tmp_path: Path
) -> None:
    local = make_provider()
    blobs = _RemoteLikeBlobs(LocalBlobStore(tmp_path / "remote-blobs"))
    ctx = local.context
    provider = DockerProvider(local.settings, ProviderContext(blobs, ctx.work_dir, ctx.home_id, ctx.target))
    spec = spec_for(busybox_image, "cat hello.txt", "streamed")
    spec = replace(spec, code=make_code(provider, {"hello.txt": b"streamed!"}))
    handle = provider.launch(spec).handle
    assert provider.wait(handle, 60).exit_code == 0
    assert b"".join(provider.logs(handle)) == b"streamed!"
    assert spec.code is not None
    assert blobs.opened == [spec.code.key]
    assert sorted(p.name for p in ctx.work_dir.iterdir()) == [spec.name]  # no temporary zip left
    provider.remove(handle)
    provider.close()


@docker_only
@pytest.mark.parametrize(("init", "pid1"), [(True, False), (False, True)])
def test_docker_init_is_pid_1_unless_disabled(
    make_provider: ProviderFactory, busybox_image: str, init: bool, pid1: bool
) -> None:
    provider = make_provider(init=init)
    handle = provider.launch(spec_for(busybox_image, "echo $$", f"init{init}")).handle
    assert provider.wait(handle, 60).exit_code == 0
    assert (b"".join(provider.logs(handle)) == b"1\n") is pid1


@docker_only
def test_a_named_network_is_joined_and_an_unknown_one_refused(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    network = docker_client.networks.create("mayfly-test-net", internal=True)
    try:
        handle = provider.launch(spec_for(busybox_image, "true", "namednet", network="mayfly-test-net")).handle
        assert provider.wait(handle, 60).exit_code == 0
        provider.remove(handle)
    finally:
        network.remove()
    spec = spec_for(busybox_image, "true", "nonet", network="mayfly-test-no-such-net")
    with pytest.raises(LaunchFailed, match="mayfly-test-no-such-net") as info:
        provider.launch(spec)
    assert info.value.retryable is False
    assert containers_named(docker_client, spec.name) == []


@docker_only
def test_sweep_removes_only_what_belongs_to_attempts_that_are_over(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    over_task, live_task = f"sw{uuid.uuid4().hex[:10]}", f"sl{uuid.uuid4().hex[:10]}"
    provider.launch(spec_for(busybox_image, "sleep 60", over_task))  # reported its end, still running
    live = provider.launch(spec_for(busybox_image, "sleep 60", live_task))
    work = provider.context.work_dir
    orphan, staging, kept, other = (
        work / container_name(over_task, 2),  # a runner died between removing the container and this
        work / f".{container_name(over_task, 3)}.x1y2",  # a launch crashed while staging
        work / container_name(live_task, 2),  # an attempt not over yet: maybe launching right now
        work / "not-a-task",
    )
    for path in (orphan, staging, kept, other):
        path.mkdir(parents=True)

    removed = provider.sweep(lambda task_id, attempt: task_id == over_task)

    assert removed == 3
    assert containers_named(docker_client, container_name(over_task, 1)) == []
    assert not (work / container_name(over_task, 1)).exists()
    assert not orphan.exists()
    assert not staging.exists()
    assert kept.is_dir()
    assert other.is_dir()
    assert (work / container_name(live_task, 1)).is_dir()
    assert provider.state(live.handle).status is ContainerStatus.RUNNING
