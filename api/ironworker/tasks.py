"""Tasks: bulk queue, webhook, list with IronWorker's filters, info, log, cancel, retry, progress.

Queueing is all or none: every task of a request is validated, then all are
stored in one transaction (``TaskService.queue_batch``). IronWorker payloads are
any string ("usually JSON"): a payload is stored and delivered to the worker's
payload file byte for byte, JSON or not (see :func:`~.mapping.payload_text`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from mayfly.api.deps import MayflyDep
from mayfly.api.ironworker.auth import ProjectId
from mayfly.api.ironworker.body import Fields, items, json_body, to_int
from mayfly.api.ironworker.errors import IronRoute, MissingField, body_cap
from mayfly.api.ironworker.mapping import STATUS_FLAGS, page_window, payload_text, status_filter, task_json
from mayfly.core.app import Mayfly
from mayfly.core.errors import InvalidInput, MayflyError, NotFound, PayloadTooLarge, TargetNotFound
from mayfly.core.records import Task
from mayfly.core.tasks import TaskFilter, TaskOptions, TaskRequest

router = APIRouter(route_class=IronRoute, tags=["ironworker"])

JsonBody = Annotated[Any, Depends(json_body)]

#: IronWorker's limit on webhook bodies (they become the payload).
WEBHOOK_MAX_BYTES = 64 * 1024


def target_of(mf: Mayfly, cluster: str | None) -> str | None:
    """IronWorker's ``cluster`` is a Mayfly target; ``default`` (or none) means the code's own target."""
    if cluster is None or cluster == "default":
        return None
    try:
        mf.targets.get(cluster)
    except TargetNotFound:
        known = ", ".join(t.name for t in mf.targets.list())
        raise InvalidInput(f"unknown cluster {cluster!r}: clusters are Mayfly targets ({known})") from None
    return cluster


def task_options(
    mf: Mayfly, priority: int | None, timeout: int | None, delay: int | None, cluster: str | None, label: str | None
) -> TaskOptions:
    """IronWorker's task settings; a timeout of 0 (ironcli's "not given") takes the code's default."""
    return TaskOptions(
        priority=priority,
        timeout=timeout or None,
        delay=delay or 0,
        target=target_of(mf, cluster),
        label=label,
    )


def new_task(mf: Mayfly, f: Fields) -> TaskRequest:
    """One entry of ``{"tasks": [...]}`` (IronWorker's ``name`` and ``sync`` are accepted and ignored)."""
    return TaskRequest(
        code_name=f.required_str("code_name"),
        payload=payload_text(f.raw("payload"), f"{f.where}.payload"),
        options=task_options(
            mf,
            f.int_or_none("priority"),
            f.int_or_none("timeout"),
            f.int_or_none("delay"),
            f.str_or_none("cluster"),
            f.str_or_none("label"),
        ),
    )


def queue_all(mf: Mayfly, project_id: str, tasks: Sequence[TaskRequest]) -> list[Task]:
    """Queue every task in one transaction; a bad one (reported as ``tasks[i]``) stores none."""
    return mf.tasks.queue_batch(project_id, tasks, text_payload=True, where="tasks[{i}]")


@router.post("/tasks")
def queue_tasks(pid: ProjectId, body: JsonBody, mf: MayflyDep) -> dict[str, Any]:
    """Queue tasks in bulk: ``{"tasks": [{"code_name", "payload", ...}]}``."""
    tasks = [new_task(mf, f) for f in items(body, "tasks")]
    queued = queue_all(mf, pid, tasks)
    return {"msg": "Queued up", "tasks": [{"id": t.id} for t in queued]}


def webhook_cap(request: Request) -> tuple[int, MayflyError]:
    """A webhook body is the payload: IronWorker's 64 KB."""
    return WEBHOOK_MAX_BYTES, PayloadTooLarge(f"webhook body is larger than {WEBHOOK_MAX_BYTES} bytes (64 KB)")


@router.post("/tasks/webhook")
@body_cap(webhook_cap)
async def webhook(pid: ProjectId, request: Request, mf: MayflyDep) -> dict[str, Any]:
    """Queue a task whose payload is the raw request body (≤ 64 KB), byte for byte; settings come from the query."""
    q = request.query_params
    code_name = q.get("code_name")
    if not code_name:
        raise MissingField("code_name is required in the query string")
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput("the webhook body must be UTF-8 text (payloads are stored as text)") from None
    options = task_options(
        mf,
        to_int(q.get("priority"), "priority"),
        to_int(q.get("timeout"), "timeout"),
        to_int(q.get("delay"), "delay"),
        q.get("cluster") or None,
        q.get("label") or None,
    )
    (task,) = queue_all(mf, pid, [TaskRequest(code_name, text, options)])
    return {"id": task.id, "msg": "Queued up."}


