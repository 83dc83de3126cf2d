"""The CLI in remote mode (``MAYFLY_URL`` + ``MAYFLY_TOKEN``) against a real server running tasks in Docker."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.core.errors import ExitCode

pytestmark = [pytest.mark.docker, pytest.mark.slow]

runner = CliRunner()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, start_server: Any, busybox_image: str, runtime_images: dict[str, str]
) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("remote"), "remote") as srv:
        yield srv


@pytest.fixture
def env(server: Any, tmp_path: Path) -> dict[str, str]:
    """Remote mode, with a MAYFLY_HOME that must never be created."""
    return {"MAYFLY_URL": server.url, "MAYFLY_TOKEN": server.token, "MAYFLY_HOME": str(tmp_path / "no-home")}


def _run(env: dict[str, str], *args: str) -> Result:
    return runner.invoke(app, list(args), env=env)


def _ok(env: dict[str, str], *args: str) -> str:
    result = _run(env, *args)
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return result.stdout


def _json(env: dict[str, str], *args: str) -> Any:
    return json.loads(_ok(env, *args, "--json"))


def test_codes_remotely(env: dict[str, str], busybox_image: str, tmp_path: Path) -> None:
    made = _json(env, "code", "register", busybox_image, "--name", "r-img", "--command", "echo from image")
    assert made["name"] == "r-img"
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.sh").write_text('echo "pushed says $(cat /mayfly/payload.json)"\n')
    pushed = _json(env, "code", "push", str(src), "--name", "r-zip", "--runtime", "shell")
    assert pushed["name"] == "r-zip"
    names = {c["name"] for c in _json(env, "code", "list")["codes"]}
    assert {"r-img", "r-zip"} <= names
    assert _json(env, "code", "show", "r-zip")["name"] == "r-zip"
    (src / "main.sh").write_text("echo v2\n")
    _ok(env, "code", "push", str(src), "--name", "r-zip", "--runtime", "shell")
    assert "2" in _ok(env, "code", "revisions", "r-zip")
    out = tmp_path / "got.zip"
    _ok(env, "code", "download", "r-zip", "--revision", "1", "--output", str(out))
    with zipfile.ZipFile(out) as zf:
        assert "pushed says" in zf.read("main.sh").decode()
    _ok(env, "code", "pause", "r-img")
    assert _json(env, "code", "show", "r-img")["paused"] is True
    _ok(env, "code", "resume", "r-img")
    missing = _run(env, "code", "show", "nope")
    assert missing.exit_code == ExitCode.NOT_FOUND
    assert "nope" in missing.stderr
    assert not Path(env["MAYFLY_HOME"]).exists()


def test_tasks_remotely(env: dict[str, str], busybox_image: str) -> None:
    _ok(env, "code", "register", busybox_image, "--name", "r-echo", "--command", "sh -c 'cat /mayfly/payload.json'")
    queued = _json(env, "task", "queue", "r-echo", "--payload", '{"hi": 1}', "--label", "remote")
    assert queued["status"] == "queued"
    followed = _run(env, "task", "log", queued["id"], "--follow")
    assert followed.exit_code == 0, followed.stderr
    assert '{"hi": 1}' in followed.stdout
    shown = _json(env, "task", "show", queued["id"])
    assert (shown["status"], shown["exit_code"]) == ("complete", 0)
    assert '{"hi": 1}' in _ok(env, "task", "log", queued["id"])
    listed = _json(env, "task", "list", "--label", "remote")
    assert [t["id"] for t in listed["tasks"]] == [queued["id"]]

    retried = _json(env, "task", "retry", queued["id"])
    assert retried["id"] != queued["id"]

    later = _json(env, "task", "queue", "r-echo", "--delay", "3600")
    _ok(env, "task", "cancel", later["id"])
    assert _json(env, "task", "show", later["id"])["status"] == "cancelled"
    again = _run(env, "task", "cancel", later["id"])
    assert again.exit_code == ExitCode.CONFLICT


def test_run_streams_the_log_and_exits_with_the_tasks_code(env: dict[str, str], busybox_image: str) -> None:
    _ok(env, "code", "register", busybox_image, "--name", "r-exit", "--command", "sh -c 'echo bye; exit 3'")
    result = _run(env, "run", "r-exit")
    assert result.exit_code == 3, result.stderr
    assert "bye" in result.stdout


def test_bulk_queue_remotely(env: dict[str, str], busybox_image: str, tmp_path: Path) -> None:
    _ok(env, "code", "register", busybox_image, "--name", "r-bulk", "--command", "true")
    lines = tmp_path / "p.jsonl"
    lines.write_text('{"i": 1}\n{"i": 2}\n{"i": 3}\n')
    out = _ok(env, "task", "queue", "r-bulk", "--payload-file", str(lines), "--delay", "3600")
    assert len(out.split()) == 3
    stopped = _run(env, "task", "cancel", "--all", "--code", "r-bulk")
    assert stopped.exit_code == 0, stopped.stderr


def test_schedules_and_targets_remotely(env: dict[str, str], busybox_image: str) -> None:
    _ok(env, "code", "register", busybox_image, "--name", "r-sched", "--command", "true")
    sched = _json(env, "schedule", "create", "r-sched", "--cron", "0 3 * * *")
    assert sched["status"] == "scheduled"
    assert [s["id"] for s in _json(env, "schedule", "list")["schedules"]] == [sched["id"]]
    assert _json(env, "schedule", "show", sched["id"])["id"] == sched["id"]
    _ok(env, "schedule", "pause", sched["id"])
    _ok(env, "schedule", "resume", sched["id"])
    _ok(env, "schedule", "cancel", sched["id"])
    assert _json(env, "schedule", "show", sched["id"])["status"] == "cancelled"
    targets = _json(env, "target", "list")
    assert "local" in json.dumps(targets)
    assert "local" in _ok(env, "target", "show", "local")


@pytest.mark.parametrize(
    "args",
    [
        ["project", "list"],
        ["project", "create", "x"],
        ["token", "create", "--project", "remote"],
        ["token", "list"],
        ["token", "revoke", "abc"],
        ["target", "add", "x", "--provider", "local"],
        ["target", "remove", "local"],
        ["target", "check", "local"],
        ["runtime", "build", "shell"],
        ["server"],
        ["runner"],
    ],
)
def test_local_only_commands_refuse_in_one_line(env: dict[str, str], args: list[str]) -> None:
    result = _run(env, *args)
    assert result.exit_code == ExitCode.UNSUPPORTED, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "works on a local home only and MAYFLY_URL is set" in lines[0]
    assert not Path(env["MAYFLY_HOME"]).exists()


def test_another_project_is_refused_not_ignored(env: dict[str, str]) -> None:
    result = _run(env, "task", "list", "--project", "someone-else")
    assert result.exit_code == ExitCode.USAGE
    assert "bound to project 'remote'" in result.stderr


def test_bad_or_missing_token(env: dict[str, str]) -> None:
    no_token = _run({**env, "MAYFLY_TOKEN": ""}, "task", "list")
    assert no_token.exit_code == ExitCode.UNAVAILABLE
    assert "MAYFLY_TOKEN is not" in no_token.stderr
    wrong = _run({**env, "MAYFLY_TOKEN": "mfy_wrong"}, "task", "list")
    assert wrong.exit_code == ExitCode.UNAVAILABLE  # not 1, which `mayfly run` uses for a failed task
    assert "malformed token" in wrong.stderr
    assert env["MAYFLY_TOKEN"] not in wrong.stderr + wrong.stdout


def test_unreachable_server_is_one_line(env: dict[str, str]) -> None:
    result = _run({**env, "MAYFLY_URL": "http://127.0.0.1:1"}, "task", "list")
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "cannot reach the Mayfly server" in result.stderr
