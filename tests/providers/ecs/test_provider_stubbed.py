"""The ecs provider against recorded AWS responses (botocore's Stubber), for what moto cannot produce.

moto never fails a RunTask, never throttles, never conflicts on a clientToken and
stops tasks without ECS's reasons. The responses below have the shapes AWS
returns (the Stubber validates every one against the service model) and the
texts ECS writes, as found in stopped tasks and in AWS's troubleshooting guides.
S3 (staging) and STS stay on moto.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest
from botocore.stub import ANY, Stubber

from mayfly.core.errors import AccessDenied, CredentialsMissing, LaunchFailed
from mayfly.core.models import ContainerStatus, LaunchSpec
from mayfly.providers.ecs.aws import Clients
from mayfly.providers.ecs.limiter import TokenBucket
from mayfly.providers.ecs.naming import client_token, started_by
from mayfly.providers.ecs.provider import EcsProvider

if TYPE_CHECKING:
    from conftest import EcsTestWorld

ACCOUNT = "123456789012"
CLUSTER = "mayfly-test"  # the ecs_world fixture's
TASK_ID = "4c1f0b8e9d2a47f6b3e5a7c9d1f2e3a4"
ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task/{CLUSTER}/{TASK_ID}"
HANDLE = f"{CLUSTER}::{ARN}"
FAMILY_ARN = f"arn:aws:ecs:eu-west-1:{ACCOUNT}:task-definition/mayfly-aws-test-3f9a1c2b7d4e:1"
IMAGE = f"{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/mayfly:runtime-shell-1"
T0 = datetime(2024, 5, 14, 9, 30, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


#: A Fargate task that ran and exited 0, as DescribeTasks(include=["TAGS"]) returns it.
STOPPED_TASK: dict[str, Any] = {
    "attachments": [
        {
            "id": "d9e7735a-16aa-4128-bc7a-b2d5115029e9",
            "type": "ElasticNetworkInterface",
            "status": "DELETED",
            "details": [
                {"name": "subnetId", "value": "subnet-0d0eab1bb38d5ca64"},
                {"name": "networkInterfaceId", "value": "eni-0a7f9e3d8b1e4c2a1"},
                {"name": "macAddress", "value": "0a:46:d3:86:f8:c1"},
                {"name": "privateDnsName", "value": "ip-10-0-1-184.eu-west-1.compute.internal"},
                {"name": "privateIPv4Address", "value": "10.0.1.184"},
            ],
        }
    ],
    "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
    "availabilityZone": "eu-west-1a",
    "clusterArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER}",
    "connectivity": "CONNECTED",
    "connectivityAt": at(8),
    "containers": [
        {
            "containerArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:container/{CLUSTER}/{TASK_ID}/0b5a2c1e-7f3d-4b8a-9e6c",
            "taskArn": ARN,
            "name": "task",
            "image": IMAGE,
            "imageDigest": "sha256:8f2e4b3c1d0a9e8f7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a",
            "runtimeId": f"{TASK_ID}-2785438142",
            "lastStatus": "STOPPED",
            "exitCode": 0,
            "networkInterfaces": [
                {"attachmentId": "d9e7735a-16aa-4128-bc7a-b2d5115029e9", "privateIpv4Address": "10.0.1.184"}
            ],
            "healthStatus": "UNKNOWN",
            "cpu": "0",
            "memory": "1024",
        }
    ],
    "cpu": "512",
    "createdAt": at(0),
    "desiredStatus": "STOPPED",
    "enableExecuteCommand": False,
    "executionStoppedAt": at(41),
    "group": "family:mayfly-aws-test-3f9a1c2b7d4e",
    "healthStatus": "UNKNOWN",
    "lastStatus": "STOPPED",
    "launchType": "FARGATE",
    "memory": "1024",
    "overrides": {"containerOverrides": [{"name": "task"}], "inferenceAcceleratorOverrides": []},
    "platformVersion": "1.4.0",
    "platformFamily": "Linux",
    "pullStartedAt": at(9),
    "pullStoppedAt": at(24),
    "startedAt": at(26),
    "startedBy": "m-665f0c2a1b3d4e5f6a7b8c9d-1",
    "stopCode": "EssentialContainerExited",
    "stoppedAt": at(75),
    "stoppedReason": "Essential container in task exited",
    "stoppingAt": at(42),
    "tags": [
        {"key": "mayfly.task", "value": "665f0c2a1b3d4e5f6a7b8c9d"},
        {"key": "mayfly.attempt", "value": "1"},
        {"key": "mayfly.project", "value": "proj1"},
        {"key": "mayfly.home", "value": "home-a"},
        {"key": "mayfly.target", "value": "aws-test"},
        {"key": "aws:ecs:clusterName", "value": CLUSTER},
    ],
    "taskArn": ARN,
    "taskDefinitionArn": FAMILY_ARN,
    "version": 6,
    "ephemeralStorage": {"sizeInGiB": 20},
}


def task_like(**changes: Any) -> dict[str, Any]:
    """STOPPED_TASK with top-level fields changed (None deletes); ``container`` changes the container."""
    task = copy.deepcopy(STOPPED_TASK)
    for key, value in changes.pop("container", {}).items():
        if value is None:
            task["containers"][0].pop(key, None)
        else:
            task["containers"][0][key] = value
    for key, value in changes.items():
        if value is None:
            task.pop(key, None)
        else:
            task[key] = value
    return task


def never_started(
    reason: str, stop_code: str = "TaskFailedToStart", *, container_reason: bool = True
) -> dict[str, Any]:
    """A task ECS stopped before its container ran: no exit code, no start time."""
    return task_like(
        stopCode=stop_code,
        stoppedReason=reason,
        startedAt=None,
        executionStoppedAt=None,
        pullStoppedAt=None,
        connectivity=None,
        connectivityAt=None,
        container={
            "exitCode": None,
            "reason": reason if container_reason else None,
            "imageDigest": None,
            "runtimeId": None,
        },
    )


#: A task just placed: its network interface is being attached.
PROVISIONING_TASK = task_like(
    lastStatus="PROVISIONING",
    desiredStatus="RUNNING",
    stopCode=None,
    stoppedReason=None,
    startedAt=None,
    stoppingAt=None,
    stoppedAt=None,
    executionStoppedAt=None,
    pullStartedAt=None,
    pullStoppedAt=None,
    connectivity=None,
    connectivityAt=None,
    container={"lastStatus": "PENDING", "exitCode": None, "imageDigest": None, "runtimeId": None},
)
RUNNING_TASK = task_like(
    lastStatus="RUNNING",
    desiredStatus="RUNNING",
    stopCode=None,
    stoppedReason=None,
    stoppingAt=None,
    stoppedAt=None,
    executionStoppedAt=None,
    container={"lastStatus": "RUNNING", "exitCode": None},
)


PULL_NOT_FOUND = (
    f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {IMAGE}: "
    f"{IMAGE}: not found"
)
PULL_DENIED = (
    f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {IMAGE}: "
    f"pulling from host {ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com failed with status code [manifests runtime-shell-1]: "
    "403 Forbidden"
)
PULL_TIMEOUT = (
    f"CannotPullContainerError: pull image manifest has been retried 5 time(s): failed to resolve ref {IMAGE}: "
    f'failed to do request: Head "https://{ACCOUNT}.dkr.ecr.eu-west-1.amazonaws.com/v2/mayfly/manifests/'
    'runtime-shell-1": dial tcp 10.0.3.17:443: i/o timeout'
)
LOGS_MISSING = (
    "ResourceInitializationError: failed to validate logger args: create stream has been retried 1 times: "
    "failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist. "
    ": exit status 1"
)
REGISTRY_AUTH = (
    "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
    "unable to retrieve ecr registry auth: service call has been retried 3 time(s): RequestError: send request "
    'failed caused by: Post "https://api.ecr.eu-west-1.amazonaws.com/": dial tcp 52.46.145.223:443: i/o timeout. '
    "Please check your task network configuration."
)


# ---------------------------------------------------------------- fixtures


class Stubs:
    """Stubbers on the ECS and CloudWatch Logs clients of a provider (S3 and STS stay on moto)."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.ecs = Stubber(clients("ecs"))
        self.logs = Stubber(clients("logs"))

    def describe(self, *tasks: dict[str, Any], failures: list[dict[str, str]] | None = None) -> None:
        self.ecs.add_response(
            "describe_tasks",
            {"tasks": list(tasks), "failures": failures or []},
            {"cluster": CLUSTER, "tasks": [ARN], "include": ["TAGS"]},
        )

    def before_run_task(self, spec: LaunchSpec) -> None:
        """What a launch asks before RunTask: ListTasks (running, stopped) and the task definition."""
        for status in ("RUNNING", "STOPPED"):
            self.ecs.add_response(
                "list_tasks",
                {"taskArns": []},
                {"cluster": CLUSTER, "desiredStatus": status, "startedBy": started_by(spec.name)},
            )
        self.ecs.add_response(
            "describe_task_definition",
            {
                "taskDefinition": {
                    "taskDefinitionArn": FAMILY_ARN,
                    "family": "mayfly-aws-test-3f9a1c2b7d4e",
                    "revision": 1,
                    "status": "ACTIVE",
                    "cpu": "512",
                    "memory": "1024",
                    "networkMode": "awsvpc",
                    "requiresCompatibilities": ["FARGATE"],
                    "compatibilities": ["EC2", "FARGATE"],
                    "containerDefinitions": [{"name": "task", "image": "mayfly/runtime-shell:1", "essential": True}],
                    "registeredAt": at(-3600),
                }
            },
            {"taskDefinition": ANY},
        )

    def done(self) -> None:
        self.ecs.assert_no_pending_responses()
        self.logs.assert_no_pending_responses()


