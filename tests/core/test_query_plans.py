"""The control plane's hot path never scans the whole tasks table.

Every statement one task's life sends (queue, dispatch, publish, events, the idle
checks of each pass) is captured as SQLite runs it and explained: a full ``SCAN
tasks`` would make each pass cost as much as the store is large — the control
plane of a server with 100,000 finished tasks would burn a core doing nothing.
SQLite matches a partial index only against the query's own text, so a bound
``IN (?, ?)`` where the index says ``IN ('preparing', 'running')`` is exactly the
regression this catches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event

from mayfly.core.app import Mayfly
from mayfly.core.codes import CodeOptions
from mayfly.core.messages import Event, EventKind
from mayfly.core.models import ACTIVE_STATUSES, TaskStatus
from mayfly.core.store import now, schema
from mayfly.core.tasks import TaskOptions

_FULL_SCAN = re.compile(r"^SCAN tasks$")


@pytest.fixture
def statements(mf: Mayfly) -> Iterator[list[tuple[str, Any]]]:
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if not many and "tasks" in statement and statement.lstrip().upper().startswith(("SELECT", "UPDATE")):
            seen.append((statement, params))

    event.listen(mf.store.engine, "before_cursor_execute", capture)
    yield seen
    event.remove(mf.store.engine, "before_cursor_execute", capture)


def _plan(mf: Mayfly, statement: str, params: Any) -> list[str]:
    with mf.store.read() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        return [str(row[-1]) for row in raw.execute("EXPLAIN QUERY PLAN " + statement, params)]


def test_one_task_life_uses_indexes_only(mf: Mayfly, project: str, statements: list[tuple[str, Any]]) -> None:
    mf.codes.register(project, "img", "mayfly-test/busybox:latest", CodeOptions(command="true", max_concurrency=4))
    # Rows the scans would have to walk past: finished tasks of an older code.
    for _ in range(3):
        mf.tasks.queue(project, "img", "{}", TaskOptions())
    control = mf.control_plane()
    events = mf.queues_for("local").get("events")
    statements.clear()

    task = mf.tasks.queue(project, "img", "{}", TaskOptions(priority=2))
    control.step()  # dispatch + publish
    events.send(Event(task.id, 1, EventKind.STARTED, now(), {"handle": "h"}).dumps())
    control.step()
    events.send(Event(task.id, 1, EventKind.EXITED, now(), {"exit_code": 0}).dumps())
    control.step()
    control.step()  # an idle pass: its checks must be cheap too
    assert mf.tasks.get(project, task.id).status == "complete"

    assert len(statements) > 5
    scans = {}
    for statement, params in statements:
        plan = _plan(mf, statement, params)
        if any(_FULL_SCAN.match(line) for line in plan):
            scans[" ".join(statement.split())] = plan
    assert scans == {}


def test_the_index_predicates_name_the_models_statuses() -> None:
    """``schema.ACTIVE`` / ``QUEUED`` are written out for SQLite's sake; they must say what the models say."""
    listed = re.fullmatch(r"status IN \((.*)\)", schema.ACTIVE)
    assert listed is not None
    assert {v.strip().strip("'") for v in listed.group(1).split(",")} == {st.value for st in ACTIVE_STATUSES}
    assert f"status = '{TaskStatus.QUEUED.value}'" == schema.QUEUED
