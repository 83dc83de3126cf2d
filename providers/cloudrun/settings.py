"""Settings of a ``cloudrun`` target: where its jobs, topics, bucket and logs are.

``mayfly deploy`` fills them from the stack's outputs (``infra/clouds/gcp``); ``mayfly
emulator gcp`` prints them for a target on the local emulator; ``mayfly target add``
takes them by hand. The JSON schema of this model validates stack outputs.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mayfly.core.provider import ProviderSettings


class CloudRunSettings(ProviderSettings):
    """One Google Cloud Run Jobs target."""

    project: str = Field(description="Google Cloud project id of every resource of the target.")
    region: str = Field(description="Region the Cloud Run jobs run in, e.g. europe-west1.")
    queue_prefix: str = Field(
        description="Pub/Sub topic and subscription ids are PREFIX-tasks, PREFIX-control and PREFIX-events "
        "(each with a PREFIX-KIND-dlq dead-letter topic and subscription)."
    )
    bucket: str = Field(description="Cloud Storage bucket for code packages, payloads, results and logs.")
    job_prefix: str = Field(
        description="Cloud Run job templates are named PREFIX-<hash of image and sizes>, created on first use."
    )
    task_service_account: str | None = Field(
        default=None,
        description="Service account email the task containers run as; least privilege: one with no roles.",
    )
    signer_service_account: str | None = Field(
        default=None,
        description="Service account that signs the V4 URLs through IAM signBlob (the runner's own); "
        "None: the credentials' own key signs (a key file, or the emulator's throwaway key).",
    )
    credentials_file: str | None = Field(
        default=None,
        description="Service account key file for every Google call (emulator targets); None: application default.",
    )
    image_prefix: str | None = Field(
        default=None,
        description="Artifact Registry repository of the runtime images (REGION-docker.pkg.dev/PROJECT/REPO); "
        "runtime image 'mayfly/runtime-NAME:V' runs as 'PREFIX/runtime-NAME:V'.",
    )
    vpc_network: str | None = Field(default=None, description="VPC network for Direct VPC egress (None: none).")
    vpc_subnetwork: str | None = Field(default=None, description="Subnetwork for Direct VPC egress.")
    vpc_egress: Literal["ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"] = Field(
        default="PRIVATE_RANGES_ONLY", description="Which traffic leaves through the VPC, when one is set."
    )
    run_endpoint: str | None = Field(
        default=None, description="Cloud Run Admin API base URL instead of Google's (the local emulator)."
    )
    logging_endpoint: str | None = Field(
        default=None, description="Cloud Logging API base URL instead of Google's (the local emulator)."
    )
    storage_endpoint: str | None = Field(
        default=None, description="Cloud Storage base URL instead of Google's (the local emulator)."
    )
    pubsub_endpoint: str | None = Field(
        default=None, description="host:port of a Pub/Sub emulator instead of Google's (the local emulator)."
    )
    launches_per_second: float = Field(
        default=2.5,
        gt=0,
        description="Sustained RunJob rate of this process. Cloud Run's quota 'Job run requests per minute per region' "
        "is 180 by default (https://cloud.google.com/run/quotas#api): 2.5/s plus the burst stays within one "
        "minute's quota (30 + 150 = 180).",
    )
    launch_burst: int = Field(default=30, ge=1, description="Burst of RunJob calls (see launches_per_second).")
    status_poll_seconds: float = Field(
        default=2.0, gt=0, description="How often the runner asks Cloud Run about its executions."
    )
    log_reads_per_second: float = Field(
        default=1.0,
        gt=0,
        description="Cap on Cloud Logging entries.list calls per second by this process (Cloud Logging allows 60 "
        "per minute per project: https://cloud.google.com/logging/quotas#api-limits).",
    )
