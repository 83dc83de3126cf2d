"""Cost per attempt from each provider's recorded timestamps, against figures computed by hand.

Each case parses a recorded provider response with the provider's own parser (the
runner reports what it returns), applies the attempt's end event through the
lifecycle on a real store, and reads the attempt back as ``task show`` does.
"""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace
from typing import Any

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.lifecycle import apply_event
from mayfly.core.messages import Event, EventKind
from mayfly.core.models import ContainerState
from mayfly.core.router import dispatch
from mayfly.core.store import now
from mayfly.core.tasks import TaskOptions
from mayfly.providers.aci.diagnose import container_state as aci_state
from mayfly.providers.cloudrun.diagnose import execution_state
from mayfly.providers.ecs.diagnose import container_state as ecs_state

ECS = {
    "region": "us-east-1",
    "cluster": "c",
    "subnets": ["subnet-1"],
    "execution_role_arn": "arn:aws:iam::1:role/x",
    "log_group": "g",
    "bucket": "b",
    "tasks_queue_url": "https://sqs/1/t",
    "control_queue_url": "https://sqs/1/c",
    "events_queue_url": "https://sqs/1/e",
}
CLOUDRUN = {"project": "p", "region": "europe-west1", "bucket": "b", "queue_prefix": "q", "job_prefix": "j"}
ACI = {
    "subscription_id": "s",
    "resource_group": "rg",
    "location": "westeurope",
    "storage_account": "sa",
    "container": "c",
    "queue_prefix": "q",
}


def _at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)


def _ecs_task(pull: float, started: float, stopped: float) -> dict[str, Any]:
    """A DescribeTasks task as boto3 returns it (datetimes), stopped after exit 0."""
    return {
        "lastStatus": "STOPPED",
        "pullStartedAt": _at(pull),
        "pullStoppedAt": _at(pull + 5),
        "startedAt": _at(started),
        "executionStoppedAt": _at(stopped - 2),
        "stoppedAt": _at(stopped),
        "stopCode": "EssentialContainerExited",
        "stoppedReason": "Essential container in task exited",
        "containers": [{"name": "task", "lastStatus": "STOPPED", "exitCode": 0}],
    }


def _aci_group(started: str, finished: str) -> dict[str, Any]:
    view = {"currentState": {"state": "Terminated", "exitCode": 0, "startTime": started, "finishTime": finished}}
    return {
        "properties": {
            "provisioningState": "Succeeded",
            "instanceView": {"state": "Stopped"},
            "containers": [{"name": "task", "properties": {"instanceView": view}}],
        }
    }


def _run(mf: Mayfly, project: str, target: str, st: ContainerState, *, cpu: float, memory_mb: int) -> dict[str, Any]:
    """Queue a task, let attempt 1 end as the runner of ``target`` reports ``st``; its ``task show --json``."""
    options = CodeOptions(command="true", cpu=cpu, memory_mb=memory_mb)
    mf.codes.register(project, "job", "mayfly-test/busybox:latest", options)
    task = mf.tasks.queue(project, "job", "{}", TaskOptions())
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [task.id]
    data = {
        "exit_code": st.exit_code,
        "started_at": st.started_at,
        "finished_at": st.finished_at,
        "billed_from": st.billed_from,
        "billed_to": st.billed_to,
        "target": target,
    }
    with mf.store.write() as conn:
        apply_event(conn, Event(task.id, 1, EventKind.EXITED, now(), data), now(), mf.limits)
    (attempt,) = [a.to_json() for a in mf.costs.attempts(task.id)]
    return attempt


def test_fargate_bills_from_the_image_pull_to_the_stop_with_a_one_minute_minimum(mf: Mayfly, project: str) -> None:
    mf.targets.add("aws-x", "ecs", ECS)
    short = _run(mf, project, "aws-x", ecs_state(_ecs_task(1000.0, 1010.0, 1032.4)), cpu=0.25, memory_mb=512)
    # 32.4 s from pull start to stop: under Fargate's minute, billed 60 s.
    # 60 s x (0.25 vCPU x 0.04048/3600 + 0.5 GB x 0.004445/3600) = 0.000205708...
    assert (short["target"], short["provider"], short["region"]) == ("aws-x", "ecs", "us-east-1")
    assert (short["started_at"], short["stopped_at"], short["billed_seconds"]) == (1000.0, 1032.4, 60.0)
    assert short["cost"] == pytest.approx(0.0002057083, rel=1e-6)
    long = _run(mf, project, "aws-x", ecs_state(_ecs_task(2000.0, 2030.0, 2125.2)), cpu=0.25, memory_mb=512)
    # 125.2 s rounds up to 126 s: 126 x 0.0123425 / 3600 = 0.0004319875
    assert long["billed_seconds"] == 126.0
    assert long["cost"] == pytest.approx(0.0004319875, rel=1e-9)


