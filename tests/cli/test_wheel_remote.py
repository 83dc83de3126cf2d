"""The built wheel in an empty venv (no extras), as a new user installs it: every command group runs.

One venv, one ``mayfly server`` (the venv's own) on a temp home and a free port;
then each CLI group in remote mode (``MAYFLY_URL`` + ``MAYFLY_TOKEN``) and the
operator's local commands, each as a real process of the installed ``mayfly``.
Each must exit as documented and print no traceback.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from mayfly.core.errors import ExitCode

pytestmark = [pytest.mark.slow, pytest.mark.docker]


@dataclass(frozen=True)
class Installed:
    """The venv's ``mayfly`` and the environment it runs in (nothing of the test's own environment leaks)."""

    bin: Path
    env: dict[str, str]

    def run(
        self, *args: str, extra: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.bin / "mayfly"), *args],
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        assert "Traceback" not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        return result

    def ok(self, *args: str, extra: dict[str, str] | None = None) -> str:
        result = self.run(*args, extra=extra)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAYFLY_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE")) and k != "PATH"
    }
    return {**env, "PATH": f"{venv / 'bin'}:/usr/bin:/bin", "MAYFLY_HOME": str(home)}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, built_wheel: Path) -> Installed:
    """``pip install mayfly-tasks`` (the built wheel, no extras) into a fresh, empty venv."""
    root = tmp_path_factory.mktemp("wheel-venv")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    env = _clean_env(venv, root / "home")
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(built_wheel)],
        env=env,
        capture_output=True,
        text=True,
    )
    assert pip.returncode == 0, pip.stderr
    # No extra came along: the test extra's packages are not there.
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import boto3"], env=env, capture_output=True)
    assert probe.returncode != 0
    return Installed(venv / "bin", env)


@dataclass(frozen=True)
class Remote:
    """The venv's server and the remote-mode environment of a token of its ``default`` project."""

    url: str
    env: dict[str, str]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def remote(installed: Installed, tmp_path_factory: pytest.TempPathFactory, busybox_image: str) -> Iterator[Remote]:
    """The installed ``mayfly server`` on a temp home, and a token made with the installed ``mayfly token``."""
    root = tmp_path_factory.mktemp("wheel-server")
    home = {"MAYFLY_HOME": str(root / "home")}
    secret = installed.ok("token", "create", "--project", "default", "--name", "wheel", extra=home).strip()
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = root / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(installed.bin / "mayfly"), "server", "--host", "127.0.0.1", "--port", str(port)],
            env={**installed.env, **home},
            stdout=out,
            stderr=out,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.1)
        yield Remote(url, {"MAYFLY_URL": url, "MAYFLY_TOKEN": secret, "MAYFLY_HOME": str(root / "no-home")})
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    assert "Traceback" not in log.read_text()
    assert not (root / "no-home").exists()


def test_help_and_version(installed: Installed) -> None:
    assert "mayfly 0." in installed.ok("--version")
    top = installed.ok("--help")
    for group in ("code", "task", "schedule", "target", "project", "token", "runtime", "run", "server"):
        assert group in top


def test_codes_remotely(installed: Installed, remote: Remote, busybox_image: str, tmp_path: Path) -> None:
    env = remote.env
    installed.ok("code", "register", busybox_image, "--name", "img", "--command", "echo from the wheel", extra=env)
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.sh").write_text("echo zipped\n")
    pushed = json.loads(
        installed.ok("code", "push", str(src), "--name", "zip", "--runtime", "shell", "--json", extra=env)
    )
    assert pushed["name"] == "zip"
    listed = installed.ok("code", "list", extra=env)
    assert "img" in listed
    assert "zip" in listed
    assert "echo from the wheel" in installed.ok("code", "show", "img", extra=env)
    assert pushed["latest"]["sha256"] in installed.ok("code", "revisions", "zip", extra=env)
    out = tmp_path / "got.zip"
    installed.ok("code", "download", "zip", "--output", str(out), extra=env)
    assert out.stat().st_size > 0
    installed.ok("code", "pause", "zip", extra=env)
    installed.ok("code", "resume", "zip", extra=env)
    installed.ok("code", "delete", "zip", "--yes", extra=env)
    missing = installed.run("code", "show", "zip", extra=env)
    assert missing.returncode == ExitCode.NOT_FOUND
    assert len(missing.stderr.strip().splitlines()) == 1


