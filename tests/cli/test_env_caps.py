"""The CLI refuses an environment over core's caps, in one line, storing nothing (issue 12 item 4)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("pair", "message"),
    [
        ("BIG=" + "x" * (100 * 1024), "Error: environment variables are larger than 65536 bytes (names and values)"),
        ("N" * 256 + "=x", "Error: an environment variable name is longer than 255 characters"),
    ],
)
def test_env_over_the_caps_is_refused(home: Path, pair: str, message: str) -> None:
    register = ["code", "register", "mayfly-test/busybox:latest", "--name", "img", "--command", "true"]
    result = runner.invoke(app, [*register, "--env", pair])
    assert (result.exit_code, result.stderr.strip()) == (2, message)
    assert json.loads(runner.invoke(app, ["code", "list", "--json"]).stdout) == {"codes": []}
    assert runner.invoke(app, register).exit_code == 0
    queued = runner.invoke(app, ["task", "queue", "img", "--env", pair])
    assert (queued.exit_code, queued.stderr.strip()) == (2, message)
    assert json.loads(runner.invoke(app, ["task", "list", "--json"]).stdout)["tasks"] == []