@pytest.fixture
def stubs(ecs_world: EcsTestWorld) -> Iterator[Stubs]:
    s = Stubs(Clients(ecs_world.settings.region))
    with s.ecs, s.logs:
        yield s


@pytest.fixture
def stubbed(ecs_world: EcsTestWorld, stubs: Stubs) -> EcsProvider:
    """A provider whose ECS and Logs calls are answered by the stubs."""
    return ecs_world.provider(clients=stubs.clients)


# ---------------------------------------------------------------- stopped tasks: state and diagnosis


@pytest.mark.parametrize(
    ("task", "exit_code", "oom", "detail"),
    [
        (STOPPED_TASK, 0, False, ""),
        (task_like(container={"exitCode": 3}), 3, False, ""),
        (
            task_like(container={"exitCode": 137, "reason": "OutOfMemoryError: Container killed due to memory usage"}),
            137,
            True,
            "killed: out of memory (the container exceeded its limit of 1024 MiB)",
        ),
        (never_started(PULL_NOT_FOUND), None, False, f"image pull failed: image {IMAGE} not found in its registry"),
        (never_started(PULL_DENIED), None, False, "image pull failed: access denied (the execution role needs"),
        (never_started(PULL_TIMEOUT), None, False, "image pull failed: the task cannot reach the registry"),
        (never_started(LOGS_MISSING), None, False, "task could not start: its CloudWatch log group is missing"),
        (never_started(REGISTRY_AUTH), None, False, "task could not start: unable to fetch registry auth or secrets"),
        (
            never_started("Timeout waiting for network interface provisioning to complete."),
            None,
            False,
            "task could not start: its network interface could not be attached",
        ),
        (
            task_like(
                stopCode="SpotInterruption",
                stoppedReason="Your Spot Task was interrupted.",
                container={"exitCode": 143},
            ),
            143,
            False,
            "Fargate Spot capacity was reclaimed: the task was interrupted (Your Spot Task was interrupted.)",
        ),
        (
            task_like(stopCode="UserInitiated", stoppedReason="Task stopped by user", container={"exitCode": 137}),
            137,
            False,
            "stopped outside Mayfly (StopTask): Task stopped by user",
        ),
        (
            task_like(stopCode="UserInitiated", stoppedReason="stopped by Mayfly", container={"exitCode": 143}),
            143,
            False,
            "",
        ),
        (never_started("stopped by Mayfly", stop_code="UserInitiated", container_reason=False), None, False, ""),
    ],
    ids=[
        "exit-0",
        "exit-3",
        "oom",
        "pull-not-found",
        "pull-denied",
        "pull-timeout",
        "log-group-missing",
        "registry-auth",
        "eni-timeout",
        "spot-interruption",
        "stopped-outside-mayfly",
        "stopped-by-mayfly",
        "cancelled-before-start",
    ],
)
def test_a_stopped_task_is_reported_with_its_exit_code_and_a_diagnosis(
    stubbed: EcsProvider, stubs: Stubs, task: dict[str, Any], exit_code: int | None, oom: bool, detail: str
) -> None:
    stubs.describe(task)
    st = stubbed.state(HANDLE)
    stubs.done()
    assert st.status is ContainerStatus.EXITED
    assert st.exit_code == exit_code
    assert st.oom_killed is oom
    assert st.detail.startswith(detail)
    if not detail:
        assert st.detail == ""
    if exit_code is not None:
        assert st.started_at == at(26).timestamp()
        assert st.finished_at == at(41).timestamp()  # when the container stopped, not when the ENI was gone


