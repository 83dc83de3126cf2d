"""Errors a test asks the ARM emulator to answer with: throttling, quota, capacity, outages.

ACI refuses creates past its rate limits (429 with ``Retry-After``), past a
subscription's quota (``ContainerGroupQuotaReached``) or when a region lacks
capacity (``ServiceUnavailable``); none of that happens on one machine. A test
injects such an answer with :meth:`ArmEmulator.inject_fault
<mayfly.providers.aci.emulator.server.ArmEmulator.inject_fault>`: the next
``times`` matching requests get it (an ARM error body, and ``Retry-After`` when
given) and change nothing.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass


@dataclass
class Fault:
    """One injected answer."""

    status: int
    code: str
    message: str
    #: HTTP method it applies to (None: any).
    method: str | None = None
    #: Substring of the path it applies to, e.g. ``/containerGroups/NAME`` (None: any).
    path_contains: str | None = None
    times: int = 1
    retry_after: int | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path_contains is None or self.path_contains.lower() in path.lower()


class Faults:
    """The pending faults, first injected first used."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this request gets (using up one of its ``times``), or None."""
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None
