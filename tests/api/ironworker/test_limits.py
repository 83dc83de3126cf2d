"""Body caps, upload settings and hostile code options on /2 (and /v1 alongside), over real HTTP with raw sockets.

One ``mayfly server`` runs with ``MAYFLY_MAX_UPLOAD_BYTES`` set to 1 MiB and
``--verbose`` (its log is read by the disconnect test). Requests are written
byte by byte on a socket, so a declared ``Content-Length`` can be a lie and a
body can stop half way, as a hostile or cancelled client does.
"""

from __future__ import annotations

import io
import json
import socket
import time
import zipfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CAP = 1024 * 1024
#: Hang guard only: a server that waits for a body it will never get fails the test instead of blocking it.
SOCKET_TIMEOUT = 60


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory, runtime_images: dict[str, str], start_server: Any) -> Iterator[Any]:
    root = tmp_path_factory.mktemp("iwlimits")
    with start_server(root, "lim", env={"MAYFLY_MAX_UPLOAD_BYTES": str(CAP)}, args=["--verbose"]) as server:
        yield server


def _connect(srv: Any) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", srv.port), timeout=SOCKET_TIMEOUT)
    return sock


def _head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, str], Any]:
    """Read one response (status, headers, JSON body) from the socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-response"
        body += chunk
    return int(status_line.split()[1]), headers, json.loads(body[:length])


def _declared_only(srv: Any, path: str, headers: dict[str, str], length: int) -> tuple[int, Any]:
    """Send headers declaring ``length`` body bytes, send none, and read the answer."""
    with _connect(srv) as sock:
        sock.sendall(_head("POST", path, {**headers, "Content-Length": str(length)}))
        status, _, body = _response(sock)
    return status, body


MULTIPART = {"Content-Type": "multipart/form-data; boundary=xyz"}


@pytest.mark.parametrize("length", [10**12, 3 * CAP])
def test_a_declared_length_over_the_cap_is_413_before_any_body(srv: Any, length: int) -> None:
    iron = f"/2/projects/{srv.project_id}/codes"
    status, body = _declared_only(srv, iron, {**srv.auth, **MULTIPART}, length)
    assert (status, body) == (413, {"msg": "code package is larger than the 1 MiB upload limit"})
    status, body = _declared_only(srv, "/v1/codes", {**srv.bearer, **MULTIPART}, length)
    assert status == 413
    assert body["code"] == "upload_too_large"


def test_json_routes_and_the_webhook_refuse_a_declared_length_over_their_cap(srv: Any) -> None:
    json_type = {"Content-Type": "application/json"}
    for path in ("tasks", "schedules", "tasks/x/retry"):
        status, body = _declared_only(srv, f"/2/projects/{srv.project_id}/{path}", {**srv.auth, **json_type}, 10**9)
        assert (status, body) == (413, {"msg": "request body is larger than the 1 MiB limit"}), path
    hook = f"/2/projects/{srv.project_id}/tasks/webhook?code_name=x"
    status, body = _declared_only(srv, hook, srv.auth, 64 * 1024 + 1)
    assert (status, body) == (413, {"msg": "webhook body is larger than 65536 bytes (64 KB)"})


def test_a_chunked_upload_stops_being_read_at_the_cap(srv: Any) -> None:
    """No Content-Length: the body is counted as it arrives; past the cap the answer is 413 without the rest."""
    path = f"/2/projects/{srv.project_id}/codes"
    headers = {**srv.auth, **MULTIPART, "Transfer-Encoding": "chunked"}
    block = b"x" * 65536
    with _connect(srv) as sock:
        sock.sendall(_head("POST", path, headers))
        preamble = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(preamble), preamble))
        # Twice the request cap, and never the final chunk: only a server that stops reading can answer.
        for _ in range(2 * (CAP + 1024 * 1024) // len(block)):
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
            except OSError:
                break  # the server answered and closed
        status, _, body = _response(sock)
    assert (status, body) == (413, {"msg": "code package is larger than the 1 MiB upload limit"})


def test_the_python_clients_encoded_upload_gets_room_for_its_encoding(srv: Any) -> None:
    """IronWorker's Python client sends the zip as a bytes literal (up to 4x): its bodies get that much room."""
    agent = {"User-Agent": "iron_worker_python (version: 1.3.8)"}
    body = b"--xyz--\r\n" + b" " * (3 * CAP)
    with _connect(srv) as sock:
        path = f"/2/projects/{srv.project_id}/codes"
        sock.sendall(_head("POST", path, {**srv.auth, **MULTIPART, **agent, "Content-Length": str(len(body))}))
        sock.sendall(body)
        status, _, answer = _response(sock)
    # Read whole (an empty form: no 'data'), not refused for its size.
    assert (status, answer) == (406, {"msg": "data is required: a JSON object with at least 'name'"})


