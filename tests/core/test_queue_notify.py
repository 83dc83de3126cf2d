"""A send to a queue in PostgreSQL wakes receivers on other machines (LISTEN/NOTIFY, migration 0011).

Two homes stand for two machines: each has its own wake-ups, so a poke can only cross
from one to the other through the database.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from mayfly.core.queues.store import StoreBroker
from mayfly.core.queues.wakeup import SUPPORTED, WakeupHub
from mayfly.core.store import Store

pytestmark = pytest.mark.skipif(not SUPPORTED, reason="wake-ups need Linux's abstract sockets")


@pytest.fixture
def machines(pg_url: str, tmp_path: Path) -> Iterator[tuple[StoreBroker, StoreBroker]]:
    stores = [Store(pg_url), Store(pg_url)]
    hubs = [WakeupHub(tmp_path / "a"), WakeupHub(tmp_path / "b")]
    brokers = [StoreBroker(store, wakeups=hub) for store, hub in zip(stores, hubs, strict=True)]
    yield brokers[0], brokers[1]
    for broker, hub, store in zip(brokers, hubs, stores, strict=True):
        broker.close()
        hub.close()
        store.close()


def _listening_pids(store: Store) -> set[int]:
    with store.read() as conn:
        rows = conn.execute(text("SELECT pid FROM pg_stat_activity WHERE query LIKE 'LISTEN mayfly_queues%'"))
        return {int(r[0]) for r in rows}


def _eventually(what: str, check: object, limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {limit:.0f} s")
        time.sleep(0.05)


def test_a_send_on_one_machine_wakes_a_receiver_on_another(machines: tuple[StoreBroker, StoreBroker]) -> None:
    a, b = machines
    assert b.wakeups is not None
    b.listen()
    _eventually("the relay listening", lambda: b._relay is not None and b._relay.listening.is_set())
    listener = b.wakeups.listener("pool.tasks")
    assert listener is not None
    assert listener.wait(0.0) is False  # nothing rang yet

    a.queue("pool.tasks").send('{"task": 1}')

    assert listener.wait(30.0) is True, "the send on the other machine did not ring this one"
    assert [m.body for m in b.queue("pool.tasks").receive(5)] == ['{"task": 1}']


def test_a_receiver_that_waits_starts_the_relay_and_is_woken(machines: tuple[StoreBroker, StoreBroker]) -> None:
    a, b = machines
    queue = b.queue("pool.events")
    queue.poll = 3600.0  # only a wake-up can end this wait early
    assert queue.receive(1, wait=0.01) == []  # the first wait starts the relay
    _eventually("the relay listening", lambda: b._relay is not None and b._relay.listening.is_set())

    a.queue("pool.events").send("e1")
    started = time.monotonic()
    got = queue.receive(1, wait=60.0)

    assert [m.body for m in got] == ["e1"]
    assert time.monotonic() - started < 60.0  # woken: without a ring it would have slept the whole wait


def test_the_relay_listens_again_after_its_connection_is_killed(machines: tuple[StoreBroker, StoreBroker]) -> None:
    a, b = machines
    assert b.wakeups is not None
    b.listen()
    _eventually("the relay listening", lambda: len(_listening_pids(a.store)) == 1)
    (old,) = _listening_pids(a.store)
    with a.store.read() as conn:  # a database restart, a proxy or an idle timeout ends that connection
        assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": old}).scalar()
    _eventually("a new listening connection", lambda: _listening_pids(a.store) - {old} != set())
    listener = b.wakeups.listener("pool.tasks")
    assert listener is not None
    listener.drain()

    a.queue("pool.tasks").send('{"task": 2}')

    assert listener.wait(30.0) is True
