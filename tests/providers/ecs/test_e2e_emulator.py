"""The whole AWS path on the emulator and a real Docker engine.

control plane → SQS → runner → ECS API → container → boot script fetches code and
payload from S3 presigned URLs → result PUT to S3 → logs from CloudWatch → events
→ store. Plus cancel, timeout, a killed runner reattaching, and a redelivered
message not launching twice, and a secret that reaches the task as a file only.
"""

from __future__ import annotations

import base64
import hashlib
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
from mayfly.providers.ecs.emulator import AwsEmulator
from mayfly.providers.ecs.naming import started_by
from mayfly.testing.tasks import wait_ended

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def mf(aws: AwsEmulator, home: Path, runtime_images: dict[str, str]) -> Iterator[Mayfly]:
    defaults = {"shell": "sh main.sh", "python-3.11": "python3 main.py"}
    app = Mayfly(
        Home(home, Limits(stop_grace_seconds=2.0)), lambda n: RuntimeInfo(n, runtime_images[n], defaults.get(n))
    )
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


#: A launch through the emulator (real containers behind a cloud's API) takes longer than a local one.
wait = partial(wait_ended, timeout=90)


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
        found += ecs.list_tasks(
            cluster=cluster(mf), startedBy=started_by(f"mayfly-{task.id}-{attempt}"), desiredStatus=status
        )["taskArns"]
    return found