def test_a_task_still_deprovisioning_after_its_container_exited_counts_as_exited(
    stubbed: EcsProvider, stubs: Stubs
) -> None:
    stubs.describe(task_like(lastStatus="DEPROVISIONING", stoppedAt=None, container={"exitCode": 2}))
    st = stubbed.state(HANDLE)
    assert st.status is ContainerStatus.EXITED
    assert st.exit_code == 2
    assert st.finished_at == at(41).timestamp()


@pytest.mark.parametrize(
    ("task", "status"),
    [
        (PROVISIONING_TASK, "pending"),
        (PROVISIONING_TASK | {"lastStatus": "PENDING", "pullStartedAt": at(9)}, "pending"),
        (RUNNING_TASK, "running"),
    ],
    ids=["provisioning", "pending", "running"],
)
def test_a_task_on_its_way_up(stubbed: EcsProvider, stubs: Stubs, task: dict[str, Any], status: str) -> None:
    stubs.describe(task)
    st = stubbed.state(HANDLE)
    assert st.status.value == status
    assert st.exit_code is None
    if status == "running":
        assert st.started_at == at(26).timestamp()


def test_a_task_ecs_reports_missing_is_missing(stubbed: EcsProvider, stubs: Stubs) -> None:
    stubs.describe(failures=[{"arn": ARN, "reason": "MISSING"}])
    assert stubbed.state(HANDLE).status is ContainerStatus.MISSING