def test_tasks_remotely(installed: Installed, remote: Remote, busybox_image: str) -> None:
    env = remote.env
    installed.ok("code", "register", busybox_image, "--name", "echo", "--command", "sh -c 'echo hi from $0'", extra=env)
    ran = installed.run("run", "echo", extra=env)
    assert ran.returncode == 0, ran.stderr
    assert "hi from" in ran.stdout
    task_id = installed.ok("task", "queue", "echo", "--delay", "3600", "--label", "wheel", extra=env).strip()
    listed = installed.ok("task", "list", "--label", "wheel", extra=env)
    assert task_id in listed
    assert task_id in installed.ok("task", "show", task_id, extra=env)
    assert installed.ok("task", "log", task_id, extra=env) == ""
    assert "cancelled" in installed.ok("task", "cancel", task_id, extra=env)
    retried = installed.ok("task", "retry", task_id, "--delay", "3600", extra=env).strip()
    assert retried != task_id
    assert "cancelled 1 queued" in installed.ok("task", "cancel", "--code", "echo", "--all", extra=env)
    twice = installed.run("task", "cancel", task_id, extra=env)
    assert twice.returncode == ExitCode.CONFLICT


def test_schedules_and_targets_remotely(installed: Installed, remote: Remote, busybox_image: str) -> None:
    env = remote.env
    installed.ok("code", "register", busybox_image, "--name", "cron", "--command", "true", extra=env)
    sched = installed.ok("schedule", "create", "cron", "--every", "1h", extra=env).strip()
    assert sched in installed.ok("schedule", "list", extra=env)
    assert "every" in installed.ok("schedule", "show", sched, extra=env)
    for verb in ("pause", "resume", "cancel"):
        installed.ok("schedule", verb, sched, extra=env)
    assert "local" in installed.ok("target", "list", extra=env)
    assert "docker" in installed.ok("target", "show", "local", extra=env)


@pytest.mark.parametrize(
    "args",
    [
        ["project", "list"],
        ["project", "webhook-secret"],
        ["token", "list"],
        ["target", "check", "local"],
    ],
)
def test_local_only_commands_refuse_in_one_line(installed: Installed, remote: Remote, args: list[str]) -> None:
    result = installed.run(*args, extra=remote.env)
    assert result.returncode == ExitCode.UNSUPPORTED
    assert len(result.stderr.strip().splitlines()) == 1


def test_operator_commands_on_the_servers_home(installed: Installed, remote: Remote, tmp_path: Path) -> None:
    home = {"MAYFLY_HOME": str(tmp_path / "op-home")}
    installed.ok("project", "create", "acme", extra=home)
    assert "acme" in installed.ok("project", "list", extra=home)
    installed.ok("token", "create", "--project", "acme", extra=home)
    assert "acme" in installed.ok("token", "list", extra=home)
    assert installed.ok("project", "webhook-secret", "--project", "acme", extra=home).strip()
    assert "docker" in installed.ok("plugins", extra=home)
    assert "shell" in installed.ok("runtime", "list", extra=home)


def test_extras_that_are_missing_say_so_in_one_line(installed: Installed, tmp_path: Path) -> None:
    home = {"MAYFLY_HOME": str(tmp_path / "home")}
    emulator = installed.run("emulator", "aws", extra=home)
    assert emulator.returncode != 0
    assert "pip install" in emulator.stderr
