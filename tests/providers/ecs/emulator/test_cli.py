"""``mayfly emulator aws``: it prints the endpoint and the target command, serves, and cleans up on Ctrl-C.

The command group is tested through its own Typer app (``mayfly.cli.emulator.app``),
in a subprocess where it must keep serving until a signal.
"""

from __future__ import annotations

import json
import queue
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from mayfly.cli.emulator import app
from mayfly.providers.ecs.settings import EcsSettings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAUNCH = "from mayfly.cli.emulator import app; app(prog_name='mayfly emulator')"


class Running:
    """The emulator command in a subprocess, its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "aws", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, prefix: str, limit: float = 60.0) -> list[str]:
        """Every line up to the first one starting with ``prefix``."""
        seen: list[str] = []
        deadline = time.monotonic() + limit
        while not seen or not seen[-1].startswith(prefix):
            try:
                seen.append(self.lines.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                stderr = self.process.stderr.read() if self.process.poll() is not None and self.process.stderr else ""
                pytest.fail(f"no line starting with {prefix!r} within {limit:.0f} s: {seen} {stderr}")
        return seen

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C; the exit code, and what it printed since the last ``until`` (stdout, then stderr)."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        self._reader.join(timeout=10)
        stderr = self.process.stderr.read() if self.process.stderr else ""
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return self.process.returncode, "\n".join(rest) + stderr


@pytest.fixture
def running() -> Iterator[Any]:
    started: list[Running] = []

    def start(*args: str) -> Running:
        started.append(Running(*args))
        return started[-1]

    yield start
    for proc in started:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait()


def test_prints_the_endpoint_and_the_target_command_then_stops_on_ctrl_c(
    running: Any, busybox_image: str, docker_client: Any
) -> None:
    emulator = running("--port", "0", "--target", "cli-test", "--region", "eu-west-1")
    lines = emulator.until("Ctrl-C")
    endpoint = next(line.split(": ", 1)[1] for line in lines if line.startswith("endpoint: "))
    assert endpoint.startswith("http://")
    command = next(line for line in lines if line.startswith("mayfly target add "))
    argv = shlex.split(command)
    assert argv[:7] == ["mayfly", "target", "add", "cli-test", "--provider", "ecs", "--settings"]
    settings = EcsSettings.model_validate(json.loads(argv[7]))
    assert settings.endpoint_url == endpoint
    assert settings.region == "eu-west-1"

    # The printed settings work: a task that would run for 5 minutes is running on the target's cluster...
    import boto3

    ecs = boto3.client(
        "ecs", region_name="eu-west-1", endpoint_url=endpoint, aws_access_key_id="t", aws_secret_access_key="t"
    )
    definition = ecs.register_task_definition(
        family="cli",
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "main", "image": busybox_image, "command": ["sleep", "300"]}],
    )["taskDefinition"]["taskDefinitionArn"]
    arn = ecs.run_task(
        cluster=settings.cluster,
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": settings.subnets}},
    )["tasks"][0]["taskArn"]
    deadline = time.monotonic() + 60
    while (task := ecs.describe_tasks(cluster=settings.cluster, tasks=[arn])["tasks"][0])["lastStatus"] != "RUNNING":
        assert time.monotonic() < deadline, task
        time.sleep(0.2)
    runtime_id = task["containers"][0]["runtimeId"]

    # ... and Ctrl-C removes its container.
    code, rest = emulator.interrupt()
    assert code == 0, rest
    assert "stopped" in rest
    assert docker_client.containers.list(all=True, filters={"id": runtime_id}) == []


def test_a_bad_target_name_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["aws", "--port", "0", "--target", "Not_Valid"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        "Error: invalid target name 'Not_Valid': lowercase letters, digits and '-', 63 at most"
    )


def test_a_port_in_use_is_one_error_line() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["aws", "--port", str(port)])
    assert result.exit_code == 5, result.output
    assert result.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")


def test_help() -> None:
    result = CliRunner().invoke(app, ["aws", "--help"])
    assert result.exit_code == 0
    for option in ("--host", "--port", "--target", "--region", "--container-host"):
        assert option in result.output
