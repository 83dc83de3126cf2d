"""Completion webhooks: outbox rows on every terminal status, signed delivery, retries, the SSRF guard."""

from __future__ import annotations

import ast
import hashlib
import hmac
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import func, select

from mayfly.core import __version__
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeResolver
from mayfly.core.config import Home
from mayfly.core.delivery import BACKOFF, LEASE, Deliverer
from mayfly.core.lifecycle import TRANSITIONS, apply_event, load_task, move
from mayfly.core.messages import Event, EventKind
from mayfly.core.models import TaskStatus
from mayfly.core.records import Task
from mayfly.core.router import dispatch
from mayfly.core.store import now
from mayfly.core.store import schema as s
from mayfly.core.tasks import TaskOptions
from mayfly.core.webhook_urls import Endpoint, Policy, WebhookRefused, endpoint, validate_url

ALLOW = "MAYFLY_WEBHOOK_ALLOW_PRIVATE"


# ---------------------------------------------------------------- a real receiver


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 answering with ``codes`` in turn (then 200), recording each request."""

    url: str
    codes: list[int] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)


@pytest.fixture
def allow_private(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW, "1")


@pytest.fixture
def receiver(allow_private: None) -> Iterator[Receiver]:
    box = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            box.requests.append(Received({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(box.codes.pop(0) if box.codes else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    box.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/mayfly?src=test"
    yield box
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_url(allow_private: None) -> Iterator[str]:
    """A port that accepts connections into its backlog and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


class Clock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.t = time.time() + 1

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def deliverer(mf: Mayfly, clock: Clock) -> Deliverer:
    return Deliverer(mf.store, clock=clock, timeout=0.3, metrics=mf.metrics)


# ---------------------------------------------------------------- helpers


def _code(mf: Mayfly, project: str, webhook: str | None = None, **opts: object) -> None:
    options = CodeOptions(command="true", webhook=webhook, **opts)  # type: ignore[arg-type]
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", options)


def _apply(mf: Mayfly, event: Event) -> None:
    with mf.store.write() as conn:
        apply_event(conn, event, now(), mf.limits)


def _running(mf: Mayfly, project: str, webhook: str | None = None) -> Task:
    task = mf.tasks.queue(project, "img", '{"secret": "payload"}', TaskOptions(webhook=webhook))
    assert task.id in [d.task_id for d in dispatch(mf.store, {"local": 100}, now())]
    _apply(mf, Event(task.id, 1, EventKind.STARTED, now(), {"handle": "h"}))
    return mf.tasks.get(project, task.id)


def _exit(mf: Mayfly, task: Task, **data: object) -> Task:
    _apply(mf, Event(task.id, task.attempt, EventKind.EXITED, now(), dict(data)))
    return mf.tasks.get(task.project_id, task.id)


def _rows(mf: Mayfly, task_id: str | None = None) -> list[dict[str, object]]:
    q = select(s.webhook_deliveries).order_by(s.webhook_deliveries.c.id)
    if task_id is not None:
        q = q.where(s.webhook_deliveries.c.task_id == task_id)
    with mf.store.read() as conn:
        return [dict(r) for r in conn.execute(q).mappings()]


