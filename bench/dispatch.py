"""Local dispatch: N no-op tasks at concurrency 8 on local Docker, against ``xargs -P 8 docker run --rm``.

Two baselines, both with the Docker provider's hardening flags and the same image: the
boot script running ``true`` (Mayfly's own command), and the user's own command run
directly (``sh -c 'exit 0'``, no boot agent): what Mayfly adds — queueing, the boot
agent, the task directory, log and result handling — counts against it (issue 19). The
CPU each side spends per task is printed too: Mayfly's process (control plane and
runner) against the ``docker`` CLI processes. Also: queue → container start latency
against ``docker create`` + ``docker start`` of the same image.
"""

from __future__ import annotations

import resource
import shlex
import subprocess
import time
from pathlib import Path
from typing import NamedTuple

from bench.common import Row, fresh_home, open_mayfly, percentile, print_table
from mayfly.core.codes import CodeOptions
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions

#: The flags Mayfly's Docker provider applies (see providers/docker), for the baseline.
HARDENING = [
    "--user",
    "10001:10001",
    "--cap-drop",
    "ALL",
    "--security-opt",
    "no-new-privileges",
    "--pids-limit",
    "256",
    "--memory",
    "512m",
    "--memory-swap",
    "512m",
    "--cpus",
    "1",
    "--read-only",
    "--tmpfs",
    "/tmp:size=64m,mode=1777",
    "--init",
    "--network",
    "bridge",
]
BOOT = "/usr/local/bin/mayfly-boot"


class Timed(NamedTuple):
    """Wall seconds of a run, and the CPU seconds its side spent."""

    wall: float
    cpu: float


def _image() -> str:
    import docker

    from mayfly.runtimes import build, get_runtime

    client = docker.from_env()
    cache = Path.home() / ".cache" / "mayfly-bench"
    cache.mkdir(parents=True, exist_ok=True)
    return build(get_runtime("shell"), client, cache).tag


def _wait_all(mf: object, pid: str, n: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = mf.tasks.count_by_status(pid)  # type: ignore[attr-defined]
        if sum(counts.get(s, 0) for s in ("complete", "error", "cancelled", "timeout")) >= n:
            if counts.get("complete", 0) != n:
                raise RuntimeError(f"not every task completed: {counts}")
            return
        # The look runs in Mayfly's process and its CPU competes with the engine's: ten a second, so
        # the wall time is known to 0.1 s of ~30 s.
        time.sleep(0.1)
    raise RuntimeError("tasks did not finish in time")


#: The user's own command, run directly: no boot agent.
DIRECT = ("sh", "-c", "exit 0")


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def baseline_dispatch(image: str, n: int, concurrency: int, command: tuple[str, ...] = (BOOT, "true")) -> Timed:
    """``seq n | xargs -P c docker run --rm <hardening> image COMMAND``: wall seconds, CLI CPU seconds."""
    cmd = " ".join(shlex.quote(x) for x in ["docker", "run", "--rm", *HARDENING, image, *command])
    cpu, t0 = _cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(f"seq {n} | xargs -P {concurrency} -I{{}} {cmd}", shell=True, check=True, stdout=subprocess.DEVNULL)
    return Timed(time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - cpu)


def mayfly_dispatch(image: str, n: int, concurrency: int) -> Timed:
    """N tasks queued at once, run through the control plane and the local runner: wall and CPU seconds."""
    mf = open_mayfly(fresh_home(), {"shell": image})
    pid = mf.project_id()
    code = Path(fresh_home().parent) / "noop"
    code.mkdir()
    (code / "main.sh").write_text("true\n")
    mf.codes.push(
        pid,
        "noop",
        code,
        runtime="shell",
        options=CodeOptions(command="true", max_concurrency=concurrency, memory_mb=512, cpu=1.0),
    )
    serving = Serving(mf, ["local"])
    serving.start()
    try:
        cpu, t0 = _cpu(resource.RUSAGE_SELF), time.perf_counter()
        mf.tasks.queue_many(pid, "noop", ["{}"] * n, TaskOptions())
        _wait_all(mf, pid, n)
        return Timed(time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - cpu)
    finally:
        serving.stop()
        mf.close()


def baseline_latency(image: str, n: int) -> list[float]:
    """``docker create`` + ``docker start`` of the image: seconds until the container has started."""
    import docker

    client = docker.from_env()
    samples = []
    for _ in range(n):
        t0 = time.time()
        c = client.containers.create(
            image,
            [BOOT, "true"],
            user="10001:10001",
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            read_only=True,
            init=True,
        )
        c.start()
        samples.append(time.time() - t0)
        c.wait()
        c.remove()
    client.close()
    return samples


def mayfly_latency(image: str, n: int) -> list[float]:
    """One task at a time, idle machine: queued → the container's StartedAt."""
    mf = open_mayfly(fresh_home(), {"shell": image})
    pid = mf.project_id()
    mf.codes.register(pid, "noop", image, CodeOptions(command=f"{BOOT} true"))
    serving = Serving(mf, ["local"])
    serving.start()
    samples = []
    try:
        for _ in range(n):
            task = mf.tasks.queue(pid, "noop", "{}", TaskOptions())
            _wait_one(mf, pid, task.id)
            done = mf.tasks.get(pid, task.id)
            assert done.start_time is not None
            samples.append(done.start_time - task.created_at)
    finally:
        serving.stop()
        mf.close()
    return samples


def _wait_one(mf: object, pid: str, task_id: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if mf.tasks.get(pid, task_id).task_status.terminal:  # type: ignore[attr-defined]
            return
        time.sleep(0.01)
    raise RuntimeError("task did not finish")


def main(small: bool = False) -> list[Row]:
    n, c, lat = (16, 4, 5) if small else (200, 8, 50)
    image = _image()
    # Warm both paths once (page cache, image layers), then measure.
    baseline_dispatch(image, c, c)
    base = baseline_dispatch(image, n, c)
    direct = baseline_dispatch(image, n, c, DIRECT)
    ours = mayfly_dispatch(image, n, c)
    base_lat = baseline_latency(image, lat)
    our_lat = mayfly_latency(image, lat)
    rows = [
        Row(f"{n} no-op tasks at concurrency {c}, wall time; baseline: boot agent", ours.wall, base.wall, "s", ""),
        Row(
            f"{n} no-op tasks at concurrency {c}, wall time; baseline: the user's command directly",
            ours.wall,
            direct.wall,
            "s",
            "≤ 1.00x baseline",
        ),
        Row(
            "CPU per task: Mayfly's process; baseline: the docker CLI's",
            ours.cpu / n * 1000,
            direct.cpu / n * 1000,
            "ms",
            "",
        ),
        Row(
            "queue → container start, p50",
            percentile(our_lat, 50) * 1000,
            percentile(base_lat, 50) * 1000,
            "ms",
            "within 50 ms of the engine",
        ),
        Row("queue → container start, p99", percentile(our_lat, 99) * 1000, percentile(base_lat, 99) * 1000, "ms", ""),
    ]
    print_table("Local dispatch and latency (Docker)", rows)
    return rows
