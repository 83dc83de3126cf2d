"""One server and one runner per target on a home; a --remote-runner target served by ``mayfly runner``.

Issue 13 item 1: two ``mayfly server`` processes on one home ran tasks up to four times
(the server lock was shared). Now the second is refused with one line and exit 4, and so
is a ``mayfly runner`` for a target the server already runs; N tasks give exactly N
container starts, counted on the engine's own event stream. A runner started before the
server keeps its target; the server's embedded runner takes over when it exits.

Issue 13 item 7: ``mayfly runner --target T`` for a target added with ``--remote-runner``
printed its banner and took no work; now it runs the target's tasks.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import httpx
import pytest

from mayfly.cli.context import resolve_runtime
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.config import Home
from mayfly.core.homelock import held, runner_lock

pytestmark = [pytest.mark.docker, pytest.mark.slow]

TASKS = 12


def _env(home: Path) -> dict[str, str]:
    env = {**os.environ, "MAYFLY_HOME": str(home)}
    env.pop("MAYFLY_URL", None)
    env.pop("MAYFLY_DATABASE_URL", None)
    return env


def _mayfly(home: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mayfly.cli", *args],
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _refused(proc: subprocess.Popen[str], what: str) -> None:
    """The process exits by itself with rc 4 and one line naming what runs and who holds it."""
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail(f"not refused: {what} kept running beside the first")
    assert proc.returncode == 4, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert f"{what} already runs on" in lines[0]
    assert "pid " in lines[0]


def _setup(home: Path, image: str) -> Home:
    mf = Mayfly(Home(home), resolve_runtime)
    try:
        mf.codes.register(mf.project_id(), "hello", image, CodeOptions(command="echo hi"))
        return mf.home
    finally:
        mf.close()


@contextmanager
def _engine_starts(home: Home) -> Iterator[list[str]]:
    """Container starts of this home, streamed from the engine while the block runs (it keeps few past events)."""
    out = home.root.parent / "events.log"
    since = str(int(time.time()) - 1)  # replayed from the engine's buffer: nothing is missed while it attaches
    with out.open("w") as fh:
        proc = subprocess.Popen(
            [
                "docker",
                "events",
                "--since",
                since,
                "--filter",
                f"label=mayfly.home={home.id}",
                "--filter",
                "type=container",
                "--filter",
                "event=start",
                "--format",
                "{{json .Actor.Attributes}}",
            ],
            stdout=fh,
        )
    starts: list[str] = []
    try:
        yield starts
    finally:
        time.sleep(1.0)  # the last start's event reaches the stream
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
        for line in out.read_text().splitlines():
            attrs = json.loads(line)
            starts.append(f"{attrs['mayfly.task']}/{attrs['mayfly.attempt']}")


def _queue(srv, n: int, target: str | None = None) -> list[str]:  # type: ignore[no-untyped-def]
    body: dict[str, object] = {"code_name": "hello", "payloads": [{"n": i} for i in range(n)]}
    if target:
        body["target"] = target
    resp = httpx.post(f"{srv.url}/v1/tasks/bulk", json=body, headers=srv.bearer, timeout=30)
    assert resp.status_code == 201, resp.text
    return [t["id"] for t in resp.json()["tasks"]]


def _wait_done(srv, ids: list[str], timeout: float = 120) -> list[dict]:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        tasks = [httpx.get(f"{srv.url}/v1/tasks/{i}", headers=srv.bearer, timeout=30).json() for i in ids]
        if all(t["status"] in ("complete", "error", "cancelled", "timeout") for t in tasks):
            return tasks
        if time.monotonic() > deadline:
            pytest.fail(f"tasks did not end: {[t['status'] for t in tasks]}")
        time.sleep(0.2)


def _wait_until_held(path: Path, proc: subprocess.Popen[str]) -> None:
    """Until ``proc`` holds the lock at ``path`` (it has started serving)."""
    deadline = time.monotonic() + 60
    while not held(path):
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"the runner never took its lock: {proc.communicate()[1] if proc.poll() is not None else ''}")
        time.sleep(0.05)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def test_second_server_and_runner_are_refused_and_tasks_start_once(
    tmp_path: Path, busybox_image: str, start_server: Callable[..., AbstractContextManager]
) -> None:
    home = _setup(tmp_path / "home", busybox_image)
    with start_server(tmp_path, "default") as srv, _engine_starts(home) as starts:
        _refused(_mayfly(home.root, "server", "--port", "0"), "a mayfly server")
        _refused(_mayfly(home.root, "runner", "--target", "local"), "a runner for target 'local'")
        ids = _queue(srv, TASKS)
        tasks = _wait_done(srv, ids)
    assert [t["status"] for t in tasks] == ["complete"] * TASKS
    assert sorted(starts) == sorted(f"{i}/1" for i in ids)  # exactly one container start per task


def test_runner_started_first_keeps_its_target_then_the_server_takes_over(
    tmp_path: Path, busybox_image: str, start_server: Callable[..., AbstractContextManager]
) -> None:
    home = _setup(tmp_path / "home", busybox_image)
    runner = _mayfly(home.root, "runner", "--target", "local")
    try:
        _wait_until_held(runner_lock(home.root, "local").path, runner)
        with start_server(tmp_path, "default") as srv, _engine_starts(home) as starts:
            first = _queue(srv, 3)
            assert [t["status"] for t in _wait_done(srv, first)] == ["complete"] * 3
            _stop(runner)
            assert runner.returncode == 0, runner.stderr.read() if runner.stderr else ""
            second = _queue(srv, 3)  # the server's own runner has taken over the target
            assert [t["status"] for t in _wait_done(srv, second)] == ["complete"] * 3
    finally:
        _stop(runner)
    assert sorted(starts) == sorted(f"{i}/1" for i in first + second)


def test_runner_serves_a_remote_runner_target(
    tmp_path: Path, busybox_image: str, start_server: Callable[..., AbstractContextManager]
) -> None:
    home = _setup(tmp_path / "home", busybox_image)
    add = subprocess.run(
        [sys.executable, "-m", "mayfly.cli", "target", "add", "edge", "--provider", "docker", "--remote-runner"],
        env=_env(home.root),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert add.returncode == 0, add.stderr
    with start_server(tmp_path, "default") as srv:
        runner = _mayfly(home.root, "runner", "--target", "edge")
        try:
            ids = _queue(srv, 2, target="edge")
            tasks = _wait_done(srv, ids, timeout=60)
        finally:
            _stop(runner)
    assert [t["status"] for t in tasks] == ["complete", "complete"]


def test_runner_capacity_bounds_how_many_tasks_the_servers_runner_takes_at_once(
    tmp_path: Path, busybox_image: str, start_server: Callable[..., AbstractContextManager]
) -> None:
    """``mayfly server --runner-capacity 1`` beside a target of capacity 8: its runner runs one task at a time."""
    home = _setup(tmp_path / "home", busybox_image)
    mf = Mayfly(home, resolve_runtime)
    try:
        mf.codes.register(mf.project_id(), "nap", busybox_image, CodeOptions(command="sleep 1"))
        assert mf.targets.get("local").capacity > 1
    finally:
        mf.close()
    with start_server(tmp_path, "default", args=["--runner-capacity", "1"]) as srv:
        resp = httpx.post(
            f"{srv.url}/v1/tasks/bulk", json={"code_name": "nap", "payloads": [{}] * 3}, headers=srv.bearer, timeout=30
        )
        assert resp.status_code == 201, resp.text
        ids = [t["id"] for t in resp.json()["tasks"]]
        assert {t["status"] for t in _wait_done(srv, ids)} == {"complete"}
    mf = Mayfly(home, resolve_runtime)
    try:
        runs = sorted((t.start_time, t.end_time) for t in (mf.tasks.get(mf.project_id(), i) for i in ids))
    finally:
        mf.close()
    # One after another: each started once the one before it had ended.
    assert all(start is not None and end is not None for start, end in runs)
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(runs))
