"""Queues in the PostgreSQL store: one target's queues shared by runners on several machines.

With PostgreSQL as the store, a target without queues of its own (a Docker target) keeps
its ``tasks``, ``control`` and ``events`` queues in the ``queue_messages`` table instead
of one home's ``queues.db``: every server and every ``mayfly runner --target T`` on any
machine then serves the same queues. They behave like the embedded queues (and the
cloud ones): a received message is leased with a receipt, comes back when the lease
expires unless acked, moves to ``<name>-dlq`` on its next receive once it was delivered
``max_deliveries`` times.

Receiving locks the visible rows ``FOR UPDATE SKIP LOCKED``, so concurrent receivers
never lease one message twice and never wait for each other. Lease times are the
database's clock (``clock_timestamp()``), not the callers', so machines whose clocks
disagree still agree on when a lease ends. A waiting receiver is woken at once by a send
from its own home (the home's wake-ups) or from another machine (PostgreSQL's NOTIFY,
relayed to the home's wake-ups: :mod:`.notify`), and looks again every ``poll`` seconds
in case a notification was lost.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, func, select

from mayfly.core.blobs.store import StoreBlobStore, put_rows
from mayfly.core.queues import Message, Queue, QueueSet
from mayfly.core.queues.embedded import DLQ_SUFFIX, MAX_DELIVERIES
from mayfly.core.queues.notify import NotifyRelay
from mayfly.core.queues.wakeup import WakeupHub
from mayfly.core.store import Store
from mayfly.core.store import schema as s

_Q = s.queue_messages
# The statements as PostgreSQL text, run straight on the driver: built with SQLAlchemy's expression
# language at each call, a receive spent more time constructing its statements than running them.
#: The database's time in epoch seconds, read when the statement runs.
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::float8"
_INSERT = (
    "INSERT INTO queue_messages (queue, body, visible_at, created_at, deliveries) "
    f"SELECT %(queue)s, b, {_NOW} + %(delay)s, {_NOW}, 0 "
    "FROM unnest(%(bodies)b::text[]) WITH ORDINALITY AS u(b, i) ORDER BY i RETURNING id"
)
#: The messages of one queue that may be received now.
_VISIBLE = f"FROM queue_messages WHERE queue = %(queue)s AND visible_at <= {_NOW}"
_LOOK = f"SELECT id {_VISIBLE} LIMIT 1"
_PICK = f"SELECT id {_VISIBLE}"
_LEASE_SET = (
    f"UPDATE queue_messages SET visible_at = {_NOW} + %(lease)s, receipt = concat(%(token)s::text, id), "
    "deliveries = deliveries + 1 WHERE id IN "
)
_LEASE_RETURNING = " RETURNING id, body, receipt, deliveries"
#: A dead-letter queue's receive: the oldest visible messages.
_LEASE = f"{_LEASE_SET}({_PICK} ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED){_LEASE_RETURNING}"
#: Any other queue's receive, one statement: as SQS's redrive, a message received ``max`` times moves to
#: the dead-letter queue (the data-modifying WITH) instead of being leased again. The two sets of rows
#: are disjoint (``deliveries`` below or at least ``max``), so no row is changed twice.
_LEASE_OR_RETIRE = (
    "WITH worn AS (UPDATE queue_messages SET queue = %(dlq)s, deliveries = 0, receipt = NULL WHERE id IN "
    f"({_PICK} AND deliveries >= %(max)s FOR UPDATE SKIP LOCKED)) "
    f"{_LEASE_SET}({_PICK} AND deliveries < %(max)s ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED)"
    f"{_LEASE_RETURNING}"
)
#: A transactional take: the rows stay locked (other takers and receivers skip them) until the caller's
#: commit, which deletes them, or its rollback, which leaves them as they were. Worn messages are left to a
#: leased receive, which moves them to the dead-letter queue.
_TAKE = (
    f"SELECT id, body, deliveries {_VISIBLE} AND deliveries < %(max)s ORDER BY id LIMIT %(n)s FOR UPDATE SKIP LOCKED"
)
_DROP = "DELETE FROM queue_messages WHERE id = ANY(%(ids)b::bigint[])"
_EXTEND = (
    f"UPDATE queue_messages SET visible_at = {_NOW} + %(lease)s "
    "WHERE receipt = ANY(%(receipts)b::text[]) RETURNING receipt"
)
_DELETE = "DELETE FROM queue_messages WHERE receipt = ANY(%(receipts)b::text[]) RETURNING receipt"
#: The longest a waiting receiver sleeps before it looks again (a send from another machine rings no bell).
POLL = 0.2


class StoreBroker:
    """The queues of one PostgreSQL store; ``wakeups`` (the home's) wake receivers of this machine at once."""

    def __init__(self, store: Store, *, wakeups: WakeupHub | None = None, max_deliveries: int = MAX_DELIVERIES) -> None:
        self.store = store
        self.wakeups = wakeups
        self.max_deliveries = max_deliveries
        self._relay: NotifyRelay | None = None
        self._relay_lock = threading.Lock()

    def listen(self) -> None:
        """Relay the database's notifications of sends (from any machine) to this home's wake-ups; once.

        Started by the first receiver that waits; without wake-ups there is nothing to relay to.
        """
        if self.wakeups is None or self._relay is not None:
            return
        with self._relay_lock:
            if self._relay is None:
                dialect, url = self.store.engine.dialect, self.store.engine.url

                def connect() -> Any:  # the store's own driver and URL, one connection outside the pool
                    cargs, cparams = dialect.create_connect_args(url)
                    return dialect.connect(*cargs, **{**cparams, "autocommit": True, "connect_timeout": 10})

                lost = dialect.loaded_dbapi.OperationalError
                self._relay = NotifyRelay(connect, lost, self.wakeups.notify).start()

    def close(self) -> None:
        """Stop relaying notifications (and close that connection)."""
        with self._relay_lock:
            relay, self._relay = self._relay, None
        if relay is not None:
            relay.stop()

    def queue(self, name: str) -> StoreQueue:
        """The queue called ``name``."""
        return StoreQueue(self, name)

    def notify(self, name: str) -> None:
        """Wake this machine's receivers of ``name`` (after a commit)."""
        if self.wakeups is not None:
            self.wakeups.notify(name)


class StoreQueue(Queue):
    """One named queue inside the store's ``queue_messages`` table."""

    poll = POLL

    def __init__(self, broker: StoreBroker, name: str) -> None:
        self.broker = broker
        self.name = name

    @property
    def _store(self) -> Store:
        return self.broker.store

    def send(self, body: str, *, delay: float = 0.0) -> str:
        return self.send_many([body], delay=delay)[0]

    def send_many(self, bodies: Sequence[str], *, delay: float = 0.0) -> list[str]:
        if not bodies:
            return []
        with self._store.write() as conn:
            ids = self._insert(conn, bodies, delay)
        self.broker.notify(self.name)
        return ids

    def insert_in(self, conn: Connection, bodies: Sequence[str]) -> list[str]:
        """Send ``bodies`` in the caller's transaction of this store (visible at its commit); their ids.

        The caller wakes this home's receivers after the commit (``broker.notify``); other machines
        hear the database's notification.
        """
        return self._insert(conn, bodies)

    def _insert(self, conn: Connection, bodies: Sequence[str], delay: float = 0.0) -> list[str]:
        # One statement for any number of bodies (an array): its text never changes, so psycopg and the
        # server parse it once, where a multi-row VALUES was a new, long statement for every batch size.
        # The ids are drawn in the array's order, so sorted they match the bodies. Arrays go in binary
        # (``%(x)b``): psycopg's text format escapes every element with a regex, 10x slower.
        rows = conn.exec_driver_sql(_INSERT, {"queue": self.name, "delay": delay, "bodies": list(bodies)})
        return [str(i) for i in sorted(rows.scalars().all())]

    def take_in(self, conn: Connection, max_messages: int) -> list[Message]:
        """Up to ``max_messages`` visible messages, locked in the caller's transaction instead of leased.

        Another process skips them while the transaction lasts; :meth:`drop_in` in the same
        transaction removes them at its commit, and a rollback (or a crash) leaves them untouched
        and visible at once. No delivery is counted: a caller whose work on them fails should
        fall back to :meth:`receive`, whose leases count and dead-letter.
        """
        params = {"queue": self.name, "n": max_messages, "max": self.broker.max_deliveries}
        rows = conn.exec_driver_sql(_TAKE, params).all()
        return [Message(str(i), body, "", n) for i, body, n in rows]

    def drop_in(self, conn: Connection, messages: Sequence[Message]) -> None:
        """Delete messages taken by :meth:`take_in`, in the same transaction."""
        if messages:
            conn.exec_driver_sql(_DROP, {"ids": [int(m.id) for m in messages]})

    def send_and_ack(
        self,
        bodies: Sequence[str],
        source: Queue,
        messages: Sequence[Message],
        records: Sequence[tuple[str, bytes]] = (),
    ) -> list[bool]:
        """Records, sends and acks in one transaction when ``source`` is a queue of the same store."""
        if not isinstance(source, StoreQueue) or source.broker.store is not self._store:
            return super().send_and_ack(bodies, source, messages, records)
        with self._store.write() as conn:
            if records:
                put_rows(conn, records)
            if bodies:
                self._insert(conn, bodies)
            done = _delete(conn, messages)
        if bodies:
            self.broker.notify(self.name)
        return done

    def keeps_records_of(self, blobs: object) -> bool:
        """True for the blob store of the same database: a runner's records commit with its events and acks."""
        return isinstance(blobs, StoreBlobStore) and blobs.store is self._store

    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + wait
        hub = self.broker.wakeups
        # Bound before looking, so a send between the look and the sleep still wakes us.
        listener = hub.listener(self.name) if wait > 0 and hub is not None else None
        if listener is not None:
            self.broker.listen()  # sends from other machines ring it too
        look = True
        while True:
            got = self._lease(max_messages, lease, look=look)
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            if listener is None:
                time.sleep(min(self.poll, left))
            else:
                # Rung by a send: something is there, so the next try leases without looking first.
                look = not listener.wait(min(self.poll, left))

    def _lease(self, max_messages: int, lease: float, *, look: bool = True) -> list[Message]:
        # Cheap look first (a read, no row locks), so idle receivers write nothing.
        if look:
            with self._store.read() as conn:
                if conn.exec_driver_sql(_LOOK, {"queue": self.name}).first() is None:
                    return []
        token = secrets.token_hex(8) + "-"
        params: dict[str, object] = {"queue": self.name, "n": max_messages, "lease": lease, "token": token}
        if self.name.endswith(DLQ_SUFFIX):
            statement = _LEASE
        else:
            statement = _LEASE_OR_RETIRE
            params.update(dlq=self.name + DLQ_SUFFIX, max=self.broker.max_deliveries)
        with self._store.write() as conn:
            rows = conn.exec_driver_sql(statement, params).all()
        return sorted((Message(str(i), body, receipt, n) for i, body, receipt, n in rows), key=lambda m: int(m.id))

    def ack(self, message: Message) -> bool:
        return self.ack_many([message])[0]

    def ack_many(self, messages: Sequence[Message]) -> list[bool]:
        """Ack several messages in one statement (a receipt names one delivery of one message)."""
        if not messages:
            return []
        with self._store.write() as conn:
            return _delete(conn, messages)

    def extend(self, message: Message, lease: float) -> bool:
        return self.extend_many([message], lease)[0]

    def extend_many(self, messages: Sequence[Message], lease: float) -> list[bool]:
        """Extend several leases in one statement (a runner's heartbeat)."""
        if not messages:
            return []
        with self._store.write() as conn:
            receipts = [m.receipt for m in messages]
            kept = set(conn.exec_driver_sql(_EXTEND, {"receipts": receipts, "lease": lease}).scalars().all())
        return [m.receipt in kept for m in messages]

    def depth(self) -> int:
        with self._store.read() as conn:
            return int(conn.execute(select(func.count()).where(_Q.c.queue == self.name)).scalar_one())

    def dead_letters(self) -> StoreQueue | None:
        """``<name>-dlq`` in the same table; a dead-letter queue has none of its own."""
        if self.name.endswith(DLQ_SUFFIX):
            return None
        return self.broker.queue(self.name + DLQ_SUFFIX)


def _delete(conn: Connection, messages: Sequence[Message]) -> list[bool]:
    if not messages:
        return []
    gone = set(conn.exec_driver_sql(_DELETE, {"receipts": [m.receipt for m in messages]}).scalars().all())
    return [m.receipt in gone for m in messages]


class StoreQueueSet(QueueSet):
    """The ``tasks``, ``control`` and ``events`` queues of one target, in the store."""

    def __init__(self, broker: StoreBroker, target: str) -> None:
        self.broker = broker
        self.target = target

    def get(self, kind: str) -> StoreQueue:
        return self.broker.queue(f"{self.target}.{kind}")
