"""Task definitions: Fargate sizes, image names, content-addressed families, register once."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import ANY, Stubber

from mayfly.core.errors import LaunchFailed
from mayfly.providers.ecs.aws import Clients
from mayfly.providers.ecs.taskdefs import TaskDefinitions, TaskDefinitionSpec, fargate_size, task_image

ARN = "arn:aws:ecs:eu-west-1:123456789012:task-definition/{family}:1"


@pytest.mark.parametrize(
    ("cpu", "memory_mb", "size"),
    [
        (0.25, 64, (256, 512)),
        (0.25, 512, (256, 512)),
        (0.25, 2048, (256, 2048)),
        (0.25, 2049, (512, 3072)),  # 0.25 vCPU allows at most 2 GiB
        (0.3, 600, (512, 1024)),
        (0.5, 64, (512, 1024)),
        (1, 1, (1024, 2048)),
        (1, 8192, (1024, 8192)),
        (1, 9000, (2048, 9216)),
        (2, 16384, (2048, 16384)),
        (4, 30720, (4096, 30720)),
        (4, 30721, (8192, 32768)),  # 8 vCPU memory grows in 4 GiB steps
        (8, 16384, (8192, 16384)),
        (9, 1024, (16384, 32768)),
        (16, 122880, (16384, 122880)),
        (0, 0, (256, 512)),
    ],
)
def test_sizes_round_up_to_a_valid_fargate_combination(cpu: float, memory_mb: int, size: tuple[int, int]) -> None:
    assert fargate_size(cpu, memory_mb) == size


@pytest.mark.parametrize(("cpu", "memory_mb"), [(16.5, 1024), (1, 122881)])
def test_sizes_beyond_fargate_are_refused_for_good(cpu: float, memory_mb: int) -> None:
    with pytest.raises(LaunchFailed, match="at most 16 vCPU and 120 GiB") as err:
        fargate_size(cpu, memory_mb)
    assert err.value.retryable is False


def test_runtime_images_run_from_the_stacks_repository() -> None:
    repo = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mayfly-aws-dev"
    assert task_image("mayfly/runtime-python-3.11:1", repo) == f"{repo}:runtime-python-3.11-1"
    assert task_image("mayfly/runtime-python-3.11:1", None) == "mayfly/runtime-python-3.11:1"
    assert task_image("public.ecr.aws/docker/library/alpine:3.20", repo) == "public.ecr.aws/docker/library/alpine:3.20"
    assert task_image("mayfly/runtime-shell", repo) == "mayfly/runtime-shell"  # no version: not a runtime tag


def spec(**changes: Any) -> TaskDefinitionSpec:
    base: dict[str, Any] = {
        "image": "mayfly/runtime-shell:1",
        "cpu": 512,
        "memory": 1024,
        "execution_role_arn": "arn:aws:iam::123456789012:role/exec",
        "task_role_arn": None,
        "log_group": "/mayfly/aws-dev",
        "log_stream_prefix": "mayfly",
        "region": "eu-west-1",
        "stop_timeout": 30,
    }
    return TaskDefinitionSpec(**(base | changes))


def test_families_are_named_by_a_hash_of_every_parameter() -> None:
    family = spec().family("aws-dev")
    assert family.startswith("mayfly-aws-dev-")
    assert len(family) == len("mayfly-aws-dev-") + 12
    assert spec().family("aws-dev") == family
    for change in (
        {"image": "mayfly/runtime-shell:2"},
        {"cpu": 1024},
        {"memory": 2048},
        {"task_role_arn": "arn:aws:iam::123456789012:role/task"},
        {"log_group": "/other"},
        {"stop_timeout": 60},
    ):
        assert spec(**change).family("aws-dev") != family, change
    assert spec().family("aws-prod") != family


def test_the_definition_is_fargate_with_one_essential_container() -> None:
    body = spec(task_role_arn="arn:aws:iam::123456789012:role/task").body()
    assert body["requiresCompatibilities"] == ["FARGATE"]
    assert body["networkMode"] == "awsvpc"
    assert (body["cpu"], body["memory"]) == ("512", "1024")
    assert body["taskRoleArn"] == "arn:aws:iam::123456789012:role/task"
    (container,) = body["containerDefinitions"]
    assert container["name"] == "task"
    assert container["essential"] is True
    assert container["stopTimeout"] == 30
    assert container["linuxParameters"] == {"initProcessEnabled": True, "capabilities": {"drop": ["ALL"]}}
    assert "user" not in container  # the runtime images run as 10001 already
    assert "taskRoleArn" not in spec().body()


# ---------------------------------------------------------------- registration against recorded answers


@pytest.fixture
def ecs_taskdef_stub(fake_aws_env: None) -> Iterator[tuple[Clients, Stubber]]:
    clients = Clients("eu-west-1")
    with Stubber(clients("ecs")) as stub:
        yield clients, stub


def registered(s: TaskDefinitionSpec, family: str) -> dict[str, Any]:
    """The taskDefinition ECS returns for a registered ``s``."""
    body = s.body()
    return {
        "taskDefinitionArn": ARN.format(family=family),
        "family": family,
        "revision": 1,
        "status": "ACTIVE",
        "containerDefinitions": body["containerDefinitions"],
        "cpu": body["cpu"],
        "memory": body["memory"],
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "compatibilities": ["EC2", "FARGATE"],
        "executionRoleArn": body["executionRoleArn"],
        "registeredAt": datetime(2024, 5, 14, tzinfo=UTC),
    }


def not_registered(stub: Stubber, family: str) -> None:
    stub.add_client_error(
        "describe_task_definition",
        service_error_code="ClientException",
        service_message="Unable to describe task definition.",
        http_status_code=400,
        expected_params={"taskDefinition": family},
    )


def test_a_family_is_registered_once_and_then_remembered(ecs_taskdef_stub: tuple[Clients, Stubber]) -> None:
    clients, stub = ecs_taskdef_stub
    s = spec()
    family = s.family("aws-dev")
    not_registered(stub, family)
    expected = {"family": family, **{k: ANY for k in s.body()}, "tags": [{"key": "mayfly.target", "value": "aws-dev"}]}
    stub.add_response("register_task_definition", {"taskDefinition": registered(s, family)}, expected)
    taskdefs = TaskDefinitions(clients, "aws-dev")
    assert taskdefs.arn_for(s) == ARN.format(family=family)
    assert taskdefs.arn_for(s) == ARN.format(family=family)  # no more calls
    stub.assert_no_pending_responses()


def test_a_family_another_runner_registered_is_reused(ecs_taskdef_stub: tuple[Clients, Stubber]) -> None:
    clients, stub = ecs_taskdef_stub
    s = spec()
    family = s.family("aws-dev")
    stub.add_response("describe_task_definition", {"taskDefinition": registered(s, family)}, {"taskDefinition": family})
    assert TaskDefinitions(clients, "aws-dev").arn_for(s) == ARN.format(family=family)
    stub.assert_no_pending_responses()


def test_too_many_concurrent_registrations_wait_and_use_the_winners_revision(
    ecs_taskdef_stub: tuple[Clients, Stubber],
) -> None:
    """PrefectHQ/prefect#16485: ECS refuses concurrent RegisterTaskDefinition calls for one family."""
    clients, stub = ecs_taskdef_stub
    s = spec()
    family = s.family("aws-dev")
    not_registered(stub, family)
    stub.add_client_error(
        "register_task_definition",
        service_error_code="ClientException",
        service_message="Too many concurrent attempts to create a new revision of the specified family.",
        http_status_code=400,
    )
    stub.add_response("describe_task_definition", {"taskDefinition": registered(s, family)}, {"taskDefinition": family})
    slept: list[float] = []
    taskdefs = TaskDefinitions(clients, "aws-dev", sleep=slept.append, rng=random.Random(3))
    assert taskdefs.arn_for(s) == ARN.format(family=family)
    assert len(slept) == 1
    stub.assert_no_pending_responses()


def test_a_refused_registration_is_a_launch_failure_naming_the_reason(
    ecs_taskdef_stub: tuple[Clients, Stubber],
) -> None:
    clients, stub = ecs_taskdef_stub
    s = spec()
    family = s.family("aws-dev")
    not_registered(stub, family)
    stub.add_client_error(
        "register_task_definition",
        service_error_code="ClientException",
        service_message="Role is not valid",
        http_status_code=400,
    )
    with pytest.raises(LaunchFailed, match="Role is not valid") as err:
        TaskDefinitions(clients, "aws-dev").arn_for(s)
    assert err.value.retryable is False
