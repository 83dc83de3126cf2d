"""On PostgreSQL, events from a queue in the store are taken, applied and deleted in one transaction.

One control plane at a time holds a target's events claim and takes the whole batch; a batch
whose apply fails is left as it was, and the next passes lease instead, so an event that
never applies is counted and dead-lettered as before.
"""

from __future__ import annotations

import time

import pytest

from mayfly.core import control as control_module
from mayfly.core.app import Mayfly
from mayfly.core.control import ControlPlane
from mayfly.core.messages import Event, EventKind
from mayfly.core.queues.store import StoreQueue
from mayfly.core.store import events_claim
from mayfly.core.tasks import Task, TaskOptions


def _running(mf: Mayfly, pid: str, n: int) -> tuple[ControlPlane, list[Task]]:
    """``n`` tasks dispatched (attempt 1, ``preparing``) and a control plane for their target."""
    queued = mf.tasks.queue_many(pid, "noop", ["{}"] * n, TaskOptions())
    control = mf.control_plane(["null"])
    control.step()
    return control, queued


def _exited(mf: Mayfly, tasks: list[Task]) -> StoreQueue:
    events = mf.queues_for("null").get("events")
    assert isinstance(events, StoreQueue)
    events.send_many([Event(t.id, 1, EventKind.EXITED, time.time(), {"exit_code": 0}).dumps() for t in tasks])
    return events


def _statuses(mf: Mayfly, pid: str, tasks: list[Task]) -> set[str]:
    return {mf.tasks.get(pid, t.id).status for t in tasks}


def test_a_batch_is_taken_applied_and_deleted_without_a_lease(null_on_pg: tuple[Mayfly, str]) -> None:
    mf, pid = null_on_pg
    control, tasks = _running(mf, pid, 3)
    events = _exited(mf, tasks)

    assert control.apply_events("null", control.targets["null"]) == 3

    assert _statuses(mf, pid, tasks) == {"complete"}
    assert events.depth() == 0


def test_while_another_holds_the_claim_the_events_are_left_for_it(null_on_pg: tuple[Mayfly, str]) -> None:
    mf, pid = null_on_pg
    control, tasks = _running(mf, pid, 2)
    events = _exited(mf, tasks)

    with mf.store.write() as conn:  # another control plane, in the middle of applying this target's events
        assert mf.store.try_claim(conn, events_claim("null"))
        assert control.apply_events("null", control.targets["null"]) == 0
    assert events.depth() == 2
    assert _statuses(mf, pid, tasks) == {"preparing"}

    assert control.apply_events("null", control.targets["null"]) == 2
    assert _statuses(mf, pid, tasks) == {"complete"}


def test_an_event_that_never_applies_is_dead_lettered_then_applied_from_there(
    null_on_pg: tuple[Mayfly, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    mf, pid = null_on_pg
    control, tasks = _running(mf, pid, 1)
    events = _exited(mf, tasks)
    real = control_module.apply_events

    def refuse(*args: object, **kwargs: object) -> object:
        raise RuntimeError("the apply fails")

    monkeypatch.setattr(control_module, "apply_events", refuse)
    with pytest.raises(RuntimeError):
        control.apply_events("null", control.targets["null"])
    # Rolled back: the message is as it was, visible at once, no delivery counted.
    with mf.store.read() as conn:
        taken = events.take_in(conn, 10)
    assert [m.deliveries for m in taken] == [0]

    # From now on leased receives, each counted, until the message moves to the dead letters.
    for _ in range(events.broker.max_deliveries):
        with pytest.raises(RuntimeError):
            control.apply_events("null", control.targets["null"])
    assert control.apply_events("null", control.targets["null"]) == 0  # its next receive moved it
    assert events.depth() == 0
    assert _statuses(mf, pid, tasks) == {"preparing"}

    monkeypatch.setattr(control_module, "apply_events", real)
    assert control.drain_dead_letters("null", control.targets["null"]) == 1
    assert _statuses(mf, pid, tasks) == {"complete"}
