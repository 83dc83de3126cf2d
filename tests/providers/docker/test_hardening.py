"""Hardening of task containers: what `docker inspect` shows, and hostile task code (test plan items 18 and 19)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.errors import EngineNotRunning
from mayfly.core.messages import container_name
from mayfly.core.models import ContainerStatus, LaunchSpec
from mayfly.providers.docker import DockerProvider
from mayfly.providers.docker.provider import parse_handle
from mayfly.testing import make_code

pytestmark = pytest.mark.docker

TASK_UID = 10001

ProviderFactory = Callable[..., DockerProvider]


def spec_for(image: str, command: str, *, task_id: str, memory_mb: int = 64, network: str = "none") -> LaunchSpec:
    return LaunchSpec(
        name=container_name(task_id, 1),
        task_id=task_id,
        attempt=1,
        project="p-hardening",
        image=image,
        command=("/bin/sh", "-c", command),
        env={"MAYFLY_TASK_ID": task_id},
        code=None,
        payload=b"{}",
        config=b"{}",
        cpu=0.5,
        memory_mb=memory_mb,
        timeout=60,
        network=network,
        labels={"mayfly.code": "hardening"},
    )


def run_to_exit(provider: DockerProvider, spec: LaunchSpec) -> tuple[str, Any, bytes]:
    handle = provider.launch(spec).handle
    st = provider.wait(handle, 120)
    assert st.status is ContainerStatus.EXITED
    return handle, st, b"".join(provider.logs(handle))


@pytest.mark.parametrize("placement", ["bind", "archive"])
def test_inspect_shows_the_hardened_baseline(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any, placement: str
) -> None:
    provider = make_provider(placement=placement)
    spec = spec_for(busybox_image, "sleep 300", task_id=f"harden{placement}", network="bridge")
    spec = replace(spec, code=make_code(provider, {"main.sh": b"sleep 300\n"}))
    handle = provider.launch(spec).handle
    info = docker_client.api.inspect_container(parse_handle(handle)[0])
    config, host = info["Config"], info["HostConfig"]

    assert config["User"] == f"{TASK_UID}:{TASK_UID}"
    assert host["CapDrop"] == ["ALL"]
    assert not host["CapAdd"]
    assert host["SecurityOpt"] == ["no-new-privileges"]  # and so no seccomp=unconfined
    assert host["Privileged"] is False
    assert host["PidsLimit"] == 256
    assert host["Memory"] == 64 << 20
    assert host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 500_000_000
    assert host["ReadonlyRootfs"] is True
    assert host["Tmpfs"] == {"/tmp": "size=64m,mode=1777"}
    assert host["RestartPolicy"]["Name"] == "no"
    assert host["AutoRemove"] is False
    assert host["Init"] is True
    assert host["NetworkMode"] == "bridge"
    for mode in ("PidMode", "IpcMode", "UTSMode", "UsernsMode"):
        assert host.get(mode, "") != "host", mode
    assert host["CgroupnsMode"] == "private"
    assert host["IpcMode"] in ("private", "none", "")
    assert not host["Devices"]
    assert host["LogConfig"] == {"Type": "json-file", "Config": {"max-size": "20m", "max-file": "1"}}

    mounts = info["Mounts"]
    assert [m["Destination"] for m in mounts] == ["/mayfly"]
    (mount,) = mounts
    assert "docker.sock" not in mount.get("Source", "")
    if placement == "bind":
        assert mount["Type"] == "bind"
        assert Path(mount["Source"]) == provider.context.work_dir / spec.name
        assert host["Binds"] is None or host["Binds"] == []
    else:
        assert mount["Type"] == "volume"
    assert not any("docker.sock" in str(b) for b in host.get("Binds") or [])

    assert config["WorkingDir"] == "/mayfly/task"
    labels = config["Labels"]
    assert labels["mayfly.task"] == spec.task_id
    assert labels["mayfly.attempt"] == "1"
    assert labels["mayfly.project"] == "p-hardening"
    assert labels["mayfly.home"] == provider.context.home_id
    assert labels["mayfly.target"] == "local"
    assert labels["mayfly.code"] == "hardening"


def test_a_spec_cannot_override_the_home_label(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider()
    spec = spec_for(busybox_image, "true", task_id="spoof")
    spec = replace(spec, labels={"mayfly.home": "someone-else", "mayfly.task": "x"})
    handle = provider.launch(spec).handle
    labels = docker_client.api.inspect_container(parse_handle(handle)[0])["Config"]["Labels"]
    assert labels["mayfly.home"] == provider.context.home_id
    assert labels["mayfly.task"] == "spoof"


def test_the_task_runs_unprivileged(make_provider: ProviderFactory, busybox_image: str) -> None:
    command = (
        "id -u; id -g; "
        'while read -r k v; do case $k in NoNewPrivs:|CapEff:|CapBnd:) echo "$k $v";; esac; done < /proc/self/status'
    )
    _, st, log = run_to_exit(make_provider(), spec_for(busybox_image, command, task_id="unpriv"))
    assert st.exit_code == 0
    assert log.decode().splitlines() == [
        str(TASK_UID),
        str(TASK_UID),
        "CapEff: 0000000000000000",
        "CapBnd: 0000000000000000",
        "NoNewPrivs: 1",
    ]


def test_the_root_filesystem_is_read_only(make_provider: ProviderFactory, busybox_image: str) -> None:
    command = "touch /etc/x; echo etc=$?; touch /tmp/x; echo tmp=$?; touch /mayfly/task/x; echo task=$?"
    _, st, log = run_to_exit(make_provider(), spec_for(busybox_image, command, task_id="readonly"))
    assert st.exit_code == 0
    assert b"Read-only file system" in log
    assert b"etc=1\n" in log
    assert b"tmp=0\n" in log
    assert b"task=0\n" in log


def test_a_fork_bomb_hits_the_pids_limit_and_the_host_carries_on(
    make_provider: ProviderFactory, busybox_image: str, docker_client: Any
) -> None:
    provider = make_provider(pids_limit=64)
    _, st, log = run_to_exit(provider, spec_for(busybox_image, "f(){ f|f; }; f", task_id="forkbomb"))
    assert st.exit_code != 0
    assert b"can't fork" in log  # the kernel refused new processes (EAGAIN from the pids cgroup)
    # The engine and other tasks are unaffected.
    assert docker_client.ping()
    _, after, log = run_to_exit(provider, spec_for(busybox_image, "echo still-fine", task_id="afterbomb"))
    assert (after.exit_code, log) == (0, b"still-fine\n")


def test_a_big_allocation_is_oom_killed_inside_the_container(
    make_provider: ProviderFactory, busybox_image: str
) -> None:
    spec = spec_for(busybox_image, "dd if=/dev/zero of=/dev/null bs=2000M count=1", task_id="bigalloc", memory_mb=32)
    _, st, _ = run_to_exit(make_provider(), spec)
    assert st.oom_killed
    assert st.exit_code == 137
    assert "out of memory" in st.detail
    assert "32 MiB" in st.detail


def test_the_engines_oom_event_is_found_when_its_flag_is_late(
    make_provider: ProviderFactory, busybox_image: str
) -> None:
    # Docker 20.10 can record an OOM-killed container's exit before the kill (OOMKilled stays false,
    # exit 137; seen once in CI); the provider then asks the engine's event stream, which keeps the
    # container's `oom` event. The race itself cannot be forced, so this asks the event stream the
    # way the provider does, about a container the kernel really killed.
    provider = make_provider()
    spec = spec_for(busybox_image, "dd if=/dev/zero of=/dev/null bs=2000M count=1", task_id="lateoom", memory_mb=32)
    handle, st, _ = run_to_exit(provider, spec)
    assert st.exit_code == 137
    ref, _ = parse_handle(handle)
    info = provider._api().inspect_container(ref)
    assert provider._late_oom(info) is True


def test_a_sigkill_exit_code_without_an_oom_is_not_called_one(
    make_provider: ProviderFactory, busybox_image: str
) -> None:
    _, st, log = run_to_exit(make_provider(), spec_for(busybox_image, "echo bye; exit 137", task_id="exit137"))
    assert (st.exit_code, st.oom_killed, log) == (137, False, b"bye\n")
    assert "out of memory" not in st.detail


def test_a_dead_socket_is_reported_in_one_line(make_provider: ProviderFactory) -> None:
    provider = make_provider(base_url="unix:///tmp/nope.sock")
    expected = (
        "Docker engine is not running (cannot connect to unix:///tmp/nope.sock): "
        "start it with 'sudo systemctl start docker' or 'sudo dockerd &'"
    )
    with pytest.raises(EngineNotRunning) as info:
        provider.check()
    assert str(info.value) == expected
    assert info.value.code == "engine_not_running"
    # Every operation says the same, not an SDK traceback.
    with pytest.raises(EngineNotRunning, match=r"nope\.sock"):
        provider.state("mayfly-x-1::0123")
    with pytest.raises(EngineNotRunning, match=r"nope\.sock"):
        provider.launch(spec_for("any", "true", task_id="dead"))
    assert not (provider.context.work_dir / container_name("dead", 1)).exists()
