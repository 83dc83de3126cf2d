"""IronWorker's error shape and status codes: ``{"msg": ...}`` with 400, 401, 404, 406, 503.

Core errors carry Mayfly's own HTTP statuses (409 for conflicts, 413 for sizes,
...). IronWorker's API answered bad input with 400, missing fields or a wrong
Content-Type with 406, and had no 409 or 413, so every route of this API goes
through :class:`IronRoute`, which renders errors the way IronWorker did.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from mayfly.api.routes import OneHopRoute
from mayfly.core.errors import Conflict, InvalidInput, MayflyError, NotFound
from mayfly.core.tokens import Unauthorized


class MissingField(InvalidInput):
    """A required field is missing, or the body is not JSON: IronWorker's 406."""

    code = "missing_field"
    http_status = 406


def iron_status(exc: MayflyError) -> int:
    """The status IronWorker would have answered for this error."""
    if isinstance(exc, MissingField):
        return 406
    if isinstance(exc, Unauthorized):
        return 401
    if isinstance(exc, InvalidInput | Conflict):
        # Oversized payloads (413) and state conflicts (409) were plain bad requests in IronWorker.
        return 400
    if isinstance(exc, NotFound):
        return 404
    return exc.http_status


def error_response(exc: MayflyError) -> JSONResponse:
    """``{"msg": ...}`` with IronWorker's status (and Retry-After when the error has one)."""
    headers = {}
    retry_after = exc.details.get("retry_after") if exc.details else None
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return JSONResponse({"msg": exc.message}, status_code=iron_status(exc), headers=headers)


class IronRoute(OneHopRoute):
    """A route whose Mayfly errors (in dependencies too) are rendered as IronWorker errors."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except MayflyError as exc:
                return error_response(exc)

        return route
