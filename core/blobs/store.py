"""Blobs in the PostgreSQL store: code packages, logs, results and run records every machine can read.

With PostgreSQL as the store, a Docker target's runners may run on several machines;
what one runner writes (a ``launched`` record, a log chunk, a result) must be read by
another runner, a control plane and the API elsewhere, so the target's blobs live in the
``blobs`` table instead of one home's folder. Each blob is one row (``bytea``): code
packages are capped by ``MAYFLY_MAX_UPLOAD_BYTES`` (100 MiB), log chunks are 256 KiB.

A runner writes and reads small run records (``launched``, ``exited``, ``cancel``...)
from hundreds of threads at once, one per attempt. Each in its own transaction cost a
pool checkout, BEGIN, a statement and COMMIT, and the runner spent its time there (see
docs/scale.md, "Profile"). Small puts, ``exists`` and ``list`` therefore go through a
group commit (:mod:`mayfly.core.queues.batching`): the calls that arrive while one batch
is written share the next statement and transaction, and each caller still returns only
once its own write is committed (or its read done).

Each batch is one statement whatever its size: the keys (and data) travel as arrays
(``unnest``), so the statement text never changes, psycopg parses it once, and the
server plans one statement instead of one per row (docs/decisions.md, "PostgreSQL hot
path: one statement per batch").
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from typing import BinaryIO

from sqlalchemy import Connection, delete, or_, select

from mayfly.core.blobs import BlobStore, check_key
from mayfly.core.queues.batching import GroupCommit
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

_B = s.blobs
#: Puts up to this size share a statement with others; larger ones (log chunks, code packages) go alone.
SMALL_PUT = 64 * 1024
#: The most calls one batched statement carries.
MAX_BATCH = 200

# The arrays are compared in the key column's collation ("C"), so every lookup stays on the primary key.
_EXISTING = 'SELECT key FROM blobs WHERE key = ANY(%(keys)b::text[] COLLATE "C")'
_UPSERT = (
    "INSERT INTO blobs (key, data, size, created_at) "
    "SELECT k, d, length(d), %(at)s FROM unnest(%(keys)b::text[], %(data)b::bytea[]) AS u(k, d) "
    "ON CONFLICT (key) DO UPDATE SET data = excluded.data, size = excluded.size, created_at = excluded.created_at"
)
#: Each prefix as a key range [lo, hi): one index range scan per prefix, in one statement.
#: (LATERAL: a plain join let the planner merge-join the whole primary key against the ranges.)
#: The ORDER BY is for the planner: psycopg prepares the statement on its fifth use and PostgreSQL then
#: settles on a generic plan, blind to the ranges. Without an order that plan was a nested loop over a
#: sequential scan of the whole table (90 ms for 200 prefixes over 6,000 blobs, growing with every blob,
#: where a plan for the actual ranges takes 0.4 ms); with it, even the generic plan scans the key index.
_LISTED = (
    "SELECT k.key FROM unnest(%(lo)b::text[], %(hi)b::text[]) AS r(lo, hi) CROSS JOIN LATERAL "
    '(SELECT key FROM blobs WHERE key >= r.lo COLLATE "C" AND key < r.hi COLLATE "C" ORDER BY key COLLATE "C") AS k'
)


class StoreBlobStore(BlobStore):
    """A flat key -> bytes store in the ``blobs`` table of a PostgreSQL store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._puts: GroupCommit[tuple[str, bytes], None] = GroupCommit(self._put_many, MAX_BATCH)
        self._exists: GroupCommit[str, bool] = GroupCommit(self._exists_many, MAX_BATCH)
        self._lists: GroupCommit[str, Sequence[str]] = GroupCommit(self._list_many, MAX_BATCH)

    def put(self, key: str, data: bytes) -> None:
        check_key(key)
        if len(data) <= SMALL_PUT:
            self._puts.submit((key, data))
        else:
            self._put_many([(key, data)])

    def _put_many(self, items: Sequence[tuple[str, bytes]]) -> list[None]:
        with self.store.write() as conn:
            put_rows(conn, items)
        return [None] * len(items)

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
        return self._exists.submit(key)

    def _exists_many(self, keys: Sequence[str]) -> list[bool]:
        with self.store.read() as conn:
            found = set(conn.exec_driver_sql(_EXISTING, {"keys": sorted(set(keys))}).scalars().all())
        return [key in found for key in keys]

    def list(self, prefix: str) -> Iterator[str]:
        yield from self._lists.submit(prefix)

    def _list_many(self, prefixes: Sequence[str]) -> Sequence[Sequence[str]]:
        # One statement: an index range per prefix (the key column sorts bytewise, collation "C").
        wanted = sorted(set(prefixes))
        upper = [_after(p) for p in wanted]
        if all(upper):
            with self.store.read() as conn:
                found = sorted(conn.exec_driver_sql(_LISTED, {"lo": wanted, "hi": upper}).scalars().all())
            return [[k for k in found if k.startswith(p)] for p in prefixes]
        with self.store.read() as conn:
            keys = (
                conn.execute(
                    select(_B.c.key)
                    .where(or_(*(_B.c.key.startswith(p, autoescape=True) for p in wanted)))
                    .order_by(_B.c.key)
                )
                .scalars()
                .all()
            )
        return [[k for k in keys if k.startswith(p)] for p in prefixes]

    def delete(self, key: str) -> None:
        check_key(key)
        with self.store.write() as conn:
            conn.execute(delete(_B).where(_B.c.key == key))


def put_rows(conn: Connection, items: Sequence[tuple[str, bytes]]) -> None:
    """Write blobs in the caller's transaction, one statement (a queue writes a runner's records with its acks)."""
    # One row per key (the last put of a key wins, as it would one after the other):
    # ON CONFLICT may not touch a row twice in one statement.
    latest = {check_key(key): data for key, data in items}
    conn.exec_driver_sql(_UPSERT, {"at": now(), "keys": list(latest), "data": list(latest.values())})


def _after(prefix: str) -> str | None:
    """The first string past every key that starts with ``prefix`` (code point order), or None if unbounded."""
    if not prefix or ord(prefix[-1]) >= 0xD7FF:
        return None
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)
