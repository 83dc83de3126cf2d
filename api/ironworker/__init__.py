"""IronWorker REST API v2 compatibility under ``/2/projects/{project_id}/``.

IronWorker's own client libraries (``iron_worker`` for Python, ``iron_go3``,
``iron_worker_ruby_ng``...) and its CLI point at a Mayfly server by host, port,
protocol, project id and token, and work unchanged. See ``docs/ironworker.md``
for the endpoint table and for what differs.
"""

from __future__ import annotations

from fastapi import APIRouter

from mayfly.api.ironworker import codes, schedules, tasks

router = APIRouter(prefix="/2/projects/{project_id}")
router.include_router(codes.router)
router.include_router(tasks.router)
router.include_router(schedules.router)

__all__ = ["router"]
