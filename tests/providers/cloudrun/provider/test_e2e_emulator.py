"""The whole Google Cloud path on the emulator and a real Docker engine.

control plane → Pub/Sub → runner → Cloud Run Admin API → container → boot script fetches
code and payload from GCS signed URLs → result PUT to GCS → logs from Cloud Logging →
events → store. Plus cancel, timeout, out of memory, a killed runner reattaching, a
redelivered message launching nothing, and ``mayfly target check`` through the CLI.
"""

from __future__ import annotations

import json
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
from mayfly.testing.tasks import wait_ended

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TARGET = "gcp-local"


@pytest.fixture(scope="module")
def target(gcp_emulator: Any) -> Any:
    return gcp_emulator.new_target()


@pytest.fixture
def mf(target: Any, home: Path, runtime_images: dict[str, str]) -> Iterator[Mayfly]:
    defaults = {"shell": "sh main.sh", "python-3.11": "python3 main.py"}
    app = Mayfly(
        Home(home, Limits(stop_grace_seconds=2.0)), lambda n: RuntimeInfo(n, runtime_images[n], defaults.get(n))
    )
    settings = {**target.model_dump(exclude_none=True), "status_poll_seconds": 0.3, "log_reads_per_second": 20.0}
    app.targets.add(TARGET, "cloudrun", settings, capacity=4)
    yield app
    app.close()


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


def executions_of(gcp_emulator: Any, task: Task) -> list[Any]:
    """Every execution RunJob ever started for the task (the runner deletes them once done), by its attempt env.

    Read from the emulator's record of RunJob's operations: Cloud Run itself lists no deleted execution.
    """
    backend = gcp_emulator.emulator.backend
    with backend.lock:
        started = [op.subject for op in backend.operations.values() if op.kind == "Execution" and not op.finished]
    return [
        e
        for e in started
        if any(f"/{task.id}/" in env.get("value", "") for c in e.containers for env in c.get("env") or [])
    ]


def test_a_task_runs_on_cloud_run_end_to_end(
    mf: Mayfly, serving: Serving, gcp_emulator: Any, target: Any, tmp_path: Path
) -> None:
    push(
        mf,
        tmp_path,
        "hello",
        {
            "main.py": (
                "import json, os\n"
                "p = json.load(open(os.environ['MAYFLY_PAYLOAD_FILE']))\n"
                "print('hello from Cloud Run', p['n'])\n"
                "print('last line without newline', end='')\n"
                "json.dump({'double': p['n'] * 2}, open('/mayfly/result.json', 'w'))\n"
            )
        },
        runtime="python-3.11",
    )
    task = mf.tasks.queue(mf.project_id(), "hello", '{"n": 21}', TaskOptions())
    done = wait(mf, task.id)
    assert (done.status, done.exit_code, done.attempt) == ("complete", 0, 1)
    assert done.to_json()["result"] == {"double": 42}
    # The log came back from Cloud Logging (line based: the last line gains a newline).
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"hello from Cloud Run 21\nlast line without newline\n"
    (execution,) = executions_of(gcp_emulator, done)
    assert execution.task_count == 1
    assert execution.deleted is not None  # removed once its end was reported
    # The code package went to the target's bucket, content-addressed, and the attempt's launch record names it.
    from mayfly.providers.cloudrun.gcs import GcsBlobStore

    store = GcsBlobStore.from_settings(target)
    assert any(k.startswith("codes/") and k.endswith(".zip") for k in store.list("codes/"))


def test_exit_codes_cancel_timeout_and_oom(mf: Mayfly, serving: Serving, gcp_emulator: Any, tmp_path: Path) -> None:
    push(mf, tmp_path, "fail", {"main.sh": "echo failing\nexit 3\n"})
    push(mf, tmp_path, "long", {"main.sh": "echo up\nsleep 300\n"})
    push(mf, tmp_path, "slow", {"main.sh": "echo started\nsleep 300\n"}, timeout=3)
    push(mf, tmp_path, "hog", {"main.sh": "dd if=/dev/zero of=/dev/null bs=1600M count=1\n"}, memory_mb=512)
    pid = mf.project_id()
    failed = mf.tasks.queue(pid, "fail", "{}", TaskOptions())
    long = mf.tasks.queue(pid, "long", "{}", TaskOptions())
    slow = mf.tasks.queue(pid, "slow", "{}", TaskOptions())
    hog = mf.tasks.queue(pid, "hog", "{}", TaskOptions())
    done = wait(mf, failed.id)
    assert (done.status, done.reason, done.exit_code) == ("error", "exit", 3)
    wait_running(mf, long.id)
    mf.tasks.cancel(pid, long.id)
    cancelled = wait(mf, long.id, timeout=60)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled")
    (execution,) = executions_of(gcp_emulator, cancelled)
    assert execution.cancel_requested  # CancelExecution reached Cloud Run
    timed_out = wait(mf, slow.id, timeout=60)
    assert (timed_out.status, timed_out.reason) == ("timeout", "timeout")
    oom = wait(mf, hog.id, timeout=60)
    assert (oom.status, oom.reason) == ("error", "oom")


def test_a_redelivered_message_does_not_launch_twice(
    mf: Mayfly, serving: Serving, gcp_emulator: Any, tmp_path: Path
) -> None:
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
    assert len(executions_of(gcp_emulator, done)) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"ran\n"


def test_a_killed_runner_is_replaced_and_reattaches(mf: Mayfly, gcp_emulator: Any, home: Path, tmp_path: Path) -> None:
    push(mf, tmp_path, "sleepy", {"main.sh": "echo start\nsleep 6\necho end\n"})
    control = Serving(mf, [TARGET], runners=False)
    control.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": "3"}

    def runner() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "runner", "--target", TARGET],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    first = runner()
    try:
        task = mf.tasks.queue(mf.project_id(), "sleepy", "{}", TaskOptions())
        wait_running(mf, task.id)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = runner()
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
    assert len(executions_of(gcp_emulator, done)) == 1
    events = mf.tasks.events(mf.project_id(), task.id)
    assert [(e.kind, e.applied) for e in events].count(("exited", True)) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"start\nend\n"
    assert json.loads(events[-1].data)["exit_code"] == 0


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_target_check_through_the_cli(mf: Mayfly, home: Path, target: Any) -> None:
    assert _cli(home, "target", "check", TARGET).stdout == f"{TARGET}: ok\n"
    broken = {**target.model_dump(exclude_none=True), "bucket": "mayfly-no-such-bucket"}
    mf.targets.add("gcp-broken", "cloudrun", broken)
    checked = _cli(home, "target", "check", "gcp-broken")
    assert checked.returncode != 0
    assert checked.stderr.startswith("Error: Cloud Storage bucket mayfly-no-such-bucket does not exist")
    assert len(checked.stderr.splitlines()) == 1
    no_queues = {**target.model_dump(exclude_none=True), "queue_prefix": "mayfly-no-such-queues"}
    mf.targets.add("gcp-no-queues", "cloudrun", no_queues)
    checked = _cli(home, "target", "check", "gcp-no-queues")
    assert checked.returncode != 0
    assert checked.stderr == (
        f"Error: Pub/Sub topic projects/{target.project}/topics/mayfly-no-such-queues-tasks does not exist\n"
    )
