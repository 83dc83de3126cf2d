"""The router: due tasks only, priority then FIFO, per-code and per-target limits, and the outbox."""

from __future__ import annotations

import json

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.messages import TaskMessage
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
