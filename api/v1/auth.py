"""Who is calling: the bearer token, checked on every request, and the project's rate limit.

:class:`~mayfly.api.v1.routing.V1Route` calls :func:`authenticate` before the
request body is read, so an unauthenticated or rate-limited caller costs one
token lookup and never a body parse. Handlers then take the caller with the
:data:`CallerDep` dependency; every object they touch is looked up within
``caller.project_id``.

The native API takes the token from the ``Authorization`` header only (``Bearer``,
or IronWorker's ``OAuth`` scheme), not from the query string: URLs end up in
access logs, shell histories and ``Referer`` headers.
"""

from __future__ import annotations

import threading
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from mayfly.api.deps import Caller, get_mayfly
from mayfly.api.errors import RateLimited
from mayfly.api.v1.ratelimit import RateLimiter, retry_after
from mayfly.core.tokens import Unauthorized

_STATE_KEY = "mayfly_caller"
_limiter_lock = threading.Lock()

#: Declares the bearer scheme in the OpenAPI document (the check itself is :func:`authenticate`).
bearer_scheme = HTTPBearer(auto_error=False, description="A project token: `Authorization: Bearer mfy_...`")


def header_secret(request: Request) -> str | None:
    """The token of ``Authorization: Bearer …`` (or ``OAuth …``); never read from the URL."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() in ("bearer", "oauth") and value.strip():
        return value.strip()
    return None


def limiter(request: Request) -> RateLimiter:
    """The app's rate limiter, made on first use from ``MAYFLY_API_RATE``/``MAYFLY_API_BURST``."""
    state = request.app.state
    found: RateLimiter | None = getattr(state, "mayfly_rate_limiter", None)
    if found is None:
        with _limiter_lock:
            found = getattr(state, "mayfly_rate_limiter", None)
            if found is None:
                found = RateLimiter.from_env()
                state.mayfly_rate_limiter = found
    return found


async def authenticate(request: Request) -> Caller:
    """Check the token (expiry and revocation included) and spend one request of its project's budget."""
    mf = get_mayfly(request)
    token = await run_in_threadpool(mf.tokens.authenticate, header_secret(request))
    wait = limiter(request).take(token.project_id)
    if wait > 0:
        seconds = retry_after(wait)
        raise RateLimited(f"too many requests for this project: retry in {seconds} s", retry_after=seconds)
    caller = Caller(token)
    setattr(request.state, _STATE_KEY, caller)
    return caller


async def current_caller(request: Request) -> Caller:
    """Dependency: the caller :func:`authenticate` admitted for this request (async: no thread hop)."""
    caller = getattr(request.state, _STATE_KEY, None)
    if not isinstance(caller, Caller):
        # Only reachable for a route not built by v1_router(); refuse rather than guess.
        raise Unauthorized("missing token: send 'Authorization: Bearer <token>'")
    return caller


CallerDep = Annotated[Caller, Depends(current_caller)]
