"""Queues between the control plane and runners: lease, extend, ack (at-least-once).

Every target has three queues, used the same way on every backend:

* ``tasks``   control plane → runners: one message per (task, attempt) that may start now;
* ``control`` control plane → runners: cancel requests;
* ``events``  runners → control plane: started / exited / launch_failed / lost.

A received message is leased (invisible to other receivers) until it is acked
or its lease expires, after which it is delivered again. Receivers must
therefore be idempotent. The embedded backend (:mod:`.embedded`) stores messages
in SQLite; SQS, Pub/Sub and Azure Storage Queue backends live with their providers.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Message:
    """One delivery of a message."""

    #: Stable id of the message (the same across redeliveries).
    id: str
    body: str
    #: Token of this delivery; ack and extend only work with the current one.
    receipt: str
    #: 1 on the first delivery, 2 on the first redelivery, ...
    deliveries: int


class Queue(abc.ABC):
    """One named queue."""

    name: str

    @abc.abstractmethod
    def send(self, body: str, *, delay: float = 0.0) -> str:
        """Enqueue ``body`` (visible after ``delay`` seconds); return the message id."""

    def send_many(self, bodies: Sequence[str]) -> list[str]:
        """Enqueue several bodies; backends batch where they can."""
        return [self.send(body) for body in bodies]

    @abc.abstractmethod
    def receive(self, max_messages: int = 1, *, wait: float = 0.0, lease: float = 30.0) -> list[Message]:
        """Lease up to ``max_messages`` visible messages, waiting up to ``wait`` seconds for one."""

    @abc.abstractmethod
    def ack(self, message: Message) -> bool:
        """Delete the message; False when the lease was lost (it was or will be redelivered)."""

    def ack_many(self, messages: Sequence[Message]) -> list[bool]:
        """Ack several messages; backends batch where they can."""
        return [self.ack(m) for m in messages]

    @abc.abstractmethod
    def extend(self, message: Message, lease: float) -> bool:
        """Keep the message leased for ``lease`` more seconds; False when the lease was lost."""

    def send_and_ack(
        self,
        bodies: Sequence[str],
        source: Queue,
        messages: Sequence[Message],
        records: Sequence[tuple[str, bytes]] = (),
    ) -> list[bool]:
        """Send ``bodies`` here, then ack ``messages`` of ``source``; the acks' results.

        No message is acked before every body is durably sent (a crash in between at
        worst redelivers what was already reported). Backends that can do both in one
        transaction do. ``records`` (blob key, data) are written first, in the same
        transaction: only given when :meth:`keeps_records_of` said so for their blob store.
        """
        if records:
            raise ValueError(f"queue {self.name!r} cannot write blobs in its transactions")
        if bodies:
            self.send_many(bodies)
        return source.ack_many(messages) if messages else []

    def keeps_records_of(self, blobs: object) -> bool:
        """True when :meth:`send_and_ack` can write ``blobs``' records in its own transaction (one database)."""
        return False

    def extend_many(self, messages: Sequence[Message], lease: float) -> list[bool]:
        """Extend several leases; backends batch where they can."""
        return [self.extend(m, lease) for m in messages]

    @abc.abstractmethod
    def depth(self) -> int:
        """Number of messages in the queue, leased or not."""

    def dead_letters(self) -> Queue | None:
        """Where messages go once delivered too many times without an ack; None when the backend has no such queue.

        A message that keeps coming back (a runner that crashes on it, a lease lost again and
        again) must not circulate for ever: after a backend's maximum number of deliveries it is
        moved there, and the control plane ends its task (see ``core.control``).
        """
        return None


class QueueSet(abc.ABC):
    """The queues of one target."""

    @abc.abstractmethod
    def get(self, kind: str) -> Queue:
        """The ``tasks``, ``control`` or ``events`` queue."""

    def close(self) -> None:
        """Release connections."""
