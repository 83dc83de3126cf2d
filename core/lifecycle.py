"""The task status machine: the one place that changes a task's status.

Rules:

* a terminal status (complete, error, cancelled, timeout) never changes;
* events are always recorded; an event for a terminal task or for an older
  attempt is recorded with ``applied = false`` and changes nothing;
* a concurrency slot is held exactly while a task is ``preparing`` or
  ``running``, so the transaction that records a terminal status frees it;
* user failures (non-zero exit, OOM, timeout) retry as a *new* task linked by
  ``retry_of`` after ``retries_delay``; infrastructure failures (launch failed,
  container lost, engine restarted) relaunch the *same* task as a new attempt, for as long as
  the task's outage lasts less than ``Limits.infra_retry_window`` seconds;
* an infrastructure failure of a kind another target could avoid (``data.kind``: no
  capacity, quota, throttled, region, image missing) moves a task with fallback targets
  to the next one whose circuit breaker is not open, at once (a ``moved`` event records
  it); it also counts against the failing target's breaker (:mod:`mayfly.core.breaker`);
* every status write goes through :func:`move` or :func:`cancel_queued_of_code`,
  and both hand the tasks that became terminal to :func:`_ended`, which queues
  their completion webhooks in the same transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, Update, bindparam, func, insert, select, update

from mayfly.core import breaker, budgets, costs, placement
from mayfly.core.config import Limits
from mayfly.core.ids import new_id
from mayfly.core.messages import END_KINDS, Event, EventKind
from mayfly.core.models import ACTIVE_STATUSES, Reason, TaskStatus
from mayfly.core.records import Task
from mayfly.core.store import schema as s
from mayfly.core.webhooks import Ended, enqueue

#: Allowed moves. Terminal statuses have no entry: nothing leaves them.
TRANSITIONS: dict[TaskStatus, frozenset[TaskStatus]] = {
    TaskStatus.QUEUED: frozenset({TaskStatus.PREPARING, TaskStatus.CANCELLED}),
    TaskStatus.PREPARING: frozenset(
        {
            TaskStatus.RUNNING,
            TaskStatus.QUEUED,
            TaskStatus.COMPLETE,
            TaskStatus.ERROR,
            TaskStatus.CANCELLED,
            TaskStatus.TIMEOUT,
        }
    ),
    TaskStatus.RUNNING: frozenset(
        {TaskStatus.COMPLETE, TaskStatus.ERROR, TaskStatus.CANCELLED, TaskStatus.TIMEOUT, TaskStatus.QUEUED}
    ),
}


def can_move(old: TaskStatus, new: TaskStatus) -> bool:
    """True when the status machine allows ``old`` → ``new``."""
    return new in TRANSITIONS.get(old, frozenset())


@dataclass(frozen=True)
class Outcome:
    """What applying one event did."""

    applied: bool
    note: str | None = None
    #: The id of a retry task created by this event, if any.
    retry_task_id: str | None = None
    #: A move to another target this event caused: the ``moved`` event's data (from, to, kind, message).
    moved: dict[str, str] | None = None


def infra_backoff(failures: int) -> float:
    """Seconds before relaunching after the n-th infrastructure failure (1, 2, 4, ... capped at 60)."""
    return float(min(60, 2 ** max(0, failures - 1)))


def load_task(conn: Connection, task_id: str) -> Task | None:
    """The task row, or None."""
    row = conn.execute(select(s.tasks).where(s.tasks.c.id == task_id)).mappings().first()
    return Task.from_row(row) if row else None


def move(conn: Connection, task: Task, new: TaskStatus, now: float, **fields: Any) -> bool:
    """Change the status with a compare-and-set on the current status; False if it already changed."""
    old = task.task_status
    if not can_move(old, new):
        return False
    values = {"status": new.value, "updated_at": now, **fields}
    if new.terminal:
        values.setdefault("end_time", now)
    res = _run_move(conn, frozenset(values), {**values, "_id": task.id, "_old": old.value})
    if res.rowcount != 1:
        return False
    if new.terminal:
        _ended(conn, [Ended(task.id, task.project_id, task.webhook)], new, now)
    return True


_MOVES: dict[frozenset[str], Update] = {}
_PG_MOVES: dict[frozenset[str], str] = {}


def _run_move(conn: Connection, columns: frozenset[str], params: dict[str, Any]) -> CursorResult[Any]:
    """Run the compare-and-set of ``columns``; on PostgreSQL as text compiled once, straight on the driver.

    The control plane moves one task per event; SQLAlchemy's execution of even a cached statement
    cost several times the UPDATE's own time in the database.
    """
    if conn.dialect.name != "postgresql":
        return conn.execute(_move_statement(columns), params)
    sql = _PG_MOVES.get(columns)
    if sql is None:
        sql = _PG_MOVES[columns] = str(_move_statement(columns).compile(dialect=conn.dialect))
    return conn.exec_driver_sql(sql, params)


def _move_statement(columns: frozenset[str]) -> Update:
    """The compare-and-set UPDATE setting ``columns``, built once per set of columns.

    A statement object reused with bound values skips SQLAlchemy's per-call construction
    and cache-key walk, which cost more than the UPDATE itself when events come by hundreds.
    """
    stmt = _MOVES.get(columns)
    if stmt is None:
        stmt = (
            update(s.tasks)
            .where(s.tasks.c.id == bindparam("_id"), s.tasks.c.status == bindparam("_old"))
            .values({c: bindparam(c) for c in sorted(columns)})
        )
        _MOVES[columns] = stmt
    return stmt


def _ended(conn: Connection, ended: Sequence[Ended], status: TaskStatus, now: float) -> None:
    """What every terminal transition writes besides the status: the completion webhook outbox rows."""
    enqueue(conn, ended, status, now)


def apply_event(conn: Connection, event: Event, now: float, limits: Limits) -> Outcome:
    """Apply one runner event to its task and record it; must run inside a write transaction."""
    return apply_events(conn, [event], now, limits)[0]


def apply_events(
    conn: Connection, events: Sequence[Event], now: float, limits: Limits, *, before: dict[str, str] | None = None
) -> list[Outcome]:
    """Apply runner events in order and record them all; must run inside a write transaction.

    The tasks are read with one query and the events recorded with one insert, so a
    batch costs little more than its status updates. ``before``, when given, receives each
    task's status as that (locking) read found it, for callers that compare before and after.
    """
    # Sorted and locked (``FOR UPDATE``; nothing on SQLite, whose write lock already excludes everyone): two
    # control planes applying events of one task on PostgreSQL take turns, and always lock in the same order.
    ids = sorted({e.task_id for e in events})
    cache: dict[str, Task] = {}
    for start in range(0, len(ids), 500):
        rows = conn.execute(
            select(s.tasks).where(s.tasks.c.id.in_(ids[start : start + 500])).order_by(s.tasks.c.id).with_for_update()
        ).mappings()
        cache.update((r["id"], Task.from_row(r)) for r in rows)
    if before is not None:
        before.update((task_id, task.status) for task_id, task in cache.items())
    outcomes = []
    records = []
    started: set[str] = set()
    seen: dict[str, Any] = {}
    attempts: list[dict[str, Any]] = []
    for event in events:
        task = cache.get(event.task_id)
        if task is None and event.task_id not in cache:
            task = load_task(conn, event.task_id)  # changed earlier in this batch: read it again
        outcome = _decide(conn, task, event, now, limits)
        # The attempt ran (and was billed) whatever the event did to the task's status.
        if task is not None and event.kind in END_KINDS:
            attempts.append(costs.attempt_row(conn, task, event, now, seen))
        if outcome.applied:
            cache.pop(event.task_id, None)
            if task is not None and _launch_worked(event):
                started.add(task.target)
        outcomes.append(outcome)
        records.append(
            {
                "task_id": event.task_id,
                "attempt": event.attempt,
                "kind": event.kind.value,
                "data": json.dumps(event.data),
                "at": event.at,
                "applied": outcome.applied,
                "note": outcome.note,
                "created_at": now,
            }
        )
        if outcome.moved is not None:
            records.append(moved_record(event.task_id, event.attempt, outcome.moved, now))
    if started:
        # A launch that worked closes its target's breaker (one read of the small breakers table per batch).
        breaker.succeeded(conn, started, breaker.load(conn), now)
    if records and conn.dialect.name == "postgresql":
        # One statement of arrays: a multi-row VALUES is a new, long statement text for every batch size,
        # which psycopg parses again each time (it was a tenth of a control plane's time).
        conn.exec_driver_sql(_EVENTS_PG, {k: [r[k] for r in records] for k in _EVENT_COLUMNS} | {"created_at": now})
    elif records:
        conn.execute(insert(s.events), records)
    # Each project whose spending grew is checked once against its budget's alert levels.
    spent = {r["project_id"]: r["task_id"] for r in costs.store_attempts(conn, attempts) if r["cost"] > 0}
    for project_id, task_id in spent.items():
        budgets.alert(conn, project_id, task_id, now)
    return outcomes


def _launch_worked(event: Event) -> bool:
    """Whether an applied event shows the attempt's container ran: it closes the target's breaker.

    A ``started`` event of a launch still pending (ECS provisions and pulls the image first) does not: the
    attempt may still stop before it runs (image missing, no capacity), a failure the breaker must count in a
    row. Its exit (any code: the container ran) does instead.
    """
    if event.kind is EventKind.STARTED:
        return not event.data.get("pending")
    return event.kind is EventKind.EXITED


_EVENT_COLUMNS = ("task_id", "attempt", "kind", "data", "at", "applied", "note")
_EVENTS_PG = (
    "INSERT INTO events (task_id, attempt, kind, data, at, applied, note, created_at) "
    "SELECT t, n, k, d, a, ap, nt, %(created_at)s FROM unnest(%(task_id)b::text[], %(attempt)b::int[], "
    "%(kind)b::text[], %(data)b::text[], %(at)b::float8[], %(applied)b::bool[], %(note)b::text[]) "
    "WITH ORDINALITY AS u(t, n, k, d, a, ap, nt, i) ORDER BY i"
)


def moved_record(task_id: str, attempt: int, data: dict[str, str], now: float) -> dict[str, Any]:
    """The ``moved`` event row: the control plane's record that a task's next attempt runs on another target."""
    return {
        "task_id": task_id,
        "attempt": attempt,
        "kind": EventKind.MOVED.value,
        "data": json.dumps(data),
        "at": now,
        "applied": True,
        "note": f"moved from {data['from']} to {data['to']} ({data['kind']})",
        "created_at": now,
    }


def _decide(conn: Connection, task: Task | None, event: Event, now: float, limits: Limits) -> Outcome:
    if task is None:
        outcome = Outcome(False, "unknown task")
    elif task.task_status.terminal:
        outcome = Outcome(False, f"task already {task.status}")
    elif task.task_status is TaskStatus.QUEUED:
        outcome = Outcome(False, f"attempt {event.attempt} already ended; the task is queued again")
    elif event.kind is EventKind.MOVED:
        outcome = Outcome(False, "moved events are the control plane's own")
    elif event.attempt != task.attempt:
        outcome = Outcome(False, f"stale attempt {event.attempt} (task is on attempt {task.attempt})")
    else:
        outcome = _apply(conn, task, event, now, limits)
    return outcome


def _apply(conn: Connection, task: Task, event: Event, now: float, limits: Limits) -> Outcome:
    data = event.data
    if event.kind is EventKind.STARTED:
        if task.task_status is TaskStatus.RUNNING:
            return Outcome(False, "already running")
        started = float(data.get("started_at") or event.at)
        ok = move(conn, task, TaskStatus.RUNNING, now, start_time=started, handle=data.get("handle"))
        return Outcome(ok, None if ok else "status changed concurrently")
    if event.kind is EventKind.EXITED:
        return _exited(conn, task, event, now)
    reason = Reason.LAUNCH_FAILED if event.kind is EventKind.LAUNCH_FAILED else Reason.LOST
    if data.get("reason") in _INFRA_REASONS:
        reason = Reason(str(data["reason"]))  # a more precise cause the provider found (engine_restarted)
    message = str(data.get("message") or reason.value)
    kind = data.get("kind")
    if kind in placement.MOVABLE_KINDS and not task.cancel_requested:
        moved = _move_elsewhere(conn, task, str(kind), message, now, limits)
        if moved is not None:
            return moved
    return _infra_failure(conn, task, reason, message, bool(data.get("retryable", True)), now, limits)


def _move_elsewhere(
    conn: Connection, task: Task, kind: str, message: str, now: float, limits: Limits
) -> Outcome | None:
    """Count the failure against the target's breaker; queue the task on its next target if it has one.

    The next attempt goes at once (no backoff: it is another cloud), to the first target after the current one
    whose breaker is not open. None when there is none: the failure is handled as any infrastructure failure.
    """
    breaker.failed(conn, task.target, kind, message, now, limits)
    if not task.placement:
        return None
    where = placement.loads(task.placement, task.target)
    nxt = placement.next_target(where, task.target, breaker.open_targets(conn, now))
    if nxt is None:
        return None
    ok = move(
        conn,
        task,
        TaskStatus.QUEUED,
        now,
        target=nxt,
        infra_failures=task.infra_failures + 1,
        run_at=now,
        msg=f"attempt {task.attempt} on {task.target} failed ({kind}): {message}; moved to {nxt}",
        handle=None,
        start_time=None,
    )
    if not ok:
        return Outcome(False, "status changed concurrently")
    return Outcome(
        True, f"moved to {nxt} ({kind})", moved={"from": task.target, "to": nxt, "kind": kind, "message": message}
    )


def _exited(conn: Connection, task: Task, event: Event, now: float) -> Outcome:
    data = event.data
    exit_code = data.get("exit_code")
    stopped = data.get("stopped")
    msg = data.get("message")
    if stopped == "cancel":
        status, reason = TaskStatus.CANCELLED, Reason.CANCELLED
        msg = msg or "cancelled by user"
    elif stopped == "timeout":
        status, reason = TaskStatus.TIMEOUT, Reason.TIMEOUT
        msg = msg or f"timed out after {task.timeout}s"
    elif data.get("oom"):
        status, reason = TaskStatus.ERROR, Reason.OOM
        msg = msg or "out of memory: the container exceeded its memory limit and was killed"
    elif exit_code == 0:
        status, reason = TaskStatus.COMPLETE, None
    else:
        status, reason = TaskStatus.ERROR, Reason.EXIT
        msg = msg or f"exited with code {exit_code}"
    start = data.get("started_at") or task.start_time
    end = float(data.get("finished_at") or event.at)
    fields: dict[str, Any] = {
        "reason": reason.value if reason else None,
        "msg": msg,
        "exit_code": exit_code,
        "log_size": int(data.get("log_size") or 0),
        "log_truncated": bool(data.get("log_truncated")),
        "result": data.get("result"),
        "start_time": float(start) if start is not None else None,
        "end_time": end,
        "handle": data.get("handle") or task.handle,
    }
    if not move(conn, task, status, now, **fields):
        return Outcome(False, "status changed concurrently")
    retry_id = None
    if status in (TaskStatus.ERROR, TaskStatus.TIMEOUT) and task.retry_count < task.retries:
        retry_id = create_retry(conn, task, now, delay=float(task.retries_delay))
    return Outcome(True, None, retry_id)


#: Reasons a runner may name in the ``reason`` of a ``lost`` or ``launch_failed`` event.
_INFRA_REASONS = frozenset({Reason.LAUNCH_FAILED.value, Reason.LOST.value, Reason.ENGINE_RESTARTED.value})
_INFRA_KINDS = (EventKind.LAUNCH_FAILED.value, EventKind.LOST.value)


def outage_start(conn: Connection, task: Task, now: float) -> float:
    """When the task's current run of infrastructure failures began (``now`` if this is its first).

    The run begins at the first infrastructure failure since the task last started
    running: an attempt that ran (``start_time`` set) and then was lost opens a new
    window, so a task that runs for hours is not failed by a second engine restart.
    """
    if task.start_time is not None:
        return now
    e = s.events
    last_start = (
        select(func.coalesce(func.max(e.c.id), 0))
        .where(e.c.task_id == task.id, e.c.kind == EventKind.STARTED.value, e.c.applied.is_(True))
        .scalar_subquery()
    )
    first = conn.execute(
        select(func.min(e.c.created_at)).where(
            e.c.task_id == task.id, e.c.applied.is_(True), e.c.kind.in_(_INFRA_KINDS), e.c.id > last_start
        )
    ).scalar()
    return float(first) if first is not None else now


def _infra_failure(
    conn: Connection, task: Task, reason: Reason, message: str, retryable: bool, now: float, limits: Limits
) -> Outcome:
    failures = task.infra_failures + 1
    if task.cancel_requested:
        ok = move(
            conn, task, TaskStatus.CANCELLED, now, reason=Reason.CANCELLED.value, msg=message, infra_failures=failures
        )
        return Outcome(ok, None if ok else "status changed concurrently")
    # The budget is time, not a count: an engine restart or an outage of a few minutes makes many quick
    # failures, and none of them is the task's fault.
    if retryable and now - outage_start(conn, task, now) < limits.infra_retry_window:
        ok = move(
            conn,
            task,
            TaskStatus.QUEUED,
            now,
            infra_failures=failures,
            run_at=now + infra_backoff(failures),
            msg=f"attempt {task.attempt} {reason.value}: {message}; relaunching",
            handle=None,
            start_time=None,
        )
        return Outcome(ok, None if ok else "status changed concurrently")
    if retryable:
        message = f"{message} (infrastructure failures retried for {limits.infra_retry_window:g} s)"
    ok = move(conn, task, TaskStatus.ERROR, now, reason=reason.value, msg=message, infra_failures=failures)
    return Outcome(ok, None if ok else "status changed concurrently")


def create_retry(conn: Connection, task: Task, now: float, *, delay: float) -> str:
    """Queue a new task that retries ``task`` (same code revision, payload and options); return its id."""
    new = new_id()
    row = conn.execute(select(s.tasks).where(s.tasks.c.id == task.id)).mappings().one()
    values = {c: row[c] for c in _COPIED}
    if row["placement"]:
        values["target"] = placement.loads(row["placement"], row["target"]).first  # a retry starts at the top again
    values.update(
        id=new,
        status=TaskStatus.QUEUED.value,
        delay=int(delay),
        run_at=now + delay,
        retry_count=task.retry_count + 1,
        retry_of=task.id,
        created_at=now,
        updated_at=now,
    )
    conn.execute(insert(s.tasks).values(**values))
    conn.execute(update(s.tasks).where(s.tasks.c.id == task.id).values(retried_by=new))
    return new


_COPIED = (
    "project_id",
    "code_id",
    "code_name",
    "code_rev",
    "revision_id",
    "payload",
    "env",
    "secrets",
    "priority",
    "timeout",
    "target",
    "label",
    "retries",
    "retries_delay",
    "schedule_id",
    "webhook",
    "placement",
)


def cancel_queued(conn: Connection, task: Task, now: float) -> bool:
    """Cancel a task that holds no container yet; False if it already moved on."""
    return move(conn, task, TaskStatus.CANCELLED, now, reason=Reason.CANCELLED.value, msg="cancelled by user")


def cancel_queued_of_code(conn: Connection, code_id: str, now: float) -> int:
    """Cancel every queued task of a code in one statement; returns how many."""
    rows = conn.execute(
        update(s.tasks)
        .where(s.tasks.c.code_id == code_id, s.tasks.c.status == TaskStatus.QUEUED.value)
        .values(
            status=TaskStatus.CANCELLED.value,
            reason=Reason.CANCELLED.value,
            msg="cancelled by user",
            end_time=now,
            updated_at=now,
        )
        .returning(s.tasks.c.id, s.tasks.c.project_id, s.tasks.c.webhook)
    ).all()
    _ended(conn, [Ended(*row) for row in rows], TaskStatus.CANCELLED, now)
    return len(rows)


def holds_slot(status: TaskStatus) -> bool:
    """True for the statuses that count against max concurrency."""
    return status in ACTIVE_STATUSES
