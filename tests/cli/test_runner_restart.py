"""A runner process killed with SIGKILL mid-task: the next runner reattaches; every task ends exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TASKS = 8


@pytest.fixture
def mf(home: Path, runtime_images: dict[str, str]) -> Iterator[Mayfly]:
    app = Mayfly(Home(home), lambda name: RuntimeInfo(name, runtime_images[name], None))
    yield app
    app.close()


def start_runner(home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": "2"}
    return subprocess.Popen(
        [sys.executable, "-m", "mayfly.cli", "runner", "--target", "local"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_until(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_runner_is_replaced_and_reattaches(mf: Mayfly, home: Path, tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    code = tmp_path / "sleepy"
    code.mkdir()
    (code / "main.sh").write_text("echo start\nsleep 4\necho end\n")
    pid = mf.project_id()
    mf.codes.push(pid, "sleepy", code, runtime="shell", options=CodeOptions(command="sh main.sh"))
    ids = [mf.tasks.queue(pid, "sleepy", "{}", TaskOptions()).id for _ in range(TASKS)]

    control = Serving(mf, ["local"], runners=False)
    control.start()
    first = start_runner(home)
    try:
        wait_until(lambda: all(mf.tasks.get(pid, i).status == "running" for i in ids), 60, "all tasks running")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        # The containers outlive their runner.
        alive = docker_client.containers.list(sparse=True, filters={"label": f"mayfly.home={mf.home_id}"})
        assert len(alive) == TASKS
        second = start_runner(home)
        try:
            wait_until(lambda: all(mf.tasks.get(pid, i).task_status.terminal for i in ids), 90, "all tasks done")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
        control.stop()

    for task_id in ids:
        task = mf.tasks.get(pid, task_id)
        assert (task.status, task.attempt, task.exit_code) == ("complete", 1, 0)
        assert b"".join(mf.tasks.log(pid, task_id)) == b"start\nend\n"
        events = mf.tasks.events(pid, task_id)
        # Both runners reported a start, of the same container; one exit was applied.
        handles = {e.to_json()["data"].get("handle") for e in events if e.kind == "started"}
        assert len(handles) == 1
        assert [(e.kind, e.applied) for e in events].count(("exited", True)) == 1
    assert docker_client.containers.list(all=True, sparse=True, filters={"label": f"mayfly.home={mf.home_id}"}) == []
