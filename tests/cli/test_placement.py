"""Fallback targets from the CLI: ``--target a,b`` keeps, in order, the targets that can run the code or task.

A target whose provider cannot run it is skipped with the reason shown by ``show``;
when none can, the one-line ``target_unsupported`` refusal (exit 2) stores nothing;
an unknown name is refused (exit 3) as with one target.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.testing.targets import UNCALLED_ECS_SETTINGS

runner = CliRunner()

ECS_SETTINGS = UNCALLED_ECS_SETTINGS
ECS_NONE = "target aws-dev (ecs) does not support network none: every Fargate task gets a network interface"


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str) -> Any:
    code, out, err = _run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture
def hello(tmp_path: Path, home: Path) -> Path:
    d = tmp_path / "hello"
    d.mkdir()
    (d / "main.sh").write_text("echo hello\n")
    for name in ("aws-dev", "aws-two"):
        settings = json.dumps({**ECS_SETTINGS, "cluster": name})
        assert _run("target", "add", name, "--provider", "ecs", "--settings", settings, "--remote-runner")[0] == 0
    return d


def test_code_push_keeps_the_targets_that_can_run_it_and_says_why_it_skipped_the_others(hello: Path) -> None:
    push = ("code", "push", str(hello), "--name", "hello", "--runtime", "shell")
    assert _run(*push, "--network", "none", "--target", "aws-dev,local")[0] == 0
    latest = _json("code", "show", "hello")["latest"]
    assert (latest["target"], latest["targets"]) == ("local", ["local"])
    assert latest["skipped_targets"]["aws-dev"].startswith("target aws-dev (ecs) does not support network none")
    # A task of a bridge-network code keeps the whole list; it starts on the first.
    assert _run(*push, "--network", "bridge", "--target", "aws-dev,aws-two,local")[0] == 0
    task_id = _run("task", "queue", "hello", "--delay", "3600")[1].strip()
    shown = _json("task", "show", task_id)
    assert (shown["target"], shown["targets"], shown["skipped_targets"]) == (
        "aws-dev",
        ["aws-dev", "aws-two", "local"],
        {},
    )
    _, out, _ = _run("task", "show", task_id)
    assert "aws-dev, aws-two, local" in out
    # Every target has a breaker; none failed yet.
    _, out, _ = _run("target", "list")
    assert "BREAKER" in out.splitlines()[0]
    assert {t["name"]: t["breaker"]["state"] for t in _json("target", "list")["targets"]} == {
        "aws-dev": "closed",
        "aws-two": "closed",
        "local": "closed",
    }


def test_when_no_target_can_run_it_nothing_is_stored(hello: Path) -> None:
    push = ("code", "push", str(hello), "--name", "hello", "--runtime", "shell", "--network", "none")
    code, out, err = _run(*push, "--target", "aws-dev,aws-two")
    assert (code, out) == (2, "")
    (line,) = err.splitlines()
    assert line.startswith(f"Error: no target can run it: {ECS_NONE}")
    assert "target aws-two (ecs) does not support network none" in line
    assert _json("code", "list")["codes"] == []

    assert _run(*push)[0] == 0  # on local
    code, _, err = _run("task", "queue", "hello", "--target", "aws-dev,aws-two")
    assert (code, err.startswith("Error: no target can run it: ")) == (2, True)
    code, _, err = _run("task", "queue", "hello", "--target", "local,nope")
    assert (code, err.splitlines()[0].startswith("Error: unknown target 'nope'")) == (3, True)
    code, _, err = _run("task", "queue", "hello", "--target", "local,,aws-dev")
    assert (code, "an empty name between commas" in err) == (2, True)
    assert _json("task", "list")["tasks"] == []
