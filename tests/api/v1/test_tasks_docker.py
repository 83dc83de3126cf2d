"""Real tasks through ``/v1`` on a real server, run in Docker: queue, wait, log, result, follow, cancel, retry."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

WRITE_RESULT = (
    'sh -c \'echo "hello from $MAYFLY_TASK_ID"; cat /mayfly/payload.json; echo; '
    'echo "{\\"ok\\": true}" > /mayfly/result.json\''
)
TICKS = "sh -c 'for i in 1 2 3 4 5; do echo tick $i; sleep 0.3; done'"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any, busybox_image: str) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("v1-docker"), "dock") as srv:
        with httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as client:
            for name, command in {
                "hello": WRITE_RESULT,
                "ticks": TICKS,
                "sleepy": "sleep 120",
                "fails": "sh -c 'echo failing; exit 3'",
            }.items():
                made = client.post("/v1/codes", json={"name": name, "image": busybox_image, "command": command})
                assert made.status_code == 201, made.text
        yield srv


@pytest.fixture
def api(server: Any) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.bearer, timeout=30) as client:
        yield client


def _wait(
    api: httpx.Client, task_id: str, until: Callable[[dict[str, Any]], bool], timeout: float = 90
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        task: dict[str, Any] = api.get(f"/v1/tasks/{task_id}").json()
        if until(task):
            return task
        assert time.monotonic() < deadline, f"task never got there: {task}"
        time.sleep(0.2)


def _ended(task: dict[str, Any]) -> bool:
    return task["status"] in ("complete", "error", "cancelled", "timeout")


def test_queue_wait_log_result(api: httpx.Client) -> None:
    made = api.post("/v1/tasks", json={"code_name": "hello", "payload": {"n": 7}, "label": "e2e"})
    assert made.status_code == 201, made.text
    task_id = made.json()["id"]
    assert made.json()["status"] == "queued"
    task = _wait(api, task_id, _ended)
    assert task["status"] == "complete", task
    log = api.get(f"/v1/tasks/{task_id}/log")
    assert log.status_code == 200
    assert log.headers["content-type"].startswith("text/plain")
    assert f"hello from {task_id}" in log.text
    assert '{"n": 7}' in log.text
    result = api.get(f"/v1/tasks/{task_id}/result").json()
    assert result == {"id": task_id, "status": "complete", "exit_code": 0, "result": {"ok": True}}
    events = api.get(f"/v1/tasks/{task_id}/events").json()["events"]
    assert {e["attempt"] for e in events} == {1}
    assert "exited" in {e["kind"] for e in events}


def test_log_follow_streams_until_the_task_ends(api: httpx.Client) -> None:
    task_id = api.post("/v1/tasks", json={"code_name": "ticks"}).json()["id"]
    chunks: list[bytes] = []
    with api.stream("GET", f"/v1/tasks/{task_id}/log", params={"follow": "true"}, timeout=None) as stream:
        assert stream.status_code == 200
        for chunk in stream.iter_bytes():
            chunks.append(chunk)
    text = b"".join(chunks).decode()
    assert [line for line in text.splitlines() if line.startswith("tick")] == [f"tick {i}" for i in range(1, 6)]
    assert len(chunks) > 1  # streamed as written, not in one piece at the end
    assert api.get(f"/v1/tasks/{task_id}").json()["status"] == "complete"  # the stream ended with the task


def test_follow_of_another_projects_task_is_404_before_streaming(api: httpx.Client) -> None:
    resp = api.get("/v1/tasks/0000000000000000000000000000/log", params={"follow": "true"})
    assert (resp.status_code, resp.json()["code"]) == (404, "task_not_found")


def test_cancel_a_running_task(api: httpx.Client) -> None:
    task_id = api.post("/v1/tasks", json={"code_name": "sleepy"}).json()["id"]
    _wait(api, task_id, lambda t: t["status"] == "running")
    assert api.post(f"/v1/tasks/{task_id}/cancel").status_code == 200
    assert _wait(api, task_id, _ended)["status"] == "cancelled"
    again = api.post(f"/v1/tasks/{task_id}/cancel")
    assert (again.status_code, again.json()["code"]) == (409, "task_already_finished")


def test_cancel_a_queued_task(api: httpx.Client) -> None:
    task_id = api.post("/v1/tasks", json={"code_name": "hello", "delay": 3600}).json()["id"]
    cancelled = api.post(f"/v1/tasks/{task_id}/cancel").json()
    assert cancelled["status"] == "cancelled"


def test_retry_a_failed_task(api: httpx.Client) -> None:
    first = api.post("/v1/tasks", json={"code_name": "fails", "payload": '{"k": 1}'}).json()["id"]
    failed = _wait(api, first, _ended)
    assert (failed["status"], failed["exit_code"]) == ("error", 3)
    not_finished = api.post("/v1/tasks", json={"code_name": "hello", "delay": 3600}).json()["id"]
    refused = api.post(f"/v1/tasks/{not_finished}/retry")
    assert (refused.status_code, refused.json()["code"]) == (409, "task_not_finished")
    retried = api.post(f"/v1/tasks/{first}/retry")
    assert retried.status_code == 201, retried.text
    second = retried.json()
    assert second["id"] != first
    assert second["code_name"] == "fails"
    assert json.loads(second["payload"]) == {"k": 1}
    assert _wait(api, second["id"], _ended)["exit_code"] == 3
    assert "failing" in api.get(f"/v1/tasks/{second['id']}/log").text


def test_bulk_queue_then_list_with_filters_and_pages(api: httpx.Client) -> None:
    made = api.post(
        "/v1/tasks/bulk",
        json={"code_name": "hello", "payloads": [{"i": i} for i in range(5)], "delay": 3600, "label": "page"},
    )
    assert made.status_code == 201, made.text
    ids = [t["id"] for t in made.json()["tasks"]]
    assert len(ids) == 5
    seen: list[str] = []
    params: dict[str, Any] = {"label": "page", "limit": 2, "status": "queued", "code": "hello"}
    while True:
        page = api.get("/v1/tasks", params=params).json()
        seen.extend(t["id"] for t in page["tasks"])
        assert all("payload" not in t or t["payload"] is None for t in page["tasks"])
        if page["next"] is None:
            break
        params["before"] = page["next"]
    assert sorted(seen) == sorted(ids)
    assert len(seen) == len(set(seen))
    assert api.get("/v1/tasks", params={"label": "page", "status": "complete"}).json()["tasks"] == []
    api.post("/v1/codes/hello/cancel_all")
