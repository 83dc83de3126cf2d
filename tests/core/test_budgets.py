"""Budgets on a real store: unfinished tasks count, a refusal stores nothing, a schedule skips its slot."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.errors import BudgetExceeded
from mayfly.core.scheduler import fire_due
from mayfly.core.schedules import ScheduleService, ScheduleSpec
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions


def _tasks(mf: Mayfly) -> int:
    with mf.store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(s.tasks)).scalar_one())


@pytest.fixture
def priced(mf: Mayfly, project: str) -> str:
    """``local`` at 0.01 USD per vCPU-second, a 1-vCPU 0-memory-cost code: a task is estimated 0.01 USD."""
    mf.costs.set("local", {"vcpu_second": 0.01, "gb_second": 0})
    mf.codes.register(project, "job", "mayfly-test/busybox:latest", CodeOptions(command="true", cpu=1.0))
    return "job"


def test_unfinished_tasks_count_and_a_refused_batch_stores_nothing(mf: Mayfly, project: str, priced: str) -> None:
    mf.budgets.set(project, daily=0.025)
    mf.tasks.queue_many(project, priced, ["{}", "{}"], TaskOptions())  # 0.02 of 0.025: fits
    with pytest.raises(BudgetExceeded) as refused:
        mf.tasks.queue(project, priced, "{}", TaskOptions())  # the two queued ones count: 0.03 > 0.025
    assert refused.value.code == "budget_exceeded"
    assert refused.value.message == (
        "over the daily budget of 0.025 USD: spent 0, unfinished tasks 0.02, this task 0.01 (see mayfly project budget)"
    )
    assert _tasks(mf) == 2
    with pytest.raises(BudgetExceeded):
        mf.tasks.queue_many(project, priced, ["{}"] * 5, TaskOptions())
    assert _tasks(mf) == 2
    mf.budgets.set(project, clear=True)
    mf.tasks.queue(project, priced, "{}", TaskOptions())
    assert _tasks(mf) == 3


def test_a_schedule_skips_its_slot_past_the_budget_with_the_reason(mf: Mayfly, project: str, priced: str) -> None:
    t0 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
    schedules = ScheduleService(mf.store, mf.limits, mf.codes.get, mf.targets.admit, clock=lambda: t0)
    sched = schedules.create(project, priced, ScheduleSpec(every="1m"))
    mf.budgets.set(project, monthly=0.015)
    first = fire_due(mf.store, mf.tasks, t0)  # one task: 0.01 of 0.015
    assert len(first.fired) == 1
    second = fire_due(mf.store, mf.tasks, t0 + 60)  # a second would make 0.02
    assert first.skipped == []
    assert second.fired == []
    ((schedule_id, _slot, reason),) = second.skipped
    assert schedule_id == sched.id
    assert reason.startswith("budget: over the monthly budget of 0.015 USD")
    assert _tasks(mf) == 1
    with mf.store.read() as conn:
        recorded = (
            conn.execute(select(s.schedule_fires.c.reason).where(s.schedule_fires.c.skipped.is_(True))).scalars().all()
        )
    assert recorded == [reason]
