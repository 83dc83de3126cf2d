"""The runner: takes task messages off a target's queue and runs each in a fresh container.

For every (task, attempt) it:

1. drops the attempt if it was cancelled before launch (a ``cancel`` record in the blob store);
2. re-sends the stored exit event if a previous delivery already finished it;
3. finds the container by its deterministic name (reattach), or, if a ``launched``
   record exists but the container is gone, reports it ``lost``; otherwise records
   ``launched`` and launches it through the provider;
4. streams its log to the blob store (capped), keeps the message leased while the
   container runs (the heartbeat), and enforces the timeout (SIGTERM, then SIGKILL
   after the grace period) and cancellation;
5. reads ``/mayfly/result.json`` (capped), records the exit event in the blob store,
   sends it, acks the message and only then removes the container.

Acking before removing means a redelivered message always finds either the
container or the exit record, so an attempt is never launched twice. After a
restart the runner adopts its containers by label at once, and attaches the
redelivered messages to them when they arrive.

Every attempt that ends leaves its last event in the blob store (``exited``), so a
sweep — at start, every ``MAYFLY_SWEEP_INTERVAL`` seconds, and soon after a removal
failed (an engine outage) — can remove the containers and task directories of
attempts that are over, whoever left them.

A runner that loses the lease of a message (it was paused, or its queue was out of
reach, for longer than the lease, and another runner took the message) lets the
attempt go at once: it frees the slot, stops watching without reporting, logging or
stopping anything, and leaves the container to the message's new owner, which
reattaches it by name. If the lease lapsed before the container existed, the new
owner may have declared the attempt ``lost`` already (a ``lost`` record): the late
container is then removed by the runner that launched it.

Errors never stop the runner's loop, its heartbeat or a log pump (:mod:`.outage`): an
attempt that fails on the way (a full disk, a locked queue) is given up without an ack,
so its message comes back after the lease and the next delivery picks it up where it was.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from mayfly.core.blobs import BlobStore
from mayfly.core.config import sweep_interval_from_env
from mayfly.core.deadlines import Deadlines
from mayfly.core.errors import InvalidInput, LaunchFailed, MayflyError, Unsupported
from mayfly.core.faults import fault_point
from mayfly.core.logstore import LogWriter
from mayfly.core.messages import (
    END_KINDS,
    CancelMessage,
    Event,
    EventKind,
    TaskMessage,
    container_name,
    parse_down,
    run_key,
)
from mayfly.core.models import ContainerStatus, LaunchSpec
from mayfly.core.outage import Outage, forever
from mayfly.core.provider import Capability, Provider
from mayfly.core.queues import Message, QueueSet
from mayfly.core.queues.batching import GroupCommit
from mayfly.core.secrets import SECRETS_DIR
from mayfly.core.workers import WorkerPool

log = logging.getLogger("mayfly.runner")

#: What an attempt hands the runner's outbox: its ``exited`` record (key, data) when the events queue writes it,
#: its last event, and its message to ack.
_Outgoing = tuple[tuple[str, bytes] | None, str | None, Message | None]

BOOT = "/usr/local/bin/mayfly-boot"
PAYLOAD_FILE = "/mayfly/payload.json"
CONFIG_FILE = "/mayfly/config.json"
TASK_DIR = "/mayfly/task"
#: SIGTERM-to-SIGKILL seconds for containers whose message (and so its setting) is not at hand.
DEFAULT_GRACE = 10.0
#: Seconds before a sweep after a removal failed (the engine is probably down), and between retries.
SWEEP_SOON = 5.0
#: The longest a watch waits on the engine before it looks whether its lease was lost meanwhile.
WATCH_SLICE = 30.0


def container_env(msg: TaskMessage) -> dict[str, str]:
    """The container's environment: the code's and task's env, then the contract's MAYFLY_* variables."""
    env = dict(msg.env)
    env.update(
        MAYFLY_TASK_ID=msg.task_id,
        MAYFLY_ATTEMPT=str(msg.attempt),
        MAYFLY_PROJECT_ID=msg.project_id,
        MAYFLY_CODE_NAME=msg.code_name,
        MAYFLY_CODE_REV=str(msg.code_rev),
        MAYFLY_PAYLOAD_FILE=PAYLOAD_FILE,
        MAYFLY_CONFIG_FILE=CONFIG_FILE,
        MAYFLY_TASK_DIR=TASK_DIR,
    )
    if msg.secrets:
        env["MAYFLY_SECRETS_DIR"] = SECRETS_DIR
    if msg.ironworker:
        env.update(
            MAYFLY_IRONWORKER="1",
            PAYLOAD_FILE=PAYLOAD_FILE,
            CONFIG_FILE=CONFIG_FILE,
            TASK_ID=msg.task_id,
            TASK_DIR=TASK_DIR,
        )
    return env


def container_command(msg: TaskMessage) -> tuple[str, ...]:
    """argv of the container: the boot script for runtime images, else ``sh -c`` (or the image's own)."""
    if msg.has_boot:
        return (BOOT, msg.command)
    if not msg.command:
        return ()
    if msg.ironworker:
        iron = ("-payload", PAYLOAD_FILE, "-config", CONFIG_FILE, "-id", msg.task_id, "-d", TASK_DIR)
        return ("/bin/sh", "-c", f'{msg.command} "$@"', "mayfly", *iron)
    return ("/bin/sh", "-c", msg.command)


def launch_spec(msg: TaskMessage, secrets: Mapping[str, bytes] | None = None) -> LaunchSpec:
    """Turn a task message into the provider's launch spec (``secrets``: the message's, opened)."""
    return LaunchSpec(
        name=msg.name,
        task_id=msg.task_id,
        attempt=msg.attempt,
        project=msg.project_id,
        image=msg.image,
        command=container_command(msg),
        env=container_env(msg),
        code=msg.code,
        payload=msg.payload.encode(),
        config=msg.config.encode(),
        cpu=msg.cpu,
        memory_mb=msg.memory_mb,
        timeout=msg.timeout,
        network=msg.network,
        labels={"mayfly.code": msg.code_name},
        has_boot=msg.has_boot,
        max_result_bytes=msg.max_result_bytes,
        secrets=dict(secrets or {}),
    )


@dataclass
class Watch:
    """One attempt this runner is responsible for."""

    task_id: str
    attempt: int
    message: Message | None = None
    handle: str | None = None
    stopped: str | None = None
    cancel_asked: bool = False
    #: Seconds between SIGTERM and SIGKILL when this attempt is stopped.
    grace: float = DEFAULT_GRACE
    #: Set when another runner took the lease over: this one stops reporting.
    abandoned: bool = False
    #: This runner launched the container (rather than finding it): no log can be stored yet.
    fresh: bool = False
    done: bool = False
    #: Until when (``time.monotonic``) the message is surely still leased to this runner.
    lease_until: float = float("inf")
    lock: threading.Lock = field(default_factory=threading.Lock)


class Runner:
    """Runs one target's tasks through its provider."""

    def __init__(
        self,
        target: str,
        provider: Provider[Any],
        queues: QueueSet,
        blobs: BlobStore,
        *,
        concurrency: int = 8,
        lease: float = 30.0,
        clock: Callable[[], float] = time.time,
        sweep_interval: float | None = None,
        open_secrets: Callable[[Mapping[str, str]], dict[str, bytes]] | None = None,
        owner: str | None = None,
    ) -> None:
        self.target = target
        #: Who launches here (the home id of this machine), when runners on several machines share one target's
        #: queues and blobs: a container another owner launched is not looked for, nor declared lost, here.
        self.owner = owner
        #: Decrypts a message's sealed secrets (the home's key); None: this runner holds no key.
        self.open_secrets = open_secrets
        self.provider = provider
        self.tasks = queues.get("tasks")
        self.control = queues.get("control")
        self.events = queues.get("events")
        # Watch threads report and ack through one group commit: one queue write serves many threads, and
        # an attempt's last event and the ack of its message go in the same write (events first). Where the
        # queue and the blobs share a database (PostgreSQL), the attempt's ``exited`` record goes in it too.
        self._outbox: GroupCommit[_Outgoing, bool] = GroupCommit(self._send_and_ack)
        self._records_in_outbox = self.events.keeps_records_of(blobs)
        self.blobs = blobs
        self.concurrency = concurrency
        self.lease = lease
        self.clock = clock
        self.watches: dict[tuple[str, int], Watch] = {}
        self._lock = threading.Lock()
        self._threads: set[threading.Thread] = set()
        # Attempts run on reused threads (starting a thread per task cost more than the task).
        self._pool = WorkerPool(name="mayfly-attempt")
        #: Timeouts of the containers being watched, all on one timer thread.
        self._deadlines = Deadlines(clock)
        self._stop = threading.Event()
        self._last_heartbeat = 0.0
        self.sweep_interval = sweep_interval if sweep_interval is not None else sweep_interval_from_env()
        self._next_sweep = 0.0
        self._sweeping = threading.Lock()
        self._sweep_failing = False
        self._again = False
        #: Outages of the main loop (receiving), the heartbeat, and of the attempts and log pumps (shared).
        self.outage = Outage(f"runner of {target}", log)
        # The heartbeat retries well within the lease.
        self._heartbeat_outage = Outage(f"heartbeat of runner {target}", log, cap=max(0.5, lease / 3))
        self._attempt_outage = Outage(f"attempts of runner {target}", log)
        self._log_outage = Outage(f"log store of runner {target}", log)

    # ------------------------------------------------------------ main loop

    def run(self, stop: threading.Event | None = None) -> None:
        """Serve until ``stop`` (or :meth:`stop`) is set; running containers keep running on exit."""
        if stop is not None:
            self._stop = stop
        self.provider.check()
        try:
            self.adopt()
        except Exception as exc:  # leftovers wait for the next start; taking work does not
            self.outage.failed(exc)
        forever(self._stop, self.outage, lambda: self.step(wait=0.5))
        try:
            self._heartbeat(force=True)
        except Exception as exc:
            self._heartbeat_outage.failed(exc)

    def stop(self) -> None:
        self._stop.set()

    def step(self, wait: float = 0.0) -> None:
        """One pass: control messages, new task messages, heartbeat (on its own backoff when it fails)."""
        try:
            for m in self.control.receive(10, wait=0.0, lease=self.lease):
                self._on_control(m)
            free = self.concurrency - self.busy()
            if free > 0:
                asked = time.monotonic()
                for m in self.tasks.receive(free, wait=wait, lease=self.lease):
                    self._on_task(m, asked + self.lease)
            elif wait:
                self._stop.wait(min(wait, 0.1))
        finally:
            if self._heartbeat_outage.ready():
                try:
                    wrote = self._heartbeat()
                except Exception as exc:
                    self._heartbeat_outage.failed(exc)
                else:
                    if wrote:  # a heartbeat that was not due yet proves nothing
                        self._heartbeat_outage.ok()
            if time.monotonic() >= self._next_sweep and not self._sweeping.locked():
                self._next_sweep = time.monotonic() + self.sweep_interval  # the sweep sets it sooner if it fails
                self._spawn(self._background_sweep)

    def busy(self) -> int:
        with self._lock:
            return sum(1 for w in self.watches.values() if not w.done)

    def adopt(self) -> None:
        """Clean up after a restart: sweep the leftovers of attempts that already reported their end.

        Containers still running are reattached when their message is redelivered
        (after its lease expires): the launch path finds them by their
        deterministic name instead of launching again.
        """
        self.sweep()

    def sweep(self) -> int:
        """Remove the containers and scratch of attempts that are over (see :meth:`Provider.sweep`).

        Runs at start, every ``sweep_interval`` seconds, and :data:`SWEEP_SOON` seconds after
        a removal failed; while the engine is down it retries every :data:`SWEEP_SOON` seconds.
        """
        if not self._sweeping.acquire(blocking=False):
            return 0
        self._again = False
        try:
            removed = self.provider.sweep(self._is_over)
        except MayflyError as exc:
            if not self._sweep_failing:
                log.warning("sweeping leftovers of %s failed (retrying every %ss): %s", self.target, SWEEP_SOON, exc)
            self._sweep_failing = True
            self._next_sweep = time.monotonic() + min(SWEEP_SOON, self.sweep_interval)
            return 0
        finally:
            self._sweeping.release()
        if self._sweep_failing:
            log.info("sweeping leftovers of %s works again", self.target)
        self._sweep_failing = False
        # A removal that failed meanwhile left something this sweep may have missed: look again soon.
        delay = min(SWEEP_SOON, self.sweep_interval) if self._again else self.sweep_interval
        self._next_sweep = time.monotonic() + delay
        if removed:
            log.info("swept %d leftover(s) of %s", removed, self.target)
        return removed

    def _background_sweep(self) -> None:
        self.sweep()

    def _is_over(self, task_id: str, attempt: int) -> bool:
        """True when the attempt reported its end and this runner no longer works on it (nor removes it)."""
        with self._lock:
            if (task_id, attempt) in self.watches:
                return False
        return self.blobs.exists(run_key(task_id, attempt, "exited"))

    def _sweep_soon(self) -> None:
        self._again = True
        self._next_sweep = min(self._next_sweep, time.monotonic() + min(SWEEP_SOON, self.sweep_interval))

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no attempt is in progress (tests and ``mayfly run``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.busy() == 0:
                return True
            time.sleep(0.05)
        return False

    # ------------------------------------------------------------ messages

    def _on_task(self, m: Message, lease_until: float = float("inf")) -> None:
        try:
            msg = parse_down(m.body)
        except (ValueError, KeyError, TypeError) as exc:
            log.error("dropping malformed task message %s: %s", m.id, exc)
            self.tasks.ack(m)
            return
        if isinstance(msg, CancelMessage):
            self._cancel(msg)
            self.tasks.ack(m)
            return
        key = (msg.task_id, msg.attempt)
        with self._lock:
            watch = self.watches.get(key)
            if watch is not None:
                if watch.done:
                    self.watches.pop(key)
                elif watch.message is None or watch.message.id == m.id:
                    # Our own message came back (its lease lapsed): keep the new delivery's receipt.
                    watch.message = m
                    watch.lease_until = lease_until
                    return
                else:
                    # A second message for an attempt in progress (at-least-once delivery): drop it.
                    self.tasks.ack(m)
                    return
            watch = Watch(msg.task_id, msg.attempt, message=m, grace=msg.stop_grace_seconds, lease_until=lease_until)
            self.watches[key] = watch
        self._spawn(self._run_attempt, watch, msg)

    def _on_control(self, m: Message) -> None:
        try:
            msg = parse_down(m.body)
        except (ValueError, KeyError, TypeError):
            self.control.ack(m)
            return
        if isinstance(msg, CancelMessage):
            self._cancel(msg)
        self.control.ack(m)

    def _cancel(self, msg: CancelMessage) -> None:
        with self._lock:
            watch = self.watches.get((msg.task_id, msg.attempt))
        if watch is not None:
            watch.cancel_asked = True
            if watch.handle is not None:
                self._spawn(self._stop_container, watch, "cancel")
            return
        # Not ours (or not launched yet): stop it wherever it runs; its owner reports the exit.
        self._spawn(self._cancel_elsewhere, msg)

    def _cancel_elsewhere(self, msg: CancelMessage) -> None:
        try:
            found = self.provider.find(container_name(msg.task_id, msg.attempt))
            if found is not None:
                self.provider.cancel(found.handle, DEFAULT_GRACE)
        except Unsupported:
            return
        except MayflyError as exc:
            log.warning("cancel of %s failed: %s", msg.task_id, exc)

    # ------------------------------------------------------------ one attempt

    def _spawn(self, fn: Callable[..., None], *args: object) -> None:
        def body() -> None:
            try:
                fn(*args)
            except Exception as exc:
                # One line per outage for all attempts (a full disk fails them all), a traceback once for a bug.
                self._attempt_outage.failed(exc)
                watch = args[0] if args and isinstance(args[0], Watch) else None
                if watch is not None and fn != self._stop_container:
                    # Give the attempt up without acking: its message comes back after the lease and
                    # the next delivery reattaches (or reports the container lost).
                    self._drop(watch)
            else:
                if fn == self._run_attempt:  # a sweep or a cancel that worked says nothing about attempts
                    self._attempt_outage.ok()
            finally:
                with self._lock:
                    self._threads.discard(threading.current_thread())

        if fn == self._run_attempt:
            self._pool.submit(body)
            return
        thread = threading.Thread(target=body, name=f"mayfly-{fn.__name__}", daemon=True)
        with self._lock:
            self._threads.add(thread)
        thread.start()

    def _run_attempt(self, watch: Watch, msg: TaskMessage) -> None:
        def rk(name: str) -> str:
            return run_key(msg.task_id, msg.attempt, name)

        # One listing tells which of this attempt's records exist (exited, cancel, launched).
        records = {key.rsplit("/", 1)[-1] for key in self.blobs.list(rk(""))}
        if "exited" in records:
            self._finish(watch, remove=False, event=self.blobs.get(rk("exited")).decode(), record=False)
            return
        if "cancel" in records:
            self._finish(
                watch,
                remove=False,
                event=self._body(
                    watch, EventKind.EXITED, stopped="cancel", exit_code=None, message="cancelled before it started"
                ),
            )
            return
        try:
            # Without a "launched" record no container of this attempt can exist (the record is written
            # first), and launch() is idempotent anyway: only a reattach needs to look.
            existing = self.provider.find(msg.name) if "launched" in records else None
        except Unsupported:
            existing = None
        except MayflyError as exc:
            self._finish(
                watch,
                remove=False,
                event=self._body(watch, EventKind.LAUNCH_FAILED, message=exc.message, retryable=True),
            )
            return
        elsewhere = self._launched_elsewhere(msg) if existing is None and "launched" in records else None
        if elsewhere is not None and self._alive(elsewhere):
            # Launched on another machine's engine whose runner is alive (restarting, say): only it can reattach
            # the container or see it gone. Hand the message back as a new one (its delivery count starts over,
            # so it is not dead-lettered while bouncing between runners), after a pause.
            log.warning(
                "%s attempt %s runs on the engine of runner %s, which is alive; leaving it to that runner",
                msg.task_id,
                msg.attempt,
                elsewhere,
            )
            message = watch.message
            if message is not None:
                self.tasks.send(message.body, delay=min(self.lease, 2.0))
                self.tasks.ack(message)
            self._drop(watch)
            return
        # Launched elsewhere by a runner that stopped beating for three leases: lost, like a container gone
        # from this engine (its runner removes the container at its next start: the attempt is over).
        if existing is None and "launched" in records:
            # Gone, or not created yet by a runner whose lease lapsed while it launched. Say it is lost
            # first, then look once more: that runner looks for this record after its launch and
            # removes a container that came too late (see _launched_too_late).
            self.blobs.put(rk("lost"), json.dumps({"at": self.clock(), "target": self.target}).encode())
            try:
                existing = self.provider.find(msg.name)
            except Unsupported:
                existing = None
        if existing is None and "launched" in records:
            # Its record (written by _finish) lets the next sweep remove the attempt's scratch.
            self._finish(
                watch,
                remove=False,
                event=self._body(
                    watch,
                    EventKind.LOST,
                    message="the container of this attempt disappeared before it reported an exit "
                    "(engine restarted or container removed)",
                ),
            )
            return
        secrets: dict[str, bytes] = {}
        if existing is None and msg.secrets:
            try:
                secrets = self._secrets_of(msg)
            except MayflyError as exc:
                self._finish(
                    watch,
                    remove=False,
                    event=self._body(watch, EventKind.LAUNCH_FAILED, message=exc.message, retryable=False),
                )
                return
        if existing is None:
            record = {"at": self.clock(), "target": self.target, **({"owner": self.owner} if self.owner else {})}
            self.blobs.put(rk("launched"), json.dumps(record).encode())
            fault_point("runner.launching")
            if self._declared_lost(watch, msg):
                # Paused past the lease since the record was written, and the new owner found no container.
                log.warning("not launching %s attempt %s: it was declared lost meanwhile", msg.task_id, msg.attempt)
                self._drop(watch)
                return
        try:
            # Idempotent: returns the running container when it exists (reattach), and replaces one that
            # was created but never started (a crash between the two).
            result = self.provider.launch(launch_spec(msg, secrets))
        except MayflyError as exc:
            if watch.abandoned or time.monotonic() >= watch.lease_until:
                # The lease lapsed while launching: another runner may own the attempt now (and may have
                # replaced the container this launch created); reporting a failure could run it twice.
                self._drop(watch)
                return
            retryable = exc.retryable if isinstance(exc, LaunchFailed) else True
            # The kind (no capacity, quota, ...) tells the control plane another target could avoid it.
            kind = {"kind": exc.kind} if isinstance(exc, LaunchFailed) and exc.kind else {}
            self._finish(
                watch,
                remove=False,
                event=self._body(watch, EventKind.LAUNCH_FAILED, message=exc.message, retryable=retryable, **kind),
            )
            return
        watch.handle = result.handle
        watch.fresh = not result.existing
        if not result.existing and self._launched_too_late(watch, msg):
            return
        if watch.abandoned:
            return  # the lease was lost while launching: the new owner reattaches the container
        self._watch(watch, msg.timeout, msg.max_log_bytes, msg.max_result_bytes, msg.stop_grace_seconds)

    def _launched_elsewhere(self, msg: TaskMessage) -> str | None:
        """The owner this attempt's ``launched`` record names, when it is not this runner's; else None."""
        if self.owner is None:
            return None
        try:
            record = json.loads(self.blobs.get(run_key(msg.task_id, msg.attempt, "launched")))
        except (KeyError, ValueError):
            return None
        owner = record.get("owner") if isinstance(record, dict) else None
        return owner if isinstance(owner, str) and owner != self.owner else None

    def _alive_key(self, owner: str) -> str:
        return f"runners/{self.target}/{owner}"

    def _alive(self, owner: str) -> bool:
        """True when the runner of ``owner`` beat within the last three leases (machines' clocks agree, NTP)."""
        try:
            at = float(json.loads(self.blobs.get(self._alive_key(owner)))["at"])
        except (KeyError, ValueError, TypeError):
            return False
        return self.clock() - at < 3 * self.lease

    def _secrets_of(self, msg: TaskMessage) -> dict[str, bytes]:
        """The message's secret values in clear, if this target's provider can pass them privately."""
        if Capability.SECRETS not in self.provider.capabilities:
            why = self.provider.unsupported.get(Capability.SECRETS, "it does not declare the 'secrets' capability")
            raise LaunchFailed(
                f"target {self.target!r} (provider {self.provider.name}) cannot pass secrets: {why}", retryable=False
            )
        if self.open_secrets is None:
            raise LaunchFailed("this runner has no secret key to open the task's secrets", retryable=False)
        return self.open_secrets(msg.secrets)

    def _declared_lost(self, watch: Watch, msg: TaskMessage) -> bool:
        """True if the lease may have lapsed and another runner has declared this attempt lost (its record).

        While the lease is surely this runner's, nobody else can have, so the look is skipped.
        """
        if not watch.abandoned and time.monotonic() < watch.lease_until:
            return False
        return self.blobs.exists(run_key(msg.task_id, msg.attempt, "lost"))

    def _launched_too_late(self, watch: Watch, msg: TaskMessage) -> bool:
        """Remove the container just launched if its attempt was declared lost meanwhile; True if so.

        Only possible when this runner's lease lapsed before the launch returned (the
        runner was paused or cut off): another runner then got the message, found the
        ``launched`` record but no container, and reported the attempt lost. Without
        this, the late container would run beside the next attempt. A lease known to be
        valid skips the look, so the usual launch costs nothing more.
        """
        if not self._declared_lost(watch, msg):
            return False
        assert watch.handle is not None
        log.warning(
            "removing the container of %s attempt %s: the attempt was declared lost while this runner launched it",
            msg.task_id,
            msg.attempt,
        )
        self._drop(watch)
        try:
            self.provider.cancel(watch.handle, 0.0)
        except MayflyError as exc:
            log.warning("stopping %s failed: %s", watch.handle, exc)
        self.provider.remove(watch.handle)
        return True

    def _watch(self, watch: Watch, timeout: int, max_log: int, max_result: int, grace: float) -> None:
        assert watch.handle is not None
        handle = watch.handle
        st = self.provider.state(handle)
        if st.status is ContainerStatus.MISSING:
            self._finish(
                watch, remove=False, event=self._body(watch, EventKind.LOST, message="the container disappeared")
            )
            return
        # A cancel that raced the launch (its record is written before the cancel message is sent): the
        # container is stopped, or, already exited, reported cancelled. Looked at after the state, so for a
        # container that had exited by then this one look also answers the question asked at its end.
        exited_first = st.status is ContainerStatus.EXITED
        if watch.cancel_asked or self.blobs.exists(run_key(watch.task_id, watch.attempt, "cancel")):
            self._stop_container(watch, "cancel")
        started = st.started_at or self.clock()
        if st.status is not ContainerStatus.EXITED:
            # A container that has already exited gets one event, EXITED, which carries its start time. A launch
            # still pending (ECS pulling the image) says so: it may yet fail, and must not close its breaker.
            running = {} if st.status is ContainerStatus.RUNNING else {"pending": True}
            self._report(watch, EventKind.STARTED, handle=handle, started_at=started, **running)
        writer = LogWriter(self.blobs, watch.task_id, watch.attempt, max_log, fresh=watch.fresh)
        deadline = started + timeout
        if st.status is not ContainerStatus.EXITED:
            # One thread per container: the followed log ends when the container exits (the provider's
            # contract), and the runner's one timer thread stops a container that overruns meanwhile.
            timer = self._deadlines.add(deadline, lambda: self._spawn(self._stop_container, watch, "timeout"))
            try:
                self._pump_logs(handle, writer, True, watch)
            finally:
                self._deadlines.discard(timer)
        else:
            self._pump_logs(handle, writer, False, watch)
        # Usually exited by now; a log stream that broke off early leaves the waiting (and the clock) to this loop.
        while st.status not in (ContainerStatus.EXITED, ContainerStatus.MISSING) and not watch.abandoned:
            # Once stopped (timeout or cancel), wait for the exit rather than spin; in slices, so a
            # watch whose lease was lost ends soon.
            left = deadline - self.clock() if watch.stopped is None else grace + 30.0
            st = self.provider.wait(handle, min(WATCH_SLICE, max(0.0, left)))
            if st.status in (ContainerStatus.EXITED, ContainerStatus.MISSING) or watch.abandoned:
                break
            if self.clock() >= deadline and watch.stopped is None:
                self._stop_container(watch, "timeout")
        if watch.abandoned:
            # The lease was lost: the new owner watches (and logs) this container; write nothing more.
            return
        writer.close()
        if writer.flushed:
            self._log_outage.ok()
        if st.status is ContainerStatus.MISSING:
            self._finish(
                watch,
                remove=True,
                event=self._body(watch, EventKind.LOST, message="the container disappeared while running"),
            )
            return
        if st.infra is not None and watch.stopped is None:
            # The platform ended it: an infrastructure failure, retried on its own budget (or not at all).
            kind = EventKind.LOST if st.infra == "retry" else EventKind.LAUNCH_FAILED
            extra: dict[str, object] = {"reason": st.reason} if st.reason else {}
            if st.kind:
                extra["kind"] = st.kind
            self._finish(
                watch,
                remove=True,
                event=self._body(
                    watch,
                    kind,
                    message=st.detail or "the platform stopped the task",
                    retryable=st.infra == "retry",
                    **extra,
                ),
            )
            return
        stopped = watch.stopped
        if stopped is None and not exited_first and self.blobs.exists(run_key(watch.task_id, watch.attempt, "cancel")):
            stopped = "cancel" if st.exit_code != 0 else None
        data: dict[str, object] = {
            "exit_code": st.exit_code,
            "oom": st.oom_killed,
            "stopped": stopped,
            "handle": handle,
            "started_at": st.started_at or started,
            "finished_at": st.finished_at or self.clock(),
            # The interval the provider bills, from its own clock (ECS: pull start → stopped), when it differs.
            "billed_from": st.billed_from,
            "billed_to": st.billed_to,
            "log_size": writer.size,
            "log_truncated": writer.dropped > 0,
        }
        if st.detail:
            data["message"] = st.detail
        data.update(self._collect_result(watch, handle, max_result))
        self._finish(watch, remove=True, event=self._event(watch, EventKind.EXITED, data).dumps())

    def _collect_result(self, watch: Watch, handle: str, max_result: int) -> dict[str, object]:
        try:
            raw = self.provider.result(handle, max_result)
        except InvalidInput as exc:
            return {"result_error": exc.message, "message": f"result not kept: {exc.message}"}
        except MayflyError as exc:
            return {"result_error": exc.message}
        if raw is None:
            return {}
        text = raw.decode("utf-8", errors="replace")
        data: dict[str, object] = {}
        try:
            json.loads(text)
        except ValueError:
            text = json.dumps(text)
            data["result_error"] = "result.json is not valid JSON; kept as text"
        # The result goes through the blob store: queue messages are too small for it (SQS: 256 KiB).
        key = run_key(watch.task_id, watch.attempt, "result.json")
        self.blobs.put(key, text.encode())
        data["result_key"] = key
        return data

    def _pump_logs(self, handle: str, writer: LogWriter, follow: bool = True, watch: Watch | None = None) -> None:
        """Copy the container's output to the log store; stops, writing nothing more, once the lease is lost.

        A write the log store refuses (a full disk) stays buffered in the writer and is
        tried again with the next chunk, so the log goes on being read meanwhile.
        """
        try:
            for chunk in self.provider.logs(handle, follow=follow):
                if watch is not None and watch.abandoned:
                    return
                flushed = writer.flushed
                try:
                    writer.write(chunk)
                except Exception as exc:
                    self._log_outage.failed(exc)
                else:
                    if writer.flushed != flushed:
                        self._log_outage.ok()
        except MayflyError as exc:
            log.warning("log stream of %s ended early: %s", handle, exc)
        except Exception:  # a bug in a provider's stream: the watch still waits for the exit and reports it
            log.exception("log stream of %s failed", handle)

    def _stop_container(self, watch: Watch, why: str) -> None:
        """SIGTERM, then SIGKILL after the attempt's grace period (timeouts and cancels alike)."""
        with watch.lock:
            if watch.stopped is not None or watch.handle is None:
                return
            watch.stopped = why
        try:
            self.provider.cancel(watch.handle, watch.grace)
        except MayflyError as exc:
            log.warning("stopping %s failed: %s", watch.task_id, exc)

    # ------------------------------------------------------------ reporting

    def _event(self, watch: Watch, event: EventKind, data: dict[str, object]) -> Event:
        data = dict(data)
        if event in END_KINDS:
            # Which target and provider ran the attempt: its cost is recorded against them (core.costs).
            data.setdefault("target", self.target)
            data.setdefault("provider", self.provider.name)
        return Event(watch.task_id, watch.attempt, event, self.clock(), data)

    def _report(self, watch: Watch, event: EventKind, /, **data: object) -> None:
        body = self._body(watch, event, **data)
        if body is not None:
            self._outbox.submit((None, body, None))

    def _body(self, watch: Watch, event: EventKind, /, **data: object) -> str | None:
        """The event to send (``data`` may name a failure ``kind``), or None once the attempt was abandoned."""
        return None if watch.abandoned else self._event(watch, event, data).dumps()

    def _send_and_ack(self, items: Sequence[_Outgoing]) -> list[bool]:
        """One group commit of records, events and acks: each is durable before any message is acked."""
        records = [record for record, _, _ in items if record is not None]
        bodies = [body for _, body, _ in items if body is not None]
        acks = [m for _, _, m in items if m is not None]
        done = iter(self.events.send_and_ack(bodies, self.tasks, acks, records))
        return [next(done) if m is not None else True for _, _, m in items]

    def _finish(self, watch: Watch, *, remove: bool, event: str | None = None, record: bool = True) -> None:
        """Send the attempt's last event and ack its message in one queue write, then remove the container.

        Acking before removing: see the module docstring. With ``record`` the event is first kept
        as the attempt's ``exited`` record, which marks the attempt over for :meth:`sweep`.
        """
        kept: tuple[str, bytes] | None = None  # the record, when the outbox's transaction writes it
        if record and event is not None and not watch.abandoned:
            key = run_key(watch.task_id, watch.attempt, "exited")
            if self._records_in_outbox:
                kept = (key, event.encode())
            else:
                self.blobs.put(key, event.encode())
        ack = watch.message if watch.message is not None and not watch.abandoned else None
        if ack is not None:
            watch.done = True  # no heartbeat extends a message that is being acked
        if event is not None or ack is not None or kept is not None:
            self._outbox.submit((kept, event, ack))
        if remove and watch.handle is not None and not watch.abandoned:
            try:
                self.provider.remove(watch.handle)
            except MayflyError as exc:
                log.warning("removing %s failed (swept later): %s", watch.handle, exc)
                self._sweep_soon()
        watch.done = True
        with self._lock:
            if self.watches.get((watch.task_id, watch.attempt)) is watch and watch.message is not None:
                self.watches.pop((watch.task_id, watch.attempt))

    def _drop(self, watch: Watch) -> None:
        watch.abandoned = True
        watch.done = True
        with self._lock:
            if self.watches.get((watch.task_id, watch.attempt)) is watch:
                self.watches.pop((watch.task_id, watch.attempt))

    def _heartbeat(self, force: bool = False) -> bool:
        """Extend the lease of every message held, every third of the lease; False when it was not due yet."""
        now = time.monotonic()
        if not force and now - self._last_heartbeat < self.lease / 3:
            return False
        self._last_heartbeat = now
        if self.owner is not None:
            # This machine's runner is alive: others leave the containers it launched to it (see _run_attempt).
            self.blobs.put(self._alive_key(self.owner), json.dumps({"at": self.clock()}).encode())
        with self._lock:
            held = [(w, w.message) for w in self.watches.values() if w.message is not None and not w.done]
        if not held:
            return True  # nothing to keep: whatever failed before, nothing is failing now
        # One queue write for every held lease (one transaction on SQLite, batches on SQS).
        kept = self.tasks.extend_many([m for _, m in held if m is not None], self.lease)
        for (watch, message), ok in zip(held, kept, strict=True):
            if ok:
                if watch.message is message:
                    watch.lease_until = now + self.lease
                continue
            if watch.done or watch.message is not message:
                continue  # finished meanwhile (its message was acked), or its message came back to us
            # Another runner took the message: it reattaches the container and reports. Let the attempt
            # go (freeing its slot), once.
            log.warning("lease of %s attempt %s was lost; another runner owns it now", watch.task_id, watch.attempt)
            self._drop(watch)
        return True
