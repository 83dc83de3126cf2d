"""Blobs in the PostgreSQL store: code packages, logs, results and run records every machine can read.

With PostgreSQL as the store, a Docker target's runners may run on several machines;
what one runner writes (a ``launched`` record, a log chunk, a result) must be read by
another runner, a control plane and the API elsewhere, so the target's blobs live in the
``blobs`` table instead of one home's folder. Each blob is one row (``bytea``): code
packages are capped by ``MAYFLY_MAX_UPLOAD_BYTES`` (100 MiB), log chunks are 256 KiB.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import BinaryIO

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert

from mayfly.core.blobs import BlobStore, check_key
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

_B = s.blobs


class StoreBlobStore(BlobStore):
    """A flat key -> bytes store in the ``blobs`` table of a PostgreSQL store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        stmt = insert(_B).values(key=key, data=data, size=len(data), created_at=now())
        stmt = stmt.on_conflict_do_update(
            index_elements=[_B.c.key],
            set_={"data": stmt.excluded.data, "size": stmt.excluded.size, "created_at": stmt.excluded.created_at},
        )
        with self.store.write() as conn:
            conn.execute(stmt)

    def put_file(self, key: str, fileobj: BinaryIO) -> None:
        self.put(key, fileobj.read())

    def get(self, key: str) -> bytes:
        check_key(key)
        with self.store.read() as conn:
            data = conn.execute(select(_B.c.data).where(_B.c.key == key)).scalar()
        if data is None:
            raise KeyError(key)
        return bytes(data)

    def open(self, key: str) -> BinaryIO:
        return io.BytesIO(self.get(key))

    def exists(self, key: str) -> bool:
        check_key(key)
        with self.store.read() as conn:
            return conn.execute(select(_B.c.key).where(_B.c.key == key)).first() is not None

    def list(self, prefix: str) -> Iterator[str]:
        with self.store.read() as conn:
            keys = (
                conn.execute(select(_B.c.key).where(_B.c.key.startswith(prefix, autoescape=True)).order_by(_B.c.key))
                .scalars()
                .all()
            )
        yield from keys

    def delete(self, key: str) -> None:
        check_key(key)
        with self.store.write() as conn:
            conn.execute(delete(_B).where(_B.c.key == key))
