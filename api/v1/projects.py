"""``GET /v1/project``: the project the caller's token belongs to.

No route creates projects or tokens. A token is bound to exactly one project and
there is no administrator role yet, so an API route that minted tokens would let
any holder of a token make more (and outlive its revocation). Operators create
projects and tokens with ``mayfly project create`` and ``mayfly token create``
on the server's home.
"""

from __future__ import annotations

from typing import Any

from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.routing import v1_router
from mayfly.core.records import iso

router = v1_router("projects")


@router.get("/project")
def project(caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """The caller's project, its tasks by status, and the token in use (never its secret)."""
    found = mf.projects.by_id(caller.project_id)
    return {
        "id": found.id,
        "name": found.name,
        "created_at": iso(found.created_at),
        "tasks": mf.tasks.count_by_status(found.id),
        "token": caller.token.to_json(),
    }
