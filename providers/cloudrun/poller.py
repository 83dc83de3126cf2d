"""One ListExecutions per job and poll interval for every watched execution, instead of a GetExecution each.

The runner watches each attempt from its own thread. Asked one by one, 200 running tasks
polled every 2 s would make 6,000 GetExecution calls a minute against the Cloud Run Admin
API's per-minute read quota (https://cloud.google.com/run/quotas#api). Executions of the same
job template are listed together: a caller whose view of a job is older than it accepts
lists the job's executions (all pages) and that answer serves every other watcher of the
job until it is too old in turn. Callers arriving meanwhile wait for that list (single
flight per job) rather than start another. An execution the list does not show is
confirmed with one GetExecution (it may have been created after the list was taken).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

#: job name -> its executions (run_v2 messages).
ListExecutions = Callable[[str], list[Any]]


def job_of(execution: str) -> str:
    """``projects/P/locations/L/jobs/J`` of an execution name."""
    return execution.split("/executions/", 1)[0]


class ExecutionPoller:
    """A shared, thread-safe cache of ListExecutions answers, per job."""

    def __init__(self, list_executions: ListExecutions, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._list = list_executions
        self._clock = clock
        self._lock = threading.Lock()
        self._gates: dict[str, threading.Lock] = {}
        #: job -> (clock when the list was asked for, {execution name: execution}).
        self._views: dict[str, tuple[float, dict[str, Any]]] = {}
        #: ListExecutions calls made (for tests and metrics).
        self.calls = 0

    def get(self, execution: str, max_age: float) -> tuple[bool, Any | None]:
        """(listed, execution): the execution as a list at most ``max_age`` seconds old shows it.

        ``listed`` is False when that list does not show it (absent, or created after the list).
        """
        job = job_of(execution)
        asked = self._clock()
        with self._lock:
            gate = self._gates.setdefault(job, threading.Lock())
        with gate:
            view = self._views.get(job)
            if view is None or view[0] < asked - max_age or (max_age <= 0 and view[0] < asked):
                started = self._clock()
                self.calls += 1
                found = {str(e.name): e for e in self._list(job)}
                view = (started, found)
                with self._lock:
                    self._views[job] = view
        found_execution = view[1].get(execution)
        return found_execution is not None, found_execution

    def forget(self, execution: str) -> None:
        """Drop an execution from its job's view (it was deleted)."""
        with self._lock:
            view = self._views.get(job_of(execution))
            if view is not None:
                view[1].pop(execution, None)
