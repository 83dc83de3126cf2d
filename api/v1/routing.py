"""The route class of every ``/v1`` route: authenticate first, then cap the body before anything reads it.

Order per request:

1. :func:`~mayfly.api.v1.auth.authenticate` (401, 429) — before any byte of the body is read;
2. a ``Content-Length`` over the route's cap → 413 at once;
3. the body is read through a counting ``receive`` that stops at the cap → 413.
   JSON bodies (at most :data:`~mayfly.api.app.MAX_JSON_BODY`) are read here, before
   FastAPI parses them; a code upload (an :func:`upload` endpoint sent as
   ``multipart/form-data``) streams to its handler, capped at the upload limit plus
   :data:`UPLOAD_OVERHEAD` for the ``data`` field and the multipart framing.

Doing this in the route class rather than in dependencies matters: FastAPI reads
and parses a body before it solves dependencies.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from fastapi import APIRouter, Depends, Request, Response
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from mayfly.api.app import MAX_JSON_BODY
from mayfly.api.deps import get_mayfly
from mayfly.api.errors import BodyTooLarge
from mayfly.api.openapi import COMMON
from mayfly.api.routes import OneHopRoute, capped_receive
from mayfly.api.v1.auth import authenticate, bearer_scheme
from mayfly.core.codes import human_size
from mayfly.core.errors import UploadTooLarge

#: Room for the ``data`` field and the multipart boundaries next to the zip itself.
UPLOAD_OVERHEAD = 1024 * 1024

_UPLOADS: set[Callable[..., Any]] = set()
F = TypeVar("F", bound=Callable[..., Any])


def upload(endpoint: F) -> F:
    """Mark an endpoint that takes a multipart code upload (capped at the upload limit, streamed)."""
    _UPLOADS.add(endpoint)
    return endpoint


def v1_router(tag: str) -> APIRouter:
    """A router whose routes are :class:`V1Route` (every ``/v1`` module builds its router here)."""
    return APIRouter(route_class=V1Route, tags=[tag], dependencies=[Depends(bearer_scheme)], responses=COMMON)


class V1Route(OneHopRoute):
    """An API route that authenticates the caller and caps the request body before the handler runs."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        takes_upload = inspect.unwrap(self.endpoint) in _UPLOADS

        async def guarded(request: Request) -> Response:
            await authenticate(request)
            streamed = takes_upload and _is_multipart(request)
            limit = _upload_limit(request) if streamed else MAX_JSON_BODY
            too_large = _too_large_error(request, streamed)
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise too_large
            receive = capped_receive(request.receive, limit, too_large)
            if not streamed:
                receive = await _buffered(receive)
            return await handler(Request(request.scope, receive))

        return guarded


def _is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def _upload_limit(request: Request) -> int:
    return get_mayfly(request).limits.max_upload_bytes + UPLOAD_OVERHEAD


def _too_large_error(request: Request, streamed: bool) -> Exception:
    if streamed:
        cap = get_mayfly(request).limits.max_upload_bytes
        return UploadTooLarge(f"code package is larger than the {human_size(cap)} upload limit")
    return BodyTooLarge(f"request body is larger than the {human_size(MAX_JSON_BODY)} limit")


async def _buffered(receive: Receive) -> Receive:
    """Read the whole (capped) body now, then replay it; later calls go on to the client (disconnects).

    A client that hangs up before its body is complete raises ``ClientDisconnect`` (one INFO line in the
    server's log), rather than having the part that arrived parsed as if it were the whole body.
    """
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    pending: list[Message] = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay
