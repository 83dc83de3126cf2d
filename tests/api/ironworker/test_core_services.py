"""IronWorker's /2 goes through Mayfly's core services, on a real ``mayfly server``.

Queueing on /2 rings the control plane's router bell as /v1 does, so a sleeping
control plane (the server's, or one in another process on the same home) wakes
at once instead of at its next poll. The reads /2 used to run as its own SQL
(code by id, task list filters and page windows, stats, cluster stats, paged
code and schedule lists, schedule error counts) now come from the services and
answer the same on the wire.

The codes here are images, paused, and their tasks delayed an hour: nothing
is dispatched, so no container runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.core.control import ROUTER_BELL

pytestmark = pytest.mark.slow

HOUR = 3600


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("ironcore"), "ironcore") as srv:
        yield srv


def _register(server: Any, name: str) -> dict[str, Any]:
    """An image code uploaded over /2, with its queue paused."""
    data = {"name": name, "image": "busybox:1", "command": "true"}
    r = httpx.post(server.path("codes"), headers=server.auth, files={"data": (None, json.dumps(data))})
    assert r.status_code == 200, r.text
    code: dict[str, Any] = r.json()
    paused = httpx.post(server.path(f"codes/{code['id']}/pause_task_queue"), headers=server.auth)
    assert paused.status_code == 200, paused.text
    return code


@pytest.fixture(scope="module")
def idle(server: Any) -> dict[str, Any]:
    return _register(server, "idle")


def _queue(server: Any, tasks: list[dict[str, Any]]) -> list[str]:
    r = httpx.post(server.path("tasks"), headers=server.auth, json={"tasks": tasks})
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["tasks"]]


def _ids(server: Any, **params: Any) -> list[str]:
    r = httpx.get(server.path("tasks"), headers=server.auth, params=params)
    assert r.status_code == 200, r.text
    return [t["id"] for t in r.json()["tasks"]]


def test_a_task_queued_on_2_wakes_a_sleeping_control_plane(server: Any, idle: dict[str, Any]) -> None:
    """POST /tasks, the webhook and retry ring the router bell a control plane sleeps on, as /v1's queue does."""
    mf = Mayfly(Home(server.home), resolve_runtime)
    try:
        bell = mf.broker.wakeups
        while bell.wait_any([ROUTER_BELL], 0.0):  # binds this thread's listener; drops any earlier ring
            pass
        _ids(server, code_name="idle")  # a read (answered 200) rings nothing
        assert bell.wait_any([ROUTER_BELL], 0.0) is False

        (task_id,) = _queue(server, [{"code_name": "idle", "payload": "{}", "delay": HOUR}])
        assert bell.wait_any([ROUTER_BELL], 30.0) is True  # rung before the response: answered at once
        assert bell.wait_any([ROUTER_BELL], 0.0) is False

        hook = httpx.post(
            server.path("tasks/webhook"), headers=server.auth, params={"code_name": "idle", "delay": HOUR}, content="x"
        )
        assert hook.status_code == 200, hook.text
        assert bell.wait_any([ROUTER_BELL], 30.0) is True

        cancelled = httpx.post(server.path(f"tasks/{task_id}/cancel"), headers=server.auth)
        assert cancelled.status_code == 200, cancelled.text
        retried = httpx.post(server.path(f"tasks/{task_id}/retry"), headers=server.auth, json={"delay": HOUR})
        assert retried.status_code == 200, retried.text
        assert bell.wait_any([ROUTER_BELL], 30.0) is True
    finally:
        mf.close()


def test_task_lists_and_counts_come_from_the_task_service(server: Any) -> None:
    """Label, cluster, time and page filters of GET /tasks; code, project and cluster stats."""
    code = _register(server, "counted")
    a = _queue(server, [{"code_name": "counted", "payload": f"a{i}", "label": "a", "delay": HOUR} for i in range(3)])
    b = _queue(server, [{"code_name": "counted", "payload": f"b{i}", "label": "b", "delay": HOUR} for i in range(2)])
    newest_first = list(reversed(a + b))

    assert _ids(server, code_name="counted", per_page=100) == newest_first
    assert _ids(server, code_name="counted", label="a") == list(reversed(a))
    assert _ids(server, code_name="counted", per_page=2, page=1) == newest_first[2:4]
    assert _ids(server, code_name="counted", per_page=2, page=2) == newest_first[4:]
    assert _ids(server, code_name="counted", cluster="local") == newest_first
    assert _ids(server, code_name="counted", cluster="default") == newest_first
    assert _ids(server, code_name="counted", cluster="elsewhere") == []
    assert _ids(server, code_name="counted", to_time=0) == []
    assert _ids(server, code_name="counted", from_time=int(time.time()) - HOUR) == newest_first
    assert _ids(server, code_name="counted", queued=1, cancelled=1) == newest_first
    assert _ids(server, code_name="counted", complete=1) == []

    cancelled = httpx.post(server.path(f"tasks/{a[0]}/cancel"), headers=server.auth)
    assert cancelled.status_code == 200, cancelled.text
    assert _ids(server, code_name="counted", killed=1) == [a[0]]

    stats = httpx.get(server.path(f"codes/{code['id']}/stats"), headers=server.auth).json()
    assert (stats["queued"], stats["cancelled"], stats["complete"], stats["total"]) == (4, 1, 0, 5)
    project = httpx.get(server.path("stats"), headers=server.auth).json()
    assert project["total"] >= 5
    assert project["queued"] >= 4
    cluster = httpx.get(server.path("clusters/local/stats"), headers=server.auth).json()
    assert cluster["queued"] >= 4
    assert (cluster["preparing"], cluster["running"]) == (0, 0)


