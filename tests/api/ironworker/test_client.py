"""IronWorker's own Python client (``iron-worker`` from PyPI) against a real ``mayfly server``.

The worker program in the zip is an unchanged IronWorker worker: it imports
``iron_worker`` (shipped in the zip, as workers did) and reads its payload with
``IronWorker.payload()``.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from iron_worker import CodePackage, IronWorker, Task
from requests.exceptions import HTTPError

pytestmark = [pytest.mark.docker, pytest.mark.slow]

PAYLOAD = {"name": "mayfly", "n": [1, 2, 3], "text": "ünïcode"}


@pytest.fixture(scope="module")
def hello(iw: IronWorker, hello_zip: Path) -> CodePackage:
    """The worker uploaded with the client's own ``postCode`` (runtime "python", file_name "worker.py")."""
    return iw.postCode(CodePackage(name="hello", executable="worker.py"), zipFilename=str(hello_zip))


def _lines(log: str) -> list[str]:
    return log.splitlines()


def _status(exc: HTTPError) -> int:
    assert exc.response is not None
    return int(exc.response.status_code)


def _msg(exc: HTTPError) -> str:
    assert exc.response is not None
    body: dict[str, Any] = exc.response.json()
    assert set(body) == {"msg"}
    return str(body["msg"])


def test_upload_list_info_revisions_download(iw: IronWorker, hello: CodePackage, hello_zip: Path, server: Any) -> None:
    assert len(hello.id) == 24
    assert (hello.name, hello.revision, hello.project) == ("hello", 1, server.project_id)
    assert [c.name for c in iw.codes()] == ["hello"]
    info = iw.code(hello.id)
    assert (info.id, info.revision, info.runtime) == (hello.id, 1, "python-3.11")
    assert [r.revision for r in iw.revisions(hello.id)] == [1]
    # The client's own download() calls getheader() on a requests Response and cannot work; read it directly.
    r = httpx.get(server.path(f"codes/{hello.id}/download"), headers=server.auth)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"] == "attachment; filename=hello_1.zip"
    assert r.content == hello_zip.read_bytes()


def test_queue_wait_log_and_the_payload_round_trip(iw: IronWorker, hello: CodePackage) -> None:
    task = iw.queue(code_name="hello", payload=PAYLOAD)
    assert len(task.id) == 24
    done = iw.wait_for_task(task)
    assert done.status == "complete"
    assert (done.code_name, done.code_id, done.code_rev) == ("hello", hello.id, "1")
    assert done.payload == PAYLOAD
    assert isinstance(done.duration, int)
    log = _lines(iw.log(done))
    assert f"payload: {json.dumps(PAYLOAD)}" in log
    assert f"task: {task.id}" in log


