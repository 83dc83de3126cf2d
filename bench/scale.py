"""Scale: with 100,000 tasks in the store, ``task list`` (first page, status filter) and ``task show``
latency, and the resident memory of a server and of a runner. Baselines: the same queries in plain
sqlite3 on the same file, and the memory of an idle Python interpreter.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from bench.common import Row, fresh_home, open_mayfly, percentile, print_table
from mayfly.core.codes import CodeOptions
from mayfly.core.tasks import TaskFilter, TaskOptions


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _steady_rss(args: list[str], env: dict[str, str], settle: float = 4.0) -> float:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(settle)
        if proc.poll() is not None:
            raise RuntimeError(f"{args} exited early with {proc.returncode}")
        samples = []
        for _ in range(5):
            time.sleep(0.2)
            samples.append(_rss_mb(proc.pid))
        return max(samples)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run(n: int = 100_000, samples: int = 200) -> list[Row]:
    home = fresh_home()
    mf = open_mayfly(home)
    pid = mf.project_id()
    mf.codes.register(pid, "job", "mayfly-test/busybox:latest", CodeOptions(command="true"))
    for start in range(0, n, 10_000):
        mf.tasks.queue_many(
            pid, "job", [json.dumps({"i": i}) for i in range(start, min(n, start + 10_000))], TaskOptions(label="bulk")
        )
    # A realistic mix: most tasks finished, a few queued.
    from mayfly.core.store import schema as s

    with mf.store.write() as conn:
        conn.execute(
            s.tasks.update()
            .where(s.tasks.c.id < mf.tasks.list(pid, TaskFilter(limit=1))[0].id)
            .values(status="complete")
        )
    ids = [t.id for t in mf.tasks.list(pid, TaskFilter(limit=1000, status=["complete"]))]

    lat_list, lat_show = [], []
    for i in range(samples):
        t0 = time.perf_counter()
        mf.tasks.list(pid, TaskFilter(status=["complete"], limit=30))
        lat_list.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mf.tasks.get(pid, ids[i % len(ids)])
        lat_show.append(time.perf_counter() - t0)

    raw = sqlite3.connect(home / "mayfly.db")
    base_list, base_show = [], []
    for i in range(samples):
        t0 = time.perf_counter()
        raw.execute(
            "SELECT * FROM tasks WHERE project_id=? AND status IN ('complete') ORDER BY id DESC LIMIT 30", (pid,)
        ).fetchall()
        base_list.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        raw.execute("SELECT * FROM tasks WHERE id=?", (ids[i % len(ids)],)).fetchall()
        base_show.append(time.perf_counter() - t0)
    raw.close()
    mf.close()

    env = {**os.environ, "MAYFLY_HOME": str(home)}
    server_rss = _steady_rss([sys.executable, "-m", "mayfly.cli", "server", "--port", "0"], env)
    runner_rss = _steady_rss([sys.executable, "-m", "mayfly.cli", "runner", "--target", "local"], env)
    idle = _steady_rss([sys.executable, "-c", "import time; time.sleep(60)"], env, settle=1.0)
    return [
        Row(
            f"task list, status filter, first page ({n:,} tasks), p99",
            percentile(lat_list, 99) * 1000,
            percentile(base_list, 99) * 1000,
            "ms",
            "< 50 ms",
        ),
        Row("task show, p99", percentile(lat_show, 99) * 1000, percentile(base_show, 99) * 1000, "ms", "< 50 ms"),
        Row("server resident memory (API + control plane + runner)", server_rss, idle, "MB", "< 200 MB"),
        Row("runner resident memory", runner_rss, idle, "MB", "< 200 MB"),
    ]


def main(small: bool = False) -> list[Row]:
    rows = run(n=2_000, samples=20) if small else run()
    print_table("Scale (SQLite store)", rows)
    return rows
