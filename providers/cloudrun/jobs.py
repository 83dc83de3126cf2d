"""Cloud Run job templates: one job per distinct (image, size, identity, network), shared by every task that fits.

A Cloud Run job is a template of executions. Creating a job per task would hit the
1,000 jobs per project and region (https://cloud.google.com/run/quotas) and add a
write call to every launch, so a job is named after a hash of everything in its
template: ``<job_prefix>-<hash12>``. A runner looks the job up once, creates it only
if absent, and remembers it for the life of the process. Two runners racing to create
the same job both end with the same job (the loser gets ``ALREADY_EXISTS``, which is
fine: the content is the same by construction). What varies per attempt (the command,
the environment with the signed URLs, the timeout) goes into each ``RunJob``'s overrides.

Sizes are Cloud Run's (https://cloud.google.com/run/docs/configuring/jobs/memory-limits,
.../jobs/cpu): whole vCPUs 1, 2, 4, 6 or 8, memory 512 MiB to 32 GiB, with each CPU
count allowing a range of memory. A task gets the smallest valid combination that is at
least what it asks for (see :func:`cloud_run_size`), memory rounded up to 256 MiB, so
tasks of similar sizes share a job.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from mayfly.core.errors import InvalidInput, LaunchFailed
from mayfly.providers.cloudrun.google import translate
from mayfly.runtimes.catalog import IMAGE_PREFIX

#: Name of the one container of every job (the overrides address it).
CONTAINER = "task"
#: (vCPU, smallest memory MiB, largest memory MiB) Cloud Run jobs allow.
SIZES: tuple[tuple[int, int, int], ...] = (
    (1, 512, 4096),
    (2, 512, 8192),
    (4, 2048, 16384),
    (6, 4096, 24576),
    (8, 4096, 32768),
)
MAX_CPU = SIZES[-1][0]
MAX_MEMORY_MB = SIZES[-1][2]
#: Memory is rounded up to a multiple of this (fewer distinct jobs).
MEMORY_STEP_MB = 256
#: Longest task Cloud Run runs (its per-task timeout limit is 168 hours; Mayfly runs a day at most).
MAX_TIMEOUT_SECONDS = 86400
#: Job ids: lowercase letters, digits and hyphens, starting with a letter, at most 63 characters.
_JOB_ID = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_MANAGED = "managed-by"
MANAGED_BY = "mayfly"


def cloud_run_size(cpu: float, memory_mb: int) -> tuple[int, int]:
    """The smallest Cloud Run (vCPU, memory MiB) with at least ``cpu`` cores and ``memory_mb``.

    Raises:
        LaunchFailed: (not retryable) above 8 vCPU or 32 GiB, Cloud Run's largest instance.
    """
    if cpu > MAX_CPU or memory_mb > MAX_MEMORY_MB:
        raise LaunchFailed(
            f"Cloud Run runs tasks of at most {MAX_CPU} vCPU and {MAX_MEMORY_MB // 1024} GiB; "
            f"this task asks for {cpu:g} vCPU and {memory_mb} MiB",
            retryable=False,
        )
    memory = max(512, math.ceil(memory_mb / MEMORY_STEP_MB) * MEMORY_STEP_MB)
    for cores, smallest, largest in SIZES:
        if cores >= cpu and largest >= memory:
            return cores, max(memory, smallest)
    raise AssertionError("unreachable: the largest Cloud Run size covers every accepted request")


def job_image(image: str, image_prefix: str | None) -> str:
    """The image a job runs: runtime images ``mayfly/runtime-NAME:V`` come from the target's repository."""
    if image_prefix and image.startswith(IMAGE_PREFIX):
        return f"{image_prefix.rstrip('/')}/{image.removeprefix('mayfly/')}"
    return image


