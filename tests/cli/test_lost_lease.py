"""A `mayfly runner` paused past its lease loses its attempts to another runner, then takes new work again.

Issue 13 item 2: the paused runner kept the lost attempts in its in-progress set
forever (its slots never came back, so new tasks stayed ``preparing``) and logged
the loss three times a second. Container starts are counted on the engine.

The other runner is a plain :class:`Runner` in this process: on an embedded target the
home's runner lock admits one ``mayfly runner``, so it stands for what cloud targets
allow, several store-less runners on one queue.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions

pytestmark = [pytest.mark.docker, pytest.mark.slow]

CAPACITY = 2
LEASE = "2"


@pytest.fixture
def mf(home: Path, runtime_images: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Mayfly]:
    monkeypatch.setenv("MAYFLY_LOCAL_CAPACITY", str(CAPACITY))
    app = Mayfly(Home(home), lambda name: RuntimeInfo(name, runtime_images[name], None))
    yield app
    app.close()


def wait_until(pred, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_paused_runner_lets_lost_attempts_go_and_takes_new_work(
    mf: Mayfly, home: Path, tmp_path: Path, container_starts: Callable[[str], Any]
) -> None:
    code = tmp_path / "sleepy"
    code.mkdir()
    (code / "main.sh").write_text("echo start\nsleep 12\necho end\n")
    pid = mf.project_id()
    mf.codes.push(pid, "sleepy", code, runtime="shell", options=CodeOptions(command="sh main.sh"))
    starts = container_starts(mf.home_id)
    runner_log = tmp_path / "runner.log"

    control = Serving(mf, ["local"], runners=False)
    control.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": LEASE}
    with runner_log.open("wb") as err:
        paused = subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "runner", "--target", "local"], env=env, stderr=err
        )
    taker_stop = threading.Event()
    taker = mf.runner("local", lease=float(LEASE))
    taker_thread = threading.Thread(target=taker.run, args=(taker_stop,), daemon=True)
    try:
        first = [mf.tasks.queue(pid, "sleepy", "{}", TaskOptions()).id for _ in range(CAPACITY)]
        wait_until(lambda: all(mf.tasks.get(pid, i).status == "running" for i in first), 60, "first tasks running")

        # Paused past its lease: another runner (here, in this process) gets the messages and reattaches.
        paused.send_signal(signal.SIGSTOP)
        taker_thread.start()
        wait_until(lambda: taker.busy() == CAPACITY, 30, "the other runner to take the attempts over")
        paused.send_signal(signal.SIGCONT)
        wait_until(lambda: all(mf.tasks.get(pid, i).task_status.terminal for i in first), 60, "first tasks done")
        taker_stop.set()
        taker_thread.join(30)

        # Now the resumed runner is the only one: its slots must be free again.
        second = [mf.tasks.queue(pid, "sleepy", "{}", TaskOptions()).id for _ in range(CAPACITY)]
        wait_until(lambda: all(mf.tasks.get(pid, i).task_status.terminal for i in second), 60, "new tasks done")
    finally:
        taker_stop.set()
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
            paused.send_signal(signal.SIGTERM)
            paused.wait(30)
        control.stop()

    for task_id in first + second:
        task = mf.tasks.get(pid, task_id)
        assert (task.status, task.attempt, task.exit_code) == ("complete", 1, 0)
        assert b"".join(mf.tasks.log(pid, task_id)) == b"start\nend\n"
    # Each attempt's container started once: the lost lease ran nothing twice.
    assert starts.counts() == Counter({f"mayfly-{task_id}-1": 1 for task_id in first + second})
    # The loss is said once per attempt, not three times a second.
    lost = [line for line in runner_log.read_text().splitlines() if "was lost" in line]
    assert sorted(lost_task for line in lost for lost_task in first if lost_task in line) == sorted(first)
    assert len(lost) == CAPACITY


def container_exists(name: str) -> bool:
    return subprocess.run(["docker", "inspect", name], capture_output=True).returncode == 0


def test_a_runner_paused_mid_launch_never_starts_the_attempt_declared_lost(
    mf: Mayfly,
    home: Path,
    tmp_path: Path,
    container_starts: Callable[[str], Any],
    process_stopped: Callable[[subprocess.Popen[bytes]], bool],
) -> None:
    """Paused between its ``launched`` record and the container: the next owner reports it lost and runs attempt 2.

    When the paused runner resumes, attempt 1 must not start beside attempt 2.
    """
    code = tmp_path / "sleepy"
    code.mkdir()
    (code / "main.sh").write_text("echo start\nsleep 8\necho end\n")
    pid = mf.project_id()
    mf.codes.push(pid, "sleepy", code, runtime="shell", options=CodeOptions(command="sh main.sh"))
    starts = container_starts(mf.home_id)
    runner_log = tmp_path / "runner.log"

    control = Serving(mf, ["local"], runners=False)
    control.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": LEASE}
    env["MAYFLY_FAULTS"] = "runner.launching:stop"  # it stops itself right after writing the record
    with runner_log.open("wb") as err:
        paused = subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "runner", "--target", "local"], env=env, stderr=err
        )
    taker_stop = threading.Event()
    taker = mf.runner("local", lease=float(LEASE))
    taker_thread = threading.Thread(target=taker.run, args=(taker_stop,), daemon=True)
    try:
        task_id = mf.tasks.queue(pid, "sleepy", "{}", TaskOptions()).id
        wait_until(lambda: process_stopped(paused), 60, "the runner to stop mid-launch")
        taker_thread.start()
        wait_until(lambda: mf.tasks.get(pid, task_id).attempt == 2, 60, "attempt 1 reported lost, attempt 2 queued")
        wait_until(lambda: mf.tasks.get(pid, task_id).status == "running", 60, "attempt 2 running")
        paused.send_signal(signal.SIGCONT)
        first = f"mayfly-{task_id}-1"
        wait_until(
            lambda: "declared lost" in runner_log.read_text() or container_exists(first),
            30,
            "the resumed runner to give attempt 1 up (or to launch it)",
        )
        wait_until(lambda: mf.tasks.get(pid, task_id).task_status.terminal, 60, "the task done")
    finally:
        taker_stop.set()
        taker_thread.join(30)
        if paused.poll() is None:
            paused.send_signal(signal.SIGCONT)
            paused.send_signal(signal.SIGTERM)
            paused.wait(30)
        control.stop()

    task = mf.tasks.get(pid, task_id)
    assert (task.status, task.attempt, task.exit_code) == ("complete", 2, 0)
    assert b"".join(mf.tasks.log(pid, task_id)) == b"start\nend\n"
    # Attempt 1's container never started: nothing ran twice.
    assert starts.counts() == Counter({f"mayfly-{task_id}-2": 1})
