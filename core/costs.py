"""Cost per attempt: record it when an attempt ends, read it back, sum it, estimate it.

:func:`record_attempt` is called by :mod:`mayfly.core.lifecycle` inside the
transaction that applies an attempt's last event (``exited``, ``lost``,
``launch_failed``). It stores one ``attempts`` row per (task, attempt): the target
and provider that ran it (the runner names its target in the event, so an attempt
moved to another target is recorded where it ran), the billed interval from the
provider's own clock, the requested vCPU and memory, the price used and the cost.
Recording twice (a redelivered event) keeps the first row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from mayfly.core.errors import InvalidInput
from mayfly.core.messages import Event, EventKind
from mayfly.core.pricing import Price, check_override, estimate_seconds, price_for
from mayfly.core.records import Task
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

#: How many recent attempts of a code make its typical run (estimates).
TYPICAL_OF = 20


@dataclass(frozen=True)
class Attempt:
    """One recorded attempt (a row of ``attempts``)."""

    task_id: str
    attempt: int
    target: str
    provider: str
    region: str | None
    outcome: str
    started_at: float | None
    stopped_at: float | None
    billed_seconds: float
    cpu: float
    memory_mb: int
    price: dict[str, Any]
    cost: float

    @classmethod
    def from_row(cls, row: Mapping[Any, Any]) -> Attempt:
        return cls(
            row["task_id"],
            int(row["attempt"]),
            row["target"],
            row["provider"],
            row["region"],
            row["outcome"],
            row["started_at"],
            row["stopped_at"],
            float(row["billed_seconds"]),
            float(row["cpu"]),
            int(row["memory_mb"]),
            json.loads(row["price"] or "{}"),
            float(row["cost"]),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "target": self.target,
            "provider": self.provider,
            "region": self.region,
            "outcome": self.outcome,
            "started_at": self.started_at,
            "stopped_at": self.stopped_at,
            "billed_seconds": self.billed_seconds,
            "cpu": self.cpu,
            "memory_mb": self.memory_mb,
            "price": self.price,
            "cost": round(self.cost, 12),
        }


_UNITS = {"m": 60.0, "h": 3600.0, "d": 86400.0, "w": 7 * 86400.0}


def parse_since(text: str, at: float) -> float:
    """``7d``, ``24h``, ``30m``, ``2w`` before ``at``, or a date ``2026-12-01`` (UTC): the epoch it names."""
    raw = text.strip().lower()
    if raw[-1:] in _UNITS and raw[:-1].isdigit():
        return at - int(raw[:-1]) * _UNITS[raw[-1]]
    try:
        when = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"invalid --since {text!r}: give 7d, 24h, 30m, 2w or a date like 2026-12-01") from None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def target_price(conn: Connection, target: str) -> Price:
    """The price in use on ``target``: the shipped table for its provider and region, and its override."""
    row = conn.execute(select(s.targets.c.provider, s.targets.c.settings).where(s.targets.c.name == target)).first()
    provider, settings = (row[0], json.loads(row[1] or "{}")) if row else ("docker", {})
    override = conn.execute(select(s.target_prices.c.price).where(s.target_prices.c.target == target)).scalar()
    return price_for(provider, settings, json.loads(override) if override else None)


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def attempt_row(conn: Connection, task: Task, event: Event, at: float, seen: dict[str, Any]) -> dict[str, Any]:
    """The ``attempts`` row of the attempt ``event`` ended: where it ran, its billed seconds, the price and cost.

    ``seen``: prices and revisions already read in this transaction (a batch of events reads each once).
    """
    data = event.data
    target = str(data.get("target") or task.target)
    price = seen.get(f"price:{target}")
    if price is None:
        price = seen[f"price:{target}"] = target_price(conn, target)
        seen[f"price_json:{target}"] = json.dumps(price.to_json(), sort_keys=True)
    rev = seen.get(f"rev:{task.revision_id}")
    if rev is None:
        rev = seen[f"rev:{task.revision_id}"] = conn.execute(
            select(s.code_revisions.c.cpu, s.code_revisions.c.memory_mb).where(
                s.code_revisions.c.id == task.revision_id
            )
        ).first()
    cpu, memory_mb = (float(rev[0]), int(rev[1])) if rev else (0.0, 0)
    start = _float(data.get("billed_from")) or _float(data.get("started_at"))
    stop = _float(data.get("billed_to")) or _float(data.get("finished_at"))
    seconds = price.billed_seconds(start, stop) if event.kind is EventKind.EXITED else 0.0
    return {
        "task_id": task.id,
        "attempt": event.attempt,
        "project_id": task.project_id,
        "code_name": task.code_name,
        "target": target,
        "provider": str(data.get("provider") or price.provider),
        "region": price.region,
        "outcome": event.kind.value,
        "started_at": start,
        "stopped_at": stop,
        "billed_seconds": seconds,
        "cpu": cpu,
        "memory_mb": memory_mb,
        "price": seen[f"price_json:{target}"],
        "cost": price.cost(seconds, cpu, memory_mb),
        "created_at": at,
    }


def store_attempts(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert the rows of attempts not stored yet (a redelivered end event records nothing twice); return them."""
    if not rows:
        return []
    if conn.dialect.name == "postgresql":
        return _store_attempts_pg(conn, rows)
    a = s.attempts
    ids = sorted({r["task_id"] for r in rows})
    have: set[tuple[str, int]] = set()
    for start in range(0, len(ids), 500):
        found = conn.execute(select(a.c.task_id, a.c.attempt).where(a.c.task_id.in_(ids[start : start + 500])))
        have.update((str(r[0]), int(r[1])) for r in found)
    new = []
    for row in rows:
        key = (row["task_id"], row["attempt"])
        if key not in have:
            have.add(key)
            new.append(row)
    if new:
        conn.execute(insert(a), new)
    return new


