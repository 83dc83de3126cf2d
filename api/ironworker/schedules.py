"""Schedules: bulk create with IronWorker's start_at / run_every / end_at / run_times, list, info, cancel.

IronWorker schedules map onto Mayfly's: ``run_every`` is an interval schedule
(at least 60 seconds, as IronWorker required); without it the schedule runs
once, at ``start_at`` or right away. A schedule's ``delay`` moves its first run
later by that many seconds.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mayfly.api.deps import MayflyDep
from mayfly.api.ironworker.auth import ProjectId
from mayfly.api.ironworker.body import Fields, items, json_body
from mayfly.api.ironworker.errors import IronRoute
from mayfly.api.ironworker.mapping import MIN_RUN_EVERY, epoch, page_window, payload_text, schedule_json
from mayfly.api.ironworker.tasks import target_of
from mayfly.core.app import Mayfly
from mayfly.core.errors import InvalidInput, MayflyError, Unsupported
from mayfly.core.records import iso
from mayfly.core.schedules import Schedule, ScheduleSpec

router = APIRouter(route_class=IronRoute, tags=["ironworker"])


#: A one-off schedule without a future ``start_at`` runs this many seconds after it is created.
RUN_NOW_LEAD = 1.0


@dataclass(frozen=True)
class NewSchedule:
    """One entry of ``{"schedules": [...]}``, in Mayfly's terms."""

    code_name: str
    spec: ScheduleSpec


def new_schedule(mf: Mayfly, f: Fields, ts: float) -> NewSchedule:
    """Map an IronWorker schedule (``name`` and ``max_concurrency`` are accepted and ignored)."""
    code_name = f.required_str("code_name")
    raw_payload = f.raw("payload")
    if raw_payload == "":
        raise InvalidInput(f"{f.where}.payload is empty (IronWorker refused empty schedule payloads too)")
    payload = payload_text(raw_payload, f"{f.where}.payload")
    run_every = f.int_or_none("run_every")
    if run_every is not None and run_every < MIN_RUN_EVERY:
        raise InvalidInput(f"{f.where}.run_every must be at least {MIN_RUN_EVERY} seconds")
    delay = f.int_or_none("delay") or f.int_or_none("task_delay") or 0
    if delay < 0:
        raise InvalidInput(f"{f.where}.delay must not be negative")
    start_at = epoch(f.raw("start_at"), f"{f.where}.start_at")
    end_at = epoch(f.raw("end_at"), f"{f.where}.end_at")
    run_times = f.int_or_none("run_times")
    if run_every is None:
        # One run: at start_at if that is still ahead, else right away.
        at = max(start_at if start_at is not None else ts, ts + RUN_NOW_LEAD) + delay
        times: dict[str, Any] = {"at": iso(at)}
    else:
        first = (start_at if start_at is not None else ts) + delay
        times = {"every": str(run_every), "start_at": iso(first), "run_times": run_times}
    timeout = f.int_or_none("timeout")
    spec = ScheduleSpec(
        **times,
        end_at=iso(end_at),
        payload=payload,
        priority=f.int_or_none("priority"),
        timeout=timeout or None,
        target=target_of(mf, f.str_or_none("cluster")),
        label=f.str_or_none("label"),
        text_payload=True,
    )
    return NewSchedule(code_name, spec)


def create_all(mf: Mayfly, project_id: str, schedules: Sequence[NewSchedule]) -> list[Schedule]:
    """Create every schedule, or none: on a failure the ones already created are cancelled again."""
    for sched in schedules:
        mf.codes.get(project_id, sched.code_name)
    created: list[Schedule] = []
    for i, sched in enumerate(schedules):
        try:
            created.append(mf.schedules.create(project_id, sched.code_name, sched.spec))
        except MayflyError as exc:
            for done in created:
                with contextlib.suppress(MayflyError):
                    mf.schedules.cancel(project_id, done.id)
            if len(schedules) > 1:
                exc.message = f"schedules[{i}]: {exc.message}"
            raise
    return created


@router.post("/schedules")
def create_schedules(pid: ProjectId, body: Annotated[Any, Depends(json_body)], mf: MayflyDep) -> dict[str, Any]:
    """Create schedules in bulk: ``{"schedules": [{"code_name", "payload", "run_every", ...}]}``."""
    ts = time.time()
    schedules = [new_schedule(mf, f, ts) for f in items(body, "schedules")]
    created = create_all(mf, pid, schedules)
    return {"msg": "Scheduled", "schedules": [{"id": sched.id} for sched in created]}


@router.get("/schedules")
def list_schedules(
    pid: ProjectId, mf: MayflyDep, page: int | None = None, per_page: int | None = None
) -> dict[str, Any]:
    """The project's schedules, newest first, one page."""
    offset, limit = page_window(page, per_page)
    schedules = mf.schedules.list(pid, offset=offset, limit=limit)
    errors = mf.schedules.error_counts(pid, [sched.id for sched in schedules])
    return {"schedules": [schedule_json(sched, errors.get(sched.id, 0)) for sched in schedules]}


@router.get("/schedules/{schedule_id}")
def get_schedule(pid: ProjectId, schedule_id: str, mf: MayflyDep) -> dict[str, Any]:
    """One schedule: status, next_start, last_run_time, run_count, error_count."""
    sched = mf.schedules.get(pid, schedule_id)
    return schedule_json(sched, mf.schedules.error_counts(pid, [sched.id]).get(sched.id, 0))


@router.post("/schedules/{schedule_id}/cancel")
def cancel_schedule(pid: ProjectId, schedule_id: str, mf: MayflyDep) -> dict[str, Any]:
    """End a schedule for good; tasks it already queued stay. (IronWorker's optional ``{"delete": true}`` body is
    accepted: a cancelled schedule stays listed with status ``cancelled``.)"""
    mf.schedules.cancel(pid, schedule_id)
    return {"msg": "Cancelled"}


@router.put("/schedules/{schedule_id}")
def update_schedule(pid: ProjectId, schedule_id: str, mf: MayflyDep) -> dict[str, Any]:
    """IronWorker's schedule update (client-only, and a delete-and-recreate in its HUD): not served."""
    mf.schedules.get(pid, schedule_id)
    raise Unsupported(
        "schedules cannot be changed in place: cancel it (POST /schedules/{id}/cancel) and create a new one, "
        "as IronWorker's own dashboard did"
    )
