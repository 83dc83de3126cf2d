"""Secret values end to end on a real server and real Docker, searched for everywhere the system writes.

Issue 13 item 6. A code gets one secret over ``/v1`` and one from a file through
the remote CLI; a task adds its own over ``/v1``. The container reads all three
(content checked by hash, mode 0400, owner the task user, read-only directory).
While it runs, ``docker inspect`` and the in-flight queue message are searched;
after it ends, every file under the server's directory (the home's SQLite files,
blobs, queues, keys, the server's log), every API response and CLI output and the
task's log are searched. The values appear nowhere but inside the container.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DB = f"db-{secrets.token_hex(12)}"
CERT = f"-----BEGIN-----\ncert-{secrets.token_hex(12)}\n-----END-----\n"
TASK = f"tk-{secrets.token_hex(12)}"
NEEDLES = [DB.encode(), CERT.split("\n")[1].encode(), TASK.encode()]

READER = r"""
for n in DB_PASSWORD CERT TASK_TOKEN; do set -- $(sha256sum "$MAYFLY_SECRETS_DIR/$n"); eval "sum_$n=$1"; done
set -- $(ls -ln "$MAYFLY_SECRETS_DIR/DB_PASSWORD"); mode=$1; owner=$3:$4
set -- $(ls -lnd "$MAYFLY_SECRETS_DIR"); dmode=$1
if touch "$MAYFLY_SECRETS_DIR/new" 2>/dev/null; then ro=no; else ro=yes; fi
printf '{"db":"%s","cert":"%s","task":"%s","mode":"%s","owner":"%s","dir":"%s","ro":"%s","uid":"%s"}' \
  "$sum_DB_PASSWORD" "$sum_CERT" "$sum_TASK_TOKEN" "$mode" "$owner" "$dmode" "$ro" "$(id -u)" > /mayfly/result.json
echo "read $(ls "$MAYFLY_SECRETS_DIR" | wc -l) secrets from $MAYFLY_SECRETS_DIR"
while [ ! -e /mayfly/go ]; do sleep 0.1; done
"""


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _holders(root: Path, skip: Path | None = None) -> list[str]:
    """Files under ``root`` (but not under ``skip``) holding any secret value."""
    found = []
    for path in root.rglob("*"):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(n in data for n in NEEDLES):
                found.append(str(path.relative_to(root)))
    return found


def _clean(text: str | bytes, where: str) -> None:
    data = text.encode() if isinstance(text, str) else text
    for needle in NEEDLES:
        assert needle not in data, f"a secret value is in {where}"


@pytest.fixture
def server(tmp_path: Path, start_server: Any, busybox_image: str) -> Iterator[Any]:
    with start_server(tmp_path, "sec") as srv:
        yield srv


def _cli(srv: Any, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAYFLY_URL": srv.url, "MAYFLY_TOKEN": srv.token}
    out = subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    _clean(out.stdout + out.stderr, f"the output of mayfly {' '.join(args)}")
    return out


def test_secrets_reach_only_the_container(server: Any, tmp_path: Path, busybox_image: str, docker_client: Any) -> None:
    api = httpx.Client(base_url=server.url, headers=server.bearer, timeout=30)
    responses: list[httpx.Response] = []

    def call(method: str, path: str, **kw: Any) -> Any:
        r = api.request(method, path, **kw)
        assert r.status_code < 300, r.text
        responses.append(r)
        return r.json() if r.headers.get("content-type", "").startswith("application/json") else r.text

    made = call(
        "POST",
        "/v1/codes",
        json={"name": "reader", "image": busybox_image, "command": READER, "secrets": {"DB_PASSWORD": DB}},
    )
    assert made["latest"]["secrets"] == ["DB_PASSWORD"]
    cert = tmp_path / "src" / "cert.pem"
    cert.parent.mkdir()
    cert.write_text(CERT)
    _cli(server, "code", "register", busybox_image, "--name", "reader", "--secret-file", f"CERT={cert}")
    assert json.loads(_cli(server, "code", "show", "reader", "--json").stdout)["latest"]["secrets"] == [
        "CERT",
        "DB_PASSWORD",
    ]
    task = call("POST", "/v1/tasks", json={"code_name": "reader", "secrets": {"TASK_TOKEN": TASK}})
    assert task["secrets"] == ["TASK_TOKEN"]
    task_id = task["id"]

    # While it runs: the container's spec, its task directory and the in-flight queue message.
    deadline = time.monotonic() + 90
    while call("GET", f"/v1/tasks/{task_id}")["status"] != "running":
        assert time.monotonic() < deadline, "the task never ran"
        time.sleep(0.2)
    (container,) = docker_client.containers.list(filters={"label": f"mayfly.task={task_id}"})
    inspected = json.dumps(docker_client.api.inspect_container(container.id))
    _clean(inspected, "docker inspect")
    assert "/mayfly/secrets" in inspected  # the read-only mount is there, by path only
    task_dir = server.home / "run" / "local" / f"mayfly-{task_id}-1"
    result_file = task_dir / "result.json"
    while not result_file.stat().st_size:
        assert time.monotonic() < deadline, "the task never wrote its result"
        time.sleep(0.1)
    for name in ("DB_PASSWORD", "CERT", "TASK_TOKEN"):
        st = (task_dir / "secrets" / name).stat()
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o400, 10001, 10001)
    # The scan finds the values where they are meant to be (the files bound into the container), and only there.
    rel = task_dir.relative_to(server.home)
    assert sorted(_holders(server.home)) == [f"{rel}/secrets/{n}" for n in ("CERT", "DB_PASSWORD", "TASK_TOKEN")]
    with sqlite3.connect(server.home / "queues.db") as q:
        bodies = [row[0] for row in q.execute("SELECT body FROM messages")]
    mine = [b for b in bodies if task_id in b and '"kind":"task"' in b]
    assert mine, "the task's message is in flight while the container runs"
    assert json.loads(mine[0])["secrets"].keys() == {"DB_PASSWORD", "CERT", "TASK_TOKEN"}  # sealed, by name
    for body in bodies:
        _clean(body, "a queue message")
    (task_dir / "go").touch()

    while (done := call("GET", f"/v1/tasks/{task_id}"))["status"] in ("queued", "preparing", "running"):
        assert time.monotonic() < deadline, "the task never ended"
        time.sleep(0.2)
    assert done["status"] == "complete", done
    assert done["result"] == {
        "db": _sha(DB),
        "cert": _sha(CERT),
        "task": _sha(TASK),
        "mode": "-r--------",
        "owner": "10001:10001",
        "dir": "dr-x------",
        "ro": "yes",
        "uid": "10001",
    }
    log = call("GET", f"/v1/tasks/{task_id}/log")
    assert "read 3 secrets from /mayfly/secrets" in log

    # Afterwards: every response, every CLI output, every file the server's directory holds.
    for path in ("/v1/codes", "/v1/codes/reader", "/v1/codes/reader/revisions", f"/v1/tasks/{task_id}/events"):
        call("GET", path)
    call("GET", "/v1/tasks", params={"code": "reader"})
    call("GET", f"/v1/tasks/{task_id}/result")
    for r in responses:
        _clean(r.content, f"the response to {r.request.method} {r.request.url.path}")
    _cli(server, "task", "show", task_id, "--events", "--json")
    _cli(server, "task", "log", task_id)
    _cli(server, "code", "revisions", "reader", "--json")
    assert not task_dir.exists()
    assert (tmp_path / "server.log").exists()
    assert _holders(tmp_path, skip=cert.parent) == []
