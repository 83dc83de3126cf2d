"""Cross-machine wake-ups for the queues in PostgreSQL: LISTEN/NOTIFY relayed to the home's wake-ups.

A send to a queue in the store notifies channel :data:`CHANNEL` with the queue's name
(a trigger on ``queue_messages``, migration 0011), whichever machine sent it. Each
process that waits on such a queue keeps one connection listening there and pokes its
home's wake-ups (:mod:`.wakeup`) for every notification, so a runner on host C wakes
for a task a server on host A queued, as one on host A would, instead of finding it at
its next poll.

Notifications are a hint, never the message: a receiver still leases from the table,
and still polls every ``poll`` seconds, so a notification lost while the listening
connection is down (a database restart) costs at most one poll interval. The relay
reconnects on its own backoff (:mod:`mayfly.core.outage`), one log line per outage.

PostgreSQL keeps notifications until every listening connection has read them; a
process stopped (SIGSTOP) while listening holds that queue back (8 GB by default:
``SELECT pg_notification_queue_usage()`` shows its use). docs/scale.md has the figures.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from mayfly.core.errors import StoreUnavailable
from mayfly.core.outage import Outage, forever

log = logging.getLogger("mayfly.queues")

#: The channel the trigger of migration 0011 notifies, with the queue's name as the payload.
CHANNEL = "mayfly_queues"
#: Seconds one wait for notifications lasts before the relay looks whether it was stopped (how long a close waits).
WAIT_SLICE = 0.25


class NotifyRelay:
    """One listening connection; calls ``on_notify(queue)`` for every notification, until stopped."""

    def __init__(self, connect: Callable[[], Any], lost: type[Exception], on_notify: Callable[[str], None]) -> None:
        #: Opens a new DB-API connection of the store's driver (psycopg), outside its pool, in autocommit.
        self.connect = connect
        #: The driver's error for a lost or refused connection.
        self.lost = lost
        self.on_notify = on_notify
        #: Set while LISTEN is in effect (cleared while the connection is down).
        self.listening = threading.Event()
        self.outage = Outage("queue notifications (PostgreSQL LISTEN)", log)
        self._stop = threading.Event()
        self._conn: Any = None
        self._thread = threading.Thread(target=self._run, name="mayfly-pg-listen", daemon=True)

    def start(self) -> NotifyRelay:
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        forever(self._stop, self.outage, self._relay)
        self._close()

    def _relay(self) -> None:
        """One slice: (re)connect and LISTEN when needed, then relay what arrives for up to :data:`WAIT_SLICE`."""
        try:
            if self._conn is None:
                self._listen()
            for note in self._conn.notifies(timeout=WAIT_SLICE):
                self.on_notify(note.payload)
        except self.lost as exc:  # a lost or refused connection: one line, as every loop says it
            self._close()  # the next slice connects again, after the outage's backoff
            raise StoreUnavailable(f"store unavailable: {' '.join(str(exc).split())}") from exc
        except Exception:
            self._close()
            raise

    def _listen(self) -> None:
        self._conn = self.connect()  # kept before LISTEN, so a failing LISTEN's connection is closed too
        self._conn.execute(f"LISTEN {CHANNEL}")
        self.listening.set()

    def _close(self) -> None:
        self.listening.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception as exc:  # closing a connection that already broke
                log.debug("closing the listening connection: %s", exc)
