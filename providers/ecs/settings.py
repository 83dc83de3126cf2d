"""Settings of an ``ecs`` target: where its cluster, queues, bucket and logs are.

``mayfly deploy`` fills them from the stack's outputs; ``mayfly emulator aws``
prints them for a target on the local emulator; ``mayfly target add`` takes them
by hand. The JSON schema of this model validates stack outputs and stack files.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mayfly.core.provider import ProviderSettings


class EcsSettings(ProviderSettings):
    """One ECS Fargate target."""

    region: str = Field(description="AWS region of every resource of the target, e.g. eu-west-1.")
    endpoint_url: str | None = Field(
        default=None,
        description="Send every AWS call here instead of AWS (the local emulator: `mayfly emulator aws`).",
    )
    cluster: str = Field(description="ECS cluster name or ARN the tasks run on.")
    subnets: list[str] = Field(min_length=1, description="Subnet ids for the tasks' awsvpc network interfaces.")
    security_groups: list[str] = Field(default_factory=list, description="Security group ids of the tasks.")
    assign_public_ip: bool = Field(
        default=True,
        description="Give tasks a public IP (needed in public subnets without a NAT gateway to pull images).",
    )
    execution_role_arn: str = Field(description="Role ECS uses to pull images and write logs (not given to tasks).")
    task_role_arn: str | None = Field(
        default=None, description="Role the task's own code gets; least privilege: none unless your code needs one."
    )
    log_group: str = Field(description="CloudWatch Logs group of the task containers (awslogs driver).")
    log_stream_prefix: str = Field(default="mayfly", description="awslogs stream prefix.")
    bucket: str = Field(description="S3 bucket for code packages, payloads, results and logs.")
    tasks_queue_url: str = Field(description="SQS queue URL: task messages to this target's runners.")
    control_queue_url: str = Field(description="SQS queue URL: cancel requests to this target's runners.")
    events_queue_url: str = Field(description="SQS queue URL: runner events back to the control plane.")
    image_prefix: str | None = Field(
        default=None,
        description="Registry repository that holds the runtime images (the stack's ECR repository URL); "
        "runtime image 'mayfly/runtime-NAME:V' runs as 'PREFIX:runtime-NAME-V'.",
    )
    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] = Field(
        default="FARGATE", description="FARGATE_SPOT runs tasks on spare capacity (cheaper, may be interrupted)."
    )
    platform_version: str = Field(default="LATEST", description="Fargate platform version.")
    launches_per_second: float = Field(
        default=20.0, gt=0, description="Sustained RunTask rate (Fargate's task launch rate: 20/s per region)."
    )
    launch_burst: int = Field(default=100, ge=1, description="Burst of task launches (Fargate: 100).")
    run_task_retries: int = Field(
        default=6,
        ge=0,
        le=10,
        description="RunTask tries after it is throttled, beyond the first, before the launch fails as `throttled` "
        "(which moves a task with fallback targets); fewer moves such tasks sooner.",
    )
    run_task_backoff: float = Field(
        default=0.5,
        gt=0,
        le=20,
        description="Base of the jittered exponential backoff between throttled RunTask tries, in seconds "
        "(try n waits up to base * 2^n, at most 20 s).",
    )
    stop_timeout: int = Field(
        default=30,
        ge=2,
        le=120,
        description="Seconds ECS waits after SIGTERM before SIGKILL when a task is stopped (Fargate allows 2-120).",
    )
    status_poll_seconds: float = Field(
        default=2.0,
        gt=0,
        description="How often the runner asks ECS about its tasks: one DescribeTasks per 100 watched tasks each time.",
    )
    log_reads_per_second: float = Field(
        default=10.0,
        gt=0,
        description="Cap on CloudWatch GetLogEvents calls per second by this process (AWS allows 25/s per account).",
    )
