"""What Cloud Run says, in Mayfly's terms: states and diagnoses from Cloud Run Admin API v2 responses (REST JSON).

The responses have the shape Cloud Run returns for ``GET .../executions/E`` and
``GET .../executions/E/tasks`` (trimmed to the fields that matter), parsed by the very
classes the REST client parses them with; the errors are Cloud Run's error bodies.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.api_core import exceptions as gx
from google.cloud import run_v2

from mayfly.core.errors import LaunchFailed
from mayfly.core.models import ContainerStatus
from mayfly.providers.cloudrun.diagnose import execution_state, launch_error
from mayfly.providers.cloudrun.jobs import JobSpec, cloud_run_size, job_id, job_image, job_message, run_overrides

EXECUTION = "projects/mayfly-test/locations/europe-west1/jobs/mayfly-0a1b2c3d4e5f/executions/mayfly-0a1b2c3d4e5f-x7k2p"
IMAGE = "europe-west1-docker.pkg.dev/mayfly-test/mayfly/runtime-shell:9"


def execution(**fields: Any) -> Any:
    body = {
        "name": EXECUTION,
        "createTime": "2026-12-07T10:00:00.123456Z",
        "job": "mayfly-0a1b2c3d4e5f",
        "taskCount": 1,
        "parallelism": 1,
        **fields,
    }
    return run_v2.Execution.from_json(json.dumps(body), ignore_unknown_fields=True)


def task(**fields: Any) -> Any:
    body = {"name": f"{EXECUTION}/tasks/mayfly-0a1b2c3d4e5f-x7k2p-task0", "index": 0, **fields}
    return run_v2.Task.from_json(json.dumps(body), ignore_unknown_fields=True)


STARTED = {"startTime": "2026-12-07T10:00:05.5Z"}
ENDED = {**STARTED, "completionTime": "2026-12-07T10:00:09.25Z"}


def completed(state: str, message: str, **reason: str) -> dict[str, Any]:
    return {"type": "Completed", "state": state, "message": message, **reason}


def test_pending_then_running() -> None:
    assert execution_state(execution(), None).status is ContainerStatus.PENDING
    running = execution_state(execution(runningCount=1, **STARTED), task(**STARTED))
    assert running.status is ContainerStatus.RUNNING
    assert running.started_at == 1796637605.5


def test_success_is_exit_zero_with_times() -> None:
    done = execution(
        succeededCount=1,
        conditions=[completed("CONDITION_SUCCEEDED", "Execution completed successfully in 3.75s.")],
        **ENDED,
    )
    st = execution_state(done, task(lastAttemptResult={"exitCode": 0}, **STARTED))
    assert (st.status, st.exit_code, st.detail, st.infra) == (ContainerStatus.EXITED, 0, "", None)
    assert (st.started_at, st.finished_at) == (1796637605.5, 1796637609.25)


def test_a_non_zero_exit_is_the_tasks_own() -> None:
    failed = execution(
        failedCount=1,
        conditions=[
            completed(
                "CONDITION_FAILED",
                "Task mayfly-0a1b2c3d4e5f-x7k2p-task0 failed with message: The container exited with an error.",
                executionReason="NON_ZERO_EXIT_CODE",
            )
        ],
        **ENDED,
    )
    result = {"exitCode": 3, "status": {"code": 2, "message": "The container exited with an error."}}
    st = execution_state(failed, task(lastAttemptResult=result, **STARTED))
    assert (st.exit_code, st.oom_killed, st.detail, st.infra) == (3, False, "", None)


def test_out_of_memory_is_oom_killed_with_the_limit() -> None:
    message = (
        "Memory limit of 512 MiB exceeded with 531 MiB used. Consider increasing the memory limit, see "
        "https://cloud.google.com/run/docs/configuring/memory-limits"
    )
    failed = execution(
        failedCount=1,
        conditions=[completed("CONDITION_FAILED", f"Task ...-task0 failed with message: {message}")],
        **ENDED,
    )
    st = execution_state(failed, task(lastAttemptResult={"status": {"code": 9, "message": message}}, **STARTED))
    assert st.oom_killed
    assert st.exit_code == 137
    assert "out of memory" in st.detail
    assert "512 MiB" in st.detail


def test_cloud_runs_own_timeout_is_explained_and_not_an_exit_zero() -> None:
    failed = execution(
        failedCount=1,
        conditions=[
            completed("CONDITION_FAILED", "Task ...-task0 failed with message: The configured timeout was reached.")
        ],
        **ENDED,
    )
    attempt = {"status": {"code": 4, "message": "The configured timeout was reached."}}
    st = execution_state(failed, task(lastAttemptResult=attempt, **STARTED))
    assert st.exit_code is None
    assert "execution timeout" in st.detail
    assert st.infra is None  # the task ran: not an infrastructure failure


@pytest.mark.parametrize(
    ("condition", "expected", "infra"),
    [
        (
            {"reason": "CONTAINER_MISSING", "message": f"Image '{IMAGE}' not found."},
            "image not found",
            "fail",
        ),
        (
            {
                "reason": "CONTAINER_PERMISSION_DENIED",
                "message": "Google Cloud Run Service Agent service-123@serverless-robot-prod.iam.gserviceaccount.com "
                f"must have permission to read the image, {IMAGE}.",
            },
            "image pull denied",
            "fail",
        ),
        (
            {"message": "Quota exceeded for total allowable CPU per project per region."},
            "quota reached",
            "retry",
        ),
        ({"reason": "INTERNAL", "message": "An internal error occurred."}, "could not run the task", "retry"),
        ({"reason": "VPC_NETWORK_NOT_FOUND", "message": "Network mayfly-vpc not found."}, "VPC network", "fail"),
    ],
)
def test_an_execution_that_never_ran_is_diagnosed(condition: dict[str, str], expected: str, infra: str) -> None:
    failed = execution(
        failedCount=1,
        conditions=[
            completed("CONDITION_FAILED", "The execution failed."),
            {"type": "ResourcesAvailable", "state": "CONDITION_FAILED", **condition},
        ],
        completionTime="2026-12-07T10:00:09.25Z",
    )
    st = execution_state(failed, None)
    assert st.status is ContainerStatus.EXITED
    assert st.exit_code is None
    assert expected in st.detail
    assert condition["message"] in st.detail
    assert st.infra == infra


def test_cancelled_by_mayfly_says_nothing_else_says_who() -> None:
    cancelled = execution(
        cancelledCount=1,
        conditions=[completed("CONDITION_FAILED", "The execution was cancelled.", executionReason="CANCELLED")],
        **ENDED,
    )
    killed = task(lastAttemptResult={"termSignal": 9, "status": {"code": 1, "message": "cancelled"}}, **STARTED)
    ours = execution_state(cancelled, killed, cancelled_by_us=True)
    assert (ours.exit_code, ours.detail) == (137, "")
    assert "outside Mayfly" in execution_state(cancelled, killed).detail


@pytest.mark.parametrize(
    ("status", "body", "retryable", "says"),
    [
        (
            429,
            "Quota exceeded for quota metric 'Job run requests' and limit 'Job run requests per minute per region' "
            "of service 'run.googleapis.com' for consumer 'project_number:123'.",
            True,
            "quota reached",
        ),
        (
            403,
            "Permission 'run.jobs.runWithOverrides' denied on resource 'namespaces/mayfly-test/jobs/mayfly-x' "
            "(or resource may not exist).",
            False,
            "permission denied",
        ),
        (
            403,
            "Permission 'iam.serviceaccounts.actAs' denied on service account task@mayfly-test.iam.gserviceaccount.com",
            False,
            "permission denied",
        ),
        (400, f"Image '{IMAGE}' not found.", False, "image not found"),
        (503, "The service is currently unavailable.", True, "could not run the task"),
    ],
)
def test_refused_launches_say_why_and_whether_to_retry(status: int, body: str, retryable: bool, says: str) -> None:
    failure = launch_error(gx.from_http_status(status, body), "starting the execution of mayfly-t-1")
    assert isinstance(failure, LaunchFailed)
    assert failure.retryable is retryable
    assert says in failure.message
    assert body in failure.message


# ---------------------------------------------------------------- templates


def test_sizes_round_up_to_cloud_run_instances() -> None:
    assert cloud_run_size(0.5, 64) == (1, 512)
    assert cloud_run_size(1, 600) == (1, 768)
    assert cloud_run_size(1, 6000) == (2, 6144)
    assert cloud_run_size(3, 1024) == (4, 2048)
    assert cloud_run_size(8, 32768) == (8, 32768)
    with pytest.raises(LaunchFailed, match="at most 8 vCPU and 32 GiB") as too_big:
        cloud_run_size(9, 1024)
    assert too_big.value.retryable is False


def test_job_templates_are_content_addressed_and_valid_run_v2_messages() -> None:
    spec = JobSpec(image=IMAGE, cpu=1, memory_mb=512, service_account="task@mayfly-test.iam.gserviceaccount.com")
    name = job_id("mayfly-dev", spec)
    assert name == job_id("mayfly-dev", JobSpec(**{**spec.__dict__}))
    assert name != job_id("mayfly-dev", JobSpec(**{**spec.__dict__, "memory_mb": 1024}))
    assert name.startswith("mayfly-dev-")
    assert len(name) == len("mayfly-dev-") + 12
    job = run_v2.Job(job_message(spec))  # unknown or misspelled fields would raise here
    template = job.template.template
    assert template.max_retries == 0
    assert job.template.task_count == 1
    assert template.containers[0].resources.limits == {"cpu": "1", "memory": "512Mi"}
    assert template.service_account == "task@mayfly-test.iam.gserviceaccount.com"
    vpc = run_v2.Job(
        job_message(JobSpec(image=IMAGE, cpu=1, memory_mb=512, vpc_network="net", vpc_egress="ALL_TRAFFIC"))
    )
    assert vpc.template.template.vpc_access.network_interfaces[0].network == "net"
    assert vpc.template.template.vpc_access.egress == run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC
    overrides = run_v2.RunJobRequest.Overrides(run_overrides(("sh", "-c", "echo hi"), {"B": "2", "A": "1"}, 420))
    assert list(overrides.container_overrides[0].args) == ["sh", "-c", "echo hi"]
    assert [e.name for e in overrides.container_overrides[0].env] == ["A", "B"]
    assert (overrides.task_count, overrides.timeout.seconds) == (1, 420)


def test_runtime_images_come_from_the_targets_repository() -> None:
    prefix = "europe-west1-docker.pkg.dev/mayfly-test/mayfly"
    assert job_image("mayfly/runtime-shell:1", prefix) == f"{prefix}/runtime-shell:1"
    assert job_image("busybox:1.36", prefix) == "busybox:1.36"
    assert job_image("mayfly/runtime-shell:1", None) == "mayfly/runtime-shell:1"


def test_a_prefix_that_cannot_name_jobs_is_refused() -> None:
    from mayfly.core.errors import InvalidInput

    with pytest.raises(InvalidInput, match="job_prefix"):
        job_id("Mayfly_Dev", JobSpec(image=IMAGE, cpu=1, memory_mb=512))