_ATTEMPT_TYPES = {
    **dict.fromkeys(("task_id", "project_id", "code_name", "target", "provider", "region", "outcome", "price"), "text"),
    **dict.fromkeys(("started_at", "stopped_at", "billed_seconds", "cpu", "cost", "created_at"), "float8"),
    **dict.fromkeys(("attempt", "memory_mb"), "int"),
}
_ATTEMPTS_PG = (
    f"INSERT INTO attempts ({', '.join(_ATTEMPT_TYPES)}) "
    f"SELECT * FROM unnest({', '.join(f'%({c})b::{t}[]' for c, t in _ATTEMPT_TYPES.items())}) "
    "ON CONFLICT (task_id, attempt) DO NOTHING RETURNING task_id, attempt"
)


def _store_attempts_pg(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """:func:`store_attempts` in one statement of arrays, whatever the batch's size (its text never changes)."""
    first: dict[tuple[str, int], dict[str, Any]] = {}
    for r in rows:
        first.setdefault((r["task_id"], r["attempt"]), r)
    unique = list(first.values())
    columns = {
        c: [None if r[c] is None else (float(r[c]) if t == "float8" else r[c]) for r in unique]
        for c, t in _ATTEMPT_TYPES.items()
    }
    stored = {(str(t), int(n)) for t, n in conn.exec_driver_sql(_ATTEMPTS_PG, columns)}
    return [r for r in unique if (r["task_id"], r["attempt"]) in stored]


def attempts_of(conn: Connection, task_id: str) -> list[Attempt]:
    """The recorded attempts of a task, oldest first."""
    rows = conn.execute(
        select(s.attempts).where(s.attempts.c.task_id == task_id).order_by(s.attempts.c.attempt)
    ).mappings()
    return [Attempt.from_row(r) for r in rows]


def cost_of(conn: Connection, task_ids: Sequence[str], project_id: str | None = None) -> dict[str, float]:
    """The cost of each task (all its attempts); tasks with no recorded attempt are left out."""
    out: dict[str, float] = {}
    for start in range(0, len(task_ids), 500):
        part = list(task_ids[start : start + 500])
        query = select(s.attempts.c.task_id, func.sum(s.attempts.c.cost)).where(s.attempts.c.task_id.in_(part))
        if project_id is not None:
            query = query.where(s.attempts.c.project_id == project_id)
        rows = conn.execute(query.group_by(s.attempts.c.task_id))
        out.update((r[0], float(r[1] or 0.0)) for r in rows)
    return out


def spent(conn: Connection, project_id: str, since: float) -> float:
    """What a project's attempts that ended since ``since`` cost."""
    value = conn.execute(
        select(func.coalesce(func.sum(s.attempts.c.cost), 0.0)).where(
            s.attempts.c.project_id == project_id, s.attempts.c.created_at >= since
        )
    ).scalar()
    return float(value or 0.0)


def typical_seconds(conn: Connection, project_id: str, code_name: str, target: str) -> float | None:
    """The mean billed seconds of the code's last exited attempts on ``target``, or None when it has none."""
    recent = (
        select(s.attempts.c.billed_seconds)
        .where(
            s.attempts.c.project_id == project_id,
            s.attempts.c.code_name == code_name,
            s.attempts.c.target == target,
            s.attempts.c.outcome == EventKind.EXITED.value,
        )
        .order_by(s.attempts.c.created_at.desc())
        .limit(TYPICAL_OF)
        .subquery()
    )
    value = conn.execute(select(func.avg(recent.c.billed_seconds))).scalar()
    return float(value) if value is not None else None


@dataclass(frozen=True)
class Estimate:
    """What a task is expected to cost before it runs."""

    price: Price
    seconds: float
    cost: float
    #: The most it can cost: billed for its whole timeout.
    worst: float

    def to_json(self) -> dict[str, Any]:
        return {
            "billed_seconds": self.seconds,
            "cost": round(self.cost, 12),
            "worst_cost": round(self.worst, 12),
            "price": self.price.to_json(),
        }


def estimate(
    conn: Connection, project_id: str, code_name: str, target: str, cpu: float, memory_mb: int, timeout: int
) -> Estimate:
    """The expected cost of one task: its code's typical billed seconds on the target (see docs/cost.md)."""
    price = target_price(conn, target)
    seconds = estimate_seconds(price, timeout, typical_seconds(conn, project_id, code_name, target))
    worst = price.cost(price.billed_seconds(0.0, float(timeout)), cpu, memory_mb)
    return Estimate(price, seconds, price.cost(seconds, cpu, memory_mb), worst)


def summary(conn: Connection, project_id: str, since: float) -> list[dict[str, Any]]:
    """Cost, attempts and billed seconds of a project since ``since``, by code and target."""
    a = s.attempts
    rows = conn.execute(
        select(a.c.code_name, a.c.target, func.count(), func.sum(a.c.billed_seconds), func.sum(a.c.cost))
        .where(a.c.project_id == project_id, a.c.created_at >= since)
        .group_by(a.c.code_name, a.c.target)
        .order_by(a.c.code_name, a.c.target)
    )
    return [
        {
            "code": r[0],
            "target": r[1],
            "attempts": int(r[2]),
            "billed_seconds": float(r[3] or 0),
            "cost": float(r[4] or 0),
        }
        for r in rows
    ]


def totals(conn: Connection, project_id: str | None = None) -> Iterable[tuple[str, str, str, float]]:
    """(project name, code, target, cost) of every recorded attempt, summed (``mayfly_task_cost_total``)."""
    a = s.attempts
    query = (
        select(s.projects.c.name, a.c.code_name, a.c.target, func.sum(a.c.cost))
        .join(s.projects, s.projects.c.id == a.c.project_id)
        .group_by(s.projects.c.name, a.c.code_name, a.c.target)
        .order_by(s.projects.c.name, a.c.code_name, a.c.target)
    )
    if project_id is not None:
        query = query.where(a.c.project_id == project_id)
    return [(str(r[0]), str(r[1]), str(r[2]), float(r[3] or 0.0)) for r in conn.execute(query)]


class CostService:
    """Prices in use (and their overrides), recorded attempts, sums and estimates, for the CLI and the API."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def attempts(self, task_id: str) -> list[Attempt]:
        with self.store.read() as conn:
            return attempts_of(conn, task_id)

    def cost_of(self, task_ids: Sequence[str], project_id: str | None = None) -> dict[str, float]:
        with self.store.read() as conn:
            return cost_of(conn, task_ids, project_id)

    def summary(self, project_id: str, since: float) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            return summary(conn, project_id, since)

    def totals(self, project_id: str | None = None) -> Iterable[tuple[str, str, str, float]]:
        with self.store.read() as conn:
            return totals(conn, project_id)

    def estimate(
        self, project_id: str, code_name: str, target: str, cpu: float, memory_mb: int, timeout: int
    ) -> Estimate:
        with self.store.read() as conn:
            return estimate(conn, project_id, code_name, target, cpu, memory_mb, timeout)

    def get(self, target: str) -> Price:
        with self.store.read() as conn:
            return target_price(conn, target)

    def set(self, target: str, values: Mapping[str, Any]) -> Price:
        """Merge ``values`` into the target's override (validated first: a bad value changes nothing)."""
        checked = check_override(values)
        with self.store.write() as conn:
            old = conn.execute(select(s.target_prices.c.price).where(s.target_prices.c.target == target)).scalar()
            merged = {**(json.loads(old) if old else {}), **checked}
            for unit in ("vcpu", "gb"):  # the newer of hour / second wins
                if f"{unit}_hour" in checked:
                    merged.pop(f"{unit}_second", None)
                if f"{unit}_second" in checked:
                    merged.pop(f"{unit}_hour", None)
            conn.execute(delete(s.target_prices).where(s.target_prices.c.target == target))
            conn.execute(insert(s.target_prices).values(target=target, price=json.dumps(merged), updated_at=now()))
            return target_price(conn, target)

    def clear(self, target: str) -> Price:
        with self.store.write() as conn:
            conn.execute(delete(s.target_prices).where(s.target_prices.c.target == target))
            return target_price(conn, target)
