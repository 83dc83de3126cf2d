"""One timer thread for many deadlines: the runner's task timeouts, however many containers it watches.

A thread per watched container costs ~20 KB of resident memory (its stack and the
interpreter's frame stack), and a watch used two: one waiting on the container, one
following its log. A watch now follows the log alone, which ends when the container
exits, and leaves the clock to this timer (see docs/decisions.md, "Runner, one thread
per container").

The thread starts with the first deadline and ends when none is left, so an idle
runner (or one built for a test) holds no thread for it.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("mayfly.deadlines")

#: The longest the thread sleeps before it reads the clock again (the clock may be set, or be a test's).
NAP = 5.0


class Deadlines:
    """Calls each added callback once, on the timer's thread, when ``clock()`` reaches its time.

    Callbacks must not block: the next deadline waits for them (the runner's spawns a
    thread to stop the container).
    """

    def __init__(self, clock: Callable[[], float] = time.time, name: str = "mayfly-deadlines") -> None:
        self._clock = clock
        self._name = name
        self._wake = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._due: dict[int, Callable[[], None]] = {}
        self._tokens = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, at: float, callback: Callable[[], None]) -> int:
        """Call ``callback`` at ``at`` (the clock's time); returns a token for :meth:`discard`."""
        with self._wake:
            token = next(self._tokens)
            self._due[token] = callback
            heapq.heappush(self._heap, (at, token))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][1] == token:
                self._wake.notify()  # sooner than what the thread sleeps towards
        return token

    def discard(self, token: int) -> None:
        """Forget a deadline (its callback is not called); forgetting one already called is fine."""
        with self._wake:
            self._due.pop(token, None)
            # Forgotten entries stay in the heap until their time; with long timeouts and many short
            # tasks they would pile up, so rebuild it once they are most of it.
            if len(self._heap) > 64 and len(self._heap) > 2 * len(self._due):
                self._heap = [entry for entry in self._heap if entry[1] in self._due]
                heapq.heapify(self._heap)

    def pending(self) -> int:
        """Deadlines not yet reached nor discarded."""
        with self._wake:
            return len(self._due)

    def _next(self) -> Callable[[], None] | None:
        """Wait for the next deadline and return its callback; None when none is left (the thread ends)."""
        with self._wake:
            while True:
                while self._heap and self._heap[0][1] not in self._due:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._thread = None
                    return None
                at, token = self._heap[0]
                left = at - self._clock()
                if left <= 0:
                    heapq.heappop(self._heap)
                    return self._due.pop(token)
                self._wake.wait(min(left, NAP))

    def _run(self) -> None:
        while (callback := self._next()) is not None:
            try:
                callback()
            except Exception:
                log.exception("a deadline's callback failed")
