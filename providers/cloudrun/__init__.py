"""The ``cloudrun`` provider: tasks as Cloud Run Jobs executions, with Pub/Sub queues, Cloud Storage and Cloud Logging.

What it creates
    One Cloud Run job per distinct template (image, vCPU, memory, task service account,
    Direct VPC egress), named ``<job_prefix>-<hash12>``, created on first use and reused
    (like ECS task definitions), with ``maxRetries: 0`` (retries are Mayfly's) and
    ``taskCount: 1``. Each attempt is one execution of it: ``RunJob`` with overrides (the
    task's command as ``args``, its env plus signed URLs, ``taskCount: 1`` and a timeout of
    the task's plus 120 s). Handles are execution names
    (``projects/P/locations/L/jobs/J/executions/E``). Sizes are rounded up to Cloud Run's
    (1, 2, 4, 6 or 8 vCPU; 512 MiB to 32 GiB); runtime images ``mayfly/runtime-NAME:V`` run
    as ``<image_prefix>/runtime-NAME:V`` (the stack's Artifact Registry repository).

    ``RunJob`` takes no client token, so launches are made idempotent with a launch record
    per attempt in the bucket (``runs/<task>/<attempt>/cloudrun.json``, created with
    ``ifGenerationMatch=0``, completed with the execution name from the operation's
    metadata before ``launch`` returns) and an env var ``MAYFLY_CLOUDRUN_ATTEMPT`` that
    finds the execution again from the job's executions (docs/decisions.md). The
    container gets V4 signed URLs for its code, payload and config and a signed PUT for
    its result (the runtime's boot script uses them); who signs is the target's
    ``signer_service_account`` (IAM signBlob, no key) or its ``credentials_file``. Output
    goes to Cloud Logging, read back per execution. ``remove`` deletes the execution and
    the attempt's staged objects.

IAM permissions
    The runner's identity: ``roles/run.developer`` on the project or jobs (``run.jobs.create``,
    ``run.jobs.get``, ``run.jobs.list``, ``run.jobs.run``, ``run.jobs.runWithOverrides``,
    ``run.executions.get``, ``run.executions.list``, ``run.executions.cancel``,
    ``run.executions.delete``, ``run.tasks.list``, ``run.operations.get``);
    ``roles/iam.serviceAccountUser`` on the task service account (``iam.serviceAccounts.actAs``);
    ``roles/storage.objectUser`` on the bucket; ``roles/pubsub.subscriber`` on the tasks and
    control subscriptions and ``roles/pubsub.publisher`` on the events topic;
    ``roles/logging.viewer`` (``logging.logEntries.list``); with ``signer_service_account``,
    ``roles/iam.serviceAccountTokenCreator`` on that account (``iam.serviceAccounts.signBlob``;
    the signer itself needs object read/write on the bucket). Cloud Run's service agent
    needs ``roles/artifactregistry.reader`` on the image repository. The task service
    account: nothing (the boot script uses signed URLs).

Limits
    ``RunJob`` calls go through a token bucket shared by the process (``launches_per_second``
    2.5, ``launch_burst`` 30: Cloud Run's default quota "Job run requests per minute per
    region" is 180, https://cloud.google.com/run/quotas#api); quota errors (429) back off
    and retry, then fail the launch as a retryable infrastructure failure. States come from
    one ``ListExecutions`` per job template every ``status_poll_seconds`` for all watched
    executions, ``ListTasks`` once one ended (the Admin API's read quota applies); each
    attempt also costs a ``DeleteExecution`` write when it is removed. Cloud Logging allows
    60 ``entries.list`` calls per minute per project: log reads share a bucket (``log_reads_per_second``), so followers
    of many tasks see their output late; each entry is a line (a last line without a newline
    gets one). At most 1,000 running executions and 1,000 jobs per project and region.
    ``cancel`` cannot choose the grace: Cloud Run sends SIGKILL 10 s after SIGTERM. No
    ``network: none`` (jobs always have egress), no GPUs, no secrets yet.

What the local emulator (``mayfly emulator gcp``) does not cover
    IAM (every call is allowed; ``testIamPermissions`` is skipped), Google's quotas and 429s,
    the signature and expiry of signed URLs (verified in the tests from the canonical
    request instead), IAM signBlob (tested against a local stand-in), image pulls from
    Artifact Registry, Direct VPC egress and Cloud Logging's delivery lag. Those paths are
    tested with recorded Cloud Run responses instead.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mayfly.core import hookimpl
from mayfly.providers.cloudrun.provider import CloudRunProvider
from mayfly.providers.cloudrun.settings import CloudRunSettings

if TYPE_CHECKING:
    from mayfly.core.plugins import ProviderRegistry

__all__ = ["CloudRunProvider", "CloudRunSettings", "mayfly_register_providers"]


@hookimpl
def mayfly_register_providers(registry: ProviderRegistry) -> None:
    """Register :class:`CloudRunProvider` under the name ``cloudrun``."""
    registry.add(CloudRunProvider)
