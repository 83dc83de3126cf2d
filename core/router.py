"""The router: decides which queued tasks may start now and hands them to their target's queue.

A task may start when it is due (its delay or retry delay has passed), its code
is not paused, its code is under ``max_concurrency`` and its target is under
``capacity``. Among startable tasks the order is priority (2 first), then FIFO.
Capacity is counted per target: a task that moved to a fallback target counts
against that one (its ``target`` column is rewritten by the move). A due task whose
target's circuit breaker is open moves to its next target first (:func:`skip_open`);
a half-open target takes one task at a time (:mod:`mayfly.core.breaker`).

Dispatch is an outbox: one write transaction moves the chosen tasks to
``preparing``, increments their attempt and flags them ``dispatch_pending``;
:func:`publish` then sends the task messages and clears the flag. A crash between
the two leaves the flag set and the next :func:`publish` sends again; a message
sent twice is harmless because launches are idempotent per (task, attempt). A target
whose queue is a table of the PostgreSQL store itself needs no outbox: its messages
are inserted in the dispatch transaction (:class:`Inline`).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, insert, select, text, true, update

from mayfly.core import breaker, placement
from mayfly.core.breaker import Breaker, BreakerState
from mayfly.core.config import Limits
from mayfly.core.errors import StoreUnavailable
from mayfly.core.faults import fault_point
from mayfly.core.lifecycle import moved_record
from mayfly.core.messages import TaskMessage
from mayfly.core.models import CodeRef, TaskStatus
from mayfly.core.queues import Queue, QueueSet
from mayfly.core.queues.store import StoreQueue, StoreQueueSet
from mayfly.core.records import Revision, Task, iso
from mayfly.core.secrets import load_sealed
from mayfly.core.store import DISPATCH_CLAIM, Store
from mayfly.core.store import schema as s
from mayfly.core.validate import PRIORITIES

#: The most queued rows one page of a dispatch pass's scan reads (per target and priority).
SCAN_LIMIT = 1000
#: The smallest first page: a pass with room for a few tasks reads a few rows, not a thousand.
SCAN_FIRST = 32


@dataclass(frozen=True)
class Dispatched:
    task_id: str
    target: str


def _active_counts(conn: Connection) -> tuple[Counter[str], Counter[str]]:
    """Tasks holding a slot, per target and per code, from one read of the active tasks."""
    per_target: Counter[str] = Counter()
    per_code: Counter[str] = Counter()
    t = s.tasks.c
    for target, code_id, n in conn.execute(
        select(t.target, t.code_id, func.count()).where(text(s.ACTIVE)).group_by(t.target, t.code_id)
    ):
        per_target[str(target)] += int(n)
        per_code[str(code_id)] += int(n)
    return per_target, per_code


@dataclass(frozen=True)
class Inline:
    """Targets whose task queue is a table of the store itself: their messages go in the dispatch transaction."""

    #: Each such target's tasks queue.
    queues: dict[str, StoreQueue]
    limits: Limits
    #: Called for each message's code package before it is sent (see :func:`publish`).
    ensure_code: Callable[[str, CodeRef], None] | None = None


def inline_targets(store: Store, queues: Mapping[str, QueueSet]) -> dict[str, StoreQueue]:
    """The targets (of ``queues``: target → its queue set) whose tasks queue is a table of ``store``."""
    return {
        t: qs.get("tasks") for t, qs in queues.items() if isinstance(qs, StoreQueueSet) and qs.broker.store is store
    }


def dispatch(
    store: Store,
    targets: dict[str, int],
    now: float,
    on_fault: Callable[[str], None] = fault_point,
    *,
    inline: Inline | None = None,
) -> list[Dispatched]:
    """Move every task that may start now to ``preparing``; return what was chosen.

    ``targets`` maps each target this control plane serves to its capacity. Several control
    planes on one PostgreSQL store take turns (:data:`DISPATCH_CLAIM`): slots are counted and
    taken by one process at a time, so per-code max concurrency and per-target capacity hold
    across all of them; a process that finds the claim taken skips this pass.

    The tasks of ``inline`` targets (their queue is a table of this PostgreSQL store) get their
    messages in this same transaction instead of the outbox: the status change and the message
    commit together, and the flag, the publish pass's read and its clearing write are saved.
    """
    chosen: list[Dispatched] = []
    sent: dict[str, StoreQueue] = {}
    with store.write() as conn:
        if not store.try_claim(conn, DISPATCH_CLAIM):
            return chosen  # another control plane is dispatching right now; its pass covers these tasks
        if store.is_postgres and not any_due(conn, list(targets), now):
            return chosen  # (on SQLite the control plane looked before taking the write lock)
        breakers = breaker.load(conn)
        open_now = {n for n, b in breakers.items() if b.state(now) is BreakerState.OPEN}
        half_open = {n for n, b in breakers.items() if b.state(now) is BreakerState.HALF_OPEN}
        if open_now:
            skip_open(conn, [t for t in targets if t in open_now], open_now, breakers, now)
        per_target, per_code = _active_counts(conn)
        on_fault("router.counted")
        limits: dict[str, int | None] = {}
        paused: set[str] = {row[0] for row in conn.execute(select(s.codes.c.id).where(s.codes.c.paused.is_(True)))}
        #: Revisions whose code is at its max concurrency in this pass: their queued tasks are left out of the scan.
        full: set[str] = set()
        #: Whether a task that others wait for has ended, looked up once per pass.
        ended: dict[str, bool] = {}
        for target, capacity in targets.items():
            room = capacity - per_target[target]
            if target in half_open:
                room = min(room, 1 - per_target[target])  # one trial launch at a time until it works or fails
            # One scan per priority, highest first: each walks ix_tasks_queued (target, priority, id) in
            # order, a page at a time. A single ORDER BY priority DESC, id sorts every queued row of the
            # target in a temporary B-tree on each pass (id ascends where priority descends).
            # Paused codes and full revisions are left out in SQL, and the scan pages on while there is room,
            # so a backlog that cannot start (any number of a paused code's tasks) never hides the tasks
            # behind it. The first page is sized by the room (a busy pass frees a few slots; reading a
            # thousand rows for them was most of its cost); pages double up to SCAN_LIMIT past tasks that
            # wait for others, so a long blocked backlog still takes few statements.
            for priority in PRIORITIES:
                after = ""
                page = min(SCAN_LIMIT, max(SCAN_FIRST, 2 * room))
                while room > 0:
                    rows = conn.execute(
                        _SCAN,
                        {
                            **{"target": target, "priority": priority, "now": now, "after": after},
                            **{"paused": sorted(paused), "full": sorted(full), "n": page},
                        },
                    ).all()
                    for task_id, code_id, revision_id, wait_for in rows:
                        if room <= 0:
                            break
                        if revision_id in full:
                            continue
                        if wait_for is not None:
                            if wait_for not in ended:
                                ended[wait_for] = _ended(conn, wait_for)
                            if not ended[wait_for]:
                                continue
                        if revision_id not in limits:
                            limits[revision_id] = conn.execute(
                                select(s.code_revisions.c.max_concurrency).where(s.code_revisions.c.id == revision_id)
                            ).scalar_one()
                        cap = limits[revision_id]
                        if cap is not None and per_code[code_id] >= cap:
                            full.add(revision_id)
                            continue
                        per_code[code_id] += 1
                        room -= 1
                        chosen.append(Dispatched(task_id, target))
                    if len(rows) < page:
                        break
                    after = rows[-1][0]
                    page = min(SCAN_LIMIT, 2 * page)
        if chosen:
            # One statement (PostgreSQL: the ids as an array) or one executemany (SQLite); the status
            # guard keeps it a compare-and-set per row.
            direct = inline.queues if inline is not None and store.is_postgres else {}
            outbox = [d.task_id for d in chosen if d.target not in direct]
            at_once = [d.task_id for d in chosen if d.target in direct]
            moved = 0
            if outbox and store.is_postgres:
                moved += conn.exec_driver_sql(_TO_PREPARING_PG, {"now": now, "ids": outbox}).rowcount
            elif outbox:
                moved += conn.execute(
                    _TO_PREPARING.values(dispatched_at=now, updated_at=now), [{"tid": t} for t in outbox]
                ).rowcount
            if at_once and inline is not None:
                moved += _send_inline(conn, at_once, now, inline, sent)
                on_fault("router.sent_inline")
            if moved != len(chosen):  # pragma: no cover - a cancel committed between the scan and here
                raise StoreUnavailable("dispatch raced a change of a queued task; retrying on the next pass")
    for queue in sent.values():  # after the commit: wake this home's runners (other machines hear NOTIFY)
        queue.broker.notify(queue.name)
    return chosen


def any_due(conn: Connection, targets: Sequence[str], now: float) -> bool:
    """Whether a queued task of ``targets`` is due at ``now`` (one row of an index, no lock)."""
    row = conn.execute(
        select(s.tasks.c.id)
        .where(
            and_(
                s.tasks.c.status == TaskStatus.QUEUED.value,
                s.tasks.c.target.in_(list(targets)),
                s.tasks.c.run_at <= now,
            )
        )
        .limit(1)
    ).first()
    return row is not None


def _send_inline(conn: Connection, ids: list[str], now: float, inline: Inline, sent: dict[str, StoreQueue]) -> int:
    """Move ``ids`` to ``preparing`` and insert their task messages in the caller's transaction; how many moved."""
    rows = conn.exec_driver_sql(_TO_PREPARING_INLINE_PG, {"now": now, "ids": ids}).mappings().all()
    tasks = [Task.from_row(r) for r in rows]
    wanted = sorted({t.revision_id for t in tasks})
    revisions = {
        r.id: r
        for r in (
            Revision.from_row(row)
            for row in conn.execute(select(s.code_revisions).where(s.code_revisions.c.id.in_(wanted))).mappings()
        )
    }
    by_target: dict[str, list[str]] = {}
    for task in tasks:
        msg = build_message(task, revisions[task.revision_id], inline.limits)
        if inline.ensure_code is not None and msg.code is not None:
            inline.ensure_code(task.target, msg.code)
        by_target.setdefault(task.target, []).append(msg.dumps())
    for target, bodies in by_target.items():
        inline.queues[target].insert_in(conn, bodies)
        sent[target] = inline.queues[target]
    return len(tasks)


