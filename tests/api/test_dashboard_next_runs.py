"""The dashboard's next-run list of a schedule: it stops at the schedule's end time and run count."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from mayfly.api.dashboard import upcoming
from mayfly.core.schedules import Schedule

T0 = datetime(2030, 1, 1, tzinfo=UTC).timestamp()


def _every_hour(**changes: object) -> Schedule:
    sched = Schedule(
        id="s1",
        project_id="p1",
        code_id="c1",
        code_name="hello",
        kind="every",
        cron=None,
        every=3600,
        tz="UTC",
        start_at=T0,
        end_at=None,
        run_times=None,
        payload="{}",
        priority=None,
        timeout=None,
        target=None,
        label=None,
        missed="skip",
        overlap="allow",
        status="scheduled",
        msg=None,
        next_start=T0,
        last_run_time=None,
        run_count=0,
        created_at=T0,
        updated_at=T0,
    )
    return replace(sched, **changes)  # type: ignore[arg-type]


def test_next_runs_follow_the_rule_from_the_next_start() -> None:
    assert upcoming(_every_hour(), 3) == [
        "2030-01-01T00:00:00.000Z",
        "2030-01-01T01:00:00.000Z",
        "2030-01-01T02:00:00.000Z",
    ]


def test_next_runs_stop_at_the_run_count_and_the_end_time() -> None:
    assert len(upcoming(_every_hour(run_times=5, run_count=4), 3)) == 1
    assert upcoming(_every_hour(run_times=5, run_count=5), 3) == []
    assert len(upcoming(_every_hour(end_at=T0 + 3600), 5)) == 2


def test_a_cron_schedule_lists_wall_times_of_its_zone() -> None:
    berlin = _every_hour(kind="cron", cron="0 3 * * *", every=None, tz="Europe/Berlin", next_start=T0 + 2 * 3600)
    assert upcoming(berlin, 2) == ["2030-01-01T02:00:00.000Z", "2030-01-02T02:00:00.000Z"]


def test_a_one_time_schedule_has_one_run_and_an_ended_one_none() -> None:
    once = _every_hour(kind="at", every=None)
    assert upcoming(once, 3) == ["2030-01-01T00:00:00.000Z"]
    assert upcoming(_every_hour(next_start=None), 3) == []
