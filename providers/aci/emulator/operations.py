"""Long-running operations, as ARM reports them to pollers.

A PUT, DELETE, start or restart answers at once with ``Azure-AsyncOperation``
(and for DELETE, start and restart also ``Location``) headers; the client polls
those URLs until the operation is done. The status URL returns ARM's operation
status body (``status`` InProgress / Succeeded / Failed / Canceled, with
``error`` when it failed); the ``Location`` URL returns 202 while in progress and
204 (or the failure) once done.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from mayfly.providers.aci.emulator.model import iso

#: Seconds a client is told to wait between polls (``Retry-After``); the SDK's ``polling_interval`` wins.
RETRY_AFTER = 1
#: Finished operations are forgotten after this long.
RETENTION = 3600.0


@dataclass
class Operation:
    """One long-running operation."""

    subscription: str
    location: str
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "InProgress"
    start: float = field(default_factory=time.time)
    end: float | None = None
    error: dict[str, str] | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def finish(self, status: str = "Succeeded", error: dict[str, str] | None = None) -> None:
        """Mark the operation done (the first call wins)."""
        if self.done.is_set():
            return
        self.status = status
        self.error = error
        self.end = time.time()
        self.done.set()

    def path(self, kind: str = "operations") -> str:
        """Path of the status (``operations``) or result (``operationResults``) endpoint."""
        return (
            f"/subscriptions/{self.subscription}/providers/Microsoft.ContainerInstance/locations/"
            f"{self.location}/{kind}/{self.id}"
        )

    def to_arm(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.path(),
            "name": self.id,
            "status": self.status,
            "startTime": iso(self.start),
        }
        if self.end is not None:
            body["endTime"] = iso(self.end)
        if self.error is not None:
            body["error"] = dict(self.error)
        return body


class Operations:
    """The operations of one emulator, by id."""

    def __init__(self) -> None:
        self._ops: dict[str, Operation] = {}
        self._lock = threading.Lock()

    def new(self, subscription: str, location: str) -> Operation:
        op = Operation(subscription, location)
        with self._lock:
            now = time.time()
            for key in [k for k, o in self._ops.items() if o.end is not None and now - o.end > RETENTION]:
                del self._ops[key]
            self._ops[op.id] = op
        return op

    def get(self, op_id: str) -> Operation | None:
        with self._lock:
            return self._ops.get(op_id)