def _upload(srv: Any, data: dict[str, Any]) -> httpx.Response:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("run.sh", "echo hi\n")
    return httpx.post(
        srv.path("codes"),
        headers=srv.auth,
        files={"data": (None, json.dumps(data)), "file": ("run.zip", buf.getvalue(), "application/zip")},
    )


@pytest.mark.parametrize(
    ("file_name", "message"),
    [
        ("../../etc/passwd", "file_name '../../etc/passwd' must stay inside the zip (no '..')"),
        ("sub/../../run.sh", "file_name 'sub/../../run.sh' must stay inside the zip (no '..')"),
        ("/etc/passwd", "file_name '/etc/passwd' must be a relative path inside the zip (no leading '/' or '\\')"),
        ("run.sh\x00.txt", "file_name must not contain control characters (NUL, newline, ...)"),
        ("run.sh\n", "file_name must not contain control characters (NUL, newline, ...)"),
    ],
)
def test_a_file_name_outside_the_package_is_refused(srv: Any, file_name: str, message: str) -> None:
    for extra in ({}, {"command": "sh run.sh"}):
        r = _upload(srv, {"name": "fn", "runtime": "sh", "file_name": file_name, **extra})
        assert (r.status_code, r.json()) == (400, {"msg": message})
    codes = httpx.get(srv.path("codes"), headers=srv.auth).json()["codes"]
    assert "fn" not in [c["name"] for c in codes]


def test_a_plain_file_name_still_works(srv: Any) -> None:
    r = _upload(srv, {"name": "fn-ok", "runtime": "sh", "file_name": "./run.sh"})
    assert r.status_code == 200, r.text
    assert r.json()["command"] == "sh run.sh"


def test_env_is_capped_on_both_apis(srv: Any) -> None:
    big = {"BIG": "x" * (100 * 1024)}
    long_name = {"N" * 256: "x"}
    for env, message in (
        (big, "environment variables are larger than 65536 bytes (names and values)"),
        (long_name, "an environment variable name is longer than 255 characters"),
    ):
        r = _upload(srv, {"name": "envy", "runtime": "sh", "file_name": "run.sh", "env_vars": env})
        assert (r.status_code, r.json()) == (400, {"msg": message})
        v1 = httpx.post(
            f"{srv.url}/v1/codes",
            headers=srv.bearer,
            json={"name": "envy", "image": "busybox:latest", "env": env},
        )
        assert v1.status_code == 400, v1.text
        assert v1.json()["message"] == message
    codes = httpx.get(srv.path("codes"), headers=srv.auth).json()["codes"]
    assert "envy" not in [c["name"] for c in codes]


def _wait_for_line(log: Any, needle: str, count: int) -> str:
    deadline = time.monotonic() + SOCKET_TIMEOUT
    text = ""
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if text.count(needle) >= count:
            return text
        time.sleep(0.1)
    return text


def test_a_client_that_hangs_up_mid_upload_is_one_info_line(srv: Any) -> None:
    """A cancelled upload is normal: one INFO line per request, no ERROR, no traceback, on both APIs."""
    log = srv.home.parent / "server.log"
    part = b'--xyz\r\nContent-Disposition: form-data; name="file"; filename="a.zip"\r\n\r\nPK' + b"x" * 50000
    requests = [
        (f"/2/projects/{srv.project_id}/codes", srv.auth, MULTIPART),
        ("/v1/codes", srv.bearer, MULTIPART),
        (f"/2/projects/{srv.project_id}/tasks", srv.auth, {"Content-Type": "application/json"}),
        ("/v1/tasks", srv.bearer, {"Content-Type": "application/json"}),
    ]
    for path, auth, kind in requests:
        with _connect(srv) as sock:
            sock.sendall(_head("POST", path, {**auth, **kind, "Content-Length": "100000"}))
            sock.sendall(part)
            time.sleep(0.2)  # let the server start reading before the client goes away
    needle = "disconnected before sending all of POST"
    text = _wait_for_line(log, needle, len(requests))
    lines = [line for line in text.splitlines() if needle in line]
    assert len(lines) == len(requests), text
    assert all(" INFO mayfly.api: " in line for line in lines), lines
    assert "Traceback" not in text
    assert " ERROR " not in text
