"""Firing schedules: each slot exactly once, through restarts, clock jumps and several control planes.

One write transaction per pass records every due slot in ``schedule_fires``
(unique per schedule and slot instant), queues the tasks it fires and advances
``next_start``. A crash before the commit leaves nothing; after it, everything.
Two control planes on one store serialize on the write lock, and the unique
slot key stops a second fire even where they would not.

Slots later than the lateness tolerance were *missed* (no control plane ran):
``skip`` records them as skipped, ``once`` fires the latest of them, ``all`` fires
each (those older than the catch-up deadline are recorded as skipped).
Overlap: ``forbid`` skips a slot while the previous task is unfinished,
``replace`` cancels that task and queues the new one behind it (it starts once
the old container has stopped), ``allow`` just queues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, and_, insert, select, update
from sqlalchemy.exc import IntegrityError

from mayfly.core import budgets
from mayfly.core.errors import BudgetExceeded, MayflyError
from mayfly.core.faults import fault_point
from mayfly.core.ids import new_id
from mayfly.core.models import TERMINAL_STATUSES
from mayfly.core.records import Code, Revision
from mayfly.core.schedules import Schedule, load
from mayfly.core.store import Store
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions, TaskService

log = logging.getLogger("mayfly.scheduler")

#: A slot fired later than this (capped at half its period) counts as missed.
LATENESS = 60.0
#: ``--missed all`` catches up at most this far back, and at most this many slots per schedule.
CATCH_UP_SECONDS = 24 * 3600.0
CATCH_UP_SLOTS = 1000


@dataclass
class Pass:
    """What one firing pass did (for tests and logs)."""

    fired: list[tuple[str, float, str]] = field(default_factory=list)
    skipped: list[tuple[str, float, str]] = field(default_factory=list)
    #: Running tasks a "replace" overlap asked to cancel (the caller sends the cancels after commit).
    to_cancel: list[tuple[str, str]] = field(default_factory=list)


def _code(conn: Connection, sched: Schedule) -> tuple[Code, Revision]:
    row = conn.execute(select(s.codes).where(s.codes.c.id == sched.code_id)).mappings().one()
    code = Code.from_row(row)
    rev = (
        conn.execute(
            select(s.code_revisions).where(
                s.code_revisions.c.code_id == code.id, s.code_revisions.c.rev == code.latest_rev
            )
        )
        .mappings()
        .one()
    )
    return code, Revision.from_row(rev)


def _previous_unfinished(conn: Connection, schedule_id: str) -> str | None:
    row = conn.execute(
        select(s.tasks.c.id)
        .where(
            and_(s.tasks.c.schedule_id == schedule_id, s.tasks.c.status.notin_([st.value for st in TERMINAL_STATUSES]))
        )
        .order_by(s.tasks.c.id.desc())
        .limit(1)
    ).first()
    return str(row[0]) if row else None


def _record(
    conn: Connection, sched: Schedule, slot: float, now: float, task_id: str | None, reason: str | None
) -> bool:
    """Claim the slot; False when it was already fired or skipped (another control plane, a restart)."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(s.schedule_fires).values(
                    schedule_id=sched.id,
                    slot_ms=round(slot * 1000),
                    fired_at=now,
                    task_id=task_id,
                    skipped=task_id is None,
                    reason=reason,
                )
            )
    except IntegrityError:
        return False
    return True


def any_due(store: Store, now: float) -> bool:
    """Cheap check without the write lock: is any schedule due?"""
    with store.read() as conn:
        return (
            conn.execute(
                select(s.schedules.c.id)
                .where(s.schedules.c.status == "scheduled", s.schedules.c.next_start <= now)
                .limit(1)
            ).first()
            is not None
        )


def fire_due(store: Store, tasks: TaskService, now: float, on_fault: Callable[[str], None] = fault_point) -> Pass:
    """Fire every due slot of every schedule; one transaction for the whole pass."""
    done = Pass()
    if not any_due(store, now):
        return done
    with store.write() as conn:
        # Locked and skipped when locked: on PostgreSQL a schedule another control plane is firing right now is
        # left to it (SQLite's write lock serializes passes); the unique slot key stops a second fire regardless.
        due = (
            conn.execute(
                select(s.schedules.c.id)
                .where(s.schedules.c.status == "scheduled", s.schedules.c.next_start <= now)
                .order_by(s.schedules.c.id)
                .with_for_update(skip_locked=True)
            )
            .scalars()
            .all()
        )
        for schedule_id in due:
            sched = load(conn, schedule_id)
            if sched is not None:
                _fire_one(conn, sched, tasks, now, done, on_fault)
        on_fault("scheduler.before_commit")
    return done


