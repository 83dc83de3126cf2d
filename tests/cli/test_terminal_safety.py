"""User text never drives the terminal, and tables never cut ids (issue 12 items 5 and 10).

Everything runs as a user does: the ``mayfly`` CLI as a subprocess (on a pipe, or
on a pseudo-terminal), and a real ``mayfly server`` over HTTP for ``/v1`` and ``/2``.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mayfly.core.errors import ExitCode

pytestmark = pytest.mark.slow

ESC_TITLE = "\x1b]0;pwned\x07"
FORGED = "x\r\n01FORGEDROW  hello:1  complete"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def mayfly(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI with stdout and stderr on pipes."""
    full = {**os.environ, "MAYFLY_HOME": str(home), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args], env=full, capture_output=True, text=True, timeout=120
    )


def on_tty(home: Path, *args: str, columns: int = 60, env: dict[str, str] | None = None) -> str:
    """The CLI with stdout on a pseudo-terminal ``columns`` wide; returns what the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    full = {**os.environ, "MAYFLY_HOME": str(home), "TERM": "xterm", **(env or {})}
    full.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "mayfly.cli", *args], env=full, stdout=slave, stderr=subprocess.PIPE)
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        assert ready, "the CLI printed nothing for 60 s"
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    assert proc.wait(60) == 0, proc.stderr.read() if proc.stderr else ""
    return out.decode()


def _one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == ExitCode.USAGE, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "\x1b" not in result.stderr
    return lines[0]


@pytest.fixture
def code(home: Path) -> str:
    result = mayfly(home, "code", "register", "busybox:1", "--name", "hello", "--command", "true")
    assert result.returncode == 0, result.stderr
    return "hello"


# ---------------------------------------------------------------- refused at the door (CLI)


def test_the_cli_refuses_control_characters_in_a_label_and_stores_nothing(home: Path, code: str) -> None:
    for bad in (ESC_TITLE, FORGED):
        line = _one_error_line(mayfly(home, "task", "queue", code, "--label", bad, "--delay", "3600"))
        assert "label must not contain control characters" in line
    sched = _one_error_line(mayfly(home, "schedule", "create", code, "--every", "1h", "--label", ESC_TITLE))
    assert "label must not contain control characters" in sched
    assert json.loads(mayfly(home, "task", "list", "--json").stdout)["tasks"] == []
    assert json.loads(mayfly(home, "schedule", "list", "--json").stdout)["schedules"] == []


def test_the_cli_refuses_control_characters_in_names(home: Path, code: str) -> None:
    _one_error_line(mayfly(home, "code", "register", "busybox:1", "--name", "evil\n"))
    _one_error_line(mayfly(home, "code", "register", "busybox:1\n", "--name", "img"))
    _one_error_line(mayfly(home, "project", "create", "acme\n"))
    _one_error_line(mayfly(home, "token", "create", "--project", "default", "--name", f"ci{ESC_TITLE}"))
    _one_error_line(mayfly(home, "target", "add", "far\n", "--provider", "docker"))
    assert [c["name"] for c in json.loads(mayfly(home, "code", "list", "--json").stdout)["codes"]] == [code]
    assert [p["name"] for p in json.loads(mayfly(home, "project", "list", "--json").stdout)["projects"]] == ["default"]
    assert json.loads(mayfly(home, "token", "list", "--json").stdout)["tokens"] == []


# ---------------------------------------------------------------- escaped when printed


def _legacy_label(home: Path, task_id: str, label: str) -> None:
    """A label stored before labels were checked (written straight into the home's SQLite store)."""
    with sqlite3.connect(home / "mayfly.db") as db:
        assert db.execute("UPDATE tasks SET label = ? WHERE id = ?", (label, task_id)).rowcount == 1


def test_stored_control_characters_and_markup_are_printed_escaped(home: Path, code: str) -> None:
    task_id = mayfly(home, "task", "queue", code, "--delay", "3600", "--label", "[/bold][red]x").stdout.strip()
    mayfly(home, "code", "register", "busybox:1", "--name", "cmd", "--command", f"echo {ESC_TITLE}{FORGED}")
    old = mayfly(home, "task", "queue", code, "--delay", "3600").stdout.strip()
    _legacy_label(home, old, ESC_TITLE + FORGED)
    printed = {
        (name, how): run(home, *args)
        for name, args in {"list": ["task", "list"], "show": ["task", "show", old]}.items()
        for how, run in (("pipe", lambda *a: mayfly(*a).stdout), ("tty", on_tty))
    }
    printed["code list", "pipe"] = mayfly(home, "code", "list").stdout
    printed["code show", "pipe"] = mayfly(home, "code", "show", "cmd").stdout
    printed["markup", "pipe"] = mayfly(home, "task", "show", task_id).stdout
    for out in printed.values():
        assert "\x1b]" not in out
        assert "\x07" not in out
        assert not any(line.startswith("01FORGEDROW") for line in out.splitlines())
    listed = printed["list", "pipe"]
    assert "[/bold][red]x" in listed  # markup is text, not a crash nor a style
    assert "\\x1b]0;pwned\\x07x\\r\\n01FORGEDROW" in listed
    assert len(listed.strip().splitlines()) == 3
    assert "\\x1b]0;pwned\\x07x\\r\\n01FORGEDROW" in printed["show", "pipe"]
    assert "\\x1b]0;pwned\\x07x\\r\\n01FORGEDROW" in ANSI.sub("", printed["show", "tty"])
    assert "[/bold][red]x" in printed["markup", "pipe"]
    assert "echo \\x1b]0;pwned\\x07x\\r\\n01FORGEDROW" in printed["code show", "pipe"]
    assert "echo \\x1b]0;pwned\\x07x\\r\\n01FORGEDROW" in printed["code list", "pipe"]
    # --json keeps the data exact (JSON escapes control characters itself).
    shown = json.loads(mayfly(home, "task", "show", old, "--json").stdout)
    assert shown["label"] == ESC_TITLE + FORGED


# ---------------------------------------------------------------- tables never cut ids


def test_piped_and_narrow_tables_print_ids_whole(home: Path, code: str) -> None:
    long_label = "l" * 120
    ids = [mayfly(home, "task", "queue", code, "--delay", "3600", "--label", long_label).stdout.strip() for _ in (1, 2)]
    piped = mayfly(home, "task", "list").stdout
    rows = piped.strip().splitlines()[1:]
    assert [row.split()[0] for row in rows] == ids[::-1]
    assert all(row.rstrip().endswith(long_label) for row in rows)  # a pipe gets every value whole
    narrow = ANSI.sub("", on_tty(home, "task", "list", columns=50))
    for task_id in ids:
        assert task_id in narrow
    sched = mayfly(home, "schedule", "create", code, "--every", "1h").stdout.strip()
    assert sched in ANSI.sub("", on_tty(home, "schedule", "list", columns=40))
    assert sched in mayfly(home, "schedule", "list").stdout.split()


# ---------------------------------------------------------------- over HTTP, against a real server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, start_server: Any, busybox_image: str) -> Iterator[Any]:
    with start_server(tmp_path_factory.mktemp("terminal"), "terminal") as srv:
        with httpx.Client(base_url=srv.url, headers=srv.bearer) as client:
            made = client.post("/v1/codes", json={"name": "hello", "image": busybox_image, "command": "true"})
            assert made.status_code == 201, made.text
        yield srv


@pytest.mark.docker
def test_the_apis_refuse_control_characters_and_store_nothing(server: Any) -> None:
    bad_values = [ESC_TITLE, FORGED, "tab\there", "nul\x00", "del\x7f", "c1\x9b", "nel\x85", "bidi\u202e", "ls\u2028"]
    with httpx.Client(base_url=server.url, headers=server.bearer) as api:
        for bad in bad_values:
            v1 = api.post("/v1/tasks", json={"code_name": "hello", "label": bad, "delay": 3600})
            assert v1.status_code == 400, (bad, v1.text)
            assert v1.json()["code"] == "invalid_input"
            assert "control characters" in v1.json()["message"]
            sched = api.post("/v1/schedules", json={"code_name": "hello", "every": "1h", "label": bad})
            assert sched.status_code == 400, (bad, sched.text)
            named = api.post("/v1/codes", json={"name": f"n{bad}", "image": "busybox:1"})
            assert named.status_code == 400, (bad, named.text)
            iron = api.post(
                f"/2/projects/{server.project_id}/tasks",
                json={"tasks": [{"code_name": "hello", "payload": "{}", "label": bad, "delay": 3600}]},
                headers=server.auth,
            )
            assert iron.status_code == 400, (bad, iron.text)
            assert "control characters" in iron.json()["msg"]
        assert api.get("/v1/tasks").json()["tasks"] == []
        assert api.get("/v1/schedules").json()["schedules"] == []
        assert [c["name"] for c in api.get("/v1/codes").json()["codes"]] == ["hello"]
        # A label with no control character, markup and all, is stored as given.
        fine = api.post("/v1/tasks", json={"code_name": "hello", "label": "[/]é 🙂", "delay": 3600})
        assert fine.status_code == 201, fine.text
        assert api.post(f"/v1/tasks/{fine.json()['id']}/cancel").status_code == 200


@pytest.mark.docker
def test_the_remote_cli_prints_server_data_escaped(server: Any, tmp_path: Path) -> None:
    env = {"MAYFLY_URL": server.url, "MAYFLY_TOKEN": server.token}
    home = tmp_path / "no-home"
    with httpx.Client(base_url=server.url, headers=server.bearer) as api:
        made = api.post("/v1/codes", json={"name": "shown", "image": "busybox:1", "command": f"echo {ESC_TITLE}"})
        assert made.status_code == 201, made.text
    for args in (["code", "list"], ["code", "show", "shown"]):
        out = mayfly(home, *args, env=env)
        assert out.returncode == 0, out.stderr
        assert "\x1b" not in out.stdout
        assert "\\x1b]0;pwned\\x07" in out.stdout


# ---------------------------------------------------------------- logs, and Ctrl-C in `mayfly run`


@pytest.mark.docker
def test_a_log_is_raw_to_a_pipe_and_neutralised_on_a_terminal(home: Path, busybox_image: str) -> None:
    command = "printf 'a\\033]0;pwned\\007b\\033[2Jc\\n'"
    assert mayfly(home, "code", "register", busybox_image, "--name", "esc", "--command", command).returncode == 0
    ran = subprocess.run(
        [sys.executable, "-m", "mayfly.cli", "run", "esc"],
        env={**os.environ, "MAYFLY_HOME": str(home)},
        capture_output=True,
        timeout=120,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == b"a\x1b]0;pwned\x07b\x1b[2Jc\n"  # a pipe gets the bytes as the task wrote them
    task_id = json.loads(mayfly(home, "task", "list", "--json").stdout)["tasks"][0]["id"]
    assert mayfly(home, "task", "log", task_id).stdout == "a\x1b]0;pwned\x07b\x1b[2Jc\n"
    shown = on_tty(home, "task", "log", task_id)
    assert "\x1b" not in shown
    assert "a\\x1b]0;pwned\\x07b\\x1b[2Jc" in shown


# It keeps writing: the runner stores a quiet container's last lines only with its next output.
TICKS = """sh -c 'trap "exit 143" TERM; i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.3; done'"""


def _interrupted_run(home: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """``mayfly run ticks``, Ctrl-C once three lines are out; its exit code and what it printed (stdout, stderr)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mayfly.cli", "run", "ticks"],
        env={**os.environ, "MAYFLY_HOME": str(home), **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    out = b""
    deadline = time.monotonic() + 120
    while b"tick 3\n" not in out:
        assert time.monotonic() < deadline, out
        ready, _, _ = select.select([proc.stdout], [], [], 1)
        if ready:
            out += os.read(proc.stdout.fileno(), 65536)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    return proc.returncode, (out + rest).decode(), err.decode()


def _once_each(out: str) -> None:
    """The lines are tick 1, tick 2, ... each once, in order: nothing was printed a second time."""
    lines = out.splitlines()
    assert len(lines) >= 3, out
    assert lines == [f"tick {i}" for i in range(1, len(lines) + 1)], out


@pytest.mark.docker
def test_ctrl_c_in_run_prints_the_log_once(home: Path, busybox_image: str) -> None:
    made = mayfly(home, "code", "register", busybox_image, "--name", "ticks", "--command", TICKS)
    assert made.returncode == 0, made.stderr
    code, out, err = _interrupted_run(home, {})
    _once_each(out)
    assert code == ExitCode.CANCELLED, err
    assert "cancelled" in err.splitlines()[-1]


@pytest.mark.docker
def test_ctrl_c_in_a_remote_run_prints_the_log_once(server: Any, tmp_path: Path) -> None:
    env = {"MAYFLY_URL": server.url, "MAYFLY_TOKEN": server.token}
    with httpx.Client(base_url=server.url, headers=server.bearer) as api:
        body = {"name": "ticks", "image": "mayfly-test/busybox:latest", "command": TICKS}
        made = api.post("/v1/codes", json=body)
        assert made.status_code == 201, made.text
    code, out, err = _interrupted_run(tmp_path / "no-home", env)
    _once_each(out)
    assert code == ExitCode.CANCELLED, err
    assert "cancelled" in err.splitlines()[-1]
