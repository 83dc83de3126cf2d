"""End to end on the real Docker engine: control plane → embedded queue → runner → container → events → store.

Concurrency is sampled from the engine itself (containers labelled with the code),
never from Mayfly's own store.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home, Limits
from mayfly.core.errors import RuntimeNotFound
from mayfly.core.messages import TaskMessage
from mayfly.core.router import build_message
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions
from mayfly.testing.tasks import wait_ended

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def mf(home: Path, runtime_images: dict[str, str]) -> Iterator[Mayfly]:
    defaults = {"shell": "sh main.sh", "python-3.11": "python3 main.py"}

    def resolve(name: str) -> RuntimeInfo:
        if name not in runtime_images:
            raise RuntimeNotFound(f"unknown runtime {name!r}")
        return RuntimeInfo(name, runtime_images[name], defaults.get(name))

    limits = Limits(stop_grace_seconds=2.0, max_log_bytes=64 * 1024)
    app = Mayfly(Home(home, limits), resolve)
    yield app
    app.close()


@pytest.fixture
def serving(mf: Mayfly, docker_client) -> Iterator[Serving]:  # type: ignore[no-untyped-def]
    s = Serving(mf, ["local"])
    s.start()
    yield s
    s.stop()
    for c in docker_client.containers.list(all=True, sparse=True, filters={"label": f"mayfly.home={mf.home_id}"}):
        c.remove(force=True)


def push(mf: Mayfly, tmp_path: Path, name: str, files: dict[str, str], runtime: str = "shell", **opts: object) -> None:
    d = tmp_path / name
    d.mkdir()
    for fname, text in files.items():
        (d / fname).write_text(text)
    mf.codes.push(mf.project_id(), name, d, runtime=runtime, options=CodeOptions(**opts))  # type: ignore[arg-type]


def log_of(mf: Mayfly, task_id: str) -> bytes:
    return b"".join(mf.tasks.log(mf.project_id(), task_id))


def containers(docker_client, mf: Mayfly, **labels: str) -> list:  # type: ignore[no-untyped-def,type-arg]
    """This home's containers with these labels, once the runner has had time to remove finished ones.

    The runner records the exit before it removes the container (so a crash in between loses
    nothing); the task is terminal a moment before its container is gone.
    """
    flt = [f"mayfly.home={mf.home_id}"] + [f"{k}={v}" for k, v in labels.items()]
    deadline = time.monotonic() + 10
    while True:
        found = docker_client.containers.list(all=True, sparse=True, filters={"label": flt})
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_python_task_reads_its_payload_and_writes_a_result(
    mf: Mayfly, serving: Serving, tmp_path: Path, docker_client
) -> None:  # type: ignore[no-untyped-def]
    push(
        mf,
        tmp_path,
        "hello",
        {
            "main.py": (
                "import json, os\n"
                "p = json.load(open(os.environ['MAYFLY_PAYLOAD_FILE']))\n"
                "print('n is', p['n'])\n"
                "result = {'double': p['n'] * 2, 'uid': os.getuid(), 'cwd': os.getcwd()}\n"
                "json.dump(result, open('/mayfly/result.json', 'w'))\n"
            )
        },
        runtime="python-3.11",
    )
    task = mf.tasks.queue(mf.project_id(), "hello", '{"n": 21}', TaskOptions())
    done = wait_ended(mf, task.id)
    assert (done.status, done.exit_code, done.reason, done.attempt) == ("complete", 0, None, 1)
    assert done.to_json()["result"] == {"double": 42, "uid": 10001, "cwd": "/mayfly/task"}
    assert log_of(mf, task.id) == b"n is 21\n"
    assert done.start_time
    assert done.end_time
    assert done.duration_ms is not None
    assert containers(docker_client, mf, **{"mayfly.task": task.id}) == []


def test_exit_codes_propagate(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "fail", {"main.sh": "echo about to fail >&2\nexit 3\n"})
    done = wait_ended(mf, mf.tasks.queue(mf.project_id(), "fail", "{}", TaskOptions()).id)
    assert (done.status, done.reason, done.exit_code, done.msg) == ("error", "exit", 3, "exited with code 3")
    assert log_of(mf, done.id) == b"about to fail\n"


def test_max_concurrency_is_never_exceeded(mf: Mayfly, serving: Serving, tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    push(mf, tmp_path, "two", {"main.sh": "sleep 1\n"}, max_concurrency=2)
    ids = [mf.tasks.queue(mf.project_id(), "two", "{}", TaskOptions()).id for _ in range(6)]
    peak, running = 0, []
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            # sparse: the engine's list only, no inspect per container (which races with removal)
            # this home's containers only: other suites may run a code called "two" on the same engine
            labels = [f"mayfly.home={mf.home_id}", "mayfly.code=two"]
            now = docker_client.containers.list(sparse=True, filters={"label": labels, "status": "running"})
            running.append(len(now))
            peak = max(peak, len(now))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        finished = [wait_ended(mf, i, 90) for i in ids]
    finally:
        stop.set()
        sampler.join()
    assert [t.status for t in finished] == ["complete"] * 6
    assert peak == 2, running  # the limit was reached, and never passed
    assert len(running) > 20


def test_timeout_stops_the_container_and_keeps_the_log(
    mf: Mayfly, serving: Serving, tmp_path: Path, docker_client
) -> None:  # type: ignore[no-untyped-def]
    push(mf, tmp_path, "slow", {"main.sh": "echo started\nsleep 300\n"}, timeout=2)
    task = mf.tasks.queue(mf.project_id(), "slow", "{}", TaskOptions())
    done = wait_ended(mf, task.id, 30)
    assert (done.status, done.reason) == ("timeout", "timeout")
    assert log_of(mf, task.id) == b"started\n"
    assert done.duration_ms is not None
    assert done.duration_ms < 2000 + 2000 + 5000
    assert containers(docker_client, mf, **{"mayfly.task": task.id}) == []


def test_cancel_a_running_task(mf: Mayfly, serving: Serving, tmp_path: Path, docker_client) -> None:  # type: ignore[no-untyped-def]
    push(mf, tmp_path, "long", {"main.sh": "echo up\nsleep 300\n"})
    task = mf.tasks.queue(mf.project_id(), "long", "{}", TaskOptions())
    deadline = time.monotonic() + 30
    while mf.tasks.get(mf.project_id(), task.id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    # The container of a real task, as the engine sees it: every hardening setting is there.
    (summary,) = containers(docker_client, mf, **{"mayfly.task": task.id})
    info = docker_client.api.inspect_container(summary.id)
    host = info["HostConfig"]
    assert info["Config"]["User"] == "10001:10001"
    assert (host["CapDrop"], host["SecurityOpt"], host["ReadonlyRootfs"]) == (["ALL"], ["no-new-privileges"], True)
    assert host["PidsLimit"] > 0
    assert host["Memory"] == host["MemorySwap"] == 512 * 1024 * 1024
    assert host["RestartPolicy"]["Name"] in ("", "no")
    assert [m["Destination"] for m in info["Mounts"]] == ["/mayfly"]
    assert "docker.sock" not in json.dumps(info)
    assert host["NetworkMode"] != "host" and host["PidMode"] == "" and host["IpcMode"] != "host"  # noqa: PT018
    asked = mf.tasks.cancel(mf.project_id(), task.id)
    assert asked.cancel_requested
    assert asked.status == "running"
    done = wait_ended(mf, task.id, 30)
    assert (done.status, done.reason) == ("cancelled", "cancelled")
    assert containers(docker_client, mf, **{"mayfly.task": task.id}) == []


def test_a_redelivered_message_does_not_launch_twice(
    mf: Mayfly, serving: Serving, tmp_path: Path, docker_client
) -> None:  # type: ignore[no-untyped-def]
    push(mf, tmp_path, "once", {"main.sh": "echo ran\nsleep 1\n"})
    task = mf.tasks.queue(mf.project_id(), "once", "{}", TaskOptions())
    deadline = time.monotonic() + 30
    while mf.tasks.get(mf.project_id(), task.id).status == "queued" and time.monotonic() < deadline:
        time.sleep(0.02)
    # Send the same (task, attempt) message again, as a queue's at-least-once delivery may.
    current = mf.tasks.get(mf.project_id(), task.id)
    rev = mf.codes.revision(mf.project_id(), "once")
    msg: TaskMessage = build_message(current, rev, mf.limits)
    mf.queues_for("local").get("tasks").send(msg.dumps())
    done = wait_ended(mf, task.id)
    time.sleep(1.0)  # let the duplicate be handled
    assert (done.status, done.attempt) == ("complete", 1)
    assert log_of(mf, task.id) == b"ran\n"
    assert mf.queues_for("local").get("tasks").depth() == 0
    kinds = [(e.kind, e.applied) for e in mf.tasks.events(mf.project_id(), task.id)]
    assert kinds.count(("exited", True)) == 1


def test_oom_is_reported(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(
        mf,
        tmp_path,
        "hog",
        {"main.py": "x = bytearray(400 * 1024 * 1024)\nprint('survived')\n"},
        runtime="python-3.11",
        memory_mb=64,
    )
    done = wait_ended(mf, mf.tasks.queue(mf.project_id(), "hog", "{}", TaskOptions()).id)
    assert (done.status, done.reason) == ("error", "oom")


def test_a_long_log_is_capped_with_a_marker(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "chatty", {"main.sh": "yes 0123456789 | head -c 1000000\n"})
    done = wait_ended(mf, mf.tasks.queue(mf.project_id(), "chatty", "{}", TaskOptions()).id)
    log = log_of(mf, done.id)
    assert done.status == "complete"
    assert done.log_truncated
    assert done.log_size == 64 * 1024
    assert log.startswith(b"0123456789\n" * 100)
    assert log.endswith(b"\n[mayfly: log truncated at 65536 bytes; 934464 more bytes dropped]\n")


def test_every_line_of_a_fast_exit_is_kept(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "lines", {"main.sh": "seq 1 10000\nprintf 'last line without newline'\n"})
    done = wait_ended(mf, mf.tasks.queue(mf.project_id(), "lines", "{}", TaskOptions()).id)
    expected = "".join(f"{i}\n" for i in range(1, 10001)) + "last line without newline"
    assert log_of(mf, done.id).decode() == expected


def test_bad_result_json_is_kept_as_text(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "res", {"main.sh": "echo 'not json' > /mayfly/result.json\n"})
    done = wait_ended(mf, mf.tasks.queue(mf.project_id(), "res", "{}", TaskOptions()).id)
    assert done.status == "complete"
    assert json.loads(done.result or "null") == "not json\n"


def test_a_result_over_its_cap_is_refused_and_the_exit_is_kept(mf: Mayfly, serving: Serving, tmp_path: Path) -> None:
    push(mf, tmp_path, "big", {"main.sh": "head -c 2000000 /dev/zero | tr '\\0' 'x' > /mayfly/result.json\nexit 0\n"})
    done = wait_ended(mf, mf.tasks.queue(mf.project_id(), "big", "{}", TaskOptions()).id)
    assert (done.status, done.exit_code, done.result) == ("complete", 0, None)
    assert done.msg is not None
    assert done.msg.startswith("result not kept: ")
    assert "1048576" in done.msg or "1 MiB" in done.msg
