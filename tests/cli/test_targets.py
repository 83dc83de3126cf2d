"""Targets from the CLI: add with validated settings, list, show, check, remove."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app

runner = CliRunner()


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_local_always_exists(home: Path) -> None:
    code, out, _ = _run("target", "list", "--json")
    assert code == 0
    (local,) = json.loads(out)["targets"]
    assert (local["name"], local["provider"], local["embedded_runner"]) == ("local", "docker", True)


def test_add_show_remove(home: Path) -> None:
    code, out, err = _run(
        "target",
        "add",
        "docker2",
        "--provider",
        "docker",
        "--settings",
        '{"pids_limit": 64}',
        "--capacity",
        "3",
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["settings"] == {"pids_limit": 64}
    code, out, _ = _run("target", "show", "docker2", "--json")
    assert (json.loads(out)["capacity"], json.loads(out)["provider"]) == (3, "docker")
    assert _run("target", "add", "docker2", "--provider", "docker")[2] == (
        "Error: target 'docker2' already exists (use --replace to update it)\n"
    )
    assert _run("target", "remove", "docker2")[0] == 0
    assert _run("target", "show", "docker2")[0] == 3


@pytest.mark.parametrize(
    ("args", "exit_code", "line"),
    [
        (
            ["--provider", "docker", "--settings", '{"pids_limit": "many"}'],
            2,
            "Error: invalid settings for provider 'docker': pids_limit: Input should be a valid integer",
        ),
        (
            ["--provider", "docker", "--settings", '{"colour": "red"}'],
            2,
            "Error: invalid settings for provider 'docker': colour: Extra inputs are not permitted",
        ),
        (["--provider", "docker", "--settings", "[1]"], 2, "Error: settings must be a JSON object"),
        (["--provider", "docker", "--settings", "{"], 2, "Error: settings are not valid JSON"),
        (["--provider", "nimbus"], 3, "Error: unknown provider 'nimbus' (registered: "),
    ],
)
def test_bad_targets_are_refused(home: Path, args: list[str], exit_code: int, line: str) -> None:
    code, _, err = _run("target", "add", "t2", *args)
    assert code == exit_code
    assert err.startswith(line)
    assert len(err.splitlines()) == 1
    assert [t["name"] for t in json.loads(_run("target", "list", "--json")[1])["targets"]] == ["local"]


def test_local_cannot_be_replaced_or_removed(home: Path) -> None:
    assert _run("target", "remove", "local")[2] == "Error: the 'local' target is built in and cannot be removed\n"
    code, _, err = _run("target", "add", "local", "--provider", "docker", "--replace")
    assert (code, err) == (2, "Error: the 'local' target is built in and cannot be replaced\n")


@pytest.mark.docker
def test_check_local(home: Path, docker_client: object) -> None:
    assert _run("target", "check", "local") == (0, "local: ok\n", "")
