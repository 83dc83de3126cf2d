"""The runner's worker pool: jobs run on reused threads and never wait for a busy one."""

from __future__ import annotations

import threading

from mayfly.core.workers import WorkerPool


def test_jobs_never_wait_for_busy_workers() -> None:
    pool = WorkerPool(name="t")
    release = threading.Event()
    started = threading.Barrier(5, timeout=10)

    def blocking() -> None:
        started.wait()
        release.wait(10)

    for _ in range(4):
        pool.submit(blocking)
    started.wait()  # all four block at once: each got its own thread
    release.set()


def test_idle_workers_are_reused() -> None:
    pool = WorkerPool(name="t")
    names: list[str] = []
    done = threading.Semaphore(0)

    def record() -> None:
        names.append(threading.current_thread().name)
        done.release()

    for _ in range(20):
        pool.submit(record)
        assert done.acquire(timeout=10)
    assert len(set(names)) < 20  # one after another: a worker that finished takes the next job
    assert len(names) == 20