def test_a_task_runs_on_ecs_end_to_end(mf: Mayfly, serving: Serving, aws: AwsEmulator, tmp_path: Path) -> None:
    push(
        mf,
        tmp_path,
        "hello",
        {
            "main.py": (
                "import json, os\n"
                "p = json.load(open(os.environ['MAYFLY_PAYLOAD_FILE']))\n"
                "print('hello from ECS', p['n'])\n"
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
    # The log came back from CloudWatch Logs (awslogs is line based: the last line gains a newline).
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"hello from ECS 21\nlast line without newline\n"
    (arn,) = ecs_tasks_of(aws, mf, done)
    # Billed from the emulator's own pullStartedAt to its stop, under a minute: Fargate's 60 s minimum. The stop is
    # stoppedAt, or executionStoppedAt when the runner saw the container end while ECS still deprovisioned the task.
    (described,) = aws.client("ecs").describe_tasks(cluster=cluster(mf), tasks=[arn])["tasks"]
    (attempt,) = mf.costs.attempts(task.id)
    assert (attempt.target, attempt.provider, attempt.region) == ("aws-local", "ecs", "eu-west-1")
    assert attempt.started_at == pytest.approx(described["pullStartedAt"].timestamp(), abs=1e-3)
    assert attempt.stopped_at is not None
    stops = (described["executionStoppedAt"].timestamp(), described["stoppedAt"].timestamp())
    assert stops[0] - 1e-3 <= attempt.stopped_at <= stops[1] + 1e-3
    assert attempt.billed_seconds == 60.0
    assert attempt.cost == pytest.approx(60 * (attempt.cpu * 0.04048 + attempt.memory_mb / 1024 * 0.004445) / 3600)
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
    cancelled = wait(mf, long.id, timeout=60)
    assert (cancelled.status, cancelled.reason) == ("cancelled", "cancelled")
    (arn,) = ecs_tasks_of(aws, mf, cancelled)
    described = aws.client("ecs").describe_tasks(cluster=cluster(mf), tasks=[arn])["tasks"][0]
    assert described["lastStatus"] == "STOPPED"


def test_timeout(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "slow", {"main.sh": "echo started\nsleep 300\n"}, timeout=3)
    done = wait(mf, mf.tasks.queue(mf.project_id(), "slow", "{}", TaskOptions()).id, timeout=60)
    assert (done.status, done.reason) == ("timeout", "timeout")


def test_a_redelivered_message_does_not_launch_twice(
    mf: Mayfly, serving: Serving, aws: AwsEmulator, tmp_path: Path
) -> None:
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


def test_a_killed_runner_is_replaced_and_reattaches(mf: Mayfly, aws: AwsEmulator, home: Path, tmp_path: Path) -> None:
    push(mf, tmp_path, "sleepy", {"main.sh": "echo start\nsleep 6\necho end\n"})
    control = Serving(mf, ["aws-local"], runners=False)
    control.start()
    env = {**os.environ, "MAYFLY_HOME": str(home), "MAYFLY_LEASE_SECONDS": "3"}

    def runner() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "mayfly.cli", "runner", "--target", "aws-local"],
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
    assert len(ecs_tasks_of(aws, mf, done)) == 1
    events = mf.tasks.events(mf.project_id(), task.id)
    assert [(e.kind, e.applied) for e in events].count(("exited", True)) == 1
    assert b"".join(mf.tasks.log(mf.project_id(), task.id)) == b"start\nend\n"
    assert json.loads(events[-1].data)["exit_code"] == 0


SECRET = b"hunter2-ecs-\x01-7d41c0"


def test_a_task_reads_its_secret_from_a_file_and_the_value_is_nowhere_else(
    mf: Mayfly, serving: Serving, aws: AwsEmulator, home: Path, tmp_path: Path
) -> None:
    """Issue 13 item 6: ECS resolves an SSM SecureString at start; the boot agent moves it to a 0400 file."""
    digest = hashlib.sha256(SECRET).hexdigest()
    push(
        mf,
        tmp_path,
        "sec",
        {
            "main.sh": (
                'set -- $(sha256sum "$MAYFLY_SECRETS_DIR/DB_PASSWORD"); echo "sha $1"\n'
                'set -- $(ls -ln "$MAYFLY_SECRETS_DIR/DB_PASSWORD"); echo "file $1 $3"\n'
                'set -- $(ls -lnd "$MAYFLY_SECRETS_DIR"); echo "dir $1"\n'
                'echo "in env: $(env | grep -c -e MAYFLY_SECRET_ -e hunter2)"\n'
            )
        },
        secrets={"DB_PASSWORD": SECRET},
    )
    task = mf.tasks.queue(mf.project_id(), "sec", "{}", TaskOptions())
    message = build_message(
        mf.tasks.get(mf.project_id(), task.id), mf.codes.revision(mf.project_id(), "sec"), mf.limits
    ).dumps()
    done = wait(mf, task.id)
    log = b"".join(mf.tasks.log(mf.project_id(), task.id)).decode()
    assert (done.status, done.exit_code) == ("complete", 0), (done.msg, log)
    assert log == f"sha {digest}\nfile -r-------- 10001\ndir dr-x------\nin env: 0\n"

    needles = [b"hunter2-ecs", base64.b64encode(SECRET)]
    (arn,) = ecs_tasks_of(aws, mf, done)
    ecs = aws.client("ecs")
    described = ecs.describe_tasks(cluster=cluster(mf), tasks=[arn])["tasks"][0]  # holds the RunTask overrides
    definition = ecs.describe_task_definition(taskDefinition=described["taskDefinitionArn"])
    assert [s["name"] for s in definition["taskDefinition"]["containerDefinitions"][0]["secrets"]] == [
        "MAYFLY_SECRET_DB_PASSWORD"
    ]
    logs = aws.client("logs")
    group = mf.targets.settings("aws-local")["log_group"]
    events = logs.filter_log_events(logGroupName=group)["events"]
    seen = {
        "task definition": json.dumps(definition, default=str).encode(),
        "RunTask overrides and tags": json.dumps(described, default=str).encode(),
        "SQS message": message.encode(),
        "CloudWatch": json.dumps(events).encode(),
        "task log": log.encode(),
    }
    assert "sha" in json.dumps(events)
    for where, data in seen.items():
        assert not any(n in data for n in needles), where
    for path in home.rglob("*"):
        if path.is_file():
            assert not any(n in path.read_bytes() for n in needles), path
    # The attempt's parameter goes with the attempt (the runner removes it once it ended).
    ssm = aws.client("ssm")
    deadline = time.monotonic() + 30
    while ssm.get_parameters_by_path(Path="/mayfly/aws-local", Recursive=True)["Parameters"]:
        assert time.monotonic() < deadline, "the secret parameter was not deleted"
        time.sleep(0.2)


def test_a_missing_parameter_fails_the_task_like_ecs(
    aws: AwsEmulator, mf: Mayfly, runtime_images: dict[str, str]
) -> None:
    """The emulator resolves ``secrets`` at start as ECS does: an unreadable one stops the task, no container."""
    settings = mf.targets.settings("aws-local")
    ecs = aws.client("ecs")
    definition = ecs.register_task_definition(
        family="mayfly-missing-secret",
        requiresCompatibilities=["FARGATE"],
        networkMode="awsvpc",
        cpu="256",
        memory="512",
        executionRoleArn=settings["execution_role_arn"],
        containerDefinitions=[
            {
                "name": "task",
                "image": runtime_images["shell"],
                "essential": True,
                "command": ["/usr/local/bin/mayfly-boot", "echo never"],
                "secrets": [
                    {"name": "MAYFLY_SECRET_X", "valueFrom": "arn:aws:ssm:eu-west-1:123456789012:parameter/nope/X"}
                ],
            }
        ],
    )["taskDefinition"]["taskDefinitionArn"]
    arn = ecs.run_task(
        cluster=cluster(mf),
        taskDefinition=definition,
        launchType="FARGATE",
        networkConfiguration={"awsvpcConfiguration": {"subnets": settings["subnets"]}},
    )["tasks"][0]["taskArn"]
    deadline = time.monotonic() + 30
    while (task := ecs.describe_tasks(cluster=cluster(mf), tasks=[arn])["tasks"][0])["lastStatus"] != "STOPPED":
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert task["stoppedReason"].startswith(
        "ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval failed: "
        "unable to retrieve secrets from ssm"
    )
    assert task["stopCode"] == "TaskFailedToStart"
