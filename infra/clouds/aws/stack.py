"""The AWS stack file: the common keys with AWS's rules, and the ``aws:`` section.

Region names, the 32-character name limit (IAM role names are built from the
stack name plus a suffix) and the runner service's Fargate sizes are checked here,
with the section's own bounds, before anything runs.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from mayfly.infra.stackfile import RunnerSection, StackBase, StrictModel

#: Retention periods CloudWatch Logs accepts (0 = never expire).
LOG_RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
#: Fargate's valid task sizes: cpu units -> allowed memory (MiB).
FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
#: AWS names are built from the stack name plus a suffix (``-execution-1a2b3c4``); IAM role names stop at 64.
AWS_MAX_NAME = 32


def fargate_size_problem(cpu: int, memory: int) -> str | None:
    """Why (cpu, memory) is not a Fargate task size, or None when it is one."""
    if cpu not in FARGATE_SIZES:
        return f"cpu {cpu} is not a Fargate size (one of {', '.join(map(str, FARGATE_SIZES))})"
    allowed = FARGATE_SIZES[cpu]
    if memory not in allowed:
        low, high = allowed.start, allowed.stop - 1
        return f"memory {memory} does not fit cpu {cpu} (Fargate: {low}-{high} MiB in steps of {allowed.step})"
    return None


class AwsRunnerSection(RunnerSection):
    """The runner service on ECS Fargate: its cpu and memory must be a Fargate size."""

    def size_problem(self) -> str | None:
        return fargate_size_problem(self.cpu, self.memory)


class AwsSection(StrictModel):
    """Options of the AWS component (``mayfly:aws:Target``); every key has a default."""

    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] = Field(
        default="FARGATE", description="FARGATE_SPOT is cheaper and may interrupt tasks."
    )
    vpc_id: str | None = Field(default=None, description="VPC of the tasks (default: the account's default VPC).")
    subnet_ids: list[str] | None = Field(
        default=None, min_length=1, description="Subnets of the tasks (default: the VPC's default subnets)."
    )
    assign_public_ip: bool = Field(
        default=True, description="Public IPs for tasks (needed to pull images in public subnets without NAT)."
    )
    container_insights: bool = Field(default=False, description="ECS Container Insights on the cluster (billed).")
    log_retention_days: int = Field(default=14, description="CloudWatch Logs retention of task logs.")
    message_retention_seconds: int = Field(
        default=4 * 86400, ge=60, le=14 * 86400, description="How long a queued message waits before SQS drops it."
    )
    visibility_timeout_seconds: int = Field(
        default=60, ge=0, le=43200, description="SQS visibility timeout; the runner extends it while a task runs."
    )
    max_receive_count: int = Field(
        default=5, ge=1, le=1000, description="Deliveries of one message before it moves to the dead-letter queue."
    )
    runs_expiry_days: int = Field(default=30, ge=1, description="Days before payloads and results (runs/) expire.")
    logs_expiry_days: int = Field(default=30, ge=1, description="Days before task logs (logs/) expire in the bucket.")
    keep_images: int = Field(default=100, ge=1, le=10000, description="Images kept in the ECR repository.")
    immutable_tags: bool = Field(default=False, description="Make ECR tags immutable (a rebuilt runtime then fails).")
    force_destroy: bool = Field(
        default=True, description="`mayfly destroy` also deletes the bucket's objects and the repository's images."
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} (0 = never expire)")
        return value


class AwsStack(StackBase):
    """A stack on AWS: ECS Fargate, SQS, S3, ECR, CloudWatch Logs (built by the ``mayfly:aws:Target`` component)."""

    cloud: Literal["aws"]
    runner: AwsRunnerSection = Field(default_factory=AwsRunnerSection, description="The optional always-on runner.")
    aws: AwsSection = Field(default_factory=AwsSection, description="AWS options.")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not AWS_REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region (like eu-west-1)")
        return value

    @field_validator("name", "target")
    @classmethod
    def _aws_name_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) > AWS_MAX_NAME:
            raise ValueError(f"at most {AWS_MAX_NAME} characters on aws (AWS name limits)")
        return value
