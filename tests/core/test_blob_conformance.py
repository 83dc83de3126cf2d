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