def test_missing_right_after_launch_is_not_believed_at_once(
    stubbed: EcsProvider, stubs: Stubs, ecs_world: EcsTestWorld
) -> None:
    """ECS is eventually consistent: a task RunTask just returned may be MISSING from DescribeTasks for a while."""
    stubbed.poller.seed(HANDLE, PROVISIONING_TASK)
    stubs.describe(failures=[{"arn": ARN, "reason": "MISSING"}])
    ecs_world.clock.advance(5)
    assert stubbed.state(HANDLE).status is ContainerStatus.PENDING
    stubs.describe(failures=[{"arn": ARN, "reason": "MISSING"}])
    ecs_world.clock.advance(120)
    assert stubbed.state(HANDLE).status is ContainerStatus.MISSING


# ---------------------------------------------------------------- RunTask refused


@pytest.mark.parametrize(
    ("failures", "retryable", "message"),
    [
        (
            [
                {
                    "arn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:container-instance/{CLUSTER}/7c1d",
                    "reason": "RESOURCE:MEMORY",
                }
            ],
            True,
            "no Fargate capacity for the task right now: RESOURCE:MEMORY",
        ),
        (
            [
                {
                    "arn": FAMILY_ARN,
                    "reason": "Capacity is unavailable at this time. Please try again later or in a different "
                    "availability zone",
                }
            ],
            True,
            "no Fargate capacity for the task right now",
        ),
        (
            [{"arn": FAMILY_ARN, "reason": "You've reached the limit on the number of tasks you can run concurrently"}],
            True,
            "the account's Fargate task or vCPU quota is reached",
        ),
        (
            [{"arn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER}", "reason": "MISSING"}],
            False,
            "ECS could not start",
        ),
        ([{"arn": FAMILY_ARN, "reason": "ATTRIBUTE", "detail": "requires ecs.capability.fargate"}], False, "ATTRIBUTE"),
    ],
    ids=["resource-memory", "capacity", "quota", "missing", "attribute"],
)
def test_runtask_failures_become_launch_failed_with_a_diagnosis(
    stubbed: EcsProvider,
    stubs: Stubs,
    ecs_world: EcsTestWorld,
    failures: list[dict[str, str]],
    retryable: bool,
    message: str,
) -> None:
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    stubs.ecs.add_response("run_task", {"tasks": [], "failures": failures}, None)
    with pytest.raises(LaunchFailed, match=message) as err:
        stubbed.launch(spec)
    assert err.value.retryable is retryable
    stubs.done()


