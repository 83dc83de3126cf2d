"""The whole Azure path on the emulator, Azurite and a real Docker engine.

control plane → Storage Queue → runner → ARM → container group → boot script fetches code
and payload through SAS URLs → result PUT to Blob storage → logs from ``list_logs`` →
events → store. Plus cancel, timeout, OOM, a killed runner reattaching, a redelivered
message launching nothing, and a poison message ending its attempt.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home, Limits
from mayfly.core.records import Task
from mayfly.core.router import build_message
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions
from mayfly.providers.aci.queues import MAX_DELIVERIES
from mayfly.providers.aci.settings import AciSettings
from mayfly.testing.tasks import wait_ended

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TARGET = "azure-local"


@pytest.fixture
def mf(aci_target: AciSettings, home: Path, runtime_images: dict[str, str]) -> Iterator[Mayfly]:
    defaults = {"shell": "sh main.sh", "python-3.11": "python3 main.py"}
    app = Mayfly(
        Home(home, Limits(stop_grace_seconds=2.0)), lambda n: RuntimeInfo(n, runtime_images[n], defaults.get(n))
    )
    app.targets.add(TARGET, "aci", aci_target.model_dump(exclude_none=True), capacity=4)
    yield app
    app.close()


@pytest.fixture
def aci_client(azure_emulator: Any, aci_target: AciSettings) -> Any:
    """The real management client on the emulator, in the target's subscription."""
    return azure_emulator.management_client(aci_target)


@pytest.fixture
def serving(mf: Mayfly) -> Iterator[Serving]:
    s = Serving(mf, [TARGET])
    s.start()
    yield s
    s.stop()


def push(mf: Mayfly, tmp_path: Path, name: str, files: dict[str, str], runtime: str = "shell", **opts: Any) -> None:
    d = tmp_path / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname).write_text(text)
    mf.codes.push(mf.project_id(), name, d, runtime=runtime, options=CodeOptions(target=TARGET, **opts))


#: A launch through the emulator (real containers behind a cloud's API) takes longer than a local one.
wait = partial(wait_ended, timeout=90)


