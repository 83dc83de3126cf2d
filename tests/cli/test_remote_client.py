"""The remote client's HTTP handling, against a scripted transport: errors by code, 429 retries, the token kept out."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import httpx
import pytest

from mayfly.api.errors import BodyTooLarge, RateLimited
from mayfly.cli.remote import MAX_RETRY_WAIT, RATE_RETRIES, RemoteMayfly, error_from
from mayfly.core.codes import CodeOptions
from mayfly.core.errors import (
    InvalidInput,
    PayloadTooLarge,
    TaskAlreadyFinished,
    TaskNotFound,
    Unavailable,
)
from mayfly.core.schedules import ScheduleNotFound
from mayfly.core.tasks import TaskFilter
from mayfly.core.tokens import Unauthorized

TOKEN = "mfy_" + "a" * 49


def _client(handler: Callable[[httpx.Request], httpx.Response]) -> RemoteMayfly:
    return RemoteMayfly("http://mayfly.test/", TOKEN, transport=httpx.MockTransport(handler))


def _error(status: int, code: str, message: str = "m", **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message}, headers=headers)


@pytest.mark.parametrize(
    ("status", "code", "cls"),
    [
        (404, "task_not_found", TaskNotFound),
        (404, "schedule_not_found", ScheduleNotFound),
        (409, "task_already_finished", TaskAlreadyFinished),
        (401, "unauthorized", Unauthorized),
        (413, "payload_too_large", PayloadTooLarge),
        (413, "body_too_large", BodyTooLarge),
        (429, "rate_limited", RateLimited),
        (400, "a_code_from_a_newer_server", InvalidInput),  # unknown code: the status decides
    ],
)
def test_errors_come_back_as_their_class(status: int, code: str, cls: type) -> None:
    err = error_from(_error(status, code, "the message"))
    assert type(err) is cls
    assert err.message == "the message"


def test_a_non_api_answer_is_unavailable() -> None:
    err = error_from(httpx.Response(502, text="<html>bad gateway</html>"))
    assert isinstance(err, Unavailable)
    assert "502" in err.message


def test_the_token_goes_in_the_header_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"id": "p1", "name": "acme"})

    mf = _client(handler)
    assert mf.project_id() == "p1"
    assert mf.project_id("acme") == "p1"
    with pytest.raises(InvalidInput, match="bound to project 'acme'"):
        mf.project_id("other")
    assert len(seen) == 1  # the project is fetched once
    assert seen[0].headers["authorization"] == f"Bearer {TOKEN}"
    assert TOKEN not in str(seen[0].url)


def test_429_is_retried_after_the_servers_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr("mayfly.cli.remote.time.sleep", slept.append)
    answers = [_error(429, "rate_limited", **{"Retry-After": "2"})] * RATE_RETRIES + [
        httpx.Response(200, json={"tasks": [], "next": None})
    ]

    def handler(request: httpx.Request) -> httpx.Response:
        return answers.pop(0)

    assert _client(handler).tasks.list("", TaskFilter()) == []
    assert slept == [2.0] * RATE_RETRIES


def test_429_gives_up_after_the_retries_or_a_long_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mayfly.cli.remote.time.sleep", lambda s: None)
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(429, "rate_limited", **{"Retry-After": "1"})

    with pytest.raises(RateLimited):
        _client(handler).schedules.list("")
    assert calls == RATE_RETRIES + 1

    calls = 0

    def slow(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        return _error(429, "rate_limited", **{"Retry-After": str(int(MAX_RETRY_WAIT) + 50)})

    with pytest.raises(RateLimited):
        _client(slow).schedules.list("")
    assert calls == 1


def test_an_upload_is_never_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("mayfly.cli.remote.time.sleep", lambda s: None)
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.read())
        return _error(429, "rate_limited", **{"Retry-After": "1"})

    with pytest.raises(RateLimited):
        _client(handler).codes.push("", "c", io.BytesIO(b"PK zip"), runtime="shell", options=CodeOptions(retries=2))
    assert len(bodies) == 1
    assert b"PK zip" in bodies[0]
    data = json.loads(bodies[0].split(b'name="data"\r\n\r\n')[1].split(b"\r\n--")[0])
    assert data == {"name": "c", "runtime": "shell", "retries": 2}


def test_an_unreachable_server_is_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(Unavailable, match=r"cannot reach the Mayfly server at http://mayfly\.test"):
        _client(handler).targets.list()
