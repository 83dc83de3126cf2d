"""The queue conformance suite: what every Mayfly queue backend must do, as pytest tests.

Runners and control planes rely on these properties of a :class:`~mayfly.core.queues.Queue`
and nothing else, so a backend (embedded SQLite, SQS, Pub/Sub, Azure Storage Queue, ...)
is ready when its subclass of :class:`QueueConformance` passes::

    import pytest
    from mayfly.testing import QueueConformance

    class TestMyQueue(QueueConformance):
        max_body_bytes = 64 * 1024          # the cap the backend enforces (None: no cap)
        dead_letter_after = 5               # deliveries before a message is dead-lettered

        @pytest.fixture
        def queue(self):
            q = make_a_fresh_empty_queue()
            yield q
            delete_it(q)

What is checked: send/receive/ack, the lease and its extension, redelivery after the
lease expires (with a new receipt; the old one no longer acks or extends), dead-letter
after ``dead_letter_after`` deliveries, batch send and ack, the body size cap (refused
with a typed error, nothing sent), delays, and that a poisoned message being redelivered
does not block the others. No ordering is assumed: queues may deliver in any order.
A backend that cannot count its messages declares it (``depth_unsupported``) and must then
raise a MayflyError from ``depth``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import ClassVar

import pytest

from mayfly.core.errors import MayflyError
from mayfly.core.queues import Message, Queue

__all__ = ["QueueConformance"]


def _receive_all(queue: Queue, count: int, *, lease: float = 30.0, limit: float = 30.0) -> list[Message]:
    """Receive until ``count`` messages are leased (or ``limit`` seconds pass); no order assumed."""
    got: dict[str, Message] = {}
    deadline = time.monotonic() + limit
    while len(got) < count and time.monotonic() < deadline:
        for m in queue.receive(min(10, count - len(got)), wait=1.0, lease=lease):
            got[m.id] = m
    return list(got.values())


def _eventually(what: str, check: Callable[[], list[Message]], limit: float) -> list[Message]:
    """Call ``check`` until it returns messages; fail naming ``what`` after ``limit`` seconds."""
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: nothing within {limit:.0f} s")


class QueueConformance:
    """Base class of a queue backend's conformance tests; see the module docstring."""

    #: Largest body the backend accepts (bytes of UTF-8); None when it declares no cap.
    max_body_bytes: ClassVar[int | None] = None
    #: Deliveries after which the backend moves a message to its dead-letter queue.
    dead_letter_after: ClassVar[int] = 5
    #: The shortest lease the backend honours, in seconds (SQS counts whole seconds).
    short_lease: ClassVar[float] = 1.0
    #: Seconds a backend may take beyond a lease's end to make the message visible again.
    lease_slack: ClassVar[float] = 10.0
    #: Why the backend cannot count its messages (None: ``depth`` must be exact). A backend that
    #: declares it must raise a MayflyError from ``depth``; the depth checks are then skipped.
    depth_unsupported: ClassVar[str | None] = None
    #: Why the backend may count a delivery its consumer never got (None: it never does). A
    #: backend that declares it must still count up, and dead-letter at ``dead_letter_after``.
    lost_deliveries: ClassVar[str | None] = None
    #: Seconds until a lost delivery is delivered again (the backend's own default lease).
    lost_delivery_delay: ClassVar[float] = 0.0

    def _depth_is(self, queue: Queue, expected: int) -> bool:
        """``queue.depth() == expected``, or True when the backend declares ``depth_unsupported``."""
        if self.depth_unsupported is not None:
            with pytest.raises(MayflyError):
                queue.depth()
            return True
        return queue.depth() == expected

    @pytest.fixture
    def queue(self) -> Queue:
        """A fresh, empty queue of the backend under test. Override it."""
        pytest.fail(f"{type(self).__name__} must override the 'queue' fixture")

    # ------------------------------------------------------------ send, receive, ack

    def test_send_receive_ack(self, queue: Queue) -> None:
        body = '{"n": 7, "text": "caf\u00e9 \u2603"}'
        message_id = queue.send(body)
        (m,) = _receive_all(queue, 1)
        assert (m.id, m.body, m.deliveries) == (message_id, body, 1)
        assert self._depth_is(queue, 1), "a leased message still counts in the depth"
        assert queue.receive(1) == [], "a leased message is hidden from other receivers"
        assert queue.ack(m) is True
        assert self._depth_is(queue, 0)

    def test_an_empty_queue_receives_nothing(self, queue: Queue) -> None:
        assert queue.receive(5) == []
        assert self._depth_is(queue, 0)

    # ------------------------------------------------------------ leases

    def test_the_lease_expires_and_the_message_comes_back(self, queue: Queue) -> None:
        queue.send("again")
        (first,) = _receive_all(queue, 1, lease=self.short_lease)
        again = _eventually(
            "redelivery after the lease", lambda: queue.receive(1, wait=1.0), self.short_lease + self.lease_slack
        )
        (second,) = again
        assert (second.id, second.body, second.deliveries) == (first.id, "again", 2)
        assert second.receipt != first.receipt
        assert queue.ack(first) is False, "the superseded receipt must not delete the redelivered message"
        assert queue.extend(first, 30) is False, "the superseded receipt must not extend the new lease"
        assert self._depth_is(queue, 1)
        assert queue.ack(second) is True
        assert self._depth_is(queue, 0)

    def test_extend_keeps_the_message_leased(self, queue: Queue) -> None:
        queue.send("long task")
        (m,) = _receive_all(queue, 1, lease=self.short_lease)
        assert queue.extend(m, 30) is True
        time.sleep(self.short_lease + 1.0)
        assert queue.receive(1, wait=0.5) == [], "an extended lease hides the message past its first end"
        assert queue.extend_many([m], 30) == [True]
        assert queue.ack(m) is True

    # ------------------------------------------------------------ dead letters

    def test_dead_letter_after_too_many_deliveries(self, queue: Queue) -> None:
        dlq = queue.dead_letters()
        assert dlq is not None, "the backend must name its dead-letter queue (Queue.dead_letters)"
        body = f"poison-{uuid.uuid4().hex}"
        queue.send(body)
        seen = 0
        counted = 0  # the backend's count of deliveries at the newest one we saw
        last = time.monotonic()
        deadline = time.monotonic() + (self.short_lease + self.lease_slack) * (self.dead_letter_after + 2)
        if self.lost_deliveries is not None:
            deadline += self.lost_delivery_delay * self.dead_letter_after
        while time.monotonic() < deadline:
            got = queue.receive(1, wait=1.0, lease=self.short_lease)
            if got:
                seen += 1
                last = time.monotonic()
                if self.lost_deliveries is None:
                    assert got[0].deliveries == seen, f"delivery {seen} counted as {got[0].deliveries}"
                else:
                    assert got[0].deliveries > counted, f"delivery {got[0].deliveries} came after {counted}"
                counted = got[0].deliveries
            elif counted >= self.dead_letter_after:
                if self.depth_unsupported is None:
                    if queue.depth() == 0:
                        break
                elif time.monotonic() - last > self.short_lease + self.lease_slack:
                    break  # no depth to ask: a lease and its slack passed without a further delivery
        assert counted == self.dead_letter_after, f"the last delivery was number {counted}"
        if self.lost_deliveries is None:
            assert seen == self.dead_letter_after, f"delivered {seen} times, expected {self.dead_letter_after}"
        (dead,) = _eventually("the dead letter", lambda: dlq.receive(1, wait=1.0), self.lease_slack)
        assert dead.body == body
        assert dlq.ack(dead) is True
        assert self._depth_is(queue, 0)

    def test_a_poisoned_message_does_not_block_the_others(self, queue: Queue) -> None:
        queue.send("poison")
        (poison,) = _receive_all(queue, 1, lease=self.short_lease)
        bodies = {f"good-{i}" for i in range(5)}
        queue.send_many(sorted(bodies))
        received: set[str] = set()
        deadline = time.monotonic() + 30
        while received != bodies and time.monotonic() < deadline:
            for m in queue.receive(10, wait=1.0, lease=30):
                if m.body == "poison":  # redelivered while the good ones flow: leave it, never ack
                    continue
                received.add(m.body)
                assert queue.ack(m) is True
        assert received == bodies
        assert poison.body == "poison"

    # ------------------------------------------------------------ batches, size, delay

    def test_batches_send_and_ack_many(self, queue: Queue) -> None:
        bodies = [f"m{i:02d}" for i in range(25)]
        ids = queue.send_many(bodies)
        assert len(set(ids)) == 25
        got = _receive_all(queue, 25)
        assert sorted(m.body for m in got) == bodies, "every message once, in any order"
        assert {m.id for m in got} == set(ids)
        assert queue.ack_many(got) == [True] * 25
        assert self._depth_is(queue, 0)

    def test_the_size_cap(self, queue: Queue) -> None:
        if self.max_body_bytes is None:
            big = "x" * (1024 * 1024)
            queue.send(big)
            (m,) = _receive_all(queue, 1)
            assert m.body == big
            assert queue.ack(m)
            return
        at_cap = "y" * self.max_body_bytes
        queue.send(at_cap)
        with pytest.raises(MayflyError):
            queue.send(at_cap + "y")
        with pytest.raises(MayflyError):
            queue.send_many(["small", at_cap + "y"])
        got = _receive_all(queue, 1)
        assert [m.body for m in got] == [at_cap], "nothing of a refused send was enqueued"
        assert queue.ack_many(got) == [True]
        assert queue.receive(5, wait=1.0) == []

    def test_a_delayed_message_is_invisible_until_its_time(self, queue: Queue) -> None:
        queue.send("later", delay=2)
        assert queue.receive(1) == []
        (m,) = _eventually("the delayed message", lambda: queue.receive(1, wait=1.0), 2 + self.lease_slack)
        assert m.body == "later"
        assert queue.ack(m)
