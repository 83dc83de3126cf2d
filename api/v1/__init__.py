"""Mayfly's native HTTP API under ``/v1`` (JSON; OpenAPI at ``/openapi.json``).

Every route authenticates a project token before reading the request body,
answers objects of other projects with 404, caps bodies (413) and rate-limits per
project (429 with ``Retry-After``); see :mod:`mayfly.api.v1.routing`. The
reference with examples is ``docs/api.md``.
"""

from __future__ import annotations

from fastapi import APIRouter

from mayfly.api.v1 import codes, costs, logs, projects, schedules, targets, tasks

router = APIRouter(prefix="/v1")
for _part in (codes, tasks, logs, schedules, targets, projects, costs):
    router.include_router(_part.router)

__all__ = ["router"]
