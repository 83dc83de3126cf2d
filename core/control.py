"""The control plane loop: apply runner events, dispatch due tasks, publish task messages.

One control plane runs per home: it holds ``locks/control.lock``
(:mod:`mayfly.core.homelock`), a second ``mayfly server`` on the home is refused, and
a ``mayfly run`` beside another waits for the lock instead of running a second one.
Dispatch is still a compare-and-set inside SQLite's write lock and applying an event
twice still changes nothing, so a crash between the two halves of a pass is safe; they
are not a licence to run two control planes (or two runners of one target) on a home.

The loop never stops on an error (:mod:`.outage`): the scheduler and each target's
events are tried on their own backoff, so a broken schedule or an unreachable cloud
queue holds up nothing else, and a store locked or full pauses the pass until it clears.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import Connection, select

from mayfly.core import deadletters
from mayfly.core.blobs import BlobStore
from mayfly.core.config import Limits
from mayfly.core.faults import fault_point
from mayfly.core.lifecycle import apply_events
from mayfly.core.messages import Event
from mayfly.core.metrics import Metrics
from mayfly.core.models import CodeRef, TaskStatus
from mayfly.core.outage import Outage, forever
from mayfly.core.peers import BEAT, Peers
from mayfly.core.queues import Message, Queue, QueueSet
from mayfly.core.queues.store import StoreQueue
from mayfly.core.router import Inline, any_due, dispatch, inline_targets, publish
from mayfly.core.scheduler import Pass
from mayfly.core.store import Store, events_claim
from mayfly.core.store import schema as s

log = logging.getLogger("mayfly.control")

_TERMINAL = frozenset(st.value for st in TaskStatus if st.terminal)


class _Timed(NamedTuple):
    """The columns of a task the metrics read after a batch of events (``metrics.Timed``)."""

    id: str
    target: str
    status: str
    run_at: float
    dispatched_at: float | None
    start_time: float | None
    end_time: float | None


#: The wake-up name that new work rings (queued tasks, retries): a control plane asleep wakes to dispatch.
ROUTER_BELL = "router"
#: How long an idle control plane sleeps when nothing wakes it: the bound on how late a delayed
#: task, a schedule, a resumed code or a cloud target's event is noticed.
IDLE_WAIT = 0.25
#: The shortest time from the start of one pass that did some work to the start of the next, unless a
#: batch was full: work that trickles in (a runner's events, freed slots) is then handled in batches of
#: a few dozen rather than one or two per pass, each pass costing some ten statements whatever its size.
PASS_PERIOD = 0.02
#: Seconds an events batch is leased while it is applied (a failed one is handed back at once).
EVENTS_LEASE = 60.0


@dataclass(frozen=True)
class TargetWiring:
    """What the control plane needs of one target."""

    queues: QueueSet
    blobs: BlobStore
    capacity: int


class ControlPlane:
    """Applies events and dispatches tasks for a set of targets."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        targets: Mapping[str, TargetWiring],
        *,
        clock: Callable[[], float] = time.time,
        event_batch: int = 200,
        code_source: BlobStore | None = None,
        scheduler: Callable[[float], Pass] | None = None,
        cancel: Callable[[str, str], None] | None = None,
        metrics: Metrics | None = None,
        wait_for_work: Callable[[float], object] | None = None,
    ) -> None:
        self.store = store
        #: Sleeps until something may have changed (new tasks, events) or the timeout; None: just sleep.
        self.wait_for_work = wait_for_work
        #: Where launch latency and run duration are observed (None: nowhere).
        self.metrics = metrics
        #: Where code packages are uploaded to (the home's blob store); copied to targets on first use.
        self.code_source = code_source
        self._copied: set[tuple[str, str]] = set()
        #: Fires due schedules (None: this control plane runs no scheduler).
        self.scheduler = scheduler
        #: Cancels a task by (project id, task id): the "replace" overlap policy uses it.
        self.cancel = cancel
        self.limits = limits
        self.targets = dict(targets)
        self.clock = clock
        self.event_batch = event_batch
        self._stop = threading.Event()
        self._next_drain = 0.0
        #: Set by a pass that took a full batch of events: more may be waiting, so the next pass starts at once.
        self._full = False
        #: Outages of the pass (dispatch, publish), of the scheduler, and of each target's events.
        self.outage = Outage("control plane", log)
        self._scheduler_outage = Outage("scheduler", log)
        self._events_outage = {name: Outage(f"events of target {name}", log) for name in self.targets}
        # Targets whose tasks queue is a table of this store: dispatch sends their messages itself.
        direct = inline_targets(store, {n: w.queues for n, w in self.targets.items()})
        self._inline = Inline(direct, limits, self._ensure_code) if direct else None
        self._all_inline = bool(direct) and direct.keys() == self.targets.keys()
        #: A dispatch flagged tasks whose messages the outbox has not sent yet.
        self._outbox_filled = False
        #: Event batches that failed to apply and could not be handed back yet (still leased to this control
        #: plane), by target and whether they came from its dead letters.
        self._unreturned: dict[tuple[str, bool], list[Message]] = {}
        #: Targets whose events queue is a table of this store: taken and applied in one transaction.
        self._taken_events = {n: q for n in direct if isinstance(q := self.targets[n].queues.get("events"), StoreQueue)}
        #: Targets whose last taken batch failed: leased receives until one applies (poison is dead-lettered).
        self._leased: set[str] = set()
        #: On a shared (PostgreSQL) store: this control plane's row among the live ones (:mod:`.peers`).
        self.peers = Peers(store, clock) if store.is_postgres else None

    def run(
        self, stop: threading.Event | None = None, idle_wait: float = IDLE_WAIT, period: float = PASS_PERIOD
    ) -> None:
        """Loop until ``stop`` is set: on after a pass that did work (at most one per ``period`` seconds
        unless a batch was full), else asleep until woken.

        With other control planes on the store (:mod:`.peers`), passes start at least ``period`` times
        the number of live ones apart, woken or not: together they pass about as often as one would,
        with batches as large, where every bell (a runner's events) had woken all of them at once.
        A pass that fails is retried after a backoff (:mod:`.outage`); the loop itself never ends on an error.
        """
        if stop is not None:
            self._stop = stop

        next_look = next_beat = last_start = 0.0
        live = 1
        worked = False

        def one_pass() -> None:
            nonlocal next_look, next_beat, last_start, live, worked
            if not self._full and (worked or live > 1):
                left = last_start + period * live - time.monotonic()
                if left > 0 and self._stop.wait(left):  # not the bells: what rings meanwhile waits for this pass
                    return  # stopped meanwhile: no pass after the stop
            started = last_start = time.monotonic()
            self._full = False
            if self.peers is not None and started >= next_beat:
                next_beat = started + BEAT
                live = self.peers.beat()
            # Schedules fire on whole seconds: looking once per idle wait keeps them as punctual as an idle
            # loop is, where a look on every busy pass (50 a second) was a tenth of a control plane's time.
            periodic = started >= next_look
            if periodic:
                next_look = started + idle_wait
            worked = self.step(periodic=periodic) > 0
            if not worked:
                self._sleep(idle_wait)

        self._sleep(0.0)  # bind the wake-up listeners before the first look, so no ring is missed
        try:
            forever(self._stop, self.outage, one_pass)
        finally:
            if self.peers is not None:
                with contextlib.suppress(Exception):  # a store that is down forgets it after STALE seconds
                    self.peers.leave()

    def _sleep(self, timeout: float) -> None:
        if self.wait_for_work is not None:
            self.wait_for_work(timeout)
        else:
            self._stop.wait(timeout)

    def stop(self) -> None:
        self._stop.set()

    def step(self, wait: float = 0.0, *, periodic: bool = True) -> int:
        """One pass: events, dispatch, publish; returns the work done.

        ``periodic``: also the looks a busy loop makes only once per idle wait: schedules, and the
        outbox where every target is sent to inline.
        """
        work = 0
        if periodic and self.scheduler is not None and self._scheduler_outage.ready():
            try:
                work += self._fire_schedules(self.scheduler)
            except Exception as exc:
                self._scheduler_outage.failed(exc)
            else:
                self._scheduler_outage.ok()
        for i, (name, wiring) in enumerate(self.targets.items()):
            outage = self._events_outage.setdefault(name, Outage(f"events of target {name}", log))
            if not outage.ready():
                continue
            try:
                # Only the first queue waits, so an idle loop sleeps once per pass, not once per target.
                work += self.apply_events(name, wiring, wait if i == 0 else 0.0)
            except Exception as exc:
                outage.failed(exc)
            else:
                outage.ok()
        if time.monotonic() >= self._next_drain:
            self._next_drain = time.monotonic() + deadletters.DRAIN_INTERVAL
            for name, wiring in self.targets.items():
                work += self.drain_dead_letters(name, wiring)
        # On SQLite a look first spares the write lock; on PostgreSQL dispatch looks itself, after its
        # claim, so the control planes that find the claim taken skip the look too.
        if self.store.is_postgres or self._due():
            chosen = dispatch(
                self.store,
                {n: w.capacity for n, w in self.targets.items()},
                self.clock(),
                inline=self._inline,
            )
            work += len(chosen)
            if chosen and not self._all_inline:
                self._outbox_filled = True
        # Only dispatch fills the outbox, so a pass reads it after a dispatch that left messages there (until
        # they are sent: a send that failed is tried on the next pass). What a crash left is for the periodic look.
        if periodic or self._outbox_filled:
            work += publish(
                self.store, lambda t: self.targets[t].queues.get("tasks"), self.limits, ensure_code=self._ensure_code
            )
            self._outbox_filled = False
        return work

    def _fire_schedules(self, scheduler: Callable[[float], Pass]) -> int:
        fired = scheduler(self.clock())
        for project_id, task_id in fired.to_cancel:
            if self.cancel is not None:
                self.cancel(project_id, task_id)
        return len(fired.fired)

    def _ensure_code(self, target: str, code: CodeRef) -> None:
        """Copy a code package into the target's blob store if it is not there yet (content-addressed)."""
        blobs = self.targets[target].blobs
        if self.code_source is None or blobs is self.code_source or (target, code.key) in self._copied:
            return
        if not blobs.exists(code.key):
            with self.code_source.open(code.key) as fh:
                blobs.put_file(code.key, fh)
        self._copied.add((target, code.key))

    def drain_dead_letters(self, name: str, wiring: TargetWiring) -> int:
        """Turn one target's dead letters back into task outcomes (see :mod:`mayfly.core.deadletters`)."""
        work = deadletters.drain_tasks(wiring.queues, self.clock(), self.event_batch)
        work += deadletters.drain_cancels(wiring.queues, self.event_batch)
        dead = deadletters.dead_events(wiring.queues)
        if dead is not None:
            work += self.apply_events(name, wiring, source=dead)
        return work

    def apply_events(self, name: str, wiring: TargetWiring, wait: float = 0.0, *, source: Queue | None = None) -> int:
        """Apply a batch of events from one target's events queue (or from ``source``, its dead letters)."""
        taken = self._taken_events.get(name)
        if source is None and taken is not None and name not in self._leased:
            return self._apply_taken(name, wiring, taken)
        events_q = source or wiring.queues.get("events")
        which = (name, source is not None)  # QueueSet.get may build a new queue object on every call
        self._hand_back(which, events_q)
        messages = events_q.receive(self.event_batch, wait=wait, lease=EVENTS_LEASE)
        if not messages:
            return 0
        if len(messages) >= self.event_batch:
            self._full = True
        parsed, malformed = self._parse(name, messages, wiring.blobs)
        for m in malformed:
            events_q.ack(m)
        events = [e for _, e in parsed]
        try:
            with self.store.write() as conn:
                started, ended = self._apply(conn, events)
        except Exception:
            # Not applied: hand the batch back at once rather than after its lease. If the queue cannot take
            # that either (locked or down as well), the next pass tries again before it receives.
            self._unreturned[which] = [m for m, _ in parsed]
            with contextlib.suppress(Exception):
                self._hand_back(which, events_q)
            raise
        events_q.ack_many([m for m, _ in parsed])
        if source is None:
            self._leased.discard(name)  # a leased batch of the queue itself applied: back to taking
        self._observe(started, ended)
        return len(parsed)

    def _hand_back(self, which: tuple[str, bool], events_q: Queue) -> None:
        """Make a batch that failed to apply visible again (its deliveries still count toward dead letters).

        ``which``: the target, and whether ``events_q`` is its dead letters. Raises what the queue
        raises: the batch stays to hand back, and the pass fails like any outage.
        """
        pending = self._unreturned.get(which)
        if pending is None:
            return
        events_q.extend_many(pending, 0.0)
        del self._unreturned[which]

    def _apply_taken(self, name: str, wiring: TargetWiring, events_q: StoreQueue) -> int:
        """Apply a batch of events from a queue in this store, taken, applied and deleted in one transaction.

        No lease to write and no ack to commit apart, and a crash leaves the batch as it was. One
        control plane at a time holds the target's claim and takes the whole batch; the others go
        on with their pass. A batch that fails sends the next passes through leased receives
        (:meth:`apply_events`), whose deliveries count, so an event that never applies is dead-lettered.
        """
        try:
            with self.store.write() as conn:
                if not self.store.try_claim(conn, events_claim(name)):
                    return 0
                messages = events_q.take_in(conn, self.event_batch)
                if not messages:
                    return 0
                fault_point("control.events_taken")
                parsed, _ = self._parse(name, messages, wiring.blobs)  # the malformed are logged and dropped
                started, ended = self._apply(conn, [e for _, e in parsed])
                events_q.drop_in(conn, messages)
        except Exception:
            self._leased.add(name)
            raise
        if len(messages) >= self.event_batch:
            self._full = True
        self._observe(started, ended)
        return len(messages)

    def _parse(
        self, name: str, messages: list[Message], blobs: BlobStore
    ) -> tuple[list[tuple[Message, Event]], list[Message]]:
        """The events of ``messages`` (results fetched from the blob store), and the messages that hold none."""
        parsed: list[tuple[Message, Event]] = []
        malformed: list[Message] = []
        for m in messages:
            try:
                parsed.append((m, self._resolve(Event.loads(m.body), blobs)))
            except (ValueError, KeyError, TypeError) as exc:
                log.error("dropping malformed event from %s: %s", name, exc)
                malformed.append(m)
        return parsed, malformed

    def _apply(self, conn: Connection, events: list[Event]) -> tuple[list[_Timed], list[_Timed]]:
        """Apply ``events`` in ``conn``'s transaction; the tasks they started and ended (for the metrics)."""
        before: dict[str, str] = {}
        outcomes = apply_events(conn, events, self.clock(), self.limits, before=before)
        applied = {e.task_id for e, o in zip(events, outcomes, strict=True) if o.applied}
        return self._changed(conn, before, applied)

    def _observe(self, started: list[_Timed], ended: list[_Timed]) -> None:
        if self.metrics is not None:
            # Observed after the commit: a rolled-back batch is applied again and must count once.
            self.metrics.observe_started(started)
            self.metrics.observe_ended(ended)

    def _changed(
        self, conn: Connection, before: dict[str, str], applied: set[str]
    ) -> tuple[list[_Timed], list[_Timed]]:
        """Tasks the batch started (a quick container goes from preparing straight to its end), and those it ended.

        ``before`` holds the statuses the batch's locking read found (``apply_events``); only the
        columns the metrics read are read back, not whole task records.
        """
        if self.metrics is None or not applied:
            return [], []
        rows = conn.execute(select(*(s.tasks.c[name] for name in _Timed._fields)).where(s.tasks.c.id.in_(applied)))
        tasks = [_Timed(*r) for r in rows]
        preparing = TaskStatus.PREPARING.value
        started = [
            t for t in tasks if before.get(t.id) == preparing and t.start_time is not None and t.status != preparing
        ]
        return started, [t for t in tasks if t.status in _TERMINAL]

    def _resolve(self, event: Event, blobs: BlobStore) -> Event:
        """Fetch a result the runner left in the blob store, so the store keeps it with the task."""
        key = event.data.get("result_key")
        if isinstance(key, str):
            try:
                event.data["result"] = blobs.get(key).decode("utf-8", errors="replace")
            except KeyError:
                event.data["result_error"] = "result blob missing"
        return event

    def _due(self) -> bool:
        """Cheap check (no write lock) for due queued tasks on our targets."""
        with self.store.read() as conn:
            return any_due(conn, list(self.targets), self.clock())
