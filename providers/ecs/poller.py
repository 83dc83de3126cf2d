"""One DescribeTasks batch for every task being watched, instead of one call per task per poll.

The runner watches each attempt from its own thread (``state``, ``wait``, and the
log follower's "has it stopped?"). Asked naively, 500 running tasks would make
500 DescribeTasks calls every poll interval and hit ECS's read throttling. A
:class:`TaskPoller` is shared by all of them:

* it caches the last description of every handle with the time it was fetched;
  a caller that accepts data ``max_age`` seconds old gets the cached entry;
* when an entry is too old, one caller refreshes, and its refresh covers every
  *watched* handle (those inside :meth:`TaskPoller.watching`) whose entry is at
  least that old too, grouped by cluster in calls of at most 100 ARNs (the API's
  limit). Callers arriving meanwhile queue their handles and wait (single
  flight); the next refresh takes every queued handle at once. So N watchers cost
  about ``ceil(N / 100)`` calls per interval, and N threads asking at the same
  moment cost at most two rounds of calls;
* ``max_age=0`` forces a description fetched after the call began (``cancel``
  confirming STOPPED);
* launch and stop seed the cache with the task ECS returned.

ECS is eventually consistent: right after RunTask, DescribeTasks may not know
the new task yet and reports it MISSING. A MISSING answer for a handle first seen
less than ``grace`` seconds ago is therefore not believed; its last description
stands until the grace period ends.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mayfly.providers.ecs.naming import task_id_of

#: (cluster, ≤100 task ARNs) -> (tasks, failures), as DescribeTasks returns them.
Fetch = Callable[[str, list[str]], tuple[list[dict[str, Any]], list[dict[str, Any]]]]
#: handle -> (cluster, task ARN).
Parse = Callable[[str], tuple[str, str]]
BATCH = 100


@dataclass(frozen=True)
class Sighting:
    """What ECS last said about one handle."""

    #: The described task, or None when ECS reports it MISSING.
    task: Mapping[str, Any] | None
    #: Clock time the DescribeTasks call started.
    at: float
    #: Number of the refresh that fetched it (0 for a seed).
    gen: int


class TaskPoller:
    """A shared, thread-safe cache of DescribeTasks results; see the module docstring."""

    def __init__(
        self,
        fetch: Fetch,
        parse: Parse,
        *,
        interval: float,
        clock: Callable[[], float] = time.monotonic,
        grace: float = 60.0,
        keep: float = 600.0,
    ) -> None:
        self._fetch = fetch
        self._parse = parse
        self.interval = interval
        self._clock = clock
        self._grace = grace
        self._keep = keep
        self._cond = threading.Condition()
        self._entries: dict[str, Sighting] = {}
        self._first_seen: dict[str, float] = {}
        self._watched: dict[str, int] = defaultdict(int)
        #: Handles callers wait for while a refresh is in flight; the next refresh takes them all.
        self._queued: set[str] = set()
        self._busy = False
        self._gen = 0
        #: DescribeTasks calls made (for metrics and tests).
        self.calls = 0

    # ------------------------------------------------------------ public

    def get(self, handles: Iterable[str], max_age: float) -> dict[str, Sighting]:
        """Sightings of ``handles`` no older than ``max_age`` seconds (0: fetched after this call began)."""
        wanted = list(dict.fromkeys(handles))
        with self._cond:
            need_gen = self._gen + 1
            asked = self._clock()
        while True:
            with self._cond:
                now = self._clock()

                def ok(h: str) -> bool:
                    e = self._entries.get(h)
                    return e is not None and (e.gen >= need_gen or (max_age > 0 and asked - e.at < max_age))

                stale = [h for h in wanted if not ok(h)]
                if not stale:
                    return {h: self._entries[h] for h in wanted}
                if self._busy:
                    # A refresh is in flight: queue these handles for the next one, wait, then look again.
                    self._queued.update(stale)
                    self._cond.wait()
                    continue
                self._busy = True
                self._gen += 1
                gen = self._gen
                # Watched handles half an interval old ride along, so their own next look finds them fresh.
                batch = set(stale) | self._queued
                batch |= {
                    h for h in self._watched if (e := self._entries.get(h)) is None or now - e.at >= self.interval / 2
                }
                self._queued.clear()
            try:
                found = self._describe(batch)
            except BaseException:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
                raise
            with self._cond:
                # Stored before waiters wake, so they find this refresh's results instead of starting another.
                self._store(found, now, gen)
                self._busy = False
                self._cond.notify_all()

    def seed(self, handle: str, task: Mapping[str, Any]) -> None:
        """Record a description ECS returned from RunTask or StopTask."""
        with self._cond:
            now = self._clock()
            self._first_seen.setdefault(handle, now)
            self._entries[handle] = Sighting(task, now, self._gen)

    @property
    def queued(self) -> int:
        """Handles waiting for the next refresh (for metrics and tests)."""
        with self._cond:
            return len(self._queued)

    def peek(self, handle: str) -> Sighting | None:
        """The cached sighting of ``handle``, however old, without calling ECS."""
        with self._cond:
            return self._entries.get(handle)

    def forget(self, handle: str) -> None:
        """Drop what is cached about ``handle``."""
        with self._cond:
            self._drop(handle)

    @contextmanager
    def watching(self, handle: str) -> Iterator[None]:
        """Include ``handle`` in every refresh while inside this block."""
        with self._cond:
            self._watched[handle] += 1
        try:
            yield
        finally:
            with self._cond:
                self._watched[handle] -= 1
                if self._watched[handle] <= 0:
                    del self._watched[handle]

    # ------------------------------------------------------------ internals

    def _describe(self, handles: Iterable[str]) -> dict[str, Mapping[str, Any] | None]:
        by_cluster: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for handle in handles:
            cluster, arn = self._parse(handle)
            by_cluster[cluster].append((handle, arn))
        found: dict[str, Mapping[str, Any] | None] = {}
        for cluster, pairs in by_cluster.items():
            for start in range(0, len(pairs), BATCH):
                chunk = pairs[start : start + BATCH]
                self.calls += 1
                tasks, _failures = self._fetch(cluster, [arn for _, arn in chunk])
                # Match by task id: ECS may answer with the long ARN for a short one and vice versa.
                by_id = {task_id_of(str(t.get("taskArn", ""))): t for t in tasks}
                for handle, arn in chunk:
                    # NOTE: moto leaves unknown ARNs out of both lists; AWS lists them as failures
                    # with reason MISSING. Either way the task is not there.
                    found[handle] = by_id.get(task_id_of(arn))
        return found

    def _store(self, found: Mapping[str, Mapping[str, Any] | None], now: float, gen: int) -> None:
        for handle, task in found.items():
            old = self._entries.get(handle)
            if task is not None:
                self._first_seen.setdefault(handle, now)
            elif old is not None and old.task is not None and now - self._first_seen.get(handle, now) < self._grace:
                task = old.task  # not believed yet: see the module docstring
            self._entries[handle] = Sighting(task, now, gen)
        for handle in [h for h, e in self._entries.items() if now - e.at > self._keep and h not in self._watched]:
            self._drop(handle)

    def _drop(self, handle: str) -> None:
        self._entries.pop(handle, None)
        self._first_seen.pop(handle, None)
