"""The emulator's pure parts, without Docker: image mapping, log lines, CloudWatch batches, container specs, backend."""

from __future__ import annotations

from typing import Any

import pytest

from mayfly.providers.ecs.emulator import cwlogs, images
from mayfly.providers.ecs.emulator.backend import EcsBackend
from mayfly.providers.ecs.emulator.containerspec import container_spec
from mayfly.providers.ecs.emulator.errors import EcsError
from mayfly.providers.ecs.emulator.model import Task
from mayfly.providers.emulation import logpump

REGION = "eu-west-1"


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("busybox", ["busybox"]),
        ("mayfly/runtime-shell:1", ["mayfly/runtime-shell:1"]),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v2",
            ["123456789012.dkr.ecr.eu-west-1.amazonaws.com/team/app:v2", "team/app:v2"],
        ),
        (
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mayfly/t1:runtime-python-3.11-1",
            [
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mayfly/t1:runtime-python-3.11-1",
                "mayfly/t1:runtime-python-3.11-1",
                "mayfly/runtime-python-3.11:1",
            ],
        ),
        (
            "registry.example.com:5000/x:runtime-shell-1",
            ["registry.example.com:5000/x:runtime-shell-1", "mayfly/runtime-shell:1"],
        ),
        ("localhost:5000/app", ["localhost:5000/app"]),
    ],
)
def test_image_candidates(reference: str, expected: list[str]) -> None:
    assert images.candidates(reference) == expected


def test_line_assembler_joins_partial_messages_and_keeps_the_last_line() -> None:
    lines: list[tuple[int, str]] = []
    assembler = logpump.LineAssembler(lambda ts, line: lines.append((ts, line)))
    assembler.feed(b"2026-01-02T03:04:05.123456789Z one\n")
    assembler.feed(b"2026-01-02T03:04:06.000000000Z two-a")  # a long line the engine split
    assembler.feed(b"2026-01-02T03:04:06.500000000Z two-b\nthree\n")
    assembler.feed(b"2026-01-02T03:04:07.250000000Z last, no newline")
    assembler.close()
    base = 1767323045000
    assert lines == [
        (base + 123, "one"),
        (base + 1000, "two-atwo-b"),
        (base + 1500, "three"),
        (base + 2250, "last, no newline"),
    ]


def test_cloudwatch_events_respect_putlogevents_limits() -> None:
    big = "é" * cwlogs.MAX_EVENT_BYTES  # two bytes each: split on character boundaries
    parts = cwlogs.split_message(big)
    assert "".join(parts) == big
    assert all(len(p.encode()) <= cwlogs.MAX_EVENT_BYTES for p in parts)
    events = [(i, "x" * 1000) for i in range(3000)]
    batches = cwlogs.batches(events)
    assert sum(len(b) for b in batches) == 3000
    assert all(sum(len(e["message"]) + cwlogs.EVENT_OVERHEAD for e in b) <= cwlogs.MAX_BATCH_BYTES for b in batches)


class Recorder:
    """A launcher that only records."""

    def __init__(self) -> None:
        self.launched: list[Task] = []
        self.stopped: list[Task] = []

    def launch(self, task: Task) -> None:
        self.launched.append(task)

    def stop(self, task: Task) -> None:
        self.stopped.append(task)


@pytest.fixture
def clock() -> list[float]:
    return [1_000_000.0]