def _fire_one(
    conn: Connection, sched: Schedule, tasks: TaskService, now: float, done: Pass, on_fault: Callable[[str], None]
) -> None:
    rule = sched.rule
    lateness = min(LATENESS, rule.period() / 2)
    due: list[float] = []
    slot = sched.next_start
    while slot is not None and slot <= now and len(due) < CATCH_UP_SLOTS:
        if sched.end_at is not None and slot > sched.end_at:
            break
        due.append(slot)
        slot = rule.after(slot)
    missed = [x for x in due if now - x > lateness]
    on_time = [x for x in due if now - x <= lateness]
    fire: list[float] = list(on_time)
    skip: list[tuple[float, str]] = []
    if sched.missed == "all":
        for x in missed:
            if now - x > CATCH_UP_SECONDS:
                skip.append((x, "missed: older than the catch-up deadline"))
            else:
                fire.append(x)
    elif sched.missed == "once" and missed:
        # One run stands for all the missed slots: the on-time one if there is one, else the latest.
        keep = [] if on_time else [missed[-1]]
        fire += keep
        skip += [(x, "missed: coalesced into one run") for x in missed if x not in keep]
    else:
        skip += [(x, "missed: no control plane was running") for x in missed]
    fire.sort()

    run_count = sched.run_count
    last_run = sched.last_run_time
    status, msg = sched.status, sched.msg
    for x, why in skip:
        if _record(conn, sched, x, now, None, why):
            done.skipped.append((sched.id, x, why))
    for x in fire:
        if sched.run_times is not None and run_count >= sched.run_times:
            break
        task_id = new_id()
        reason: str | None = None
        wait_for = None
        previous = _previous_unfinished(conn, sched.id)
        if previous is not None and sched.overlap == "forbid":
            reason = f"overlap: task {previous} of the previous run is still unfinished"
        elif previous is not None and sched.overlap == "replace":
            wait_for = previous
        if reason is None:
            try:
                code, rev = _code(conn, sched)
                opts = TaskOptions(
                    priority=sched.priority, timeout=sched.timeout, target=sched.target, label=sched.label
                )
                # The payload was checked when the schedule was created (JSON, or any text on /2); a text
                # payload has no flag of its own in the row, so firing takes it as text, byte for byte.
                row = tasks.row(sched.project_id, code, rev, sched.payload, opts, now, text_payload=True)
                budgets.check(conn, sched.project_id, [row], now)
            except BudgetExceeded as exc:
                reason = f"budget: {exc.message}"
            except MayflyError as exc:
                reason = f"error: {exc.message}"
        if reason is not None:
            if _record(conn, sched, x, now, None, reason):
                done.skipped.append((sched.id, x, reason))
            continue
        if not _record(conn, sched, x, now, task_id, None):
            continue
        conn.execute(insert(s.tasks).values(id=task_id, schedule_id=sched.id, wait_for=wait_for, **row))
        on_fault("scheduler.after_task_insert")
        if wait_for is not None:
            done.to_cancel.append((sched.project_id, wait_for))
        run_count += 1
        last_run = now
        done.fired.append((sched.id, x, task_id))
    next_start = rule.after(due[-1]) if due else sched.next_start
    if sched.run_times is not None and run_count >= sched.run_times:
        status, msg, next_start = "complete", "Ran max times.", None
    elif next_start is None or (sched.end_at is not None and next_start > sched.end_at):
        status, msg, next_start = "complete", "Reached its end." if sched.end_at else "Ran its one run.", None
    conn.execute(
        update(s.schedules)
        .where(s.schedules.c.id == sched.id)
        .values(
            next_start=next_start,
            run_count=run_count,
            last_run_time=last_run,
            status=status,
            msg=msg,
            updated_at=now,
        )
    )
