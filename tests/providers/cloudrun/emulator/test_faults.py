"""Out of memory, timeout, cancel and a missing image, as Cloud Run reports them, on real Docker."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from google.api_core import exceptions as gx
from google.cloud import run_v2

pytestmark = [pytest.mark.docker, pytest.mark.slow]

State = run_v2.Condition.State
Reason = run_v2.Condition.ExecutionReason


def _execute(gcp_emulator: Any, image: str, script: str, *, memory: str = "64Mi", timeout: str = "60s") -> Any:
    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(
                containers=[
                    run_v2.Container(
                        image=image,
                        command=["sh", "-c", script],
                        resources=run_v2.ResourceRequirements(limits={"cpu": "1", "memory": memory}),
                    )
                ],
                max_retries=0,
                timeout=timeout,
            )
        )
    )
    jobs = gcp_emulator.run_client("Jobs")
    job_id = f"fault-{uuid.uuid4().hex[:8]}"
    name = jobs.create_job(parent=gcp_emulator.parent, job=job, job_id=job_id).result(timeout=30).name
    return jobs.run_job(name=name)


def _task(gcp_emulator: Any, execution: str) -> run_v2.Task:
    return next(iter(gcp_emulator.run_client("Tasks").list_tasks(parent=execution)))


def _completed(execution: run_v2.Execution) -> run_v2.Condition:
    return next(c for c in execution.conditions if c.type_ == "Completed")


def test_memory_is_a_hard_limit_exceeding_it_is_an_oom_kill(gcp_emulator: Any, busybox_image: str) -> None:
    # tail keeps the last line in memory: /dev/zero has no line end, so it grows until killed.
    execution = _execute(gcp_emulator, busybox_image, "tail /dev/zero", memory="16Mi").result(timeout=120)
    assert _completed(execution).state == State.CONDITION_FAILED
    result = _task(gcp_emulator, execution.name).last_attempt_result
    assert result.exit_code == 137
    assert result.status.code == 8
    assert "Memory limit of 16 MiB exceeded" in result.status.message


def test_the_task_timeout_stops_the_container(gcp_emulator: Any, busybox_image: str) -> None:
    execution = _execute(gcp_emulator, busybox_image, "sleep 300", timeout="2s").result(timeout=120)
    assert _completed(execution).state == State.CONDITION_FAILED
    result = _task(gcp_emulator, execution.name).last_attempt_result
    assert result.status.code == 4
    assert "timeout of 2s" in result.status.message
    assert result.exit_code in (137, 143)


def test_cancel_stops_the_container(gcp_emulator: Any, busybox_image: str, docker_client: Any) -> None:
    operation = _execute(gcp_emulator, busybox_image, "sleep 300")
    name = operation.metadata.name
    executions = gcp_emulator.run_client("Executions")
    deadline = time.monotonic() + 60
    while not executions.get_execution(name=name).running_count:
        assert time.monotonic() < deadline, "the execution never started"
        time.sleep(0.2)
    executions.cancel_execution(name=name)
    execution = operation.result(timeout=120)
    completed = _completed(execution)
    assert completed.state == State.CONDITION_FAILED
    assert completed.execution_reason == Reason.CANCELLED
    assert execution.cancelled_count == 1
    assert _task(gcp_emulator, name).last_attempt_result.status.code == 1
    label = f"run.googleapis.com/execution={name.rsplit('/', 1)[-1]}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    with pytest.raises(gx.BadRequest, match="already completed"):
        executions.cancel_execution(name=name)


def test_a_missing_image_fails_the_execution_as_image_not_found(gcp_emulator: Any) -> None:
    image = f"europe-west1-docker.pkg.dev/{gcp_emulator.project}/mayfly/no-such-image:{uuid.uuid4().hex[:6]}"
    execution = _execute(gcp_emulator, image, "true").result(timeout=60)
    completed = _completed(execution)
    assert completed.state == State.CONDITION_FAILED
    assert completed.reason == run_v2.Condition.CommonReason.CONTAINER_MISSING
    assert f"Image '{image}' not found" in completed.message
    assert execution.failed_count == 1
