"""The web dashboard at ``/``: static HTML, CSS and JS (no build step), plus two reads ``/v1`` does not offer.

The page itself is public (it holds no data); the browser asks for a project
token on a login screen, keeps it in ``sessionStorage`` and reads everything
with ``Authorization: Bearer`` — from ``/v1``, and from the two routes below
that ``/v1`` has no equivalent for:

- ``GET /dashboard/api/tasks`` — the task list filtered by **target** as well
  (``/v1/tasks`` filters by status, code and label only);
- ``GET /dashboard/api/schedules/next`` — the next few run times of every active
  schedule (``/v1/schedules`` gives only the next one).

Both are built with :func:`~mayfly.api.v1.routing.v1_router`, so they
authenticate, rate-limit and scope to the token's project exactly as ``/v1`` does.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.routing import v1_router
from mayfly.api.v1.tasks import task_json
from mayfly.core.errors import NotFound
from mayfly.core.records import Task, iso
from mayfly.core.schedules import Schedule
from mayfly.core.tasks import TaskFilter

#: The dashboard's files (``api/dashboard_static/``) and their media types; nothing else is served.
STATIC = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "app.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}

#: Everything comes from this origin; no inline script or style, no frames, no plugins.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

#: Most tasks one target-filtered list request reads from the store before it answers with what it found.
MAX_SCAN = 5000
#: Most upcoming run times returned per schedule.
MAX_NEXT = 10

router = APIRouter(include_in_schema=False)
api = v1_router("dashboard")


@cache
def _asset(name: str) -> bytes:
    return (resources.files("mayfly.api") / "dashboard_static" / name).read_bytes()


@router.get("/")
def index() -> Response:
    """The single page of the dashboard."""
    return Response(_asset("index.html"), media_type=STATIC["index.html"], headers=_HEADERS)


@router.get("/dashboard/static/{name}")
def static(name: str) -> Response:
    """One of the dashboard's files (a fixed list: no path from the URL reaches the file system)."""
    media_type = STATIC.get(name)
    if media_type is None:
        raise NotFound(f"no dashboard file {name!r}")
    return Response(_asset(name), media_type=media_type, headers=_HEADERS)


@api.get("/tasks")
def tasks(
    caller: CallerDep,
    mf: MayflyDep,
    target: Annotated[str, Query(description="Only tasks that run on this target.")],
    status: Annotated[list[str] | None, Query()] = None,
    code: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> dict[str, Any]:
    """``/v1/tasks`` plus a target filter: newest first, reading at most :data:`MAX_SCAN` tasks."""
    found: list[Task] = []
    before: str | None = None
    scanned = 0
    page = 500
    while len(found) < limit and scanned < MAX_SCAN:
        batch = mf.tasks.list(
            caller.project_id, TaskFilter(status=status or (), code_name=code, before=before, limit=page)
        )
        scanned += len(batch)
        found.extend(t for t in batch if t.target == target)
        if len(batch) < page:
            break
        before = batch[-1].id
    return {"tasks": [task_json(t, with_payload=False) for t in found[:limit]], "scanned": scanned}


@api.get("/schedules/next")
def next_runs(caller: CallerDep, mf: MayflyDep, count: Annotated[int, Query(ge=1, le=MAX_NEXT)] = 3) -> dict[str, Any]:
    """The next ``count`` run times of each scheduled (not paused or ended) schedule, by schedule id."""
    return {"next": {s.id: upcoming(s, count) for s in mf.schedules.list(caller.project_id, "scheduled")}}


def upcoming(sched: Schedule, count: int) -> list[str | None]:
    """Up to ``count`` run times from the schedule's next start, within its end time and run count."""
    left = count if sched.run_times is None else min(count, max(0, sched.run_times - sched.run_count))
    runs: list[str | None] = []
    slot = sched.next_start
    rule = sched.rule
    while slot is not None and len(runs) < left:
        if sched.end_at is not None and slot > sched.end_at:
            break
        runs.append(iso(slot))
        slot = rule.after(slot)
    return runs


router.include_router(api, prefix="/dashboard/api")

__all__ = ["router"]
