"""On PostgreSQL, a target whose queue is a table of the store gets its task messages in the dispatch transaction.

No outbox flag, no publish pass: the move to ``preparing`` and the message commit together,
or (a crash before the commit) neither does.
"""

from __future__ import annotations

import json
import time

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.config import Limits
from mayfly.core.router import Inline, dispatch, inline_targets, publish
from mayfly.core.tasks import TaskOptions


class Crash(Exception):
    pass


def _inline(mf: Mayfly) -> Inline:
    direct = inline_targets(mf.store, {"null": mf.queues_for("null")})
    assert list(direct) == ["null"]
    return Inline(direct, Limits())


def test_dispatch_sends_the_messages_of_a_store_queue_itself(null_on_pg: tuple[Mayfly, str]) -> None:
    mf, pid = null_on_pg
    queued = mf.tasks.queue_many(pid, "noop", ['{"n": 1}', '{"n": 2}', '{"n": 3}'], TaskOptions())

    chosen = dispatch(mf.store, {"null": 10}, time.time(), inline=_inline(mf))

    assert sorted(d.task_id for d in chosen) == sorted(t.id for t in queued)
    tasks = [mf.tasks.get(pid, t.id) for t in queued]
    assert {(t.status, t.attempt, t.dispatch_pending) for t in tasks} == {("preparing", 1, False)}
    messages = mf.queues_for("null").get("tasks").receive(10)
    bodies = sorted((json.loads(m.body)["task_id"], json.loads(m.body)["payload"]) for m in messages)
    assert bodies == sorted((t.id, t.payload) for t in queued)
    # Nothing is left for the outbox to send.
    assert publish(mf.store, lambda target: mf.queues_for(target).get("tasks"), Limits()) == 0


def test_a_crash_before_the_commit_leaves_neither_the_move_nor_the_message(null_on_pg: tuple[Mayfly, str]) -> None:
    mf, pid = null_on_pg
    queued = mf.tasks.queue_many(pid, "noop", ["{}", "{}"], TaskOptions())

    def crash_after_sending(point: str) -> None:
        if point == "router.sent_inline":
            raise Crash(point)

    with pytest.raises(Crash):
        dispatch(mf.store, {"null": 10}, time.time(), crash_after_sending, inline=_inline(mf))

    assert {mf.tasks.get(pid, t.id).status for t in queued} == {"queued"}
    assert mf.queues_for("null").get("tasks").depth() == 0
    # The next pass dispatches them once.
    assert len(dispatch(mf.store, {"null": 10}, time.time(), inline=_inline(mf))) == 2
    assert mf.queues_for("null").get("tasks").depth() == 2


def test_what_a_crash_left_in_the_outbox_is_sent_by_the_periodic_look(null_on_pg: tuple[Mayfly, str]) -> None:
    """With every target inline, a busy pass reads no outbox; the look made once per idle wait does."""
    mf, pid = null_on_pg
    # Dispatched the outbox way (a control plane that died before its publish pass, or an older Mayfly).
    left = mf.tasks.queue(pid, "noop", "{}", TaskOptions())
    assert [d.task_id for d in dispatch(mf.store, {"null": 10}, time.time())] == [left.id]
    assert mf.tasks.get(pid, left.id).dispatch_pending
    control = mf.control_plane(["null"])
    tasks_q = mf.queues_for("null").get("tasks")

    control.step(periodic=False)
    assert tasks_q.depth() == 0

    control.step(periodic=True)
    assert [json.loads(m.body)["task_id"] for m in tasks_q.receive(10)] == [left.id]
    assert not mf.tasks.get(pid, left.id).dispatch_pending
