"""Codes (zip upload on a real runtime, revisions, download, pause/resume), schedules and targets on a real server."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any, runtime_images: dict[str, str]
) -> Iterator[httpx.Client]:
    with (
        start_server(tmp_path_factory.mktemp("v1-codes"), "codes") as srv,
        httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=60) as client,
    ):
        yield client


def _wait_task(api: httpx.Client, task_id: str, statuses: set[str], timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task: dict[str, Any] = api.get(f"/v1/tasks/{task_id}").json()
        if task["status"] in statuses:
            return task
        assert time.monotonic() < deadline, f"task stuck: {task}"
        time.sleep(0.2)


def _push(api: httpx.Client, package: bytes, **data: Any) -> httpx.Response:
    files = {"file": ("code.zip", package, "application/zip")}
    return api.post("/v1/codes", files=files, data={"data": json.dumps(data)})


def test_upload_run_download_and_revisions(api: httpx.Client, zip_of: Callable[[dict[str, str]], bytes]) -> None:
    v1 = zip_of({"main.sh": 'echo "v1 says $(cat /mayfly/payload.json)"\n'})
    first = _push(api, v1, name="team/hello", runtime="shell", max_concurrency=2)
    assert first.status_code == 201, first.text
    assert first.json()["name"] == "team/hello"

    task_id = api.post("/v1/tasks", json={"code_name": "team/hello", "payload": {"a": 1}}).json()["id"]
    assert _wait_task(api, task_id, {"complete", "error"})["status"] == "complete"
    assert 'v1 says {"a": 1}' in api.get(f"/v1/tasks/{task_id}/log").text

    v2 = zip_of({"main.sh": "echo v2\n"})
    assert _push(api, v2, name="team/hello", runtime="shell").status_code == 201
    revisions = api.get("/v1/codes/team/hello/revisions").json()["revisions"]
    assert [r["rev"] for r in revisions] == [2, 1]

    latest = api.get("/v1/codes/team/hello/download")
    assert latest.status_code == 200
    assert latest.content == v2
    assert latest.headers["x-mayfly-revision"] == "2"
    assert latest.headers["x-mayfly-sha256"] == hashlib.sha256(v2).hexdigest()
    assert api.get("/v1/codes/team/hello/download", params={"revision": 1}).content == v1
    missing = api.get("/v1/codes/team/hello/download", params={"revision": 9})
    assert (missing.status_code, missing.json()["code"]) == (404, "revision_not_found")

    names = [c["name"] for c in api.get("/v1/codes").json()["codes"]]
    assert "team/hello" in names


def test_a_bad_zip_is_refused(api: httpx.Client) -> None:
    resp = _push(api, b"not a zip", name="broken", runtime="shell")
    assert (resp.status_code, resp.json()["code"]) == (400, "invalid_archive")
    no_data = api.post("/v1/codes", files={"file": ("code.zip", b"x", "application/zip")})
    assert (no_data.status_code, no_data.json()["code"]) == (400, "invalid_input")
    assert api.get("/v1/codes/broken").status_code == 404


def test_pause_holds_queued_tasks_until_resume(api: httpx.Client, busybox_image: str) -> None:
    made = api.post("/v1/codes", json={"name": "held", "image": busybox_image, "command": "true"})
    assert made.status_code == 201
    assert api.post("/v1/codes/held/pause").json()["paused"] is True
    task_id = api.post("/v1/tasks", json={"code_name": "held"}).json()["id"]
    api.post("/v1/codes", json={"name": "free", "image": busybox_image, "command": "true"})
    later = api.post("/v1/tasks", json={"code_name": "free"}).json()["id"]
    _wait_task(api, later, {"complete"})  # the runner took a task queued after the held one
    assert api.get(f"/v1/tasks/{task_id}").json()["status"] == "queued"
    assert api.post("/v1/codes/held/resume").json()["paused"] is False
    assert _wait_task(api, task_id, {"complete", "error"})["status"] == "complete"


def test_image_code_has_no_download(api: httpx.Client, busybox_image: str) -> None:
    api.post("/v1/codes", json={"name": "img-only", "image": busybox_image})
    resp = api.get("/v1/codes/img-only/download")
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_input"


def test_schedule_fires_and_is_managed(api: httpx.Client, busybox_image: str) -> None:
    api.post("/v1/codes", json={"name": "tick", "image": busybox_image, "command": "echo tick"})
    made = api.post("/v1/schedules", json={"code_name": "tick", "every": "1s", "run_times": 2, "label": "sched"})
    assert made.status_code == 201, made.text
    sched = made.json()
    assert (sched["code_name"], sched["status"], sched["run_times"]) == ("tick", "scheduled", 2)
    deadline = time.monotonic() + 60
    while api.get(f"/v1/schedules/{sched['id']}").json()["run_count"] < 2:
        assert time.monotonic() < deadline, "schedule did not fire twice"
        time.sleep(0.2)
    details = api.get(f"/v1/schedules/{sched['id']}").json()
    fired = api.get("/v1/tasks", params={"label": "sched"}).json()["tasks"]
    assert len(fired) == 2
    assert details["status"] == "complete"

    other = api.post("/v1/schedules", json={"code_name": "tick", "cron": "0 3 * * *", "tz": "Europe/Paris"}).json()
    assert api.post(f"/v1/schedules/{other['id']}/pause").json()["status"] == "paused"
    assert api.post(f"/v1/schedules/{other['id']}/resume").json()["status"] == "scheduled"
    assert api.post(f"/v1/schedules/{other['id']}/cancel").json()["status"] == "cancelled"
    listed = {s["id"]: s["status"] for s in api.get("/v1/schedules").json()["schedules"]}
    assert listed == {sched["id"]: "complete", other["id"]: "cancelled"}
    assert [s["id"] for s in api.get("/v1/schedules", params={"status": "cancelled"}).json()["schedules"]] == [
        other["id"]
    ]
    bad = api.post("/v1/schedules", json={"code_name": "tick", "every": "1s", "cron": "* * * * *"})
    assert (bad.status_code, bad.json()["code"]) == (400, "invalid_input")


def test_targets_are_read_only_with_counts(api: httpx.Client) -> None:
    targets = api.get("/v1/targets").json()["targets"]
    local = next(t for t in targets if t["name"] == "local")
    assert {"queued", "preparing", "running", "provider", "settings"} <= set(local)
    assert api.get("/v1/targets/local").json()["name"] == "local"
    assert api.post("/v1/targets", json={"name": "x"}).status_code == 405
    assert api.delete("/v1/targets/local").status_code == 405


def test_openapi_describes_the_native_api(api: httpx.Client) -> None:
    doc = httpx.get(f"{api.base_url}/openapi.json").json()
    assert "/v1/tasks/{task_id}/log" in doc["paths"]
    assert "HTTPBearer" in doc["components"]["securitySchemes"]
