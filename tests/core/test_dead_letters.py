"""Dead letters become task outcomes: a task message no runner finishes ends its attempt, a dead event is applied."""

from __future__ import annotations

import time

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.messages import Event, EventKind
from mayfly.core.queues.embedded import MAX_DELIVERIES
from mayfly.core.tasks import TaskOptions


def _queued(mf: Mayfly, project: str) -> str:
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    return mf.tasks.queue(project, "img", "{}", TaskOptions(retries=3)).id


def test_a_task_message_that_keeps_coming_back_ends_its_attempt_as_lost(mf: Mayfly, project: str) -> None:
    task_id = _queued(mf, project)
    control = mf.control_plane(["local"])
    control.step()  # dispatch and publish attempt 1
    tasks_q = mf.queues_for("local").get("tasks")
    # A runner that dies on the message every time: received, never acked, lease runs out.
    for _ in range(MAX_DELIVERIES):
        (_m,) = tasks_q.receive(1, wait=2.0, lease=0.05)
        time.sleep(0.06)
    assert tasks_q.receive(1, wait=0.2) == [], "the sixth receive moves it to the dead letters instead"
    dlq = tasks_q.dead_letters()
    assert dlq is not None
    assert dlq.depth() == 1
    control.drain_dead_letters("local", control.targets["local"])
    while control.step():
        pass
    task = mf.tasks.get(project, task_id)
    assert (task.status, task.reason) == ("error", "lost")
    assert "delivered too many times without a runner finishing it" in (task.msg or "")
    assert task.attempt == 1, "a message that keeps killing runners is not relaunched"
    assert dlq.depth() == 0


def test_a_dead_lettered_event_is_applied_not_dropped(mf: Mayfly, project: str) -> None:
    task_id = _queued(mf, project)
    control = mf.control_plane(["local"])
    control.step()
    tasks_q = mf.queues_for("local").get("tasks")
    (m,) = tasks_q.receive(1, wait=2.0)
    tasks_q.ack(m)
    events_dlq = mf.queues_for("local").get("events").dead_letters()
    assert events_dlq is not None
    now = time.time()
    events_dlq.send_many(
        [
            Event(task_id, 1, EventKind.STARTED, now, {"handle": "h", "started_at": now}).dumps(),
            Event(task_id, 1, EventKind.EXITED, now, {"exit_code": 0}).dumps(),
        ]
    )
    control.drain_dead_letters("local", control.targets["local"])
    assert mf.tasks.get(project, task_id).status == "complete"
    assert events_dlq.depth() == 0
