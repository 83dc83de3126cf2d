"""Azure Storage queues on Azurite: the queue conformance suite, pop receipts, poison queues and 64 KiB overflow."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mayfly.core.errors import InvalidInput, InvalidSettings
from mayfly.providers.aci.blobs import AzureBlobStore
from mayfly.providers.aci.queues import (
    BLOB_MARKER,
    MAX_BODY_BYTES,
    MAX_DELIVERIES,
    MAX_INLINE_BYTES,
    AzureQueue,
    AzureQueueSet,
)
from mayfly.providers.aci.settings import AciSettings
from mayfly.providers.aci.transport import create_storage, storage_transport
from mayfly.testing import QueueConformance

# Each test talks to Azurite (started once per session); some wait out leases or expiries.
pytestmark = pytest.mark.slow


@pytest.fixture
def transport(azure_settings: AciSettings) -> Iterator[tuple[AzureQueueSet, AzureBlobStore]]:
    """The target's queues (bodies over 64 KiB to its blobs), created on Azurite."""
    create_storage(azure_settings)
    built = storage_transport(azure_settings)
    assert isinstance(built.queues, AzureQueueSet)
    assert isinstance(built.blobs, AzureBlobStore)
    yield built.queues, built.blobs
    built.queues.close()


class TestAzureQueueConformance(QueueConformance):
    max_body_bytes = MAX_BODY_BYTES
    dead_letter_after = MAX_DELIVERIES

    @pytest.fixture
    def queue(self, transport: tuple[AzureQueueSet, AzureBlobStore]) -> AzureQueue:
        return transport[0].get("tasks")


def _raw_texts(queue: AzureQueue) -> list[str]:
    """What Azure itself holds (peeked: nothing is leased)."""
    return [str(m.content) for m in queue._client.peek_messages(max_messages=32)]


def test_bodies_over_64_kib_travel_as_blobs_and_leave_with_the_ack(
    transport: tuple[AzureQueueSet, AzureBlobStore],
) -> None:

    queues, blobs = transport
    events = queues.get("events")
    inline = "i" * MAX_INLINE_BYTES
    big = '{"payload": "' + "\u2603" * MAX_INLINE_BYTES + '"}'
    lookalike = BLOB_MARKER + "queues/not-a-blob"
    events.send_many([inline, big, lookalike])
    raw = _raw_texts(events)
    assert inline in raw, "a body of exactly 64 KiB goes inline"
    references = [t for t in raw if t.startswith(BLOB_MARKER)]
    assert len(references) == 2, "the large body and the look-alike are both blob references"
    keys = [t[len(BLOB_MARKER) :] for t in references]
    assert sorted(blobs.list(f"queues/{events.name}/")) == sorted(keys)
    got = events.receive(3, wait=5)
    assert sorted(m.body for m in got) == sorted([inline, big, lookalike])
    assert events.ack_many(got) == [True, True, True]
    assert list(blobs.list(f"queues/{events.name}/")) == [], "acked: their blobs are deleted"


def test_a_poisoned_overflow_body_stays_readable_in_the_poison_queue(
    transport: tuple[AzureQueueSet, AzureBlobStore],
) -> None:
    queues, blobs = transport
    tasks = queues.get("tasks")
    body = "p" * (MAX_INLINE_BYTES + 1)
    tasks.send(body)
    for delivery in range(1, MAX_DELIVERIES + 1):
        (m,) = tasks.receive(1, wait=5, lease=1)
        assert m.deliveries == delivery
        assert tasks.extend(m, 0)  # give it back at once: the next receive redelivers it
    assert tasks.receive(1, wait=1) == [], "past the limit it is moved, not delivered"
    poison = tasks.dead_letters()
    assert poison is not None
    assert poison.name == f"{tasks.name}-poison"
    (dead,) = poison.receive(1, wait=5)
    assert dead.body == body
    assert poison.ack(dead)
    assert list(blobs.list("queues/")) == []
    assert tasks.depth() == 0


def test_an_extended_lease_keeps_its_receipt_through_many_updates(
    transport: tuple[AzureQueueSet, AzureBlobStore],
) -> None:
    control = transport[0].get("control")
    control.send("cancel t1")
    (m,) = control.receive(1, wait=5, lease=30)
    for _ in range(3):  # each Update Message returns a new pop receipt; the caller's Message stays valid
        assert control.extend(m, 30)
    assert control.extend_many([m], 30) == [True]
    assert control.ack(m)
    assert control.ack(m) is False, "an acked message is gone"
    assert control.depth() == 0


def test_without_a_blob_store_the_cap_is_64_kib(azure_settings: AciSettings) -> None:
    create_storage(azure_settings)
    queues = AzureQueueSet.from_settings(azure_settings)
    try:
        tasks = queues.get("tasks")
        with pytest.raises(InvalidInput, match="limited to 65536 bytes"):
            tasks.send("x" * (MAX_INLINE_BYTES + 1))
        with pytest.raises(InvalidInput, match="character"):
            tasks.send("nul \x00 inside")
        assert tasks.depth() == 0
    finally:
        queues.close()


def test_a_prefix_azure_refuses_is_a_settings_error(azure_settings: AciSettings) -> None:
    bad = azure_settings.model_copy(update={"queue_prefix": "Mayfly_Queues"})
    with pytest.raises(InvalidSettings, match="not a valid Azure queue name"):
        AzureQueueSet.from_settings(bad)
