"""The project itself: ``GET /projects/{id}`` (its name), its task stats, and registry credentials (501)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mayfly.api.deps import MayflyDep
from mayfly.api.ironworker.auth import ProjectId
from mayfly.api.ironworker.errors import IronRoute
from mayfly.api.ironworker.stats import task_stats, window
from mayfly.core.errors import Unsupported
from mayfly.core.records import iso

router = APIRouter(route_class=IronRoute, tags=["ironworker"])


@router.get("")
def get_project(pid: ProjectId, mf: MayflyDep) -> dict[str, Any]:
    """The project's id and name (ironcli reads the name)."""
    proj = mf.projects.by_id(pid)
    return {"id": proj.id, "name": proj.name, "created_at": iso(proj.created_at)}


@router.get("/stats")
def project_stats(
    pid: ProjectId, mf: MayflyDep, start_date: str | None = None, end_date: str | None = None
) -> dict[str, Any]:
    """Task counts by status of every code of the project, over a window (default: the last 24 hours)."""
    start, end = window(start_date, end_date)
    return task_stats(mf, pid, start, end)


@router.post("/credentials")
def add_credentials(pid: ProjectId) -> dict[str, Any]:
    """IronWorker stored private Docker registry logins; Mayfly runs images its engine already has."""
    raise Unsupported(
        "registry credentials are not stored by Mayfly: codes run images the server's container engine "
        "already has (its operator logs in to private registries there)"
    )
