"""Admission from the CLI: what a target's provider refuses is one line, exit 2, and nothing is stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.testing.targets import UNCALLED_ECS_SETTINGS

runner = CliRunner()

ECS_SETTINGS = UNCALLED_ECS_SETTINGS
ECS_NONE = "Error: target aws-dev (ecs) does not support network none: every Fargate task gets a network interface"


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _json(*args: str) -> dict[str, list[object]]:
    code, out, err = _run(*args, "--json")
    assert code == 0, err
    loaded: dict[str, list[object]] = json.loads(out)
    return loaded


@pytest.fixture
def hello(tmp_path: Path) -> Path:
    d = tmp_path / "hello"
    d.mkdir()
    (d / "main.sh").write_text("echo hello\n")
    return d


@pytest.fixture
def aws_dev(home: Path) -> str:
    code, _, err = _run(
        "target", "add", "aws-dev", "--provider", "ecs", "--settings", json.dumps(ECS_SETTINGS), "--remote-runner"
    )
    assert code == 0, err
    return "aws-dev"


def test_code_push_with_network_host_is_one_line_exit_2_and_stores_nothing(home: Path, hello: Path) -> None:
    code, out, err = _run("code", "push", str(hello), "--name", "hello", "--runtime", "shell", "--network", "host")
    assert code == 2
    assert out == ""
    (line,) = err.splitlines()
    assert line.startswith("Error: target local (docker) does not allow network host: the task would share the host")
    assert _json("code", "list")["codes"] == []


def test_code_register_with_cpu_beyond_the_target_is_refused(home: Path, aws_dev: str) -> None:
    code, _, err = _run("code", "register", "busybox:1", "--name", "big", "--target", aws_dev, "--cpu", "32")
    assert (code, err) == (
        2,
        "Error: target aws-dev (ecs) does not allow cpu 32 (at most 16): Fargate's largest task has 16 vCPU\n",
    )
    assert _json("code", "list")["codes"] == []


def test_an_ecs_target_refuses_network_none_on_push_queue_and_schedule(home: Path, hello: Path, aws_dev: str) -> None:
    push = ("code", "push", str(hello), "--name", "hello", "--runtime", "shell", "--network", "none")
    code, _, err = _run(*push, "--target", aws_dev)
    assert code == 2
    assert err.startswith(ECS_NONE)
    assert len(err.splitlines()) == 1
    assert _json("code", "list")["codes"] == []

    # On local (Docker offers network none) the code is accepted; sending its tasks to aws-dev is not.
    assert _run(*push)[0] == 0
    code, _, err = _run("task", "queue", "hello", "--target", aws_dev)
    assert (code, err.startswith(ECS_NONE)) == (2, True)
    code, _, err = _run("schedule", "create", "hello", "--every", "5m", "--target", aws_dev)
    assert (code, err.startswith(ECS_NONE)) == (2, True)
    assert _json("task", "list")["tasks"] == []
    assert _json("schedule", "list")["schedules"] == []
