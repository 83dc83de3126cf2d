"""A runner's ``exited`` record commits with its last event and its ack when they share a database.

On PostgreSQL a Docker target's queues and blobs are tables of one store, so the record
that marks an attempt over (for a redelivery and for the sweep), the event that reports
it and the ack of its message are one transaction: all three, or none.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import event, text

from bench.common import open_mayfly
from mayfly.core.blobs.local import LocalBlobStore
from mayfly.core.blobs.store import StoreBlobStore
from mayfly.core.codes import CodeOptions
from mayfly.core.messages import Event, EventKind, run_key
from mayfly.core.queues.embedded import EmbeddedBroker
from mayfly.core.queues.store import StoreBroker
from mayfly.core.serving import Serving
from mayfly.core.store import Store
from mayfly.core.tasks import TaskOptions

pytestmark = pytest.mark.slow


def test_the_record_the_event_and_the_ack_are_one_transaction(pg_store: Store) -> None:
    broker = StoreBroker(pg_store)
    tasks, events = broker.queue("pool.tasks"), broker.queue("pool.events")
    blobs = StoreBlobStore(pg_store)
    tasks.send('{"task": 1}')
    (m,) = tasks.receive(1, lease=30.0)
    commits: list[int] = []
    event.listen(pg_store.engine, "commit", lambda conn: commits.append(1))

    done = events.send_and_ack(['{"exited": 1}'], tasks, [m], [("runs/t1/1/exited", b'{"exited": 1}')])

    assert done == [True]
    assert len(commits) == 1
    assert blobs.get("runs/t1/1/exited") == b'{"exited": 1}'
    assert [e.body for e in events.receive(5)] == ['{"exited": 1}']
    assert tasks.depth() == 0


def test_a_write_the_database_refuses_keeps_no_record_and_acks_nothing(pg_store: Store) -> None:
    broker = StoreBroker(pg_store)
    tasks, events = broker.queue("pool.tasks"), broker.queue("pool.events")
    blobs = StoreBlobStore(pg_store)
    with pg_store.write() as conn:  # the event's insert fails after the record's upsert ran, inside the database
        conn.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF NEW.body = 'refused' THEN RAISE EXCEPTION 'refused by the test'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        conn.execute(
            text("CREATE TRIGGER refuse BEFORE INSERT ON queue_messages FOR EACH ROW EXECUTE FUNCTION refuse()")
        )
    tasks.send('{"task": 1}')
    (m,) = tasks.receive(1, lease=30.0)

    with pytest.raises(Exception, match="refused by the test"):
        events.send_and_ack(["refused"], tasks, [m], [("runs/t1/1/exited", b"{}")])

    assert not blobs.exists("runs/t1/1/exited")
    assert events.depth() == 0
    assert tasks.ack(m) is True  # still leased to us: the failed write acked nothing


def test_only_a_queue_of_the_same_database_writes_records(pg_store: Store, pg_url: str, tmp_path: Path) -> None:
    queue = StoreBroker(pg_store).queue("pool.events")
    other = Store(pg_url)
    try:
        assert queue.keeps_records_of(StoreBlobStore(pg_store))
        assert not queue.keeps_records_of(StoreBlobStore(other))
        assert not queue.keeps_records_of(LocalBlobStore(tmp_path / "blobs"))
    finally:
        other.close()
    embedded = EmbeddedBroker(tmp_path / "q.db")
    local_events, local_tasks = embedded.queue("local.events"), embedded.queue("local.tasks")
    assert not local_events.keeps_records_of(LocalBlobStore(tmp_path / "blobs"))
    with pytest.raises(ValueError, match="cannot write blobs"):
        local_events.send_and_ack(["e"], local_tasks, [], [("runs/t/1/exited", b"{}")])
    assert local_events.depth() == 0


def test_a_runner_on_postgresql_leaves_each_attempt_s_exit_as_its_record(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAYFLY_DATABASE_URL", pg_url)
    mf = open_mayfly(tmp_path / "home")
    mf.targets.add("null", "null", {})
    pid = mf.project_id()
    mf.codes.register(pid, "noop", "none", CodeOptions(command="true", target="null"))
    queued = mf.tasks.queue_many(pid, "noop", ["{}"] * 20, TaskOptions())
    serving = Serving(mf, ["null"])
    serving.start()
    try:
        deadline = time.monotonic() + 60
        while mf.tasks.count_by_status(pid).get("complete") != 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        serving.stop()
    try:
        assert mf.tasks.count_by_status(pid) == {"complete": 20}
        blobs = mf.blobs_for("null")
        assert isinstance(blobs, StoreBlobStore)
        for task in queued:
            record = Event.loads(blobs.get(run_key(task.id, 1, "exited")).decode())
            assert (record.task_id, record.attempt, record.kind, record.data["exit_code"]) == (
                task.id,
                1,
                EventKind.EXITED,
                0,
            )
    finally:
        mf.close()
