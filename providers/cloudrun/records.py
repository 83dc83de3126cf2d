"""Launch records: which Cloud Run execution runs an attempt, kept in the target's bucket.

``RunJob`` has no client token: calling it twice starts two executions. So before a
runner calls it for an attempt, it *claims* the attempt by creating
``runs/<task>/<attempt>/cloudrun.json`` with ``ifGenerationMatch=0`` (only one creator
can win), naming the job and itself; right after RunJob answers it writes the execution's
name (from the operation's metadata, there at once) into the record, conditional on the
generation it created. See docs/decisions.md, "Cloud Run: idempotent launch".
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from mayfly.core.messages import run_key
from mayfly.providers.cloudrun.gcs import GcsBlobStore

NAME = "cloudrun.json"


@dataclass(frozen=True)
class Record:
    """One attempt's launch record at one generation."""

    job: str
    execution: str | None
    owner: str
    at: float
    generation: int


class LaunchRecords:
    """Create, read, complete and delete the launch records of a target's attempts."""

    def __init__(self, store: GcsBlobStore, clock: Any = time.time) -> None:
        self.store = store
        self._clock = clock

    @staticmethod
    def key(task_id: str, attempt: int) -> str:
        return run_key(task_id, attempt, NAME)

    def _encode(self, job: str, execution: str | None, owner: str) -> bytes:
        return json.dumps({"job": job, "execution": execution, "owner": owner, "at": self._clock()}).encode()

    def claim(self, task_id: str, attempt: int, job: str, owner: str) -> int | None:
        """Create the record (nobody launched this attempt yet): its generation, or None when it exists."""
        return self.store.create(self.key(task_id, attempt), self._encode(job, None, owner))

    def take_over(self, task_id: str, attempt: int, seen: Record, job: str, owner: str) -> int | None:
        """Claim an abandoned record (still at ``seen``'s generation): the new generation, or None if it moved."""
        return self.store.replace(self.key(task_id, attempt), self._encode(job, None, owner), seen.generation)

    def renew(self, task_id: str, attempt: int, generation: int, job: str, owner: str) -> int | None:
        """Refresh this runner's claim (still at ``generation``): the new generation, or None if it was taken."""
        return self.store.replace(self.key(task_id, attempt), self._encode(job, None, owner), generation)

    def complete(self, task_id: str, attempt: int, generation: int, job: str, execution: str, owner: str) -> bool:
        """Name the execution in the record this runner claimed (False: someone else changed it meanwhile)."""
        key = self.key(task_id, attempt)
        return self.store.replace(key, self._encode(job, execution, owner), generation) is not None

    def get(self, task_id: str, attempt: int) -> Record | None:
        """The record, or None when the attempt was never launched (or was removed)."""
        found = self.store.read(self.key(task_id, attempt))
        if found is None:
            return None
        data, generation = found
        try:
            body = json.loads(data)
            return Record(
                job=str(body["job"]),
                execution=body.get("execution") or None,
                owner=str(body.get("owner") or ""),
                at=float(body.get("at") or 0.0),
                generation=generation,
            )
        except (ValueError, KeyError, TypeError):
            return Record(job="", execution=None, owner="", at=0.0, generation=generation)

    def release(self, task_id: str, attempt: int, generation: int) -> None:
        """Delete this runner's claim (still at ``generation``) after a launch that started nothing."""
        self.store.delete_if(self.key(task_id, attempt), generation)

    def delete(self, task_id: str, attempt: int) -> None:
        self.store.delete(self.key(task_id, attempt))
