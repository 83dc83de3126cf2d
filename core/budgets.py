"""Budgets: a daily and a monthly spending limit per project, in USD.

What counts toward a period (UTC day, UTC month) is the cost of the project's
attempts that ended in it *plus* the estimate (:func:`mayfly.core.costs.estimate`)
of every unfinished task of the project (queued, preparing, running): a schedule
or a loop queueing thousands of tasks is stopped before they run, not after they
have spent. Queueing (:func:`check`) is refused with
:class:`~mayfly.core.errors.BudgetExceeded` when what counts plus the new tasks'
estimate would pass a limit; free tasks (estimate 0) are never refused.

When recorded costs cross 80 % and 100 % of a limit, :func:`alert` records it once
per period and, if the budget has an alert URL, queues a signed webhook through
the completion webhooks' outbox (``webhook_deliveries`` with status
``budget.80`` / ``budget.100``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select

from mayfly.core.costs import estimate, spent
from mayfly.core.errors import BudgetExceeded, InvalidInput
from mayfly.core.ids import new_id
from mayfly.core.models import ACTIVE_STATUSES, TaskStatus
from mayfly.core.pricing import CURRENCY
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

#: Alert levels, percent of a limit.
LEVELS = (80, 100)
_UNFINISHED = [TaskStatus.QUEUED.value, *(st.value for st in ACTIVE_STATUSES)]


@dataclass(frozen=True)
class Budget:
    """A project's limits; None for a period without one."""

    project_id: str
    daily: float | None
    monthly: float | None
    alert_url: str | None

    def limits(self) -> dict[str, float]:
        return {p: v for p, v in (("daily", self.daily), ("monthly", self.monthly)) if v is not None}

    def to_json(self) -> dict[str, Any]:
        return {"daily": self.daily, "monthly": self.monthly, "currency": CURRENCY, "alert_url": self.alert_url}


def parse_amount(text: str) -> float:
    """``20usd``, ``20 USD``, ``$20``, ``20``, ``12.50`` → 20.0; anything else is :class:`InvalidInput`."""
    raw = text.strip().lower().replace(" ", "").removeprefix("$").removesuffix("usd")
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"invalid amount {text!r}: give USD, e.g. 20usd or 12.50") from None
    if not value >= 0 or value == float("inf"):
        raise InvalidInput(f"invalid amount {text!r}: must be zero or more")
    return value


def period_start(period: str, at: float) -> tuple[float, str]:
    """(start epoch, key) of the UTC day or month containing ``at``."""
    d = dt.datetime.fromtimestamp(at, dt.UTC)
    if period == "daily":
        start = d.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.timestamp(), f"daily:{start:%Y-%m-%d}"
    start = d.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return start.timestamp(), f"monthly:{start:%Y-%m}"


def load(conn: Connection, project_id: str) -> Budget | None:
    row = conn.execute(select(s.budgets).where(s.budgets.c.project_id == project_id)).mappings().first()
    if row is None or (row["daily"] is None and row["monthly"] is None):
        return None
    return Budget(project_id, row["daily"], row["monthly"], row["alert_url"])


def pending(conn: Connection, project_id: str) -> float:
    """The estimated cost of a project's unfinished tasks (queued, preparing, running)."""
    t, r = s.tasks, s.code_revisions
    groups = conn.execute(
        select(t.c.code_name, t.c.target, r.c.cpu, r.c.memory_mb, t.c.timeout, func.count())
        .join(r, r.c.id == t.c.revision_id)
        .where(t.c.project_id == project_id, t.c.status.in_(_UNFINISHED))
        .group_by(t.c.code_name, t.c.target, r.c.cpu, r.c.memory_mb, t.c.timeout)
    ).all()
    return float(sum(estimate(conn, project_id, g[0], g[1], g[2], g[3], g[4]).cost * g[5] for g in groups))


def _new_cost(conn: Connection, project_id: str, rows: Sequence[Mapping[str, Any]]) -> float:
    keys: dict[tuple[str, str, str, int], int] = {}
    for row in rows:
        key = (str(row["code_name"]), str(row["target"]), str(row["revision_id"]), int(row["timeout"]))
        keys[key] = keys.get(key, 0) + 1
    total = 0.0
    for (code, target, revision, timeout), n in keys.items():
        rev = conn.execute(
            select(s.code_revisions.c.cpu, s.code_revisions.c.memory_mb).where(s.code_revisions.c.id == revision)
        ).one()
        total += estimate(conn, project_id, code, target, float(rev[0]), int(rev[1]), timeout).cost * n
    return total