def _signature_ok(secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    """What a receiver does, written from the documented contract, not from Mayfly's code."""
    signed = headers["x-mayfly-timestamp"].encode() + b"." + body
    expected = "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["x-mayfly-signature"])


# ---------------------------------------------------------------- delivery


def test_complete_task_is_posted_signed(mf: Mayfly, project: str, receiver: Receiver, deliverer: Deliverer) -> None:
    _code(mf, project, receiver.url)
    task = _exit(mf, _running(mf, project), exit_code=0)
    [row] = _rows(mf, task.id)
    assert (row["status"], row["attempt"], row["attempted_at"], row["delivered"]) == ("complete", 1, None, False)
    assert receiver.requests == []  # nothing is sent inline

    assert deliverer.step() == 1
    [req] = receiver.requests
    h = req.headers
    assert h["content-type"] == "application/json"
    assert h["user-agent"] == f"mayfly/{__version__}"
    assert h["x-mayfly-event"] == "task.complete"
    assert h["x-mayfly-delivery"] == row["delivery_id"]
    assert _signature_ok(mf.webhooks.secret(project), h, req.body)
    assert not _signature_ok("whsec_wrong", h, req.body)
    doc = json.loads(req.body)
    assert (doc["event"], doc["id"], doc["status"], doc["exit_code"]) == ("task.complete", task.id, "complete", 0)
    assert "payload" not in doc
    [row] = _rows(mf, task.id)
    assert (row["status_code"], row["error"], row["delivered"]) == (200, None, True)
    assert deliverer.step() == 0
    assert mf.metrics.webhook_deliveries.value("delivered") == 1


def _cancel_running(mf: Mayfly, project: str) -> Task:
    task = _running(mf, project)
    mf.tasks.cancel(project, task.id)
    return _exit(mf, task, exit_code=137, stopped="cancel")


def _cancel_queued(mf: Mayfly, project: str) -> Task:
    task = mf.tasks.queue(project, "img", "{}", TaskOptions())
    return mf.tasks.cancel(project, task.id)


@pytest.mark.parametrize(
    ("end", "event"),
    [
        (lambda mf, p: _exit(mf, _running(mf, p), exit_code=3), "task.error"),
        (lambda mf, p: _exit(mf, _running(mf, p), exit_code=137, oom=True), "task.error"),
        (lambda mf, p: _exit(mf, _running(mf, p), exit_code=143, stopped="timeout"), "task.timeout"),
        (_cancel_running, "task.cancelled"),
        (_cancel_queued, "task.cancelled"),
    ],
    ids=["error", "oom", "timeout", "cancel-running", "cancel-queued"],
)
def test_every_terminal_status_is_delivered(
    mf: Mayfly, project: str, receiver: Receiver, deliverer: Deliverer, end: object, event: str
) -> None:
    _code(mf, project, receiver.url)
    task = end(mf, project)  # type: ignore[operator]
    assert task.task_status.terminal
    assert deliverer.step() == 1
    [req] = receiver.requests
    assert req.headers["x-mayfly-event"] == event
    assert json.loads(req.body)["status"] == event.removeprefix("task.")
    assert _signature_ok(mf.webhooks.secret(project), req.headers, req.body)


def test_cancel_all_enqueues_one_delivery_per_task(
    mf: Mayfly, project: str, receiver: Receiver, deliverer: Deliverer
) -> None:
    _code(mf, project, receiver.url)
    ids = {t.id for t in mf.tasks.queue_many(project, "img", ["{}"] * 3, TaskOptions())}
    assert mf.tasks.cancel_all(project, "img") == (3, 0)
    assert {r["task_id"] for r in _rows(mf)} == ids
    assert deliverer.step() == 3
    assert sorted(json.loads(r.body)["id"] for r in receiver.requests) == sorted(ids)
    assert {r.headers["x-mayfly-event"] for r in receiver.requests} == {"task.cancelled"}


def test_500_twice_then_200_makes_three_attempts(
    mf: Mayfly, project: str, receiver: Receiver, deliverer: Deliverer, clock: Clock
) -> None:
    _code(mf, project, receiver.url)
    receiver.codes = [500, 500]
    task = _exit(mf, _running(mf, project), exit_code=0)
    assert deliverer.step() == 1
    assert deliverer.step() == 0  # the retry waits for its backoff
    clock.advance(BACKOFF[0] - 1)
    assert deliverer.step() == 0
    clock.advance(1)
    assert deliverer.step() == 1
    clock.advance(BACKOFF[1])
    assert deliverer.step() == 1
    clock.advance(3600 * 24)
    assert deliverer.step() == 0

    attempts = mf.webhooks.deliveries(project, task.id)
    assert [(d.attempt, d.status_code, d.delivered) for d in attempts] == [
        (1, 500, False),
        (2, 500, False),
        (3, 200, True),
    ]
    assert len({d.delivery_id for d in attempts}) == 1
    assert len(receiver.requests) == 3
    assert {r.headers["x-mayfly-delivery"] for r in receiver.requests} == {attempts[0].delivery_id}
    assert (mf.metrics.webhook_deliveries.value("failed"), mf.metrics.webhook_deliveries.value("delivered")) == (2, 1)


def test_a_receiver_that_never_answers_is_given_up(
    mf: Mayfly, project: str, silent_url: str, deliverer: Deliverer, clock: Clock
) -> None:
    _code(mf, project, silent_url)
    task = _exit(mf, _running(mf, project), exit_code=0)
    for wait in (0.0, *BACKOFF):
        clock.advance(wait)
        assert deliverer.step() == 1
    clock.advance(3600 * 24)
    assert deliverer.step() == 0

    attempts = mf.webhooks.deliveries(project, task.id)
    assert [d.attempt for d in attempts] == [1, 2, 3, 4, 5, 6] == list(range(1, deliverer.max_attempts + 1))
    assert {d.error for d in attempts} == {"no answer within 0.3s"}
    assert not any(d.delivered or d.pending for d in attempts)
    assert mf.tasks.get(project, task.id).status == "complete"
    assert mf.metrics.webhook_deliveries.value("gave_up") == 1


def test_a_crash_after_the_terminal_commit_loses_nothing(
    mf: Mayfly, project: str, home: Path, resolver: RuntimeResolver, receiver: Receiver
) -> None:
    _code(mf, project, receiver.url)
    task = _exit(mf, _running(mf, project), exit_code=0)
    mf.close()  # the process dies before any deliverer ran

    again = Mayfly(Home(home), resolver)
    try:
        assert Deliverer(again.store).step() == 1
        assert json.loads(receiver.requests[0].body)["id"] == task.id
        assert [d.delivered for d in again.webhooks.deliveries(project, task.id)] == [True]
    finally:
        again.close()


class Crash(BaseException):
    """The process dying mid-send."""


def test_a_crash_mid_send_resends_after_the_lease(mf: Mayfly, project: str, receiver: Receiver, clock: Clock) -> None:
    _code(mf, project, receiver.url)
    task = _exit(mf, _running(mf, project), exit_code=0)

    def crash(target: Endpoint, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        raise Crash

    with pytest.raises(Crash):
        Deliverer(mf.store, clock=clock, send=crash).step()
    fresh = Deliverer(mf.store, clock=clock)
    assert fresh.step() == 0  # still claimed by the dead deliverer
    clock.advance(LEASE)
    assert fresh.step() == 1
    assert [(d.attempt, d.delivered) for d in mf.webhooks.deliveries(project, task.id)] == [(1, True)]
    assert len(receiver.requests) == 1


def test_tasks_without_webhook_enqueue_nothing(mf: Mayfly, project: str) -> None:
    _code(mf, project)
    _exit(mf, _running(mf, project), exit_code=0)
    _cancel_queued(mf, project)
    assert _rows(mf) == []


# ---------------------------------------------------------------- no terminal path is missed


def _task_in(mf: Mayfly, project: str, status: TaskStatus) -> Task:
    task = mf.tasks.queue(project, "img", "{}", TaskOptions())
    if status is not TaskStatus.QUEUED:
        dispatch(mf.store, {"local": 100}, now())
    if status is TaskStatus.RUNNING:
        _apply(mf, Event(task.id, 1, EventKind.STARTED, now(), {}))
    got = mf.tasks.get(project, task.id)
    assert got.task_status is status
    return got


@pytest.mark.parametrize(
    ("old", "new"), [(old, new) for old, targets in TRANSITIONS.items() for new in sorted(targets)], ids=str
)
def test_every_transition_to_a_terminal_status_enqueues_exactly_one_delivery(
    mf: Mayfly, project: str, allow_private: None, old: TaskStatus, new: TaskStatus
) -> None:
    _code(mf, project, "http://127.0.0.1:9/hook")
    task = _task_in(mf, project, old)
    with mf.store.write() as conn:
        assert move(conn, task, new, now())
        assert not move(conn, task, new, now())  # a lost compare-and-set enqueues nothing
    rows = _rows(mf, task.id)
    assert [r["status"] for r in rows] == ([new.value] if new.terminal else [])


def test_only_lifecycle_writes_task_statuses() -> None:
    """A new ``update(s.tasks).values(status=...)`` elsewhere would skip the outbox: write it in lifecycle."""
    import mayfly

    allowed = {"lifecycle.py", "router.py"}  # router only moves queued → preparing (never terminal)
    offenders = []
    for root in mayfly.__path__:
        for path in Path(root).rglob("*.py"):
            if path.name in allowed and path.parent.name == "core":
                continue
            text = path.read_text()
            if "UPDATE tasks" in text.replace("update tasks", "UPDATE tasks"):
                offenders.append(f"{path}: raw SQL update of tasks")
            for node in ast.walk(ast.parse(text)):
                if _sets_task_status(node):
                    offenders.append(f"{path}:{node.lineno}")  # type: ignore[attr-defined]
    assert offenders == []


def _sets_task_status(node: ast.AST) -> bool:
    """``update(s.tasks)....values(status=...)``."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "values"):
        return False
    if not any(k.arg == "status" for k in node.keywords):
        return False
    inner: ast.AST = node.func.value
    while isinstance(inner, ast.Call | ast.Attribute):
        if isinstance(inner, ast.Call) and isinstance(inner.func, ast.Name) and inner.func.id == "update":
            return bool(inner.args) and ast.unparse(inner.args[0]).endswith("tasks")
        inner = inner.func if isinstance(inner, ast.Call) else inner.value
    return False


# ---------------------------------------------------------------- inheritance and retries


def test_task_webhook_inherits_overrides_and_clears(mf: Mayfly, project: str, allow_private: None) -> None:
    code_url, own_url = "http://127.0.0.1:9/code", "http://127.0.0.1:9/task"
    _code(mf, project, code_url)
    assert mf.tasks.queue(project, "img", "{}", TaskOptions()).webhook == code_url
    assert mf.tasks.queue(project, "img", "{}", TaskOptions(webhook=own_url)).webhook == own_url
    assert mf.tasks.queue(project, "img", "{}", TaskOptions(webhook="")).webhook is None
    # Re-registering without a webhook keeps it; "" removes it.
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(timeout=5))
    assert mf.codes.get(project, "img")[1].webhook == code_url
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(webhook=""))
    assert mf.codes.get(project, "img")[1].webhook is None
    assert mf.tasks.queue(project, "img", "{}", TaskOptions()).webhook is None


def test_retries_keep_the_webhook(mf: Mayfly, project: str, allow_private: None) -> None:
    _code(mf, project, "http://127.0.0.1:9/code", retries=1)
    failed = _exit(mf, _running(mf, project, webhook="http://127.0.0.1:9/own"), exit_code=1)
    assert failed.retried_by is not None
    with mf.store.read() as conn:
        retry = load_task(conn, failed.retried_by)
    assert retry is not None
    assert retry.webhook == "http://127.0.0.1:9/own"
    assert mf.tasks.retry(project, failed.id).webhook == "http://127.0.0.1:9/own"


def test_the_signing_secret_is_created_once_and_rotates(mf: Mayfly, project: str) -> None:
    first = mf.webhooks.secret(project)
    assert first.startswith("whsec_")
    assert len(first) > 40
    assert mf.webhooks.secret(project) == first
    rotated = mf.webhooks.secret(project, rotate=True)
    assert rotated != first
    assert mf.webhooks.secret(project) == rotated


# ---------------------------------------------------------------- SSRF guard

HINT = " (MAYFLY_WEBHOOK_ALLOW_PRIVATE=1 allows it for local development)"
REFUSED = [
    ("http://169.254.169.254/latest/meta-data/", "webhook URL refused: 169.254.169.254 is a cloud metadata address"),
    ("http://localhost:8080/hook", f"webhook URL refused: localhost is this machine{HINT}"),
    ("http://10.0.0.1/hook", f"webhook URL refused: 10.0.0.1 is a private address{HINT}"),
    ("file:///etc/passwd", "webhook URL refused: scheme 'file' is not allowed (use http or https)"),
    ("http://127.0.0.1:9/x", f"webhook URL refused: 127.0.0.1 is a loopback address{HINT}"),
    ("http://169.254.10.1/", f"webhook URL refused: 169.254.10.1 is a link-local address{HINT}"),
    (
        "http://[::ffff:192.168.1.1]/",
        f"webhook URL refused: ::ffff:192.168.1.1 resolves to 192.168.1.1, which is a private address{HINT}",
    ),
    ("gopher://example.com/", "webhook URL refused: scheme 'gopher' is not allowed (use http or https)"),
    ("http://user:pw@example.com/", "webhook URL refused: credentials in the URL are not supported"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED, ids=[u for u, _ in REFUSED])
def test_refused_urls_store_nothing(
    mf: Mayfly, project: str, monkeypatch: pytest.MonkeyPatch, url: str, message: str
) -> None:
    monkeypatch.delenv(ALLOW, raising=False)
    _code(mf, project)
    with pytest.raises(WebhookRefused) as exc:
        mf.tasks.queue(project, "img", "{}", TaskOptions(webhook=url))
    assert str(exc.value) == message
    with pytest.raises(WebhookRefused) as exc:
        mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(webhook=url))
    assert str(exc.value) == message
    with mf.store.read() as conn:
        assert conn.execute(select(func.count()).select_from(s.tasks)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(s.code_revisions)).scalar_one() == 1


def test_the_override_allows_private_but_never_metadata(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ALLOW, "1")
    for url in ("http://localhost:8080/", "http://10.0.0.1/", "http://127.0.0.1/", "http://169.254.10.1/"):
        assert validate_url(url) == url
    for url in (
        "http://169.254.169.254/",
        "http://metadata.google.internal/",
        "http://0.0.0.0/",
        "http://[fd00:ec2::254]/",
    ):
        with pytest.raises(WebhookRefused):
            validate_url(url)


def test_names_are_checked_by_what_they_resolve_to() -> None:
    def to(*addresses: str) -> object:
        return lambda host, port: list(addresses)

    policy = Policy()
    with pytest.raises(WebhookRefused) as exc:
        endpoint("https://hooks.example.com/x", policy, to("93.184.216.34", "10.1.2.3"))  # type: ignore[arg-type]
    assert (
        str(exc.value)
        == f"webhook URL refused: hooks.example.com resolves to 10.1.2.3, which is a private address{HINT}"
    )
    ok = endpoint("https://hooks.example.com/x?a=1#frag", policy, to("93.184.216.34"))  # type: ignore[arg-type]
    assert (ok.scheme, ok.host, ok.port, ok.target, ok.addresses) == (
        "https",
        "hooks.example.com",
        443,
        "/x?a=1",
        ("93.184.216.34",),
    )

    # A name that does not resolve is accepted when stored; the send-time check decides later.
    def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("no such name")

    assert validate_url("https://nowhere.invalid/", policy, nxdomain) == "https://nowhere.invalid/"


def test_the_check_runs_again_before_sending(
    mf: Mayfly, project: str, receiver: Receiver, deliverer: Deliverer, monkeypatch: pytest.MonkeyPatch, clock: Clock
) -> None:
    _code(mf, project, receiver.url)  # accepted: the override is on
    task = _exit(mf, _running(mf, project), exit_code=0)
    monkeypatch.delenv(ALLOW)
    assert deliverer.step() == 1
    [attempt, retry] = mf.webhooks.deliveries(project, task.id)
    assert attempt.error == f"webhook URL refused: 127.0.0.1 is a loopback address{HINT}"
    assert (attempt.delivered, retry.pending) == (False, True)
    assert receiver.requests == []
    assert mf.metrics.webhook_deliveries.value("refused") == 1


def test_redirects_are_not_followed(mf: Mayfly, project: str, receiver: Receiver, deliverer: Deliverer) -> None:
    _code(mf, project, receiver.url)
    receiver.codes = [302]
    task = _exit(mf, _running(mf, project), exit_code=0)
    deliverer.step()
    [attempt, retry] = mf.webhooks.deliveries(project, task.id)
    assert (attempt.status_code, attempt.delivered, retry.pending) == (302, False, True)
    assert len(receiver.requests) == 1
