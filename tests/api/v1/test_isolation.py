"""Every ``/v1`` route that takes an id answers 404 for another project's object: walked from the route table.

The table below maps each such route (method and path template) to a case that
creates the object in project ``alpha``. The test calls the route with ``beta``'s
token and wants 404 (and the object untouched), then with ``alpha``'s token and
wants anything but 404, which proves the case built a real object. A route
missing from the table fails the test, so a new route cannot ship without a case.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi.routing import APIRoute

from mayfly.core.codes import CodeOptions
from mayfly.core.schedules import ScheduleSpec
from mayfly.core.tasks import TaskOptions

IMAGE = "mayfly-test/busybox:latest"


@dataclass
class Case:
    """Path parameters naming an object of project A, and the body to send, if any."""

    params: dict[str, str]
    json: Any = None
    shared: bool = False  # a server-wide object every project may read (targets)
    query: dict[str, str] = field(default_factory=dict)


Make = Callable[[Any, str], Case]  # (mf, project A's id) -> Case


def _code(mf: Any, pid: str) -> Case:
    name = f"c{len(mf.codes.list(pid))}/x"  # a name with '/' exercises {name:path}
    mf.codes.register(pid, name, IMAGE, CodeOptions(command="true"))
    return Case({"name": name})


def _zip_code(mf: Any, pid: str) -> Case:
    from zipfile import ZipFile

    buf = io.BytesIO()
    with ZipFile(buf, "w") as zf:
        zf.writestr("main.sh", "echo hi\n")
    name = f"z{len(mf.codes.list(pid))}"
    mf.codes.push(pid, name, io.BytesIO(buf.getvalue()), runtime="shell", options=CodeOptions())
    return Case({"name": name})


def _queued_task(mf: Any, pid: str) -> Case:
    code = _code(mf, pid).params["name"]
    task = mf.tasks.queue(pid, code, "{}", TaskOptions(delay=3600))
    return Case({"task_id": task.id})


def _finished_task(mf: Any, pid: str) -> Case:
    case = _queued_task(mf, pid)
    mf.tasks.cancel(pid, case.params["task_id"])
    return case


def _schedule(mf: Any, pid: str) -> Case:
    code = _code(mf, pid).params["name"]
    return Case({"schedule_id": mf.schedules.create(pid, code, ScheduleSpec(every="1h")).id})


def _target(mf: Any, pid: str) -> Case:
    return Case({"name": "local"}, shared=True)


CASES: dict[tuple[str, str], Make] = {
    ("GET", "/v1/codes/{name:path}"): _code,
    ("DELETE", "/v1/codes/{name:path}"): _code,
    ("GET", "/v1/codes/{name:path}/revisions"): _code,
    ("GET", "/v1/codes/{name:path}/download"): _zip_code,
    ("POST", "/v1/codes/{name:path}/pause"): _code,
    ("POST", "/v1/codes/{name:path}/resume"): _code,
    ("POST", "/v1/codes/{name:path}/cancel_all"): _code,
    ("GET", "/v1/tasks/{task_id}"): _queued_task,
    ("GET", "/v1/tasks/{task_id}/result"): _queued_task,
    ("GET", "/v1/tasks/{task_id}/events"): _queued_task,
    ("GET", "/v1/tasks/{task_id}/deliveries"): _queued_task,
    ("GET", "/v1/tasks/{task_id}/log"): _finished_task,
    ("POST", "/v1/tasks/{task_id}/cancel"): _queued_task,
    ("POST", "/v1/tasks/{task_id}/retry"): _finished_task,
    ("GET", "/v1/schedules/{schedule_id}"): _schedule,
    ("POST", "/v1/schedules/{schedule_id}/pause"): _schedule,
    ("POST", "/v1/schedules/{schedule_id}/resume"): _schedule,
    ("POST", "/v1/schedules/{schedule_id}/cancel"): _schedule,
    ("GET", "/v1/targets/{name}"): _target,
    ("GET", "/v1/targets/{name}/price"): _target,
}


def _routes_with_ids(app: Any) -> list[tuple[str, str]]:
    """(method, path template) of every ``/v1`` route with a path parameter, however routers were included."""
    try:
        from fastapi.routing import iter_route_contexts  # FastAPI >= 0.165 keeps included routers unflattened
    except ImportError:  # pragma: no cover - older FastAPI lists every route in app.routes
        contexts: list[Any] = [r for r in app.routes if isinstance(r, APIRoute)]
    else:
        contexts = list(iter_route_contexts(app.routes))
    found = []
    for route in contexts:
        path, methods = getattr(route, "path", ""), getattr(route, "methods", None) or ()
        if path.startswith("/v1/") and "{" in path:
            found.extend((method, path) for method in sorted(methods))
    return sorted(found)


def _openapi_operations_with_ids(client: Any) -> list[tuple[str, str]]:
    paths = client.get("/openapi.json").json()["paths"]
    return sorted(
        (method.upper(), path)
        for path, ops in paths.items()
        if path.startswith("/v1/") and "{" in path
        for method in ops
    )


def _url(path: str, params: dict[str, str]) -> str:
    for key, value in params.items():
        path = path.replace(f"{{{key}:path}}", value).replace(f"{{{key}}}", value)
    return path


def _state(mf: Any, pid: str, case: Case) -> Any:
    """What a refused call must leave unchanged: the object as project A sees it."""
    if "task_id" in case.params:
        return mf.tasks.get(pid, case.params["task_id"]).to_json()
    if "schedule_id" in case.params:
        return mf.schedules.get(pid, case.params["schedule_id"]).to_json()
    if case.shared:
        return None
    code, rev = mf.codes.get(pid, case.params["name"])
    return code.to_json(rev)


def test_every_route_with_an_id_hides_other_projects_objects(two: Any) -> None:
    routes = _routes_with_ids(two.client.app)
    assert routes, "no /v1 route with a path parameter: the walk found nothing"
    # The walk sees what the OpenAPI document describes (no route hidden from it).
    assert sorted((m, p.replace(":path}", "}")) for m, p in routes) == _openapi_operations_with_ids(two.client)
    problems: list[str] = []
    for method, path in routes:
        make = CASES.get((method, path))
        if make is None:
            problems.append(f"{method} {path}: no case in CASES (add one that creates the object in project A)")
            continue
        case = make(two.mf, two.a)
        url = _url(path, case.params)
        before = _state(two.mf, two.a, case)
        theirs = two.client.request(method, url, headers=two.as_b, json=case.json, params=case.query)
        if case.shared:
            if theirs.status_code != 200:
                problems.append(f"{method} {path}: a shared object should be readable, got {theirs.status_code}")
            continue
        body = theirs.json() if theirs.headers.get("content-type", "").startswith("application/json") else {}
        if theirs.status_code != 404 or not str(body.get("code", "")).endswith("not_found"):
            problems.append(f"{method} {path}: project B got {theirs.status_code} {theirs.text[:200]}")
        if _state(two.mf, two.a, case) != before:
            problems.append(f"{method} {path}: project B's call changed project A's object")
        ours = two.client.request(method, url, headers=two.as_a, json=case.json, params=case.query)
        if ours.status_code == 404 or ours.status_code >= 500:
            problems.append(f"{method} {path}: the case made no real object of A: {ours.status_code} {ours.text[:200]}")
    stale = sorted(set(CASES) - set(routes))
    problems.extend(f"{m} {p}: a case for a route that does not exist" for m, p in stale)
    assert not problems, "\n".join(problems)


def test_a_route_without_a_case_fails_the_walk(two: Any) -> None:
    """The walk notices a new route: add one to a copy of the app and it is reported as missing."""
    from fastapi import FastAPI

    from mayfly.api.v1.routing import v1_router

    extra = v1_router("extra")

    @extra.get("/v1/widgets/{widget_id}")
    def widget(widget_id: str) -> dict[str, str]:
        return {"id": widget_id}

    app = FastAPI()
    app.router.routes.extend(two.client.app.routes)
    app.include_router(extra)
    missing = [r for r in _routes_with_ids(app) if r not in CASES]
    assert missing == [("GET", "/v1/widgets/{widget_id}")]


def test_lists_show_only_the_callers_objects(two: Any) -> None:
    mine = _queued_task(two.mf, two.a).params["task_id"]
    _schedule(two.mf, two.a)
    theirs = _queued_task(two.mf, two.b).params["task_id"]
    tasks = two.client.get("/v1/tasks", headers=two.as_b).json()["tasks"]
    assert [t["id"] for t in tasks] == [theirs]
    assert mine not in {t["id"] for t in tasks}
    codes = two.client.get("/v1/codes", headers=two.as_b).json()["codes"]
    assert [c["name"] for c in codes] == ["c0/x"]
    assert two.client.get("/v1/schedules", headers=two.as_b).json() == {"schedules": []}
    assert two.client.get("/v1/project", headers=two.as_b).json()["name"] == "beta"
    # Queueing a task of A's code with B's token does not reach A's code.
    a_code = "c1/x"
    for path, body in [
        ("/v1/tasks", {"code_name": a_code}),
        ("/v1/tasks/bulk", {"code_name": a_code, "payloads": [{}]}),
        ("/v1/schedules", {"code_name": a_code, "every": "1h"}),
    ]:
        refused = two.client.post(path, headers=two.as_b, json=body)
        assert (path, refused.status_code, refused.json()["code"]) == (path, 404, "code_not_found")
    assert two.client.get("/v1/tasks", headers=two.as_b, params={"code": a_code}).json()["tasks"] == []