_SCAN = (
    select(s.tasks.c.id, s.tasks.c.code_id, s.tasks.c.revision_id, s.tasks.c.wait_for)
    .where(
        and_(
            s.tasks.c.status == TaskStatus.QUEUED.value,
            s.tasks.c.target == bindparam("target"),
            s.tasks.c.priority == bindparam("priority"),
            s.tasks.c.run_at <= bindparam("now"),
            s.tasks.c.id > bindparam("after"),
            s.tasks.c.code_id.not_in(bindparam("paused", expanding=True)),
            s.tasks.c.revision_id.not_in(bindparam("full", expanding=True)),
        )
    )
    .order_by(s.tasks.c.id)
    .limit(bindparam("n"))
)

_TO_PREPARING = (
    update(s.tasks)
    .where(s.tasks.c.id == bindparam("tid"), s.tasks.c.status == TaskStatus.QUEUED.value)
    .values(status=TaskStatus.PREPARING.value, attempt=s.tasks.c.attempt + 1, dispatch_pending=True)
)


_TO_PREPARING_PG = (
    "UPDATE tasks SET status = 'preparing', attempt = attempt + 1, dispatch_pending = true, "
    "dispatched_at = %(now)s, updated_at = %(now)s WHERE id = ANY(%(ids)b::text[]) AND status = 'queued'"
)
#: The same move for tasks whose messages are inserted in the same transaction: no flag, and the rows come back.
_TO_PREPARING_INLINE_PG = (
    "UPDATE tasks SET status = 'preparing', attempt = attempt + 1, dispatched_at = %(now)s, updated_at = %(now)s "
    "WHERE id = ANY(%(ids)b::text[]) AND status = 'queued' RETURNING *"
)
#: Clears the flag of the tasks whose messages were sent, in one statement. No attempt guard is needed:
#: the rows are locked (``FOR UPDATE``) by the same transaction since they were read, so their attempt
#: cannot have changed. (A join against ``unnest`` of the pairs was planned as a scan of every task.)
_SENT_PG = "UPDATE tasks SET dispatch_pending = false WHERE id = ANY(%(ids)b::text[])"


