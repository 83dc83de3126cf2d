"""The CLI end to end, as a user runs it: real `mayfly` processes, real containers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def mayfly(home: Path, *args: str, timeout: float = 120, check: bool = False) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture
def hello(home: Path, runtime_images: dict[str, str]) -> str:
    mayfly(
        home,
        "code",
        "push",
        str(ROOT / "examples" / "hello-python"),
        "--name",
        "hello",
        "--runtime",
        "python-3.11",
        "--command",
        "python3 main.py",
        check=True,
    )
    return "hello"


def test_run_streams_the_log_and_exits_with_the_task_code(home: Path, hello: str) -> None:
    result = mayfly(home, "run", hello, "--payload", '{"name": "test", "n": 4}')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("hello, test! task ")
    assert lines[2] == "the first 4 squares: [0, 1, 4, 9]"
    assert "complete in" in result.stderr.splitlines()[-1]
    task_id = lines[0].split()[3]
    shown = json.loads(mayfly(home, "task", "show", task_id, "--json", check=True).stdout)
    assert shown["result"] == {"greeting": "hello, test", "squares": [0, 1, 4, 9]}
    assert (shown["status"], shown["exit_code"], shown["attempt"]) == ("complete", 0, 1)


def test_run_exit_code_of_a_failing_task(home: Path, runtime_images: dict[str, str], tmp_path: Path) -> None:
    code = tmp_path / "fail"
    code.mkdir()
    (code / "main.sh").write_text("echo bye\nexit 7\n")
    mayfly(home, "code", "push", str(code), "--name", "fail", "--runtime", "shell", check=True)
    result = mayfly(home, "run", "fail")
    assert result.returncode == 7
    assert result.stdout == "bye\n"
    assert result.stderr.splitlines()[-1].endswith(": exited with code 7")


def test_ironworker_arguments_and_environment(home: Path, runtime_images: dict[str, str], tmp_path: Path) -> None:
    code = tmp_path / "iron"
    code.mkdir()
    (code / "worker.sh").write_text('echo "args: $*"\necho "env: $PAYLOAD_FILE $CONFIG_FILE $TASK_DIR"\ncat "$2"\n')
    mayfly(
        home,
        "code",
        "push",
        str(code),
        "--name",
        "iron",
        "--runtime",
        "shell",
        "--command",
        "sh worker.sh",
        "--ironworker",
        check=True,
    )
    result = mayfly(home, "run", "iron", "--payload", '{"x": 1}')
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    task_id = lines[0].split()[-3]
    assert lines[0] == f"args: -payload /mayfly/payload.json -config /mayfly/config.json -id {task_id} -d /mayfly/task"
    assert lines[1] == "env: /mayfly/payload.json /mayfly/config.json /mayfly/task"
    assert lines[2] == '{"x": 1}'


def test_run_uses_a_running_server(home: Path, hello: str) -> None:
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    server = subprocess.Popen(
        [sys.executable, "-m", "mayfly.cli", "server", "--port", "0"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert server.stderr is not None
        assert "mayfly server on" in server.stderr.readline()
        result = mayfly(home, "run", hello, "--payload", '{"n": 2}')
        assert result.returncode == 0, result.stderr
        # A task queued alone is run by the server too.
        task_id = mayfly(home, "task", "queue", hello, check=True).stdout.strip()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            status = json.loads(mayfly(home, "task", "show", task_id, "--json", check=True).stdout)["status"]
            if status == "complete":
                break
            time.sleep(0.2)
        assert status == "complete"
        log = mayfly(home, "task", "log", task_id, check=True).stdout
        assert log.startswith(f"hello, world! task {task_id} attempt 1\n")
    finally:
        server.send_signal(signal.SIGINT)
        assert server.wait(30) == 0


def test_code_lifecycle_from_the_cli(home: Path, runtime_images: dict[str, str], tmp_path: Path) -> None:
    code = tmp_path / "c"
    code.mkdir()
    (code / "main.sh").write_text("echo one\n")
    mayfly(home, "code", "push", str(code), "--name", "c", "--runtime", "shell", "--max-concurrency", "3", check=True)
    (code / "main.sh").write_text("echo two\n")
    mayfly(home, "code", "push", str(code), "--name", "c", "--runtime", "shell", check=True)
    shown = json.loads(mayfly(home, "code", "show", "c", "--json", check=True).stdout)
    assert (shown["rev"], shown["latest"]["max_concurrency"], shown["latest"]["runtime"]) == (2, 3, "shell")
    revs = json.loads(mayfly(home, "code", "revisions", "c", "--json", check=True).stdout)["revisions"]
    assert [r["rev"] for r in revs] == [2, 1]
    out = tmp_path / "c1.zip"
    mayfly(home, "code", "download", "c", "--revision", "1", "-o", str(out), check=True)
    with zipfile.ZipFile(out) as zf:
        assert zf.read("main.sh") == b"echo one\n"
    listed = json.loads(mayfly(home, "code", "list", "--json", check=True).stdout)["codes"]
    assert [c["name"] for c in listed] == ["c"]


def test_a_hostile_zip_from_the_cli(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("../../etc/cron.d/evil", "* * * * * root rm -rf /")
    result = mayfly(home, "code", "push", str(bad), "--name", "evil", "--runtime", "shell")
    assert result.returncode == 2
    assert result.stderr.startswith("Error: invalid code package: entry '../../etc/cron.d/evil'")
    assert len(result.stderr.splitlines()) == 1
    assert json.loads(mayfly(home, "code", "list", "--json", check=True).stdout) == {"codes": []}


def test_engine_not_running(home: Path, hello: str) -> None:
    env_home = home
    result = subprocess.run(
        [sys.executable, "-m", "mayfly.cli", "run", hello],
        env={**os.environ, "MAYFLY_HOME": str(env_home), "DOCKER_HOST": "unix:///tmp/no-such-docker.sock"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 5
    assert result.stderr.startswith("Error: Docker engine is not running")
    assert len(result.stderr.splitlines()) == 1
    # Nothing was queued.
    assert json.loads(mayfly(home, "task", "list", "--json", check=True).stdout)["tasks"] == []