def test_cloud_run_jobs_bill_per_second_of_the_execution(mf: Mayfly, project: str) -> None:
    mf.targets.add("gcp-x", "cloudrun", CLOUDRUN)
    execution = SimpleNamespace(start_time=_at(5000.0), completion_time=_at(5012.5), succeeded_count=1)
    attempt = _run(mf, project, "gcp-x", execution_state(execution, None), cpu=1.0, memory_mb=512)
    # 12.5 s -> 13 s x (1 x 0.000018 + 0.5 GiB x 0.000002) = 0.000247
    assert (attempt["provider"], attempt["region"], attempt["billed_seconds"]) == ("cloudrun", "europe-west1", 13.0)
    assert attempt["cost"] == pytest.approx(0.000247, rel=1e-9)


def test_aci_bills_per_second_of_the_instance_view(mf: Mayfly, project: str) -> None:
    mf.targets.add("azure-x", "aci", ACI)
    group = _aci_group("2026-12-07T10:00:00.0000000Z", "2026-12-07T10:00:07.0000000Z")
    attempt = _run(mf, project, "azure-x", aci_state(group), cpu=1.0, memory_mb=1536)
    # 7 s x (1 x 0.0000113 + 1.5 GB x 0.0000012) = 0.0000917
    assert (attempt["provider"], attempt["region"], attempt["billed_seconds"]) == ("aci", "westeurope", 7.0)
    assert attempt["cost"] == pytest.approx(0.0000917, rel=1e-9)


def test_a_target_price_overrides_the_shipped_table(mf: Mayfly, project: str) -> None:
    mf.targets.add("azure-x", "aci", ACI)
    price = mf.costs.set("azure-x", {"vcpu_hour": "0.36", "minimum_seconds": "10"})
    assert (price.origin, price.vcpu_second, price.gb_second) == ("target", pytest.approx(0.0001), 0.0000012)
    group = _aci_group("2026-12-07T10:00:00Z", "2026-12-07T10:00:03Z")
    attempt = _run(mf, project, "azure-x", aci_state(group), cpu=2.0, memory_mb=1024)
    # 3 s, under the target's own 10 s minimum: 10 x (2 x 0.0001 + 1 x 0.0000012) = 0.002012
    assert attempt["billed_seconds"] == 10.0
    assert attempt["cost"] == pytest.approx(0.002012, rel=1e-9)
    assert mf.costs.clear("azure-x").origin == "shipped"


def test_each_attempt_is_recorded_where_it_ran_and_a_redelivered_end_records_nothing(mf: Mayfly, project: str) -> None:
    """Attempt 1 fails to launch on one target and attempt 2 runs on another: ``task show`` lists both."""
    mf.targets.add("aws-x", "ecs", ECS)
    mf.costs.set("local", {"vcpu_second": 0.001, "gb_second": 0})
    mf.codes.register(project, "job", "mayfly-test/busybox:latest", CodeOptions(command="true", cpu=1.0))
    task = mf.tasks.queue(project, "job", "{}", TaskOptions())
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [task.id]
    failed = Event(task.id, 1, EventKind.LAUNCH_FAILED, now(), {"message": "no capacity", "target": "aws-x"})
    with mf.store.write() as conn:
        apply_event(conn, failed, now(), mf.limits)
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now() + 120)] == [task.id]
    ran = {"exit_code": 0, "started_at": 100.0, "finished_at": 102.5, "target": "local", "provider": "docker"}
    for _ in range(2):  # the runner's event delivered twice
        with mf.store.write() as conn:
            apply_event(conn, Event(task.id, 2, EventKind.EXITED, now(), ran), now(), mf.limits)
    rows = [(a.attempt, a.target, a.provider, a.outcome, a.billed_seconds, a.cost) for a in mf.costs.attempts(task.id)]
    assert rows == [(1, "aws-x", "ecs", "launch_failed", 0.0, 0.0), (2, "local", "docker", "exited", 3.0, 0.003)]
    assert mf.costs.cost_of([task.id]) == {task.id: 0.003}
