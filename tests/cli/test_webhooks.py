"""``--webhook`` options, delivery attempts in ``task show``, and ``project webhook-secret``."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli import webhooks
from mayfly.cli.app import app
from mayfly.cli.context import open_app
from mayfly.core.delivery import Deliverer

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def hook_url(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MAYFLY_WEBHOOK_ALLOW_PRIVATE", "1")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


def test_task_show_lists_delivery_attempts(hook_url: str) -> None:
    code, out, err = _run(
        "code", "register", "mayfly-test/busybox:latest", "-n", "img", "--webhook", hook_url, "--json"
    )
    assert code == 0, err
    assert json.loads(out)["latest"]["webhook"] == hook_url
    code, out, err = _run("task", "queue", "img", "--delay", "3600")
    assert code == 0, err
    task_id = out.strip()
    assert _run("task", "cancel", task_id)[0] == 0

    doc = json.loads(_run("task", "show", task_id, "--json")[1])
    [pending] = doc["webhook"]["deliveries"]
    assert doc["webhook"]["url"] == hook_url
    assert (pending["attempt"], pending["event"], pending["pending"], pending["delivered"]) == (
        1,
        "task.cancelled",
        True,
        False,
    )

    mf = open_app()
    try:
        assert Deliverer(mf.store).step() == 1
    finally:
        mf.close()
    doc = json.loads(_run("task", "show", task_id, "--json")[1])
    [attempt] = doc["webhook"]["deliveries"]
    assert (attempt["attempt"], attempt["status_code"], attempt["error"], attempt["delivered"]) == (1, 204, None, True)
    assert attempt["at"] is not None
    text = _run("task", "show", task_id)[1]
    assert f"webhook  {hook_url}" in text
    assert "task.cancelled" in text
    assert "204" in text


def test_a_task_without_webhook_shows_null(home: Path) -> None:
    assert _run("code", "register", "mayfly-test/busybox:latest", "-n", "img")[0] == 0
    task_id = _run("task", "queue", "img")[1].strip()
    assert json.loads(_run("task", "show", task_id, "--json")[1])["webhook"] is None


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["task", "queue", "img", "--webhook", "http://169.254.169.254/latest/meta-data/"],
            "Error: webhook URL refused: 169.254.169.254 is a cloud metadata address",
        ),
        (
            ["code", "register", "mayfly-test/busybox:latest", "-n", "img", "--webhook", "file:///etc/passwd"],
            "Error: webhook URL refused: scheme 'file' is not allowed (use http or https)",
        ),
        (
            ["run", "img", "--webhook", "http://10.0.0.1/"],
            "Error: webhook URL refused: 10.0.0.1 is a private address "
            "(MAYFLY_WEBHOOK_ALLOW_PRIVATE=1 allows it for local development)",
        ),
    ],
)
def test_refused_webhooks_are_one_line_errors(home: Path, args: list[str], line: str) -> None:
    assert _run("code", "register", "mayfly-test/busybox:latest", "-n", "img")[0] == 0
    code, _out, err = _run(*args)
    assert (code, err.strip()) == (2, line)
    doc = json.loads(_run("task", "list", "--json")[1])
    assert doc["tasks"] == []


def test_webhook_secret_is_stable_until_rotated(home: Path) -> None:
    first = runner.invoke(webhooks.app, ["webhook-secret"])
    assert first.exit_code == 0, first.stderr
    secret = first.stdout.strip()
    assert secret.startswith("whsec_")
    assert runner.invoke(webhooks.app, ["webhook-secret"]).stdout.strip() == secret
    rotated = runner.invoke(webhooks.app, ["webhook-secret", "--rotate", "--json"])
    doc = json.loads(rotated.stdout)
    assert (doc["project"], doc["rotated"]) == ("default", True)
    assert doc["secret"] != secret
    assert runner.invoke(webhooks.app, ["webhook-secret"]).stdout.strip() == doc["secret"]
