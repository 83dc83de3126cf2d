"""A pool of daemon worker threads, started as needed and reused.

The runner hands every attempt to a worker. ``Thread.start`` blocks until the new
thread runs, which costs milliseconds when hundreds of threads share the GIL; a
queue put does not. Workers are daemon threads, so a process that exits (``mayfly
run`` after its task) never waits for containers other tasks are still watching.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable


class WorkerPool:
    """Threads that run the submitted callables, in order of submission.

    A job never waits for a busy worker: with no idle worker a new one starts. Attempts
    block for a container's whole run, so a cap could stall a reattached attempt behind
    running ones; the runner's slots already bound how many run at once.
    """

    def __init__(self, name: str = "mayfly-worker") -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads = 0
        self._idle = 0

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` on an idle worker, or on a new one if all are busy."""
        with self._lock:
            grow = self._idle == 0
            if grow:
                self._threads += 1
            else:
                self._idle -= 1  # an idle worker will take this job
        self._jobs.put(job)
        if grow:
            threading.Thread(target=self._work, name=f"{self.name}-{self._threads}", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            job()  # jobs handle their own errors
            with self._lock:
                self._idle += 1
