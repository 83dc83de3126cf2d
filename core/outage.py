"""How a loop that runs forever lives through errors: back off, log once, recover by itself.

Every long-running loop of a server (the control plane, the scheduler, each target's
events, the runner, its heartbeat, its attempts and log pumps, the webhook deliverer)
keeps one :class:`Outage` per thing that can fail. A failure starts an outage: one
WARNING line, then retries after a capped exponential backoff (0.5 s, 1 s, 2 s ... 30 s)
with nothing more logged; the first success after it logs one line saying it cleared.

Known faults of the environment (a store or queue locked past its busy timeout, a full
disk, a read-only file system, an unreachable endpoint: any :class:`MayflyError`,
``sqlite3.OperationalError``, SQLAlchemy's ``OperationalError``, ``OSError``) are logged
without a traceback. Anything else is a bug: its traceback is logged once per outage,
and the loop goes on all the same, so one bad row never stops a server.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable

from sqlalchemy.exc import OperationalError as SAOperationalError

from mayfly.core.errors import MayflyError

log = logging.getLogger("mayfly.outage")

#: The first retry comes this many seconds after a failure; each next one waits twice as long ...
FIRST_BACKOFF = 0.5
#: ... up to this.
MAX_BACKOFF = 30.0


def known_fault(exc: BaseException) -> bool:
    """True for faults of the environment (logged in one line), False for bugs (logged with a traceback)."""
    return isinstance(exc, MayflyError | sqlite3.OperationalError | SAOperationalError | OSError)


def describe(exc: BaseException) -> str:
    """One line for the log."""
    text = exc.message if isinstance(exc, MayflyError) else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text[:300]


class Outage:
    """The failure state of one loop (or one part of it): backoff, and one log line per outage start and end.

    Thread-safe: the attempts and log pumps of a runner share one.
    """

    def __init__(
        self,
        name: str,
        logger: logging.Logger | None = None,
        *,
        first: float = FIRST_BACKOFF,
        cap: float = MAX_BACKOFF,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.log = logger or log
        self.first = first
        self.cap = cap
        self.clock = clock
        self._lock = threading.Lock()
        #: Failures since the last success (0: no outage).
        self.failures = 0
        self._since = 0.0
        self._traced = False
        self._next_try = 0.0

    @property
    def active(self) -> bool:
        """True while an outage lasts (from a failure to the next success)."""
        return self.failures > 0

    def ready(self) -> bool:
        """True when the next try is due (always, outside an outage): for parts that must not sleep."""
        return self.failures == 0 or self.clock() >= self._next_try

    def failed(self, exc: BaseException) -> float:
        """Record a failure; return the seconds to wait before the next try.

        Logs the start of an outage (one WARNING line), and the traceback of the first
        unexpected exception of an outage.
        """
        with self._lock:
            self.failures += 1
            first = self.failures == 1
            if first:
                self._since = self.clock()
                self._traced = False
            trace = not known_fault(exc) and not self._traced
            self._traced = self._traced or trace
            delay = min(self.cap, self.first * 2.0 ** min(self.failures - 1, 32))
            self._next_try = self.clock() + delay
        if trace:
            self.log.error(
                "%s failed unexpectedly (retrying with backoff up to %gs): %s",
                self.name,
                self.cap,
                describe(exc),
                exc_info=exc,
            )
        elif first:
            self.log.warning("%s unavailable, retrying with backoff up to %gs: %s", self.name, self.cap, describe(exc))
        return delay

    def ok(self) -> None:
        """Record a success: logs the end of an outage, if one was going on."""
        if self.failures == 0:  # the common case: no lock, nothing to say
            return
        with self._lock:
            failures, self.failures = self.failures, 0
            took = self.clock() - self._since
        if failures:
            self.log.warning("%s recovered after %.1fs (%d failed tries)", self.name, took, failures)


def forever(stop: threading.Event, outage: Outage, step: Callable[[], object]) -> None:
    """Call ``step`` until ``stop`` is set; after a failure wait the outage's backoff (``stop`` ends the wait).

    ``step`` does one pass of a loop, including its own idle wait.
    """
    while not stop.is_set():
        try:
            step()
        except Exception as exc:
            stop.wait(outage.failed(exc))
        else:
            outage.ok()
