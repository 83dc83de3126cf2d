"""The ECS API as botocore sees it: shapes, validation errors, failures, pagination, tags.

Requests that fail validation never reach Docker; the few that run use a
command that exits at once.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import botocore.exceptions
import pytest

pytestmark = pytest.mark.docker

FARGATE = {"networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"], "cpu": "256", "memory": "512"}


def container(image: str = "mayfly-test/busybox:latest", **extra: Any) -> dict[str, Any]:
    return {"name": "main", "image": image, **extra}


def test_cluster_lifecycle_and_lookup_by_name_or_arn(ecs: Any) -> None:
    created = ecs.create_cluster(clusterName="api-c1", tags=[{"key": "k", "value": "v"}])["cluster"]
    assert created["clusterArn"] == f"arn:aws:ecs:{ecs.meta.region_name}:123456789012:cluster/api-c1"
    assert created["status"] == "ACTIVE"
    assert ecs.create_cluster(clusterName="api-c1")["cluster"]["clusterArn"] == created["clusterArn"]
    assert created["clusterArn"] in ecs.list_clusters()["clusterArns"]

    described = ecs.describe_clusters(clusters=[created["clusterArn"], "nope"], include=["TAGS"])
    assert [c["clusterName"] for c in described["clusters"]] == ["api-c1"]
    assert described["clusters"][0]["tags"] == [{"key": "k", "value": "v"}]
    assert described["failures"] == [
        {"arn": f"arn:aws:ecs:{ecs.meta.region_name}:123456789012:cluster/nope", "reason": "MISSING"}
    ]
    assert ecs.delete_cluster(cluster="api-c1")["cluster"]["status"] == "INACTIVE"
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.list_tasks(cluster="api-c1")


def test_task_definition_revisions_describe_deregister_and_list(ecs: Any) -> None:
    first = ecs.register_task_definition(family="api-fam", containerDefinitions=[container()], **FARGATE)
    second = ecs.register_task_definition(
        family="api-fam",
        containerDefinitions=[container()],
        tags=[{"key": "a", "value": "b"}],
        cpu="1 vCPU",
        memory="2 GB",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
    )
    definition = second["taskDefinition"]
    assert first["taskDefinition"]["revision"] == 1
    assert (definition["revision"], definition["cpu"], definition["memory"]) == (2, "1024", "2048")
    assert definition["taskDefinitionArn"].endswith(":task-definition/api-fam:2")
    assert set(definition["compatibilities"]) == {"EC2", "FARGATE"}
    assert definition["containerDefinitions"][0]["essential"] is True

    assert ecs.describe_task_definition(taskDefinition="api-fam")["taskDefinition"]["revision"] == 2
    tagged = ecs.describe_task_definition(taskDefinition="api-fam:2", include=["TAGS"])
    assert tagged["tags"] == [{"key": "a", "value": "b"}]
    ecs.deregister_task_definition(taskDefinition="api-fam:2")
    assert ecs.describe_task_definition(taskDefinition="api-fam")["taskDefinition"]["revision"] == 1
    assert ecs.describe_task_definition(taskDefinition="api-fam:2")["taskDefinition"]["status"] == "INACTIVE"

    listed = ecs.list_task_definitions(familyPrefix="api-fam")["taskDefinitionArns"]
    assert [a.rsplit(":", 1)[1] for a in listed] == ["1"]
    pages = list(
        ecs.get_paginator("list_task_definitions").paginate(status="INACTIVE", PaginationConfig={"PageSize": 1})
    )
    assert any(a.endswith("api-fam:2") for p in pages for a in p["taskDefinitionArns"])
    with pytest.raises(ecs.exceptions.ClientException, match="Unable to describe task definition"):
        ecs.describe_task_definition(taskDefinition="api-fam:9")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"networkMode": "bridge"}, "Fargate only supports network mode 'awsvpc'"),
        ({"cpu": None}, "Fargate requires that 'cpu' be defined at the task level"),
        ({"memory": "4096"}, "No Fargate configuration exists for given values: 256 CPU, 4096 memory"),
        ({"logs": True}, "execution role ARN to support log driver awslogs"),
    ],
)
def test_register_checks_fargate_rules(ecs: Any, changes: dict[str, Any], message: str) -> None:
    request: dict[str, Any] = {**FARGATE, **changes}
    extra = {}
    if request.pop("logs", False):
        extra["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": "g", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "p"},
        }
    request = {k: v for k, v in request.items() if v is not None}
    with pytest.raises(ecs.exceptions.ClientException, match=message):
        ecs.register_task_definition(family="api-bad", containerDefinitions=[container(**extra)], **request)


def _run(ecs: Any, target: dict[str, Any], definition: str, **request: Any) -> Any:
    return ecs.run_task(cluster=target["cluster"], taskDefinition=definition, **request)


def test_run_task_validates_like_ecs(ecs: Any, target: dict[str, Any]) -> None:
    arn = ecs.register_task_definition(family="api-run", containerDefinitions=[container()], **FARGATE)[
        "taskDefinition"
    ]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": target["subnets"]}}

    with pytest.raises(ecs.exceptions.InvalidParameterException, match="Network Configuration must be provided"):
        _run(ecs, target, arn, launchType="FARGATE")
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="subnets can not be empty"):
        _run(ecs, target, arn, launchType="FARGATE", networkConfiguration={"awsvpcConfiguration": {"subnets": []}})
    with pytest.raises(ecs.exceptions.ClusterNotFoundException):
        ecs.run_task(cluster="no-such-cluster", taskDefinition=arn, launchType="FARGATE", networkConfiguration=network)
    with pytest.raises(ecs.exceptions.ClientException, match="TaskDefinition not found"):
        _run(ecs, target, "no-such-family", launchType="FARGATE", networkConfiguration=network)
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="both a launch type and capacity provider"):
        _run(
            ecs,
            target,
            arn,
            launchType="FARGATE",
            networkConfiguration=network,
            capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT"}],
        )
    big = [{"name": "main", "environment": [{"name": "X", "value": "x" * 9000}]}]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="Container Overrides length"):
        _run(
            ecs, target, arn, launchType="FARGATE", networkConfiguration=network, overrides={"containerOverrides": big}
        )
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="is not a container in the TaskDefinition"):
        _run(
            ecs,
            target,
            arn,
            launchType="FARGATE",
            networkConfiguration=network,
            overrides={"containerOverrides": [{"name": "other"}]},
        )
    # Not Fargate: there are no container instances to place the task on.
    failed = _run(ecs, target, arn, launchType="EC2")
    assert failed["tasks"] == []
    assert failed["failures"] == [{"reason": "No Container Instances were found in your cluster."}]


def test_capacity_providers_must_be_associated_with_the_cluster(
    ecs: Any, target: dict[str, Any], busybox_image: str
) -> None:
    arn = ecs.register_task_definition(
        family="api-spot", containerDefinitions=[container(busybox_image, command=["true"])], **FARGATE
    )["taskDefinition"]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": target["subnets"]}}
    ecs.create_cluster(clusterName="api-no-providers")
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="not associated with the cluster"):
        ecs.run_task(
            cluster="api-no-providers",
            taskDefinition=arn,
            networkConfiguration=network,
            capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
        )
    spot = _run(
        ecs,
        target,
        arn,
        networkConfiguration=network,
        capacityProviderStrategy=[{"capacityProvider": "FARGATE_SPOT", "weight": 1}],
    )["tasks"][0]
    assert (spot["launchType"], spot["capacityProviderName"]) == ("FARGATE", "FARGATE_SPOT")
    # No launch type and no strategy: the cluster's default strategy (FARGATE, from the bootstrap).
    default = _run(ecs, target, arn, networkConfiguration=network, enableECSManagedTags=True)["tasks"][0]
    assert default["capacityProviderName"] == "FARGATE"
    assert {"key": "aws:ecs:clusterName", "value": target["cluster"]} in default["tags"]


def test_injected_faults_refuse_run_task_as_ecs_does_on_one_cluster_only(
    emulator: Any, ecs: Any, target: dict[str, Any]
) -> None:
    """What a test injects (capacity, throttling) answers RunTask on that cluster only, and starts nothing."""
    from mayfly.providers.ecs.emulator import faults

    arn = ecs.register_task_definition(family="api-faults", containerDefinitions=[container()], **FARGATE)[
        "taskDefinition"
    ]["taskDefinitionArn"]
    network = {"awsvpcConfiguration": {"subnets": target["subnets"]}}
    ecs.create_cluster(clusterName="api-faults-other")
    before = set(emulator.backend._region("eu-west-1").tasks)
    emulator.inject_fault(target["cluster"], reason=faults.CAPACITY, times=1)
    refused = _run(ecs, target, arn, launchType="FARGATE", networkConfiguration=network)
    assert refused["tasks"] == []
    (failure,) = refused["failures"]
    assert failure["reason"] == faults.CAPACITY
    assert failure["arn"].endswith(f":cluster/{target['cluster']}")
    # Until cleared: every call is throttled (botocore's own retries included).
    emulator.inject_fault(target["cluster"], code="ThrottlingException", message="Rate exceeded", times=None)
    # Another cluster (another Mayfly target) is not refused.
    with pytest.raises(ecs.exceptions.ClientException, match="TaskDefinition not found"):
        ecs.run_task(cluster="api-faults-other", taskDefinition="none", launchType="FARGATE")
    with pytest.raises(botocore.exceptions.ClientError) as caught:
        _run(ecs, target, arn, launchType="FARGATE", networkConfiguration=network)
    emulator.clear_faults(target["cluster"])
    assert caught.value.response["Error"] == {"Code": "ThrottlingException", "Message": "Rate exceeded"}
    assert set(emulator.backend._region("eu-west-1").tasks) == before  # nothing was started
    assert emulator.backend.faults.used[target["cluster"]] >= 2


def test_describe_tasks_reports_unknown_tasks_as_failures(ecs: Any, target: dict[str, Any]) -> None:
    arn = f"arn:aws:ecs:{ecs.meta.region_name}:123456789012:task/{target['cluster']}/0123456789abcdef0123456789abcdef"
    found = ecs.describe_tasks(cluster=target["cluster"], tasks=[arn])
    assert found["tasks"] == []
    assert found["failures"] == [{"arn": arn, "reason": "MISSING"}]
    with pytest.raises(ecs.exceptions.InvalidParameterException):
        ecs.stop_task(cluster=target["cluster"], task=arn)


def test_tag_resource_and_list_tags(ecs: Any) -> None:
    arn = ecs.create_cluster(clusterName="api-tags")["cluster"]["clusterArn"]
    ecs.tag_resource(resourceArn=arn, tags=[{"key": "a", "value": "1"}, {"key": "b", "value": "2"}])
    ecs.untag_resource(resourceArn=arn, tagKeys=["a"])
    assert ecs.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "b", "value": "2"}]
    with pytest.raises(ecs.exceptions.InvalidParameterException, match="reserved"):
        ecs.tag_resource(resourceArn=arn, tags=[{"key": "aws:x", "value": "1"}])


def test_unknown_action_and_bad_json_are_client_errors(emulator: Any) -> None:
    def post(action: str, body: bytes) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(
            emulator.local_url,
            data=body,
            method="POST",
            headers={
                "X-Amz-Target": f"AmazonEC2ContainerServiceV20141113.{action}",
                "Content-Type": "application/x-amz-json-1.1",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read())

    assert post("CreateService", b"{}") == (
        400,
        {
            "__type": "UnknownOperationException",
            "message": "the Mayfly ECS emulator does not implement CreateService (see mayfly.providers.ecs.emulator)",
        },
    )
    status, doc = post("ListClusters", b"not json")
    assert (status, doc["__type"]) == (400, "SerializationException")
    status, doc = post("ListClusters", b"")
    assert status == 200
    assert "clusterArns" in doc
