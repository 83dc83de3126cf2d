"""The status machine: terminal states never change, late events are recorded but ignored, retries."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.lifecycle import TRANSITIONS, apply_event, can_move, load_task
from mayfly.core.messages import Event, EventKind
from mayfly.core.models import TERMINAL_STATUSES, TaskStatus
from mayfly.core.records import Task
from mayfly.core.router import dispatch
from mayfly.core.store import now
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions


def test_terminal_statuses_have_no_way_out() -> None:
    for status in TERMINAL_STATUSES:
        assert status not in TRANSITIONS
        assert not any(can_move(status, other) for other in TaskStatus)


def _running_task(mf: Mayfly, project: str, **code: object) -> Task:
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(command="true", **code))  # type: ignore[arg-type]
    task = mf.tasks.queue(project, "img", "{}", TaskOptions())
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [task.id]
    _apply(mf, Event(task.id, 1, EventKind.STARTED, now(), {"handle": "h1"}))
    return mf.tasks.get(project, task.id)


def _apply(mf: Mayfly, event: Event) -> None:
    with mf.store.write() as conn:
        apply_event(conn, event, now(), mf.limits)


def _events(mf: Mayfly, task_id: str) -> list[tuple[str, bool, str | None]]:
    with mf.store.read() as conn:
        rows = conn.execute(
            select(s.events.c.kind, s.events.c.applied, s.events.c.note)
            .where(s.events.c.task_id == task_id)
            .order_by(s.events.c.id)
        ).all()
    return [(k, bool(a), n) for k, a, n in rows]


def test_started_then_exited_zero_completes(mf: Mayfly, project: str) -> None:
    task = _running_task(mf, project)
    assert task.status == "running"
    assert task.handle == "h1"
    assert task.attempt == 1
    _apply(mf, Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 0, "result": '{"ok": true}'}))
    done = mf.tasks.get(project, task.id)
    assert (done.status, done.reason, done.exit_code) == ("complete", None, 0)
    assert done.to_json()["result"] == {"ok": True}
    assert done.end_time is not None
    assert done.duration_ms is not None


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        ({"exit_code": 3}, "error", "exit"),
        ({"exit_code": 137, "oom": True}, "error", "oom"),
        ({"exit_code": 143, "stopped": "timeout"}, "timeout", "timeout"),
        ({"exit_code": 137, "stopped": "cancel"}, "cancelled", "cancelled"),
    ],
)
def test_exit_reasons(mf: Mayfly, project: str, data: dict[str, object], status: str, reason: str) -> None:
    task = _running_task(mf, project)
    _apply(mf, Event(task.id, 1, EventKind.EXITED, now(), data))
    done = mf.tasks.get(project, task.id)
    assert (done.status, done.reason, done.exit_code) == (status, reason, data["exit_code"])
    assert done.msg


def test_a_late_event_is_recorded_and_ignored(mf: Mayfly, project: str) -> None:
    task = _running_task(mf, project)
    _apply(mf, Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 137, "stopped": "cancel"}))
    # The container's own exit and a duplicate start arrive after the cancel was recorded.
    _apply(mf, Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 0}))
    _apply(mf, Event(task.id, 1, EventKind.STARTED, now(), {"handle": "h2"}))
    done = mf.tasks.get(project, task.id)
    assert (done.status, done.exit_code, done.handle) == ("cancelled", 137, "h1")
    assert _events(mf, task.id) == [
        ("started", True, None),
        ("exited", True, None),
        ("exited", False, "task already cancelled"),
        ("started", False, "task already cancelled"),
    ]


def test_an_event_of_an_older_attempt_is_ignored(mf: Mayfly, project: str) -> None:
    task = _running_task(mf, project)
    _apply(mf, Event(task.id, 1, EventKind.LOST, now(), {"message": "gone"}))
    assert mf.tasks.get(project, task.id).status == "queued"
    _apply(mf, Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 0}))
    again = mf.tasks.get(project, task.id)
    assert again.status == "queued"
    assert _events(mf, task.id)[-1] == ("exited", False, "attempt 1 already ended; the task is queued again")


def test_user_failures_retry_as_new_linked_tasks(mf: Mayfly, project: str) -> None:
    task = _running_task(mf, project, retries=2, retries_delay=30)
    _apply(mf, Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 1}))
    failed = mf.tasks.get(project, task.id)
    assert failed.status == "error"
    assert failed.retried_by
    retry = mf.tasks.get(project, failed.retried_by)
    assert (retry.status, retry.retry_of, retry.retry_count, retry.attempt) == ("queued", task.id, 1, 0)
    assert retry.run_at >= failed.end_time + 29  # type: ignore[operator]


def _fail_infra(mf: Mayfly, task_id: str, attempt: int, at: float, **data: object) -> None:
    """Dispatch the task's relaunch (due or not) and apply an infrastructure failure at clock ``at``."""
    if attempt > 1:
        with mf.store.write() as conn:  # make the relaunch due now instead of after its backoff
            conn.execute(s.tasks.update().where(s.tasks.c.id == task_id).values(run_at=0))
        assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [task_id]
    with mf.store.write() as conn:
        event = Event(task_id, attempt, EventKind.LAUNCH_FAILED, at, {"message": "no capacity", **data})
        apply_event(conn, event, at, mf.limits)


