"""The embedded queues pass the queue conformance suite (and what their dead letters become)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core.queues import Queue
from mayfly.core.queues.embedded import EmbeddedBroker
from mayfly.testing import QueueConformance


class TestEmbeddedQueue(QueueConformance):
    max_body_bytes = None
    short_lease = 0.5
    lease_slack = 3.0

    @pytest.fixture
    def queue(self, tmp_path: Path) -> Iterator[Queue]:
        broker = EmbeddedBroker(tmp_path / "queues.db")
        yield broker.queue("t.tasks")
        broker.close()


class TestStoreQueue(QueueConformance):
    """The queues in the PostgreSQL store (issue 17 part 3): a pool of runners on several machines shares them."""

    max_body_bytes = None
    short_lease = 0.5
    lease_slack = 3.0

    @pytest.fixture
    def queue(self, pg_url: str) -> Iterator[Queue]:
        from mayfly.core.queues.store import StoreBroker
        from mayfly.core.store import Store

        store = Store(pg_url)
        yield StoreBroker(store).queue("t.tasks")
        store.close()
