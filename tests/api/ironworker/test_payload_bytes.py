"""IronWorker payloads reach the worker's payload file byte for byte, JSON or not (a real server, real containers).

The worker is a shell script that prints its payload file as hex, so the test
compares exact bytes: no JSON quoting, no re-serialisation, no newline added.
Payloads go in through IronWorker's own Python client, raw ``POST /tasks``,
the webhook (raw body) and a schedule.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from typing import Any

import httpx
import pytest
from iron_worker import IronWorker

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: Prints the payload file as one line of hex (od is in every shell image), then a marker.
SCRIPT = 'od -An -v -tx1 "$PAYLOAD_FILE" | tr -d " \\n"; echo; echo end\n'

PAYLOADS = {
    "text": "hello world",
    "xml": '<?xml version="1.0"?>\n<order id="7"><item>ünï</item></order>\n',
    "csv": "a,b,c\r\n1,2,3\r\n",
    "form": "name=may+fly&n=1%202&empty=",
    "json_spacing": '{ "a" : 1,\n  "b": [1, 2] }',
    "json_string": '"quoted"',
    "empty": "",
}


@pytest.fixture(scope="module")
def hexdump(server: Any) -> str:
    """A shell code that prints its payload file as hex."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("run.sh", SCRIPT)
    r = httpx.post(
        server.path("codes"),
        headers=server.auth,
        files={
            "data": (None, json.dumps({"name": "hexdump", "runtime": "sh", "file_name": "run.sh"})),
            "file": ("run.zip", buf.getvalue(), "application/zip"),
        },
    )
    assert r.status_code == 200, r.text
    return "hexdump"


def _delivered(iw: IronWorker, task_id: str) -> bytes:
    """The bytes the worker found in its payload file."""
    done = iw.wait_for_task(task_id)
    assert done.status == "complete", iw.log(done)
    first, marker = iw.log(done).splitlines()[:2]
    assert marker == "end"
    return bytes.fromhex(first)


@pytest.mark.parametrize("kind", sorted(k for k in PAYLOADS if not k.startswith("json")))
def test_the_clients_payload_reaches_the_file_as_sent(iw: IronWorker, hexdump: str, kind: str) -> None:
    # (The client itself decodes and re-encodes a payload that is JSON, so JSON is tested with raw HTTP below.)
    payload = PAYLOADS[kind]
    task = iw.queue(code_name=hexdump, payload=payload)
    assert _delivered(iw, task.id) == payload.encode()
    assert iw.task(task.id).payload == payload


def test_raw_bulk_queue_keeps_every_payload(iw: IronWorker, hexdump: str, server: Any) -> None:
    tasks = [{"code_name": hexdump, "payload": p} for p in PAYLOADS.values()]
    r = httpx.post(server.path("tasks"), headers=server.auth, json={"tasks": tasks})
    assert r.status_code == 200, r.text
    ids = [t["id"] for t in r.json()["tasks"]]
    assert [_delivered(iw, i) for i in ids] == [p.encode() for p in PAYLOADS.values()]
    # GET /tasks/{id} shows the payload string as stored, unchanged.
    shown = [httpx.get(server.path(f"tasks/{i}"), headers=server.auth).json()["payload"] for i in ids]
    assert shown == list(PAYLOADS.values())


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b"a=1&b=two+words", "application/x-www-form-urlencoded"),
        (b"<event><id>1</id></event>\n", "application/xml"),
        (b'{"zen":  "Keep it logically awesome."}', "application/json"),
        ("plain ünïcode\n".encode(), "text/plain; charset=utf-8"),
    ],
)
def test_the_webhook_body_is_the_payload_byte_for_byte(
    iw: IronWorker, hexdump: str, server: Any, body: bytes, content_type: str
) -> None:
    r = httpx.post(
        server.path("tasks/webhook"),
        params={"code_name": hexdump},
        headers={**server.auth, "Content-Type": content_type},
        content=body,
    )
    assert r.status_code == 200, r.text
    assert _delivered(iw, r.json()["id"]) == body


def test_a_schedules_text_payload_reaches_its_tasks(iw: IronWorker, hexdump: str, server: Any) -> None:
    payload = "id,when\n42,now\n"
    r = httpx.post(
        server.path("schedules"),
        headers=server.auth,
        json={"schedules": [{"code_name": hexdump, "payload": payload}]},  # no run_every: runs once, now
    )
    assert r.status_code == 200, r.text
    (schedule_id,) = [s["id"] for s in r.json()["schedules"]]
    assert httpx.get(server.path(f"schedules/{schedule_id}"), headers=server.auth).json()["payload"] == payload
    task_id = None
    deadline = time.monotonic() + 60
    while task_id is None and time.monotonic() < deadline:
        listed = httpx.get(server.path("tasks"), params={"code_name": hexdump, "per_page": 100}, headers=server.auth)
        task_id = next((t["id"] for t in listed.json()["tasks"] if t.get("schedule_id") == schedule_id), None)
        time.sleep(0.2)
    assert task_id is not None, "the schedule did not fire"
    assert _delivered(iw, task_id) == payload.encode()


def test_payloads_with_nul_or_over_64_kb_are_refused(hexdump: str, server: Any) -> None:
    for payload, status, msg in (
        ("a\x00b", 400, "payload must not contain NUL characters"),
        ("x" * (64 * 1024 + 1), 413, "payload is 65537 bytes; the limit is 65536 bytes (64 KB)"),
    ):
        r = httpx.post(
            server.path("tasks"), headers=server.auth, json={"tasks": [{"code_name": hexdump, "payload": payload}]}
        )
        assert (r.status_code, r.json()) == (status, {"msg": msg})


def test_native_api_still_requires_json(hexdump: str, server: Any) -> None:
    r = httpx.post(f"{server.url}/v1/tasks", headers=server.bearer, json={"code_name": hexdump, "payload": "not json"})
    assert r.status_code == 400
    assert r.json()["code"] == "invalid_payload"


def test_retry_lineage_is_on_both_tasks(iw: IronWorker, hexdump: str, server: Any) -> None:
    first = iw.wait_for_task(iw.queue(code_name=hexdump, payload="again").id)
    r = httpx.post(server.path(f"tasks/{first.id}/retry"), headers=server.auth, json={})
    (retry_id,) = [t["id"] for t in r.json()["tasks"]]
    original = httpx.get(server.path(f"tasks/{first.id}"), headers=server.auth).json()
    retried = httpx.get(server.path(f"tasks/{retry_id}"), headers=server.auth).json()
    assert (original["retried_by"], retried["retry_of"]) == (retry_id, first.id)
    assert "retry_of" not in original
    assert "retried_by" not in retried
    assert _delivered(iw, retry_id) == b"again"
    native = httpx.get(f"{server.url}/v1/tasks/{retry_id}", headers=server.bearer).json()
    assert native["retry_of"] == first.id