def test_task_fields_are_ironworkers(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    task = iw.wait_for_task(iw.queue(code_name="hello", payload={"x": 1}, priority=1, label="fields"))
    body = httpx.get(server.path(f"tasks/{task.id}"), headers=server.auth).json()
    for key in (
        "id",
        "project_id",
        "code_id",
        "code_name",
        "code_rev",
        "code_history_id",
        "status",
        "created_at",
        "updated_at",
        "start_time",
        "end_time",
        "duration",
        "payload",
        "priority",
        "timeout",
        "log_size",
    ):
        assert key in body, key
    assert (body["status"], body["priority"], body["label"], body["code_rev"]) == ("complete", 1, "fields", "1")
    assert body["payload"] == '{"x": 1}'
    assert body["code_history_id"] == iw.code(hello.id).latest_history_id
    assert body["log_size"] > 0


def test_list_tasks_with_ironworkers_filters(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    done = iw.wait_for_task(iw.queue(code_name="hello", payload={}))
    complete = iw.tasks(code_name="hello", complete=1)
    assert done.id in [t.id for t in complete]
    assert {t.status for t in complete} == {"complete"}
    assert done.id not in [t.id for t in iw.tasks(code_name="hello", queued=1, running=1)]
    assert iw.tasks(code_name="hello", from_time=int(time.time()) + 3600) == []
    assert [t.id for t in iw.tasks(code_name="hello", per_page=1)] == [iw.tasks(code_name="hello")[0].id]
    r = httpx.get(server.path("tasks"), params={"per_page": 101}, headers=server.auth)
    assert (r.status_code, r.json()) == (400, {"msg": "per_page must be between 1 and 100"})


def test_cancel_a_queued_task(iw: IronWorker, hello: CodePackage) -> None:
    task = iw.queue(code_name="hello", payload={}, delay=3600)
    assert iw.task(task).status == "queued"
    assert iw.cancel(task) is True
    assert iw.task(task).status == "cancelled"
    with pytest.raises(HTTPError) as err:
        iw.cancel(task)
    assert _status(err.value) == 400
    assert "already finished" in _msg(err.value)


def test_retry_queues_a_new_task_with_the_same_payload(iw: IronWorker, hello: CodePackage) -> None:
    first = iw.wait_for_task(iw.queue(code_name="hello", payload={"try": 1}))
    body = iw.retry(first, delay=0)
    assert body["msg"] == "Queued up"
    (new,) = body["tasks"]
    assert new["id"] != first.id
    again = iw.wait_for_task(new["id"])
    assert again.status == "complete"
    assert again.payload == {"try": 1}
    assert 'payload: {"try": 1}' in _lines(iw.log(again))


def test_webhook_body_becomes_the_payload(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    url = server.path("tasks/webhook")
    text = httpx.post(url, params={"code_name": "hello", "oauth": server.token}, content="hello from a webhook")
    as_json = httpx.post(url, params={"code_name": "hello", "label": "hook"}, json={"x": 1}, headers=server.auth)
    assert text.status_code == as_json.status_code == 200
    assert text.json()["msg"] == "Queued up."
    # Not JSON: delivered as given (IronWorker.payload() cannot decode it; test_payload_bytes reads the file).
    done = iw.wait_for_task(text.json()["id"])
    assert done.payload == "hello from a webhook"
    done = iw.wait_for_task(as_json.json()["id"])
    assert (done.payload, done.label) == ({"x": 1}, "hook")
    assert 'payload: {"x": 1}' in _lines(iw.log(done))
    r = httpx.post(url, params={"oauth": server.token}, content="x")
    assert (r.status_code, r.json()) == (406, {"msg": "code_name is required in the query string"})
    r = httpx.post(url, params={"code_name": "hello", "oauth": server.token}, content=b"x" * (64 * 1024 + 1))
    assert (r.status_code, r.json()) == (413, {"msg": "webhook body is larger than 65536 bytes (64 KB)"})


def test_schedules_run_list_and_cancel(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    with pytest.raises(HTTPError) as err:
        iw.queue(code_name="hello", payload={}, run_every=30)
    assert _status(err.value) == 400
    assert "at least 60 seconds" in _msg(err.value)

    once = iw.queue(
        code_name="hello", payload={"from": "schedule"}, run_every=60, run_times=1, start_at=datetime.now(UTC)
    )
    assert once.scheduled
    later = iw.queue(code_name="hello", payload={}, run_every=3600, start_at=datetime.now(UTC) + timedelta(hours=1))
    assert {once.id, later.id} <= {s.id for s in iw.tasks(scheduled=True)}

    deadline = time.monotonic() + 30
    info = iw.task(once)
    while info.run_count == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        info = iw.task(once)
    assert (info.run_count, info.status, info.message) == (1, "complete", "Ran max times.")
    assert info.last_run_time is not None
    (fired,) = [t for t in iw.tasks(code_name="hello") if getattr(t, "schedule_id", None) == once.id]
    done = iw.wait_for_task(fired)
    assert 'payload: {"from": "schedule"}' in _lines(iw.log(done))

    info = iw.task(later)
    assert (info.status, info.run_every, info.run_count) == ("scheduled", 3600, 0)
    assert info.next_start > datetime.now(UTC)
    assert iw.cancel(later) is True
    assert iw.task(later).status == "cancelled"
    body = httpx.get(server.path(f"schedules/{later.id}"), headers=server.auth).json()
    assert body["error_count"] == 0
    assert "next_start" not in body


def test_shell_runtime_binary_zip_and_ironworkers_arguments(iw: IronWorker, server: Any) -> None:
    script = 'echo "args: $*"\necho "env: $PAYLOAD_FILE $CONFIG_FILE $TASK_ID $TASK_DIR"\ncat "$PAYLOAD_FILE"\n'
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("run.sh", script)
    data = {"name": "sh-args", "runtime": "sh", "file_name": "run.sh", "config": "{}", "max_concurrency": 2}
    r = httpx.post(
        server.path("codes"),
        headers=server.auth,
        files={"data": (None, json.dumps(data)), "file": ("run.zip", buf.getvalue(), "application/zip")},
    )
    assert r.status_code == 200, r.text
    code = r.json()
    assert (code["runtime"], code["command"], code["file_name"], code["max_concurrency"]) == (
        "shell",
        "sh run.sh",
        "run.sh",
        2,
    )
    # A payload that is not JSON is accepted, as IronWorker did, and reaches the worker byte for byte.
    r = httpx.post(
        server.path("tasks"), headers=server.auth, json={"tasks": [{"code_name": "sh-args", "payload": "a b"}]}
    )
    (task_id,) = [t["id"] for t in r.json()["tasks"]]
    done = iw.wait_for_task(task_id)
    assert done.status == "complete"
    assert _lines(iw.log(done)) == [
        f"args: -payload /mayfly/payload.json -config /mayfly/config.json -id {task_id} -d /mayfly/task",
        f"env: /mayfly/payload.json /mayfly/config.json {task_id} /mayfly/task",
        "a b",
    ]


def test_options_update_without_a_zip_and_image_codes(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    r = httpx.post(
        server.path("codes"), headers=server.auth, files={"data": (None, json.dumps({"name": "sh-args", "retries": 3}))}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["rev"], r.json()["retries"], r.json()["command"]) == (2, 3, "sh run.sh")
    image = {"name": "ready-image", "image": "mayfly/runtime-shell:1", "command": "echo ready"}
    r = httpx.post(server.path("codes"), headers=server.auth, files={"data": (None, json.dumps(image))})
    assert r.status_code == 200, r.text
    assert (r.json()["image"], r.json()["command"], "runtime" in r.json()) == (
        "mayfly/runtime-shell:1",
        "echo ready",
        False,
    )
    r = httpx.post(server.path("codes"), headers=server.auth, files={"data": (None, json.dumps({"name": "nothing"}))})
    assert (r.status_code, r.json()) == (406, {"msg": "Code package zip file required if no image specified"})
    r = httpx.post(
        server.path("codes"),
        headers=server.auth,
        files={
            "data": (None, json.dumps({"name": "pl", "runtime": "perl", "file_name": "w.pl"})),
            "file": ("w.zip", b"PK"),
        },
    )
    assert r.status_code == 400
    assert r.json()["msg"].startswith("runtime 'perl': Mayfly has no perl runtime")


def test_bulk_queue_is_all_or_none(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    before = len(iw.tasks(code_name="hello", per_page=100))
    bad_code = [{"code_name": "hello", "payload": "{}"}, {"code_name": "no-such-code", "payload": "{}"}]
    too_big = [{"code_name": "hello", "payload": "{}"}, {"code_name": "hello", "payload": json.dumps("x" * 70000)}]
    missing = [{"code_name": "hello", "payload": "{}"}, {"code_name": "hello"}]
    for tasks, status in ((bad_code, 404), (too_big, 413), (missing, 406)):
        r = httpx.post(server.path("tasks"), headers=server.auth, json={"tasks": tasks})
        assert r.status_code == status, r.text
        assert set(r.json()) == {"msg"}
    assert len(iw.tasks(code_name="hello", per_page=100)) == before


def test_auth_and_not_found(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    bad = IronWorker(
        token="mfy_" + "x" * 49,
        project_id=server.project_id,
        host="127.0.0.1",
        port=server.port,
        protocol="http",
        api_version=2,
    )
    with pytest.raises(HTTPError) as err:
        bad.codes()
    assert _status(err.value) == 401
    assert _msg(err.value).startswith("Invalid authentication")
    r = httpx.get(server.path("tasks"))
    assert r.status_code == 401
    assert set(r.json()) == {"msg"}
    with pytest.raises(HTTPError) as err:
        iw.task("0" * 24)
    assert _status(err.value) == 404
    _msg(err.value)
    r = httpx.get(f"{server.url}/2/projects/{'f' * 24}/tasks", headers=server.auth)
    assert (r.status_code, r.json()) == (404, {"msg": "Project not found"})
    r = httpx.get(server.path(f"codes/{'0' * 24}"), headers=server.auth)
    assert (r.status_code, r.json()) == (404, {"msg": "Code not found"})


def test_progress_and_code_delete(iw: IronWorker, hello: CodePackage, server: Any) -> None:
    task = iw.queue(code_name="hello", payload={}, delay=3600)
    iw.setProgress(task, 40, "working")
    info = iw.task(task)
    assert (info.percent, info.message) == (40, "working")
    iw.cancel(task)
    r = httpx.post(server.path(f"tasks/{task.id}/progress"), headers=server.auth, json={"percent": 101})
    assert (r.status_code, r.json()) == (400, {"msg": "percent must be between 0 and 100"})
    spare = {"name": "to-delete", "image": "mayfly/runtime-shell:1", "command": "true"}
    r = httpx.post(server.path("codes"), headers=server.auth, files={"data": (None, json.dumps(spare))})
    code_id = r.json()["id"]
    queued = iw.queue(code_name="to-delete", payload={}, delay=3600)
    assert iw.deleteCode(code_id) is True
    assert code_id not in [c.id for c in iw.codes()]
    assert iw.task(queued).status == "cancelled"  # its queued tasks end with it
    with pytest.raises(HTTPError) as err:
        iw.queue(code_name="to-delete", payload={})
    assert _status(err.value) == 404
    with pytest.raises(HTTPError) as err:
        iw.deleteCode(code_id)
    assert _status(err.value) == 404


def test_the_task_object_of_the_client(iw: IronWorker, hello: CodePackage) -> None:
    task: Task = iw.wait_for_task(iw.queue(code_name="hello", payload={"a": "b"}, timeout=120))
    assert (task.timeout, task.status) == (120, "complete")
    assert task.created_at <= task.updated_at
    assert isinstance(task.start_time, str)