def wait_running(mf: Mayfly, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while mf.tasks.get(mf.project_id(), task_id).status != "running":
        assert time.monotonic() < deadline, "task never ran"
        time.sleep(0.1)


def groups_of(aci_client: Any, settings: AciSettings, task: Task) -> list[str]:
    """Names of the container groups (still there) of one task, by their tags."""
    return [
        g.name
        for g in aci_client.container_groups.list_by_resource_group(settings.resource_group)
        if (g.tags or {}).get("mayfly.task") == task.id
    ]


def creates_in(text: str, task: Task, attempt: int = 1) -> int:
    """How many container groups the provider's log says it created for one attempt."""
    return text.count(f"launched mayfly-{task.id}-{attempt} as container group")


def test_a_task_runs_on_aci_end_to_end(
    mf: Mayfly, serving: Serving, aci_target: AciSettings, aci_client: Any, tmp_path: Path
) -> None:
    push(
        mf,
        tmp_path,
        "hello",
        {
            "main.py": (
                "import json, os\n"
                "p = json.load(open(os.environ['MAYFLY_PAYLOAD_FILE']))\n"
                "print('hello from ACI', p['n'])\n"
                "print('last line without newline', end='')\n"
                "json.dump({'double': p['n'] * 2}, open('/mayfly/result.json', 'w'))\n"
            )
        },
        runtime="python-3.11",
    )
    task = mf.tasks.queue(mf.project_id(), "hello", '{"n": 21}', TaskOptions())
    done = wait(mf, task.id)
    log = b"".join(mf.tasks.log(mf.project_id(), task.id))
    assert (done.status, done.exit_code, done.attempt) == ("complete", 0, 1), (done.msg, log)
    assert done.to_json()["result"] == {"double": 42}
    assert log == b"hello from ACI 21\nlast line without newline"
    events = [e.kind for e in mf.tasks.events(mf.project_id(), task.id)]
    assert "started" in events
    assert events[-1] == "exited"
    # The attempt's group is gone once its log and result were kept.
    deadline = time.monotonic() + 30
    while groups_of(aci_client, aci_target, done):
        assert time.monotonic() < deadline, "the container group was not deleted"
        time.sleep(0.2)


def aci_log(aci_client: Any, settings: AciSettings, task: Task) -> str:
    """What ACI has of the log of a task's group so far ("" while it has none)."""
    for name in groups_of(aci_client, settings, task):
        return str(aci_client.containers.list_logs(settings.resource_group, name, "task").content or "")
    return ""


def test_exit_code_cancel_timeout_and_oom(
    mf: Mayfly, serving: Serving, aci_target: AciSettings, aci_client: Any, tmp_path: Path
) -> None:
    push(mf, tmp_path, "fail", {"main.sh": "echo failing\nexit 3\n"})
    push(mf, tmp_path, "long", {"main.sh": "trap 'echo got-term; exit 143' TERM\necho up\nwhile :; do sleep 1; done\n"})
    push(mf, tmp_path, "slow", {"main.sh": "echo started\nsleep 300\n"}, timeout=3)
    push(mf, tmp_path, "hog", {"main.sh": "dd if=/dev/zero of=/dev/null bs=300M count=1\n"}, memory_mb=64)
    pid = mf.project_id()
    failed, long, slow, hog = (mf.tasks.queue(pid, n, "{}", TaskOptions()) for n in ("fail", "long", "slow", "hog"))
    deadline = time.monotonic() + 60
    while "up" not in aci_log(aci_client, aci_target, mf.tasks.get(pid, long.id)):
        assert time.monotonic() < deadline, "the task never wrote its first line"
        time.sleep(0.2)
    mf.tasks.cancel(pid, long.id)

    done = wait(mf, failed.id)
    assert (done.status, done.reason, done.exit_code) == ("error", "exit", 3)
    cancelled = wait(mf, long.id, timeout=60)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled")
    # The log was read before the group was stopped and deleted, SIGTERM handler included.
    assert b"".join(mf.tasks.log(pid, long.id)) == b"up\ngot-term\n"
    timed_out = wait(mf, slow.id, timeout=60)
    assert (timed_out.status, timed_out.reason) == ("timeout", "timeout")
    oom = wait(mf, hog.id, timeout=60)
    assert (oom.status, oom.reason) == ("error", "oom"), oom.msg


def test_a_redelivered_message_launches_nothing(
    mf: Mayfly, serving: Serving, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mayfly.providers.aci")
    push(mf, tmp_path, "once", {"main.sh": "echo ran\nsleep 2\n"})
    task = mf.tasks.queue(mf.project_id(), "once", "{}", TaskOptions())
    wait_running(mf, task.id)
    current = mf.tasks.get(mf.project_id(), task.id)
    mf.queues_for(TARGET).get("tasks").send(
        build_message(current, mf.codes.revision(mf.project_id(), "once"), mf.limits).dumps()
    )
    done = wait(mf, task.id)
    time.sleep(2)  # let the duplicate be received and dropped
    assert (done.status, done.attempt) == ("complete", 1)
    assert creates_in(caplog.text, done) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"ran\n"


def test_a_killed_runner_is_replaced_and_reattaches(mf: Mayfly, home: Path, tmp_path: Path) -> None:
    push(mf, tmp_path, "sleepy", {"main.sh": "echo start\nsleep 6\necho end\n"})
    control = Serving(mf, [TARGET], runners=False)
    control.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": "3"}

    logs = [tmp_path / "runner-1.log", tmp_path / "runner-2.log"]

    def runner(n: int) -> subprocess.Popen[bytes]:
        with logs[n].open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "mayfly.cli", "runner", "--target", TARGET, "--verbose"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=out,
            )

    first = runner(0)
    try:
        task = mf.tasks.queue(mf.project_id(), "sleepy", "{}", TaskOptions())
        wait_running(mf, task.id)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = runner(1)
        try:
            done = wait(mf, task.id, timeout=90)
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
        control.stop()
    assert (done.status, done.attempt, done.exit_code) == ("complete", 1, 0)
    assert creates_in(logs[0].read_text(), done) == 1
    assert creates_in(logs[1].read_text(), done) == 0
    events = mf.tasks.events(mf.project_id(), task.id)
    assert [(e.kind, e.applied) for e in events].count(("exited", True)) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"start\nend\n"
    assert json.loads(events[-1].data)["exit_code"] == 0


def test_a_poison_task_message_ends_its_attempt_as_lost(mf: Mayfly, tmp_path: Path) -> None:
    """A task message no runner ever finishes goes to the poison queue; the control plane ends its attempt."""
    push(mf, tmp_path, "never", {"main.sh": "echo never\n"})
    control = Serving(mf, [TARGET], runners=False)
    control.start()
    try:
        task = mf.tasks.queue(mf.project_id(), "never", "{}", TaskOptions(retries=3))
        tasks_q = mf.queues_for(TARGET).get("tasks")
        # A runner that dies on the message every time: received, never acked, its lease runs out.
        for _ in range(MAX_DELIVERIES):
            deadline = time.monotonic() + 30
            while not tasks_q.receive(1, wait=1.0, lease=1.0):
                assert time.monotonic() < deadline, "the task message did not come back"
        time.sleep(1.2)  # the last lease runs out
        assert tasks_q.receive(1, wait=2.0) == [], "the sixth delivery moves it to the poison queue instead"
        done = wait(mf, task.id, timeout=60)
    finally:
        control.stop()
    assert (done.status, done.reason, done.attempt) == ("error", "lost", 1)
    assert "delivered too many times" in (done.msg or "")
