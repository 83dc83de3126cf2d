"""The whole IronWorker v2 surface, route by route, against a real server.

Every route of docs/ironworker.md's table is requested over HTTP: the served
ones do their job, the 501 ones answer IronWorker's error shape with their
reason, and none answers "no route". Every /2 route of the app is in the table.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from iron_worker import IronWorker

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DOC = Path(__file__).parents[3] / "docs" / "ironworker.md"
ROW = re.compile(r"^\| `(GET|POST|PUT|DELETE) (\S+)` \| (served|501) \|", re.MULTILINE)


def documented() -> list[tuple[str, str, str]]:
    """(method, full path, status) of every row of the endpoint table."""
    rows = []
    for method, path, status in ROW.findall(DOC.read_text()):
        full = path if path.startswith("/2/") else "/2/projects/{project_id}" + path
        rows.append((method, full, status))
    return rows


@pytest.fixture(scope="module")
def sleeper(server: Any) -> dict[str, Any]:
    """A shell code, uploaded over HTTP."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("run.sh", "echo ran\n")
    r = httpx.post(
        server.path("codes"),
        headers=server.auth,
        files={
            "data": (None, json.dumps({"name": "surface", "runtime": "sh", "file_name": "run.sh"})),
            "file": ("run.zip", buf.getvalue(), "application/zip"),
        },
    )
    assert r.status_code == 200, r.text
    code: dict[str, Any] = r.json()
    return code


def _url(server: Any, path: str) -> str:
    return server.url + path.replace("{project_id}", server.project_id)


def test_every_documented_route_is_served_or_refused_with_its_reason(server: Any, sleeper: dict[str, Any]) -> None:
    rows = documented()
    assert len(rows) >= 38
    # Unknown ids: every route must still be found (a 404 "... not found", never "no route"); nothing is changed.
    ids = {"{code_id}": "0" * 24, "{task_id}": "0" * 24, "{schedule_id}": "0" * 24}
    ids |= {"{cluster_id}": "local", "{user_id}": "someone"}
    for method, path, status in rows:
        url = _url(server, path)
        for key, value in ids.items():
            url = url.replace(key, value)
        r = httpx.request(method, url, headers=server.auth)
        body = r.json()
        assert not str(body.get("msg", "") if isinstance(body, dict) else "").startswith("no route"), (method, path)
        if status == "501":
            assert r.status_code in (501, 404), (method, path, r.text)  # 404: the schedule does not exist
            assert set(body) == {"msg"}
        else:
            assert r.status_code != 501, (method, path)


def test_every_served_route_is_documented(tmp_path: Path) -> None:
    from mayfly.api.app import create_app
    from mayfly.api.methods import leaf_routes
    from mayfly.cli.context import resolve_runtime
    from mayfly.core.app import Mayfly
    from mayfly.core.config import Home

    mf = Mayfly(Home(tmp_path), resolve_runtime)
    try:
        app = create_app(mf)
    finally:
        mf.close()
    # Clusters and stacks are served under the project too (one row in the table for both places).
    alias = re.compile(r"^/2/projects/\{project_id\}/(clusters|stacks)")
    served = {
        (method, alias.sub(r"/2/\1", route.path))
        for route in leaf_routes(app.routes)
        if getattr(route, "path", "").startswith("/2/")
        for method in getattr(route, "methods", set())
    }
    assert served == {(m, p) for m, p, _ in documented()}


def test_the_project_and_its_stats(server: Any, sleeper: dict[str, Any], iw: IronWorker) -> None:
    r = httpx.get(f"{server.url}/2/projects/{server.project_id}", headers=server.auth)
    assert r.json() == {"id": server.project_id, "name": "iw", "created_at": r.json()["created_at"]}
    done = iw.wait_for_task(iw.queue(code_name="surface", payload="x").id)
    assert done.status == "complete"
    stats = httpx.get(server.path("stats"), headers=server.auth).json()
    assert stats["complete"] >= 1
    assert stats["total"] == sum(
        stats[k] for k in ("queued", "preparing", "running", "complete", "error", "cancelled", "timeout")
    )
    past = httpx.get(server.path("stats"), params={"end_date": "2001-01-01T00:00:00Z"}, headers=server.auth).json()
    assert past["total"] == 0
    r = httpx.get(server.path("stats"), params={"start_date": "yesterday"}, headers=server.auth)
    assert (r.status_code, set(r.json())) == (400, {"msg"})


