"""Embedded queues in one SQLite file (``$MAYFLY_HOME/queues.db``): the local target's transport.

They behave like the cloud queues Mayfly uses (SQS, Pub/Sub, Azure Storage
Queue): a received message is leased, not removed; it comes back when its lease
expires unless it is acked; ``extend`` is the heartbeat of a long task. Several
processes on one home share the file. A waiting receiver, in this process or
another, is woken by the send itself (:mod:`.wakeup`), not by a polling timer.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mayfly.core.config import store_busy_timeout
from mayfly.core.dbfaults import storage_faults, writer_turn
from mayfly.core.queues import Message, Queue, QueueSet
from mayfly.core.queues.wakeup import WakeupHub

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue TEXT NOT NULL,
    body TEXT NOT NULL,
    visible_at REAL NOT NULL,
    receipt TEXT,
    deliveries INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_messages_visible ON messages (queue, visible_at, id);
"""

#: Without wake-ups (not Linux) a receiver polls, backing off to this.
_MAX_POLL = 0.1
#: The longest a receiver sleeps without looking again (a safety net: wake-ups are not expected to be lost).
_MAX_SLEEP = 1.0
#: Deliveries before a message moves to its queue's dead letters: the cloud stacks' redrive count.
MAX_DELIVERIES = 5
#: Connections a broker keeps open between operations. Threads borrow one per operation: a
#: connection per thread held one (a file, its WAL index mapping and its page cache) for every
#: thread a runner ever ran, ~50 KB each, 1,000 of them with 1,000 containers watched.
POOL_SIZE = 8
#: Suffix of a queue's dead-letter queue (``local.tasks`` -> ``local.tasks-dlq``).
DLQ_SUFFIX = "-dlq"


