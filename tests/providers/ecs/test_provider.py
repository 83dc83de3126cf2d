"""The ecs provider against moto in-process: the real boto3 calls, ECS/S3/CloudWatch state checked afterwards.

What moto cannot do (RunTask failures, conflicts, throttling, the reasons ECS gives
for a stopped task) is in ``test_provider_stubbed.py``, with recorded AWS responses.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.errors import (
    CredentialsMissing,
    InvalidInput,
    LaunchFailed,
    MissingDependency,
    NotFound,
    TaskContainerNotFound,
    Unavailable,
)
from mayfly.core.messages import run_key
from mayfly.core.models import ContainerStatus
from mayfly.core.plugins import build_plugins
from mayfly.core.provider import Capability, ProviderContext, check_capability
from mayfly.core.staging import result_key
from mayfly.providers.ecs import EcsProvider, EcsSettings
from mayfly.providers.ecs.naming import client_token, started_by
from mayfly.providers.ecs.s3 import S3BlobStore
from mayfly.providers.ecs.sqs import SqsQueueSet

if TYPE_CHECKING:
    from conftest import EcsTestWorld

CLUSTER = "mayfly-test"  # the ecs_world fixture's (conftest.py)
LOG_GROUP = "/mayfly/test"
#: Settings of a target that exists nowhere (for tests that never reach AWS).
SETTINGS = EcsSettings(
    region="eu-west-1",
    cluster=CLUSTER,
    subnets=["subnet-1"],
    execution_role_arn="arn:aws:iam::123456789012:role/x",
    log_group=LOG_GROUP,
    bucket="b",
    tasks_queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/t",
    control_queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/c",
    events_queue_url="https://sqs.eu-west-1.amazonaws.com/123456789012/e",
)


def record_calls(world_or_client: Any, operation: str) -> list[dict[str, Any]]:
    """The parameters of every ``operation`` call the client makes from now on (observed, not mocked)."""
    seen: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_: Any) -> None:
        seen.append(params)

    world_or_client.meta.events.register(f"provide-client-params.{operation}", keep)
    return seen


def stop_externally(world: EcsTestWorld, handle: str, reason: str = "Essential container in task exited") -> None:
    """Stop a task the way its exit would, behind the provider's back.

    NOTE: moto runs no containers; StopTask is its only way to make a task STOPPED (exit code 0, no stopCode).
    """
    cluster, _, arn = handle.rpartition("::")
    world.clients("ecs").stop_task(cluster=cluster, task=arn, reason=reason)


def describe(world: EcsTestWorld, handle: str) -> dict[str, Any]:
    _, _, arn = handle.rpartition("::")
    task: dict[str, Any] = world.clients("ecs").describe_tasks(cluster=CLUSTER, tasks=[arn], include=["TAGS"])["tasks"][
        0
    ]
    return task


def task_arns(world: EcsTestWorld) -> list[str]:
    ecs = world.clients("ecs")
    arns: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        arns += ecs.list_tasks(cluster=CLUSTER, desiredStatus=status)["taskArns"]
    return arns


# ---------------------------------------------------------------- declarations and registration


def test_ecs_is_registered_through_its_entry_point() -> None:
    assert build_plugins().registry.get("ecs") is EcsProvider


def test_capabilities_are_declared_with_reasons() -> None:
    assert {Capability.LOG_STREAMING, Capability.CANCEL, Capability.REATTACH, Capability.SPOT} <= set(
        EcsProvider.capabilities
    )
    with pytest.raises(Exception, match="network interface"):
        check_capability(EcsProvider, Capability.NETWORK_NONE)
    with pytest.raises(Exception, match="GPU"):
        check_capability(EcsProvider, Capability.GPU)
    assert EcsProvider.limits.max_cpu == 16
    assert EcsProvider.limits.max_memory_mb == 120 * 1024
    undocumented = [n for n, f in EcsProvider.Settings.model_fields.items() if not f.description]
    assert not undocumented


# ---------------------------------------------------------------- launch


def test_launch_runs_one_fargate_task_carrying_the_attempts_identity(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    runs = record_calls(provider._clients("ecs"), "ecs.RunTask")
    spec = ecs_world.spec("echo hello", env={"GREETING": "hi"})

    result = provider.launch(spec)

    assert not result.existing
    cluster, _, arn = result.handle.rpartition("::")
    assert cluster == CLUSTER
    assert ":task/" in arn
    assert len(runs) == 1
    run = runs[0]
    assert run["launchType"] == "FARGATE"
    assert run["count"] == 1
    assert run["startedBy"] == f"m-{spec.task_id}-1"
    assert run["clientToken"] == client_token("home-a", "aws-test", spec.name)
    assert run["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == ecs_world.settings.subnets
    assert run["networkConfiguration"]["awsvpcConfiguration"]["assignPublicIp"] == "ENABLED"
    (override,) = run["overrides"]["containerOverrides"]
    assert override["name"] == "task"
    assert override["command"] == ["/usr/local/bin/mayfly-boot", "echo hello"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["GREETING"] == "hi"
    assert env["MAYFLY_TASK_ID"] == spec.task_id
    for name in ("MAYFLY_PAYLOAD_URL", "MAYFLY_CONFIG_URL", "MAYFLY_RESULT_URL"):
        assert env[name].startswith("https://"), name
    assert "cpu" not in run["overrides"]  # the task definition has the size
    # The task on "AWS" carries the attempt's tags; the payload and config are staged in S3.
    task = describe(ecs_world, result.handle)
    tags = {t["key"]: t["value"] for t in task["tags"]}
    assert tags == {
        "mayfly.task": spec.task_id,
        "mayfly.attempt": "1",
        "mayfly.project": "proj1",
        "mayfly.home": "home-a",
        "mayfly.target": "aws-test",
        "mayfly.code": "hello",
    }
    assert ecs_world.blobs.get(run_key(spec.task_id, 1, "payload.json")) == b'{"n": 7}'
    assert ecs_world.blobs.get(run_key(spec.task_id, 1, "config.json")) == b'{"mode": "test"}'


def test_the_task_definition_is_fargate_awsvpc_with_awslogs(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider(image_prefix="123456789012.dkr.ecr.eu-west-1.amazonaws.com/mayfly", stop_timeout=45)
    handle = provider.launch(ecs_world.spec(cpu=0.3, memory_mb=600)).handle

    taskdef_arn = describe(ecs_world, handle)["taskDefinitionArn"]
    td = ecs_world.clients("ecs").describe_task_definition(taskDefinition=taskdef_arn)["taskDefinition"]
    assert td["family"].startswith("mayfly-aws-test-")
    assert len(td["family"]) == len("mayfly-aws-test-") + 12
    assert td["requiresCompatibilities"] == ["FARGATE"]
    assert td["networkMode"] == "awsvpc"
    assert (td["cpu"], td["memory"]) == ("512", "1024")  # rounded up to a Fargate size
    assert td["executionRoleArn"] == ecs_world.settings.execution_role_arn
    (container,) = td["containerDefinitions"]
    assert container["name"] == "task"
    assert container["essential"] is True
    assert container["image"] == "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mayfly:runtime-shell-1"
    assert container["stopTimeout"] == 45
    assert container["logConfiguration"] == {
        "logDriver": "awslogs",
        "options": {
            "awslogs-group": LOG_GROUP,
            "awslogs-region": "eu-west-1",
            "awslogs-stream-prefix": "mayfly",
        },
    }


def test_many_launches_of_one_image_and_size_register_one_task_definition(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    registrations = record_calls(provider._clients("ecs"), "ecs.RegisterTaskDefinition")
    specs = [ecs_world.spec(f"echo {i}") for i in range(12)]
    errors: list[BaseException] = []

    def launch(i: int) -> None:
        try:
            provider.launch(specs[i])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=launch, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert len(registrations) == 1
    # NOTE: moto's familyPrefix matches whole family names only, so every definition is listed here.
    assert len(ecs_world.clients("ecs").list_task_definitions()["taskDefinitionArns"]) == 1
    assert len(task_arns(ecs_world)) == len(specs)
    # Another runner process reuses the registered definition instead of adding a revision.
    other = ecs_world.provider()
    other_registrations = record_calls(other._clients("ecs"), "ecs.RegisterTaskDefinition")
    other.launch(ecs_world.spec("echo other"))
    assert other_registrations == []
    # A different size is a different definition.
    provider.launch(ecs_world.spec(memory_mb=4096))
    assert len(ecs_world.clients("ecs").list_task_definitions()["taskDefinitionArns"]) == 2


def test_a_second_launch_of_the_same_spec_returns_the_same_task(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    spec = ecs_world.spec()
    first = provider.launch(spec)
    second = provider.launch(spec)
    assert second.existing
    assert second.handle == first.handle
    assert len(task_arns(ecs_world)) == 1


def test_a_restarted_runner_finds_the_task_by_started_by_instead_of_launching_again(ecs_world: EcsTestWorld) -> None:
    """Test plan 3: a crash between launch and saving the handle; the next process launches the same spec."""
    spec = ecs_world.spec()
    first = ecs_world.provider().launch(spec)

    restarted = ecs_world.provider()
    lists = record_calls(restarted._clients("ecs"), "ecs.ListTasks")
    runs = record_calls(restarted._clients("ecs"), "ecs.RunTask")
    again = restarted.launch(spec)

    assert again.existing
    assert again.handle == first.handle
    assert runs == []
    assert {p["startedBy"] for p in lists} == {started_by(spec.name)}
    assert len(task_arns(ecs_world)) == 1
    assert restarted.find(spec.name) == again


def test_launch_right_after_an_empty_find_does_not_list_again(ecs_world: EcsTestWorld) -> None:
    """The runner calls find, then launch: the second ListTasks round would only repeat the first."""
    provider = ecs_world.provider()
    lists = record_calls(provider._clients("ecs"), "ecs.ListTasks")
    spec = ecs_world.spec()
    assert provider.find(spec.name) is None
    provider.launch(spec)
    assert [p["desiredStatus"] for p in lists] == ["RUNNING", "STOPPED"]


def test_transport_is_the_targets_sqs_queues_and_s3_bucket(ecs_world: EcsTestWorld) -> None:
    transport = EcsProvider.transport(ecs_world.settings, "aws-test")
    assert isinstance(transport.queues, SqsQueueSet)
    assert isinstance(transport.blobs, S3BlobStore)
    transport.blobs.put("runs/t1/1/x", b"x")
    assert ecs_world.blobs.get("runs/t1/1/x") == b"x"


def test_a_runtask_response_lost_in_transit_does_not_start_a_second_task(ecs_world: EcsTestWorld) -> None:
    """Test plan 4: ECS applies RunTask, then the response is lost (read timeout).

    NOTE: moto ignores clientToken (AWS would return the same task for a resent RunTask); the provider
    finds the task by startedBy before resending, which is what this test sees.
    """
    from botocore.exceptions import ReadTimeoutError

    provider = ecs_world.provider()
    dropped: list[str] = []

    def drop_response(**_: Any) -> None:
        if not dropped:
            dropped.append("RunTask")
            raise ReadTimeoutError(endpoint_url="https://ecs.eu-west-1.amazonaws.com/")

    provider._clients("ecs").meta.events.register("after-call.ecs.RunTask", drop_response)
    spec = ecs_world.spec()

    result = provider.launch(spec)

    assert dropped == ["RunTask"]
    assert result.existing
    assert task_arns(ecs_world) == [result.handle.rpartition("::")[2]]


def test_the_find_of_another_home_does_not_see_our_task(ecs_world: EcsTestWorld) -> None:
    spec = ecs_world.spec()
    ecs_world.provider().launch(spec)
    assert ecs_world.provider(home_id="home-b").find(spec.name) is None
    assert ecs_world.provider(target="aws-other").find(spec.name) is None


@pytest.mark.parametrize(
    ("cpu", "memory_mb"), [(17.0, 4096), (16.0, 123 * 1024)], ids=["cpu-over-16", "memory-over-120GiB"]
)
def test_a_task_larger_than_fargate_allows_is_refused_and_nothing_starts(
    ecs_world: EcsTestWorld, cpu: float, memory_mb: int
) -> None:
    with pytest.raises(LaunchFailed, match="at most 16 vCPU and 120 GiB") as err:
        ecs_world.provider().launch(ecs_world.spec(cpu=cpu, memory_mb=memory_mb))
    assert err.value.retryable is False
    assert task_arns(ecs_world) == []


def test_network_none_is_refused(ecs_world: EcsTestWorld) -> None:
    with pytest.raises(LaunchFailed, match="awsvpc") as err:
        ecs_world.provider().launch(ecs_world.spec(network="none"))
    assert err.value.retryable is False


def test_an_environment_too_large_for_ecs_overrides_is_refused_before_runtask(ecs_world: EcsTestWorld) -> None:
    with pytest.raises(LaunchFailed, match="8192") as err:
        ecs_world.provider().launch(ecs_world.spec(env={"BIG": "x" * 8000}))
    assert err.value.retryable is False
    assert task_arns(ecs_world) == []


# ---------------------------------------------------------------- state, wait


def test_state_follows_the_task_from_running_to_exited(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec()).handle
    assert provider.state(handle).status is ContainerStatus.RUNNING

    stop_externally(ecs_world, handle)
    ecs_world.clock.advance(ecs_world.settings.status_poll_seconds)
    st = provider.state(handle)

    assert st.status is ContainerStatus.EXITED
    assert st.exit_code == 0  # NOTE: moto reports exit code 0 for every stopped container
    assert st.detail == ""  # "Essential container in task exited" is a normal exit
    assert not st.oom_killed


def test_state_is_served_from_the_shared_cache_within_the_poll_interval(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec()).handle
    describes = record_calls(provider._clients("ecs"), "ecs.DescribeTasks")
    for _ in range(5):
        provider.state(handle)
    assert len(describes) <= 1
    ecs_world.clock.advance(ecs_world.settings.status_poll_seconds)
    provider.state(handle)
    assert len(describes) <= 2


def test_states_describes_at_most_100_tasks_per_call(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    launched = [provider.launch(ecs_world.spec(f"echo {i}")).handle for i in range(3)]
    unknown = [f"{CLUSTER}::arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/{i:032x}" for i in range(230)]
    provider.poller.forget(launched[0])
    describes = record_calls(provider._clients("ecs"), "ecs.DescribeTasks")

    states = provider.states(launched + unknown)

    # The two other launched tasks are known from RunTask's answer and not asked about again.
    assert [len(p["tasks"]) for p in describes] == [100, 100, 31]
    assert all(p["include"] == ["TAGS"] for p in describes)
    assert {states[h].status for h in launched} == {ContainerStatus.RUNNING}
    assert {states[h].status for h in unknown} == {ContainerStatus.MISSING}


def test_wait_polls_until_the_task_stops(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec()).handle
    # Still running when the wait times out.
    assert provider.wait(handle, 10.0).status is ContainerStatus.RUNNING

    describes = record_calls(provider._clients("ecs"), "ecs.DescribeTasks")

    def stop_before_the_third_poll(params: dict[str, Any], **_: Any) -> None:
        if len(describes) == 3:
            stop_externally(ecs_world, handle)

    provider._clients("ecs").meta.events.register("provide-client-params.ecs.DescribeTasks", stop_before_the_third_poll)
    st = provider.wait(handle, 600.0)

    assert st.status is ContainerStatus.EXITED
    assert len(describes) == 3


# ---------------------------------------------------------------- cancel, remove


def test_cancel_stops_the_task_and_returns_once_ecs_reports_it_stopped(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec("sleep 300")).handle
    stops = record_calls(provider._clients("ecs"), "ecs.StopTask")

    provider.cancel(handle, 10.0)

    assert [s["reason"] for s in stops] == ["stopped by Mayfly"]
    assert describe(ecs_world, handle)["lastStatus"] == "STOPPED"
    st = provider.state(handle)
    assert st.status is ContainerStatus.EXITED
    assert st.detail == ""  # the runner knows why it stopped the task
    # Cancelling a stopped task is a no-op.
    provider.cancel(handle, 10.0)
    assert len(stops) == 1


def test_cancel_of_an_unknown_task_says_so(ecs_world: EcsTestWorld) -> None:
    handle = f"{CLUSTER}::arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/{'0' * 32}"
    with pytest.raises(TaskContainerNotFound):
        ecs_world.provider().cancel(handle, 1.0)


def test_remove_stops_marks_and_cleans_up_and_is_idempotent(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    spec = ecs_world.spec("sleep 300")
    handle = provider.launch(spec).handle

    provider.remove(handle)

    task = describe(ecs_world, handle)
    assert task["desiredStatus"] == "STOPPED"
    assert {"key": "mayfly.removed", "value": "1"} in task["tags"]
    assert provider.state(handle).status is ContainerStatus.MISSING
    assert provider.find(spec.name) is None
    assert not ecs_world.blobs.exists(run_key(spec.task_id, 1, "payload.json"))
    assert not ecs_world.blobs.exists(run_key(spec.task_id, 1, "config.json"))
    provider.remove(handle)
    # Another process sees it gone too (the tag), and reattach skips it.
    other = ecs_world.provider()
    assert other.state(handle).status is ContainerStatus.MISSING
    assert other.find(spec.name) is None
    assert other.reattach() == []


def test_remove_keeps_the_result(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    spec = ecs_world.spec()
    handle = provider.launch(spec).handle
    ecs_world.blobs.put(result_key(spec.task_id, 1), b'{"ok": true}')
    stop_externally(ecs_world, handle)
    provider.remove(handle)
    assert ecs_world.blobs.get(result_key(spec.task_id, 1)) == b'{"ok": true}'


# ---------------------------------------------------------------- result, reattach


def test_result_is_what_the_boot_script_uploaded(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    spec = ecs_world.spec()
    handle = provider.launch(spec).handle
    assert provider.result(handle, 1024) is None
    ecs_world.blobs.put(result_key(spec.task_id, 1), b'{"answer": 42}')
    assert provider.result(handle, 1024) == b'{"answer": 42}'
    with pytest.raises(InvalidInput, match="10 bytes"):
        provider.result(handle, 10)
    # A fresh process knows the attempt from the task's tags.
    assert ecs_world.provider().result(handle, 1024) == b'{"answer": 42}'


def test_reattach_finds_this_homes_tasks_on_this_target_only(ecs_world: EcsTestWorld) -> None:
    ours = ecs_world.provider()
    running = ecs_world.spec("sleep 300")
    done = ecs_world.spec("true", attempt=2)
    handles = {(s.task_id, s.attempt): ours.launch(s).handle for s in (running, done)}
    stop_externally(ecs_world, handles[(done.task_id, 2)])
    ecs_world.provider(home_id="home-b").launch(ecs_world.spec())
    ecs_world.provider(target="aws-other").launch(ecs_world.spec())

    found = {(a.task_id, a.attempt): a for a in ecs_world.provider().reattach()}

    assert set(found) == set(handles)
    assert found[(running.task_id, 1)].handle == handles[(running.task_id, 1)]
    assert found[(running.task_id, 1)].state.status is ContainerStatus.RUNNING
    assert found[(done.task_id, 2)].state.status is ContainerStatus.EXITED


def test_handles_are_cluster_and_task_arn(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec()).handle
    bare_arn = handle.rpartition("::")[2]
    assert provider.state(bare_arn).status is ContainerStatus.RUNNING
    with pytest.raises(InvalidInput, match="cluster::taskArn"):
        provider.state("not-a-handle")


# ---------------------------------------------------------------- logs


def put_log_lines(world: EcsTestWorld, handle: str, lines: list[str]) -> None:
    logs = world.clients("logs")
    stream = f"mayfly/task/{handle.rpartition('/')[2]}"
    with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
    now = int(time.time() * 1000)
    events = [{"timestamp": now + i, "message": line} for i, line in enumerate(lines)]
    logs.put_log_events(logGroupName=LOG_GROUP, logStreamName=stream, logEvents=events)


def test_logs_are_read_from_the_tasks_cloudwatch_stream(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec()).handle
    assert b"".join(provider.logs(handle)) == b""  # no stream before the container starts
    put_log_lines(ecs_world, handle, ["hello", "world"])
    assert b"".join(provider.logs(handle)) == b"hello\nworld\n"


def test_following_logs_reads_until_the_task_stopped_and_the_stream_is_quiet(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    handle = provider.launch(ecs_world.spec()).handle
    put_log_lines(ecs_world, handle, ["first"])
    stream = provider.logs(handle, follow=True)

    assert next(stream) == b"first\n"
    # The task writes its last lines and exits; CloudWatch has them by the next read.
    put_log_lines(ecs_world, handle, ["last", "line"])
    stop_externally(ecs_world, handle)

    assert b"".join(stream) == b"last\nline\n"


# ---------------------------------------------------------------- check


def test_check_passes_when_everything_is_there(ecs_world: EcsTestWorld) -> None:
    ecs_world.provider().check()


CheckBreak = Callable[["EcsTestWorld"], None]


@pytest.mark.parametrize(
    ("break_it", "error", "line"),
    [
        (
            lambda w: w.clients("ecs").delete_cluster(cluster=CLUSTER),
            Unavailable,
            "ECS cluster mayfly-test is INACTIVE, not ACTIVE",
        ),
        (
            lambda w: w.clients("sqs").delete_queue(QueueUrl=w.settings.control_queue_url),
            NotFound,
            "SQS control queue https://.*/mayfly-control does not exist",
        ),
        (
            lambda w: w.clients("s3").delete_bucket(Bucket=w.settings.bucket),
            NotFound,
            "S3 bucket mayfly-test-bucket does not exist",
        ),
        (
            lambda w: w.clients("logs").delete_log_group(logGroupName=LOG_GROUP),
            NotFound,
            "CloudWatch log group /mayfly/test does not exist in eu-west-1",
        ),
    ],
    ids=["cluster-deleted", "queue", "bucket", "log-group"],
)
def test_check_names_the_first_missing_resource(
    ecs_world: EcsTestWorld, break_it: CheckBreak, error: type[Exception], line: str
) -> None:
    break_it(ecs_world)
    with pytest.raises(error, match=f"^{line}$"):
        ecs_world.provider().check()


def test_check_names_a_cluster_that_does_not_exist(ecs_world: EcsTestWorld) -> None:
    with pytest.raises(NotFound, match=r"^ECS cluster elsewhere not found in eu-west-1$"):
        ecs_world.provider(cluster="elsewhere").check()


def test_without_boto3_every_call_names_the_install_command(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # "import boto3" now fails as if it were not installed
    provider = EcsProvider(SETTINGS, ProviderContext(LocalBlobStore(tmp_path), tmp_path, "h", "t"))
    handle = f"{CLUSTER}::arn:aws:ecs:eu-west-1:123456789012:task/{CLUSTER}/{'0' * 32}"
    for call in (lambda: provider.state(handle), provider.check, lambda: b"".join(provider.logs(handle))):
        with pytest.raises(MissingDependency, match=r'pip install "mayfly-tasks\[aws\]"'):
            call()


def test_check_without_credentials_says_so(no_aws_credentials: None, tmp_path: Path) -> None:
    context = ProviderContext(blobs=LocalBlobStore(tmp_path / "blobs"), work_dir=tmp_path, home_id="h", target="t")
    with pytest.raises(CredentialsMissing, match="no AWS credentials found"):
        EcsProvider(SETTINGS, context).check()