def test_code_and_schedule_pages_and_lookups_by_id(server: Any) -> None:
    """GET /codes and /schedules page windows; a code by id; a deleted code's id is "Code not found"."""
    for name in ("page-a", "page-b", "page-c"):
        _register(server, name)
    names = [c["name"] for c in httpx.get(server.path("codes"), headers=server.auth).json()["codes"]]
    assert names == sorted(names)
    assert {"page-a", "page-b", "page-c"} <= set(names)
    window = httpx.get(server.path("codes"), headers=server.auth, params={"per_page": 2, "page": 1}).json()
    assert [c["name"] for c in window["codes"]] == names[2:4]

    gone = _register(server, "gone")
    assert httpx.get(server.path(f"codes/{gone['id']}"), headers=server.auth).json()["name"] == "gone"
    assert httpx.delete(server.path(f"codes/{gone['id']}"), headers=server.auth).status_code == 200
    missing = httpx.get(server.path(f"codes/{gone['id']}"), headers=server.auth)
    assert (missing.status_code, missing.json()) == (404, {"msg": "Code not found"})

    start = int(time.time()) + HOUR
    body = {
        "schedules": [
            {"code_name": "page-a", "payload": f"s{i}", "run_every": HOUR, "start_at": start} for i in range(3)
        ]
    }
    made = httpx.post(server.path("schedules"), headers=server.auth, json=body)
    assert made.status_code == 200, made.text
    ids = [s["id"] for s in made.json()["schedules"]]
    listed = httpx.get(server.path("schedules"), headers=server.auth, params={"per_page": 100}).json()["schedules"]
    newest_first = [s["id"] for s in listed]
    assert newest_first[:3] == list(reversed(ids))
    assert all(s["error_count"] == 0 for s in listed)
    second = httpx.get(server.path("schedules"), headers=server.auth, params={"per_page": 1, "page": 1}).json()
    assert [s["id"] for s in second["schedules"]] == newest_first[1:2]
    one = httpx.get(server.path(f"schedules/{ids[0]}"), headers=server.auth).json()
    assert (one["id"], one["error_count"]) == (ids[0], 0)


#: A store fault on one row: SQLite aborts the statement that inserts a task with this payload.
POISON_TRIGGER = """
CREATE TRIGGER ironcore_poison BEFORE INSERT ON tasks WHEN NEW.payload = 'poison'
BEGIN SELECT RAISE(ABORT, 'simulated store fault'); END
"""


def test_a_mixed_batch_is_one_transaction_a_failed_write_stores_none(server: Any) -> None:
    """Tasks of two codes in one POST /tasks are written together: a write failing on the second stores neither."""
    _register(server, "batch-one")
    _register(server, "batch-two")
    mf = Mayfly(Home(server.home), resolve_runtime)
    try:
        with mf.store.write() as conn:
            conn.execute(text(POISON_TRIGGER))
        try:
            tasks = [
                {"code_name": "batch-one", "payload": "fine", "delay": HOUR},
                {"code_name": "batch-two", "payload": "poison", "delay": HOUR},
            ]
            r = httpx.post(server.path("tasks"), headers=server.auth, json={"tasks": tasks})
            assert r.status_code == 500, r.text
        finally:
            with mf.store.write() as conn:
                conn.execute(text("DROP TRIGGER ironcore_poison"))
    finally:
        mf.close()
    assert _ids(server, code_name="batch-one") == []
    assert _ids(server, code_name="batch-two") == []
    # Without the fault the same batch is queued whole, in order.
    ids = _queue(server, [{**t, "payload": "fine"} for t in tasks])
    assert _ids(server, code_name="batch-one") + _ids(server, code_name="batch-two") == ids