def skip_open(
    conn: Connection, targets: Sequence[str], open_now: set[str], breakers: dict[str, Breaker], now: float
) -> int:
    """Move the due queued tasks of open-breaker ``targets`` that have another target to it; return how many.

    Each move is a compare-and-set on (status, target) and is recorded as a ``moved`` event of kind
    ``breaker``. Tasks with no other target (or whose others are open too) stay where they are.
    """
    moved = 0
    for target in targets:
        rows = conn.execute(_OPEN_SCAN, {"target": target, "now": now, "n": SCAN_LIMIT}).all()
        until = iso(breakers[target].open_until)
        events = []
        for task_id, attempt, stored in rows:
            nxt = placement.next_target(placement.loads(stored, target), target, open_now)
            if nxt is None:
                continue
            res = conn.execute(
                update(s.tasks)
                .where(s.tasks.c.id == task_id, s.tasks.c.status == TaskStatus.QUEUED.value, s.tasks.c.target == target)
                .values(target=nxt, updated_at=now)
            )
            if res.rowcount == 1:
                data = {
                    "from": target,
                    "to": nxt,
                    "kind": "breaker",
                    "message": f"{target}'s breaker is open until {until}",
                }
                events.append(moved_record(task_id, attempt, data, now))
        if events:
            conn.execute(insert(s.events), events)
            moved += len(events)
    return moved


