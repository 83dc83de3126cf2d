"""The resources of one Mayfly ``ecs`` target, created in the emulator, and the target's settings.

What ``mayfly deploy`` would create in AWS, minus what the emulator cannot use
(ECR images are looked up locally instead of pulled, networks are not real):

- ECS cluster ``mayfly-NAME`` with the FARGATE and FARGATE_SPOT capacity providers;
- SQS queues ``mayfly-NAME-tasks``, ``-control`` and ``-events``, each with a
  dead-letter queue ``...-dlq`` (redrive after 5 receives, 14 days' retention);
- S3 bucket ``mayfly-NAME-123456789012``;
- CloudWatch log group ``/mayfly/NAME`` (30 days' retention);
- IAM task execution role ``mayfly-NAME-execution`` (trusted by
  ecs-tasks.amazonaws.com; pull images, write logs) — recorded, not enforced;
- ECR repository ``mayfly/NAME``, used as the target's ``image_prefix``: runtime
  ``mayfly/runtime-shell:1`` is asked for as ``...amazonaws.com/mayfly/NAME:runtime-shell-1``
  and the emulator runs the local ``mayfly/runtime-shell:1`` (see :mod:`.images`);
- subnets and security group: the default VPC's, from moto's EC2.

Running it again for the same name reuses what exists.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from mayfly.core.errors import InvalidInput
from mayfly.providers.ecs.emulator.arns import ACCOUNT_ID

Clients = Callable[[str], Any]

MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
LOG_RETENTION_DAYS = 30
QUEUE_KINDS = ("tasks", "control", "events")
_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")

EXECUTION_TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def _queue(sqs: Any, name: str) -> str:
    """Queue ``name`` with its dead-letter queue ``name-dlq``; returns the queue URL."""
    dlq_url = sqs.create_queue(
        QueueName=f"{name}-dlq", Attributes={"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)}
    )["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(
        QueueUrl=url,
        Attributes={
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}),
            "ReceiveMessageWaitTimeSeconds": "20",
        },
    )
    return str(url)


def _bucket(s3: Any, name: str, region: str) -> None:
    kwargs: dict[str, Any] = {"Bucket": name}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        s3.create_bucket(**kwargs)
    except Exception as exc:
        if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    s3.put_public_access_block(
        Bucket=name,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )


def _log_group(logs: Any, name: str) -> None:
    try:
        logs.create_log_group(logGroupName=name)
    except Exception as exc:
        if _code(exc) != "ResourceAlreadyExistsException":
            raise
    logs.put_retention_policy(logGroupName=name, retentionInDays=LOG_RETENTION_DAYS)


def _execution_role(iam: Any, name: str, log_group: str, region: str) -> str:
    try:
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(EXECUTION_TRUST))["Role"]["Arn"]
    except Exception as exc:
        if _code(exc) != "EntityAlreadyExists":
            raise
        arn = iam.get_role(RoleName=name)["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": [
                    "ecr:GetAuthorizationToken",
                    "ecr:BatchCheckLayerAvailability",
                    "ecr:GetDownloadUrlForLayer",
                    "ecr:BatchGetImage",
                ],
                "Resource": "*",
            },
            {
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": f"arn:aws:logs:{region}:{ACCOUNT_ID}:log-group:{log_group}:*",
            },
        ],
    }
    iam.put_role_policy(RoleName=name, PolicyName="task-execution", PolicyDocument=json.dumps(policy))
    return str(arn)


def _repository(ecr: Any, name: str) -> str:
    try:
        return str(ecr.create_repository(repositoryName=name)["repository"]["repositoryUri"])
    except Exception as exc:
        if _code(exc) != "RepositoryAlreadyExistsException":
            raise
        return str(ecr.describe_repositories(repositoryNames=[name])["repositories"][0]["repositoryUri"])


def _network(ec2: Any) -> tuple[list[str], list[str]]:
    """Subnets and security group of the default VPC (moto creates one per region)."""
    subnets = ec2.describe_subnets(Filters=[{"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    groups = ec2.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    subnet_ids = sorted(s["SubnetId"] for s in subnets)[:3] or ["subnet-mayfly-emulator"]
    return subnet_ids, [str(g["GroupId"]) for g in groups[:1]]


def bootstrap_target(clients: Clients, endpoint_url: str, name: str, region: str) -> dict[str, Any]:
    """Create target ``name``'s resources through ``clients`` and return its validated ``ecs`` settings."""
    from mayfly.providers.ecs.settings import EcsSettings

    if not _NAME.match(name):
        raise InvalidInput(f"invalid target name {name!r}: lowercase letters, digits and '-', 63 at most")
    base = f"mayfly-{name}"
    short = base[:64]  # SQS names: at most 80 characters with the longest suffix
    cluster = clients("ecs").create_cluster(
        clusterName=base,
        capacityProviders=["FARGATE", "FARGATE_SPOT"],
        defaultCapacityProviderStrategy=[{"capacityProvider": "FARGATE", "weight": 1}],
        tags=[{"key": "mayfly:target", "value": name}],
    )["cluster"]
    sqs = clients("sqs")
    queues = {kind: _queue(sqs, f"{short}-{kind}") for kind in QUEUE_KINDS}
    bucket = f"{base[:49]}-{ACCOUNT_ID}"
    _bucket(clients("s3"), bucket, region)
    log_group = f"/mayfly/{name}"
    _log_group(clients("logs"), log_group)
    role_arn = _execution_role(clients("iam"), f"{base[:53]}-execution", log_group, region)
    image_prefix = _repository(clients("ecr"), f"mayfly/{name}")
    subnets, security_groups = _network(clients("ec2"))
    settings = EcsSettings(
        region=region,
        endpoint_url=endpoint_url,
        cluster=cluster["clusterName"],
        subnets=subnets,
        security_groups=security_groups,
        assign_public_ip=False,
        execution_role_arn=role_arn,
        log_group=log_group,
        log_stream_prefix="mayfly",
        bucket=bucket,
        tasks_queue_url=queues["tasks"],
        control_queue_url=queues["control"],
        events_queue_url=queues["events"],
        image_prefix=image_prefix,
    )
    # Only what was set here: the provider's tuning knobs keep their defaults.
    return settings.model_dump(mode="json", exclude_unset=True)