@pytest.fixture
def backend(clock: list[float]) -> EcsBackend:
    backend = EcsBackend(Recorder(), clock=lambda: clock[0])
    backend.create_cluster(REGION, {"clusterName": "c", "capacityProviders": ["FARGATE"]})
    backend.register_task_definition(
        REGION,
        {
            "family": "f",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "1024",
            "memory": "2048",
            "containerDefinitions": [
                {
                    "name": "main",
                    "image": "img",
                    "command": ["a"],
                    "memory": 1024,
                    "user": "10001",
                    "stopTimeout": 5,
                    "environment": [{"name": "A", "value": "1"}, {"name": "URL", "value": "x"}],
                    "linuxParameters": {
                        "initProcessEnabled": True,
                        "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                    },
                }
            ],
        },
    )
    return backend


def run(backend: EcsBackend, **request: Any) -> dict[str, Any]:
    base = {
        "cluster": "c",
        "taskDefinition": "f",
        "launchType": "FARGATE",
        "networkConfiguration": {"awsvpcConfiguration": {"subnets": ["subnet-1"]}},
    }
    return backend.run_task(REGION, {**base, **request})


def test_container_spec_maps_the_definition_overrides_and_size(backend: EcsBackend) -> None:
    override = {
        "name": "main",
        "command": ["sh", "-c", "wget http://127.0.0.1:4566/x"],
        "environment": [{"name": "URL", "value": "http://localhost:4566/b/k?sig=1"}],
    }
    run(backend, overrides={"containerOverrides": [override]})
    launcher = backend.launcher
    assert isinstance(launcher, Recorder)
    task = launcher.launched[0]
    rewrites = {"http://127.0.0.1:4566": "http://172.17.0.1:4566", "http://localhost:4566": "http://172.17.0.1:4566"}
    spec = container_spec(task, host_cpus=0.5, labels={"l": "v"}, rewrites=rewrites)
    assert spec.command == ["sh", "-c", "wget http://172.17.0.1:4566/x"]
    assert spec.environment["URL"] == "http://172.17.0.1:4566/b/k?sig=1"
    assert spec.environment["A"] == "1"
    assert spec.environment["AWS_REGION"] == REGION
    assert (spec.memory_mb, spec.cpus, spec.user, spec.stop_timeout) == (1024, 0.5, "10001", 5)
    assert (spec.init, spec.cap_add, spec.cap_drop) == (True, ["CAP_NET_ADMIN"], ["ALL"])
    kwargs = spec.create_kwargs()
    assert kwargs["mem_limit"] == kwargs["memswap_limit"] == 1024 * 1024 * 1024
    assert kwargs["nano_cpus"] == 500_000_000
    assert spec.labels["com.amazonaws.ecs.task-arn"] == task.arn
    assert spec.labels["l"] == "v"


def test_client_token_idempotency(backend: EcsBackend) -> None:
    first = run(backend, clientToken="tok", startedBy="s")
    assert run(backend, clientToken="tok", startedBy="s")["tasks"][0]["taskArn"] == first["tasks"][0]["taskArn"]
    launcher = backend.launcher
    assert isinstance(launcher, Recorder)
    assert len(launcher.launched) == 1
    with pytest.raises(EcsError) as err:
        run(backend, clientToken="tok", startedBy="other")
    assert err.value.code == "ConflictException"
    assert err.value.body()["resourceIds"] == [first["tasks"][0]["taskArn"]]
    with pytest.raises(EcsError, match="clientToken"):
        run(backend, clientToken="x" * 65)


def test_stopped_tasks_are_forgotten_after_the_retention(backend: EcsBackend, clock: list[float]) -> None:
    arn = run(backend, clientToken="tok2")["tasks"][0]["taskArn"]
    launcher = backend.launcher
    assert isinstance(launcher, Recorder)
    task = launcher.launched[0]
    with backend.lock:
        task.exited(clock[0], 0, None, None)
        task.finished(clock[0])
    clock[0] += 3599
    assert backend.describe_tasks(REGION, {"cluster": "c", "tasks": [arn]})["tasks"][0]["lastStatus"] == "STOPPED"
    clock[0] += 2
    assert backend.describe_tasks(REGION, {"cluster": "c", "tasks": [arn]})["failures"] == [
        {"arn": arn, "reason": "MISSING"}
    ]
    # Its client token went with it: the same request now starts a new task.
    assert run(backend, clientToken="tok2")["tasks"][0]["taskArn"] != arn


def test_stop_before_launch_and_list_pagination(backend: EcsBackend) -> None:
    arns = [run(backend)["tasks"][0]["taskArn"] for _ in range(3)]
    pages = [backend.list_tasks(REGION, {"cluster": "c", "maxResults": 2})]
    pages.append(backend.list_tasks(REGION, {"cluster": "c", "maxResults": 2, "nextToken": pages[0]["nextToken"]}))
    assert [a for p in pages for a in p["taskArns"]] == arns
    assert "nextToken" not in pages[1]
    stopped = backend.stop_task(REGION, {"cluster": "c", "task": arns[0].rsplit("/", 1)[1], "reason": "r"})["task"]
    assert (stopped["desiredStatus"], stopped["stopCode"], stopped["stoppedReason"]) == (
        "STOPPED",
        "UserInitiated",
        "r",
    )
    launcher = backend.launcher
    assert isinstance(launcher, Recorder)
    assert [t.arn for t in launcher.stopped] == [arns[0]]
    with pytest.raises(EcsError, match="startedBy cannot be combined"):
        backend.list_tasks(REGION, {"cluster": "c", "startedBy": "x", "family": "f"})


class FakeNetworks:
    def __init__(self, ipam: list[dict[str, str]]) -> None:
        self.attrs = {"IPAM": {"Config": ipam}}

    def get(self, name: str) -> FakeNetworks:
        return self


class FakeDocker:
    def __init__(self, *ipam: dict[str, str]) -> None:
        self.networks = FakeNetworks(list(ipam))


@pytest.mark.parametrize(
    ("host", "ipam", "bind", "container_host"),
    [
        # Loopback plus the gateway, same port: nothing exposed on the LAN, containers reach it.
        ("127.0.0.1", {"Subnet": "127.0.0.0/8", "Gateway": "127.0.0.2"}, ["127.0.0.1", "127.0.0.2"], "127.0.0.2"),
        # No gateway listed (as this engine does): the subnet's first address.
        ("0.0.0.0", {"Subnet": "127.0.0.0/8"}, ["0.0.0.0"], "127.0.0.1"),
        # A gateway that is not on this host (Docker Desktop, a remote engine).
        ("127.0.0.1", {"Subnet": "198.51.100.0/24", "Gateway": "198.51.100.1"}, ["127.0.0.1"], "host.docker.internal"),
    ],
)
def test_network_plan(host: str, ipam: dict[str, str], bind: list[str], container_host: str) -> None:
    from mayfly.providers.emulation.network import plan

    reach = plan(FakeDocker(ipam), host, "bridge")
    assert (reach.bind, reach.container_host) == (bind, container_host)
    expected_hosts = {"host.docker.internal": "host-gateway"} if container_host == "host.docker.internal" else {}
    assert reach.extra_hosts == expected_hosts


def test_a_task_stopped_before_its_container_exists_stops_without_one(backend: EcsBackend) -> None:
    import time

    from mayfly.providers.ecs.emulator.tasks import DockerTasks

    class NoEngine:
        """An engine the launch must not need."""

        def info(self) -> dict[str, Any]:
            return {"NCPU": 2}

    arn = run(backend)["tasks"][0]["taskArn"]
    backend.stop_task(REGION, {"cluster": "c", "task": arn})
    launcher = backend.launcher
    assert isinstance(launcher, Recorder)
    runner = DockerTasks(backend, NoEngine(), logs=None, instance="unit")  # type: ignore[arg-type]
    runner.launch(launcher.launched[0])
    deadline = time.monotonic() + 10
    while (task := backend.describe_tasks(REGION, {"cluster": "c", "tasks": [arn]})["tasks"][0])[
        "lastStatus"
    ] != "STOPPED":
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    assert (task["stopCode"], task["containers"][0]["lastStatus"]) == ("UserInitiated", "STOPPED")
    assert "startedAt" not in task
