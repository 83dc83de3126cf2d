"""The control plane's metrics cost one narrow read per event batch.

Tasks run end to end on the null target (a real runner and control plane on the home's
store: SQLite, or PostgreSQL with ``MAYFLY_TEST_DATABASE=postgresql``). Applying the runner's
events with metrics kept reads the tasks once more than without (the columns the metrics
use, not whole rows: the statuses before come from the batch's own locking read), and
every task is still observed once (docs/decisions.md, "Control plane and runner CPU").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.nullprovider import NullPlugin
from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions, RuntimeInfo
from mayfly.core.config import Home
from mayfly.core.metrics import Metrics
from mayfly.core.plugins import build_plugins
from mayfly.core.tasks import TaskOptions

N = 6


def _run_batch(mf: Mayfly, control: Any, runner: Any, metrics: Metrics | None, done: int) -> list[str]:
    """Queue N more tasks (``done`` already complete), run them, apply their events in one batch: its statements."""
    pid = mf.project_id()
    mf.tasks.queue_many(pid, "noop", [f'{{"i": {i}}}' for i in range(N)], TaskOptions())
    control.metrics = metrics
    assert control.step() >= N  # dispatched, and published to the runner
    events_q = control.targets["null"].queues.get("events")
    for _ in range(50):  # one runner step may take only part of the published messages
        runner.step()
        assert runner.wait_idle()
        if events_q.depth() >= N:
            break
    assert events_q.depth() == N  # every attempt reported its end (an EXITED event each)
    seen: list[str] = []

    @event.listens_for(mf.store.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        seen.append(" ".join(statement.split()))

    wiring = control.targets["null"]
    assert control.apply_events("null", wiring) == N
    event.remove(mf.store.engine, "before_cursor_execute", _seen)
    counts = mf.tasks.count_by_status(pid)
    assert counts.get("complete", 0) == done + N, counts  # this batch ended its N tasks
    return seen


def _task_reads(statements: list[str]) -> list[str]:
    return [st for st in statements if st.upper().startswith("SELECT") and " FROM tasks" in st]


def test_event_metrics_read_the_batch_once_more_and_narrowly(home: Path) -> None:
    metrics = Metrics()
    mf = Mayfly(Home(home), lambda name: RuntimeInfo(name, name, None), plugins=build_plugins((NullPlugin(),)))
    try:
        mf.targets.add("null", "null", {}, capacity=N)
        mf.codes.register(mf.project_id(), "noop", "none", CodeOptions(command="true", target="null"))
        # One control plane and one runner for both batches, as in a server: a second runner on the
        # same target would compete for the task messages.
        control, runner = mf.control_plane(["null"]), mf.runner("null")
        with_metrics = _run_batch(mf, control, runner, metrics, 0)
        without = _run_batch(mf, control, runner, None, N)
    finally:
        mf.close()

    extra = _task_reads(with_metrics)
    for st in _task_reads(without):
        extra.remove(st)
    assert len(extra) == 1, extra  # one read for the metrics, no second read of statuses
    assert "payload" not in extra[0]  # a few columns, not the whole row
    assert len(with_metrics) == len(without) + 1

    # Each task was observed once: a quick container's EXITED both starts and ends it.
    durations = [s for f in metrics.collect() for s in f.samples if s.name.endswith("run_duration_seconds_count")]
    assert sum(s.value for s in durations) == N, durations
    waits = [s for f in metrics.collect() for s in f.samples if s.name.endswith("queue_wait_seconds_count")]
    assert sum(s.value for s in waits) == N, waits