_OPEN_SCAN = (
    select(s.tasks.c.id, s.tasks.c.attempt, s.tasks.c.placement)
    .where(
        and_(
            s.tasks.c.status == TaskStatus.QUEUED.value,
            s.tasks.c.target == bindparam("target"),
            s.tasks.c.run_at <= bindparam("now"),
            s.tasks.c.placement.is_not(None),
        )
    )
    .order_by(s.tasks.c.id)
    .limit(bindparam("n"))
)


def _ended(conn: Connection, task_id: str) -> bool:
    status = conn.execute(select(s.tasks.c.status).where(s.tasks.c.id == task_id)).scalar()
    return status is None or TaskStatus(status).terminal


def build_message(task: Task, rev: Revision, limits: Limits) -> TaskMessage:
    """The task message for the task's current attempt."""
    code = None
    if rev.kind == "zip" and rev.blob_key and rev.sha256:
        code = CodeRef(key=rev.blob_key, sha256=rev.sha256, size=rev.size)
    env = {**rev.env_dict, **json.loads(task.env)}
    sealed = {**load_sealed(rev.secrets), **load_sealed(task.secrets)}
    return TaskMessage(
        task_id=task.id,
        attempt=task.attempt,
        project_id=task.project_id,
        code_name=task.code_name,
        code_rev=task.code_rev,
        image=rev.image,
        command=rev.command,
        code=code,
        payload=task.payload,
        config=rev.config,
        env=env,
        timeout=task.timeout,
        cpu=rev.cpu,
        memory_mb=rev.memory_mb,
        network=rev.network,
        ironworker=rev.ironworker,
        has_boot=rev.kind == "zip",
        max_log_bytes=limits.max_log_bytes,
        max_result_bytes=limits.max_result_bytes,
        stop_grace_seconds=limits.stop_grace_seconds,
        secrets=sealed,
    )


