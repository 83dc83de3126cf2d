"""``mayfly code delete``: asks first, cancels the code's queued tasks, frees the name."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mayfly.cli.app import app

runner = CliRunner()


def _ok(*args: str, stdin: str | None = None) -> str:
    result = runner.invoke(app, list(args), input=stdin)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_delete_asks_then_cancels_queued_tasks(home: Path) -> None:
    _ok("code", "register", "mayfly-test/busybox:latest", "--name", "img", "--command", "true")
    task = json.loads(_ok("task", "queue", "img", "--delay", "3600", "--json"))

    refused = runner.invoke(app, ["code", "delete", "img"], input="n\n")
    assert refused.exit_code == 1
    assert json.loads(_ok("task", "show", task["id"], "--json"))["status"] == "queued"

    out = json.loads(_ok("code", "delete", "img", "--yes", "--json"))
    assert out == {"name": "img", "deleted": True, "cancelled_tasks": 1}
    assert json.loads(_ok("task", "show", task["id"], "--json"))["status"] == "cancelled"
    assert json.loads(_ok("code", "list", "--json")) == {"codes": []}

    again = runner.invoke(app, ["code", "delete", "img", "--yes"])
    assert (again.exit_code, again.stderr.strip()) == (
        3,
        "Error: unknown code 'img': push it first with 'mayfly code push'",
    )
