"""``/v1/schedules``: create (the body mirrors ``mayfly schedule create``), list, show, pause, resume, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from mayfly.api.openapi import errors
from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.models import ScheduleCreate
from mayfly.api.v1.routing import v1_router
from mayfly.core.schedules import STATUSES

router = v1_router("schedules")


@router.post("/schedules", status_code=201, responses=errors(400, 404, 501))
def create(body: ScheduleCreate, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """A schedule that queues tasks of a code: cron, an interval, or once at a time."""
    return mf.schedules.create(caller.project_id, body.code_name, body.spec()).to_json()


@router.get("/schedules", responses=errors(400))
def list_schedules(
    caller: CallerDep,
    mf: MayflyDep,
    status: Annotated[
        str | None, Query(description="Only schedules with this status.", json_schema_extra={"enum": list(STATUSES)})
    ] = None,
) -> dict[str, Any]:
    """The project's schedules, newest first."""
    return {"schedules": [s.to_json() for s in mf.schedules.list(caller.project_id, status)]}


@router.get("/schedules/{schedule_id}", responses=errors(404))
def get_schedule(schedule_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """A schedule with its error count, the tasks it fired and the runs it skipped."""
    return mf.schedules.details(caller.project_id, schedule_id)


@router.post("/schedules/{schedule_id}/pause", responses=errors(404, 409))
def pause(schedule_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Stop firing until resumed."""
    return mf.schedules.pause(caller.project_id, schedule_id).to_json()


@router.post("/schedules/{schedule_id}/resume", responses=errors(404, 409))
def resume(schedule_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Fire again from the next slot; slots that passed while paused are not caught up."""
    return mf.schedules.resume(caller.project_id, schedule_id).to_json()


@router.post("/schedules/{schedule_id}/cancel", responses=errors(404, 409))
def cancel(schedule_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """End the schedule for good; tasks it already queued stay."""
    return mf.schedules.cancel(caller.project_id, schedule_id).to_json()
