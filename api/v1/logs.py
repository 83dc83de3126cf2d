"""``GET /v1/tasks/{id}/log``: a task's log as text, or with ``follow=true`` streamed as it grows.

A followed log is one chunked ``text/plain`` response: the bytes written so far,
then new bytes as the runner stores them (polled every :data:`POLL` seconds),
a marker line when a new attempt starts (the same line ``mayfly task log
--follow`` prints locally), and the end of the response when the task ends. A
client that wants the final status reads the task after the stream ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Query
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from mayfly.api.openapi import errors
from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.routing import v1_router
from mayfly.core.app import Mayfly
from mayfly.core.errors import InvalidInput

router = v1_router("tasks")

#: Seconds between two looks at a followed task.
POLL = 0.25
_TEXT = "text/plain; charset=utf-8"


_LOG_RESPONSE = {"description": "The log as UTF-8 text.", "content": {"text/plain": {"schema": {"type": "string"}}}}


@router.get(
    "/tasks/{task_id}/log", response_class=StreamingResponse, responses={200: _LOG_RESPONSE, **errors(400, 404)}
)
async def log(
    task_id: str,
    caller: CallerDep,
    mf: MayflyDep,
    attempt: Annotated[int | None, Query(ge=1, description="Attempt number (default: the latest).")] = None,
    follow: Annotated[bool, Query(description="Keep the response open and stream until the task ends.")] = False,
) -> StreamingResponse:
    """The task's log (stdout and stderr of its container)."""
    pid = caller.project_id
    if follow:
        if attempt is not None:
            raise InvalidInput("follow=true streams the latest attempt; it takes no attempt")
        await run_in_threadpool(mf.tasks.get, pid, task_id)  # 404 before the stream starts
        return StreamingResponse(_follow(mf, pid, task_id), media_type=_TEXT, headers={"X-Accel-Buffering": "no"})
    chunks = await run_in_threadpool(mf.tasks.log, pid, task_id, attempt)
    return StreamingResponse(chunks, media_type=_TEXT)


async def _follow(mf: Mayfly, project_id: str, task_id: str) -> AsyncIterator[bytes]:
    pos = 0
    attempt = 0
    while True:
        task = await run_in_threadpool(mf.tasks.get, project_id, task_id)
        if task.attempt != attempt:
            if attempt and pos:
                yield f"\n[mayfly: attempt {attempt} ended; attempt {task.attempt} starting]\n".encode()
            attempt, pos = task.attempt, 0
        terminal = task.task_status.terminal
        chunks = await run_in_threadpool(_read, mf, project_id, task_id, attempt, pos, terminal)
        for chunk in chunks:
            pos += len(chunk)
            yield chunk
        if terminal:
            return
        await asyncio.sleep(POLL)


def _read(mf: Mayfly, project_id: str, task_id: str, attempt: int, start: int, marker: bool) -> list[bytes]:
    return list(mf.tasks.log(project_id, task_id, attempt or None, start, with_marker=marker))