@pytest.mark.parametrize(
    ("code", "message", "retryable"),
    [
        (
            "InvalidParameterException",
            "Error retrieving subnet information for [subnet-0abc]: The subnet ID 'subnet-0abc' does not exist "
            "(ErrorCode: InvalidSubnetID.NotFound)",
            False,
        ),
        ("ClientException", "TaskDefinition is inactive", False),
        (
            "AccessDeniedException",
            f"User: arn:aws:sts::{ACCOUNT}:assumed-role/mayfly-runner/i-0abc is not authorized to perform: "
            f"ecs:RunTask on resource: {FAMILY_ARN} because no identity-based policy allows the ecs:RunTask action",
            False,
        ),
        (
            "PlatformTaskDefinitionIncompatibilityException",
            "The specified platform does not satisfy the task definition's required capabilities.",
            False,
        ),
        ("ServerException", "Service Unavailable. Please try again later.", True),
    ],
    ids=["invalid-subnet", "inactive-definition", "access-denied", "platform", "server-error"],
)
def test_runtask_errors_become_launch_failed(
    stubbed: EcsProvider, stubs: Stubs, ecs_world: EcsTestWorld, code: str, message: str, retryable: bool
) -> None:
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    stubs.ecs.add_client_error("run_task", service_error_code=code, service_message=message, http_status_code=400)
    with pytest.raises(LaunchFailed, match=code) as err:
        stubbed.launch(spec)
    assert err.value.retryable is retryable
    stubs.done()


def running_task_of(spec: LaunchSpec, *, home: str = "home-a", attempt: int | None = None) -> dict[str, Any]:
    """The RUNNING task ECS started for ``spec`` (as RunTask and DescribeTasks return it)."""
    return RUNNING_TASK | {
        "startedBy": started_by(spec.name),
        "tags": [
            {"key": "mayfly.task", "value": spec.task_id},
            {"key": "mayfly.attempt", "value": str(attempt or spec.attempt)},
            {"key": "mayfly.project", "value": spec.project},
            {"key": "mayfly.home", "value": home},
            {"key": "mayfly.target", "value": "aws-test"},
        ],
    }


def test_a_conflicting_client_token_of_this_very_attempt_returns_its_task(
    stubbed: EcsProvider, stubs: Stubs, ecs_world: EcsTestWorld
) -> None:
    """A launch whose RunTask succeeded unseen: ECS refuses the token with other signed URLs, naming the task."""
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    stubs.ecs.add_client_error(
        "run_task",
        service_error_code="ConflictException",
        service_message="The specified client token has already been used in a request with different parameters.",
        http_status_code=400,
        modeled_fields={"resourceIds": [ARN]},
    )
    stubs.describe(running_task_of(spec))

    result = stubbed.launch(spec)

    assert result.existing
    assert result.handle == HANDLE
    stubs.done()


@pytest.mark.parametrize("owner", ["another-attempt", "another-home", "unnamed"])
def test_a_conflicting_client_token_of_anything_else_starts_nothing(
    stubbed: EcsProvider, stubs: Stubs, ecs_world: EcsTestWorld, owner: str
) -> None:
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    stubs.ecs.add_client_error(
        "run_task",
        service_error_code="ConflictException",
        service_message="The specified client token has already been used in a request with different parameters.",
        http_status_code=400,
        modeled_fields={"resourceIds": [] if owner == "unnamed" else [ARN]},
    )
    if owner == "another-attempt":
        stubs.describe(running_task_of(spec, attempt=2))
    elif owner == "another-home":
        stubs.describe(running_task_of(spec, home="home-b"))

    with pytest.raises(LaunchFailed, match="ConflictException") as err:
        stubbed.launch(spec)

    assert err.value.retryable is False
    assert client_token("home-a", "aws-test", spec.name) in err.value.message
    stubs.done()  # and no second RunTask


