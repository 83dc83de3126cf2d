"""Secrets on ECS, on moto: SSM SecureString parameters per attempt, referenced by the task definition, cleaned up.

Issue 13 item 6. The containers themselves run on the emulator (test_e2e_emulator.py);
here the parameters' names, types and lifetime are checked through the provider.
"""

from __future__ import annotations

import base64
import dataclasses
import json

import pytest

from mayfly.core.errors import LaunchFailed
from mayfly.core.models import LaunchSpec
from mayfly.providers.ecs.provider import EcsProvider
from mayfly.providers.ecs.secrets import MAX_PARAMETER_CHARS

from .conftest import AWS_TEST_REGION, ECS_TEST_CLUSTER, EcsTestWorld

VALUE = b"pw-5e1b9a-\x00binary-ok"
ACCOUNT = "123456789012"  # moto's


def with_secrets(spec: LaunchSpec, secrets: dict[str, bytes]) -> LaunchSpec:
    return dataclasses.replace(spec, secrets=secrets)


def parameters(world: EcsTestWorld, path: str = "/mayfly") -> dict[str, dict[str, str]]:
    ssm = world.clients("ssm")
    found = ssm.get_parameters_by_path(Path=path, Recursive=True, WithDecryption=True)["Parameters"]
    return {p["Name"]: p for p in found}


def task_of(world: EcsTestWorld, handle: str) -> dict[str, object]:
    arn = handle.rpartition("::")[2]
    task: dict[str, object] = world.clients("ecs").describe_tasks(
        cluster=ECS_TEST_CLUSTER, tasks=[arn], include=["TAGS"]
    )["tasks"][0]
    return task


def test_each_secret_is_a_securestring_of_the_attempt_referenced_by_its_own_task_definition(
    ecs_world: EcsTestWorld,
) -> None:
    provider = ecs_world.provider()
    spec = with_secrets(ecs_world.spec(task_id="t1"), {"DB_PASSWORD": VALUE, "API_TOKEN": b"tok-3c9d"})
    handle = provider.launch(spec).handle

    folder = "/mayfly/aws-test/home-a/t1/1"
    params = parameters(ecs_world)
    assert sorted(params) == [f"{folder}/API_TOKEN", f"{folder}/DB_PASSWORD"]
    assert {p["Type"] for p in params.values()} == {"SecureString"}
    assert base64.b64decode(params[f"{folder}/DB_PASSWORD"]["Value"]) == VALUE

    task = task_of(ecs_world, handle)
    definition = ecs_world.clients("ecs").describe_task_definition(taskDefinition=str(task["taskDefinitionArn"]))
    container = definition["taskDefinition"]["containerDefinitions"][0]
    assert container["secrets"] == [
        {"name": f"MAYFLY_SECRET_{n}", "valueFrom": f"arn:aws:ssm:{AWS_TEST_REGION}:{ACCOUNT}:parameter{folder}/{n}"}
        for n in ("API_TOKEN", "DB_PASSWORD")
    ]
    # Neither the value nor its base64 is in the task definition or the RunTask request ECS recorded.
    shown = json.dumps(definition, default=str) + json.dumps(task, default=str)
    for needle in ("pw-5e1b9a", base64.b64encode(VALUE).decode(), "tok-3c9d"):
        assert needle not in shown

    # The task is marked so that removing it deletes the parameters; a task without secrets is not.
    assert {"key": "mayfly.secrets", "value": "1"} in task["tags"]  # type: ignore[operator]
    # A task without secrets still shares the content-addressed definition of its size and image.
    plain = provider.launch(ecs_world.spec()).handle
    assert task_of(ecs_world, plain)["taskDefinitionArn"] != task["taskDefinitionArn"]
    assert "mayfly.secrets" not in json.dumps(task_of(ecs_world, plain)["tags"])
    assert (
        "secrets"
        not in ecs_world.clients("ecs").describe_task_definition(
            taskDefinition=str(task_of(ecs_world, plain)["taskDefinitionArn"])
        )["taskDefinition"]["containerDefinitions"][0]
    )


def test_storing_again_overwrites_the_same_parameters(ecs_world: EcsTestWorld) -> None:
    """A relaunch or a redelivered message writes the same names: nothing piles up."""
    provider = ecs_world.provider()
    first = provider.parameters.put("t2", 1, {"A": b"one"})
    again = ecs_world.provider().parameters.put("t2", 1, {"A": b"one"})
    assert first == again
    assert list(parameters(ecs_world)) == ["/mayfly/aws-test/home-a/t2/1/A"]


def test_remove_deletes_the_attempts_parameters_and_task_definition_only(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    mine = provider.launch(with_secrets(ecs_world.spec(task_id="t3"), {"A": VALUE})).handle
    provider.launch(with_secrets(ecs_world.spec(task_id="t3", attempt=2), {"A": VALUE}))
    definition = str(task_of(ecs_world, mine)["taskDefinitionArn"])

    provider.remove(mine)

    assert list(parameters(ecs_world)) == ["/mayfly/aws-test/home-a/t3/2/A"]
    described = ecs_world.clients("ecs").describe_task_definition(taskDefinition=definition)["taskDefinition"]
    assert described["status"] == "INACTIVE"
    provider.remove(mine)  # idempotent
    assert list(parameters(ecs_world)) == ["/mayfly/aws-test/home-a/t3/2/A"]


def test_sweep_deletes_leftover_parameters_of_attempts_that_are_over(ecs_world: EcsTestWorld) -> None:
    """A launch that failed after storing the secrets, or a task ECS forgot, leaves parameters: sweep takes them."""
    provider: EcsProvider = ecs_world.provider()
    provider.parameters.put("over", 1, {"A": b"x", "B": b"y"})
    provider.parameters.put("live", 1, {"A": b"z"})
    ecs_world.provider(home_id="home-b").parameters.put("over", 1, {"A": b"other home"})

    removed = provider.sweep(lambda task_id, attempt: task_id == "over")

    assert removed == 1
    assert sorted(parameters(ecs_world)) == ["/mayfly/aws-test/home-a/live/1/A", "/mayfly/aws-test/home-b/over/1/A"]


def test_a_secret_too_large_for_ssm_is_refused_before_anything_runs(ecs_world: EcsTestWorld) -> None:
    provider = ecs_world.provider()
    big = b"x" * (MAX_PARAMETER_CHARS * 3 // 4 + 1)
    with pytest.raises(LaunchFailed) as refused:
        provider.launch(with_secrets(ecs_world.spec(task_id="t4"), {"BIG": big}))
    assert refused.value.retryable is False
    assert (
        refused.value.message == "secret 'BIG' is 6145 bytes; ECS targets pass secrets of at most 6144 bytes "
        "(SSM Parameter Store's limit)"
    )
    assert parameters(ecs_world) == {}
    assert ecs_world.clients("ecs").list_tasks(cluster=ECS_TEST_CLUSTER)["taskArns"] == []
