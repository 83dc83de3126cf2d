"""Auth, expiry, revocation, rate limits and size caps against a real ``mayfly server`` process."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from mayfly.core.app import Mayfly
from mayfly.core.config import Home
from mayfly.core.store import now
from mayfly.core.store import schema as s
from mayfly.core.tokens import new_secret

pytestmark = pytest.mark.slow


def _no_runtime(name: str) -> Any:
    raise AssertionError("the tests' Mayfly resolves no runtime")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("guards"), "guards") as srv:
        yield srv


@pytest.fixture
def home_mf(server: Any) -> Iterator[Mayfly]:
    """The server's home, opened here the way an operator's ``mayfly token`` command would."""
    mf = Mayfly(Home(server.home), _no_runtime)
    yield mf
    mf.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _error(resp: httpx.Response, status: int, code: str) -> str:
    assert resp.status_code == status, resp.text
    assert resp.json()["code"] == code, resp.text
    return str(resp.json()["message"])


def test_no_unknown_or_malformed_token_is_401(server: Any) -> None:
    assert "missing token" in _error(httpx.get(f"{server.url}/v1/project"), 401, "unauthorized")
    wrong = httpx.get(f"{server.url}/v1/project", headers=_bearer(new_secret()))
    assert "unknown token" in _error(wrong, 401, "unauthorized")
    bad = httpx.get(f"{server.url}/v1/project", headers=_bearer(server.token[:-1] + "x"))
    assert "malformed token" in _error(bad, 401, "unauthorized")
    ok = httpx.get(f"{server.url}/v1/project", headers=server.bearer)
    assert ok.status_code == 200
    assert ok.json()["id"] == server.project_id


def test_revocation_takes_effect_on_the_next_request(server: Any, home_mf: Mayfly) -> None:
    token, secret = home_mf.tokens.create(server.project_id, name="to-revoke")
    assert httpx.get(f"{server.url}/v1/tasks", headers=_bearer(secret)).status_code == 200
    home_mf.tokens.revoke(server.project_id, token.id)
    assert "revoked" in _error(httpx.get(f"{server.url}/v1/tasks", headers=_bearer(secret)), 401, "unauthorized")
    assert httpx.get(f"{server.url}/v1/tasks", headers=server.bearer).status_code == 200


def test_expiry_takes_effect_on_the_next_request(server: Any, home_mf: Mayfly) -> None:
    token, secret = home_mf.tokens.create(server.project_id, expires_in=3600)
    assert httpx.get(f"{server.url}/v1/tasks", headers=_bearer(secret)).status_code == 200
    with home_mf.store.write() as conn:  # the hour has passed
        conn.execute(update(s.tokens).where(s.tokens.c.id == token.id).values(expires_at=now() - 1))
    assert "expired" in _error(httpx.get(f"{server.url}/v1/tasks", headers=_bearer(secret)), 401, "unauthorized")


def test_the_store_keeps_only_a_hash_of_the_secret(server: Any, home_mf: Mayfly) -> None:
    _, secret = home_mf.tokens.create(server.project_id)
    with home_mf.store.read() as conn:
        rows = [dict(r) for r in conn.execute(s.tokens.select()).mappings()]
    assert rows
    assert all(secret not in json.dumps(r, default=str) for r in rows)
    assert all(server.token not in json.dumps(r, default=str) for r in rows)


def _raw_request(server: Any, head: str, first_bytes: bytes) -> tuple[int, dict[str, Any]]:
    """Send the head and a few bytes of a body it announces as far larger, then read the answer without sending more."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head.encode() + first_bytes)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, f"connection closed before an answer: {data!r}"
            data += chunk
        header, _, body = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1]) for line in header.split(b"\r\n") if line.lower().startswith(b"content-length:")
        )
        while len(body) < length:
            chunk = sock.recv(65536)
            assert chunk
            body += chunk
    status = int(header.split(b" ", 2)[1])
    return status, json.loads(body)


def test_an_upload_over_the_cap_is_413_before_the_body_is_sent(server: Any) -> None:
    terabyte = 10**12
    head = (
        "POST /v1/codes HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token}\r\n"
        "Content-Type: multipart/form-data; boundary=xyz\r\n"
        f"Content-Length: {terabyte}\r\n\r\n"
    )
    status, body = _raw_request(server, head, b"--xyz\r\n")
    assert (status, body["code"]) == (413, "upload_too_large")
    assert "upload limit" in body["message"]


def test_a_json_body_over_the_cap_is_413_before_it_is_sent(server: Any) -> None:
    head = (
        "POST /v1/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {server.token}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {2 * 1024 * 1024}\r\n\r\n"
    )
    status, body = _raw_request(server, head, b'{"code_name": ')
    assert (status, body["code"]) == (413, "body_too_large")


def test_a_payload_over_64_kb_is_413(server: Any) -> None:
    made = httpx.post(
        f"{server.url}/v1/codes", headers=server.bearer, json={"name": "p", "image": "busybox", "command": "true"}
    )
    assert made.status_code == 201, made.text
    big = {"x": "a" * (64 * 1024)}
    resp = httpx.post(f"{server.url}/v1/tasks", headers=server.bearer, json={"code_name": "p", "payload": big})
    _error(resp, 413, "payload_too_large")


def test_rate_limit_is_429_with_retry_after_per_project(tmp_path: Path, start_server: Any) -> None:
    env = {"MAYFLY_API_RATE": "0.001", "MAYFLY_API_BURST": "5"}
    with start_server(tmp_path, "limited", env=env) as srv:
        mf = Mayfly(Home(srv.home), _no_runtime)
        other = mf.projects.create("other")
        _, other_token = mf.tokens.create(other.id)
        mf.close()
        with httpx.Client(base_url=srv.url) as client:
            answers = [client.get("/v1/tasks", headers=srv.bearer) for _ in range(6)]
            assert [r.status_code for r in answers] == [200] * 5 + [429]
            _error(answers[-1], 429, "rate_limited")
            assert int(answers[-1].headers["Retry-After"]) >= 1
            assert client.get("/v1/tasks", headers=_bearer(other_token)).status_code == 200
            # A refused request still costs nothing more than the check: the body is not read.
            big = client.post(
                "/v1/tasks", headers={**srv.bearer, "Content-Type": "application/json"}, content=b" " * 2_000_000
            )
            _error(big, 429, "rate_limited")
