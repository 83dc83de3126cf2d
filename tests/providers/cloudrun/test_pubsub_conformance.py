"""Pub/Sub queues pass the queue suite on the Pub/Sub emulator (dead-letter policy included)."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator

import pytest

from mayfly.core.errors import InvalidInput, NotFound, Unavailable
from mayfly.core.queues import Message, Queue
from mayfly.providers.cloudrun.google import Clients
from mayfly.providers.cloudrun.pubsub import (
    MAX_BODY_BYTES,
    PubSubQueue,
    PubSubQueueSet,
    create_queue,
    delete_queue,
)
from mayfly.testing import QueueConformance

PROJECT = "mayfly-test"

pytestmark = [
    pytest.mark.slow,
    # receive(wait=0) asks Pub/Sub not to wait, with the only flag there is for it (deprecated).
    pytest.mark.filterwarnings("ignore:The return_immediately flag:DeprecationWarning"),
]


class TestPubSubQueue(QueueConformance):
    max_body_bytes = MAX_BODY_BYTES
    dead_letter_after = 5  # the smallest max_delivery_attempts Pub/Sub accepts
    lease_slack = 3.0
    depth_unsupported = "Pub/Sub counts a backlog only in Cloud Monitoring, which the emulator lacks"
    lost_deliveries = "a pull that reaches its client deadline as Pub/Sub answers loses a counted delivery"
    lost_delivery_delay = 10.0  # create_queue's ack deadline: the lost message comes back after it

    @pytest.fixture
    def queue(self, pubsub_clients: Clients) -> Iterator[Queue]:
        q = create_queue(pubsub_clients, PROJECT, f"mayfly-{uuid.uuid4().hex[:12]}-tasks", max_delivery_attempts=5)
        yield q
        delete_queue(q)


def test_a_queue_that_does_not_exist_is_not_found(pubsub_clients: Clients) -> None:
    queues = PubSubQueueSet.named(PROJECT, f"absent-{uuid.uuid4().hex[:8]}", pubsub_clients)
    with pytest.raises(NotFound, match="tasks"):
        queues.get("tasks").receive(1)
    with pytest.raises(NotFound):
        queues.get("events").send("{}")


def test_bad_input_is_refused_before_anything_is_sent(pubsub_clients: Clients) -> None:
    q = create_queue(pubsub_clients, PROJECT, f"mayfly-{uuid.uuid4().hex[:12]}-tasks")
    try:
        with pytest.raises(InvalidInput, match="delay"):
            q.send("late", delay=601)
        with pytest.raises(InvalidInput, match="lease"):
            q.receive(1, lease=601)
        assert q.receive(5, wait=0.5) == []
    finally:
        delete_queue(q)


def test_an_unreachable_emulator_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
        q = PubSubQueue(
            f"projects/{PROJECT}/topics/nowhere", f"projects/{PROJECT}/subscriptions/nowhere", Clients(), timeout=1.0
        )
        with pytest.raises(Unavailable, match="publishing 1 message to Pub/Sub topic nowhere"):
            q.send("{}")


def test_a_receipt_pub_sub_refuses_does_not_spoil_a_batch(pubsub_clients: Clients) -> None:
    """A receipt Pub/Sub refuses (here a corrupted one) is False; the others in the same call are still done."""
    q = create_queue(pubsub_clients, PROJECT, f"mayfly-{uuid.uuid4().hex[:12]}-tasks")
    try:
        q.send("real")
        (real,) = q.receive(1, wait=5, lease=30)
        corrupted = Message(id="elsewhere-1", body="?", receipt="not-an-ack-id", deliveries=1)
        assert q.extend_many([corrupted, real], 30) == [False, True]
        assert q.ack(corrupted) is False
        assert q.ack_many([corrupted, real]) == [False, True]
        assert q.receive(5, wait=1) == []
    finally:
        delete_queue(q)
