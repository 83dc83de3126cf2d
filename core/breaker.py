"""Circuit breakers: a target whose launches keep failing in a way another target could avoid is skipped for a while.

Each target has a row in ``target_breakers`` once a launch on it failed with a
movable kind (no capacity, quota, throttled, region unavailable, image missing;
:data:`~mayfly.core.placement.MOVABLE_KINDS`). The states:

* **closed** — fewer than ``Limits.breaker_failures`` such failures in a row;
* **open** — that many in a row: until ``open_until`` (``Limits.breaker_cooldown``
  seconds later) tasks that have another target skip it (:mod:`mayfly.core.router`
  moves them, recording a ``moved`` event); tasks with no other target still go there;
* **half-open** — the cool-down is over: one task at a time is let through. A
  launch that works (a ``started`` event) closes the breaker; another movable
  failure opens it again for a new cool-down.

The rows live in the store, so every server on a shared PostgreSQL store sees the
same breakers; all writes happen in the control plane's event transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, select, update

from mayfly.core.config import Limits
from mayfly.core.records import iso
from mayfly.core.store import schema as s


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True)
class Breaker:
    """One target's breaker as stored."""

    target: str
    failures: int = 0
    opened_at: float | None = None
    open_until: float | None = None
    last_kind: str | None = None
    last_message: str | None = None
    updated_at: float | None = None

    def state(self, now: float) -> BreakerState:
        """Closed, open (cool-down running) or half-open (cool-down over, not closed by a success yet)."""
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.open_until is not None and now < self.open_until:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def to_json(self, now: float) -> dict[str, Any]:
        return {
            "state": self.state(now).value,
            "failures": self.failures,
            "opened_at": iso(self.opened_at),
            "open_until": iso(self.open_until),
            "last_kind": self.last_kind,
            "last_message": self.last_message,
        }


def load(conn: Connection) -> dict[str, Breaker]:
    """Every breaker that is not plainly closed (a small table: one row per target that ever failed)."""
    rows = conn.execute(select(s.target_breakers)).mappings()
    return {r["target"]: Breaker(**dict(r)) for r in rows}


def open_targets(conn: Connection, now: float) -> set[str]:
    """Targets whose breaker is open now."""
    return {name for name, b in load(conn).items() if b.state(now) is BreakerState.OPEN}


def failed(conn: Connection, target: str, kind: str, message: str, now: float, limits: Limits) -> Breaker:
    """Count one movable launch failure on ``target``; open the breaker at the threshold or when half-open."""
    # The row exists first (two servers failing on one target at once both find it), then is locked.
    # The dialect's insert is imported here: importing the PostgreSQL dialect costs every CLI start-up.
    if conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as ensure
    else:
        from sqlalchemy.dialects.postgresql import insert as ensure  # type: ignore[assignment]
    conn.execute(ensure(s.target_breakers).values(target=target, updated_at=now).on_conflict_do_nothing())
    row = (
        conn.execute(select(s.target_breakers).where(s.target_breakers.c.target == target).with_for_update())
        .mappings()
        .one()
    )
    old = Breaker(**dict(row))
    failures = old.failures + 1
    state = old.state(now)
    values: dict[str, Any] = {
        "failures": failures,
        "last_kind": kind,
        "last_message": message[:2000],
        "updated_at": now,
        "opened_at": old.opened_at,
        "open_until": old.open_until,
    }
    if state is BreakerState.HALF_OPEN or (state is BreakerState.CLOSED and failures >= limits.breaker_failures):
        values["opened_at"] = now
        values["open_until"] = now + limits.breaker_cooldown
    conn.execute(update(s.target_breakers).where(s.target_breakers.c.target == target).values(**values))
    return Breaker(target, **values)


def succeeded(conn: Connection, targets: set[str], known: dict[str, Breaker], now: float) -> None:
    """A launch worked on each of ``targets``: close their breakers (only rows that are not closed already)."""
    for name in sorted(targets):
        b = known.get(name)
        if b is None or (b.failures == 0 and b.opened_at is None):
            continue
        conn.execute(
            update(s.target_breakers)
            .where(s.target_breakers.c.target == name)
            .values(failures=0, opened_at=None, open_until=None, updated_at=now)
        )
