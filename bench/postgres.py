"""Core throughput on PostgreSQL: bulk queueing, and end to end with one and with three servers.

A throwaway PostgreSQL cluster (``mayfly.testing.postgres``: initdb into a temp dir,
``fsync=off``) holds the store and the null target's queues and blobs. End to end, the null
provider "runs" each task in zero time, in two topologies:

- *control planes*: one runner process (``mayfly runner``), and one or three processes that
  run a control plane each, claiming their work in the database;
- *servers with their runners*: one or three processes that each run what ``mayfly server``
  runs, a control plane and the target's runner, each on its own home (as on its own
  machine); the runners share the target's queue, each taking at most its share of the
  target's capacity (``mayfly server --runner-capacity``: 256 for one, 85 each for three).

The clock starts when every process is up and ready (start-up is not throughput: ~1.2 s of CPU
per process for the interpreter and imports). Baselines, measured in the same run: a raw
psycopg ``executemany`` of rows as wide as a task (bulk queue), and the fewest statements a
task's life needs — dispatch update, queue insert/delete for the task and its two events,
final update — batched (end to end). Latency: ``task list`` (first page, status filter) and
``task show`` p99 with 100,000 tasks in the store, beside the same queries in raw psycopg.
"""

from __future__ import annotations

import json
import multiprocessing
import multiprocessing.synchronize
import os
import time
from pathlib import Path

from bench.common import Row, fresh_home, open_mayfly, percentile, print_table, runner_process
from mayfly.core.codes import CodeOptions
from mayfly.core.serving import Serving
from mayfly.core.store import Store
from mayfly.core.tasks import TaskFilter, TaskOptions
from mayfly.testing.postgres import TempCluster, find_bin


def _raw(cluster: TempCluster, db: str):  # type: ignore[no-untyped-def]
    import psycopg

    return psycopg.connect(f"host=127.0.0.1 port={cluster.port} user={cluster.USER} dbname={db}")


def _baseline_bulk(cluster: TempCluster, n: int) -> float:
    cluster.create_database("baseline")
    with _raw(cluster, "baseline") as conn:
        conn.execute(
            "CREATE TABLE t (id TEXT PRIMARY KEY, project TEXT, code TEXT, status TEXT, payload TEXT, "
            "priority INT, run_at FLOAT, target TEXT, created FLOAT, updated FLOAT)"
        )
        conn.commit()
        rows = [(f"{i:024x}", "p", "c", "queued", json.dumps({"i": i}), 0, 0.0, "null", 0.0, 0.0) for i in range(n)]
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO t VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)", rows)
        conn.commit()
        return time.perf_counter() - t0


def _baseline_life(cluster: TempCluster, n: int, batch: int = 200) -> float:
    with _raw(cluster, "baseline") as conn:
        conn.execute("CREATE TABLE q (id BIGSERIAL PRIMARY KEY, body TEXT)")
        conn.commit()
        t0 = time.perf_counter()
        with conn.cursor() as cur:
            for start in range(0, n, batch):
                ids = [(f"{i:024x}",) for i in range(start, min(n, start + batch))]
                cur.executemany("UPDATE t SET status='preparing' WHERE id=%s", ids)
                conn.commit()
                for step in ("task", "started", "exited"):
                    cur.executemany("INSERT INTO q (body) VALUES (%s)", [(f"{step}:{i}",) for (i,) in ids])
                    conn.commit()
                    cur.execute("DELETE FROM q")
                    conn.commit()
                cur.executemany("UPDATE t SET status='complete' WHERE id=%s", ids)
                conn.commit()
        return time.perf_counter() - t0


