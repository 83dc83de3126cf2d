"""The Google Cloud stack file: the common keys with Google's rules, and the ``gcp:`` section.

Checked here, before anything runs, one line per problem: the project id and region
formats, the 23-character name limit (service account ids are ``NAME-runner`` and
``NAME-task``, at most 30 characters), tags as valid GCP labels, the runner's Cloud
Run sizes (1, 2, 4, 6 or 8 vCPUs with a memory that fits them), and the section's own
bounds (Pub/Sub's ack deadline, delivery attempts and retention; bucket soft delete).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from mayfly.infra.stackfile import RunnerSection, StackBase, StrictModel

#: ``europe-west1``, ``us-central1``, ``northamerica-northeast2``.
GCP_REGION = re.compile(r"^[a-z]+-[a-z]+\d{1,2}$")
#: Project ids: 6-30 characters, lowercase letters, digits and hyphens, starting with a letter.
GCP_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: Label keys and values (https://cloud.google.com/resource-manager/docs/labels-overview#requirements).
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
#: IAM member kinds ``operators`` may name.
MEMBER_KINDS = ("user", "group", "serviceAccount")
#: Service account ids are ``NAME-runner`` (IAM: 6-30 characters).
GCP_MAX_NAME = 30 - len("-runner")
#: Cloud Run's cpu counts (as cpu units, 1024 = one vCPU) -> memory a container may have (MiB).
#: https://cloud.google.com/run/docs/configuring/services/memory-limits and .../cpu:
#: 4 vCPUs need at least 2 GiB, 6 or 8 at least 4 GiB; one vCPU allows at most 4 GiB, two 8 GiB, four 16 GiB.
CLOUD_RUN_SIZES: dict[int, tuple[int, int]] = {
    1024: (512, 4096),
    2048: (512, 8192),
    4096: (2048, 16384),
    6144: (4096, 32768),
    8192: (4096, 32768),
}


def cloud_run_size_problem(cpu: int, memory: int) -> str | None:
    """Why (cpu units, memory MiB) is not a Cloud Run container size, or None when it is one."""
    if cpu not in CLOUD_RUN_SIZES:
        return f"cpu {cpu} is not a Cloud Run size (one of {', '.join(map(str, CLOUD_RUN_SIZES))}; 1024 = one vCPU)"
    low, high = CLOUD_RUN_SIZES[cpu]
    if not low <= memory <= high:
        return f"memory {memory} does not fit cpu {cpu} (Cloud Run: {low}-{high} MiB)"
    return None


class GcpRunnerSection(RunnerSection):
    """The runner as a Cloud Run worker pool: one instance of a Cloud Run size."""

    image: str | None = Field(
        default=None,
        description="Image with Mayfly installed (`pip install 'mayfly-tasks[gcp]'`); required when enabled.",
    )
    cpu: int = Field(default=1024, description="Runner cpu units: 1024, 2048, 4096, 6144 or 8192 (1024 = one vCPU).")
    memory: int = Field(default=1024, description="Runner memory in MiB (Cloud Run: 512-4096 for one vCPU, ...).")

    def size_problem(self) -> str | None:
        return cloud_run_size_problem(self.cpu, self.memory)


class GcpSection(StrictModel):
    """Options of the Google Cloud component (``mayfly:gcp:Target``); every key but ``project`` has a default."""

    project: str = Field(description="Google Cloud project id every resource is created in.")
    enable_apis: bool = Field(
        default=True, description="Enable the APIs the target uses (Pub/Sub, Storage, Run, ...); never disabled again."
    )
    ack_deadline_seconds: int = Field(
        default=60, ge=10, le=600, description="Initial Pub/Sub ack deadline; the runner extends it while a task runs."
    )
    max_delivery_attempts: int = Field(
        default=5, ge=5, le=100, description="Deliveries of one message before it moves to the dead-letter topic."
    )
    retry_minimum_backoff_seconds: int = Field(
        default=10, ge=0, le=600, description="Pub/Sub's wait before redelivering a nacked or expired message."
    )
    retry_maximum_backoff_seconds: int = Field(default=600, ge=0, le=600, description="Longest such wait.")
    message_retention_seconds: int = Field(
        default=4 * 86400,
        ge=600,
        le=7 * 86400,
        description="How long an unacked message is kept.",
    )
    dead_letter_retention_seconds: int = Field(
        default=7 * 86400, ge=600, le=7 * 86400, description="How long dead-lettered messages are kept."
    )
    runs_expiry_days: int = Field(default=30, ge=1, description="Days before payloads and results (runs/) expire.")
    logs_expiry_days: int = Field(default=30, ge=1, description="Days before task logs (logs/) expire in the bucket.")
    soft_delete_days: int = Field(
        default=0, description="Cloud Storage soft delete: 0 (off: staged payloads are short-lived) or 7-90 days."
    )
    keep_images: int = Field(default=100, ge=1, le=10000, description="Newest image versions kept per runtime image.")
    immutable_tags: bool = Field(default=False, description="Immutable tags (a rebuilt runtime then fails to push).")
    force_destroy: bool = Field(default=True, description="`mayfly destroy` also deletes the bucket's objects.")
    operators: list[str] = Field(
        default_factory=list,
        description="Members (user:, group:, serviceAccount:) who may act as the runner account, to run the "
        "control plane or a runner outside Google Cloud (iam.serviceAccountTokenCreator on that account only).",
    )
    vpc_network: str | None = Field(default=None, description="VPC network for the tasks' Direct VPC egress.")
    vpc_subnetwork: str | None = Field(default=None, description="Subnetwork for the tasks' Direct VPC egress.")
    vpc_egress: Literal["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"] = Field(
        default="PRIVATE_RANGES_ONLY", description="Which task traffic leaves through the VPC, when one is set."
    )
    launches_per_second: float | None = Field(
        default=None,
        gt=0,
        le=100,
        description="Sustained Cloud Run RunJob calls per second of the runner (default: the cloudrun provider's, "
        "sized to Cloud Run's default quota of 180 job runs per minute and region).",
    )
    launch_burst: int | None = Field(default=None, ge=1, le=1000, description="Burst of RunJob calls.")

    @field_validator("project")
    @classmethod
    def _project(cls, value: str) -> str:
        if not GCP_PROJECT.match(value):
            raise ValueError(
                f"{value!r} is not a Google Cloud project id (6-30 lowercase letters, digits and '-', "
                "starting with a letter)"
            )
        return value

    @field_validator("operators")
    @classmethod
    def _operators(cls, value: list[str]) -> list[str]:
        for member in value:
            kind, _, who = member.partition(":")
            if kind not in MEMBER_KINDS or not who:
                raise ValueError(f"{member!r} is not an IAM member (user:EMAIL, group:EMAIL or serviceAccount:EMAIL)")
        return value

    @field_validator("soft_delete_days")
    @classmethod
    def _soft_delete(cls, value: int) -> int:
        if value != 0 and not 7 <= value <= 90:
            raise ValueError("must be 0 (off) or 7-90 days (Cloud Storage's soft delete bounds)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> GcpSection:
        problems = []
        if self.retry_minimum_backoff_seconds > self.retry_maximum_backoff_seconds:
            problems.append("retry_minimum_backoff_seconds is above retry_maximum_backoff_seconds")
        if self.vpc_subnetwork and not self.vpc_network:
            problems.append("vpc_subnetwork needs vpc_network")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class GcpStack(StackBase):
    """A stack on Google Cloud: Cloud Run Jobs, Pub/Sub, Cloud Storage, Artifact Registry (``mayfly:gcp:Target``)."""

    cloud: Literal["gcp"]
    runner: GcpRunnerSection = Field(default_factory=GcpRunnerSection, description="The optional always-on runner.")
    gcp: GcpSection = Field(description="Google Cloud options (`project` is required).")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not GCP_REGION.match(value):
            raise ValueError(f"{value!r} is not a Google Cloud region (like europe-west1)")
        return value

    @field_validator("name", "target")
    @classmethod
    def _gcp_name_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) > GCP_MAX_NAME:
            raise ValueError(f"at most {GCP_MAX_NAME} characters on gcp (service account ids NAME-runner: 30)")
        return value

    @field_validator("tags")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for key, label in value.items():
            if not LABEL_KEY.match(key):
                raise ValueError(
                    f"tag key {key!r} is not a Google Cloud label key (lowercase letters, digits, '_' and '-', "
                    "starting with a letter, at most 63)"
                )
            if not LABEL_VALUE.match(label):
                raise ValueError(f"tag {key!r}: value {label!r} is not a Google Cloud label value")
        return value
