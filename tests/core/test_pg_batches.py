"""The PostgreSQL store's hot path: a batch is one statement, and a dead idle connection is replaced.

Statement counts, not timings: what made the store slow was a statement (and a new
statement text) per row; these guard that a batch of any size stays one statement of
constant text (docs/decisions.md, "PostgreSQL hot path").
"""

from __future__ import annotations

import pytest
from sqlalchemy import event, text

from mayfly.core import store as store_module
from mayfly.core.blobs.store import StoreBlobStore
from mayfly.core.queues.store import StoreBroker
from mayfly.core.store import Store


def _recorded(store: Store) -> list[str]:
    statements: list[str] = []

    @event.listens_for(store.engine, "before_cursor_execute")
    def _seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        statements.append(statement)

    return statements


def _round(store: Store, n: int, seen: list[str]) -> list[str]:
    """Send, record, check, list, receive and ack ``n`` of everything; the statements it ran."""
    seen.clear()
    queue = StoreBroker(store).queue(f"t{n}.tasks")
    blobs = StoreBlobStore(store)
    bodies = [f'{{"i": {i}, "quote": "\\"", "back": "\\\\"}}' for i in range(n)]
    ids = queue.send_many(bodies)
    blobs._put_many([(f"runs/t{n}-{i}/1/launched", b"\x00{}" * i) for i in range(n)])
    found = blobs._exists_many([f"runs/t{n}-{i}/1/launched" for i in range(n)] + ["runs/nope/1/launched"])
    listed = blobs._list_many([f"runs/t{n}-{i}/1/" for i in range(n)])
    got = queue.receive(n + 1, lease=30.0)
    acked = queue.ack_many(got)

    assert [m.id for m in got] == ids  # the ids come back in the bodies' order
    assert [m.body for m in got] == bodies
    assert found == [True] * n + [False]
    assert listed == [[f"runs/t{n}-{i}/1/launched"] for i in range(n)]
    assert acked == [True] * n
    assert blobs.get(f"runs/t{n}-2/1/launched") == b"\x00{}" * 2
    return list(seen)


def test_a_batch_of_any_size_is_one_statement_of_the_same_text(pg_store: Store) -> None:
    seen = _recorded(pg_store)
    few = _round(pg_store, 3, seen)
    many = _round(pg_store, 150, seen)
    # send, put, exists, list, the receive's look, its lease (which also retires worn messages), ack, get.
    assert len(few) == 8, few
    assert many == few


def test_a_pooled_connection_that_died_while_idle_is_replaced(
    pg_store: Store, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "PING_IDLE_AFTER", 0.0)
    with pg_store.read() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar()
    # The server ends that backend while it sits in the pool (a restart, an idle timeout, a proxy).
    killer = Store(pg_url)
    with killer.read() as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    killer.close()
    with pg_store.read() as conn:
        assert conn.execute(text("SELECT pg_backend_pid()")).scalar() != pid


def test_listing_keys_uses_the_key_index_even_with_a_generic_plan(pg_store: Store, pg_url: str) -> None:
    """psycopg prepares a statement on its fifth use; PostgreSQL then plans it once for any parameters.

    The listing's generic plan had been a nested loop over a sequential scan of every blob, so each
    runner's listing cost as much as the table was large. Forcing the generic plan shows the one every
    long-lived process ends up with.
    """
    import psycopg
    from psycopg import sql

    from mayfly.core.blobs import store as blob_store

    blobs = StoreBlobStore(pg_store)
    # As in a runner's life: the table grows faster than autovacuum's statistics of it.
    blobs._put_many([(f"runs/t{i:05d}/1/{name}", b"{}") for i in range(2_000) for name in ("launched", "exited")])
    prefixes = [f"runs/t{i:05d}/1/" for i in range(0, 2_000, 10)]
    ranges = {"lo": prefixes, "hi": [blob_store._after(p) for p in prefixes]}
    with psycopg.connect(pg_url) as conn:
        conn.execute("SET plan_cache_mode = force_generic_plan")
        listed = conn.execute(blob_store._LISTED, ranges, prepare=True).fetchall()
        (name,) = conn.execute("SELECT name FROM pg_prepared_statements WHERE statement LIKE '%LATERAL%'").fetchone()
        explain = sql.SQL("EXPLAIN EXECUTE {}({}::text[], {}::text[])").format(
            sql.Identifier(name), sql.Literal(ranges["lo"]), sql.Literal(ranges["hi"])
        )
        plan = "\n".join(row[0] for row in conn.execute(explain))

    assert len(listed) == 2 * len(prefixes)
    assert "blobs_pkey" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_attempts_are_stored_once_each_in_one_statement(pg_store: Store) -> None:
    from mayfly.core.costs import store_attempts

    def row(task: str, attempt: int, cost: float) -> dict[str, object]:
        return {
            **{"task_id": task, "attempt": attempt, "project_id": "p", "code_name": "c", "target": "null"},
            **{"provider": "null", "region": None, "outcome": "exited", "started_at": 1, "stopped_at": None},
            **{"billed_seconds": 0, "cpu": 1, "memory_mb": 256, "price": "{}", "cost": cost, "created_at": 2.5},
        }

    seen = _recorded(pg_store)
    with pg_store.write() as conn:
        first = store_attempts(conn, [row("t1", 1, 0.5), row("t2", 1, 0.0), row("t1", 1, 9.0)])
    with pg_store.write() as conn:
        again = store_attempts(conn, [row("t2", 1, 0.0), row("t3", 2, 0.25)])
        stored = conn.execute(text("SELECT task_id, attempt, cost, region FROM attempts ORDER BY task_id")).all()

    assert [(r["task_id"], r["cost"]) for r in first] == [("t1", 0.5), ("t2", 0.0)]  # the first of a repeat
    assert [r["task_id"] for r in again] == ["t3"]
    assert [tuple(r) for r in stored] == [("t1", 1, 0.5, None), ("t2", 1, 0.0, None), ("t3", 2, 0.25, None)]
    assert sum("INSERT INTO attempts" in st for st in seen) == 2  # one per batch
