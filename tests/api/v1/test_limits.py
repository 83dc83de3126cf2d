"""``/v1`` in process: server-owned fields refused, size and payload caps, the error shape, rate limits."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from mayfly.api.app import create_app
from mayfly.core.app import Mayfly
from mayfly.core.codes import RuntimeInfo
from mayfly.core.config import Home, Limits
from mayfly.core.tasks import TaskFilter

SERVER_OWNED_TASK_FIELDS = ["id", "status", "attempts", "attempt", "result", "exit_code", "project", "project_id"]


@pytest.fixture
def code(two: Any) -> str:
    resp = two.client.post("/v1/codes", headers=two.as_a, json={"name": "img", "image": "busybox", "command": "true"})
    assert resp.status_code == 201, resp.text
    return "img"


def _error(resp: Any, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message"}, body
    assert body["code"] == code, body
    return str(body["message"])


@pytest.mark.parametrize("field", SERVER_OWNED_TASK_FIELDS)
def test_a_task_body_cannot_set_server_owned_fields(two: Any, code: str, field: str) -> None:
    resp = two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, field: "x"})
    assert field in _error(resp, 400, "invalid_input")
    bulk = two.client.post("/v1/tasks/bulk", headers=two.as_a, json={"code_name": code, "payloads": [1], field: 1})
    assert field in _error(bulk, 400, "invalid_input")
    assert two.client.get("/v1/tasks", headers=two.as_a).json()["tasks"] == []


@pytest.mark.parametrize("field", ["id", "status", "run_count", "project_id", "next_run_at"])
def test_a_schedule_body_cannot_set_server_owned_fields(two: Any, code: str, field: str) -> None:
    resp = two.client.post("/v1/schedules", headers=two.as_a, json={"code_name": code, "every": "1h", field: "x"})
    assert field in _error(resp, 400, "invalid_input")
    assert two.client.get("/v1/schedules", headers=two.as_a).json() == {"schedules": []}


@pytest.mark.parametrize("field", ["id", "project_id", "rev", "sha256", "paused"])
def test_a_code_body_cannot_set_server_owned_fields(
    two: Any, field: str, zip_of: Callable[[dict[str, str]], bytes]
) -> None:
    image = two.client.post("/v1/codes", headers=two.as_a, json={"name": "c", "image": "busybox", field: "x"})
    assert field in _error(image, 400, "invalid_input")
    data = json.dumps({"name": "z", "runtime": "shell", field: "x"})
    files = {"file": ("code.zip", zip_of({"main.sh": "echo hi"}), "application/zip")}
    pushed = two.client.post("/v1/codes", headers=two.as_a, files=files, data={"data": data})
    assert field in _error(pushed, 400, "invalid_input")
    assert two.client.get("/v1/codes", headers=two.as_a).json() == {"codes": []}


def test_the_project_comes_from_the_token_not_the_body(two: Any, code: str) -> None:
    resp = two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, "project_id": two.b})
    _error(resp, 400, "invalid_input")
    assert two.mf.tasks.list(two.b, TaskFilter()) == []
    assert two.mf.tasks.list(two.a, TaskFilter()) == []


def test_types_are_not_coerced(two: Any, code: str) -> None:
    resp = two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, "priority": "5"})
    assert "priority" in _error(resp, 400, "invalid_input")


def test_payload_over_64_kb_is_413_and_nothing_is_queued(two: Any, code: str) -> None:
    big = json.dumps({"x": "a" * (64 * 1024)})
    one = two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, "payload": big})
    _error(one, 413, "payload_too_large")
    bulk = two.client.post("/v1/tasks/bulk", headers=two.as_a, json={"code_name": code, "payloads": [{}, big]})
    _error(bulk, 413, "payload_too_large")
    assert two.client.get("/v1/tasks", headers=two.as_a).json()["tasks"] == []
    just_under = json.dumps({"x": "a" * (64 * 1024 - 20)})
    ok = two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, "payload": just_under})
    assert ok.status_code == 201, ok.text


def test_a_json_body_over_the_cap_is_413(two: Any, code: str) -> None:
    body = json.dumps({"code_name": code, "payloads": ["{}"] * 300_000})
    assert len(body) > 1024 * 1024
    resp = two.client.post("/v1/tasks/bulk", headers={**two.as_a, "Content-Type": "application/json"}, content=body)
    _error(resp, 413, "body_too_large")


def test_a_json_body_without_length_is_capped_while_read(two: Any, code: str) -> None:
    def chunks() -> Any:  # chunked transfer: no Content-Length to refuse up front
        yield b'{"code_name": "img", "payload": "'
        for _ in range(40):
            yield b"a" * 64 * 1024
        yield b'"}'

    resp = two.client.post("/v1/tasks", headers={**two.as_a, "Content-Type": "application/json"}, content=chunks())
    _error(resp, 413, "body_too_large")


def test_bulk_is_capped_at_1000_payloads(two: Any, code: str) -> None:
    resp = two.client.post("/v1/tasks/bulk", headers=two.as_a, json={"code_name": code, "payloads": [1] * 1001})
    assert "payloads" in _error(resp, 400, "invalid_input")


def test_authentication_comes_before_the_body(two: Any) -> None:
    """No token and a body over the cap: 401, not 413 (the body is never looked at)."""
    resp = two.client.post(
        "/v1/tasks", headers={"Content-Type": "application/json"}, content=b"{" + b" " * (2 * 1024 * 1024) + b"}"
    )
    _error(resp, 401, "unauthorized")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, "missing token"),
        ({"Authorization": "Bearer nope"}, "malformed token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing token"),
    ],
)
def test_bad_credentials_are_401(two: Any, headers: dict[str, str], message: str) -> None:
    assert message in _error(two.client.get("/v1/tasks", headers=headers), 401, "unauthorized")


def test_the_token_is_not_taken_from_the_url(two: Any) -> None:
    _error(two.client.get("/v1/tasks", params={"oauth": two.token_a}), 401, "unauthorized")


def test_a_well_formed_unknown_token_is_401(two: Any) -> None:
    from mayfly.core.tokens import new_secret

    resp = two.client.get("/v1/tasks", headers=two.headers(new_secret()))
    assert "unknown token" in _error(resp, 401, "unauthorized")


def test_errors_have_a_stable_code(two: Any) -> None:
    _error(two.client.get("/v1/tasks/nope", headers=two.as_a), 404, "task_not_found")
    _error(two.client.get("/v1/codes/nope", headers=two.as_a), 404, "code_not_found")
    _error(two.client.get("/v1/schedules/nope", headers=two.as_a), 404, "schedule_not_found")
    _error(two.client.get("/v1/targets/nope", headers=two.as_a), 404, "target_not_found")
    _error(two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": "nope"}), 404, "code_not_found")
    bad = two.client.post("/v1/tasks", headers={**two.as_a, "Content-Type": "application/json"}, content=b"{")
    _error(bad, 400, "invalid_input")
    empty = two.client.post("/v1/tasks", headers=two.as_a)
    assert _error(empty, 400, "invalid_input") == "body: Field required"
    not_an_object = two.client.post("/v1/tasks", headers=two.as_a, json=[1])
    assert _error(not_an_object, 400, "invalid_input").startswith("body: ")


def test_rate_limit_is_per_project_with_retry_after(two: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYFLY_API_RATE", "0.001")
    monkeypatch.setenv("MAYFLY_API_BURST", "3")
    two.client.app.state.mayfly_rate_limiter = None  # built again from the environment on the next request
    for _ in range(3):
        assert two.client.get("/v1/project", headers=two.as_a).status_code == 200
    refused = two.client.get("/v1/project", headers=two.as_a)
    _error(refused, 429, "rate_limited")
    assert int(refused.headers["Retry-After"]) >= 1
    assert two.client.get("/v1/project", headers=two.as_b).status_code == 200  # another project's budget


def _busybox_runtime(name: str) -> RuntimeInfo:
    return RuntimeInfo(name=name, image="busybox", default_command="sh main.sh")


def test_unknown_routes_and_methods_have_the_error_shape(two: Any) -> None:
    assert "no route" in _error(two.client.get("/v1/nothing-here", headers=two.as_a), 404, "not_found")
    assert "not allowed" in _error(two.client.delete("/v1/tasks", headers=two.as_a), 405, "method_not_allowed")


def test_a_streamed_upload_over_the_cap_is_413_while_read(
    tmp_path: Path, zip_of: Callable[[dict[str, str]], bytes]
) -> None:
    """No Content-Length to refuse up front: the upload is counted as it streams in and cut at the cap."""
    mf = Mayfly(Home(tmp_path / "home", Limits(max_upload_bytes=1024)), _busybox_runtime)
    pid = mf.projects.create("small").id
    _, token = mf.tokens.create(pid)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "multipart/form-data; boundary=xyz"}

    def body() -> Iterator[bytes]:
        yield b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="c.zip"\r\n\r\n'
        for _ in range(64):  # 4 MiB: over the 1 KiB cap plus the multipart allowance
            yield b"\0" * 64 * 1024
        yield b"\r\n--xyz--\r\n"

    try:
        with TestClient(create_app(mf), raise_server_exceptions=False) as client:
            resp = client.post("/v1/codes", headers=headers, content=body())
            _error(resp, 413, "upload_too_large")
            small = client.post(
                "/v1/codes",
                headers={"Authorization": f"Bearer {token}"},
                files={"file": ("c.zip", zip_of({"main.sh": "echo"}), "application/zip")},
                data={"data": json.dumps({"name": "ok", "runtime": "shell"})},
            )
            assert small.status_code == 201, small.text
    finally:
        mf.close()


def test_an_internal_error_keeps_the_shape_and_hides_the_detail(two: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(type(two.mf.tasks), "list", broken)
    resp = two.client.get("/v1/tasks", headers=two.as_a)
    assert _error(resp, 500, "internal_error") == "internal server error"
    assert "secret detail" not in resp.text
