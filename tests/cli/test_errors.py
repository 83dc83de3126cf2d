"""User errors print one line on stderr and exit with a stable code; nothing is stored."""

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


@pytest.fixture
def registered(home: Path) -> str:
    code, out, err = _run(
        "code", "register", "mayfly-test/busybox:latest", "--name", "img", "--command", "true", "--json"
    )
    assert code == 0, err
    return str(json.loads(out)["name"])


@pytest.mark.parametrize(
    ("args", "exit_code", "line"),
    [
        (["task", "queue", "nope"], 3, "Error: unknown code 'nope': push it first with 'mayfly code push'"),
        (["task", "show", "abc"], 3, "Error: unknown task 'abc'"),
        (
            ["task", "queue", "img", "--payload", "{"],
            2,
            "Error: payload is not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2",
        ),
        (["task", "queue", "img", "--priority", "5"], 2, "Error: priority must be 0, 1 or 2"),
        (["task", "queue", "img", "--timeout", "0"], 2, "Error: timeout must be between 1 and 86400 seconds"),
        (["task", "queue", "img", "--target", "mars"], 3, "Error: unknown target 'mars' (known: local)"),
        (["task", "queue", "img", "--env", "NOEQUALS"], 2, "Error: invalid --env 'NOEQUALS': expected KEY=VALUE"),
        (
            ["task", "list", "--status", "done"],
            2,
            "Error: unknown status 'done' (one of: queued, preparing, running, complete, error, cancelled, timeout)",
        ),
        (["code", "show", "ghost"], 3, "Error: unknown code 'ghost': push it first with 'mayfly code push'"),
        (
            ["code", "push", "/nonexistent", "--name", "x", "--runtime", "python-3.11"],
            2,
            "Error: /nonexistent: no such file or directory",
        ),
        (["code", "push", ".", "--name", "x", "--runtime", "cobol-85"], 3, "Error: unknown runtime 'cobol-85'"),
        (["code", "register", "bad image!", "--name", "x"], 2, "Error: invalid image reference 'bad image!'"),
        (
            ["code", "register", "img:1", "--name", "../x"],
            2,
            "Error: invalid code name '../x': use letters, digits, '.', '_', '-' and '/'",
        ),
        (["code", "register", "img:1", "--name", "x", "--retries", "11"], 2, "Error: retries must be between 0 and 10"),
    ],
)
def test_bad_input_is_one_line_and_an_exit_code(registered: str, args: list[str], exit_code: int, line: str) -> None:
    before = _run("task", "list", "--json")[1]
    code, _, err = _run(*args)
    assert code == exit_code
    assert err.splitlines()[0].startswith(line)
    assert len(err.splitlines()) == 1
    assert "Traceback" not in err
    assert _run("task", "list", "--json")[1] == before


def test_payload_over_64k(registered: str, tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"x": "a" * 70_000}))
    code, _, err = _run("task", "queue", "img", "--payload-file", str(big))
    assert code == 2
    assert err == "Error: payload is 70009 bytes; the limit is 65536 bytes (64 KB)\n"


def test_queue_prints_the_id_and_show_has_the_fields(registered: str) -> None:
    code, out, _ = _run("task", "queue", "img", "--payload", '{"n": 7}', "--label", "l1")
    assert code == 0
    task_id = out.strip()
    code, out, _ = _run("task", "show", task_id, "--json")
    doc = json.loads(out)
    for key in (
        "id",
        "code_name",
        "code_rev",
        "status",
        "exit_code",
        "reason",
        "attempt",
        "created_at",
        "start_time",
        "end_time",
        "duration_ms",
        "result",
    ):
        assert key in doc
    assert (doc["id"], doc["code_name"], doc["status"], doc["label"], doc["payload"]) == (
        task_id,
        "img",
        "queued",
        "l1",
        '{"n": 7}',
    )
