"""Fallback targets and the circuit breaker end to end: the AWS emulator refuses, the task runs on local Docker.

The emulator answers RunTask on the ``aws-local`` target's cluster as ECS does when
it has no capacity (``failures``: "Capacity is unavailable ..."), the account's
quota is reached, it throttles past the provider's own retries (``ThrottlingException``;
the target's ``run_task_retries``/``run_task_backoff`` keep that short) or the service is
unavailable in the region (HTTP 503 ``ServiceUnavailable``); or it starts the task and
its image is not in the target's registry (the task stops with
``CannotPullContainerError ... not found``). Each time Mayfly moves the task to ``local``
with the failure's kind and it runs there exactly once (container starts counted from the
engine's own ``docker events``). A non-zero exit and a timeout never move. Two such
failures in a row open ``aws-local``'s breaker (``target list`` shows it) -- image pulls
that fail after ECS accepted the task included --, tasks then skip it without a launch;
after the cool-down it is half-open, one task goes through, and a launch that works
closes it.

Tasks are queued and inspected through the CLI (``task queue``, ``task show --events``,
``target list``), against a home served by one in-process server.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mayfly.cli.app import app
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home, Limits
from mayfly.core.serving import Serving
from mayfly.providers.ecs.emulator import AwsEmulator
from mayfly.providers.ecs.emulator import faults as ecs_faults
from mayfly.providers.ecs.emulator.tasks import LABEL
from mayfly.testing.tasks import wait_ended

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: Short enough to see the breaker close within the test, long enough to see it open.
COOLDOWN = 10.0
cli = CliRunner()


@pytest.fixture
def mf(aws: AwsEmulator, home: Path, runtime_images: dict[str, str], tmp_path: Path) -> Iterator[Mayfly]:
    limits = Limits(stop_grace_seconds=2.0, breaker_failures=2, breaker_cooldown=COOLDOWN)
    app_ = Mayfly(Home(home, limits), lambda n: RuntimeInfo(n, runtime_images[n], "sh main.sh"))
    settings = aws.bootstrap_target(f"aws-{os.urandom(3).hex()}")
    # One throttled RunTask retry, after at most 0.05 s: throttling moves the task in about a second.
    fast = {"stop_timeout": 2, "status_poll_seconds": 0.3, "run_task_retries": 1, "run_task_backoff": 0.05}
    app_.targets.add("aws-local", "ecs", {**settings, **fast}, capacity=4)
    scripts = (
        ("hello", "echo hello from $MAYFLY_TASK_ID\n"),
        ("fail", "echo failing\nexit 3\n"),
        ("slow", "sleep 60\n"),
    )
    for name, script in scripts:
        d = tmp_path / name
        d.mkdir()
        (d / "main.sh").write_text(script)
        app_.codes.push(app_.project_id(), name, d, runtime="shell", options=CodeOptions())
    yield app_
    aws.clear_faults()
    app_.close()


@pytest.fixture
def serving(mf: Mayfly) -> Iterator[Serving]:
    s = Serving(mf, ["aws-local", "local"])
    s.start()
    yield s
    s.stop()


def run_cli(*args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.stderr
    return result.stdout


#: An ECS launch (the emulator runs real containers) takes longer than a local one.
wait = partial(wait_ended, timeout=90)


def queue(code: str, targets: str) -> str:
    return run_cli("task", "queue", code, "--target", targets).strip()


def show(task_id: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(run_cli("task", "show", task_id, "--events", "--json"))
    return doc


def breaker_of(target: str) -> dict[str, Any]:
    doc = json.loads(run_cli("target", "list", "--json"))
    (found,) = [t["breaker"] for t in doc["targets"] if t["name"] == target]
    return dict(found)


def cluster(mf: Mayfly) -> str:
    return str(mf.targets.settings("aws-local")["cluster"])


def container_starts(docker_client: Any, since: int, task_ids: set[str], emulator: str) -> int:
    """Containers the engine started since ``since`` for these tasks (local) or for the emulator (ECS)."""
    until = int(time.time()) + 1
    starts = 0
    for ev in docker_client.events(
        since=since, until=until, filters={"type": "container", "event": "start"}, decode=True
    ):
        attrs = (ev.get("Actor") or {}).get("Attributes") or {}
        starts += attrs.get("mayfly.task") in task_ids or attrs.get(LABEL) == emulator
    return starts


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        ({"reason": ecs_faults.CAPACITY}, "capacity"),
        ({"reason": ecs_faults.QUOTA}, "quota"),
        ({"code": ecs_faults.THROTTLING[0], "message": ecs_faults.THROTTLING[1]}, "throttled"),
        (
            {"code": ecs_faults.SERVICE_UNAVAILABLE[0], "message": ecs_faults.SERVICE_UNAVAILABLE[1], "status": 503},
            "region",
        ),
        ({"pull": True}, "image"),
    ],
    ids=["no-capacity", "quota", "throttled", "region-unavailable", "image-missing"],
)
def test_a_refused_launch_moves_to_local_and_runs_once(
    mf: Mayfly, serving: Serving, aws: AwsEmulator, docker_client: Any, fault: dict[str, Any], kind: str
) -> None:
    if fault.get("pull"):
        aws.inject_missing_image(cluster(mf), times=None)  # RunTask works; the task's image pull fails
    else:
        aws.inject_fault(cluster(mf), **fault, times=None)
    since = int(time.time()) - 1
    task_id = queue("hello", "aws-local,local")
    done = wait(mf, task_id)
    assert (done.status, done.target, done.exit_code) == ("complete", "local", 0)
    assert b"hello from " + task_id.encode() in b"".join(mf.tasks.log(mf.project_id(), task_id))
    doc = show(task_id)
    assert doc["targets"] == ["aws-local", "local"]
    kinds = [(e["kind"], e["data"].get("kind")) for e in doc["events"]]
    # A task whose image pull fails was started (pending) on aws-local first; a refused launch was not.
    first = 1 if kind == "image" else 0
    assert kinds[:first] == [("started", None)] * first
    # (a quick container may report its exit without a "started" first)
    assert kinds[first : first + 2] == [("launch_failed", kind), ("moved", kind)]
    assert kinds[-1] == ("exited", None)
    assert {k for k, _ in kinds[first + 2 : -1]} <= {"started"}
    moved = doc["events"][first + 1]
    assert (moved["data"]["from"], moved["data"]["to"]) == ("aws-local", "local")
    # One container in all: none on the emulator (it refused), one on the local engine.
    assert container_starts(docker_client, since, {task_id}, aws.instance) == 1
    # Refusals and pulls are not retried by the provider; a throttled RunTask is (and botocore retries 503s).
    used = aws.backend.faults.used[cluster(mf)]
    assert used >= 2 if kind in ("throttled", "region") else used == 1


def test_a_non_zero_exit_never_moves(mf: Mayfly, serving: Serving) -> None:
    task_id = queue("fail", "local,aws-local")
    done = wait(mf, task_id)
    assert (done.status, done.reason, done.exit_code, done.target) == ("error", "exit", 3, "local")
    kinds = [e["kind"] for e in show(task_id)["events"]]
    assert "moved" not in kinds
    assert kinds[-1] == "exited"


def test_tasks_whose_image_is_missing_open_the_breaker(mf: Mayfly, serving: Serving, aws: AwsEmulator) -> None:
    # ECS accepts RunTask (the task is "started", pending) and only then fails the pull: that pending start
    # is no launch that works, so two such failures in a row still open the breaker.
    aws.inject_missing_image(cluster(mf), times=None)
    for _ in range(2):
        assert wait(mf, queue("hello", "aws-local,local")).target == "local"
    opened = breaker_of("aws-local")
    assert (opened["state"], opened["failures"], opened["last_kind"]) == ("open", 2, "image")


def test_a_timeout_never_moves(mf: Mayfly, serving: Serving) -> None:
    task_id = run_cli("task", "queue", "slow", "--target", "local,aws-local", "--timeout", "1").strip()
    done = wait(mf, task_id)
    assert (done.status, done.reason, done.target) == ("timeout", "timeout", "local")
    kinds = [e["kind"] for e in show(task_id)["events"]]
    assert "moved" not in kinds
    assert kinds[-1] == "exited"


def test_the_breaker_opens_skips_the_target_and_closes_after_a_launch_works(
    mf: Mayfly, serving: Serving, aws: AwsEmulator
) -> None:
    aws.inject_fault(cluster(mf), reason=ecs_faults.RESOURCE_FARGATE, times=None)
    assert breaker_of("aws-local")["state"] == "closed"
    for _ in range(2):  # breaker_failures=2: the second refusal in a row opens it
        assert wait(mf, queue("hello", "aws-local,local")).target == "local"
    opened = breaker_of("aws-local")
    assert (opened["state"], opened["failures"], opened["last_kind"]) == ("open", 2, "capacity")
    # Open: a task that has another target goes there without trying aws-local.
    skipped = wait(mf, queue("hello", "aws-local,local"))
    assert (skipped.status, skipped.target) == ("complete", "local")
    events = show(skipped.id)["events"]
    assert (events[0]["kind"], events[0]["data"]["kind"]) == ("moved", "breaker")
    assert "launch_failed" not in [e["kind"] for e in events]
    assert aws.backend.faults.used[cluster(mf)] == 2
    # The cloud recovers; after the cool-down the breaker is half-open and lets one task through.
    aws.clear_faults(cluster(mf))
    deadline = time.monotonic() + COOLDOWN + 30
    while breaker_of("aws-local")["state"] != "half-open":
        assert time.monotonic() < deadline, "the breaker never became half-open"
        time.sleep(0.5)
    trial = wait(mf, queue("hello", "aws-local,local"))
    assert (trial.status, trial.target) == ("complete", "aws-local")
    closed = breaker_of("aws-local")
    assert (closed["state"], closed["failures"], closed["open_until"]) == ("closed", 0, None)
