"""The Cloud Run Admin API v2 of ``mayfly emulator gcp`` through the real ``google.cloud.run_v2`` clients.

Every response is parsed by the clients' strict JSON parser (an unknown field fails the
call), so each call here also checks the shape of what the emulator answers.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from google.api_core import exceptions as gx
from google.cloud import run_v2

pytestmark = [pytest.mark.docker, pytest.mark.slow]

Overrides = run_v2.RunJobRequest.Overrides
State = run_v2.Condition.State


def _job(image: str, args: list[str], *, memory: str = "64Mi", timeout: str = "60s", env: Any = ()) -> run_v2.Job:
    container = run_v2.Container(
        image=image,
        command=["sh", "-c"],
        args=args,
        env=[run_v2.EnvVar(name=k, value=v) for k, v in env],
        resources=run_v2.ResourceRequirements(limits={"cpu": "1", "memory": memory}),
    )
    return run_v2.Job(
        template=run_v2.ExecutionTemplate(
            template=run_v2.TaskTemplate(containers=[container], max_retries=0, timeout=timeout)
        )
    )


def _create(gcp_emulator: Any, job: run_v2.Job) -> str:
    job_id = f"job-{uuid.uuid4().hex[:8]}"
    created = gcp_emulator.run_client("Jobs").create_job(parent=gcp_emulator.parent, job=job, job_id=job_id)
    return str(created.result(timeout=30).name)


def _run(gcp_emulator: Any, job_name: str, **overrides: Any) -> Any:
    request = run_v2.RunJobRequest(name=job_name, overrides=Overrides(**overrides) if overrides else None)
    return gcp_emulator.run_client("Jobs").run_job(request=request)


def _completed(execution: run_v2.Execution) -> run_v2.Condition:
    return next(c for c in execution.conditions if c.type_ == "Completed")


def test_a_job_runs_with_the_overrides_and_reports_exit_code_conditions_and_logs(
    gcp_emulator: Any, busybox_image: str
) -> None:
    job_name = _create(
        gcp_emulator, _job(busybox_image, ["echo template"], env=[("KEEP", "kept"), ("FOO", "template")])
    )
    operation = _run(
        gcp_emulator,
        job_name,
        container_overrides=[
            Overrides.ContainerOverride(
                args=['echo "foo=$FOO keep=$KEEP task=$CLOUD_RUN_TASK_INDEX"; echo oops >&2; exit 3'],
                env=[run_v2.EnvVar(name="FOO", value="override")],
            )
        ],
        task_count=1,
        timeout="30s",
    )
    # The execution's name is in the operation's metadata at once, before it completes.
    name = operation.metadata.name
    assert name.startswith(f"{job_name}/executions/")
    finished = operation.result(timeout=120)
    assert finished.name == name

    execution = gcp_emulator.run_client("Executions").get_execution(name=name)
    completed = _completed(execution)
    assert completed.state == State.CONDITION_FAILED
    assert completed.execution_reason == run_v2.Condition.ExecutionReason.NON_ZERO_EXIT_CODE
    assert (execution.failed_count, execution.succeeded_count, execution.task_count) == (1, 0, 1)
    assert execution.completion_time
    assert execution.start_time
    assert execution.template.timeout.total_seconds() == 30

    tasks = list(gcp_emulator.run_client("Tasks").list_tasks(parent=name))
    assert len(tasks) == 1
    task = gcp_emulator.run_client("Tasks").get_task(name=tasks[0].name)
    assert task.last_attempt_result.exit_code == 3
    assert "exit code of 3" in task.last_attempt_result.status.message
    assert task.conditions[0].type_ == "Completed"
    assert task.conditions[0].state == State.CONDITION_FAILED

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as cloud_logging

    client = cloud_logging.Client(
        project=gcp_emulator.project,
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": gcp_emulator.endpoints.logging},
    )
    execution_id = name.rsplit("/", 1)[-1]
    log_filter = f'resource.type="cloud_run_job" AND labels."run.googleapis.com/execution_name"="{execution_id}"'
    entries = list(client.list_entries(filter_=log_filter, order_by=cloud_logging.ASCENDING))
    lines = {(e.log_name.rsplit("%2F", 1)[-1], e.payload) for e in entries}
    assert lines == {("stdout", "foo=override keep=kept task=0"), ("stderr", "oops")}
    assert {e.resource.labels["job_name"] for e in entries} == {job_name.rsplit("/", 1)[-1]}
    later = f'{log_filter} AND timestamp>"{entries[-1].timestamp.isoformat()}"'
    assert list(client.list_entries(filter_=later)) == []


def test_a_successful_execution_and_every_list_and_operation_shape(gcp_emulator: Any, busybox_image: str) -> None:
    jobs = gcp_emulator.run_client("Jobs")
    executions = gcp_emulator.run_client("Executions")
    job_name = _create(gcp_emulator, _job(busybox_image, ["exit 0"]))
    operation = _run(gcp_emulator, job_name)
    execution = operation.result(timeout=120)
    completed = _completed(execution)
    assert completed.state == State.CONDITION_SUCCEEDED
    assert execution.succeeded_count == 1
    task = next(iter(gcp_emulator.run_client("Tasks").list_tasks(parent=execution.name)))
    assert task.last_attempt_result.exit_code == 0

    job = jobs.get_job(name=job_name)
    assert job.execution_count == 1
    assert job.latest_created_execution.name == execution.name
    assert job.latest_created_execution.completion_status == (
        run_v2.ExecutionReference.CompletionStatus.EXECUTION_SUCCEEDED
    )
    assert job_name in [j.name for j in jobs.list_jobs(parent=gcp_emulator.parent)]
    assert [e.name for e in executions.list_executions(parent=job_name)] == [execution.name]

    deleted = executions.delete_execution(name=execution.name).result(timeout=30)
    assert deleted.name == execution.name
    with pytest.raises(gx.NotFound):
        executions.get_execution(name=execution.name)
    assert jobs.delete_job(name=job_name).result(timeout=30).name == job_name
    with pytest.raises(gx.NotFound):
        jobs.get_job(name=job_name)


def test_resource_name_rules_and_google_errors(gcp_emulator: Any, busybox_image: str) -> None:
    jobs = gcp_emulator.run_client("Jobs")
    job = _job(busybox_image, ["exit 0"])
    with pytest.raises(gx.BadRequest, match="Invalid job id"):
        jobs.create_job(parent=gcp_emulator.parent, job=job, job_id="Bad_Name")
    with pytest.raises(gx.BadRequest, match="Invalid project"):
        jobs.create_job(parent="projects/X/locations/europe-west1", job=job, job_id="fine")
    job_name = _create(gcp_emulator, job)
    with pytest.raises(gx.Conflict, match="already exists"):
        jobs.create_job(parent=gcp_emulator.parent, job=job, job_id=job_name.rsplit("/", 1)[-1])
    with pytest.raises(gx.NotFound, match="of kind 'JOB'"):
        jobs.run_job(name=f"{gcp_emulator.parent}/jobs/nope")
    with pytest.raises(gx.BadRequest, match="memory"):
        jobs.create_job(parent=gcp_emulator.parent, job=_job(busybox_image, ["x"], memory="lots"), job_id="mem")
    with pytest.raises(gx.NotFound):
        gcp_emulator.run_client("Executions").get_execution(name=f"{job_name}/executions/nope-12345")


def test_an_execution_token_starts_one_named_execution_once(gcp_emulator: Any, busybox_image: str) -> None:
    jobs = gcp_emulator.run_client("Jobs")
    job_id = f"tok-{uuid.uuid4().hex[:8]}"
    job = _job(busybox_image, ["echo once"])
    job.run_execution_token = "attempt-1"
    created = jobs.create_job(parent=gcp_emulator.parent, job=job, job_id=job_id).result(timeout=120)
    assert created.run_execution_token == "attempt-1"
    execution_name = f"{created.name}/executions/{job_id}-attempt-1"
    execution = gcp_emulator.run_client("Executions").get_execution(name=execution_name)
    assert _completed(execution).state == State.CONDITION_SUCCEEDED
    # The same job again is refused (nothing new runs); an upsert with the same token runs nothing new either.
    with pytest.raises(gx.Conflict):
        jobs.create_job(parent=gcp_emulator.parent, job=job, job_id=job_id)
    job.name = created.name
    jobs.update_job(request=run_v2.UpdateJobRequest(job=job, allow_missing=True)).result(timeout=60)
    assert [e.name for e in gcp_emulator.run_client("Executions").list_executions(parent=created.name)] == [
        execution_name
    ]
    assert jobs.get_job(name=created.name).execution_count == 1


def test_a_failed_attempt_is_retried_while_the_task_has_retries(gcp_emulator: Any, busybox_image: str) -> None:
    job = _job(busybox_image, ['echo "attempt $CLOUD_RUN_TASK_ATTEMPT"; exit 1'])
    job.template.template.max_retries = 1
    execution = _run(gcp_emulator, _create(gcp_emulator, job)).result(timeout=120)
    assert _completed(execution).state == State.CONDITION_FAILED
    assert (execution.retried_count, execution.failed_count) == (1, 1)
    task = next(iter(gcp_emulator.run_client("Tasks").list_tasks(parent=execution.name)))
    assert task.retried == 1
    assert task.last_attempt_result.exit_code == 1
