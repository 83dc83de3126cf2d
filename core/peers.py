"""Control planes that share a PostgreSQL store know how many they are, and pace their passes by it.

Each pass of a control plane costs some ten statements whatever it finds (a look for due
tasks, the dispatch claim, an events lease). One control plane under load makes long
passes with large batches; three making passes as often as one did split the same events
into batches a third the size and paid those statements three times: three servers moved
fewer tasks a second than one (docs/decisions.md, "PostgreSQL, round 4"). So each control
plane waits ``period * live`` between busy passes, and together they pass as often as one.

Each writes a row in ``control_planes`` and refreshes it every :data:`BEAT` seconds; a row
not refreshed for :data:`STALE` seconds (a process killed with -9) is removed by the next
beat of any other. The count is advice, never a lock: a control plane that misjudges it
passes a little too often or too seldom, and every piece of work is still claimed on its
own. ``mayfly db status`` lists the live ones.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, func, insert, select, update

from mayfly.core.store import Store
from mayfly.core.store import schema as s

_CP = s.control_planes
#: How often a control plane refreshes its row (and counts the others), in seconds.
BEAT = 1.0
#: A row older than this is a control plane gone without a word (kill -9, a lost machine).
STALE = 10.0


@dataclass(frozen=True)
class Peer:
    """One live control plane."""

    id: str
    host: str
    pid: int
    started_at: float
    seen_at: float


class Peers:
    """This control plane's row in ``control_planes``, and the count of live ones."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock
        self.host = socket.gethostname()[:200]
        self.pid = os.getpid()
        self.id = f"{self.host[:40]}:{self.pid}:{secrets.token_hex(4)}"
        self.started_at = clock()

    def beat(self) -> int:
        """Say this control plane is alive and forget those gone quiet; return how many are live (at least 1)."""
        now = self.clock()
        with self.store.write() as conn:
            conn.execute(delete(_CP).where(_CP.c.seen_at < now - STALE))
            if conn.execute(update(_CP).where(_CP.c.id == self.id).values(seen_at=now)).rowcount == 0:
                conn.execute(
                    insert(_CP).values(
                        id=self.id, host=self.host, pid=self.pid, started_at=self.started_at, seen_at=now
                    )
                )
            return max(1, int(conn.execute(select(func.count()).select_from(_CP)).scalar_one()))

    def leave(self) -> None:
        """Remove this control plane's row (a clean stop), so the others count one fewer at once."""
        with self.store.write() as conn:
            conn.execute(delete(_CP).where(_CP.c.id == self.id))


def live(store: Store, now: float | None = None) -> list[Peer]:
    """The control planes seen in the last :data:`STALE` seconds, oldest first."""
    at = time.time() if now is None else now
    with store.read() as conn:
        rows = conn.execute(select(_CP).where(_CP.c.seen_at >= at - STALE).order_by(_CP.c.started_at)).all()
    return [Peer(r.id, r.host, r.pid, r.started_at, r.seen_at) for r in rows]