def _flag(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in ("", "0", "false", "no")


@router.get("/tasks")
def list_tasks(pid: ProjectId, request: Request, mf: MayflyDep) -> dict[str, Any]:
    """Tasks newest first, filtered by code, status flags (OR-ed), creation time, label and cluster; one page."""
    q = request.query_params
    offset, limit = page_window(to_int(q.get("page"), "page"), to_int(q.get("per_page"), "per_page"))
    statuses = status_filter(flag for flag in STATUS_FLAGS if _flag(q.get(flag)))
    cluster = q.get("cluster")
    flt = TaskFilter(
        status=statuses,
        code_name=q.get("code_name") or None,
        label=q.get("label") or None,
        target=cluster if cluster and cluster != "default" else None,
        created_from=to_int(q.get("from_time"), "from_time"),
        created_to=to_int(q.get("to_time"), "to_time"),
        offset=offset,
        limit=limit,
    )
    tasks = mf.tasks.list(pid, flt)
    return {"tasks": [task_json(t) for t in tasks]}


@router.get("/tasks/{task_id}")
def get_task(pid: ProjectId, task_id: str, mf: MayflyDep) -> dict[str, Any]:
    """One task with IronWorker's fields."""
    return task_json(mf.tasks.get(pid, task_id))


def _log(mf: Mayfly, project_id: str, task_id: str) -> Response:
    task = mf.tasks.get(project_id, task_id)
    if task.attempt < 1:
        # IronWorker's clients poll on 404 until a log exists (wait_for_task_log).
        raise NotFound("Log not found: the task has not started")
    data = b"".join(mf.tasks.log(project_id, task_id))
    return Response(data, media_type="text/plain; charset=utf-8")


@router.get("/tasks/{task_id}/log")
def task_log(pid: ProjectId, task_id: str, mf: MayflyDep) -> Response:
    """The task's log (stdout and stderr of its latest attempt) as text/plain."""
    return _log(mf, pid, task_id)


@router.get("/tasks/{task_id}/outlog")
def task_outlog(pid: ProjectId, task_id: str, mf: MayflyDep) -> Response:
    """IronWorker's stdout-only log of "sync" tasks; Mayfly keeps one log, so this is the same as ``/log``."""
    return _log(mf, pid, task_id)


@router.post("/tasks/{task_id}/cancel")
def cancel_task(pid: ProjectId, task_id: str, mf: MayflyDep) -> dict[str, Any]:
    """Cancel a queued or running task."""
    mf.tasks.cancel(pid, task_id)
    return {"msg": "Cancelled"}


@router.post("/tasks/{task_id}/retry")
def retry_task(pid: ProjectId, task_id: str, body: JsonBody, mf: MayflyDep) -> dict[str, Any]:
    """Queue a new task repeating a finished one, after ``delay`` seconds."""
    delay = Fields(body, "").int_or_none("delay") if body is not None else None
    task = mf.tasks.retry(pid, task_id, delay or 0)
    return {"msg": "Queued up", "tasks": [{"id": task.id}]}


@router.post("/tasks/{task_id}/progress")
def set_progress(pid: ProjectId, task_id: str, body: JsonBody, mf: MayflyDep) -> dict[str, Any]:
    """Record a task's progress: ``percent`` (0-100) and ``msg``, shown by ``GET /tasks/{id}``."""
    f = Fields(body if body is not None else {}, "")
    percent = f.int_or_none("percent")
    if percent is not None and not 0 <= percent <= 100:
        raise InvalidInput("percent must be between 0 and 100")
    msg = f.raw("msg")
    if msg is not None and not isinstance(msg, str):
        raise InvalidInput("msg must be a string")
    if msg is not None and len(msg.encode()) > mf.limits.max_payload_bytes:
        raise InvalidInput(f"msg is larger than {mf.limits.max_payload_bytes} bytes")
    mf.tasks.set_progress(pid, task_id, percent, msg)
    return {"msg": "Progress set"}
