"""The ACI provider: one container group per (task, attempt), read back through ARM.

How each operation maps onto Azure Container Instances (see :mod:`mayfly.providers.aci`
for the user's view):

``launch``
    Look first: a group with the attempt's deterministic name (:mod:`~.naming`) that
    carries this home's and target's tags is reattached, never PUT again (a PUT on an
    existing name updates the group and may restart it). Else the payload and config
    are staged in the blob store with signed URLs, a token is taken from the shared
    create bucket (:mod:`~.limiter`), and the group is PUT with ``If-None-Match: *``, so
    a concurrent create of the same name (the race between the GET and the PUT) is
    refused by ARM (412, or 409) instead of updating the other one's group: the loser
    reattaches. Throttling (429) and ``ServiceUnavailable`` back off and retry; other
    refusals are ``LaunchFailed`` with a diagnosis (:mod:`~.diagnose`).
``state`` / ``wait``
    The group's GET (instance view included), cached for ``status_poll_seconds``.
``logs``
    ``list_logs``, merged into what is already known (:mod:`~.logbook`); a follower
    re-reads until the container ended. The log is read once more before every stop
    and delete, because ACI drops it with the group (and keeps only the last lines of a
    stopped one).
``result``
    What the boot script PUT to the blob store; the attempt comes from the group's tags.
``cancel``
    Read the log, ``stop`` the group (ACI ends its containers; the grace period cannot
    be chosen), wait until ARM reports it stopped, read the log again. The group stays
    until ``remove``, so the runner still sees the exit, the log and the result.
``remove``
    Read the log, DELETE the group (ARM finishes asynchronously; a group being deleted
    counts as gone), delete the staged payload and config.
``reattach``
    The resource group's groups, filtered by this home's and target's tags.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
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
from mayfly.core.models import Attached, ContainerState, ContainerStatus, LaunchResult, LaunchSpec
from mayfly.core.provider import Capability, Provider, ProviderContext, ProviderLimits, Transport
from mayfly.core.staging import read_result, stage_inputs
from mayfly.providers.aci.arm import Arm, ArmError
from mayfly.providers.aci.diagnose import capacity_or_throttle, container_state, create_failure, props
from mayfly.providers.aci.groups import MAX_CPU, MAX_MEMORY_MB, group_body, secret_env
from mayfly.providers.aci.limiter import TokenBucket, backoff, shared_bucket
from mayfly.providers.aci.logbook import merge
from mayfly.providers.aci.naming import (
    CONTAINER,
    T_ATTEMPT,
    T_HOME,
    T_PROJECT,
    T_TARGET,
    T_TASK,
    attempt_of,
    check_handle,
    group_name,
    make_tags,
)
from mayfly.providers.aci.settings import AciSettings

log = logging.getLogger("mayfly.providers.aci")

#: Create attempts after throttling or no capacity, beyond the first (full-jitter backoff, ~1-2 min at most).
CREATE_RETRIES = 6
#: How long ``cancel`` waits for ARM to report a stopped group.
STOP_WAIT = 120.0
_DONE = (ContainerStatus.EXITED, ContainerStatus.MISSING)
_GONE_STATES = ("Deleting",)


class AciProvider(Provider[AciSettings]):
    """Runs each task attempt as a container group in the target's resource group."""

    name = "aci"
    capabilities = frozenset({Capability.LOG_STREAMING, Capability.CANCEL, Capability.REATTACH, Capability.SECRETS})
    unsupported = {
        Capability.GPU: "Mayfly's ACI targets run standard (CPU) container groups only",
        Capability.NETWORK_NONE: "an ACI container group always has outbound network access; "
        "restrict it with a virtual network and its security rules instead",
        Capability.SPOT: "Mayfly's ACI targets do not create Spot container groups",
    }
    limits = ProviderLimits(
        max_cpu=MAX_CPU,
        max_memory_mb=MAX_MEMORY_MB,
        max_timeout=Provider.limits.max_timeout,
        cpu_reason=f"ACI's largest standard Linux container group has {MAX_CPU:g} cores",
        memory_reason=f"ACI's largest standard Linux container group has {MAX_MEMORY_MB // 1024} GB",
        timeout_reason="Mayfly's ACI targets run a task for a day at most",
    )
    named_networks_refused = "ACI container groups run on Azure's network; Mayfly does not place them in a VNet"
    poll_interval = 2.0

    def __init__(
        self,
        settings: AciSettings,
        context: ProviderContext,
        *,
        arm: Arm | None = None,
        create_limiter: TokenBucket | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        """The keyword arguments replace ARM access, the create bucket, time and randomness (tests)."""
        super().__init__(settings, context)
        s = settings
        self.arm = arm or Arm(s)
        #: Taken before every create; shared by the process's providers of one subscription, region, endpoint.
        self.create_limiter = create_limiter or shared_bucket(
            ("create", s.subscription_id, s.location, s.arm_endpoint or ""), s.creates_per_second, s.create_burst
        )
        self._clock = clock
        self._sleep = sleep
        self._rng = rng
        self._lock = threading.Lock()
        #: Group name -> (when read, its JSON or None when ARM said 404).
        self._seen: dict[str, tuple[float, dict[str, Any] | None]] = {}
        #: Group name -> the log known so far (see :mod:`~.logbook`).
        self._logs: dict[str, bytes] = {}
        #: Group name -> (task id, attempt), from its tags (kept after the group is gone).
        self._attempts: dict[str, tuple[str, int]] = {}
        #: Groups this process removed.
        self._removed: set[str] = set()

    @classmethod
    def transport(cls, settings: AciSettings, target: str) -> Transport:
        """The target's Storage queues and blob container."""
        from mayfly.providers.aci.transport import storage_transport

        return storage_transport(settings)

    # ------------------------------------------------------------ reading groups

    def _name(self, spec_name: str) -> str:
        return group_name(self.context.home_id, self.context.target, spec_name)

    def _group(self, name: str, max_age: float) -> dict[str, Any] | None:
        """The group's JSON at most ``max_age`` seconds old, or None when it does not exist."""
        now = self._clock()
        with self._lock:
            cached = self._seen.get(name)
        if cached is not None and now - cached[0] < max_age:
            return cached[1]
        group = self.arm.get(name)
        with self._lock:
            self._seen[name] = (self._clock(), group)
            if group is not None and self._ours(group):
                found = attempt_of(group.get("tags"))
                if found is not None:
                    self._attempts[name] = found
        return group

    def _ours(self, group: dict[str, Any]) -> bool:
        tags = group.get("tags") or {}
        return tags.get(T_HOME) == self.context.home_id and tags.get(T_TARGET) == self.context.target

    @staticmethod
    def _gone(group: dict[str, Any]) -> bool:
        return str(props(group).get("provisioningState") or "") in _GONE_STATES

    def _state_of(self, name: str, group: dict[str, Any] | None) -> ContainerState:
        if group is None or name in self._removed or self._gone(group) or not self._ours(group):
            return ContainerState(ContainerStatus.MISSING)
        return container_state(group)

    # ------------------------------------------------------------ launch

    def launch(self, spec: LaunchSpec) -> LaunchResult:
        """Create the attempt's container group, or reattach the one it already has."""
        if spec.network not in ("bridge", ""):
            raise LaunchFailed(
                f"network {spec.network!r} is not available on ACI: container groups run on Azure's network",
                retryable=False,
            )
        existing = self.find(spec.name)
        if existing is not None:
            return existing
        name = self._name(spec.name)
        try:
            urls = stage_inputs(spec, self.context.blobs, max_result_bytes=spec.max_result_bytes)
        except Unsupported as exc:
            raise LaunchFailed(exc.message, retryable=False) from exc
        plain = {k: v for k, v in urls.items() if not k.endswith("_URL")}
        secure = {k: v for k, v in urls.items() if k.endswith("_URL")}
        secure.update(secret_env(spec.secrets))
        ours = {
            T_TASK: spec.task_id,
            T_ATTEMPT: str(spec.attempt),
            T_PROJECT: spec.project,
            T_HOME: self.context.home_id,
            T_TARGET: self.context.target,
        }
        body = group_body(
            spec, self.settings, env={**spec.env, **plain}, secure=secure, tags=make_tags(ours, spec.labels)
        )
        created = self._create(spec, name, body)
        if created is None:
            found = self.find(spec.name)
            if found is None:
                raise LaunchFailed(f"ACI says container group {name} exists, but it cannot be read", retryable=True)
            log.info("found %s as container group %s (created concurrently)", spec.name, name)
            return found
        with self._lock:
            self._seen[name] = (self._clock(), created)
            self._attempts[name] = (spec.task_id, spec.attempt)
            self._removed.discard(name)
        log.info("launched %s as container group %s in %s", spec.name, name, self.settings.resource_group)
        return LaunchResult(name, existing=False)

    def _create(self, spec: LaunchSpec, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """PUT with the create bucket and backoff; None when the group already exists (412/409)."""
        delays = backoff(CREATE_RETRIES, rng=self._rng)
        lost = 0
        while True:
            self.create_limiter.acquire()
            try:
                return self.arm.create(name, body)
            except ArmError as exc:
                if exc.status == 412:
                    return None  # If-None-Match: * refused: the group exists
                failure = create_failure(exc.status, exc.code, exc.message)
                # An ARM that ignores If-None-Match refuses a second create with 409 Conflict.
                conflict = exc.status == 409 and not capacity_or_throttle(exc.status, exc.code) and failure.retryable
                if conflict and self.find(spec.name) is not None:
                    return None
                if capacity_or_throttle(exc.status, exc.code) and failure.retryable:
                    delay = next(delays, None)
                    if delay is None:
                        raise failure from exc
                    delay = max(delay, min(exc.retry_after or 0.0, 60.0))
                    log.info("create of %s refused (%s %s); retrying in %.1fs", name, exc.status, exc.code, delay)
                    self._sleep(delay)
                    continue
                raise failure from exc
            except Unavailable:
                # The PUT may have been applied and only its answer lost: look before sending it again
                # (If-None-Match keeps a second PUT from touching a group that exists).
                if self.find(spec.name) is not None:
                    return None
                lost += 1
                if lost > 2:
                    raise
                self._sleep(next(delays, 1.0))

    # ------------------------------------------------------------ observe

    def find(self, spec_name: str) -> LaunchResult | None:
        """The container group of the attempt whose container name is ``spec_name``, if it exists."""
        name = self._name(spec_name)
        if name in self._removed:
            return None
        group = self._group(name, 0)
        if group is None or self._gone(group):
            return None
        if not self._ours(group):
            raise LaunchFailed(
                f"container group {name} exists in resource group {self.settings.resource_group} but is not this "
                "Mayfly home's (its mayfly.home / mayfly.target tags differ); remove it",
                retryable=False,
            )
        return LaunchResult(name, existing=True)

    def state(self, handle: str) -> ContainerState:
        """PENDING, RUNNING, EXITED (exit code, OOM, diagnosis) or MISSING; at most ``status_poll_seconds`` old."""
        name = check_handle(handle)
        if name in self._removed:
            return ContainerState(ContainerStatus.MISSING)
        return self._state_of(name, self._group(name, self.settings.status_poll_seconds))

    def wait(self, handle: str, timeout: float) -> ContainerState:
        """Poll until the container ends or ``timeout`` seconds pass; passing ARM errors do not end it early."""
        deadline = self._clock() + timeout
        while True:
            try:
                st = self.state(handle)
            except Unavailable as exc:
                if self._clock() >= deadline or isinstance(exc, CredentialsMissing):
                    raise
            else:
                if st.status in _DONE or self._clock() >= deadline:
                    return st
            self._sleep(max(0.0, min(self.settings.status_poll_seconds, deadline - self._clock())))

    def _read_log(self, name: str) -> bytes:
        """Read the log from ACI and merge it into what is known; what is known when ACI has none."""
        try:
            text = self.arm.logs(name, CONTAINER)
        except MayflyError as exc:
            # Not started yet (ACI answers 400), or a passing failure: keep what is known.
            log.debug("no log of %s now: %s", name, exc.message)
            text = None
        with self._lock:
            known = self._logs.get(name, b"")
            if text:
                known = merge(known, text.encode("utf-8"))
                self._logs[name] = known
            return known

    def logs(self, handle: str, *, follow: bool = False) -> Iterator[bytes]:
        """The container's output (stdout and stderr, as ACI combines them); with ``follow`` until it ended."""
        name = check_handle(handle)
        if not follow:
            known = self._read_log(name) if name not in self._removed else self._logs.get(name, b"")
            return iter([known] if known else [])
        return self._follow(name)

    def _follow(self, name: str) -> Iterator[bytes]:
        pos = 0
        while True:
            try:
                done = self.state(name).status in _DONE
            except Unavailable:
                done = False
            known = self._read_log(name) if name not in self._removed else self._logs.get(name, b"")
            if len(known) > pos:
                yield known[pos:]
                pos = len(known)
            if done:
                return
            self._sleep(self.settings.status_poll_seconds)

    def result(self, handle: str, max_bytes: int) -> bytes | None:
        """What the boot script uploaded from /mayfly/result.json, or None."""
        name = check_handle(handle)
        attempt = self._attempts.get(name)
        if attempt is None:
            group = self._group(name, self.settings.status_poll_seconds)
            attempt = attempt_of(group.get("tags")) if group is not None and self._ours(group) else None
        if attempt is None:
            raise TaskContainerNotFound(f"no ACI container group {name} of this Mayfly home")
        return read_result(self.context.blobs, attempt[0], attempt[1], max_bytes)

    # ------------------------------------------------------------ act

    def cancel(self, handle: str, grace_seconds: float) -> None:
        """Stop the group; returns once ARM reports it stopped. The log is read before and after.

        ACI stops every container of the group itself: ``grace_seconds`` cannot be
        chosen. Cancelling an ended container does nothing.

        Raises:
            TaskContainerNotFound: the group does not exist (any more).
            Unavailable: ARM did not report the group stopped within two minutes.
        """
        name = check_handle(handle)
        group = self._group(name, 0)
        if group is None or self._state_of(name, group).status is ContainerStatus.MISSING:
            raise TaskContainerNotFound(f"no ACI container group {name} to cancel")
        if container_state(group).status is ContainerStatus.EXITED:
            return
        self._read_log(name)
        if not self.arm.stop(name):
            raise TaskContainerNotFound(f"no ACI container group {name} to cancel")
        deadline = self._clock() + STOP_WAIT
        while True:
            st = self._state_of(name, self._group(name, 0))
            if st.status in _DONE:
                break
            if self._clock() >= deadline:
                raise Unavailable(f"ACI container group {name} was asked to stop but is still {st.status.value}")
            self._sleep(min(1.0, self.settings.status_poll_seconds))
        self._read_log(name)

    def remove(self, handle: str) -> None:
        """Read the log one last time, delete the group and the staged payload and config; idempotent."""
        name = check_handle(handle)
        group = self._group(name, 0) if name not in self._removed else None
        with self._lock:
            self._removed.add(name)
        if group is not None and self._ours(group) and not self._gone(group):
            self._read_log(name)
            self.arm.delete(name)
            log.info("deleted container group %s", name)
        attempt = self._attempts.get(name)
        if attempt is None and group is not None and self._ours(group):
            attempt = attempt_of(group.get("tags"))
        if attempt is not None:
            for key in ("payload.json", "config.json"):
                self.context.blobs.delete(run_key(attempt[0], attempt[1], key))
        with self._lock:
            self._seen.pop(name, None)
            self._logs.pop(name, None)

    def reattach(self) -> list[Attached]:
        """This home's groups on this target (running or ended, not yet removed), by their tags."""
        attached = []
        for listed in self.arm.list():
            name = str(listed.get("name") or "")
            attempt = attempt_of(listed.get("tags"))
            if not name or attempt is None or not self._ours(listed) or name in self._removed or self._gone(listed):
                continue
            group = self._group(name, 0)  # the list has no instance view
            st = self._state_of(name, group)
            if st.status is ContainerStatus.MISSING:
                continue
            attached.append(Attached(attempt[0], attempt[1], name, st))
        return attached

    def check(self) -> None:
        """Credentials, resource group, queues and blob container: raise one line on the first problem."""
        from mayfly.providers.aci.checks import check_target

        check_target(self.settings, self.arm, self.transport(self.settings, self.context.target))

    def close(self) -> None:
        """Close the ARM client."""
        self.arm.close()