def test_throttled_runtask_backs_off_and_retries_through_the_launch_bucket(
    ecs_world: EcsTestWorld, stubs: Stubs
) -> None:
    bucket = TokenBucket(20, 100, clock=lambda: 0.0)  # no refill: counts the tokens taken
    provider = ecs_world.provider(clients=stubs.clients, launch_limiter=bucket)
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    for _ in range(2):
        stubs.ecs.add_client_error(
            "run_task", service_error_code="ThrottlingException", service_message="Rate exceeded", http_status_code=400
        )
    stubs.ecs.add_response("run_task", {"tasks": [running_task_of(spec)], "failures": []}, None)
    ecs_world.clock.slept.clear()

    result = provider.launch(spec)

    assert result.handle == HANDLE
    assert not result.existing
    assert bucket.available() == 97  # one token per RunTask call
    assert len(ecs_world.clock.slept) == 2  # one backoff per throttled call
    assert all(0 <= s <= 20 for s in ecs_world.clock.slept)
    stubs.done()


def test_runtask_throttled_without_end_gives_up_retryably(ecs_world: EcsTestWorld, stubs: Stubs) -> None:
    provider = ecs_world.provider(clients=stubs.clients)
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    for _ in range(7):
        stubs.ecs.add_client_error(
            "run_task", service_error_code="ThrottlingException", service_message="Rate exceeded", http_status_code=400
        )
    with pytest.raises(LaunchFailed, match="throttled RunTask 7 times") as err:
        provider.launch(spec)
    assert err.value.retryable is True
    assert err.value.kind == "throttled"  # a task with fallback targets moves to the next one
    stubs.done()


def test_fargate_spot_asks_for_the_spot_capacity_provider(ecs_world: EcsTestWorld, stubs: Stubs) -> None:
    """NOTE: moto's RunTask cannot start a task without launchType, so the request is checked here."""
    provider = ecs_world.provider(clients=stubs.clients, capacity_provider="FARGATE_SPOT")
    spec = ecs_world.spec()
    stubs.before_run_task(spec)
    expected = {
        key: ANY
        for key in (
            "cluster",
            "taskDefinition",
            "count",
            "startedBy",
            "clientToken",
            "platformVersion",
            "networkConfiguration",
            "overrides",
            "tags",
            "enableECSManagedTags",
        )
    }
    expected["capacityProviderStrategy"] = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
    stubs.ecs.add_response("run_task", {"tasks": [running_task_of(spec)], "failures": []}, expected)
    assert provider.launch(spec).handle == HANDLE
    stubs.done()


# ---------------------------------------------------------------- CloudWatch logs


def log_page(messages: list[str], token: str) -> dict[str, Any]:
    """A GetLogEvents answer."""
    events = [
        {"timestamp": 1715679000000 + i, "message": m, "ingestionTime": 1715679002000 + i}
        for i, m in enumerate(messages)
    ]
    return {"events": events, "nextForwardToken": token, "nextBackwardToken": "b/" + token[2:]}


STREAM = f"mayfly/task/{TASK_ID}"


def expect_page(stubs: Stubs, messages: list[str], token: str, after: str | None = None) -> None:
    params: dict[str, Any] = {"logGroupName": "/mayfly/test", "logStreamName": STREAM, "startFromHead": True}
    if after is not None:
        params["nextToken"] = after
    stubs.logs.add_response("get_log_events", log_page(messages, token), params)


F1 = "f/38283374285763027474218823486071349871453781523432030208"
F2 = "f/38283374285763027474218823486071349871453781523432030211"
F3 = "f/38283374285763027474218823486071349871453781523432030212"