def test_infrastructure_failures_relaunch_for_a_window_of_time_not_a_count(mf: Mayfly, project: str) -> None:
    window = mf.limits.infra_retry_window
    task = _running_task(mf, project, retries=0)
    t0 = now()
    # Many failures inside the window (an engine outage makes them quickly): each one relaunches.
    for attempt in range(1, 11):
        _fail_infra(mf, task.id, attempt, t0 + attempt)
        relaunched = mf.tasks.get(project, task.id)
        assert (relaunched.status, relaunched.infra_failures) == ("queued", attempt)
        assert relaunched.run_at == pytest.approx(t0 + attempt + min(60, 2 ** (attempt - 1)))
    # The window counts from the first failure: the first one past it ends the task.
    _fail_infra(mf, task.id, 11, t0 + 1 + window)
    done = mf.tasks.get(project, task.id)
    assert (done.status, done.reason, done.attempt, done.infra_failures) == ("error", "launch_failed", 11, 11)
    assert done.msg == f"no capacity (infrastructure failures retried for {window:g} s)"
    assert done.retried_by is None  # user retries are a separate budget (0 here)


def test_an_attempt_that_ran_opens_a_new_window(mf: Mayfly, project: str) -> None:
    window = mf.limits.infra_retry_window
    task = _running_task(mf, project, retries=0)
    t0 = now()
    _fail_infra(mf, task.id, 1, t0)
    # Attempt 2 runs for longer than the window, then its engine restarts: a new outage, a new window.
    with mf.store.write() as conn:
        conn.execute(s.tasks.update().where(s.tasks.c.id == task.id).values(run_at=0))
    assert [d.task_id for d in dispatch(mf.store, {"local": 10}, now())] == [task.id]
    _apply(mf, Event(task.id, 2, EventKind.STARTED, t0 + 10, {"handle": "h2"}))
    later = t0 + 10 + 2 * window
    with mf.store.write() as conn:
        event = Event(task.id, 2, EventKind.LOST, later, {"message": "engine gone", "reason": "engine_restarted"})
        apply_event(conn, event, later, mf.limits)
    again = mf.tasks.get(project, task.id)
    assert (again.status, again.attempt) == ("queued", 2)
    assert again.msg == "attempt 2 engine_restarted: engine gone; relaunching"
    _fail_infra(mf, task.id, 3, later + window - 1)
    assert mf.tasks.get(project, task.id).status == "queued"
    _fail_infra(mf, task.id, 4, later + window)
    done = mf.tasks.get(project, task.id)
    assert (done.status, done.reason, done.attempt) == ("error", "launch_failed", 4)


def test_a_non_retryable_launch_failure_ends_at_once(mf: Mayfly, project: str) -> None:
    task = _running_task(mf, project)
    _apply(mf, Event(task.id, 1, EventKind.LAUNCH_FAILED, now(), {"message": "image not found", "retryable": False}))
    done = mf.tasks.get(project, task.id)
    assert (done.status, done.reason, done.msg) == ("error", "launch_failed", "image not found")


def test_load_task_of_unknown_id(mf: Mayfly) -> None:
    with mf.store.read() as conn:
        assert load_task(conn, "nope") is None
