"""Who is calling: IronWorker's ``Authorization: OAuth TOKEN`` (or ``Bearer``, or ``?oauth=``) and the project.

A Mayfly token is bound to one project; the ``{project_id}`` of the URL must be
that project. Another project's id answers 404 "Project not found", exactly
like an id that does not exist, so ids of other tenants cannot be probed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from mayfly.api.deps import bearer_secret, get_mayfly
from mayfly.api.errors import RateLimited
from mayfly.api.v1.auth import limiter
from mayfly.api.v1.ratelimit import retry_after
from mayfly.core.errors import NotFound
from mayfly.core.tokens import Unauthorized


def caller(request: Request) -> str:
    """The project of a valid token (401 otherwise), once the project's request budget allows (429 otherwise)."""
    mf = get_mayfly(request)
    secret = bearer_secret(request)
    if not secret:
        raise Unauthorized("Invalid authentication: send 'Authorization: OAuth TOKEN' or ?oauth=TOKEN")
    try:
        token = mf.tokens.authenticate(secret)
    except Unauthorized as exc:
        raise Unauthorized(f"Invalid authentication: {exc.message}") from None
    # The same per-project budget as the native API: a project cannot dodge its limit through /2.
    wait = limiter(request).take(token.project_id)
    if wait > 0:
        seconds = retry_after(wait)
        raise RateLimited(f"Too many requests for this project: retry in {seconds} s", retry_after=seconds)
    return token.project_id


def project(project_id: str, request: Request) -> str:
    """The project id of the URL, once the token is valid and bound to it."""
    if caller(request) != project_id:
        raise NotFound("Project not found")
    return project_id


#: The calling project's id, for route signatures.
ProjectId = Annotated[str, Depends(project)]
#: The token's project, for routes outside ``/projects/{id}`` (clusters, stacks).
CallerProject = Annotated[str, Depends(caller)]
