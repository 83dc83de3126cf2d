"""``mayfly emulator azure``: it prints the endpoints and the target command, serves, and cleans up on Ctrl-C.

The command runs in a subprocess (through its own Typer app) where it must keep
serving until a signal; the printed settings are then used as a user would.
"""

from __future__ import annotations

import json
import queue
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.mgmt.containerinstance import models
from typer.testing import CliRunner

from mayfly.cli.emulator import app
from mayfly.providers.aci.emulator.clients import management_client
from mayfly.providers.aci.emulator.containers import LABEL_GROUP
from mayfly.providers.aci.settings import AciSettings

pytestmark = [pytest.mark.docker, pytest.mark.slow]

LAUNCH = "from mayfly.cli.emulator import app; app(prog_name='mayfly emulator')"


class Running:
    """The emulator command in a subprocess, its stdout read line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", LAUNCH, "azure", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, prefix: str, limit: float = 120.0) -> list[str]:
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
        """Ctrl-C; the exit code and what it printed since the last ``until`` (stdout, then stderr)."""
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


def test_prints_a_valid_target_line_serves_it_and_cleans_up_on_ctrl_c(
    running: Any, busybox_image: str, docker_client: Any
) -> None:
    if shutil.which("node") is None:
        pytest.skip("Azurite needs Node.js")
    emulator = running("--port", "0", "--blob-port", "0", "--queue-port", "0", "--target", "cli-test")
    lines = emulator.until("Ctrl-C")
    endpoints = {k: v for k, _, v in (line.partition(": ") for line in lines) if k.endswith(" endpoint")}
    command = next(line for line in lines if line.startswith("mayfly target add "))
    argv = shlex.split(command)
    assert argv[:7] == ["mayfly", "target", "add", "cli-test", "--provider", "aci", "--settings"]
    settings = AciSettings.model_validate(json.loads(argv[7]))
    assert settings.arm_endpoint == endpoints["arm endpoint"]
    assert settings.blob_endpoint == endpoints["blob endpoint"]
    assert settings.queue_endpoint == endpoints["queue endpoint"]
    assert settings.queue_prefix == "mayfly-cli-test"

    # The target's queues and container exist in Azurite ...
    from azure.storage.blob import BlobServiceClient
    from azure.storage.queue import QueueServiceClient

    credential = {"account_name": settings.storage_account, "account_key": settings.account_key}
    queues = {q.name for q in QueueServiceClient(settings.queue_endpoint, credential=credential).list_queues()}
    assert {
        f"mayfly-cli-test-{kind}{poison}" for kind in ("tasks", "control", "events") for poison in ("", "-poison")
    } <= queues
    assert (
        BlobServiceClient(settings.blob_endpoint, credential=credential)
        .get_container_client(settings.container)
        .exists()
    )

    # ... and ARM runs a container group that is still running at Ctrl-C ...
    client = management_client(str(settings.arm_endpoint), settings.subscription_id)
    created = client.container_groups.begin_create_or_update(
        settings.resource_group,
        "sleeper",
        models.ContainerGroup(
            location=settings.location,
            os_type="Linux",
            restart_policy="Never",
            containers=[
                models.Container(
                    name="main",
                    image=busybox_image,
                    command=["sleep", "300"],
                    resources=models.ResourceRequirements(requests=models.ResourceRequests(cpu=0.1, memory_in_gb=0.1)),
                )
            ],
        ),
    ).result()
    assert created.containers[0].instance_view.current_state.state == "Running"
    mine = {"label": f"{LABEL_GROUP}={created.id}"}
    assert len(docker_client.containers.list(all=True, filters=mine)) == 1

    # ... which Ctrl-C removes, with Azurite.
    code, rest = emulator.interrupt()
    assert code == 0, rest
    assert "stopped" in rest
    assert docker_client.containers.list(all=True, filters=mine) == []


def test_a_bad_target_name_is_one_error_line() -> None:
    result = CliRunner().invoke(app, ["azure", "--port", "0", "--target", "Not_Valid"])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines()[-1] == (
        "Error: invalid target name 'Not_Valid': lowercase letters, digits and single '-' between them, 41 at most"
    )


def test_a_port_in_use_is_one_error_line() -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["azure", "--port", str(port)])
    assert result.exit_code == 5, result.output
    assert result.output.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")


def test_a_target_without_the_storage_sdks_is_one_error_line_and_stops_everything(docker_client: Any) -> None:
    if shutil.which("node") is None:
        pytest.skip("Azurite needs Node.js")
    # As if azure-storage-blob were not installed.
    launch = "import sys; sys.modules['azure.storage.blob'] = None; " + LAUNCH
    args = ["azure", "--port", "0", "--blob-port", "0", "--queue-port", "0", "--target", "no-sdk"]
    proc = subprocess.run([sys.executable, "-c", launch, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith('Error: creating a target needs the Azure Storage SDKs: pip install "mayfly-tasks[azure]"')
    )
    assert "Traceback" not in proc.stderr
