"""The local blob store passes the blob store conformance suite."""

from __future__ import annotations

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
