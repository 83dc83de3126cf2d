"""The shared DescribeTasks poller: batching, sharing between watchers, single flight, consistency grace.

The fetch function here is the poller's own injection point (what the provider
wires to DescribeTasks); it answers like DescribeTasks for tasks it knows.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from mayfly.providers.ecs.poller import TaskPoller

CLUSTER = "c1"


def arn(i: int, cluster: str = CLUSTER) -> str:
    return f"arn:aws:ecs:eu-west-1:123456789012:task/{cluster}/{i:032x}"


def handle(i: int, cluster: str = CLUSTER) -> str:
    return f"{cluster}::{arn(i, cluster)}"


def parse(h: str) -> tuple[str, str]:
    cluster, _, task_arn = h.rpartition("::")
    return cluster, task_arn


class Ecs:
    """Tasks by ARN, answered like DescribeTasks; records every call."""

    def __init__(self, known: set[str]) -> None:
        self.known = known
        self.calls: list[tuple[str, list[str]]] = []
        self.gate: threading.Event | None = None
        self.entered = threading.Event()

    def __call__(self, cluster: str, arns: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        self.calls.append((cluster, list(arns)))
        self.entered.set()
        if self.gate is not None:
            self.gate.wait()
        tasks = [{"taskArn": a, "lastStatus": "RUNNING"} for a in arns if a in self.known]
        failures = [{"arn": a, "reason": "MISSING"} for a in arns if a not in self.known]
        return tasks, failures


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_watched_tasks_are_refreshed_together_in_batches_of_100() -> None:
    ecs = Ecs({arn(i) for i in range(250)})
    clock = Clock()
    poller = TaskPoller(ecs, parse, interval=2.0, clock=clock)
    watches = [poller.watching(handle(i)) for i in range(250)]
    for w in watches:
        w.__enter__()

    poller.get([handle(0)], 2.0)
    assert [len(a) for _, a in ecs.calls] == [100, 100, 50]
    # Every other watcher finds its task fresh: no more calls within the interval.
    for i in range(250):
        assert poller.get([handle(i)], 2.0)[handle(i)].task is not None
    assert len(ecs.calls) == 3
    clock.now += 2.0
    poller.get([handle(7)], 2.0)
    assert len(ecs.calls) == 6
    for w in watches:
        w.__exit__(None, None, None)


def test_tasks_are_grouped_by_cluster() -> None:
    ecs = Ecs({arn(1), arn(2, "c2")})
    poller = TaskPoller(ecs, parse, interval=2.0, clock=Clock())
    found = poller.get([handle(1), handle(2, "c2"), handle(3)], 2.0)
    assert sorted(c for c, _ in ecs.calls) == ["c1", "c2"]
    assert found[handle(1)].task is not None
    assert found[handle(2, "c2")].task is not None
    assert found[handle(3)].task is None


def test_max_age_zero_forces_a_fresh_description() -> None:
    ecs = Ecs({arn(1)})
    poller = TaskPoller(ecs, parse, interval=2.0, clock=Clock())  # time never moves
    poller.get([handle(1)], 2.0)
    poller.get([handle(1)], 2.0)
    assert len(ecs.calls) == 1
    poller.get([handle(1)], 0)
    assert len(ecs.calls) == 2


def test_concurrent_callers_wait_for_one_refresh_and_share_the_next() -> None:
    ecs = Ecs({arn(i) for i in range(40)})
    ecs.gate = threading.Event()
    poller = TaskPoller(ecs, parse, interval=2.0, clock=Clock())
    first = threading.Thread(target=poller.get, args=([handle(0)], 2.0))
    first.start()
    assert ecs.entered.wait(10)  # the first caller's refresh is in flight
    others = [threading.Thread(target=poller.get, args=([handle(i)], 2.0)) for i in range(1, 40)]
    for t in others:
        t.start()
    while poller.queued < 39:  # until every other caller has queued its task and waits
        time.sleep(0.001)
    ecs.gate.set()
    first.join()
    for t in others:
        t.join()
    # One call for the first caller, one for all 39 that arrived while it ran.
    assert [sorted(a) for _, a in ecs.calls] == [[arn(0)], sorted(arn(i) for i in range(1, 40))]


def test_missing_right_after_a_launch_is_not_believed_within_the_grace_period() -> None:
    ecs = Ecs(set())  # DescribeTasks does not know the new task yet
    clock = Clock()
    poller = TaskPoller(ecs, parse, interval=2.0, clock=clock, grace=60.0)
    poller.seed(handle(1), {"taskArn": arn(1), "lastStatus": "PROVISIONING"})
    clock.now += 10
    assert poller.get([handle(1)], 2.0)[handle(1)].task == {"taskArn": arn(1), "lastStatus": "PROVISIONING"}
    clock.now += 60
    assert poller.get([handle(1)], 2.0)[handle(1)].task is None


def test_an_error_reaches_the_caller_and_the_next_caller_tries_again() -> None:
    calls: list[int] = []

    def failing(cluster: str, arns: list[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        calls.append(1)
        raise RuntimeError("throttled")

    poller = TaskPoller(failing, parse, interval=2.0, clock=Clock())
    for _ in range(2):
        with pytest.raises(RuntimeError, match="throttled"):
            poller.get([handle(1)], 2.0)
    assert len(calls) == 2
