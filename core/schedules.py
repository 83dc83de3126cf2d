"""Schedules: create (validated), list, show, pause, resume, cancel.

A schedule fires by queueing a task of its code (the code's latest revision at
firing time). Firing is done by the control plane (:mod:`mayfly.core.scheduler`);
this module only manages the schedule rows.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from mayfly.core import options, placement, slots, validate
from mayfly.core.admission import Requirements
from mayfly.core.config import Limits
from mayfly.core.errors import Conflict, InvalidInput, NotFound
from mayfly.core.ids import new_id
from mayfly.core.records import Code, Revision, iso
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s
from mayfly.core.tasks import task_requirements, validate_payload

MISSED = options.MISSED
OVERLAP = options.OVERLAP
STATUSES = ("scheduled", "paused", "complete", "cancelled")
#: The task statuses a schedule's ``error_count`` counts.
FAILED = ("error", "timeout")


class ScheduleNotFound(NotFound):
    code = "schedule_not_found"


@dataclass(frozen=True)
class ScheduleSpec:
    """What ``schedule create`` asks for. Exactly one of ``cron``, ``every`` or ``at``."""

    cron: str | None = None
    every: str | None = None
    at: str | None = None
    tz: str = "UTC"
    start_at: str | None = None
    end_at: str | None = None
    run_times: int | None = None
    payload: str = "{}"
    priority: int | None = None
    timeout: int | None = None
    target: str | None = None
    label: str | None = None
    missed: str = "skip"
    overlap: str = "allow"
    #: The payload is any text kept as given (IronWorker's /2), not necessarily JSON.
    text_payload: bool = False


@dataclass(frozen=True)
class Schedule:
    """A schedule row."""

    id: str
    project_id: str
    code_id: str
    code_name: str
    kind: str
    cron: str | None
    every: int | None
    tz: str
    start_at: float
    end_at: float | None
    run_times: int | None
    payload: str
    priority: int | None
    timeout: int | None
    target: str | None
    label: str | None
    missed: str
    overlap: str
    status: str
    msg: str | None
    next_start: float | None
    last_run_time: float | None
    run_count: int
    created_at: float
    updated_at: float

    @property
    def rule(self) -> slots.Rule:
        return slots.Rule(self.kind, self.start_at, cron=self.cron, every=self.every, tz=self.tz)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "code_name": self.code_name,
            "kind": self.kind,
            "cron": self.cron,
            "run_every": self.every,
            "tz": self.tz,
            "start_at": iso(self.start_at),
            "end_at": iso(self.end_at),
            "run_times": self.run_times,
            "payload": self.payload,
            "priority": self.priority,
            "timeout": self.timeout,
            "target": self.target,
            "label": self.label,
            "missed": self.missed,
            "overlap": self.overlap,
            "status": self.status,
            "msg": self.msg,
            "next_start": iso(self.next_start),
            "last_run_time": iso(self.last_run_time),
            "run_count": self.run_count,
            "created_at": iso(self.created_at),
            "updated_at": iso(self.updated_at),
        }


def load(conn: Connection, schedule_id: str) -> Schedule | None:
    row = conn.execute(select(s.schedules).where(s.schedules.c.id == schedule_id)).mappings().first()
    return Schedule(**{k: row[k] for k in Schedule.__dataclass_fields__}) if row else None


class ScheduleService:
    """Create and manage a project's schedules."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        code_of: Callable[[str, str], tuple[Code, Revision]],
        admit: Callable[[str, Requirements], object],
        clock: Callable[[], float] = now,
    ) -> None:
        self.store = store
        self.limits = limits
        self.code_of = code_of
        #: Admission (``TargetService.admit``): the target exists and its provider can run the schedule's tasks.
        self.admit = admit
        self.clock = clock

    def create(self, project_id: str, code_name: str, spec: ScheduleSpec) -> Schedule:
        """Validate everything, then store the schedule with its first slot; a bad input stores nothing."""
        code, rev = self.code_of(project_id, code_name)
        zone = slots.parse_zone(spec.tz)
        ts = self.clock()
        kinds = [k for k in ("cron", "every", "at") if getattr(spec, k) is not None]
        if len(kinds) != 1:
            raise InvalidInput("give exactly one of cron, every or at")
        kind = kinds[0]
        cron = slots.validate_cron(spec.cron) if spec.cron is not None else None
        every = slots.parse_every(spec.every) if spec.every is not None else None
        start_at = slots.parse_time(spec.start_at, zone) if spec.start_at else ts
        if spec.at is not None:
            if spec.start_at is not None:
                raise InvalidInput("at is a one-off time; it takes no start_at")
            start_at = slots.parse_time(spec.at, zone)
            if start_at <= ts:
                raise InvalidInput(f"at {spec.at} is in the past")
        end_at = slots.parse_time(spec.end_at, zone) if spec.end_at else None
        if end_at is not None and end_at <= start_at:
            raise InvalidInput("end_at must be after start_at")
        if spec.run_times is not None:
            options.check("run_times", spec.run_times)
        options.check("missed", spec.missed)
        options.check("overlap", spec.overlap)
        validate_payload(spec.payload, self.limits, text=spec.text_payload)
        if spec.priority is not None:
            validate.priority(spec.priority)
        if spec.timeout is not None:
            validate.timeout(spec.timeout, self.limits)
        timeout = rev.timeout if spec.timeout is None else spec.timeout
        if spec.target is not None and len(spec.target) > 63:
            raise InvalidInput("a schedule's target list is at most 63 characters")
        placement.place(placement.parse(spec.target) or tuple(rev.targets), self.admit, task_requirements(rev, timeout))
        if spec.label is not None:
            validate.label(spec.label)
        rule = slots.Rule(kind, start_at, cron=cron, every=every, tz=zone.key)
        first = rule.first()
        if first is None or (end_at is not None and first > end_at):
            raise InvalidInput("the schedule has no run between start_at and end_at")
        schedule_id = new_id()
        with self.store.write() as conn:
            conn.execute(
                insert(s.schedules).values(
                    id=schedule_id,
                    project_id=project_id,
                    code_id=code.id,
                    code_name=code.name,
                    kind=kind,
                    cron=cron,
                    every=every,
                    tz=zone.key,
                    start_at=start_at,
                    end_at=end_at,
                    run_times=spec.run_times,
                    payload=spec.payload,
                    priority=spec.priority,
                    timeout=spec.timeout,
                    target=spec.target,
                    label=spec.label,
                    missed=spec.missed,
                    overlap=spec.overlap,
                    status="scheduled",
                    msg=None,
                    next_start=first,
                    last_run_time=None,
                    run_count=0,
                    created_at=ts,
                    updated_at=ts,
                )
            )
            return self._get(conn, project_id, schedule_id)

    def get(self, project_id: str, schedule_id: str) -> Schedule:
        with self.store.read() as conn:
            return self._get(conn, project_id, schedule_id)

    def _get(self, conn: Connection, project_id: str, schedule_id: str) -> Schedule:
        sched = load(conn, schedule_id)
        if sched is None or sched.project_id != project_id:
            raise ScheduleNotFound(f"unknown schedule {schedule_id!r}")
        return sched

    def list(
        self, project_id: str, status: str | None = None, *, offset: int = 0, limit: int | None = None
    ) -> builtins.list[Schedule]:
        """The project's schedules, newest first; or the window ``[offset, offset + limit)``."""
        q = select(s.schedules).where(s.schedules.c.project_id == project_id)
        if status is not None:
            if status not in STATUSES:
                raise InvalidInput(f"unknown schedule status {status!r} (one of: {', '.join(STATUSES)})")
            q = q.where(s.schedules.c.status == status)
        q = q.order_by(s.schedules.c.id.desc()).offset(offset).limit(limit)
        with self.store.read() as conn:
            rows = conn.execute(q).mappings().all()
        return [Schedule(**{k: r[k] for k in Schedule.__dataclass_fields__}) for r in rows]

    def error_counts(self, project_id: str, schedule_ids: Sequence[str]) -> dict[str, int]:
        """How many tasks each of these schedules of the project fired that ended in error or timeout (0s left out)."""
        if not schedule_ids:
            return {}
        with self.store.read() as conn:
            rows = conn.execute(
                select(s.tasks.c.schedule_id, func.count())
                .where(
                    s.tasks.c.project_id == project_id,
                    s.tasks.c.schedule_id.in_(list(schedule_ids)),
                    s.tasks.c.status.in_(FAILED),
                )
                .group_by(s.tasks.c.schedule_id)
            ).all()
        return {str(sid): int(n) for sid, n in rows}

    def details(self, project_id: str, schedule_id: str, limit: int = 20) -> dict[str, Any]:
        """``schedule show``: the schedule, its error count, recent fired tasks and skipped runs."""
        with self.store.read() as conn:
            sched = self._get(conn, project_id, schedule_id)
            errors = conn.execute(
                select(func.count())
                .select_from(s.tasks)
                .where(s.tasks.c.schedule_id == schedule_id, s.tasks.c.status.in_(FAILED))
            ).scalar_one()
            fires = (
                conn.execute(
                    select(s.schedule_fires, s.tasks.c.status)
                    .outerjoin(s.tasks, s.tasks.c.id == s.schedule_fires.c.task_id)
                    .where(s.schedule_fires.c.schedule_id == schedule_id)
                    .order_by(s.schedule_fires.c.slot_ms.desc())
                    .limit(limit * 2)
                )
                .mappings()
                .all()
            )
        fired = [
            {
                "slot": iso(f["slot_ms"] / 1000),
                "task_id": f["task_id"],
                "status": f["status"],
                "fired_at": iso(f["fired_at"]),
            }
            for f in fires
            if not f["skipped"]
        ][:limit]
        skipped = [
            {"slot": iso(f["slot_ms"] / 1000), "reason": f["reason"], "at": iso(f["fired_at"])}
            for f in fires
            if f["skipped"]
        ][:limit]
        return {**sched.to_json(), "error_count": int(errors), "tasks": fired, "skipped": skipped}

    def _set_status(
        self, project_id: str, schedule_id: str, allowed: tuple[str, ...], status: str, **values: Any
    ) -> Schedule:
        with self.store.write() as conn:
            sched = self._get(conn, project_id, schedule_id)
            if sched.status not in allowed:
                raise Conflict(f"schedule {schedule_id} is {sched.status}; it cannot become {status}")
            conn.execute(
                update(s.schedules)
                .where(s.schedules.c.id == schedule_id)
                .values(status=status, updated_at=self.clock(), **values)
            )
            return self._get(conn, project_id, schedule_id)

    def pause(self, project_id: str, schedule_id: str) -> Schedule:
        """Stop firing until resumed."""
        return self._set_status(project_id, schedule_id, ("scheduled",), "paused")

    def resume(self, project_id: str, schedule_id: str) -> Schedule:
        """Fire again from the next slot; slots that passed while paused are not caught up."""
        sched = self.get(project_id, schedule_id)
        next_start = sched.rule.after(self.clock())
        return self._set_status(project_id, schedule_id, ("paused",), "scheduled", next_start=next_start)

    def cancel(self, project_id: str, schedule_id: str) -> Schedule:
        """End the schedule for good (its tasks already queued stay)."""
        return self._set_status(
            project_id, schedule_id, ("scheduled", "paused"), "cancelled", next_start=None, msg="cancelled by user"
        )
