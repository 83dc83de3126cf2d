"""Admission: what a target's provider cannot run is refused with one line, and nothing is stored.

The unit tests call :func:`admit` with the real provider classes (their declarations
are the data under test); the service tests go through a real home and SQLite: a
code push, a task queue (single and bulk), a schedule and a schedule firing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from sqlalchemy import func, select

from mayfly.core.admission import Requirements, admit
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.errors import ExitCode, TargetNotFound, TargetUnsupported
from mayfly.core.provider import Capability, Provider, ProviderLimits, ProviderSettings
from mayfly.core.scheduler import fire_due
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions
from mayfly.providers.docker.provider import DockerProvider
from mayfly.providers.ecs.provider import EcsProvider
from mayfly.testing.targets import UNCALLED_ECS_SETTINGS

ECS_SETTINGS = UNCALLED_ECS_SETTINGS

ECS_NONE = (
    "target aws-dev (ecs) does not support network none: every Fargate task gets a network interface in the "
    "target's subnets (awsvpc); restrict it with a security group without egress rules instead"
)


class _Tiny(Provider[ProviderSettings]):
    """A provider declaring little: no optional capability, small limits, named networks refused."""

    name = "tiny"
    unsupported: ClassVar[Mapping[Capability, str]] = {Capability.GPU: "no GPUs here"}
    limits = ProviderLimits(
        max_cpu=2, max_memory_mb=1024, max_timeout=600, cpu_reason="two cores", timeout_reason="ten minutes"
    )
    refused_networks: ClassVar[Mapping[str, str]] = {"host": "shared namespace"}
    named_networks_refused = "one flat network"


# ------------------------------------------------------------------ admit, against the providers' declarations


def test_docker_accepts_what_it_offers() -> None:
    for network in ("bridge", "none", "my-net"):
        admit("local", DockerProvider, Requirements(network=network, cpu=1, memory_mb=64, timeout=3600))


def test_docker_refuses_the_host_network_with_its_reason() -> None:
    with pytest.raises(TargetUnsupported) as failure:
        admit("local", DockerProvider, Requirements(network="host"))
    assert failure.value.message.startswith("target local (docker) does not allow network host: the task would share")
    assert (failure.value.code, failure.value.http_status, failure.value.exit_code) == (
        "target_unsupported",
        400,
        ExitCode.USAGE,
    )


def test_ecs_refuses_network_none_and_named_networks() -> None:
    with pytest.raises(TargetUnsupported) as failure:
        admit("aws-dev", EcsProvider, Requirements(network="none"))
    assert failure.value.message == ECS_NONE
    with pytest.raises(TargetUnsupported, match=r"^target aws-dev \(ecs\) does not allow network host: Fargate"):
        admit("aws-dev", EcsProvider, Requirements(network="host"))
    admit("aws-dev", EcsProvider, Requirements(network="bridge", cpu=16, memory_mb=120 * 1024))


def test_ecs_refuses_cpu_and_memory_beyond_fargates_largest_task() -> None:
    with pytest.raises(TargetUnsupported) as failure:
        admit("aws-dev", EcsProvider, Requirements(cpu=32))
    assert failure.value.message == (
        "target aws-dev (ecs) does not allow cpu 32 (at most 16): Fargate's largest task has 16 vCPU"
    )
    with pytest.raises(TargetUnsupported, match=r"memory 200000 MiB \(at most 122880 MiB\): Fargate's largest"):
        admit("aws-dev", EcsProvider, Requirements(memory_mb=200_000))


@pytest.mark.parametrize(
    ("need", "message"),
    [
        (Requirements(capabilities=frozenset({Capability.GPU})), "does not support gpu: no GPUs here"),
        (Requirements(capabilities=frozenset({Capability.SPOT})), "does not support spot: not implemented"),
        (Requirements(network="none"), "does not support network none: not implemented"),
        (Requirements(network="host"), "does not allow network host: shared namespace"),
        (Requirements(network="blue"), "does not allow network blue: one flat network"),
        (Requirements(cpu=2.5), "does not allow cpu 2.5 (at most 2): two cores"),
        (Requirements(memory_mb=2048), "does not allow memory 2048 MiB (at most 1024 MiB): the provider's largest"),
        (Requirements(timeout=601), "does not allow timeout 601 s (at most 600 s): ten minutes"),
    ],
)
def test_each_declared_refusal_is_one_line_with_the_reason(need: Requirements, message: str) -> None:
    with pytest.raises(TargetUnsupported) as failure:
        admit("small", _Tiny, need)
    assert failure.value.message.startswith(f"target small (tiny) {message}")
    assert "\n" not in failure.value.message


def test_a_target_s_own_limits_replace_the_class_s() -> None:
    """A Docker target on a remote engine is not sized by this machine: only the engine checks its size."""
    remote = DockerProvider.limits_for(DockerProvider.Settings(base_url="tcp://10.0.0.9:2376"))
    assert remote.max_cpu == math.inf
    admit("far", DockerProvider, Requirements(cpu=DockerProvider.limits.max_cpu + 1), remote)
    with pytest.raises(TargetUnsupported, match=r"does not allow cpu .*: the engine's host has"):
        admit("near", DockerProvider, Requirements(cpu=DockerProvider.limits.max_cpu + 1))


# ------------------------------------------------------------------ through the services: nothing is stored


def _counts(mf: Mayfly) -> tuple[int, int, int, int]:
    with mf.store.read() as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(select(func.count()).select_from(t)).scalar_one()
            for t in (s.codes, s.code_revisions, s.tasks, s.schedules)
        )


@pytest.fixture
def ecs_target(mf: Mayfly) -> str:
    mf.targets.add("aws-dev", "ecs", ECS_SETTINGS, embedded_runner=False)
    return "aws-dev"


def test_a_code_push_with_network_host_stores_nothing(mf: Mayfly, project: str, hello_dir: Path) -> None:
    with pytest.raises(TargetUnsupported, match=r"^target local \(docker\) does not allow network host: "):
        mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions(network="host"))
    assert _counts(mf) == (0, 0, 0, 0)
    assert list(mf.blobs.list("codes/")) == []


def test_a_code_push_to_an_ecs_target_with_network_none_stores_nothing(
    mf: Mayfly, project: str, hello_dir: Path, ecs_target: str
) -> None:
    with pytest.raises(TargetUnsupported) as failure:
        mf.codes.push(
            project, "hello", hello_dir, runtime="shell", options=CodeOptions(network="none", target=ecs_target)
        )
    assert failure.value.message == ECS_NONE
    with pytest.raises(TargetUnsupported, match=r"does not support network none"):
        mf.codes.register(project, "img", "busybox:1", CodeOptions(network="none", target=ecs_target))
    assert _counts(mf) == (0, 0, 0, 0)


def test_a_re_push_is_checked_with_the_options_it_inherits(
    mf: Mayfly, project: str, hello_dir: Path, ecs_target: str
) -> None:
    """network none, fine on local, is inherited by a push that only moves the code to the ECS target."""
    mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions(network="none"))
    with pytest.raises(TargetUnsupported, match=r"^target aws-dev \(ecs\) does not support network none"):
        mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions(target=ecs_target))
    assert _counts(mf) == (1, 1, 0, 0)


def test_tasks_and_schedules_on_a_target_that_refuses_the_code_store_nothing(
    mf: Mayfly, project: str, hello_dir: Path, ecs_target: str
) -> None:
    mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions(network="none"))
    with pytest.raises(TargetUnsupported) as failure:
        mf.tasks.queue(project, "hello", "{}", TaskOptions(target=ecs_target))
    assert failure.value.message == ECS_NONE
    with pytest.raises(TargetUnsupported, match=r"^target aws-dev \(ecs\) does not support network none"):
        mf.tasks.queue_many(project, "hello", ["{}", "{}"], TaskOptions(target=ecs_target))
    with pytest.raises(TargetUnsupported) as failure:
        mf.schedules.create(project, "hello", ScheduleSpec(every="5m", target=ecs_target))
    assert failure.value.message == ECS_NONE
    with pytest.raises(TargetNotFound):
        mf.schedules.create(project, "hello", ScheduleSpec(every="5m", target="nowhere"))
    assert _counts(mf) == (1, 1, 0, 0)
    # On the code's own target (local, which offers network none) the same task is admitted.
    mf.tasks.queue(project, "hello", "{}", TaskOptions())
    assert _counts(mf) == (1, 1, 1, 0)


def test_a_schedule_firing_on_a_refusing_target_skips_the_slot_with_the_reason(
    mf: Mayfly, project: str, hello_dir: Path, ecs_target: str
) -> None:
    """Admission runs when the task row is made: a code moved to a refusing target after scheduling fires nothing."""
    mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions())
    sched = mf.schedules.create(project, "hello", ScheduleSpec(every="5m", target=ecs_target))
    # The code now asks for what the schedule's target cannot give.
    mf.codes.push(project, "hello", hello_dir, runtime="shell", options=CodeOptions(network="none"))
    assert sched.next_start is not None
    done = fire_due(mf.store, mf.tasks, sched.next_start + 1)
    assert done.fired == []
    assert [(sid, why) for sid, _, why in done.skipped] == [(sched.id, f"error: {ECS_NONE}")]
    assert _counts(mf)[2] == 0
