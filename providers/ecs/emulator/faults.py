"""Failures a test asks the ECS emulator to answer RunTask with: no capacity, quota, throttling, per cluster.

One machine never runs out of Fargate capacity, so the emulator refuses only when
told to, and answers as ECS does (shapes recorded from AWS):

- no capacity, and the account's quota of concurrent tasks or vCPUs: HTTP 200 with no
  ``tasks`` and a ``failures`` entry naming the cluster and the ``reason``
  (``Capacity is unavailable at this time. ...``, ``RESOURCE:FARGATE``,
  ``You've reached the limit on the number of tasks you can run concurrently``);
- throttling: HTTP 400 ``ThrottlingException`` ``Rate exceeded``;
- the region or the service there unavailable: HTTP 503 ``ServiceUnavailable``;
- any other API error by its ``__type`` (and HTTP status);
- an image missing in the target's registry (action ``pull``): RunTask starts the task,
  whose image pull then fails as ECS's does (stopCode ``TaskFailedToStart``,
  ``CannotPullContainerError: ... not found``), so the task stops before its container runs.

:meth:`AwsEmulator.inject_fault <mayfly.providers.ecs.emulator.server.AwsEmulator.inject_fault>`
adds one for a cluster (a Mayfly target has its own cluster: faults are per target);
the next ``times`` matching RunTask calls get it and start nothing (``times=None``:
until :meth:`Faults.clear`). Every call that got a fault is counted in ``Faults.used``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

#: RunTask ``failures`` reasons as ECS gives them.
CAPACITY = "Capacity is unavailable at this time. Please try again later or in a different availability zone"
RESOURCE_FARGATE = "RESOURCE:FARGATE"
QUOTA = "You\u2019ve reached the limit on the number of tasks you can run concurrently"
#: The API error ECS throttles with.
THROTTLING = ("ThrottlingException", "Rate exceeded")
#: The error (HTTP 503) AWS answers with when the service is unavailable in the region.
SERVICE_UNAVAILABLE = ("ServiceUnavailable", "The request has failed due to a temporary failure of the server.")
#: The action whose fault makes a started task's image pull fail ("not found").
PULL = "pull"


@dataclass
class Fault:
    """One injected answer: a ``failures`` ``reason`` (HTTP 200), or an API error ``code`` + ``message``."""

    #: Cluster name it applies to (None: every cluster).
    cluster: str | None = None
    reason: str | None = None
    detail: str | None = None
    code: str | None = None
    message: str = ""
    #: How many calls get it; None: every call until cleared.
    times: int | None = 1
    action: str = "RunTask"
    #: HTTP status of an API error ``code``.
    status: int = 400

    def matches(self, action: str, cluster: str) -> bool:
        return self.action == action and self.cluster in (None, cluster)


class Faults:
    """The pending faults, first injected first used; thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        #: Calls answered with a fault, per cluster.
        self.used: dict[str, int] = {}

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self, cluster: str | None = None) -> None:
        """Drop the pending faults (of one cluster, or all)."""
        with self._lock:
            self._faults = [f for f in self._faults if cluster is not None and f.cluster != cluster]

    def take(self, action: str, cluster: str) -> Fault | None:
        """The fault this call gets (using up one of its ``times``), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(action, cluster):
                    if fault.times is not None:
                        fault.times -= 1
                        if fault.times <= 0:
                            self._faults.remove(fault)
                    self.used[cluster] = self.used.get(cluster, 0) + 1
                    return fault
        return None