def publish(
    store: Store,
    queue_for: Callable[[str], Queue],
    limits: Limits,
    batch: int = 500,
    ensure_code: Callable[[str, CodeRef], None] | None = None,
) -> int:
    """Send the task messages of every ``dispatch_pending`` task; return how many were sent.

    ``ensure_code(target, code)`` is called before a message goes out, so the code
    package is in the target's blob store before any runner looks for it.
    """
    if store.is_postgres:
        return _publish_claimed(store, queue_for, limits, batch, ensure_code)
    sent = 0
    while True:
        with store.read() as conn:
            rows = conn.execute(_PENDING.limit(batch)).all()
        if not rows:
            return sent
        by_target: dict[str, list[tuple[str, int, str]]] = {}
        revisions: dict[str, Revision] = {}
        for row in rows:
            task, rev = _split(row, revisions)
            msg = build_message(task, rev, limits)
            if ensure_code is not None and msg.code is not None:
                ensure_code(task.target, msg.code)
            by_target.setdefault(task.target, []).append((task.id, task.attempt, msg.dumps()))
        for target, items in by_target.items():
            queue_for(target).send_many([body for _, _, body in items])
            with store.write() as conn:
                conn.execute(
                    update(s.tasks)
                    .where(s.tasks.c.id == bindparam("tid"), s.tasks.c.attempt == bindparam("n"))
                    .values(dispatch_pending=False),
                    [{"tid": task_id, "n": attempt} for task_id, attempt, _ in items],
                )
            sent += len(items)
        if len(rows) < batch:
            return sent


_PENDING = (
    select(s.tasks, s.code_revisions)
    .join(s.code_revisions, s.code_revisions.c.id == s.tasks.c.revision_id)
    .where(s.tasks.c.dispatch_pending == true())
)


def _publish_claimed(
    store: Store,
    queue_for: Callable[[str], Queue],
    limits: Limits,
    batch: int,
    ensure_code: Callable[[str, CodeRef], None] | None,
) -> int:
    """:func:`publish` for several control planes on one store: each batch is claimed, sent, cleared in one go.

    The pending rows are locked (``FOR UPDATE OF tasks SKIP LOCKED``) while their messages
    are sent and the flag cleared in the same transaction: another control plane skips
    them instead of sending them a second time. A crash after the send and before the
    commit leaves the flag set, and the message is sent again (launches are idempotent).
    """
    sent = 0
    while True:
        with store.write() as conn:
            rows = conn.execute(
                _PENDING.order_by(s.tasks.c.id).limit(batch).with_for_update(of=s.tasks, skip_locked=True)
            ).all()
            if not rows:
                return sent
            revisions: dict[str, Revision] = {}
            by_target: dict[str, list[tuple[str, int, str]]] = {}
            for row in rows:
                task, rev = _split(row, revisions)
                msg = build_message(task, rev, limits)
                if ensure_code is not None and msg.code is not None:
                    ensure_code(task.target, msg.code)
                by_target.setdefault(task.target, []).append((task.id, task.attempt, msg.dumps()))
            for target, items in by_target.items():
                queue_for(target).send_many([body for _, _, body in items])
                conn.exec_driver_sql(_SENT_PG, {"ids": [task_id for task_id, _, _ in items]})
                sent += len(items)
        if len(rows) < batch:
            return sent


_TASK_COLUMNS = [c.name for c in s.tasks.columns]
_REVISION_COLUMNS = [c.name for c in s.code_revisions.columns]


def _split(row: Sequence[Any], revisions: dict[str, Revision]) -> tuple[Task, Revision]:
    """A ``tasks JOIN code_revisions`` row (tasks' columns first) as records; revisions are built once each."""
    n = len(_TASK_COLUMNS)
    task = Task.from_row(dict(zip(_TASK_COLUMNS, row[:n], strict=True)))
    rev = revisions.get(task.revision_id)
    if rev is None:
        rev = revisions[task.revision_id] = Revision.from_row(dict(zip(_REVISION_COLUMNS, row[n:], strict=True)))
    return task, rev


def targets_in_use(rows: Iterable[Task]) -> set[str]:
    """The targets of some tasks."""
    return {t.target for t in rows}
