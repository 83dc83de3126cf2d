"""IronWorker's error shape and status codes: ``{"msg": ...}`` with 400, 401, 404, 406, 413, 501, 503.

Core errors carry Mayfly's own HTTP statuses (409 for conflicts, 413 for sizes,
...). IronWorker's API answered bad input with 400, missing fields or a wrong
Content-Type with 406 and had no 409, so every route of this API goes through
:class:`IronRoute`, which renders errors the way IronWorker did. A body over its
cap answers 413 (docs/ironworker.md), as the native API does.

:class:`IronRoute` also caps the request body before anything reads it: a
``Content-Length`` over the route's cap answers 413 at once, and a body sent
without one (chunked) stops being read, with 413, as soon as it passes the cap.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from mayfly.api.app import MAX_JSON_BODY
from mayfly.api.errors import BodyTooLarge
from mayfly.api.routes import OneHopRoute, capped_receive
from mayfly.core.codes import human_size
from mayfly.core.errors import Conflict, InvalidInput, MayflyError, NotFound, PayloadTooLarge, UploadTooLarge
from mayfly.core.tokens import Unauthorized

#: How a route caps its body: (the largest body in bytes, the error that refuses a larger one).
BodyCap = Callable[[Request], tuple[int, MayflyError]]
F = TypeVar("F", bound=Callable[..., Any])
_CAPS: dict[Callable[..., Any], BodyCap] = {}


def body_cap(cap: BodyCap) -> Callable[[F], F]:
    """Give an endpoint its own body cap (the default is :data:`~mayfly.api.app.MAX_JSON_BODY`)."""

    def mark(endpoint: F) -> F:
        _CAPS[endpoint] = cap
        return endpoint

    return mark


def json_cap(request: Request) -> tuple[int, MayflyError]:
    """The cap of a JSON request body: IronWorker's 64 KB payloads fit, with room for bulk requests."""
    return MAX_JSON_BODY, BodyTooLarge(f"request body is larger than the {human_size(MAX_JSON_BODY)} limit")


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
    if isinstance(exc, PayloadTooLarge | UploadTooLarge | BodyTooLarge):
        return 413
    if isinstance(exc, InvalidInput | Conflict):
        # State conflicts (409) were plain bad requests in IronWorker.
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
    """A route whose body is capped before it is read and whose Mayfly errors (in dependencies too) are IronWorker's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        cap_of = _CAPS.get(getattr(self.endpoint, "__wrapped__", self.endpoint), json_cap)

        async def route(request: Request) -> Response:
            try:
                limit, too_large = cap_of(request)
                length = request.headers.get("content-length", "")
                if length.isdigit() and int(length) > limit:
                    raise too_large
                return await handler(Request(request.scope, capped_receive(request.receive, limit, too_large)))
            except MayflyError as exc:
                return error_response(exc)

        return route
