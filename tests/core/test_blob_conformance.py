"""The local blob store passes the blob store conformance suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mayfly.core.blobs import BlobStore
from mayfly.core.blobs.local import LocalBlobStore
from mayfly.testing import BlobStoreConformance


class TestLocalBlobStore(BlobStoreConformance):
    urls_unsupported = "the local store signs no URLs: the Docker provider bind-mounts the task's files instead"

    @pytest.fixture
    def store(self, tmp_path: Path) -> BlobStore:
        return LocalBlobStore(tmp_path / "blobs")


class TestStoreBlobStore(BlobStoreConformance):
    """Blobs in the PostgreSQL store (issue 17 part 3): every machine of a runner pool reads them."""

    urls_unsupported = "the store signs no URLs: its runners read blobs through the database"

    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[BlobStore]:
        from mayfly.core.blobs.store import StoreBlobStore
        from mayfly.core.store import Store

        db = Store(pg_url)
        yield StoreBlobStore(db)
        db.close()


def test_store_blobs_share_transactions_across_a_runners_threads(pg_url: str) -> None:
    """A runner's attempt threads writing and reading run records at once share transactions (issue 17).

    Before, each put was a transaction of its own: 60 threads, 60 write transactions (and the
    runner of ``python -m bench postgres`` spent its time in them). Every caller still sees
    its own write done and reads right, duplicate keys in one batch included.
    """
    import threading

    from sqlalchemy import text

    from mayfly.core.blobs.store import StoreBlobStore
    from mayfly.core.store import Store

    db = Store(pg_url)
    blobs = StoreBlobStore(db)
    n = 60
    start = threading.Barrier(n)
    seen: dict[int, tuple[bool, list[str], bytes]] = {}

    def xid() -> int:
        with db.write() as conn:
            return int(conn.execute(text("SELECT txid_current()")).scalar_one())

    def attempt(i: int) -> None:
        start.wait()
        blobs.put(f"runs/t{i}/1/launched", b"L%d" % i)
        blobs.put("runners/shared", b"beat")  # every thread the same key: last one wins, no conflict error
        seen[i] = (
            blobs.exists(f"runs/t{i}/1/launched"),
            list(blobs.list(f"runs/t{i}/")),
            blobs.get(f"runs/t{i}/1/launched"),
        )

    before = xid()
    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writes = xid() - before - 1
    try:
        assert seen == {i: (True, [f"runs/t{i}/1/launched"], b"L%d" % i) for i in range(n)}
        assert blobs.get("runners/shared") == b"beat"
        assert writes < n, f"{2 * n} puts from {n} threads took {writes} write transactions"
    finally:
        db.close()
