"""The router: due tasks only, priority then FIFO, per-code and per-target limits, and the outbox."""

from __future__ import annotations

import json
from pathlib import Path

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeResolver
from mayfly.core.config import Home
from mayfly.core.messages import Event, EventKind, TaskMessage
from mayfly.core.router import dispatch, publish
from mayfly.core.store import now
from mayfly.core.tasks import TaskOptions


def _code(mf: Mayfly, project: str, name: str = "img", **opts: object) -> None:
    mf.codes.register(project, name, "mayfly-test/busybox:latest", CodeOptions(command="true", **opts))  # type: ignore[arg-type]


def test_priority_then_fifo(mf: Mayfly, project: str) -> None:
    _code(mf, project)
    low1 = mf.tasks.queue(project, "img", "{}", TaskOptions())
    high = mf.tasks.queue(project, "img", "{}", TaskOptions(priority=2))
    low2 = mf.tasks.queue(project, "img", "{}", TaskOptions())
    mid = mf.tasks.queue(project, "img", "{}", TaskOptions(priority=1))
    order = [d.task_id for d in dispatch(mf.store, {"local": 10}, now())]
    assert order == [high.id, mid.id, low1.id, low2.id]


def test_delayed_tasks_wait(mf: Mayfly, project: str) -> None:
    _code(mf, project)
    later = mf.tasks.queue(project, "img", "{}", TaskOptions(delay=60))
    assert dispatch(mf.store, {"local": 10}, now()) == []
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now() + 61)] == [later.id]


def test_max_concurrency_per_code_and_capacity_per_target(mf: Mayfly, project: str) -> None:
    _code(mf, project, "two", max_concurrency=2)
    _code(mf, project, "free")
    two = [mf.tasks.queue(project, "two", "{}", TaskOptions()) for _ in range(4)]
    free = [mf.tasks.queue(project, "free", "{}", TaskOptions()) for _ in range(4)]
    first = [d.task_id for d in dispatch(mf.store, {"local": 5}, now())]
    assert first == [two[0].id, two[1].id, free[0].id, free[1].id, free[2].id]
    assert dispatch(mf.store, {"local": 5}, now()) == []  # both limits are full


def test_paused_code_holds_its_tasks(mf: Mayfly, project: str) -> None:
    _code(mf, project)
    task = mf.tasks.queue(project, "img", "{}", TaskOptions())
    mf.codes.set_paused(project, "img", True)
    assert dispatch(mf.store, {"local": 10}, now()) == []
    mf.codes.set_paused(project, "img", False)
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [task.id]


def test_outbox_sends_each_dispatched_attempt_and_survives_a_crash(mf: Mayfly, project: str) -> None:
    _code(mf, project, env={"A": "1"})
    task = mf.tasks.queue(project, "img", '{"n": 7}', TaskOptions(env={"B": "2"}))
    dispatch(mf.store, {"local": 10}, now())
    q = mf.queues_for("local").get("tasks")
    # A crash before publish: the flag stays set, so the next publish sends.
    assert q.depth() == 0
    assert publish(mf.store, lambda t: q, mf.limits) == 1
    assert publish(mf.store, lambda t: q, mf.limits) == 0
    (m,) = q.receive(10)
    msg = TaskMessage.from_dict(json.loads(m.body))
    assert (msg.task_id, msg.attempt, msg.payload, msg.env) == (task.id, 1, '{"n": 7}', {"A": "1", "B": "2"})
    assert msg.name == f"mayfly-{task.id}-1"
    assert mf.tasks.get(project, task.id).status == "preparing"


def test_new_work_wakes_a_sleeping_control_plane_of_another_instance(
    mf: Mayfly, project: str, home: Path, resolver: RuntimeResolver
) -> None:
    """Queueing rings the router bell of the home, so a server's control plane dispatches at once.

    The second Mayfly stands in for another process (a CLI) on the same home: the bell is a
    datagram to every listener of the home, not an in-process event.
    """
    _code(mf, project)
    control = mf.control_plane()
    assert control.wait_for_work is not None
    assert control.wait_for_work(0.0) is False  # binds the listeners; nothing rang yet
    other = Mayfly(Home(home), resolver)
    try:
        task = other.tasks.queue(project, "img", "{}", TaskOptions())
        assert control.wait_for_work(30.0) is True  # woken by the ring, not by the timeout
        assert control.step() >= 1
        assert mf.tasks.get(project, task.id).status == "preparing"
        # A retry rings too; an event sent to the target's events queue wakes it as well.
        assert control.wait_for_work(0.0) is False
        mf.queues_for("local").get("events").send(Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 0}).dumps())
        assert control.wait_for_work(30.0) is True
        control.step()
        other.tasks.retry(project, task.id)
        assert control.wait_for_work(30.0) is True
    finally:
        other.close()


def test_a_backlog_at_its_max_concurrency_does_not_hide_the_tasks_behind_it(mf: Mayfly, project: str) -> None:
    """More queued tasks of a full code than one page of the scan: the other code's task still starts."""
    from mayfly.core.router import SCAN_LIMIT

    _code(mf, project, "one", max_concurrency=1)
    _code(mf, project, "other")
    busy = mf.tasks.queue_many(project, "one", ["{}"] * (SCAN_LIMIT + 1), TaskOptions())
    other = mf.tasks.queue(project, "other", "{}", TaskOptions())
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [busy[0].id, other.id]
    assert dispatch(mf.store, {"local": 10}, now()) == []


def test_tasks_waiting_for_others_do_not_hide_the_task_behind_them(mf: Mayfly, project: str) -> None:
    """Pages start at the room's size and double past tasks that wait for another task to end."""
    from sqlalchemy import event, update

    from mayfly.core.router import SCAN_FIRST
    from mayfly.core.store import schema as s
    from mayfly.core.validate import PRIORITIES

    _code(mf, project)
    blocker = mf.tasks.queue(project, "img", "{}", TaskOptions(delay=3600))
    waiting = mf.tasks.queue_many(project, "img", ["{}"] * (3 * SCAN_FIRST + 5), TaskOptions())
    with mf.store.write() as conn:
        conn.execute(update(s.tasks).where(s.tasks.c.id.in_([t.id for t in waiting])).values(wait_for=blocker.id))
    free = mf.tasks.queue(project, "img", "{}", TaskOptions())
    scans: list[str] = []

    def count(conn: object, cursor: object, statement: str, params: object, context: object, many: bool) -> None:
        if "tasks.wait_for" in statement:
            scans.append("page")
        elif statement.startswith("SELECT tasks.status") and "tasks.id =" in statement:
            scans.append("lookup")

    event.listen(mf.store.engine, "before_cursor_execute", count)
    try:
        chosen = dispatch(mf.store, {"local": 1}, now())
    finally:
        event.remove(mf.store.engine, "before_cursor_execute", count)
    assert [d.task_id for d in chosen] == [free.id]
    # The empty higher priorities take a page each; then pages of 32, 64 and 128 rows where pages of 32
    # would take five, and the task they all wait for is looked up once, not once per waiting task.
    assert scans.count("page") == len(PRIORITIES) - 1 + 3
    assert scans.count("lookup") == 1
