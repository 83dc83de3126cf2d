"""Memory: resident memory of a server and of a runner with 100,000 tasks in the store and 1,000
"containers" running (the ``hold`` null provider: each runs until cancelled, so the runner keeps a
watch and a log follower on every one, as it would on an engine). Baseline: an idle Python
interpreter, measured in the same run.

The server process runs the API and the control plane; the runner process serves the ``hold``
target alone, as ``mayfly server`` and ``mayfly runner`` split them (each is started as
``python -m bench.memory server|runner HOME``, because the null providers are registered by
the benchmarks only, never through Mayfly's entry points).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.common import Row, fresh_home, open_mayfly, print_table
from mayfly.core.codes import CodeOptions
from mayfly.core.tasks import TaskOptions

TARGET = "hold"


def _status(pid: int) -> dict[str, str]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        out[key] = value.strip()
    return out


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB."""
    return int(_status(pid)["VmRSS"].split()[0]) / 1024


def threads(pid: int) -> int:
    """Threads of a process."""
    return int(_status(pid)["Threads"])


def stacks_mb(pid: int) -> float:
    """Resident memory of the process's thread stacks, MB: its anonymous mappings as large as a
    thread's stack (``ulimit -s``, glibc's default for a new thread)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    stack_kb = soft // 1024 if soft > 0 else 8192
    total_kb, size_kb, anonymous = 0, 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's header line
            anonymous = len(fields) < 6
        elif fields[0] == "Size:":
            size_kb = int(fields[1])
        elif fields[0] == "Rss:" and anonymous and size_kb == stack_kb:
            total_kb += int(fields[1])
    return total_kb / 1024


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _fill(home: Path, n: int, running: int) -> None:
    """``n`` finished tasks in the store, and ``running`` queued on the hold target (capacity for all)."""
    mf = open_mayfly(home)
    try:
        pid = mf.project_id()
        mf.targets.add(TARGET, TARGET, {}, capacity=max(running, 1), embedded_runner=False)
        mf.codes.register(pid, "done", "none", CodeOptions(command="true", target=TARGET))
        mf.codes.register(pid, "idle", "none", CodeOptions(command="true", target=TARGET))
        for start in range(0, n, 10_000):
            payloads = [json.dumps({"i": i}) for i in range(start, min(n, start + 10_000))]
            mf.tasks.queue_many(pid, "done", payloads, TaskOptions(label="bulk"))
        from mayfly.core.store import schema as s

        with mf.store.write() as conn:
            conn.execute(s.tasks.update().where(s.tasks.c.code_name == "done").values(status="complete"))
        mf.tasks.queue_many(pid, "idle", [json.dumps({"i": i}) for i in range(running)], TaskOptions())
    finally:
        mf.close()


def _running(home: Path) -> int:
    mf = open_mayfly(home)
    try:
        return mf.tasks.count_by_status(mf.project_id()).get("running", 0)
    finally:
        mf.close()


def serve(role: str, home: Path) -> None:
    """The server (API + control plane) or the hold target's runner, until SIGINT or SIGTERM."""
    from mayfly.core.serving import Serving

    mf = open_mayfly(home)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    api = None
    if role == "server":
        from mayfly.api.serve import ApiServer

        serving = Serving(mf, [t.name for t in mf.targets.list()], runners=False)
        api = ApiServer(mf, "127.0.0.1", _free_port())
    else:
        serving = Serving(mf, [TARGET], control=False, all_runners=True, exclusive=True)
    serving.start()
    if api is not None:
        api.start()
    print("ready", flush=True)
    while not stop.is_set():
        stop.wait(0.5)
    if os.environ.get("BENCH_TRACEMALLOC"):  # what holds the memory (run with PYTHONTRACEMALLOC=N as well)
        import tracemalloc

        snapshot = tracemalloc.take_snapshot()
        for stat in snapshot.statistics("lineno")[: int(os.environ["BENCH_TRACEMALLOC"])]:
            print(f"{role}: {stat}", file=sys.stderr)
    if api is not None:
        api.stop()
    serving.stop()


def _start(role: str, home: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "bench.memory", role, str(home)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        proc.kill()
        raise RuntimeError(f"the {role} process did not start")
    return proc


def _peak(pid: int, samples: int = 5) -> float:
    values = []
    for _ in range(samples):
        time.sleep(0.2)
        values.append(rss_mb(pid))
    return max(values)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run(n: int = 100_000, running: int = 1_000, timeout: float = 300.0) -> list[Row]:
    home = fresh_home("mayfly-bench-memory-")
    procs: list[subprocess.Popen[str]] = []
    try:
        _fill(home, n, running)
        server = _start("server", home)
        procs.append(server)
        runner = _start("runner", home)
        procs.append(runner)
        deadline = time.monotonic() + timeout
        while (up := _running(home)) < running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {up} of {running} tasks running after {timeout:.0f} s")
            time.sleep(1.0)
        time.sleep(2.0)  # let every watch settle into its wait
        server_rss, runner_rss = _peak(server.pid), _peak(runner.pid)
        server_threads, runner_threads = threads(server.pid), threads(runner.pid)
        runner_stacks = stacks_mb(runner.pid)
        runner_files = len(os.listdir(f"/proc/{runner.pid}/fd"))
        idle = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], text=True)
        procs.append(idle)
        time.sleep(1.0)
        idle_rss = _peak(idle.pid)
    finally:
        for proc in reversed(procs):
            if proc is procs[-1] and len(procs) == 3:
                proc.kill()  # the idle interpreter
                proc.wait()
            else:
                _stop(proc)
        shutil.rmtree(home.parent, ignore_errors=True)
    what = f"({n:,} tasks stored, {running:,} running)"
    return [
        Row(f"server resident memory, API + control plane {what}", server_rss, idle_rss, "MB", "< 100 MB"),
        Row(f"runner resident memory, {running:,} containers watched", runner_rss, idle_rss, "MB", "< 100 MB"),
        Row("server threads", server_threads, None, "threads"),
        Row("runner threads", runner_threads, None, "threads"),
        Row("runner: resident memory of its thread stacks", runner_stacks, None, "MB"),
        Row("runner: open file descriptors", runner_files, None, "files"),
    ]


def main(small: bool = False) -> list[Row]:
    rows = run(n=2_000, running=20, timeout=120.0) if small else run()
    print_table("Memory (SQLite store, null providers; baseline: an idle Python interpreter)", rows)
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] in ("server", "runner"):
        os.environ.setdefault("MAYFLY_HOME", sys.argv[2])
        serve(sys.argv[1], Path(sys.argv[2]))
    else:
        main(small="--small" in sys.argv)
