"""Fixtures of the AWS emulator's tests: one emulator per module on a free port, a target, task helpers.

Everything goes through real boto3 clients and a real Docker engine. Waits are
generous ("did it happen within N s"), never timing assertions.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mayfly.providers.ecs.emulator import AwsEmulator
from mayfly.providers.ecs.emulator.tasks import LABEL

REGION = "eu-west-1"
WAIT = 60.0


def wait_for(what: str, check: Callable[[], Any], limit: float = WAIT, interval: float = 0.2) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {limit:.0f} s")
        time.sleep(interval)


@pytest.fixture(scope="module")
def emulator(docker_client: Any) -> Iterator[AwsEmulator]:
    """A running emulator (poller and log shipper faster than the defaults, to keep tests short)."""
    with AwsEmulator("127.0.0.1", 0, region=REGION, poll_interval=0.2, log_interval=0.5) as emu:
        yield emu
        instance = emu.instance
    left = docker_client.containers.list(all=True, filters={"label": f"{LABEL}={instance}"})
    assert left == [], f"containers left behind: {[c.name for c in left]}"


@pytest.fixture(scope="module")
def target(emulator: AwsEmulator) -> dict[str, Any]:
    """The settings of a target bootstrapped in the emulator."""
    return emulator.bootstrap_target(f"t-{uuid.uuid4().hex[:8]}")


@pytest.fixture(scope="module")
def ecs(emulator: AwsEmulator) -> Any:
    return emulator.client("ecs")


@pytest.fixture(scope="module")
def logs(emulator: AwsEmulator) -> Any:
    return emulator.client("logs")


class Tasks:
    """Register task definitions and run tasks on the target's cluster the way a Fargate user does."""

    wait_for = staticmethod(wait_for)

    def __init__(self, ecs: Any, logs: Any, target: dict[str, Any]) -> None:
        self.ecs = ecs
        self.logs = logs
        self.target = target

    def definition(self, image: str, *, awslogs: bool = True, **container: Any) -> str:
        """Register a one-container Fargate task definition (256 CPU, 512 MiB); returns its ARN."""
        t = self.target
        body: dict[str, Any] = {"name": "main", "image": image, **container}
        if awslogs:
            body["logConfiguration"] = {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": t["log_group"],
                    "awslogs-region": t["region"],
                    "awslogs-stream-prefix": t["log_stream_prefix"],
                },
            }
        response = self.ecs.register_task_definition(
            family=f"test-{uuid.uuid4().hex[:8]}",
            networkMode="awsvpc",
            requiresCompatibilities=["FARGATE"],
            cpu="256",
            memory="512",
            executionRoleArn=t["execution_role_arn"],
            containerDefinitions=[body],
        )
        return str(response["taskDefinition"]["taskDefinitionArn"])

    def run(self, definition: str, *, command: list[str] | None = None, **request: Any) -> dict[str, Any]:
        """RunTask on FARGATE in the target's subnets; returns the one task."""
        if command is not None:
            request["overrides"] = {"containerOverrides": [{"name": "main", "command": command}]}
        response = self.ecs.run_task(
            cluster=self.target["cluster"],
            taskDefinition=definition,
            launchType="FARGATE",
            networkConfiguration={"awsvpcConfiguration": {"subnets": self.target["subnets"]}},
            **request,
        )
        assert response["failures"] == []
        task: dict[str, Any] = response["tasks"][0]
        return task

    def describe(self, arn: str, **kwargs: Any) -> dict[str, Any]:
        task: dict[str, Any] = self.ecs.describe_tasks(cluster=self.target["cluster"], tasks=[arn], **kwargs)["tasks"][
            0
        ]
        return task

    def wait_status(self, arn: str, status: str, limit: float = WAIT) -> dict[str, Any]:
        """The task once its lastStatus is ``status``."""
        task: dict[str, Any] = wait_for(
            f"task {arn} {status}", lambda: (d := self.describe(arn))["lastStatus"] == status and d, limit
        )
        return task

    def stream(self, task_arn: str, container: str = "main") -> str:
        """The awslogs stream of a task: PREFIX/CONTAINER/TASK_ID."""
        return f"{self.target['log_stream_prefix']}/{container}/{task_arn.rsplit('/', 1)[-1]}"

    def log_lines(self, task_arn: str) -> list[str]:
        """The task's CloudWatch log events, oldest first ([] before the task has created its stream)."""
        try:
            events = self.logs.get_log_events(
                logGroupName=self.target["log_group"], logStreamName=self.stream(task_arn), startFromHead=True
            )["events"]
        except self.logs.exceptions.ResourceNotFoundException:
            return []
        return [str(e["message"]) for e in events]


@pytest.fixture(scope="module")
def tasks(ecs: Any, logs: Any, target: dict[str, Any]) -> Tasks:
    return Tasks(ecs, logs, target)
