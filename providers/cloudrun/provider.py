"""The Cloud Run provider: one Cloud Run Jobs execution per (task, attempt).

How each operation maps onto Cloud Run (see :mod:`mayfly.providers.cloudrun` for the user's view):

``launch``
    The job of the spec's template (:mod:`~mayfly.providers.cloudrun.jobs`), a claim on the
    attempt's launch record (:mod:`~mayfly.providers.cloudrun.records`), the payload and
    config staged with signed URLs for the boot script, a token from the shared launch
    bucket (:mod:`~mayfly.providers.cloudrun.limiter`), then ``RunJob`` with overrides
    (args, env, ``taskCount: 1``, timeout). The execution's name comes from the operation's
    metadata and goes into the record before ``launch`` returns. Quota errors back off and
    retry; refusals become ``LaunchFailed`` with a diagnosis
    (:mod:`~mayfly.providers.cloudrun.diagnose`).
``state`` / ``wait``
    One ``ListExecutions`` per job and ``status_poll_seconds`` for every watched execution
    (:mod:`~mayfly.providers.cloudrun.poller`), plus ``ListTasks`` once an execution
    completed, for the exit code; a completed state is final and cached.
``logs``
    Cloud Logging (:mod:`~mayfly.providers.cloudrun.logs`).
``result``
    What the boot script PUT to the bucket; the attempt comes from the execution's env.
``cancel``
    ``CancelExecution`` (SIGTERM, then SIGKILL after Cloud Run's 10 s), then polls until done.
``remove``
    Cancel if it runs, ``DeleteExecution``, and the staged payload, config and launch record go.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from mayfly.core.errors import (
    AccessDenied,
    CredentialsMissing,
    InvalidInput,
    LaunchFailed,
    MayflyError,
    MissingDependency,
    TaskContainerNotFound,
    Unavailable,
    Unsupported,
)
from mayfly.core.messages import parse_container_name, run_key
from mayfly.core.models import Attached, ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.provider import Capability, Provider, ProviderContext, ProviderLimits, Transport
from mayfly.core.staging import read_result, stage_inputs
from mayfly.providers.cloudrun.diagnose import execution_state, launch_error
from mayfly.providers.cloudrun.google import translate
from mayfly.providers.cloudrun.jobs import (
    LABEL_MANAGED,
    MANAGED_BY,
    MAX_CPU,
    MAX_MEMORY_MB,
    MAX_TIMEOUT_SECONDS,
    JobSpec,
    JobTemplates,
    cloud_run_size,
    job_image,
    run_overrides,
)
from mayfly.providers.cloudrun.limiter import TokenBucket, backoff, shared_bucket
from mayfly.providers.cloudrun.logs import LogReader
from mayfly.providers.cloudrun.poller import ExecutionPoller, job_of
from mayfly.providers.cloudrun.records import LaunchRecords, Record
from mayfly.providers.cloudrun.settings import CloudRunSettings

log = logging.getLogger("mayfly.providers.cloudrun")

INSTALL_HINT = 'the cloudrun provider needs google-cloud-run: pip install "mayfly-tasks[gcp]"'
#: The env var that marks an execution as one attempt's: ``<home>/<target>/<task>/<attempt>``.
ATTEMPT_ENV = "MAYFLY_CLOUDRUN_ATTEMPT"
#: RunJob attempts after a quota error, beyond the first (backoff with full jitter).
RUN_JOB_RETRIES = 6
#: Seconds one RunJob request may take (it answers at once with an operation).
RUN_JOB_TIMEOUT = 30.0
#: Cloud Run's own timeout is Mayfly's plus this: the runner's timeout fires first and says "timeout".
TIMEOUT_MARGIN = 120
#: A launch record claimed (or renewed) this long ago without an execution is abandoned: its launcher
#: died. A live launcher renews it before every new RunJob try and writes the execution within seconds.
CLAIM_EXPIRY = 90.0
#: Cloud Run sends SIGKILL this long after SIGTERM on CancelExecution (not configurable).
CANCEL_GRACE = 10.0
#: How long ``cancel`` waits, beyond the grace, for Cloud Run to report the execution done.
STOP_SLACK = 120.0
#: How long a log follower keeps reading after the execution ended (Cloud Logging lags).
LOG_DRAIN = 30.0
_DONE = (ContainerStatus.EXITED, ContainerStatus.MISSING)


class NotStarted(LaunchFailed):
    """A launch that certainly started no execution (refused, or quota): its launch record can go at once."""


def run_module() -> Any:
    """Import ``google.cloud.run_v2``, or raise MissingDependency with the install command."""
    try:
        run_v2 = importlib.import_module("google.cloud.run_v2")
    except ImportError:
        raise MissingDependency(INSTALL_HINT) from None
    return run_v2


def _short(name: str) -> str:
    return name.rstrip("/").rsplit("/", 1)[-1]


class CloudRunProvider(Provider[CloudRunSettings]):
    """Runs each task as one execution of a Cloud Run job of the target's project and region."""

    name = "cloudrun"
    capabilities = frozenset({Capability.LOG_STREAMING, Capability.CANCEL, Capability.REATTACH})
    unsupported = {
        Capability.NETWORK_NONE: "every Cloud Run job has network egress; restrict it with Direct VPC egress "
        "(vpc_network, vpc_egress: ALL_TRAFFIC) and firewall rules instead",
        Capability.GPU: "Mayfly does not request Cloud Run GPUs (they need a GPU quota and specific regions)",
        Capability.SECRETS: "Mayfly does not pass secrets to Cloud Run jobs yet (Secret Manager volumes)",
    }
    limits = ProviderLimits(
        max_cpu=MAX_CPU,
        max_memory_mb=MAX_MEMORY_MB,
        max_timeout=MAX_TIMEOUT_SECONDS,
        cpu_reason=f"Cloud Run's largest job instance has {MAX_CPU} vCPU",
        memory_reason=f"Cloud Run's largest job instance has {MAX_MEMORY_MB // 1024} GiB",
        timeout_reason="Mayfly's Cloud Run targets run a task for a day at most",
    )
    named_networks_refused = (
        "Cloud Run jobs run in Google's network, or the target's VPC (vpc_network); no other network can be chosen"
    )
    poll_interval = 2.0

    def __init__(
        self,
        settings: CloudRunSettings,
        context: ProviderContext,
        *,
        launch_limiter: TokenBucket | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        """The keyword arguments replace rate limiters, time and randomness (tests, embedding)."""
        super().__init__(settings, context)
        s = settings
        self.parent = f"projects/{s.project}/locations/{s.region}"
        endpoint = s.run_endpoint or ""
        self.launch_limiter = launch_limiter or shared_bucket(
            ("RunJob", s.project, s.region, endpoint), s.launches_per_second, s.launch_burst
        )
        self._sleep = sleep
        self._clock = clock
        self._rng = rng
        self._lock = threading.Lock()
        self._clients: dict[str, Any] = {}
        self._store: Any = None
        self._jobs: JobTemplates | None = None
        self._logs = LogReader(
            self._logging_client,
            s.project,
            limiter=shared_bucket(("entries.list", s.project, s.logging_endpoint or ""), s.log_reads_per_second, 1),
            sleep=sleep,
            clock=clock,
            rng=rng,
        )
        #: Container name -> execution of attempts this process launched or found.
        self._known: dict[str, str] = {}
        #: Executions removed or cancelled by this process.
        self._removed: set[str] = set()
        self._cancelled: set[str] = set()
        #: execution -> (clock, state, execution message); completed states are kept for good.
        self._states: dict[str, tuple[float, ContainerState, Any]] = {}
        #: execution -> (task id, attempt) from its env.
        self._attempts: dict[str, tuple[str, int]] = {}
        #: The shared ListExecutions cache of every watcher (one call per job and poll interval).
        self.poller = ExecutionPoller(self._list_executions, clock=clock)

    # ------------------------------------------------------------ clients

    def _client(self, kind: str) -> Any:
        """A run_v2 ``JobsClient``, ``ExecutionsClient`` or ``TasksClient`` over REST, created once."""
        with self._lock:
            client = self._clients.get(kind)
            if client is None:
                run_v2 = run_module()
                from google.api_core.client_options import ClientOptions

                from mayfly.providers.cloudrun.auth import api_credentials

                s = self.settings
                options = ClientOptions(api_endpoint=s.run_endpoint) if s.run_endpoint else None
                with translate("creating a Cloud Run client"):
                    client = getattr(run_v2, kind)(
                        transport="rest",
                        client_options=options,
                        credentials=api_credentials(s.credentials_file, s.run_endpoint),
                    )
                self._clients[kind] = client
            return client

    def _logging_client(self) -> Any:
        from mayfly.providers.cloudrun.auth import api_credentials
        from mayfly.providers.cloudrun.logs import make_client

        s = self.settings
        return make_client(s.project, api_credentials(s.credentials_file, s.logging_endpoint), s.logging_endpoint)

    @property
    def records(self) -> LaunchRecords:
        """The launch records, in the target's own bucket."""
        with self._lock:
            if self._store is None:
                from mayfly.providers.cloudrun.gcs import GcsBlobStore

                blobs = self.context.blobs
                self._store = blobs if isinstance(blobs, GcsBlobStore) else GcsBlobStore.from_settings(self.settings)
            return LaunchRecords(self._store)

    @property
    def jobs(self) -> JobTemplates:
        """The job templates of this target."""
        client = self._client("JobsClient")
        with self._lock:
            if self._jobs is None:
                self._jobs = JobTemplates(client, self.parent, self.settings.job_prefix)
            return self._jobs

    @classmethod
    def transport(cls, settings: CloudRunSettings, target: str) -> Transport:
        """The target's Pub/Sub queues and Cloud Storage bucket."""
        from mayfly.providers.cloudrun.gcs import GcsBlobStore
        from mayfly.providers.cloudrun.google import Clients
        from mayfly.providers.cloudrun.pubsub import PubSubQueueSet

        credentials = None
        if settings.credentials_file and not settings.pubsub_endpoint:
            from mayfly.providers.cloudrun.auth import key_file_credentials

            key_file = settings.credentials_file
            credentials = lambda: key_file_credentials(key_file)  # noqa: E731 - read when a client is made
        clients = Clients(settings.pubsub_endpoint, credentials)
        queues = PubSubQueueSet.named(settings.project, settings.queue_prefix, clients)
        return Transport(queues, GcsBlobStore.from_settings(settings))

    def _marker(self, task_id: str, attempt: int) -> str:
        return f"{self.context.home_id}/{self.context.target}/{task_id}/{attempt}"

    def _attempt_of(self, execution: Any) -> tuple[str, int] | None:
        """(task, attempt) of an execution of this home and target, from its env; None for any other."""
        template = getattr(execution, "template", None)
        for container in getattr(template, "containers", None) or []:
            for var in getattr(container, "env", None) or []:
                if var.name == ATTEMPT_ENV:
                    home, _, rest = str(var.value).partition("/")
                    target, _, rest = rest.partition("/")
                    task_id, _, attempt = rest.rpartition("/")
                    if home == self.context.home_id and target == self.context.target and attempt.isdigit():
                        return task_id, int(attempt)
        return None

    # ------------------------------------------------------------ launch

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Start the execution of ``spec``, or return the one this attempt already has."""
        if spec.network not in ("bridge", ""):
            raise LaunchFailed(
                f"network {spec.network!r} is not available on Cloud Run: jobs run in Google's network "
                "or the target's VPC",
                retryable=False,
            )
        s = self.settings
        cpu, memory = cloud_run_size(spec.cpu, spec.memory_mb)
        template = JobSpec(
            image=job_image(spec.image, s.image_prefix),
            cpu=cpu,
            memory_mb=memory,
            service_account=s.task_service_account,
            vpc_network=s.vpc_network,
            vpc_subnetwork=s.vpc_subnetwork,
            vpc_egress=s.vpc_egress,
        )
        with self._lock:
            known = self._known.get(spec.name)
        if known is not None and self.state(known).status is not ContainerStatus.MISSING:
            return LaunchResult(known, existing=True)
        job = self.jobs.name_for(template)
        owner = uuid.uuid4().hex
        # The launch token is taken before the claim: a claim must not age in the bucket's queue (a busy
        # runner could wait minutes for a token), or another runner would take it over as abandoned.
        self.launch_limiter.acquire()
        claimed = self._claim(spec, job, owner)
        if isinstance(claimed, str):
            return self._remember(spec, claimed, existed=True)
        claim = [claimed]  # the record's generation, renewed before each new RunJob try

        def keep_claim() -> bool:
            renewed = self.records.renew(spec.task_id, spec.attempt, claim[0], job, owner)
            if renewed is None:
                return False
            claim[0] = renewed
            return True

        try:
            try:
                env = {**spec.env, **stage_inputs(spec, self.context.blobs, max_result_bytes=spec.max_result_bytes)}
            except Unsupported as exc:
                raise NotStarted(exc.message, retryable=False) from exc
            env[ATTEMPT_ENV] = self._marker(spec.task_id, spec.attempt)
            execution = self._run_job(spec, job, env, keep_claim)
        except (NotStarted, CredentialsMissing, AccessDenied, InvalidInput):
            # Nothing runs: give the claim up, so the next launch of this attempt need not wait for it to expire.
            self.records.release(spec.task_id, spec.attempt, claim[0])
            raise
        if not self.records.complete(spec.task_id, spec.attempt, claim[0], job, execution, owner):
            log.warning("the launch record of %s changed while it launched %s", spec.name, execution)
        log.info("launched %s as Cloud Run execution %s", spec.name, execution)
        return self._remember(spec, execution, existed=False)

    def _remember(self, spec: LaunchSpec, execution: str, *, existed: bool) -> LaunchResult:
        with self._lock:
            self._known[spec.name] = execution
            self._attempts[execution] = (spec.task_id, spec.attempt)
        return LaunchResult(execution, existing=existed)

    def _claim(self, spec: LaunchSpec, job: str, owner: str) -> int | str:
        """The generation of this runner's claim on the attempt, or the execution it already has.

        Raises LaunchFailed (retryable) while another runner is launching it.
        """
        records = self.records
        deadline = self._clock() + CLAIM_EXPIRY + 30
        for _ in range(1000):
            generation = records.claim(spec.task_id, spec.attempt, job, owner)
            if generation is not None:
                return generation
            seen = records.get(spec.task_id, spec.attempt)
            if seen is None:
                continue  # removed meanwhile: claim again
            found = self._resolve(spec.task_id, spec.attempt, seen)
            if found is not None:
                return found
            if seen.execution is not None or time.time() - seen.at > CLAIM_EXPIRY:
                # Its execution is gone (deleted), or its launcher died before RunJob: take it over.
                taken = records.take_over(spec.task_id, spec.attempt, seen, job, owner)
                if taken is not None:
                    return taken
                continue
            if self._clock() >= deadline:
                raise LaunchFailed(
                    f"another runner has been launching {spec.name} for {CLAIM_EXPIRY:.0f}s; not starting a second "
                    "execution",
                    retryable=True,
                )
            self._sleep(2.0)  # another runner is launching it right now: its execution appears in a moment
        raise LaunchFailed(f"the launch record of {spec.name} keeps changing; not starting it", retryable=True)

    def _resolve(self, task_id: str, attempt: int, record: Record) -> str | None:
        """The execution a launch record leads to, if it exists: the one it names, else the job's, by env."""
        if record.execution is not None:
            execution = self._get_execution(record.execution)
            return record.execution if execution is not None else None
        if not record.job:
            return None
        for execution in self._list_executions(record.job):
            if self._attempt_of(execution) == (task_id, attempt):
                return str(execution.name)
        return None

    def _run_job(self, spec: LaunchSpec, job: str, env: dict[str, str], keep_claim: Callable[[], bool]) -> str:
        """RunJob through the launch bucket, backing off on quota errors; the new execution's name.

        ``keep_claim`` renews the attempt's launch record before each new try (so it never looks
        abandoned while this runner still works on it); False means another runner took it over.
        """
        from google.api_core import exceptions as gx

        overrides = run_overrides(spec.command, env, spec.timeout + TIMEOUT_MARGIN)
        delays = backoff(RUN_JOB_RETRIES, rng=self._rng)
        lost = 0
        client = self._client("JobsClient")
        doing = f"starting the Cloud Run execution of {spec.name} (job {_short(job)})"
        first = True
        while True:
            if not first:
                self.launch_limiter.acquire()
            first = False
            try:
                with translate(doing):
                    try:
                        operation = client.run_job(
                            request={"name": job, "overrides": overrides}, timeout=RUN_JOB_TIMEOUT
                        )
                    except (gx.InvalidArgument, gx.FailedPrecondition, gx.PermissionDenied, gx.NotFound) as exc:
                        failure = launch_error(exc, doing)
                        raise NotStarted(failure.message, retryable=failure.retryable) from exc
            except (LaunchFailed, CredentialsMissing, AccessDenied, InvalidInput):
                raise
            except MayflyError as exc:
                cause = exc.__cause__
                if isinstance(cause, gx.ResourceExhausted | gx.TooManyRequests):
                    delay = next(delays, None)
                    if delay is None:
                        raise NotStarted(
                            f"{doing}: Cloud Run's quota refused RunJob {RUN_JOB_RETRIES + 1} times in a row "
                            f"({exc.message}); nothing was started",
                            retryable=True,
                        ) from exc
                    log.info("RunJob of %s hit a quota (%s); retrying in %.1fs", spec.name, exc.message, delay)
                    self._sleep(delay)
                    if not keep_claim():
                        raise LaunchFailed(
                            f"{doing}: another runner took the attempt over during the backoff", retryable=True
                        ) from exc
                    continue
                # Unreachable or a lost answer: the execution may exist. Look for it before asking again.
                found = self._find_by_env(job, spec.task_id, spec.attempt)
                if found is not None:
                    return found
                lost += 1
                if lost > 2:
                    raise LaunchFailed(f"{doing}: {exc.message}", retryable=True) from exc
                self._sleep(next(delays, 2.0))
                if not keep_claim():
                    raise LaunchFailed(
                        f"{doing}: another runner took the attempt over while Cloud Run did not answer", retryable=True
                    ) from exc
                continue
            name = str(getattr(getattr(operation, "metadata", None), "name", "") or "")
            if name:
                return name
            found = self._find_by_env(job, spec.task_id, spec.attempt)
            if found is None:
                raise LaunchFailed(f"{doing}: Cloud Run named no execution in its answer", retryable=True)
            return found

    def _find_by_env(self, job: str, task_id: str, attempt: int) -> str | None:
        for execution in self._list_executions(job):
            if self._attempt_of(execution) == (task_id, attempt):
                return str(execution.name)
        return None

    # ------------------------------------------------------------ Cloud Run reads

    def _get_execution(self, name: str) -> Any | None:
        from google.api_core import exceptions as gx

        with translate(f"describing Cloud Run execution {_short(name)}"):
            try:
                return self._client("ExecutionsClient").get_execution(name=name)
            except gx.NotFound:
                return None

    def _list_executions(self, job: str) -> list[Any]:
        from google.api_core import exceptions as gx

        with translate(f"listing the executions of Cloud Run job {_short(job)}"):
            try:
                return list(self._client("ExecutionsClient").list_executions(parent=job))
            except gx.NotFound:
                return []

    def _task(self, execution: str) -> Any | None:
        from google.api_core import exceptions as gx

        with translate(f"listing the tasks of Cloud Run execution {_short(execution)}"):
            try:
                tasks = list(self._client("TasksClient").list_tasks(parent=execution))
            except gx.NotFound:
                return None
        return tasks[0] if tasks else None

    def _observe(self, handle: str, max_age: float) -> tuple[ContainerState, Any]:
        """The state of an execution no older than ``max_age`` seconds (completed states are final)."""
        with self._lock:
            cached = self._states.get(handle)
        if cached is not None and (cached[1].status is ContainerStatus.EXITED or self._clock() - cached[0] < max_age):
            return cached[1], cached[2]
        listed, execution = self.poller.get(handle, max_age)
        if not listed:
            execution = self._get_execution(handle)  # created after the list was taken, or gone
        if execution is None:
            state = ContainerState(ContainerStatus.MISSING)
        else:
            # The task (exit code, attempt status) matters once the execution ended; before, the execution says it all.
            task = self._task(handle) if getattr(execution, "completion_time", None) is not None else None
            state = execution_state(execution, task, cancelled_by_us=handle in self._cancelled)
            attempt = self._attempt_of(execution)
            if attempt is not None:
                with self._lock:
                    self._attempts[handle] = attempt
        with self._lock:
            self._states[handle] = (self._clock(), state, execution)
        return state, execution

    # ------------------------------------------------------------ observe

    def find(self, spec_name: str) -> LaunchResult | None:
        """The execution of the attempt whose container name is ``spec_name``, if it still exists."""
        parsed = parse_container_name(spec_name)
        if parsed is None:
            return None
        with self._lock:
            known = self._known.get(spec_name)
        if known is not None and self.state(known).status is not ContainerStatus.MISSING:
            return LaunchResult(known, existing=True)
        record = self.records.get(*parsed)
        if record is None:
            return None
        found = self._resolve(parsed[0], parsed[1], record)
        if found is None or found in self._removed:
            return None
        with self._lock:
            self._known[spec_name] = found
            self._attempts[found] = parsed
        if record.execution is None:  # its launcher died before writing it down
            self.records.complete(parsed[0], parsed[1], record.generation, record.job, found, record.owner)
        return LaunchResult(found, existing=True)

    def state(self, handle: str) -> ContainerState:
        """PENDING, RUNNING, EXITED (exit code, OOM, diagnosis) or MISSING; at most ``status_poll_seconds`` old."""
        if handle in self._removed:
            return ContainerState(ContainerStatus.MISSING)
        return self._observe(handle, self.settings.status_poll_seconds)[0]

    def wait(self, handle: str, timeout: float) -> ContainerState:
        """Poll until the execution ends or ``timeout`` seconds pass; passing API errors do not end it early."""
        deadline = self._clock() + timeout
        while True:
            try:
                st = self.state(handle)
            except CredentialsMissing:
                raise
            except Unavailable:
                if self._clock() >= deadline:
                    raise
            else:
                if st.status in _DONE or self._clock() >= deadline:
                    return st
            self._sleep(max(0.0, min(self.settings.status_poll_seconds, deadline - self._clock())))

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        """The execution's output from Cloud Logging, each entry a line; with ``follow`` until it ended."""
        _, execution = self._observe(handle, 3600.0)
        since = _created(execution)
        job = _short(job_of(handle))
        if not follow:
            return self._logs.read(job, _short(handle), since)
        return self._logs.follow(
            job,
            _short(handle),
            since,
            lambda: self.state(handle).status in _DONE,
            poll=self.settings.status_poll_seconds,
            drain=LOG_DRAIN,
        )

    def _attempt(self, handle: str) -> tuple[str, int] | None:
        with self._lock:
            known = self._attempts.get(handle)
        if known is not None:
            return known
        self._observe(handle, 0.0)
        with self._lock:
            return self._attempts.get(handle)

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        """What the boot script uploaded from /mayfly/result.json, or None."""
        attempt = self._attempt(handle)
        if attempt is None:
            raise TaskContainerNotFound(f"no Cloud Run execution {handle} of this home")
        return read_result(self.context.blobs, attempt[0], attempt[1], max_bytes)

    # ------------------------------------------------------------ act

    def cancel(self, handle: str, grace_seconds: float) -> None:
        """CancelExecution (SIGTERM, SIGKILL 10 s later: Cloud Run's fixed grace); returns once it ended.

        Raises:
            TaskContainerNotFound: Cloud Run does not know the execution.
            Unavailable: it did not end within the grace + 120 s.
        """
        from google.api_core import exceptions as gx

        st = self._observe(handle, 0.0)[0]
        if st.status is ContainerStatus.MISSING:
            raise TaskContainerNotFound(f"no Cloud Run execution {handle} to cancel")
        if st.status is ContainerStatus.EXITED:
            return
        self._cancelled.add(handle)
        with translate(f"cancelling Cloud Run execution {_short(handle)}"):
            try:
                self._client("ExecutionsClient").cancel_execution(name=handle)
            except gx.NotFound as exc:
                raise TaskContainerNotFound(f"no Cloud Run execution {handle} to cancel") from exc
            except gx.FailedPrecondition:
                pass  # it ended meanwhile
        deadline = self._clock() + CANCEL_GRACE + STOP_SLACK
        while True:
            st = self._observe(handle, 0.0)[0]
            if st.status in _DONE:
                return
            if self._clock() >= deadline:
                raise Unavailable(f"Cloud Run execution {handle} was cancelled but is still running")
            self._sleep(min(self.settings.status_poll_seconds, 1.0))

    def remove(self, handle: str) -> None:
        """Cancel the execution if it runs, delete it, its staged payload and config and its record; idempotent."""
        from google.api_core import exceptions as gx

        if handle in self._removed:
            return
        attempt = self._attempt(handle)
        st = self._observe(handle, 0.0)[0]
        if st.status in (ContainerStatus.PENDING, ContainerStatus.RUNNING):
            try:
                self.cancel(handle, 0.0)
            except (TaskContainerNotFound, Unavailable) as exc:
                log.warning("could not cancel %s before removing it: %s", handle, exc.message)
        with translate(f"deleting Cloud Run execution {_short(handle)}"), contextlib.suppress(gx.NotFound):
            self._client("ExecutionsClient").delete_execution(name=handle)
        self.poller.forget(handle)
        with self._lock:
            self._removed.add(handle)
            self._states.pop(handle, None)
            for name in [n for n, h in self._known.items() if h == handle]:
                del self._known[name]
        if attempt is not None:
            for name in ("payload.json", "config.json"):
                self.context.blobs.delete(run_key(attempt[0], attempt[1], name))
            self.records.delete(*attempt)

    def reattach(self) -> list[Attached]:
        """This home's executions on this target (running or ended, not removed), from their env."""
        attached = []
        for job in self._list_jobs():
            for execution in self._list_executions(job):
                attempt = self._attempt_of(execution)
                name = str(execution.name)
                if attempt is None or name in self._removed:
                    continue
                with self._lock:
                    self._attempts[name] = attempt
                st = self._observe(name, self.settings.status_poll_seconds)[0]
                if st.status is ContainerStatus.MISSING:
                    continue
                attached.append(Attached(attempt[0], attempt[1], name, st))
        return attached

    def _list_jobs(self) -> list[str]:
        prefix = f"{self.parent}/jobs/{self.settings.job_prefix.strip('-')}-"
        with translate(f"listing the Cloud Run jobs of {self.parent}"):
            jobs = self._client("JobsClient").list_jobs(parent=self.parent)
            return [
                str(j.name)
                for j in jobs
                if str(j.name).startswith(prefix) and dict(j.labels or {}).get(LABEL_MANAGED) == MANAGED_BY
            ]

    def check(self) -> None:
        """Credentials, Cloud Run, the bucket and the queues: raise one line on the first problem."""
        from mayfly.providers.cloudrun.checks import check_target

        check_target(self)

    def close(self) -> None:
        """Close the REST sessions."""
        with self._lock:
            clients, self._clients = self._clients, {}
        for client in clients.values():
            transport = getattr(client, "transport", None)
            if transport is not None:
                transport.close()


def _created(execution: Any) -> datetime.datetime | None:
    ts = getattr(execution, "create_time", None)
    if ts is None or not hasattr(ts, "timestamp") or ts.timestamp() <= 0:
        return None
    return datetime.datetime.fromtimestamp(ts.timestamp() - 1, datetime.UTC)