def check(conn: Connection, project_id: str, rows: Sequence[Mapping[str, Any]], at: float) -> None:
    """Refuse (:class:`BudgetExceeded`) queueing ``rows`` (task column values) past the project's budget."""
    budget = load(conn, project_id)
    if budget is None or not rows:
        return
    new = _new_cost(conn, project_id, rows)
    if new <= 0:
        return
    queued = pending(conn, project_id)
    for period, limit in budget.limits().items():
        since, key = period_start(period, at)
        used = spent(conn, project_id, since)
        if used + queued + new > limit:
            what = "this task" if len(rows) == 1 else f"these {len(rows)} tasks"
            raise BudgetExceeded(
                f"over the {period} budget of {limit:g} {CURRENCY}: spent {used:.6g}, unfinished tasks "
                f"{queued:.6g}, {what} {new:.6g} (see mayfly project budget)",
                period=key,
                limit=limit,
                spent=round(used, 12),
                pending=round(queued, 12),
                requested=round(new, 12),
            )


def alert(conn: Connection, project_id: str, task_id: str, at: float) -> None:
    """Record (and queue the webhook of) each level the project's spend crossed this period, once."""
    budget = load(conn, project_id)
    if budget is None:
        return
    for period, limit in budget.limits().items():
        since, key = period_start(period, at)
        used = spent(conn, project_id, since)
        for level in LEVELS:
            if limit <= 0 or used < limit * level / 100:
                continue
            done = conn.execute(
                select(s.budget_alerts.c.level).where(
                    s.budget_alerts.c.project_id == project_id,
                    s.budget_alerts.c.period == key,
                    s.budget_alerts.c.level == level,
                )
            ).first()
            if done:
                continue
            delivery = new_id() if budget.alert_url else None
            conn.execute(
                insert(s.budget_alerts).values(
                    project_id=project_id,
                    period=key,
                    level=level,
                    spent=used,
                    limit=limit,
                    delivery_id=delivery,
                    created_at=at,
                )
            )
            if delivery is not None:
                conn.execute(
                    insert(s.webhook_deliveries).values(
                        delivery_id=delivery,
                        task_id=task_id,
                        project_id=project_id,
                        status=f"budget.{level}",
                        attempt=1,
                        url=budget.alert_url,
                        created_at=at,
                        next_attempt_at=at,
                        delivered=False,
                    )
                )


def alert_body(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    """The JSON body of a budget alert delivery, or None when ``delivery_id`` is not one."""
    row = conn.execute(select(s.budget_alerts).where(s.budget_alerts.c.delivery_id == delivery_id)).mappings().first()
    if row is None:
        return None
    period, _, day = str(row["period"]).partition(":")
    return {
        "event": f"budget.{row['level']}",
        "project_id": row["project_id"],
        "period": period,
        "period_start": day,
        "level": row["level"],
        "limit": row["limit"],
        "spent": round(float(row["spent"]), 12),
        "currency": CURRENCY,
    }


class BudgetService:
    """Set, clear and report a project's budget (``mayfly project budget``)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def set(
        self,
        project_id: str,
        *,
        daily: float | None = None,
        monthly: float | None = None,
        alert_url: str | None = None,
        clear: bool = False,
    ) -> Budget | None:
        """Change the given limits (``clear``: remove every limit); returns the budget now in force."""
        with self.store.write() as conn:
            row = conn.execute(select(s.budgets).where(s.budgets.c.project_id == project_id)).mappings().first()
            values = dict(row) if row and not clear else {"daily": None, "monthly": None, "alert_url": None}
            if daily is not None:
                values["daily"] = daily
            if monthly is not None:
                values["monthly"] = monthly
            if alert_url is not None:
                values["alert_url"] = alert_url or None
            values.update(project_id=project_id, updated_at=now())
            conn.execute(delete(s.budgets).where(s.budgets.c.project_id == project_id))
            conn.execute(insert(s.budgets).values(**values))
            return load(conn, project_id)

    def status(self, project_id: str) -> dict[str, Any]:
        """The budget with what counts toward each period now (spent, unfinished tasks' estimate)."""
        at = now()
        with self.store.read() as conn:
            budget = load(conn, project_id)
            queued = pending(conn, project_id)
            body: dict[str, Any] = {"budget": budget.to_json() if budget else None, "pending": round(queued, 12)}
            for period in ("daily", "monthly"):
                since, key = period_start(period, at)
                body[period] = {"period": key, "spent": round(spent(conn, project_id, since), 12)}
            return body
