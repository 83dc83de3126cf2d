"""The whole AWS path on the emulator and a real Docker engine.

control plane → SQS → runner → ECS API → container → boot script fetches code and
payload from S3 presigned URLs → result PUT to S3 → logs from CloudWatch → events
→ store. Plus cancel, timeout, a killed runner reattaching, and a redelivered
message not launching twice.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home, Limits
from mayfly.core.errors import Unsupported
from mayfly.core.records import Task
from mayfly.core.router import build_message
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions
from mayfly.providers.ecs.emulator import AwsEmulator
from mayfly.providers.ecs.naming import started_by

pytestmark = [pytest.mark.docker, pytest.mark.slow]

AWS_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "eu-west-1"}


@pytest.fixture(scope="module")
def aws(docker_client: Any) -> Iterator[AwsEmulator]:
    saved = {k: os.environ.get(k) for k in AWS_ENV}
    os.environ.update(AWS_ENV)
    with AwsEmulator("127.0.0.1", 0, region="eu-west-1", poll_interval=0.2, log_interval=0.5) as emu:
        yield emu
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def mf(aws: AwsEmulator, home: Path, runtime_images: dict[str, str]) -> Iterator[Mayfly]:
    defaults = {"shell": "sh main.sh", "python-3.11": "python3 main.py"}
    app = Mayfly(Home(home, Limits(stop_grace_seconds=2.0)),
                 lambda n: RuntimeInfo(n, runtime_images[n], defaults.get(n)))
    settings = aws.bootstrap_target("aws-local")
    app.targets.add("aws-local", "ecs", {**settings, "stop_timeout": 2, "status_poll_seconds": 0.3}, capacity=4)
    yield app
    app.close()


@pytest.fixture
def serving(mf: Mayfly) -> Iterator[Serving]:
    s = Serving(mf, ["aws-local"])
    s.start()
    yield s
    s.stop()


def push(mf: Mayfly, tmp_path: Path, name: str, files: dict[str, str], runtime: str = "shell", **opts: Any) -> None:
    d = tmp_path / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname).write_text(text)
    mf.codes.push(mf.project_id(), name, d, runtime=runtime, options=CodeOptions(target="aws-local", **opts))


def wait(mf: Mayfly, task_id: str, timeout: float = 90) -> Task:
    pid = mf.project_id()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = mf.tasks.get(pid, task_id)
        if task.task_status.terminal:
            return task
        time.sleep(0.1)
    raise AssertionError(f"task still {mf.tasks.get(pid, task_id).status}")


def wait_running(mf: Mayfly, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while mf.tasks.get(mf.project_id(), task_id).status != "running":
        assert time.monotonic() < deadline, "task never ran"
        time.sleep(0.1)


def cluster(mf: Mayfly) -> str:
    return str(mf.targets.settings("aws-local")["cluster"])


def ecs_tasks_of(aws: AwsEmulator, mf: Mayfly, task: Task, attempt: int = 1) -> list[str]:
    """The ECS tasks ever started for one attempt (ListTasks by startedBy, running and stopped)."""
    ecs = aws.client("ecs")
    found: list[str] = []
    for status in ("RUNNING", "STOPPED"):
        found += ecs.list_tasks(cluster=cluster(mf), startedBy=started_by(f"mayfly-{task.id}-{attempt}"),
                                desiredStatus=status)["taskArns"]
    return found


def test_a_task_runs_on_ecs_end_to_end(mf: Mayfly, serving: Serving, aws: AwsEmulator, tmp_path: Path) -> None:
    push(mf, tmp_path, "hello", {"main.py": (
        "import json, os\n"
        "p = json.load(open(os.environ['MAYFLY_PAYLOAD_FILE']))\n"
        "print('hello from ECS', p['n'])\n"
        "print('last line without newline', end='')\n"
        "json.dump({'double': p['n'] * 2}, open('/mayfly/result.json', 'w'))\n"
    )}, runtime="python-3.11")
    task = mf.tasks.queue(mf.project_id(), "hello", '{"n": 21}', TaskOptions())
    done = wait(mf, task.id)
    assert (done.status, done.exit_code, done.attempt) == ("complete", 0, 1)
    assert done.to_json()["result"] == {"double": 42}
    # The log came back from CloudWatch Logs (awslogs is line based: the last line gains a newline).
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"hello from ECS 21\nlast line without newline\n"
    assert len(ecs_tasks_of(aws, mf, done)) == 1
    # The code package went to the target's bucket, content-addressed.
    s3 = aws.client("s3")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=mf.targets.settings("aws-local")["bucket"])["Contents"]]
    assert any(k.startswith("codes/") and k.endswith(".zip") for k in keys)


def test_exit_codes_and_cancel(mf: Mayfly, serving: Serving, aws: AwsEmulator, tmp_path: Path) -> None:
    push(mf, tmp_path, "fail", {"main.sh": "echo failing\nexit 3\n"})
    push(mf, tmp_path, "long", {"main.sh": "echo up\nsleep 300\n"})
    failed = mf.tasks.queue(mf.project_id(), "fail", "{}", TaskOptions())
    long = mf.tasks.queue(mf.project_id(), "long", "{}", TaskOptions())
    done = wait(mf, failed.id)
    assert (done.status, done.reason, done.exit_code) == ("error", "exit", 3)
    wait_running(mf, long.id)
    mf.tasks.cancel(mf.project_id(), long.id)
    cancelled = wait(mf, long.id, 60)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled")
    (arn,) = ecs_tasks_of(aws, mf, cancelled)
    described = aws.client("ecs").describe_tasks(cluster=cluster(mf), tasks=[arn])["tasks"][0]
    assert described["lastStatus"] == "STOPPED"


def test_timeout(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "slow", {"main.sh": "echo started\nsleep 300\n"}, timeout=3)
    done = wait(mf, mf.tasks.queue(mf.project_id(), "slow", "{}", TaskOptions()).id, 60)
    assert (done.status, done.reason) == ("timeout", "timeout")


def test_a_redelivered_message_does_not_launch_twice(mf: Mayfly, serving: Serving, aws: AwsEmulator,
                                                     tmp_path: Path) -> None:
    push(mf, tmp_path, "once", {"main.sh": "echo ran\nsleep 2\n"})
    task = mf.tasks.queue(mf.project_id(), "once", "{}", TaskOptions())
    wait_running(mf, task.id)
    current = mf.tasks.get(mf.project_id(), task.id)
    mf.queues_for("aws-local").get("tasks").send(
        build_message(current, mf.codes.revision(mf.project_id(), "once"), mf.limits).dumps()
    )
    done = wait(mf, task.id)
    time.sleep(2)  # let the duplicate be received and dropped
    assert (done.status, done.attempt) == ("complete", 1)
    assert len(ecs_tasks_of(aws, mf, done)) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"ran\n"


def test_a_killed_runner_is_replaced_and_reattaches(mf: Mayfly, aws: AwsEmulator, home: Path,
                                                    tmp_path: Path) -> None:
    push(mf, tmp_path, "sleepy", {"main.sh": "echo start\nsleep 6\necho end\n"})
    control = Serving(mf, ["aws-local"], runners=False)
    control.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": "3"}

    def runner() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "mayfly.cli", "runner", "--target", "aws-local"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    first = runner()
    try:
        task = mf.tasks.queue(mf.project_id(), "sleepy", "{}", TaskOptions())
        wait_running(mf, task.id)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = runner()
        try:
            done = wait(mf, task.id, 90)
        finally:
            second.send_signal(signal.SIGINT)
            second.wait(20)
    finally:
        if first.poll() is None:
            first.kill()
        control.stop()
    assert (done.status, done.attempt, done.exit_code) == ("complete", 1, 0)
    assert len(ecs_tasks_of(aws, mf, done)) == 1
    events = mf.tasks.events(mf.project_id(), task.id)
    assert [(e.kind, e.applied) for e in events].count(("exited", True)) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"start\nend\n"
    assert json.loads(events[-1].data)["exit_code"] == 0


def test_secrets_are_refused_on_ecs_in_one_line(mf: Mayfly, serving: Serving, aws: AwsEmulator,
                                                tmp_path: Path) -> None:
    """Issue 13 item 6: ECS does not pass secrets yet, so queueing refuses, and a runner never launches one."""
    push(mf, tmp_path, "sec", {"main.sh": "echo never\n"}, secrets={"DB_PASSWORD": b"hunter2-ecs"})
    why = (
        "Mayfly does not pass secrets to ECS yet (Secrets Manager / SSM references are planned); "
        "run tasks with secrets on a Docker target"
    )
    with pytest.raises(Unsupported) as refused:
        mf.tasks.queue(mf.project_id(), "sec", "{}", TaskOptions())
    assert refused.value.message == f"target 'aws-local' cannot pass secrets: {why}"
    # A task that got past queueing anyway (say, queued before its target changed provider) fails its launch.
    mf.tasks.secrets_refusal = lambda target: None
    task = mf.tasks.queue(mf.project_id(), "sec", "{}", TaskOptions())
    done = wait(mf, task.id)
    assert (done.status, done.reason, done.attempt) == ("error", "launch_failed", 1)
    assert done.msg == f"target 'aws-local' (provider ecs) cannot pass secrets: {why}"
    assert ecs_tasks_of(aws, mf, done) == []
