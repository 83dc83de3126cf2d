"""Moves and breakers in the store: what the control plane decides for each runner event and dispatch pass.

The end-to-end path (a real emulator refusing, a real container on local) is in
``tests/providers/ecs/test_fallback_e2e.py``; here each rule is checked on the real
store with the events a runner sends, with time passed explicitly.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Limits
from mayfly.core.lifecycle import apply_event
from mayfly.core.messages import Event, EventKind
from mayfly.core.records import Task
from mayfly.core.router import dispatch
from mayfly.core.store import now
from mayfly.core.tasks import TaskOptions
from mayfly.testing.targets import UNCALLED_ECS_SETTINGS

ECS = UNCALLED_ECS_SETTINGS
CAPACITY = {"message": "no Fargate capacity for the task right now", "retryable": True, "kind": "capacity"}
ALL = {"aws-a": 10, "aws-b": 10, "local": 10}


@pytest.fixture
def placed(mf: Mayfly, project: str) -> Mayfly:
    for name in ("aws-a", "aws-b"):
        mf.targets.add(name, "ecs", {**ECS, "cluster": name}, embedded_runner=False)
    mf.codes.register(project, "img", "busybox:1", CodeOptions(command="true", target="aws-a,aws-b,local"))
    return mf


def _limits(mf: Mayfly, failures: int = 3) -> Limits:
    return replace(mf.limits, breaker_failures=failures, breaker_cooldown=60.0)


def _apply(mf: Mayfly, task: Task, kind: EventKind, data: dict[str, object], at: float, limits: Limits) -> Task:
    with mf.store.write() as conn:
        apply_event(conn, Event(task.id, task.attempt, kind, at, data), at, limits)
    return mf.tasks.get(task.project_id, task.id)


def _dispatched(mf: Mayfly, project: str, task_id: str, at: float) -> Task:
    chosen = {d.task_id: d.target for d in dispatch(mf.store, ALL, at)}
    assert task_id in chosen
    return mf.tasks.get(project, task_id)


def _kinds(mf: Mayfly, project: str, task_id: str) -> list[tuple[str, object]]:
    return [(e.kind, e.to_json()["data"].get("kind")) for e in mf.tasks.events(project, task_id)]


def test_a_movable_failure_moves_to_the_next_target_and_the_last_one_retries_in_place(
    placed: Mayfly, project: str
) -> None:
    mf, t0, limits = placed, now() + 1, _limits(placed)
    task = mf.tasks.queue(project, "img", "{}", TaskOptions())
    assert (task.target, task.targets) == ("aws-a", ["aws-a", "aws-b", "local"])
    task = _dispatched(mf, project, task.id, t0)
    moved = _apply(mf, task, EventKind.LAUNCH_FAILED, CAPACITY, t0, limits)
    assert (moved.status, moved.target, moved.run_at) == ("queued", "aws-b", t0)  # at once, no backoff
    assert "moved to aws-b" in (moved.msg or "")
    task = _dispatched(mf, project, task.id, t0)
    assert (task.target, task.attempt) == ("aws-b", 2)
    quota = {"message": "quota reached", "retryable": True, "kind": "quota"}
    task = _dispatched(mf, project, _apply(mf, task, EventKind.LAUNCH_FAILED, quota, t0, limits).id, t0)
    assert task.target == "local"
    # On the last target, a movable failure is an infrastructure failure like any other: relaunched there later.
    last = _apply(mf, task, EventKind.LAUNCH_FAILED, {**CAPACITY, "kind": "image"}, t0, limits)
    assert (last.status, last.target) == ("queued", "local")
    assert last.run_at > t0
    assert _kinds(mf, project, task.id) == [
        ("launch_failed", "capacity"),
        ("moved", "capacity"),
        ("launch_failed", "quota"),
        ("moved", "quota"),
        ("launch_failed", "image"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        {"message": "ECS refused to start the task: InvalidParameterException", "retryable": False},
        {"message": "the container disappeared", "retryable": True},
    ],
    ids=["no-kind-not-retryable", "no-kind-retryable"],
)
def test_failures_without_a_kind_never_move(placed: Mayfly, project: str, data: dict[str, object]) -> None:
    task = _dispatched(placed, project, placed.tasks.queue(project, "img", "{}", TaskOptions()).id, now())
    after = _apply(placed, task, EventKind.LAUNCH_FAILED, data, now(), _limits(placed))
    assert after.target == "aws-a"
    assert "moved" not in [k for k, _ in _kinds(placed, project, task.id)]


def test_a_cancelled_task_does_not_move(placed: Mayfly, project: str) -> None:
    queued = placed.tasks.queue(project, "img", "{}", TaskOptions(target="local,aws-a"))
    task = _dispatched(placed, project, queued.id, now())
    placed.tasks.cancel(project, task.id)  # (on local: the cancel record goes to the home's blobs)
    after = _apply(
        placed, placed.tasks.get(project, task.id), EventKind.LAUNCH_FAILED, CAPACITY, now(), _limits(placed)
    )
    assert (after.status, after.target) == ("cancelled", "local")


def test_an_open_breaker_is_skipped_half_open_lets_one_through_and_a_start_closes_it(
    placed: Mayfly, project: str
) -> None:
    mf, t0, limits = placed, now() + 1, _limits(placed, failures=1)
    first = _dispatched(mf, project, mf.tasks.queue(project, "img", "{}", TaskOptions()).id, t0)
    _apply(mf, first, EventKind.LAUNCH_FAILED, CAPACITY, t0, limits)
    assert mf.targets.breakers(t0)["aws-a"]["state"] == "open"
    # Open: a task that has other targets is moved off aws-a before any launch there.
    skipping = mf.tasks.queue(project, "img", "{}", TaskOptions())
    assert _dispatched(mf, project, skipping.id, t0 + 1).target == "aws-b"
    assert _kinds(mf, project, skipping.id) == [("moved", "breaker")]
    # A task with aws-a alone still goes there; a moving task skips the open target.
    alone = mf.tasks.queue(project, "img", "{}", TaskOptions(target="aws-a"))
    assert _dispatched(mf, project, alone.id, t0 + 1).target == "aws-a"
    # Half-open after the cool-down: one task at a time on aws-a.
    later = t0 + 61
    a, b = (mf.tasks.queue(project, "img", "{}", TaskOptions(target="aws-a")) for _ in range(2))
    # The task already there ends (a failure without a kind: an exit would show aws-a works and close the
    # breaker), so aws-a holds nothing.
    gone = {"message": "ECS refused to start the task: InvalidParameterException", "retryable": False}
    with mf.store.write() as conn:
        apply_event(conn, Event(alone.id, 1, EventKind.LAUNCH_FAILED, later, gone), later, limits)
    assert mf.targets.breakers(later)["aws-a"]["state"] == "half-open"
    chosen = [d.task_id for d in dispatch(mf.store, ALL, later) if d.target == "aws-a"]
    assert chosen == [a.id]
    assert [d.task_id for d in dispatch(mf.store, ALL, later)] == []  # b waits for the trial
    _apply(mf, mf.tasks.get(project, a.id), EventKind.STARTED, {"handle": "h"}, later, limits)
    closed = mf.targets.breakers(later)["aws-a"]
    assert (closed["state"], closed["failures"]) == ("closed", 0)
    assert [d.task_id for d in dispatch(mf.store, ALL, later)] == [b.id]
