"""The base route of both APIs (a sync endpoint costs one thread-pool hop per request, not two) and their body cap.

FastAPI runs a plain ``def`` endpoint in its thread pool and then, because the
endpoint was not a coroutine, validates the returned value in the thread pool
again. Each hop costs about half a millisecond on 2 cores, as much as a task
insert. :class:`OneHopRoute` hands FastAPI a coroutine that runs the endpoint in
the pool once; the response is then validated on the event loop (microseconds
for the plain dicts these endpoints return).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.types import Message, Receive


def one_hop(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    """``endpoint`` as a coroutine function that runs it in the thread pool (coroutines are returned as they are)."""
    if inspect.iscoroutinefunction(endpoint) or inspect.isasyncgenfunction(endpoint):
        return endpoint

    # functools.wraps keeps the signature (and, through __wrapped__, the module whose globals
    # FastAPI resolves the annotations in), so parameters and dependencies stay as declared.
    @functools.wraps(endpoint)
    async def in_pool(*args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(endpoint, *args, **kwargs)

    return in_pool


class OneHopRoute(APIRoute):
    """An :class:`APIRoute` whose sync endpoint runs through :func:`one_hop`."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, one_hop(endpoint), **kwargs)


def capped_receive(receive: Receive, limit: int, error: Exception) -> Receive:
    """``receive`` that raises ``error`` as soon as more than ``limit`` body bytes have arrived."""
    seen = 0

    async def capped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise error
        return message

    return capped
