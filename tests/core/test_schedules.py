"""Schedules with an injected clock: validation, DST, missed slots, overlap, run limits, concurrent firing."""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.errors import CodeNotFound, InvalidInput, MayflyError, PayloadTooLarge
from mayfly.core.scheduler import fire_due
from mayfly.core.schedules import ScheduleService, ScheduleSpec
from mayfly.core.store import schema as s


class Clock:
    """A settable clock (epoch seconds)."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock(utc(2026, 1, 1))


@pytest.fixture
def svc(mf: Mayfly, project: str, clock: Clock) -> ScheduleService:
    mf.codes.register(project, "job", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    return ScheduleService(mf.store, mf.limits, mf.codes.get, mf.targets.admit, clock=clock)


def counts(mf: Mayfly) -> tuple[int, int]:
    with mf.store.read() as conn:
        return (
            conn.execute(select(func.count()).select_from(s.schedules)).scalar_one(),
            conn.execute(select(func.count()).select_from(s.tasks)).scalar_one(),
        )


def fired_slots(mf: Mayfly, schedule_id: str) -> list[float]:
    with mf.store.read() as conn:
        rows = (
            conn.execute(
                select(s.schedule_fires.c.slot_ms)
                .where(s.schedule_fires.c.schedule_id == schedule_id, s.schedule_fires.c.skipped.is_(False))
                .order_by(s.schedule_fires.c.slot_ms)
            )
            .scalars()
            .all()
        )
    return [r / 1000 for r in rows]


def run_clock(mf: Mayfly, start: float, end: float, step: float) -> None:
    """Call the scheduler as a control plane would, every ``step`` seconds of fake time."""
    t = start
    while t <= end:
        fire_due(mf.store, mf.tasks, t)
        t += step


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (ScheduleSpec(cron="61 * * * *"), "invalid cron expression '61 * * * *': a value is out of range"),
        (ScheduleSpec(cron="* * *"), "invalid cron expression '* * *': expected 5 fields"),
        (ScheduleSpec(cron="@every 0s"), "invalid cron expression '@every 0s'"),
        (ScheduleSpec(cron="0 0 31 2 *"), "cron expression '0 0 31 2 *' never fires"),
        (ScheduleSpec(every="0s"), "invalid interval '0s': it must be at least 1 second"),
        (ScheduleSpec(every="-5m"), "invalid interval '-5m'"),
        (ScheduleSpec(every="5 minutes"), "invalid interval '5 minutes'"),
        (ScheduleSpec(every="1m", tz="Mars/Olympus"), "unknown time zone 'Mars/Olympus'"),
        (
            ScheduleSpec(every="1m", start_at="2026-02-01T00:00", end_at="2026-01-15T00:00"),
            "end_at must be after start_at",
        ),
        (ScheduleSpec(at="2025-06-01T00:00:00Z"), "at 2025-06-01T00:00:00Z is in the past"),
        (ScheduleSpec(at="tomorrow"), "invalid time 'tomorrow'"),
        (ScheduleSpec(), "give exactly one of cron, every or at"),
        (ScheduleSpec(cron="* * * * *", every="1m"), "give exactly one of cron, every or at"),
        (ScheduleSpec(every="1m", missed="sometimes"), "missed must be one of skip, once, all"),
        (ScheduleSpec(every="1m", overlap="queue"), "overlap must be one of allow, forbid, replace"),
        (ScheduleSpec(every="1m", run_times=0), "run_times must be at least 1"),
        (ScheduleSpec(every="1m", payload="{"), "payload is not valid JSON"),
        (ScheduleSpec(every="1m", priority=7), "priority must be 0, 1 or 2"),
        (ScheduleSpec(every="1m", target="mars"), "unknown target 'mars'"),
    ],
)
def test_invalid_schedules_store_nothing(
    mf: Mayfly, project: str, svc: ScheduleService, spec: ScheduleSpec, message: str
) -> None:
    with pytest.raises(MayflyError) as info:
        svc.create(project, "job", spec)
    assert message in info.value.message
    assert "\n" not in info.value.message
    assert counts(mf) == (0, 0)


def test_unknown_code_and_big_payload(mf: Mayfly, project: str, svc: ScheduleService) -> None:
    with pytest.raises(CodeNotFound):
        svc.create(project, "nope", ScheduleSpec(every="1m"))
    with pytest.raises(PayloadTooLarge):
        svc.create(project, "job", ScheduleSpec(every="1m", payload='"' + "x" * 70_000 + '"'))
    assert counts(mf) == (0, 0)


def test_one_second_intervals_are_accepted(project: str, svc: ScheduleService, clock: Clock) -> None:
    sched = svc.create(project, "job", ScheduleSpec(every="1s"))
    assert (sched.kind, sched.every, sched.next_start) == ("every", 1, clock.t)


# ---------------------------------------------------------------- DST


def _daily_fires(
    mf: Mayfly, svc: ScheduleService, project: str, clock: Clock, cron: str, tz: str, day: tuple[int, int, int]
) -> list[datetime]:
    clock.t = utc(*day) - 2 * 86400
    sched = svc.create(project, "job", ScheduleSpec(cron=cron, tz=tz))
    start = utc(*day) - 86400
    run_clock(mf, start, start + 3 * 86400, 60)
    zone = ZoneInfo(tz)
    return [datetime.fromtimestamp(x, zone) for x in fired_slots(mf, sched.id)]


@pytest.mark.parametrize(
    ("tz", "cron", "day", "wall"),
    [
        ("America/New_York", "30 1 * * *", (2026, 11, 1), "01:30"),  # 02:00 EDT -> 01:00 EST
        ("Europe/Berlin", "30 2 * * *", (2026, 10, 25), "02:30"),  # 03:00 CEST -> 02:00 CET
        ("Australia/Lord_Howe", "45 1 * * *", (2026, 4, 5), "01:45"),  # 02:00 -> 01:30, a 30-minute shift
    ],
)
def test_fall_back_fires_a_wall_clock_slot_once(
    mf: Mayfly,
    project: str,
    svc: ScheduleService,
    clock: Clock,
    tz: str,
    cron: str,
    day: tuple[int, int, int],
    wall: str,
) -> None:
    fires = _daily_fires(mf, svc, project, clock, cron, tz, day)
    on_the_day = [f for f in fires if f.date() == datetime(*day).date()]
    assert [f.strftime("%H:%M") for f in on_the_day] == [wall]
    assert len(fires) == 3  # the day before, the day, the day after: once each
    assert on_the_day[0].fold == 0  # the first of the two instants


@pytest.mark.parametrize(
    ("tz", "cron", "day", "wall"),
    [
        ("Europe/Berlin", "30 2 * * *", (2026, 3, 29), "03:00"),  # 02:00 CET -> 03:00 CEST
        ("America/New_York", "30 2 * * *", (2026, 3, 8), "03:00"),
        ("Australia/Lord_Howe", "15 2 * * *", (2026, 10, 4), "02:30"),  # 02:00 -> 02:30
    ],
)
def test_spring_forward_fires_a_skipped_slot_at_the_first_valid_instant(
    mf: Mayfly,
    project: str,
    svc: ScheduleService,
    clock: Clock,
    tz: str,
    cron: str,
    day: tuple[int, int, int],
    wall: str,
) -> None:
    fires = _daily_fires(mf, svc, project, clock, cron, tz, day)
    on_the_day = [f for f in fires if f.date() == datetime(*day).date()]
    assert [f.strftime("%H:%M") for f in on_the_day] == [wall]
    assert len(fires) == 3


def test_quarter_hours_never_fire_twice_in_one_instant(
    mf: Mayfly, project: str, svc: ScheduleService, clock: Clock
) -> None:
    for day in ((2026, 3, 29), (2026, 10, 25)):
        clock.t = utc(*day) - 86400
        sched = svc.create(project, "job", ScheduleSpec(cron="*/15 * * * *", tz="Europe/Berlin"))
        run_clock(mf, utc(*day) - 3600, utc(*day) + 6 * 3600, 60)
        slots = fired_slots(mf, sched.id)
        assert len(slots) == len(set(slots))
        assert all(b - a >= 15 * 60 for a, b in itertools.pairwise(slots))
        svc.cancel(project, sched.id)


def test_intervals_keep_their_real_length_across_dst(
    mf: Mayfly, project: str, svc: ScheduleService, clock: Clock
) -> None:
    clock.t = utc(2026, 3, 28, 22)
    sched = svc.create(project, "job", ScheduleSpec(every="1h", tz="Europe/Berlin"))
    run_clock(mf, clock.t, clock.t + 6 * 3600, 30)
    slots = fired_slots(mf, sched.id)
    assert len(slots) == 7
    assert {b - a for a, b in itertools.pairwise(slots)} == {3600.0}


# ---------------------------------------------------------------- missed slots, restarts, clock jumps


@pytest.mark.parametrize(("policy", "expected"), [("skip", 0), ("once", 1), ("all", 5)])
def test_missed_slots_follow_the_policy(
    mf: Mayfly, project: str, svc: ScheduleService, clock: Clock, policy: str, expected: int
) -> None:
    t0 = clock.t
    sched = svc.create(project, "job", ScheduleSpec(every="60s", missed=policy))
    fire_due(mf.store, mf.tasks, t0)  # slot t0 on time
    down_until = t0 + 5 * 60 + 45  # slots t0+60 … t0+300 pass with no control plane
    result = fire_due(mf.store, mf.tasks, down_until)
    assert len(result.fired) == expected
    assert len(result.fired) + len(result.skipped) == 5
    # Restarting twice more, or the clock jumping back 2 h, adds nothing.
    for t in (down_until, down_until + 1, down_until - 7200):
        assert fire_due(mf.store, mf.tasks, t).fired == []
    assert len(fired_slots(mf, sched.id)) == 1 + expected
    details = svc.details(project, sched.id)
    assert details["run_count"] == 1 + expected
    assert len(details["skipped"]) == 5 - expected
    assert all(x["reason"].startswith("missed: ") for x in details["skipped"])


def test_a_forward_clock_jump_is_a_downtime(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    sched = svc.create(project, "job", ScheduleSpec(every="60s", missed="skip"))
    fire_due(mf.store, mf.tasks, clock.t)
    result = fire_due(mf.store, mf.tasks, clock.t + 7200 + 10)
    assert len(result.fired) == 1  # the slot due right now (10 s late) still fires
    assert len(result.skipped) == 119
    assert len(fired_slots(mf, sched.id)) == 2


def test_run_times_and_end_at_finish_the_schedule(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    a = svc.create(project, "job", ScheduleSpec(every="10s", run_times=3))
    b = svc.create(
        project, "job", ScheduleSpec(every="10s", end_at=datetime.fromtimestamp(clock.t + 25, UTC).isoformat())
    )
    run_clock(mf, clock.t, clock.t + 100, 1)
    a2, b2 = svc.get(project, a.id), svc.get(project, b.id)
    assert (a2.status, a2.run_count, a2.msg, a2.next_start) == ("complete", 3, "Ran max times.", None)
    assert (b2.status, b2.run_count, b2.next_start) == ("complete", 3, None)


def test_at_fires_once(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    sched = svc.create(project, "job", ScheduleSpec(at="2026-01-01T00:05:00Z"))
    run_clock(mf, clock.t, clock.t + 900, 5)
    done = svc.get(project, sched.id)
    assert (done.status, done.run_count) == ("complete", 1)


def test_pause_resume_cancel(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    sched = svc.create(project, "job", ScheduleSpec(every="10s"))
    svc.pause(project, sched.id)
    assert fire_due(mf.store, mf.tasks, clock.t + 100).fired == []
    clock.t += 100
    resumed = svc.resume(project, sched.id)
    assert resumed.next_start == pytest.approx(clock.t + 10)
    assert len(fire_due(mf.store, mf.tasks, clock.t + 10).fired) == 1
    svc.cancel(project, sched.id)
    with pytest.raises(MayflyError, match="is cancelled; it cannot become paused"):
        svc.pause(project, sched.id)


# ---------------------------------------------------------------- overlap


def test_overlap_forbid_skips_and_records_why(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    sched = svc.create(project, "job", ScheduleSpec(every="60s", overlap="forbid"))
    first = fire_due(mf.store, mf.tasks, clock.t).fired
    second = fire_due(mf.store, mf.tasks, clock.t + 60)
    assert second.fired == []
    assert second.skipped[0][2] == f"overlap: task {first[0][2]} of the previous run is still unfinished"
    mf.tasks.cancel(project, first[0][2])
    assert len(fire_due(mf.store, mf.tasks, clock.t + 120).fired) == 1
    assert svc.details(project, sched.id)["skipped"][0]["reason"].startswith("overlap: ")


def test_overlap_replace_cancels_then_queues_behind(
    mf: Mayfly, project: str, svc: ScheduleService, clock: Clock
) -> None:
    svc.create(project, "job", ScheduleSpec(every="60s", overlap="replace"))
    ((_, _, old),) = fire_due(mf.store, mf.tasks, clock.t).fired
    result = fire_due(mf.store, mf.tasks, clock.t + 60)
    ((_, _, new),) = result.fired
    assert result.to_cancel == [(project, old)]
    assert mf.tasks.get(project, new).wait_for == old


def test_overlap_allow_queues_both(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    svc.create(project, "job", ScheduleSpec(every="60s"))
    assert len(fire_due(mf.store, mf.tasks, clock.t).fired) == 1
    assert len(fire_due(mf.store, mf.tasks, clock.t + 60).fired) == 1


# ---------------------------------------------------------------- concurrency


def test_two_control_planes_fire_each_slot_once(mf: Mayfly, project: str, svc: ScheduleService, clock: Clock) -> None:
    sched = svc.create(project, "job", ScheduleSpec(every="1s", missed="all"))
    errors: list[BaseException] = []

    def plane() -> None:
        try:
            for i in range(40):
                fire_due(mf.store, mf.tasks, clock.t + i * 0.5)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=plane) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    slots = fired_slots(mf, sched.id)
    assert slots == [clock.t + i for i in range(20)]
    assert counts(mf)[1] == 20


def test_bulk_tasks_are_one_transaction(mf: Mayfly, project: str) -> None:
    mf.codes.register(project, "bulk", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    payloads = [f'{{"i": {i}}}' for i in range(10_000)]
    from mayfly.core.tasks import TaskOptions

    with pytest.raises(InvalidInput, match="payload 10000: payload is not valid JSON"):
        mf.tasks.queue_many(project, "bulk", [*payloads[:-1], "{oops"], TaskOptions())
    assert counts(mf)[1] == 0
    assert len(mf.tasks.queue_many(project, "bulk", payloads, TaskOptions())) == 10_000
    assert counts(mf)[1] == 10_000


def test_a_busy_control_plane_looks_at_the_schedules_once_per_idle_wait(mf: Mayfly) -> None:
    """Schedules are looked at once per ``idle_wait``, not on every pass a busy loop makes (50 a second)."""
    from mayfly.core.config import Limits
    from mayfly.core.control import ControlPlane
    from mayfly.core.scheduler import Pass

    looks: list[float] = []

    def scheduler(now: float) -> Pass:
        looks.append(now)
        return Pass(fired=[("sched", now, "task")])  # work done: the loop goes on at once

    plane = ControlPlane(mf.store, Limits(), {}, scheduler=scheduler)
    stop = threading.Event()
    # A pass that did work is followed by another at once (period 0); one without sleeps for the idle wait.
    loop = threading.Thread(target=plane.run, args=(stop,), kwargs={"idle_wait": 3600.0, "period": 0.0})
    loop.start()
    while not looks:
        stop.wait(0.01)
    stop.wait(0.3)
    stop.set()
    loop.join(10)
    assert not loop.is_alive()
    assert len(looks) == 1
