"""Each provider classifies its launch failures into the kinds that move a task to a fallback target.

The inputs are responses as the clouds return them (recorded from AWS, Azure and
Google documentation and error logs); each provider keeps the mapping as data in
its ``diagnose`` module. A kind means another target could avoid the failure; no
kind (a bad request, access denied, the task's own exit or OOM) never moves a task.
"""

from __future__ import annotations

from typing import Any

import pytest

from mayfly.core.placement import MOVABLE_KINDS
from mayfly.providers.aci import diagnose as aci
from mayfly.providers.cloudrun import diagnose as cloudrun
from mayfly.providers.ecs import diagnose as ecs

ECS_CLUSTER = "arn:aws:ecs:eu-west-1:123456789012:cluster/mayfly"


@pytest.mark.parametrize(
    ("failures", "kind"),
    [
        (
            [
                {
                    "arn": ECS_CLUSTER,
                    "reason": "Capacity is unavailable at this time. Please try again later or in a different "
                    "availability zone",
                }
            ],
            "capacity",
        ),
        ([{"arn": ECS_CLUSTER, "reason": "RESOURCE:FARGATE"}], "capacity"),
        ([{"arn": ECS_CLUSTER, "reason": "RESOURCE:MEMORY"}], "capacity"),
        (
            [
                {
                    "arn": ECS_CLUSTER,
                    "reason": "You\u2019ve reached the limit on the number of tasks you can run concurrently",
                }
            ],
            "quota",
        ),
        ([{"arn": ECS_CLUSTER, "reason": "MISSING", "detail": "a container instance attribute"}], None),
        ([{"arn": ECS_CLUSTER, "reason": "INACTIVE"}], None),
    ],
)
def test_ecs_run_task_failures(failures: list[dict[str, str]], kind: str | None) -> None:
    assert ecs.run_task_failure(failures).kind == kind


@pytest.mark.parametrize(
    ("code", "message", "kind"),
    [
        ("ThrottlingException", "Rate exceeded", "throttled"),
        ("ClientException", "You've reached the limit on the number of vCPUs you can run concurrently", "quota"),
        ("ServerException", "Service Unavailable. Please try again later.", None),
        ("InvalidParameterException", "Network Configuration must be provided when networkMode 'awsvpc'", None),
        ("AccessDeniedException", "User is not authorized to perform: ecs:RunTask", None),
        ("ClientException", "TaskDefinition is inactive", None),
    ],
)
def test_ecs_run_task_errors(code: str, message: str, kind: str | None) -> None:
    assert ecs.run_task_error(code, message).kind == kind


def _stopped(reason: str, stopped: str, exit_code: int | None = None, **extra: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "task", "lastStatus": "STOPPED", "reason": reason, "image": "repo/app:1"}
    if exit_code is not None:
        container["exitCode"] = exit_code
    return {"lastStatus": "STOPPED", "stoppedReason": stopped, "containers": [container], **extra}


@pytest.mark.parametrize(
    ("task", "kind"),
    [
        (
            _stopped(
                "CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref "
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1: not found",
                "Task failed to start",
                stopCode="TaskFailedToStart",
            ),
            "image",
        ),
        (
            _stopped(
                "CannotPullContainerError: pull access denied for repo/app, repository does not exist or may "
                "require 'docker login': denied: requested access to the resource is denied",
                "Task failed to start",
            ),
            "image",
        ),
        (_stopped("", "Essential container in task exited", exit_code=3), None),
        (_stopped("OutOfMemoryError: Container killed due to memory usage", "OutOfMemoryError", exit_code=137), None),
    ],
)
def test_ecs_stopped_tasks(task: dict[str, Any], kind: str | None) -> None:
    assert ecs.container_state(task).kind == kind


@pytest.mark.parametrize(
    ("status", "code", "message", "kind"),
    [
        (429, "TooManyRequests", "The request is throttled. Retry after 10 seconds.", "throttled"),
        (
            409,
            "ContainerGroupQuotaReached",
            "Resource type 'Microsoft.ContainerInstance/containerGroups' container group quota 'ContainerGroups' "
            "exceeded in region 'westeurope'. Limit: '100', Usage: '100', Requested: '1'.",
            "quota",
        ),
        (
            400,
            "StandardCoresQuotaExceeded",
            "Resource type 'Microsoft.ContainerInstance/containerGroups' 'StandardCores' quota exceeded in region "
            "'westeurope'. Limit: '0', Usage: '0', Requested: '1'.",
            "region",
        ),
        (
            503,
            "ServiceUnavailable",
            "The requested resource with 'x' CPU and 'y' GB memory is not available in the location 'westeurope' "
            "at this moment. Please retry with a different resource request or in another location.",
            "capacity",
        ),
        (
            400,
            "InaccessibleImage",
            "The image 'myregistry.azurecr.io/app:1' in container group 'g' is not accessible. Please check the "
            "image and registry credential.",
            "image",
        ),
        (403, "AuthorizationFailed", "The client 'x' does not have authorization to perform action", None),
        (400, "InvalidRequestContent", "The request content was invalid and could not be deserialized", None),
    ],
)
def test_aci_create_failures(status: int, code: str, message: str, kind: str | None) -> None:
    assert aci.create_failure(status, code, message).kind == kind


def _google_error(name: str, message: str) -> Exception:
    """An exception shaped as google-api-core's (only its class name and message are read)."""
    cls = type(name, (Exception,), {})
    exc = cls(message)
    exc.message = message  # type: ignore[attr-defined]
    return exc


@pytest.mark.parametrize(
    ("name", "message", "kind"),
    [
        (
            "ResourceExhausted",
            "Quota exceeded for quota metric 'Job run requests' and limit 'Job run requests per minute per region'",
            "quota",
        ),
        ("TooManyRequests", "Too many requests: rate limit exceeded", "throttled"),
        ("ServiceUnavailable", "The service is currently unavailable.", "region"),
        ("InvalidArgument", "spec.template.spec.containers[0].resources.limits.cpu: invalid value", None),
        ("PermissionDenied", "Permission 'run.jobs.run' denied on resource", None),
    ],
)
def test_cloudrun_launch_errors(name: str, message: str, kind: str | None) -> None:
    assert cloudrun.launch_error(_google_error(name, message), "running the job").kind == kind


def test_cloudrun_missing_image_is_an_image_failure() -> None:
    text = "CONTAINER_MISSING: Image 'europe-docker.pkg.dev/p/r/app:1' not found."
    assert cloudrun.failure_kind(text) == "image"
    assert cloudrun.failure_kind("NON_ZERO_EXIT_CODE: Task failed with exit code 3") is None


def test_every_kind_a_provider_gives_moves_a_task() -> None:
    kinds = {kind.value for _, kind in ecs.FAILURE_KINDS}
    kinds |= {kind.value for kind in aci.FAILURE_KINDS.values()}
    kinds |= {row.kind.value for row in cloudrun.DIAGNOSES if row.kind is not None}
    assert kinds <= MOVABLE_KINDS
