"""Completion webhooks: the outbox, the per-project signing secret, the delivery log, the signature.

The transaction that gives a task its terminal status also inserts its
delivery into ``webhook_deliveries`` (:func:`enqueue`, called only from
:mod:`.lifecycle`); nothing is sent inline. The deliverer (:mod:`.delivery`)
sends due rows afterwards, so a crash between the two loses nothing: the row
waits in the store for the next deliverer. Each attempt is a row; a failed
attempt inserts the next one with its due time.

Signature: ``X-Mayfly-Signature: sha256=<hex>``, the HMAC-SHA256 of
``"<X-Mayfly-Timestamp>.<body>"`` keyed with the project's secret
(``mayfly project webhook-secret``). Receivers recompute it, compare in
constant time, and reject old timestamps to stop replays.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sqlalchemy import Connection, func, insert, select, update

from mayfly.core.errors import NotFound
from mayfly.core.ids import new_id
from mayfly.core.models import TaskStatus
from mayfly.core.records import Delivery
from mayfly.core.store import Store
from mayfly.core.store import schema as s

SECRET_PREFIX = "whsec_"
#: Receivers should refuse signatures older than this (seconds); the docs' example does.
TOLERANCE = 300


@dataclass(frozen=True)
class Ended:
    """A task that has just reached a terminal status."""

    task_id: str
    project_id: str
    webhook: str | None


def event_name(status: str) -> str:
    """``task.complete``, ``task.error``, ``task.cancelled``, ``task.timeout``."""
    return f"task.{status}"


def enqueue(conn: Connection, ended: Iterable[Ended], status: TaskStatus, now: float) -> int:
    """Insert the first delivery attempt of every ended task that has a webhook; inside its transaction."""
    rows = [
        {
            "delivery_id": new_id(),
            "task_id": e.task_id,
            "project_id": e.project_id,
            "status": status.value,
            "attempt": 1,
            "url": e.webhook,
            "created_at": now,
            "next_attempt_at": now,
            "delivered": False,
        }
        for e in ended
        if e.webhook
    ]
    if rows:
        conn.execute(insert(s.webhook_deliveries), rows)
    return len(rows)


def new_secret() -> str:
    """A fresh signing secret (256 random bits)."""
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Mayfly-Signature`` value of a body sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify(secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        ts = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - ts) > TOLERANCE:
        return False
    return hmac.compare_digest(sign(secret, ts, body), signature)


class WebhookService:
    """A project's signing secret and a task's delivery attempts."""

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def secret(self, project_id: str, *, rotate: bool = False) -> str:
        """The project's signing secret, created on first use; ``rotate`` replaces it."""
        with self.store.read() as conn:
            current = self._secret(conn, project_id)
        if current is not None and not rotate:
            return current
        with self.store.write() as conn:
            q = update(s.projects).where(s.projects.c.id == project_id)
            if not rotate:
                q = q.where(s.projects.c.webhook_secret.is_(None))  # a concurrent first use wins once
            conn.execute(q.values(webhook_secret=new_secret()))
            made = self._secret(conn, project_id)
        if made is None:
            raise NotFound(f"unknown project {project_id!r}")
        return made

    @staticmethod
    def _secret(conn: Connection, project_id: str) -> str | None:
        value = conn.execute(select(s.projects.c.webhook_secret).where(s.projects.c.id == project_id)).scalar()
        return str(value) if value is not None else None

    def deliveries(self, project_id: str, task_id: str) -> list[Delivery]:
        """Every delivery attempt of a task of the project, oldest first (the pending one last)."""
        with self.store.read() as conn:
            rows = conn.execute(
                select(s.webhook_deliveries)
                .where(s.webhook_deliveries.c.task_id == task_id, s.webhook_deliveries.c.project_id == project_id)
                .order_by(s.webhook_deliveries.c.id)
            ).mappings()
            return [Delivery.from_row(r) for r in rows]

    def pending_count(self, project_id: str | None = None) -> int:
        """Delivery attempts waiting to be sent: one project's, or every project's (metrics)."""
        q = select(func.count()).select_from(s.webhook_deliveries).where(s.webhook_deliveries.c.attempted_at.is_(None))
        if project_id is not None:
            q = q.where(s.webhook_deliveries.c.project_id == project_id)
        with self.store.read() as conn:
            return int(conn.execute(q).scalar_one())