def test_cancel_all_and_code_stats(server: Any, sleeper: dict[str, Any], iw: IronWorker) -> None:
    queued = [iw.queue(code_name="surface", payload="later", delay=3600).id for _ in range(3)]
    r = httpx.post(server.path(f"codes/{sleeper['id']}/cancel_all"), headers=server.auth)
    assert (r.status_code, r.json()) == (200, {"msg": "Cancelled all", "cancelled_count": 3})
    assert {iw.task(t).status for t in queued} == {"cancelled"}
    stats = httpx.get(server.path(f"codes/{sleeper['id']}/stats"), headers=server.auth).json()
    assert stats["cancelled"] == 3
    again = httpx.post(server.path(f"codes/{sleeper['id']}/cancel_all"), headers=server.auth)
    assert again.json()["cancelled_count"] == 0
    r = httpx.post(server.path(f"codes/{'0' * 24}/cancel_all"), headers=server.auth)
    assert (r.status_code, r.json()) == (404, {"msg": "Code not found"})


@pytest.mark.parametrize("prefix", ["/2", "/2/projects/{project_id}"])
def test_clusters_are_targets_and_stacks_are_runtimes(server: Any, prefix: str) -> None:
    base = _url(server, prefix)
    clusters = httpx.get(f"{base}/clusters", headers=server.auth).json()["clusters"]
    assert [c["id"] for c in clusters] == ["local"]
    one = httpx.get(f"{base}/clusters/local", headers=server.auth).json()["cluster"]
    assert one == clusters[0]
    r = httpx.get(f"{base}/clusters/mars", headers=server.auth)
    assert (r.status_code, r.json()) == (404, {"msg": "Cluster not found"})
    stats = httpx.get(f"{base}/clusters/local/stats", headers=server.auth).json()
    assert stats["runners_total"] == clusters[0]["runners_max"]
    stacks = httpx.get(f"{base}/stacks", headers=server.auth).json()
    assert {"shell", "python-3.11", "sh", "python"} <= set(stacks)
    r = httpx.post(f"{base}/clusters", headers=server.auth, json={"name": "mine"})
    assert r.status_code == 501
    assert "mayfly target add" in r.json()["msg"]


def test_root_routes_need_a_token(server: Any) -> None:
    for path in ("/2/clusters", "/2/stacks"):
        r = httpx.get(server.url + path)
        assert r.status_code == 401
        assert set(r.json()) == {"msg"}


def test_schedule_update_is_refused_with_its_reason(server: Any, sleeper: dict[str, Any]) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"schedules": [{"code_name": "surface", "payload": "{}", "start_at": later, "run_every": 3600}]}
    (sched,) = httpx.post(server.path("schedules"), headers=server.auth, json=body).json()["schedules"]
    r = httpx.put(server.path(f"schedules/{sched['id']}"), headers=server.auth, json={"label": "x"})
    assert r.status_code == 501
    assert r.json()["msg"].startswith("schedules cannot be changed in place")
    r = httpx.post(server.path(f"schedules/{sched['id']}/cancel"), headers=server.auth, json={"delete": True})
    assert (r.status_code, r.json()) == (200, {"msg": "Cancelled"})


def test_errors_speak_in_field_names_not_cli_flags(server: Any, sleeper: dict[str, Any]) -> None:
    start = datetime.now(UTC) + timedelta(hours=2)
    bad = {"code_name": "surface", "payload": "{}", "run_every": 3600}
    for fields, message in (
        (
            {"start_at": start.isoformat(), "end_at": (start - timedelta(hours=1)).isoformat()},
            "end_at must be after start_at",
        ),
        ({"run_times": 0}, "run_times must be at least 1"),
    ):
        r = httpx.post(server.path("schedules"), headers=server.auth, json={"schedules": [{**bad, **fields}]})
        assert (r.status_code, r.json()) == (400, {"msg": message})
    r = httpx.post(
        server.path("codes"),
        headers=server.auth,
        files={"data": (None, json.dumps({"name": "img", "image": "busybox:latest", "env_vars": {"--x": "1"}}))},
    )
    assert r.status_code == 400
    assert "--" not in r.json()["msg"].replace("'--x'", "")
