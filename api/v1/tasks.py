"""``/v1/tasks``: queue (one or bulk), list with filters and a cursor, get, result, events, cancel, retry.

Logs are in :mod:`mayfly.api.v1.logs`; cancelling every task of a code is
``POST /v1/codes/{name}/cancel_all`` (:mod:`mayfly.api.v1.codes`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from mayfly.api.openapi import errors
from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.models import RetryBody, TaskBulk, TaskCreate, bounds, payload_text
from mayfly.api.v1.routing import v1_router
from mayfly.core.models import TaskStatus
from mayfly.core.records import Task
from mayfly.core.tasks import TaskFilter

router = v1_router("tasks")

#: Largest page of ``GET /v1/tasks`` (core refuses more, in the words the CLI uses too).
MAX_PAGE = 1000
#: A ``status`` filter value, for the OpenAPI document (core checks it).
STATUS_ITEM = {"type": "string", "enum": [s.value for s in TaskStatus]}


def task_json(task: Task, *, with_payload: bool = True, cost: float | None = None) -> dict[str, Any]:
    """A task as the API shows it: its record, the webhook URL it will call, if any, and its cost so far (USD)."""
    return {**task.to_json(with_payload=with_payload), "webhook": task.webhook, "cost": round(cost or 0.0, 12)}


@router.post("/tasks", status_code=201, responses=errors(400, 402, 404, 501))
def queue(body: TaskCreate, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Queue one task of the code's latest revision."""
    task = mf.tasks.queue(caller.project_id, body.code_name, payload_text(body.payload), body.options())
    return task_json(task)


@router.post("/tasks/bulk", status_code=201, responses=errors(400, 402, 404, 501))
def queue_bulk(body: TaskBulk, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Queue one task per payload in one transaction: all of them, or on any bad payload none."""
    payloads = [payload_text(p) for p in body.payloads]
    tasks = mf.tasks.queue_many(caller.project_id, body.code_name, payloads, body.options())
    return {"tasks": [task_json(t) for t in tasks]}


@router.get("/tasks", responses=errors(400))
def list_tasks(
    caller: CallerDep,
    mf: MayflyDep,
    status: Annotated[
        list[str] | None,
        Query(description="Filter by status (repeatable).", json_schema_extra={"items": STATUS_ITEM}),
    ] = None,
    code: Annotated[str | None, Query(description="Filter by code name.")] = None,
    label: Annotated[str | None, Query(description="Filter by label.")] = None,
    limit: Annotated[int, Query(description="Page size, 1 to 1000.", json_schema_extra=bounds(1, MAX_PAGE))] = 30,
    before: Annotated[str | None, Query(description="Cursor: tasks older than this id (a page's `next`).")] = None,
) -> dict[str, Any]:
    """Tasks newest first, without payloads; ``next`` is the cursor of the following page (null at the end)."""
    flt = TaskFilter(status=status or (), code_name=code, label=label, before=before, limit=limit)
    tasks = mf.tasks.list(caller.project_id, flt)
    costs = mf.costs.cost_of([t.id for t in tasks])
    return {
        "tasks": [task_json(t, with_payload=False, cost=costs.get(t.id)) for t in tasks],
        "next": tasks[-1].id if len(tasks) == limit else None,
    }


@router.get("/tasks/{task_id}", responses=errors(404))
def get_task(task_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """One task, with its payload and result, and each attempt's target, billed seconds and cost."""
    task = mf.tasks.get(caller.project_id, task_id)
    attempts = [a.to_json() for a in mf.costs.attempts(task.id)]
    return {**task_json(task, cost=sum(a["cost"] for a in attempts)), "attempts": attempts}


@router.get("/tasks/{task_id}/result", responses=errors(404))
def result(task_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """What the task wrote to ``/mayfly/result.json`` (null until it has, or if it never does)."""
    task = mf.tasks.get(caller.project_id, task_id)
    return {"id": task.id, "status": task.status, "exit_code": task.exit_code, "result": task.to_json()["result"]}


@router.get("/tasks/{task_id}/events", responses=errors(404))
def events(task_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """The runner events recorded for the task, oldest first."""
    return {"events": [e.to_json() for e in mf.tasks.events(caller.project_id, task_id)]}


@router.get("/tasks/{task_id}/deliveries", responses=errors(404))
def deliveries(task_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """The completion webhook's delivery attempts, oldest first."""
    task = mf.tasks.get(caller.project_id, task_id)
    found = mf.webhooks.deliveries(caller.project_id, task.id)
    return {"url": task.webhook, "deliveries": [d.to_json() for d in found]}


@router.post("/tasks/{task_id}/cancel", responses=errors(404, 409))
def cancel(task_id: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """Cancel: a queued task ends at once, a running one once its container has stopped."""
    return task_json(mf.tasks.cancel(caller.project_id, task_id))


@router.post("/tasks/{task_id}/retry", status_code=201, responses=errors(400, 402, 404, 409, 501))
def retry(task_id: str, caller: CallerDep, mf: MayflyDep, body: RetryBody | None = None) -> dict[str, Any]:
    """Queue a new task that repeats a finished one; returns the new task."""
    delay = body.delay if body is not None else 0
    return task_json(mf.tasks.retry(caller.project_id, task_id, delay))
