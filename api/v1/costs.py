"""``/v1`` cost and budget routes: a target's price, the project's cost by code and target, its budget.

Read-only, like ``/v1/targets``: prices and budgets are set by the operator on the
server's home (``mayfly target price --set``, ``mayfly project budget``), so a
leaked project token cannot raise its own budget.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import Query

from mayfly.api.openapi import errors
from mayfly.api.v1.deps import CallerDep, MayflyDep
from mayfly.api.v1.routing import v1_router
from mayfly.core.costs import parse_since
from mayfly.core.pricing import CURRENCY

router = v1_router("costs")


@router.get("/targets/{name}/price", responses=errors(404))
def price(name: str, caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """The price in use on a target (per second and per hour), and where it came from."""
    mf.targets.get(name)
    return {"target": name, **mf.costs.get(name).to_json()}


@router.get("/cost", responses=errors(400))
def cost(
    caller: CallerDep,
    mf: MayflyDep,
    since: Annotated[
        str,
        Query(
            description="Since when: 7d, 24h, 30m, 2w or a date (UTC).",
            max_length=40,
            pattern=r"^([0-9]{1,6}[mhdw]|[0-9]{4}-[0-9]{2}-[0-9]{2}[0-9T:.+Z-]*)$",
        ),
    ] = "7d",
) -> dict[str, Any]:
    """The project's cost, attempts and billed seconds since ``since``, by code and target."""
    start = parse_since(since, time.time())
    rows = mf.costs.summary(caller.project_id, start)
    return {"since": start, "currency": CURRENCY, "total": sum(r["cost"] for r in rows), "rows": rows}


@router.get("/cost/tasks", responses=errors(400))
def task_costs(
    caller: CallerDep,
    mf: MayflyDep,
    ids: Annotated[list[str], Query(alias="id", description="Task ids (repeatable, 1000 at most).")],
) -> dict[str, Any]:
    """The cost of each of these tasks of the project (tasks of other projects are left out)."""
    found = mf.costs.cost_of(ids[:1000], project_id=caller.project_id)
    return {"currency": CURRENCY, "costs": found}


@router.get("/budget")
def budget(caller: CallerDep, mf: MayflyDep) -> dict[str, Any]:
    """The project's budget and what counts toward it now (spent today and this month, unfinished tasks)."""
    return mf.budgets.status(caller.project_id)