def test_logs_page_through_the_stream_until_the_token_repeats(stubbed: EcsProvider, stubs: Stubs) -> None:
    expect_page(stubs, ["one", "two"], F1)
    expect_page(stubs, ["three"], F2, after=F1)
    expect_page(stubs, [], F2, after=F2)
    assert b"".join(stubbed.logs(HANDLE)) == b"one\ntwo\nthree\n"
    stubs.done()


def test_following_logs_waits_for_the_stream_and_drains_it_after_the_task_stopped(
    stubbed: EcsProvider, stubs: Stubs
) -> None:
    # Before the container starts its stream does not exist.
    stubs.logs.add_client_error(
        "get_log_events",
        service_error_code="ResourceNotFoundException",
        service_message="The specified log stream does not exist.",
        http_status_code=400,
    )
    stubs.describe(PROVISIONING_TASK)
    expect_page(stubs, ["started", "working"], F1)
    expect_page(stubs, [], F1, after=F1)
    stubs.describe(RUNNING_TASK)
    expect_page(stubs, ["done"], F2, after=F1)
    expect_page(stubs, [], F2, after=F2)
    stubs.describe(STOPPED_TASK)
    # CloudWatch delivers the last line after the task stopped.
    expect_page(stubs, ["late line"], F3, after=F2)
    expect_page(stubs, [], F3, after=F3)
    expect_page(stubs, [], F3, after=F3)
    expect_page(stubs, [], F3, after=F3)

    chunks = list(stubbed.logs(HANDLE, follow=True))

    assert b"".join(chunks) == b"started\nworking\ndone\nlate line\n"
    stubs.done()


# ---------------------------------------------------------------- check


def test_check_names_the_identity_denied_access_to_the_cluster(stubbed: EcsProvider, stubs: Stubs) -> None:
    stubs.ecs.add_client_error(
        "describe_clusters",
        service_error_code="AccessDeniedException",
        service_message=f"User: arn:aws:sts::{ACCOUNT}:user/moto is not authorized to perform: ecs:DescribeClusters "
        f"on resource: arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER} because no identity-based policy allows "
        "the ecs:DescribeClusters action",
        http_status_code=400,
    )
    with pytest.raises(
        AccessDenied,
        match=rf"^access denied to ECS cluster {CLUSTER} \(ecs:DescribeClusters\) "
        rf"for arn:aws:sts::{ACCOUNT}:user/moto$",
    ):
        stubbed.check()


def test_check_says_when_the_credentials_are_expired(ecs_world: EcsTestWorld) -> None:
    clients = Clients(ecs_world.settings.region)
    with Stubber(clients("sts")) as sts:
        sts.add_client_error(
            "get_caller_identity",
            service_error_code="ExpiredToken",
            service_message="The security token included in the request is expired",
            http_status_code=403,
        )
        with pytest.raises(CredentialsMissing, match=r"^AWS rejected the credentials \(ExpiredToken\)"):
            ecs_world.provider(clients=clients).check()


def test_check_names_a_bucket_it_may_not_read(ecs_world: EcsTestWorld) -> None:
    clients = Clients(ecs_world.settings.region)
    with Stubber(clients("s3")) as s3:
        s3.add_client_error("head_bucket", service_error_code="403", service_message="Forbidden", http_status_code=403)
        with pytest.raises(AccessDenied, match=r"^access denied to S3 bucket mayfly-test-bucket \(s3:ListBucket\)"):
            ecs_world.provider(clients=clients).check()


def test_check_says_when_the_cluster_is_not_active(stubbed: EcsProvider, stubs: Stubs) -> None:
    stubs.ecs.add_response(
        "describe_clusters",
        {
            "clusters": [
                {
                    "clusterArn": f"arn:aws:ecs:eu-west-1:{ACCOUNT}:cluster/{CLUSTER}",
                    "clusterName": CLUSTER,
                    "status": "INACTIVE",
                    "registeredContainerInstancesCount": 0,
                    "runningTasksCount": 0,
                    "pendingTasksCount": 0,
                    "activeServicesCount": 0,
                }
            ],
            "failures": [],
        },
        {"clusters": [CLUSTER]},
    )
    with pytest.raises(Exception, match=f"^ECS cluster {CLUSTER} is INACTIVE, not ACTIVE$"):
        stubbed.check()
