"""ECS tasks that really run: lifecycle, exit codes, CloudWatch logs, StopTask, OOM, failures, idempotency."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LABEL_TASK_ARN = "com.amazonaws.ecs.task-arn"


def containers_of(docker_client: Any, task_arn: str) -> list[Any]:
    return list(docker_client.containers.list(all=True, filters={"label": f"{LABEL_TASK_ARN}={task_arn}"}))


@pytest.mark.parametrize("code", [0, 3])
def test_task_runs_then_stops_with_its_exit_code(tasks: Any, busybox_image: str, docker_client: Any, code: int) -> None:
    definition = tasks.definition(busybox_image)
    task = tasks.run(definition, command=["sh", "-c", f"sleep 1; echo done; exit {code}"])
    assert task["lastStatus"] == "PROVISIONING"
    assert task["desiredStatus"] == "RUNNING"
    assert task["taskArn"].startswith(f"arn:aws:ecs:{tasks.target['region']}:123456789012:task/")
    assert task["taskArn"].split("/")[-2] == tasks.target["cluster"]

    running = tasks.wait_status(task["taskArn"], "RUNNING")
    assert running["containers"][0]["lastStatus"] == "RUNNING"
    assert isinstance(running["startedAt"], dt.datetime)
    assert containers_of(docker_client, task["taskArn"])  # a real container

    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    container = stopped["containers"][0]
    assert (container["name"], container["exitCode"], container["lastStatus"]) == ("main", code, "STOPPED")
    assert "reason" not in container
    assert stopped["desiredStatus"] == "STOPPED"
    assert stopped["stopCode"] == "EssentialContainerExited"
    assert stopped["stoppedReason"] == "Essential container in task exited"
    assert stopped["createdAt"] <= stopped["startedAt"] <= stopped["stoppingAt"] <= stopped["stoppedAt"]
    assert containers_of(docker_client, task["taskArn"]) == []  # removed once stopped


def test_every_line_reaches_cloudwatch_while_it_runs_and_the_last_without_newline(
    tasks: Any, busybox_image: str
) -> None:
    definition = tasks.definition(busybox_image)
    script = "echo first; echo to-stderr >&2; while [ ! -e /tmp/go ]; do sleep 0.2; done; printf 'no newline'"
    # The container waits for /tmp/go, so the first lines can only be seen while it runs.
    task = tasks.run(definition, command=["sh", "-c", script])
    arn = task["taskArn"]
    tasks.wait_status(arn, "RUNNING")
    early = tasks.wait_for("log lines while running", lambda: len(lines := tasks.log_lines(arn)) >= 2 and lines)
    assert sorted(early) == ["first", "to-stderr"]
    assert tasks.describe(arn)["lastStatus"] == "RUNNING"

    runtime_id = tasks.describe(arn)["containers"][0]["runtimeId"]
    import docker

    client = docker.from_env()
    try:
        client.containers.get(runtime_id).exec_run(["touch", "/tmp/go"])
    finally:
        client.close()
    tasks.wait_status(arn, "STOPPED")
    lines = tasks.log_lines(arn)
    assert sorted(lines[:2]) == ["first", "to-stderr"]
    assert lines[2:] == ["no newline"]


def test_stop_task_sends_sigterm_and_reports_user_initiated(tasks: Any, busybox_image: str) -> None:
    definition = tasks.definition(busybox_image)
    script = "trap 'echo got TERM; exit 143' TERM; echo ready; sleep 300 & wait"
    task = tasks.run(definition, command=["sh", "-c", script])
    arn = task["taskArn"]
    tasks.wait_for("ready", lambda: "ready" in tasks.log_lines(arn))

    stopping = tasks.ecs.stop_task(cluster=tasks.target["cluster"], task=arn, reason="cancelled by test")["task"]
    assert stopping["desiredStatus"] == "STOPPED"
    assert stopping["stopCode"] == "UserInitiated"

    stopped = tasks.wait_status(arn, "STOPPED")
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["stoppedReason"] == "cancelled by test"
    assert stopped["containers"][0]["exitCode"] == 143
    assert "got TERM" in tasks.log_lines(arn)


def test_stop_task_kills_after_the_stop_timeout(tasks: Any, busybox_image: str) -> None:
    # `sleep` as PID 1 ignores SIGTERM (as on Fargate): SIGKILL follows after stopTimeout.
    definition = tasks.definition(busybox_image, command=["sleep", "300"], stopTimeout=2)
    task = tasks.run(definition)
    tasks.wait_status(task["taskArn"], "RUNNING")
    tasks.ecs.stop_task(cluster=tasks.target["cluster"], task=task["taskArn"])
    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    assert stopped["stopCode"] == "UserInitiated"
    assert stopped["containers"][0]["exitCode"] == 137


def test_memory_limit_is_a_real_oom_kill(tasks: Any, busybox_image: str) -> None:
    definition = tasks.definition(busybox_image, memory=32)
    task = tasks.run(definition, command=["busybox", "tail", "/dev/zero"])
    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    container = stopped["containers"][0]
    assert container["reason"] == "OutOfMemoryError: Container killed due to memory usage"
    assert container["exitCode"] == 137
    assert stopped["stopCode"] == "EssentialContainerExited"


def test_missing_image_fails_to_start_like_a_failed_pull(tasks: Any, docker_client: Any) -> None:
    definition = tasks.definition("123456789012.dkr.ecr.eu-west-1.amazonaws.com/nothing-here:v9")
    task = tasks.run(definition)
    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert stopped["stoppedReason"].startswith("CannotPullContainerError: ")
    assert "nothing-here:v9" in stopped["stoppedReason"]
    assert stopped["containers"][0]["reason"] == stopped["stoppedReason"]
    assert "exitCode" not in stopped["containers"][0]
    assert "startedAt" not in stopped
    assert containers_of(docker_client, task["taskArn"]) == []


def test_a_command_that_cannot_start_fails_to_start(tasks: Any, busybox_image: str, docker_client: Any) -> None:
    definition = tasks.definition(busybox_image, awslogs=False)
    task = tasks.run(definition, command=["/no/such/program"])
    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert stopped["stoppedReason"].startswith("CannotStartContainerError: ")
    assert "/no/such/program" in stopped["stoppedReason"]
    assert containers_of(docker_client, task["taskArn"]) == []


def test_missing_log_group_fails_with_resource_initialization_error(
    emulator: Any, tasks: Any, busybox_image: str
) -> None:
    group = "/mayfly/never-created"
    definition = tasks.ecs.register_task_definition(
        family="no-log-group",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        executionRoleArn=tasks.target["execution_role_arn"],
        containerDefinitions=[
            {
                "name": "main",
                "image": busybox_image,
                "command": ["true"],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": group, "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "p"},
                },
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    stopped = tasks.wait_status(tasks.run(definition)["taskArn"], "STOPPED")
    assert stopped["stopCode"] == "TaskFailedToStart"
    assert stopped["stoppedReason"].startswith("ResourceInitializationError: ")


def test_overrides_user_and_environment_reach_the_container(tasks: Any, busybox_image: str) -> None:
    definition = tasks.definition(
        busybox_image,
        user="4242",
        environment=[{"name": "FROM_DEFINITION", "value": "d"}, {"name": "OVERRIDDEN", "value": "no"}],
    )
    overrides = {
        "containerOverrides": [
            {
                "name": "main",
                "command": ["sh", "-c", 'echo "$(id -u) $FROM_DEFINITION $OVERRIDDEN $AWS_REGION"'],
                "environment": [{"name": "OVERRIDDEN", "value": "yes"}],
            }
        ]
    }
    task = tasks.run(definition, overrides=overrides)
    stopped = tasks.wait_status(task["taskArn"], "STOPPED")
    assert stopped["containers"][0]["exitCode"] == 0
    assert tasks.log_lines(task["taskArn"]) == [f"4242 d yes {tasks.target['region']}"]
    assert stopped["overrides"]["containerOverrides"] == overrides["containerOverrides"]


def test_client_token_returns_the_same_task_and_conflicts_on_other_parameters(
    tasks: Any, busybox_image: str, docker_client: Any
) -> None:
    definition = tasks.definition(busybox_image, command=["sleep", "300"], stopTimeout=2)
    first = tasks.run(definition, clientToken="token-1", startedBy="idem")
    again = tasks.run(definition, clientToken="token-1", startedBy="idem")
    assert again["taskArn"] == first["taskArn"]
    tasks.wait_status(first["taskArn"], "RUNNING")
    listed = tasks.ecs.list_tasks(cluster=tasks.target["cluster"], startedBy="idem")["taskArns"]
    assert listed == [first["taskArn"]]
    assert len(containers_of(docker_client, first["taskArn"])) == 1

    with pytest.raises(tasks.ecs.exceptions.ConflictException) as err:
        tasks.run(definition, clientToken="token-1", startedBy="other")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "token-1" in err.value.response["Error"]["Message"]
    tasks.ecs.stop_task(cluster=tasks.target["cluster"], task=first["taskArn"])
    tasks.wait_status(first["taskArn"], "STOPPED")


def test_list_tasks_by_started_by_family_and_desired_status(tasks: Any, busybox_image: str) -> None:
    definition = tasks.definition(busybox_image, command=["sleep", "300"], stopTimeout=2)
    family = definition.rsplit("/", 1)[1].split(":")[0]
    one = tasks.run(definition, startedBy="lister-a", tags=[{"key": "mayfly.task", "value": "t1"}])
    two = tasks.run(definition, startedBy="lister-b")
    cluster = tasks.target["cluster"]

    assert tasks.ecs.list_tasks(cluster=cluster, startedBy="lister-a")["taskArns"] == [one["taskArn"]]
    assert sorted(tasks.ecs.list_tasks(cluster=cluster, family=family)["taskArns"]) == sorted(
        [one["taskArn"], two["taskArn"]]
    )
    described = tasks.describe(one["taskArn"], include=["TAGS"])
    assert described["tags"] == [{"key": "mayfly.task", "value": "t1"}]
    assert described["startedBy"] == "lister-a"
    assert "tags" not in tasks.describe(one["taskArn"])

    for task in (one, two):
        tasks.ecs.stop_task(cluster=cluster, task=task["taskArn"])
    for task in (one, two):
        tasks.wait_status(task["taskArn"], "STOPPED")
    assert tasks.ecs.list_tasks(cluster=cluster, startedBy="lister-a")["taskArns"] == []
    stopped = tasks.ecs.list_tasks(cluster=cluster, startedBy="lister-a", desiredStatus="STOPPED")["taskArns"]
    assert stopped == [one["taskArn"]]
    # NOTE: as documented for ECS, StopTask deletes the task's tags.
    assert tasks.describe(one["taskArn"], include=["TAGS"])["tags"] == []


def test_count_runs_that_many_tasks_concurrently(tasks: Any, busybox_image: str) -> None:
    definition = tasks.definition(busybox_image)
    response = tasks.ecs.run_task(
        cluster=tasks.target["cluster"],
        taskDefinition=definition,
        launchType="FARGATE",
        count=6,
        networkConfiguration={"awsvpcConfiguration": {"subnets": tasks.target["subnets"]}},
        overrides={"containerOverrides": [{"name": "main", "command": ["sh", "-c", "sleep 1; echo ok"]}]},
    )
    arns = [t["taskArn"] for t in response["tasks"]]
    assert len(set(arns)) == 6
    for arn in arns:
        stopped = tasks.wait_status(arn, "STOPPED")
        assert stopped["containers"][0]["exitCode"] == 0
        assert tasks.log_lines(arn) == ["ok"]
