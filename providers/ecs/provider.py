"""The ECS Fargate provider: one Fargate task per (task, attempt), watched through a shared poller.

How each operation maps onto ECS (see :mod:`mayfly.providers.ecs` for the user's view):

``launch``
    ``find`` first (this process's memory, then ListTasks by ``startedBy`` and the
    tags); else the task definition for the spec's image and Fargate size
    (:mod:`~mayfly.providers.ecs.taskdefs`), the payload and config staged in the
    blob store with signed URLs for the boot script, a token from the shared
    launch bucket (:mod:`~mayfly.providers.ecs.limiter`), and RunTask with a
    ``clientToken`` derived from the attempt. Throttling backs off and retries;
    RunTask ``failures`` and errors become ``LaunchFailed`` with a diagnosis
    (:mod:`~mayfly.providers.ecs.diagnose`).
``state`` / ``states`` / ``wait``
    Answered from a :class:`~mayfly.providers.ecs.poller.TaskPoller` shared by all
    watchers: at most one DescribeTasks per 100 watched tasks per
    ``status_poll_seconds``.
``logs``
    CloudWatch Logs (:mod:`~mayfly.providers.ecs.cwlogs`).
``result``
    What the boot script PUT to the blob store; the attempt comes from the task's tags.
``cancel``
    StopTask, then polls until ECS reports the container (or the whole task) stopped.
``remove``
    ECS tasks cannot be deleted (stopped tasks stay listed about an hour): the task
    is stopped if it still runs and tagged ``mayfly.removed``, so ``state`` says
    MISSING and ``find``/``reattach`` skip it; the staged payload and config go,
    and so do the attempt's secret parameters and its own task definition.
``secrets``
    Each value is an SSM SecureString parameter of the attempt, referenced by the
    container's ``secrets`` in a task definition of the attempt's own (RunTask
    overrides cannot carry secrets); ECS resolves them at start
    (:mod:`~mayfly.providers.ecs.secrets`). ``sweep`` deletes the parameters of
    attempts that are over whose task ECS no longer lists.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from mayfly.core.errors import (
    CredentialsMissing,
    LaunchFailed,
    MayflyError,
    TaskContainerNotFound,
    Unavailable,
    Unsupported,
)
from mayfly.core.messages import run_key
from mayfly.core.models import Attached, ContainerState, ContainerStatus, FailureKind, LaunchResult, LaunchSpec
from mayfly.core.provider import (
    Capability,
    Provider,
    ProviderContext,
    ProviderLimits,
    Transport,
)
from mayfly.core.staging import read_result, stage_inputs
from mayfly.providers.ecs import sdk
from mayfly.providers.ecs.aws import THROTTLING, Clients, error_code, error_message, translate
from mayfly.providers.ecs.checks import check_target
from mayfly.providers.ecs.cwlogs import LogReader, stream_name
from mayfly.providers.ecs.diagnose import STOP_REASON, container_state, run_task_error, run_task_failure
from mayfly.providers.ecs.limiter import TokenBucket, backoff, shared_bucket
from mayfly.providers.ecs.naming import (
    T_ATTEMPT,
    T_HOME,
    T_PROJECT,
    T_REMOVED,
    T_SECRETS,
    T_TARGET,
    T_TASK,
    attempt_of,
    attempt_of_task,
    client_token,
    make_handle,
    make_tags,
    parse_handle,
    started_by,
    tags_of,
)
from mayfly.providers.ecs.poller import TaskPoller
from mayfly.providers.ecs.secrets import ParameterStore, target_path
from mayfly.providers.ecs.settings import EcsSettings
from mayfly.providers.ecs.taskdefs import (
    CONTAINER,
    MAX_CPU,
    MAX_MEMORY_MB,
    TaskDefinitions,
    TaskDefinitionSpec,
    fargate_size,
    task_image,
)

log = logging.getLogger("mayfly.providers.ecs")

#: ECS's limit on the JSON of a RunTask's ``overrides`` (signed URLs included).
MAX_OVERRIDES_CHARS = 8192
#: How long ``cancel`` waits, beyond the stop timeout, for ECS to report the task stopped.
STOP_SLACK = 120.0
#: How long a log follower keeps reading after the task stopped (CloudWatch lags).
LOG_DRAIN = 30.0
#: A ``find`` that found nothing this recently is not repeated by ``launch`` (the runner calls both in a row;
#: the clientToken still guarantees a single task).
FIND_MEMORY = 10.0
_DONE = (ContainerStatus.EXITED, ContainerStatus.MISSING)


class EcsProvider(Provider[EcsSettings]):
    """Runs each task as a Fargate task on the target's ECS cluster."""

    name = "ecs"
    capabilities = frozenset(
        {Capability.LOG_STREAMING, Capability.CANCEL, Capability.REATTACH, Capability.SPOT, Capability.SECRETS}
    )
    unsupported = {
        Capability.GPU: "Fargate has no GPUs (GPU tasks need ECS on EC2 container instances, "
        "which Mayfly does not manage)",
        Capability.NETWORK_NONE: "every Fargate task gets a network interface in the target's subnets (awsvpc); "
        "restrict it with a security group without egress rules instead",
    }
    limits = ProviderLimits(
        max_cpu=MAX_CPU,
        max_memory_mb=MAX_MEMORY_MB,
        max_timeout=Provider.limits.max_timeout,
        cpu_reason=f"Fargate's largest task has {MAX_CPU:g} vCPU",
        memory_reason=f"Fargate's largest task has {MAX_MEMORY_MB // 1024} GiB",
        timeout_reason="Mayfly's ECS targets run a task for a day at most",
    )
    named_networks_refused = (
        "Fargate tasks always run in the target's subnets (awsvpc); choose the network with the target's "
        "subnets and security groups"
    )
    poll_interval = 2.0

    def __init__(
        self,
        settings: EcsSettings,
        context: ProviderContext,
        *,
        clients: Clients | None = None,
        launch_limiter: TokenBucket | None = None,
        log_limiter: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """The keyword arguments replace AWS clients, rate limiters, time and randomness (tests, embedding)."""
        s = settings
        super().__init__(s, context)
        self._clients = clients or Clients(s.region, s.endpoint_url)
        endpoint = s.endpoint_url or ""
        #: Taken before every RunTask; shared by the process's providers of one region and endpoint.
        self.launch_limiter = launch_limiter or shared_bucket(
            ("RunTask", s.region, endpoint), s.launches_per_second, s.launch_burst
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._taskdefs = TaskDefinitions(self._clients, context.target, sleep=sleep, rng=rng)
        #: The SSM parameters that hold the secrets of this home's attempts on this target.
        self.parameters = ParameterStore(self._clients, context.target, context.home_id)
        #: The shared DescribeTasks cache of every watcher of this provider.
        self.poller = TaskPoller(self._describe_batch, self._parse, interval=s.status_poll_seconds, clock=clock)
        self._logs = LogReader(
            self._clients,
            s.log_group,
            limiter=log_limiter
            or shared_bucket(
                ("GetLogEvents", s.region, endpoint), s.log_reads_per_second, max(1, math.ceil(s.log_reads_per_second))
            ),
            clock=clock,
            sleep=sleep,
            rng=rng,
        )
        self._lock = threading.Lock()
        #: Container name -> handle of tasks this process launched or found.
        self._known: dict[str, str] = {}
        #: Handles removed by this process (in case tagging them failed).
        self._removed: set[str] = set()
        #: Container name -> when ``find`` last found no task for it.
        self._absent: dict[str, float] = {}

    @classmethod
    def transport(cls, settings: EcsSettings, target: str) -> Transport:
        """The target's SQS queues and S3 bucket."""
        from mayfly.providers.ecs.s3 import S3BlobStore
        from mayfly.providers.ecs.sqs import SqsQueueSet

        clients = Clients(settings.region, settings.endpoint_url)
        return Transport(SqsQueueSet.from_settings(settings, clients), S3BlobStore.from_settings(settings, clients))

    # ------------------------------------------------------------ AWS access

    def _parse(self, handle: str) -> tuple[str, str]:
        return parse_handle(handle, self.settings.cluster)

    def _ecs(self, operation: str, doing: str, **kwargs: Any) -> dict[str, Any]:
        """One ECS call with its errors translated."""
        with translate(doing):
            response: dict[str, Any] = getattr(self._clients("ecs"), operation)(**kwargs)
        return response

    def _describe_batch(self, cluster: str, arns: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """DescribeTasks (≤100 ARNs, tags included); a deleted cluster has no tasks."""
        with translate(f"describing ECS tasks on cluster {cluster}"):
            bx = sdk.errors()
            try:
                found = self._clients("ecs").describe_tasks(cluster=cluster, tasks=arns, include=["TAGS"])
            except bx.ClientError as exc:
                if error_code(exc) == "ClusterNotFoundException":
                    return [], []
                raise
        return list(found.get("tasks") or []), list(found.get("failures") or [])

    def _list_tasks(self, **filters: str) -> list[str]:
        """Task ARNs on the target's cluster, running and recently stopped, matching ``filters``."""
        arns: list[str] = []
        with translate(f"listing ECS tasks on cluster {self.settings.cluster}"):
            paginator = self._clients("ecs").get_paginator("list_tasks")
            for desired in ("RUNNING", "STOPPED"):
                for page in paginator.paginate(cluster=self.settings.cluster, desiredStatus=desired, **filters):
                    arns.extend(str(a) for a in page.get("taskArns") or [])
        return list(dict.fromkeys(arns))

    def _describe_all(self, arns: list[str]) -> list[dict[str, Any]]:
        tasks: list[dict[str, Any]] = []
        for start in range(0, len(arns), 100):
            tasks.extend(self._describe_batch(self.settings.cluster, arns[start : start + 100])[0])
        return tasks

    def _ours(self, tags: Mapping[str, str]) -> bool:
        return tags.get(T_HOME) == self.context.home_id and tags.get(T_TARGET) == self.context.target

    def _state_of(self, handle: str, task: Mapping[str, Any] | None) -> ContainerState:
        if task is None or handle in self._removed or tags_of(task).get(T_REMOVED):
            return ContainerState(ContainerStatus.MISSING)
        return container_state(task)

    # ------------------------------------------------------------ launch

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Start the Fargate task of ``spec``, or return the one this attempt already has."""
        if spec.network not in ("bridge", ""):
            raise LaunchFailed(
                f"network {spec.network!r} is not available on ECS: Fargate tasks always run in the target's "
                "subnets (awsvpc)",
                retryable=False,
            )
        with self._lock:
            known = spec.name in self._known
            absent = self._absent.pop(spec.name, None)
        if known or absent is None or self._clock() - absent > FIND_MEMORY:
            existing = self.find(spec.name)
            if existing is not None:
                return existing
        s = self.settings
        cpu, memory = fargate_size(spec.cpu, spec.memory_mb)
        definition = TaskDefinitionSpec(
            image=task_image(spec.image, s.image_prefix),
            cpu=cpu,
            memory=memory,
            execution_role_arn=s.execution_role_arn,
            task_role_arn=s.task_role_arn,
            log_group=s.log_group,
            log_stream_prefix=s.log_stream_prefix,
            region=s.region,
            stop_timeout=s.stop_timeout,
            secrets=tuple(
                (ref["name"], ref["valueFrom"]) for ref in self.parameters.put(spec.task_id, spec.attempt, spec.secrets)
            ),
        )
        taskdef = self._taskdefs.arn_for(definition)
        try:
            env = {**spec.env, **stage_inputs(spec, self.context.blobs, max_result_bytes=spec.max_result_bytes)}
        except Unsupported as exc:
            raise LaunchFailed(exc.message, retryable=False) from exc
        task, existed = self._run_task(spec, self._run_task_request(spec, taskdef, env))
        handle = make_handle(s.cluster, str(task["taskArn"]))
        self.poller.seed(handle, task)
        with self._lock:
            self._known[spec.name] = handle
            self._absent.pop(spec.name, None)
        log.info(
            "%s %s as ECS task %s (logs: %s %s)",
            "found" if existed else "launched",
            spec.name,
            task["taskArn"],
            s.log_group,
            stream_name(s.log_stream_prefix, str(task["taskArn"])),
        )
        return LaunchResult(handle, existing=existed)

    def _run_task_request(self, spec: LaunchSpec, taskdef: str, env: Mapping[str, str]) -> dict[str, Any]:
        s = self.settings
        override: dict[str, Any] = {
            "name": CONTAINER,
            "environment": [{"name": k, "value": v} for k, v in sorted(env.items())],
        }
        if spec.command:
            override["command"] = list(spec.command)
        overrides = {"containerOverrides": [override]}
        size = len(json.dumps(overrides, separators=(",", ":")))
        if size > MAX_OVERRIDES_CHARS:
            raise LaunchFailed(
                f"the task's command and environment take {size} characters in ECS overrides, signed URLs "
                f"included; ECS allows {MAX_OVERRIDES_CHARS}: shorten the code's or task's env",
                retryable=False,
            )
        awsvpc: dict[str, Any] = {
            "subnets": list(s.subnets),
            "assignPublicIp": "ENABLED" if s.assign_public_ip else "DISABLED",
        }
        if s.security_groups:
            awsvpc["securityGroups"] = list(s.security_groups)
        ours = {
            T_TASK: spec.task_id,
            T_ATTEMPT: str(spec.attempt),
            T_PROJECT: spec.project,
            T_HOME: self.context.home_id,
            T_TARGET: self.context.target,
        }
        if spec.secrets:
            ours[T_SECRETS] = "1"
        request: dict[str, Any] = {
            "cluster": s.cluster,
            "taskDefinition": taskdef,
            "count": 1,
            "startedBy": started_by(spec.name),
            "clientToken": client_token(self.context.home_id, self.context.target, spec.name),
            "platformVersion": s.platform_version,
            "networkConfiguration": {"awsvpcConfiguration": awsvpc},
            "overrides": overrides,
            "tags": make_tags(ours, spec.labels),
            "enableECSManagedTags": True,
        }
        if s.capacity_provider == "FARGATE_SPOT":
            request["capacityProviderStrategy"] = [{"capacityProvider": "FARGATE_SPOT", "weight": 1}]
        else:
            request["launchType"] = "FARGATE"
        return request

    def _run_task(self, spec: LaunchSpec, request: dict[str, Any]) -> tuple[Mapping[str, Any], bool]:
        """RunTask with the launch bucket and backoff; (task, True) when ECS says it exists already."""
        retries = self.settings.run_task_retries
        delays = backoff(retries, base=self.settings.run_task_backoff, rng=self._rng)
        lost = 0
        with translate(f"starting the ECS task of {spec.name}"):
            bx = sdk.errors()
            while True:
                self.launch_limiter.acquire()
                try:
                    response = self._clients("ecs").run_task(**request)
                except (bx.ReadTimeoutError, bx.ConnectionClosedError):
                    # The request may have been applied and only its response lost. Look for the task; if ECS
                    # does not list it (yet), send the very same request again: its clientToken makes ECS
                    # return the task it started instead of a second one.
                    found = self.find(spec.name)
                    if found is not None:
                        seen = self.poller.peek(found.handle)
                        if seen is not None and seen.task is not None:
                            return seen.task, True
                    lost += 1
                    if lost > 2:
                        raise
                    continue
                except bx.ClientError as exc:
                    code = error_code(exc)
                    if code in THROTTLING:
                        delay = next(delays, None)
                        if delay is None:
                            raise LaunchFailed(
                                f"ECS throttled RunTask {retries + 1} times in a row ({code}); nothing was started",
                                retryable=True,
                                kind=FailureKind.THROTTLED.value,
                            ) from exc
                        log.info("RunTask of %s throttled (%s); retrying in %.1fs", spec.name, code, delay)
                        self._sleep(delay)
                        continue
                    if code == "ConflictException":
                        return self._conflict(spec, request, exc), True
                    raise run_task_error(code, error_message(exc)) from exc
                tasks = response.get("tasks") or []
                if tasks:
                    return tasks[0], False
                raise run_task_failure(response.get("failures") or [])

    def _conflict(self, spec: LaunchSpec, request: Mapping[str, Any], exc: Exception) -> Mapping[str, Any]:
        """The task a ConflictException names, if it is this very attempt's; else a LaunchFailed.

        ECS raises it when the ``clientToken`` was used before with other parameters.
        For the same attempt the only parameters that change between launches are
        the signed URLs in the environment (they carry their signing time), so a
        conflicting task tagged with this home, target, task and attempt *is* this
        attempt's task, started by a launch whose response was lost.
        """
        response = getattr(exc, "response", {}) or {}
        ids = [str(i) for i in response.get("resourceIds") or []]
        for task in self._describe_all(ids) if ids else []:
            tags = tags_of(task)
            if self._ours(tags) and attempt_of(tags) == (spec.task_id, spec.attempt):
                log.info("ECS already runs %s as %s (same clientToken)", spec.name, task.get("taskArn"))
                return task
        raise LaunchFailed(
            f"ECS refused RunTask: clientToken {request['clientToken']} of {spec.name} was already used with "
            f"different parameters (ConflictException: {error_message(exc)}; existing task(s): "
            f"{', '.join(ids) or 'not named'}); nothing was started",
            retryable=False,
        )

    # ------------------------------------------------------------ observe

    def find(self, spec_name: str) -> LaunchResult | None:
        """The task of the attempt whose container name is ``spec_name``, if it still exists."""
        with self._lock:
            known = self._known.get(spec_name)
        if known is not None:
            seen = self.poller.get([known], self.settings.status_poll_seconds)[known]
            if self._state_of(known, seen.task).status is not ContainerStatus.MISSING:
                return LaunchResult(known, existing=True)
        arns = self._list_tasks(startedBy=started_by(spec_name))
        candidates = []
        for task in self._describe_all(arns) if arns else []:
            tags = tags_of(task)
            if self._ours(tags) and not tags.get(T_REMOVED):
                candidates.append(task)
        if not candidates:
            with self._lock:
                now = self._clock()
                for name in [n for n, t in self._absent.items() if now - t > FIND_MEMORY]:
                    del self._absent[name]
                self._absent[spec_name] = now
            return None
        # Several can only exist if someone started one by hand: prefer a live one, then the newest.
        best = max(candidates, key=lambda t: (t.get("lastStatus") != "STOPPED", str(t.get("createdAt") or "")))
        handle = make_handle(self.settings.cluster, str(best["taskArn"]))
        if handle in self._removed:
            return None
        self.poller.seed(handle, best)
        with self._lock:
            self._known[spec_name] = handle
        return LaunchResult(handle, existing=True)

    def state(self, handle: str) -> ContainerState:
        """PENDING, RUNNING, EXITED (exit code, OOM, diagnosis) or MISSING; at most ``status_poll_seconds`` old."""
        seen = self.poller.get([handle], self.settings.status_poll_seconds)[handle]
        return self._state_of(handle, seen.task)

    def states(self, handles: Iterable[str]) -> dict[str, ContainerState]:
        """The states of many tasks at once (one DescribeTasks per 100 of them at most)."""
        seen = self.poller.get(handles, self.settings.status_poll_seconds)
        return {h: self._state_of(h, s.task) for h, s in seen.items()}

    def wait(self, handle: str, timeout: float) -> ContainerState:
        """Poll (through the shared poller) until the task exits or ``timeout`` seconds pass.

        Throttling and passing API errors do not end the wait early; they are raised
        only if they last until the timeout.
        """
        deadline = self._clock() + timeout
        interval = self.settings.status_poll_seconds
        with self.poller.watching(handle):
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
                self._sleep(max(0.0, min(interval, deadline - self._clock())))

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        """The task's CloudWatch log, each event a line; with ``follow`` until it stopped and the log is complete."""
        _, arn = self._parse(handle)
        stream = stream_name(self.settings.log_stream_prefix, arn)
        if not follow:
            return self._logs.read(stream)
        return self._follow(handle, stream)

    def _follow(self, handle: str, stream: str) -> Iterator[bytes]:
        with self.poller.watching(handle):
            yield from self._logs.follow(
                stream,
                lambda: self.state(handle).status in _DONE,
                poll=self.settings.status_poll_seconds,
                drain=LOG_DRAIN,
            )

    def _attempt(self, handle: str) -> tuple[str, int] | None:
        """(task id, attempt) of a handle, from its tags (cached: they never change)."""
        seen = self.poller.peek(handle)
        if seen is None or seen.task is None:
            seen = self.poller.get([handle], self.settings.status_poll_seconds)[handle]
        return attempt_of_task(seen.task) if seen.task is not None else None

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        """What the boot script uploaded from /mayfly/result.json, or None."""
        attempt = self._attempt(handle)
        if attempt is None:
            raise TaskContainerNotFound(f"no ECS task {handle} (stopped over an hour ago, or not Mayfly's)")
        return read_result(self.context.blobs, attempt[0], attempt[1], max_bytes)

    # ------------------------------------------------------------ act

    def _stop(self, handle: str, reason: str) -> None:
        """StopTask; a task ECS no longer knows raises TaskContainerNotFound."""
        cluster, arn = self._parse(handle)
        with translate(f"stopping ECS task {arn}"):
            bx = sdk.errors()
            try:
                stopped = self._clients("ecs").stop_task(cluster=cluster, task=arn, reason=reason)
            except bx.ClientError as exc:
                # "The referenced task was not found."
                if error_code(exc) == "InvalidParameterException" and "not found" in error_message(exc):
                    raise TaskContainerNotFound(f"no ECS task {arn} to stop") from exc
                raise
        task = stopped.get("task")
        if task:
            self.poller.seed(handle, task)

    def cancel(self, handle: str, grace_seconds: float) -> None:
        """StopTask (SIGTERM, SIGKILL after the task definition's ``stopTimeout``); returns once ECS reports it stopped.

        ``grace_seconds`` cannot be chosen per call on ECS: the target's
        ``stop_timeout`` setting applies. Cancelling a stopped task does nothing.

        Raises:
            TaskContainerNotFound: ECS does not know the task (any more).
            Unavailable: the task did not stop within ``stop_timeout`` + 120 s.
        """
        _, arn = self._parse(handle)
        seen = self.poller.get([handle], 0)[handle]
        if seen.task is None:
            raise TaskContainerNotFound(f"no ECS task {arn} to cancel (stopped over an hour ago?)")
        if container_state(seen.task).status is ContainerStatus.EXITED:
            return
        if seen.task.get("desiredStatus") != "STOPPED":
            if grace_seconds > self.settings.stop_timeout:
                log.debug("ECS applies stop_timeout=%ss, not the asked %ss", self.settings.stop_timeout, grace_seconds)
            self._stop(handle, STOP_REASON)
        deadline = self._clock() + self.settings.stop_timeout + STOP_SLACK
        with self.poller.watching(handle):
            while True:
                seen = self.poller.get([handle], self.settings.status_poll_seconds)[handle]
                if seen.task is None or container_state(seen.task).status is ContainerStatus.EXITED:
                    return
                if self._clock() >= deadline:
                    raise Unavailable(
                        f"ECS task {arn} was asked to stop but is still {seen.task.get('lastStatus')} after "
                        f"{self.settings.stop_timeout + STOP_SLACK:.0f}s"
                    )
                self._sleep(self.settings.status_poll_seconds)

    def remove(self, handle: str) -> None:
        """Stop the task if it runs, mark it removed, delete its staged payload and config; idempotent."""
        _, arn = self._parse(handle)
        seen = self.poller.get([handle], self.settings.status_poll_seconds)[handle]
        task = seen.task
        with self._lock:
            self._removed.add(handle)
            for name in [n for n, h in self._known.items() if h == handle]:
                del self._known[name]
        if task is None:
            return  # expired from ECS: nothing is left to find it by
        tags = tags_of(task)
        if not self._ours(tags):
            return
        if not tags.get(T_REMOVED):
            if task.get("desiredStatus") != "STOPPED":
                with contextlib.suppress(TaskContainerNotFound):
                    self._stop(handle, STOP_REASON)
            try:
                self._ecs(
                    "tag_resource", f"tagging ECS task {arn}", resourceArn=arn, tags=[{"key": T_REMOVED, "value": "1"}]
                )
            except MayflyError as exc:
                # Only this process will know; another one sees the task until ECS forgets it (~1 h).
                log.warning("could not tag %s as removed: %s", arn, exc.message)
        attempt = attempt_of(tags)
        if attempt is not None:
            for name in ("payload.json", "config.json"):
                self.context.blobs.delete(run_key(attempt[0], attempt[1], name))
            if tags.get(T_SECRETS):
                # The attempt had secrets, so its task definition was its own: nothing else runs from it.
                self.parameters.delete_attempt(*attempt)
                self._deregister(str(task.get("taskDefinitionArn") or ""))

    def _deregister(self, arn: str) -> None:
        if not arn:
            return
        self._taskdefs.forget(arn)
        try:
            self._ecs("deregister_task_definition", f"deregistering {arn}", taskDefinition=arn)
        except MayflyError as exc:
            log.warning("could not deregister %s: %s", arn, exc.message)

    def sweep(self, is_over: Callable[[str, int], bool]) -> int:
        """Tasks of attempts that are over (as every provider), then their leftover secret parameters.

        A parameter outlives its task when ECS forgot the stopped task before it was
        removed, or when the launch failed after the secrets were stored.
        """
        removed = super().sweep(is_over)
        home = f"{target_path(self.context.target)}/{self.context.home_id}"
        attempts: set[tuple[str, int]] = set()
        try:
            with translate(f"listing the secret parameters under {home}"):
                paginator = self._clients("ssm").get_paginator("get_parameters_by_path")
                for page in paginator.paginate(Path=home, Recursive=True, WithDecryption=False):
                    for p in page.get("Parameters") or []:
                        parts = str(p["Name"])[len(home) + 1 :].split("/")
                        if len(parts) == 3 and parts[1].isdigit():
                            attempts.add((parts[0], int(parts[1])))
        except MayflyError as exc:
            # A stack deployed before secrets existed may lack ssm:GetParametersByPath: the tasks still get swept.
            log.info("not sweeping secret parameters of %s: %s", self.context.target, exc.message)
            return removed
        for task_id, attempt in sorted(attempts):
            if is_over(task_id, attempt):
                log.info("removing the leftover secret parameters of %s attempt %s", task_id, attempt)
                removed += bool(self.parameters.delete_attempt(task_id, attempt))
        return removed

    def reattach(self) -> list[Attached]:
        """This home's tasks on this target (running, or stopped within about an hour), by their tags."""
        arns = self._list_tasks()
        attached = []
        for task in self._describe_all(arns) if arns else []:
            tags = tags_of(task)
            attempt = attempt_of(tags)
            if not self._ours(tags) or tags.get(T_REMOVED) or attempt is None:
                continue
            handle = make_handle(self.settings.cluster, str(task["taskArn"]))
            if handle in self._removed:
                continue
            self.poller.seed(handle, task)
            attached.append(Attached(attempt[0], attempt[1], handle, container_state(task)))
        return attached

    def check(self) -> None:
        """Credentials, cluster, queues, bucket and log group: raise one line on the first problem."""
        check_target(self.settings, self._clients)