def label_value(value: str) -> str:
    """A Google label value: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", value.lower())[:63]


@dataclass(frozen=True)
class JobSpec:
    """Everything in a job's template; its hash names the job."""

    image: str
    cpu: int
    memory_mb: int
    service_account: str | None = None
    vpc_network: str | None = None
    vpc_subnetwork: str | None = None
    vpc_egress: str = "PRIVATE_RANGES_ONLY"

    def digest(self) -> str:
        """12 hex digits of the SHA-256 of the template's parameters."""
        data = json.dumps(asdict(self), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(data).hexdigest()[:12]


def job_id(prefix: str, spec: JobSpec) -> str:
    """``<prefix>-<hash12>``; raises InvalidInput when the prefix cannot make a valid job id."""
    clean = prefix.strip("-")
    name = f"{clean}-{spec.digest()}"
    if not _JOB_ID.match(name):
        raise InvalidInput(
            f"job_prefix {prefix!r} cannot name Cloud Run jobs: use lowercase letters, digits and hyphens, "
            "starting with a letter, at most 50 characters"
        )
    return name


def job_message(spec: JobSpec) -> dict[str, Any]:
    """The Job resource (as a dict ``run_v2.Job`` accepts) of a template."""
    template: dict[str, Any] = {
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image,
                "resources": {"limits": {"cpu": str(spec.cpu), "memory": f"{spec.memory_mb}Mi"}},
            }
        ],
        "timeout": {"seconds": MAX_TIMEOUT_SECONDS},
        "max_retries": 0,
        "execution_environment": "EXECUTION_ENVIRONMENT_GEN2",
    }
    if spec.service_account:
        template["service_account"] = spec.service_account
    if spec.vpc_network or spec.vpc_subnetwork:
        interface = {k: v for k, v in (("network", spec.vpc_network), ("subnetwork", spec.vpc_subnetwork)) if v}
        template["vpc_access"] = {"network_interfaces": [interface], "egress": spec.vpc_egress}
    labels = {LABEL_MANAGED: MANAGED_BY}
    return {
        "labels": labels,
        "template": {"labels": labels, "task_count": 1, "parallelism": 1, "template": template},
    }


def run_overrides(command: Sequence[str], env: Mapping[str, str], timeout: int) -> dict[str, Any]:
    """RunJob's ``overrides`` (as a dict ``run_v2.RunJobRequest.Overrides`` accepts): one task, its args and env."""
    return {
        "container_overrides": [
            {
                "name": CONTAINER,
                "args": list(command),
                "env": [{"name": k, "value": v} for k, v in sorted(env.items())],
            }
        ],
        "task_count": 1,
        "timeout": {"seconds": min(timeout, MAX_TIMEOUT_SECONDS + 3600)},
    }


class JobTemplates:
    """Finds or creates the job of each template, once per process (thread-safe)."""

    def __init__(self, jobs_client: Any, parent: str, prefix: str, *, timeout: float = 120.0) -> None:
        self._client = jobs_client
        self.parent = parent
        self.prefix = prefix
        self.timeout = timeout
        self._lock = threading.Lock()
        self._known: dict[str, str] = {}
        self._creating: dict[str, threading.Lock] = {}

    def name_for(self, spec: JobSpec) -> str:
        """The job resource name of ``spec``, created if Cloud Run does not have it yet."""
        jid = job_id(self.prefix, spec)
        with self._lock:
            known = self._known.get(jid)
            if known is not None:
                return known
            gate = self._creating.setdefault(jid, threading.Lock())
        with gate:
            with self._lock:
                if jid in self._known:
                    return self._known[jid]
            name = self._ensure(jid, spec)
            with self._lock:
                self._known[jid] = name
            return name

    def forget(self, name: str) -> None:
        """Drop a job from the memory (it was deleted behind our back)."""
        with self._lock:
            for jid in [j for j, n in self._known.items() if n == name]:
                del self._known[jid]

    def _ensure(self, jid: str, spec: JobSpec) -> str:
        from google.api_core import exceptions as gx

        name = f"{self.parent}/jobs/{jid}"
        with translate(f"looking up Cloud Run job {jid}"):
            try:
                self._client.get_job(name=name)
                return name
            except gx.NotFound:
                pass
        with translate(f"creating Cloud Run job {jid} for {spec.image}"):
            try:
                operation = self._client.create_job(parent=self.parent, job=job_message(spec), job_id=jid)
                operation.result(timeout=self.timeout)
            except gx.AlreadyExists:
                pass  # another runner created the same template first
            except (gx.InvalidArgument, gx.FailedPrecondition, gx.PermissionDenied) as exc:
                raise LaunchFailed(
                    f"Cloud Run refused to create job {jid} (image {spec.image}): {exc.message}", retryable=False
                ) from exc
        return name
