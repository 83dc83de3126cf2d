"""The ``ecs`` provider: tasks on AWS ECS Fargate, with SQS queues, S3 storage and CloudWatch Logs.

What it creates
    One Fargate task per (task, attempt) on the target's cluster, started with
    RunTask in the target's subnets and security groups, tagged ``mayfly.task``,
    ``mayfly.attempt``, ``mayfly.project``, ``mayfly.home`` and ``mayfly.target``
    (plus the code's labels) so a restarted runner finds it again. Its
    ``startedBy`` is ``m-<task>-<attempt>`` and its ``clientToken`` is derived from
    the attempt, so a launch retried after a crash or a lost response never starts
    a second task. Handles are ``<cluster>::<taskArn>``.

    Task definitions are shared, never one per task: one per distinct (image,
    Fargate size, roles, log settings, stop timeout), in a family named
    ``mayfly-<target>-<hash12>`` of those parameters, registered once and reused.
    Sizes are rounded up to the next valid Fargate combination (0.5 CPU and 64 MiB
    run as 0.5 vCPU with 1 GiB); above 16 vCPU or 120 GiB a task is refused.
    Runtime images ``mayfly/runtime-NAME:V`` run as ``<image_prefix>:runtime-NAME-V``
    (the stack's ECR repository).

    The container gets the task's command and environment as overrides, plus
    presigned S3 URLs for its code, payload and config and for uploading its
    result (the runtime's boot script uses them). Those staged objects are deleted
    when the attempt is removed. Logs go to the target's log group through the
    awslogs driver, stream ``<log_stream_prefix>/task/<ecs task id>`` (the runner
    logs it at launch). ECS cannot delete tasks: a removed task is tagged
    ``mayfly.removed`` and disappears from ECS about an hour after it stopped.

IAM permissions
    The runner: ``ecs:RunTask`` (on the ``mayfly-<target>-*`` task definitions),
    ``ecs:TagResource`` (RunTask with tags needs it), ``ecs:DescribeTasks``,
    ``ecs:ListTasks``, ``ecs:StopTask``, ``ecs:DescribeTaskDefinition``,
    ``ecs:RegisterTaskDefinition``, ``ecs:DescribeClusters``, ``iam:PassRole`` on
    the execution and task roles (condition ``iam:PassedToService:
    ecs-tasks.amazonaws.com``), ``logs:GetLogEvents`` and
    ``logs:DescribeLogGroups`` on the log group, ``sqs:ReceiveMessage``,
    ``sqs:DeleteMessage``, ``sqs:ChangeMessageVisibility``, ``sqs:SendMessage``
    and ``sqs:GetQueueAttributes`` on the three queues, ``s3:GetObject``,
    ``s3:PutObject``, ``s3:DeleteObject`` and ``s3:ListBucket`` on the bucket.
    ``sts:GetCallerIdentity`` needs no permission.

    The task execution role (used by ECS, not by the task): pulling the image
    (``ecr:GetAuthorizationToken``, ``ecr:BatchGetImage``,
    ``ecr:GetDownloadUrlForLayer``) and writing its log (``logs:CreateLogStream``,
    ``logs:PutLogEvents``). The task role: nothing, unless your code calls AWS;
    the boot script uses presigned URLs. The subnets need a route to ECR, S3 and
    CloudWatch Logs (a public IP, a NAT gateway, or VPC endpoints).

Limits
    RunTask calls go through a token bucket (``launches_per_second``,
    ``launch_burst``: Fargate's 20/s sustained, 100 burst) shared by the process,
    and back off on throttling. Task states come from one DescribeTasks per 100
    watched tasks every ``status_poll_seconds``. CloudWatch delivers log events a
    few seconds late; a follower keeps reading after the task stopped until the
    stream is quiet. Each log event is a line: a last line without a newline gets
    one, and lines over 16 KiB are split by the log driver. RunTask overrides are
    limited to 8192 characters, signed URLs included, which bounds the env a task
    can have. ``stop_timeout`` (2-120 s) is the SIGTERM-to-SIGKILL grace of every
    stop; it cannot vary per call. No GPUs, and no ``network: none`` (a Fargate
    task always has a network interface).

What the local emulator (``mayfly emulator aws``) does not cover
    Fargate capacity and placement (``RESOURCE:*`` failures, Spot interruptions),
    network interfaces, subnets and security groups, image pulls from ECR, IAM
    (every call is allowed), AWS's real rate limits and throttling, CloudWatch's
    delivery lag and the 24-hour ``clientToken`` memory. Those paths are tested
    with botocore's Stubber and recorded AWS responses instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mayfly.core import hookimpl
from mayfly.providers.ecs.provider import EcsProvider
from mayfly.providers.ecs.settings import EcsSettings

if TYPE_CHECKING:
    from mayfly.core.plugins import ProviderRegistry

__all__ = ["EcsProvider", "EcsSettings", "mayfly_register_providers"]


@hookimpl
def mayfly_register_providers(registry: ProviderRegistry) -> None:
    """Register :class:`EcsProvider` under the name ``ecs``."""
    registry.add(EcsProvider)
