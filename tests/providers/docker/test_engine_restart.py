"""A Docker engine restart under a real ``mayfly server``: an infrastructure failure, not the tasks' own.

The test never touches the shared system engine: it starts a private ``dockerd``
(its own data root, exec root, socket, cgroup parent, containerd namespace and a
bridge with a random name that it deletes afterwards; no iptables), imports the
busybox test image into it, and points the server at it with ``DOCKER_HOST``.
Container starts are counted on that engine by a streamed ``docker events``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import httpx
import pytest

pytestmark = [pytest.mark.docker, pytest.mark.slow]

IMAGE = "mayfly-test/busybox:latest"
CHANGES = ["USER 10001:10001", "WORKDIR /mayfly/task", "ENV PATH=/bin:/usr/bin"]


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class PrivateEngine:
    """A dockerd of the test's own, sharing nothing with the system engine."""

    def __init__(self) -> None:
        # Short paths: containerd's socket lives under the exec root (unix sockets allow ~108 bytes).
        self.dir = Path(tempfile.mkdtemp(prefix="mfd", dir="/tmp"))
        self.bridge = f"mfd{secrets.token_hex(4)}"[:15]
        self.url = f"unix://{self.dir}/docker.sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "dockerd.log"

    def create_bridge(self) -> None:
        used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True, check=True).stdout
        free = [n for n in range(20, 250) if f"10.213.{n}." not in used]
        net = secrets.choice(free)
        _ip("link", "add", "name", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.213.{net}.1/29", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def start(self) -> None:
        args = [
            "dockerd",
            f"--data-root={self.dir}/data",
            f"--exec-root={self.dir}/exec",
            f"--pidfile={self.dir}/docker.pid",
            f"--host={self.url}",
            f"--bridge={self.bridge}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--userland-proxy=false",
            f"--cgroup-parent={self.bridge}",
            f"--containerd-namespace={self.bridge}",
            f"--containerd-plugins-namespace={self.bridge}p",
        ]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=out, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            assert self.proc.poll() is None, f"private dockerd exited:\n{self.log.read_text()[-3000:]}"
            try:
                with docker.APIClient(base_url=self.url, version="auto", timeout=5) as client:
                    client.ping()
                return
            except docker.errors.DockerException:
                assert time.monotonic() < deadline, f"private dockerd did not answer:\n{self.log.read_text()[-3000:]}"
                time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, as ``systemctl stop docker`` does: the engine stops its containers and exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def client(self) -> docker.APIClient:
        return docker.APIClient(base_url=self.url, version="auto", timeout=60)

    def destroy(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.stop()
        # Only processes started for this engine mention its directory (a managed containerd, its shims).
        for pid in _pids_mentioning(str(self.dir)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in reversed(_mounts_under(self.dir)):
            subprocess.run(["umount", "-l", mount], capture_output=True, check=False)
        with contextlib.suppress(subprocess.CalledProcessError):
            _ip("link", "del", self.bridge)
        shutil.rmtree(self.dir, ignore_errors=True)


def _pids_mentioning(text: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


def _mounts_under(root: Path) -> list[str]:
    lines = Path("/proc/self/mounts").read_text().splitlines()
    return [line.split()[1] for line in lines if line.split()[1].startswith(str(root))]


class StartCounter:
    """Every container ``start`` on an engine, from a streamed ``docker events`` that outlives a restart."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.names: list[str] = []
        self._seen: set[tuple[str, int]] = set()
        self._since = time.time()
        self._stop = threading.Event()
        self._stream: Any = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with docker.APIClient(base_url=self.url, version="auto", timeout=5) as client:
                    filters = {"type": "container", "event": "start"}
                    self._stream = client.events(since=f"{self._since:.9f}", decode=True, filters=filters)
                    for ev in self._stream:
                        key = (ev["id"], ev["timeNano"])
                        if key not in self._seen:  # a reconnection replays from the last event seen
                            self._seen.add(key)
                            self.names.append(ev["Actor"]["Attributes"]["name"])
                        self._since = ev["timeNano"] / 1e9
            except Exception:  # the engine is restarting: reconnect
                pass
            self._stop.wait(0.2)

    def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            self._stream.close()
        self._thread.join(10)


@pytest.fixture
def engine(busybox_rootfs: bytes) -> Iterator[PrivateEngine]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("a private dockerd needs root and dockerd on PATH")
    eng = PrivateEngine()
    try:
        eng.create_bridge()
        eng.start()
        with eng.client() as client:
            repo, tag = IMAGE.rsplit(":", 1)
            client.import_image_from_data(busybox_rootfs, repository=repo, tag=tag, changes=CHANGES)
        yield eng
    finally:
        eng.destroy()


def _task(api: httpx.Client, task_id: str) -> dict[str, Any]:
    task: dict[str, Any] = api.get(f"/v1/tasks/{task_id}").json()
    return task


def _until(what: str, check: Any, timeout: float = 180) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_an_engine_restart_relaunches_running_tasks_and_queued_ones_outlast_it(
    engine: PrivateEngine, start_server: Any, tmp_path: Path
) -> None:
    env = {"DOCKER_HOST": engine.url, "MAYFLY_SWEEP_INTERVAL": "3600"}  # only the start and post-outage sweeps
    starts = StartCounter(engine.url)
    try:
        with (
            start_server(tmp_path, "restart", env=env) as srv,
            httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as api,
        ):
            # Attempt 1 runs until the engine stops; later attempts finish at once.
            long_cmd = 'if [ "$MAYFLY_ATTEMPT" = 1 ]; then echo first; sleep 600; fi; echo "attempt $MAYFLY_ATTEMPT"'
            for name, command in (("long", long_cmd), ("quick", "echo quick")):
                made = api.post("/v1/codes", json={"name": name, "image": IMAGE, "command": command, "network": "none"})
                assert made.status_code == 201, made.text
            running = [api.post("/v1/tasks", json={"code_name": "long", "payload": {}}).json()["id"] for _ in range(3)]
            _until("the long tasks to run", lambda: all(_task(api, t)["status"] == "running" for t in running))

            engine.stop()
            # Queued while the engine is down: every launch fails until it is back.
            queued = [api.post("/v1/tasks", json={"code_name": "quick", "payload": {}}).json()["id"] for _ in range(4)]
            # Stay down until each queued task failed to launch more often than the old budget allowed (3
            # relaunches, 1 + 2 + 4 s): with it they would have ended `error` by now.
            _until(
                "four launch failures of every queued task",
                lambda: all(_task(api, t)["infra_failures"] >= 4 or _task(api, t)["status"] == "error" for t in queued),
            )
            engine.start()

            done = {
                t: _until(
                    f"{t} to end",
                    lambda t=t: (x := _task(api, t))["status"] not in ("queued", "preparing", "running") and x,
                )
                for t in running + queued
            }
            assert {t: d["status"] for t, d in done.items()} == {t: "complete" for t in running + queued}
            for t in running:
                events = api.get(f"/v1/tasks/{t}/events").json()["events"]
                first_end = next(e for e in events if e["attempt"] == 1 and e["kind"] != "started")
                assert (first_end["kind"], first_end["data"]["reason"]) == ("lost", "engine_restarted"), first_end
                assert done[t]["attempt"] > 1
                assert f"attempt {done[t]['attempt']}" in api.get(f"/v1/tasks/{t}/log").text

            # Nothing is left: the containers the engine killed and their task directories are swept.
            with engine.client() as client:
                _until("no container left", lambda: not client.containers(all=True))
            run_dir = srv.home / "run" / "local"
            _until("no task directory left", lambda: not any(run_dir.iterdir()))

            # One container start per attempt that ran (reported started, or exited at once), and no other.
            ran = set()
            for t in running + queued:
                for e in api.get(f"/v1/tasks/{t}/events").json()["events"]:
                    if e["applied"] and (e["kind"] == "started" or (e["kind"] == "exited" and e["data"]["handle"])):
                        ran.add(f"mayfly-{t}-{e['attempt']}")
            assert len(ran) == len(running) * 2 + len(queued)
            _until("the start events", lambda: set(starts.names) >= ran)
            assert Counter(starts.names) == Counter(ran)
    finally:
        starts.close()


def test_a_runner_that_was_down_across_the_restart_still_sees_engine_restarted(
    engine: PrivateEngine, start_server: Any, tmp_path: Path
) -> None:
    env = {"DOCKER_HOST": engine.url, "MAYFLY_LEASE_SECONDS": "3"}  # the redelivery comes 3 s after the restart
    starts = StartCounter(engine.url)
    try:
        with (
            start_server(tmp_path, "restart", env=env) as srv,
            httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as api,
        ):
            long_cmd = 'if [ "$MAYFLY_ATTEMPT" = 1 ]; then sleep 600; fi; echo "attempt $MAYFLY_ATTEMPT"'
            code = {"name": "long", "image": IMAGE, "command": long_cmd, "network": "none"}
            assert api.post("/v1/codes", json=code).status_code == 201
            task_id = api.post("/v1/tasks", json={"code_name": "long", "payload": {}}).json()["id"]
            _until("the task to run", lambda: _task(api, task_id)["status"] == "running")
        # The server stopped (its container keeps running); the engine restarts while no runner watches.
        engine.stop()
        engine.start()
        with (
            start_server(tmp_path, "restart", env=env) as srv,
            httpx.Client(base_url=srv.url, headers=srv.bearer, timeout=30) as api,
        ):
            done = _until("the task to end", lambda: (t := _task(api, task_id))["end_time"] and t)
            assert (done["status"], done["attempt"]) == ("complete", 2), done
            events = api.get(f"/v1/tasks/{task_id}/events").json()["events"]
            first_end = next(e for e in events if e["attempt"] == 1 and e["kind"] != "started")
            assert (first_end["kind"], first_end["data"]["reason"]) == ("lost", "engine_restarted"), first_end
            with engine.client() as client:
                _until("no container left", lambda: not client.containers(all=True))
            _until("no task directory left", lambda: not any((srv.home / "run" / "local").iterdir()))
            ran = {f"mayfly-{task_id}-1", f"mayfly-{task_id}-2"}
            _until("the start events", lambda: set(starts.names) >= ran)
            assert Counter(starts.names) == Counter(ran)
    finally:
        starts.close()