class EmbeddedBroker:
    """The SQLite file and the wake-ups shared by all queues of a home (across its processes)."""

    def __init__(self, path: Path, *, max_deliveries: int = MAX_DELIVERIES) -> None:
        self.path = path
        self.max_deliveries = max_deliveries
        self._idle: list[sqlite3.Connection] = []
        self._pool_lock = threading.Lock()
        self._closed = False
        self._write_lock = threading.Lock()
        try:
            self._lock_fd = os.open(path.with_name(path.name + ".wlock"), os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            self._lock_fd = -1  # a read-only folder, say: writers wait in SQLite's busy loop
        self.wakeups = WakeupHub(path.with_name(path.stem + "-wake"))
        with storage_faults(), self.connection() as conn:
            conn.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        with storage_faults():
            conn = sqlite3.connect(
                self.path, timeout=store_busy_timeout(), isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation: an idle one of the pool, else a new one (see :data:`POOL_SIZE`)."""
        with self._pool_lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            conn = self._connect()
        try:
            yield conn
        finally:
            with self._pool_lock:
                keep = not self._closed and not conn.in_transaction and len(self._idle) < POOL_SIZE
                if keep:
                    self._idle.append(conn)
            if not keep:
                conn.close()

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on a connection of the pool (taken once it is this writer's turn).

        Writers queue for SQLite's write lock on a mutex (threads of this process) and a
        ``flock`` on ``<file>.wlock`` (other processes), which wake the next writer the
        moment the lock is free. Left to SQLite, a writer that finds the lock taken sleeps
        1, 2, 5, 10... ms before it looks again: a control plane polling its events lost
        half its time so while a runner's threads committed. SQLite's own lock still
        guards correctness; the two only decide who goes next.

        A lock held past the busy timeout, a full disk or a read-only file raise
        :class:`~mayfly.core.errors.StoreUnavailable` (:mod:`mayfly.core.dbfaults`), and
        a failed commit is rolled back so the connection is usable once the fault clears.
        """
        with storage_faults(), writer_turn(self._write_lock), self.connection() as conn:
            if self._lock_fd >= 0:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
            finally:
                if self._lock_fd >= 0:
                    fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def queue(self, name: str) -> EmbeddedQueue:
        return EmbeddedQueue(self, name)

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self.wakeups.close()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1


class EmbeddedQueue(Queue):
    """One named queue inside an :class:`EmbeddedBroker`."""

    #: The longest a waiting receiver sleeps before looking again on its own.
    max_sleep = _MAX_SLEEP

    def __init__(self, broker: EmbeddedBroker, name: str) -> None:
        self.broker = broker
        self.name = name

    def send(self, body: str, *, delay: float = 0.0) -> str:
        return self.send_many([body], delay=delay)[0]

    def send_many(self, bodies: Sequence[str], *, delay: float = 0.0) -> list[str]:
        with self.broker.write() as conn:
            ids = self._insert(conn, bodies, delay)
        self.broker.wakeups.notify(self.name)
        return ids

    def _insert(self, conn: sqlite3.Connection, bodies: Sequence[str], delay: float = 0.0) -> list[str]:
        now = time.time()
        ids: list[str] = []
        for body in bodies:
            cur = conn.execute(
                "INSERT INTO messages (queue, body, visible_at, created_at) VALUES (?, ?, ?, ?)",
                (self.name, body, now + delay, now),
            )
            ids.append(str(cur.lastrowid))
        return ids

    def send_and_ack(
        self,
        bodies: Sequence[str],
        source: Queue,
        messages: Sequence[Message],
        records: Sequence[tuple[str, bytes]] = (),
    ) -> list[bool]:
        """Both in one transaction when ``source`` lives in the same file: the sends and acks commit together."""
        if records or not isinstance(source, EmbeddedQueue) or source.broker is not self.broker:
            return super().send_and_ack(bodies, source, messages, records)
        with self.broker.write() as conn:
            self._insert(conn, bodies)
            done = [_delete(conn, m) for m in messages]
        if bodies:
            self.broker.wakeups.notify(self.name)
        return done

    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list[Message]:
        deadline = time.monotonic() + wait
        # Bound before looking, so a send between the look and the sleep still wakes us.
        listener = self.broker.wakeups.listener(self.name) if wait > 0 else None
        pause = 0.005
        while True:
            got = self._lease(max_messages, lease)
            left = deadline - time.monotonic()
            if got or left <= 0:
                return got
            if listener is None:
                time.sleep(min(pause, left))
                pause = min(pause * 2, _MAX_POLL)
            else:
                listener.wait(min(left, self._next_visible_in()))

    def _next_visible_in(self) -> float:
        """Seconds until the next delayed or leased message becomes visible (capped)."""
        with storage_faults(), self.broker.connection() as conn:
            row = conn.execute("SELECT MIN(visible_at) FROM messages WHERE queue = ?", (self.name,)).fetchone()
        if row is None or row[0] is None:
            return self.max_sleep
        return min(self.max_sleep, max(0.001, float(row[0]) - time.time()))

    def _lease(self, max_messages: int, lease: float) -> list[Message]:
        now = time.time()
        # Cheap unlocked peek first, so idle receivers never take the write lock.
        with storage_faults(), self.broker.connection() as conn:
            found = conn.execute(
                "SELECT 1 FROM messages WHERE queue = ? AND visible_at <= ? LIMIT 1", (self.name, now)
            ).fetchone()
        if found is None:
            return []
        receipt = secrets.token_hex(8)
        with self.broker.write() as conn:
            if not self.name.endswith(DLQ_SUFFIX):
                # As SQS's redrive: a message received max_deliveries times moves on its next receive.
                conn.execute(
                    "UPDATE messages SET queue = ?, deliveries = 0, receipt = NULL"
                    " WHERE queue = ? AND visible_at <= ? AND deliveries >= ?",
                    (self.name + DLQ_SUFFIX, self.name, now, self.broker.max_deliveries),
                )
            rows = conn.execute(
                "SELECT id, body, deliveries FROM messages WHERE queue = ? AND visible_at <= ? ORDER BY id LIMIT ?",
                (self.name, now, max_messages),
            ).fetchall()
            if rows:
                conn.executemany(
                    "UPDATE messages SET visible_at = ?, receipt = ?, deliveries = deliveries + 1 WHERE id = ?",
                    [(now + lease, f"{receipt}-{row[0]}", row[0]) for row in rows],
                )
        return [Message(str(i), body, f"{receipt}-{i}", deliveries + 1) for i, body, deliveries in rows]

    def ack(self, message: Message) -> bool:
        return self.ack_many([message])[0]

    def ack_many(self, messages: Sequence[Message]) -> list[bool]:
        """Ack several messages in one transaction."""
        with self.broker.write() as conn:
            return [_delete(conn, m) for m in messages]

    def extend(self, message: Message, lease: float) -> bool:
        return self.extend_many([message], lease)[0]

    def extend_many(self, messages: Sequence[Message], lease: float) -> list[bool]:
        """Extend several leases in one transaction (a runner's heartbeat: one commit, not one per task)."""
        until = time.time() + lease
        with self.broker.write() as conn:
            return [
                conn.execute(
                    "UPDATE messages SET visible_at = ? WHERE id = ? AND receipt = ?", (until, int(m.id), m.receipt)
                ).rowcount
                == 1
                for m in messages
            ]

    def depth(self) -> int:
        with storage_faults(), self.broker.connection() as conn:
            row = conn.execute("SELECT COUNT(*) FROM messages WHERE queue = ?", (self.name,)).fetchone()
        return int(row[0])

    def dead_letters(self) -> EmbeddedQueue | None:
        """``<name>-dlq`` in the same file; a dead-letter queue has none of its own."""
        if self.name.endswith(DLQ_SUFFIX):
            return None
        return self.broker.queue(self.name + DLQ_SUFFIX)


def _delete(conn: sqlite3.Connection, message: Message) -> bool:
    cur = conn.execute("DELETE FROM messages WHERE id = ? AND receipt = ?", (int(message.id), message.receipt))
    return cur.rowcount == 1


class EmbeddedQueueSet(QueueSet):
    """The ``tasks``, ``control`` and ``events`` queues of one target, in one broker."""

    def __init__(self, broker: EmbeddedBroker, target: str) -> None:
        self.broker = broker
        self.target = target

    def get(self, kind: str) -> EmbeddedQueue:
        return self.broker.queue(f"{self.target}.{kind}")