def _server_process(
    home: str,
    stop: multiprocessing.synchronize.Event,
    ready: multiprocessing.synchronize.Semaphore,
    go: multiprocessing.synchronize.Event,
    runner_share: int | None,
) -> None:
    """A server: its control plane, and given ``runner_share`` the null target's runner too, taking at most that
    many tasks at once (``mayfly server --runner-capacity``)."""
    mf = open_mayfly(Path(home))
    serving = Serving(mf, ["null"], runners=runner_share is not None, runner_capacity=runner_share)
    mf.store.check_schema()  # the pool's first connection, before the clock starts
    ready.release()
    go.wait()
    serving.start()
    stop.wait()
    serving.stop()


def _setup(url: str, capacity: int) -> tuple[Path, str]:
    os.environ["MAYFLY_DATABASE_URL"] = url
    home = fresh_home()
    mf = open_mayfly(home)
    pid = mf.project_id()
    mf.targets.add("null", "null", {}, capacity=capacity)
    mf.codes.register(pid, "noop", "none", CodeOptions(command="true", target="null"))
    mf.close()
    return home, pid


def _end_to_end(
    cluster: TempCluster, db: str, n: int, servers: int, capacity: int, *, with_runners: bool = False
) -> float:
    url = cluster.create_database(db)
    store = Store(url, migrate=False)
    store.migrate()
    store.close()
    home, pid = _setup(url, capacity)
    mf = open_mayfly(home)
    mf.tasks.queue_many(pid, "noop", [json.dumps({"i": i}) for i in range(n)], TaskOptions())
    ctx = multiprocessing.get_context("spawn")
    stop, ready, go = ctx.Event(), ctx.Semaphore(0), ctx.Event()
    args = (str(home), stop, ready, go)
    if with_runners:  # each its own home: a runner's lock is per home, as per machine
        homes = [home] + [fresh_home() for _ in range(servers - 1)]
        share = capacity // servers  # the target's capacity, split between the machines' runners
        procs = [ctx.Process(target=_server_process, args=(str(h), stop, ready, go, share), daemon=True) for h in homes]
    else:
        procs = [ctx.Process(target=runner_process, args=args, daemon=True)]
        procs += [ctx.Process(target=_server_process, args=(*args, None), daemon=True) for _ in range(servers)]
    # The clock starts once every process is up (interpreter, imports, store opened: ~1.2 s of CPU
    # each, which on 2 cores had made three servers look slower than one) and they start together.
    for proc in procs:
        proc.start()
    for _ in procs:
        if not ready.acquire(timeout=120):
            raise RuntimeError("a benchmark process did not start")
    t0 = time.perf_counter()
    go.set()

    def remaining() -> int:
        counts = mf.tasks.count_by_status(pid)
        return sum(counts.get(s, 0) for s in ("queued", "preparing", "running"))

    while remaining():
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    stop.set()
    for proc in procs:
        proc.join(30)
    counts = mf.tasks.count_by_status(pid)
    assert counts.get("complete") == n, counts
    mf.close()
    return elapsed


_Latencies = tuple[list[float], list[float], list[float], list[float]]


def _list_show(cluster: TempCluster, n: int, samples: int = 200) -> _Latencies:
    """``task list`` / ``task show`` latencies with ``n`` tasks (as bench.scale on SQLite), and raw psycopg's."""
    url = cluster.create_database("scale")
    store = Store(url, migrate=False)
    store.migrate()
    store.close()
    home, pid = _setup(url, 256)
    mf = open_mayfly(home)
    for start in range(0, n, 10_000):
        payloads = [json.dumps({"i": i}) for i in range(start, min(n, start + 10_000))]
        mf.tasks.queue_many(pid, "noop", payloads, TaskOptions(label="bulk"))
    from mayfly.core.store import schema as s

    # A realistic mix: most tasks finished, a few queued.
    with mf.store.write() as conn:
        newest = mf.tasks.list(pid, TaskFilter(limit=1))[0].id
        conn.execute(s.tasks.update().where(s.tasks.c.id < newest).values(status="complete"))
    with _raw(cluster, "scale") as raw:
        raw.execute("ANALYZE")
        raw.commit()
    ids = [t.id for t in mf.tasks.list(pid, TaskFilter(limit=1000, status=["complete"]))]
    lat_list, lat_show = [], []
    for i in range(samples):
        t0 = time.perf_counter()
        mf.tasks.list(pid, TaskFilter(status=["complete"], limit=30))
        lat_list.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        mf.tasks.get(pid, ids[i % len(ids)])
        lat_show.append(time.perf_counter() - t0)
    mf.close()
    base_list, base_show = [], []
    with _raw(cluster, "scale") as raw:
        for i in range(samples):
            t0 = time.perf_counter()
            raw.execute(
                "SELECT * FROM tasks WHERE project_id=%s AND status IN ('complete') ORDER BY id DESC LIMIT 30", (pid,)
            ).fetchall()
            raw.commit()
            base_list.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            raw.execute("SELECT * FROM tasks WHERE id=%s", (ids[i % len(ids)],)).fetchall()
            raw.commit()
            base_show.append(time.perf_counter() - t0)
    return lat_list, lat_show, base_list, base_show


