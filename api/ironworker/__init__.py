"""IronWorker REST API v2 compatibility under ``/2/projects/{project_id}/``.

IronWorker's own client libraries (``iron_worker`` for Python, ``iron_go3``,
``iron_worker_ruby_ng``...) and its CLI point at a Mayfly server by host, port,
protocol, project id and token, and work unchanged. See ``docs/ironworker.md``
for the endpoint table and for what differs.
"""

from __future__ import annotations

from fastapi import APIRouter

from mayfly.api.ironworker import clusters, codes, projects, schedules, tasks

#: Everything under ``/2/projects/{project_id}``.
PROJECT = "/2/projects/{project_id}"
scoped = APIRouter(prefix=PROJECT)
scoped.include_router(codes.router)
scoped.include_router(tasks.router)
scoped.include_router(schedules.router)
scoped.include_router(clusters.scoped)

router = APIRouter()
router.include_router(projects.router, prefix=PROJECT)  # its GET "" is the project itself
router.include_router(scoped)
router.include_router(clusters.root)

__all__ = ["router"]
