"""Core throughput without containers: bulk queueing, then router → queue → runner → events → store.

The null provider "runs" each task in zero time, so what is measured is Mayfly's
own machinery on SQLite. Baselines, measured in the same run: a plain sqlite3
``executemany`` of rows as wide as a task (bulk queue), and the minimum set of
SQLite writes a task's life needs — one dispatch update, one message through a
queue table, two events, one final update — done in batches (end to end).
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import sqlite3
import threading
import time
from pathlib import Path

from bench.common import Row, fresh_home, open_mayfly, print_table, runner_process
from mayfly.core.codes import CodeOptions
from mayfly.core.serving import Serving
from mayfly.core.tasks import TaskOptions


def _baseline_bulk(path: Path, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE t (id TEXT PRIMARY KEY, project TEXT, code TEXT, status TEXT, payload TEXT, "
        "priority INT, run_at REAL, target TEXT, created REAL, updated REAL)"
    )
    rows = [(f"{i:024x}", "p", "c", "queued", json.dumps({"i": i}), 0, 0.0, "null", 0.0, 0.0) for i in range(n)]
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO t VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def _baseline_life(path: Path, n: int, batch: int = 200) -> float:
    """The fewest writes a task's life takes, batched as a careful implementation would."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE q (id INTEGER PRIMARY KEY, body TEXT)")
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        ids = [(f"{i:024x}",) for i in range(start, min(n, start + batch))]
        conn.execute("BEGIN")
        conn.executemany("UPDATE t SET status='preparing' WHERE id=?", ids)
        conn.execute("COMMIT")
        for step in ("task", "started", "exited"):
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO q (body) VALUES (?)", [(f"{step}:{i}",) for (i,) in ids])
            conn.execute("COMMIT")
            conn.execute("BEGIN")
            conn.execute("DELETE FROM q")
            conn.execute("COMMIT")
        conn.execute("BEGIN")
        conn.executemany("UPDATE t SET status='complete' WHERE id=?", ids)
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def run(n: int = 100_000, n_e2e: int = 20_000, capacity: int = 256, split: bool = True) -> list[Row]:
    """Both measurements; returns the table rows."""
    home = fresh_home()
    mf = open_mayfly(home)
    pid = mf.project_id()
    mf.targets.add("null", "null", {}, capacity=capacity)
    mf.codes.register(pid, "noop", "none", CodeOptions(command="true", target="null"))
    payloads = [json.dumps({"i": i}) for i in range(n)]

    t0 = time.perf_counter()
    mf.tasks.queue_many(pid, "noop", payloads, TaskOptions())
    bulk = time.perf_counter() - t0
    base_bulk = _baseline_bulk(home.parent / "baseline.db", n)

    # End to end on a fresh home so the bulk rows do not slow the first scans.
    mf.close()
    home2 = fresh_home()
    mf = open_mayfly(home2)
    pid = mf.project_id()
    mf.targets.add("null", "null", {}, capacity=capacity)
    mf.codes.register(pid, "noop", "none", CodeOptions(command="true", target="null"))
    mf.tasks.queue_many(pid, "noop", payloads[:n_e2e], TaskOptions())
    # The runner runs in a second process, as `mayfly runner` does: the two loops do not share one GIL.
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    proc = ctx.Process(target=runner_process, args=(str(home2), stop), daemon=True) if split else None
    serving = Serving(mf, ["null"], runners=not split)
    t0 = time.perf_counter()
    if proc is not None:
        proc.start()
    serving.start()
    done = threading.Event()

    def remaining() -> int:
        counts = mf.tasks.count_by_status(pid)
        return sum(counts.get(s, 0) for s in ("queued", "preparing", "running"))

    # Polled every 0.2 s: the count scans the tasks table, and at 20/s it took a fifth of the
    # control plane's process (same GIL) away from the loop being measured.
    while remaining():
        time.sleep(0.2)
    e2e = time.perf_counter() - t0
    done.set()
    serving.stop()
    if proc is not None:
        stop.set()
        proc.join(30)
    counts = mf.tasks.count_by_status(pid)
    assert counts.get("complete") == n_e2e, counts
    _baseline_bulk(home2.parent / "life.db", n_e2e)
    base_life = _baseline_life(home2.parent / "life.db", n_e2e)
    mf.close()
    return [
        Row(f"bulk queue {n:,} tasks", n / bulk, n / base_bulk, "tasks/s", "≥ 5,000 tasks/s"),
        Row(
            f"end to end, {n_e2e:,} tasks (null provider)", n_e2e / e2e, n_e2e / base_life, "tasks/s", "≥ 1,000 tasks/s"
        ),
    ]


def main(small: bool = False) -> list[Row]:
    rows = run(n=2_000, n_e2e=500) if small else run()
    print_table("Core throughput (no containers, SQLite)", rows)
    return rows