def run(n: int = 20_000, n_e2e: int = 5_000, capacity: int = 256, n_scale: int = 100_000) -> list[Row]:
    """The measurements on a fresh cluster; returns the table rows."""
    bin_dir = find_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL is not installed (scripts/bootstrap --test installs it)")
    cluster = TempCluster(bin_dir).start()
    saved = os.environ.get("MAYFLY_DATABASE_URL")
    try:
        url = cluster.create_database("bulk")
        store = Store(url, migrate=False)
        store.migrate()
        store.close()
        home, pid = _setup(url, capacity)
        mf = open_mayfly(home)
        payloads = [json.dumps({"i": i}) for i in range(n)]
        t0 = time.perf_counter()
        mf.tasks.queue_many(pid, "noop", payloads, TaskOptions())
        bulk = time.perf_counter() - t0
        mf.close()
        base_bulk = _baseline_bulk(cluster, n)
        one = _end_to_end(cluster, "e2e1", n_e2e, 1, capacity)
        three = _end_to_end(cluster, "e2e3", n_e2e, 3, capacity)
        one_whole = _end_to_end(cluster, "e2e1w", n_e2e, 1, capacity, with_runners=True)
        three_whole = _end_to_end(cluster, "e2e3w", n_e2e, 3, capacity, with_runners=True)
        base_life = _baseline_life(cluster, n_e2e)
        lat_list, lat_show, base_list, base_show = _list_show(cluster, n_scale)
    finally:
        if saved is None:
            os.environ.pop("MAYFLY_DATABASE_URL", None)
        else:
            os.environ["MAYFLY_DATABASE_URL"] = saved
        cluster.stop()
    return [
        Row(f"bulk queue {n:,} tasks", n / bulk, n / base_bulk, "tasks/s", "≥ 5,000 tasks/s"),
        *(
            Row(f"end to end, {n_e2e:,} tasks, {what}", n_e2e / took, n_e2e / base_life, "tasks/s", goal)
            for what, took, goal in (
                ("1 server + 1 runner", one, "≥ 1,500"),
                ("3 servers + 1 runner", three, "more than 1"),
                ("1 server with its runner", one_whole, ""),
                ("3 servers with their runners", three_whole, "more than 1"),
            )
        ),
        Row(
            f"task list, status filter, first page ({n_scale:,} tasks), p99",
            percentile(lat_list, 99) * 1000,
            percentile(base_list, 99) * 1000,
            "ms",
            "< 50 ms",
        ),
        Row("task show, p99", percentile(lat_show, 99) * 1000, percentile(base_show, 99) * 1000, "ms", "< 50 ms"),
    ]


def main(small: bool = False) -> list[Row]:
    rows = run(n=1_000, n_e2e=300, n_scale=2_000) if small else run()
    print_table("Core throughput on PostgreSQL (no containers; null provider; queues and blobs in the store)", rows)
    return rows
