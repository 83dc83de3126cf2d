"""The storage boundary's one error: environment faults of the home's files become :class:`StoreUnavailable`.

The store (``mayfly.db`` through SQLAlchemy, and raw ``sqlite3`` in its begin hook),
the embedded queues (``queues.db``, raw ``sqlite3``) and the local blob store (files,
which also hold the task logs) each fail in their own type when the home cannot be
written: a lock held past the busy timeout, a full disk (``SQLITE_FULL``, ``ENOSPC``),
a read-only file system or file. :func:`storage_faults` wraps each of those paths so
callers (the CLI, the API, the loops) see one type with a stable code, and anything
else (a bad query, a missing key) keeps its own type and traceback.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.exc import DBAPIError

from mayfly.core.config import statement_timeout, store_busy_timeout
from mayfly.core.errors import StoreUnavailable

#: SQLite messages that mean "the environment, try later", not "a bug in the statement".
_SQLITE_UNAVAILABLE = (
    "locked",  # database is locked / database table is locked (busy timeout passed)
    "busy",
    "readonly",  # attempt to write a readonly database
    "read-only",
    "disk",  # database or disk is full / disk I/O error
    "full",
    "unable to open",
    "connection",
)

#: PostgreSQL SQLSTATE classes of the environment: connection exception, insufficient resources, operator
#: intervention (shutdown, cannot connect now), system error.
_PG_UNAVAILABLE_CLASSES = frozenset({"08", "53", "57", "58"})
#: Single PostgreSQL SQLSTATEs that a retry of the whole transaction may pass: serialization failure, deadlock.
_PG_UNAVAILABLE = frozenset({"40001", "40P01"})

#: OS errors that mean the home's file system cannot take the write now.
_OS_UNAVAILABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EACCES, errno.EPERM})


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The :class:`StoreUnavailable` that ``exc`` stands for, or None when it is something else."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if isinstance(exc, DBAPIError):
        inner = exc.orig
        if isinstance(inner, sqlite3.OperationalError | sqlite3.DatabaseError):
            return unavailable(inner)
        sqlstate = str(getattr(inner, "sqlstate", None) or "")
        if sqlstate in ("57014", "55P03"):  # query_canceled (statement timeout), lock_not_available
            return StoreUnavailable(
                f"store unavailable: {_one_line(inner)} (MAYFLY_STATEMENT_TIMEOUT={statement_timeout():g}s); try again"
            )
        # PostgreSQL and others: a lost or refused connection, a server shutting down or out of resources,
        # a deadlock or serialization failure (rolled back whole) are the environment too.
        if (
            exc.connection_invalidated
            or sqlstate[:2] in _PG_UNAVAILABLE_CLASSES
            or sqlstate in _PG_UNAVAILABLE
            or "connection" in str(inner).lower()
        ):
            return StoreUnavailable(f"store unavailable: {_one_line(inner)}")
        return None
    if isinstance(exc, sqlite3.OperationalError):
        message = str(exc).lower()
        if not any(s in message for s in _SQLITE_UNAVAILABLE):
            return None
        hint = ""
        if "locked" in message or "busy" in message:
            hint = f" (another writer held it past MAYFLY_STORE_BUSY_TIMEOUT={store_busy_timeout():g}s); try again"
        return StoreUnavailable(f"store unavailable: {_one_line(exc)}{hint}")
    if isinstance(exc, OSError) and exc.errno in _OS_UNAVAILABLE:
        where = f" ({exc.filename})" if exc.filename else ""
        return StoreUnavailable(f"store unavailable: {exc.strerror or exc}{where}")
    return None


@contextmanager
def storage_faults() -> Iterator[None]:
    """Re-raise environment faults of the block as :class:`StoreUnavailable` (the original is chained)."""
    try:
        yield
    except StoreUnavailable:
        raise
    except (DBAPIError, sqlite3.Error, OSError) as exc:
        translated = unavailable(exc)
        if translated is None:
            raise
        raise translated from exc


@contextmanager
def writer_turn(mutex: threading.Lock) -> Iterator[None]:
    """Hold ``mutex`` (this process's queue of writers), waiting at most ``MAYFLY_STORE_BUSY_TIMEOUT``.

    Without the bound, writers behind one that waits out a foreign lock each waited their
    turn and then their own busy timeout: the tenth API request answered after ten timeouts.
    """
    timeout = store_busy_timeout()
    if not mutex.acquire(timeout=timeout):
        raise StoreUnavailable(
            f"store unavailable: the write lock is held (waited past MAYFLY_STORE_BUSY_TIMEOUT={timeout:g}s); try again"
        )
    try:
        yield
    finally:
        mutex.release()


def _one_line(exc: BaseException | None) -> str:
    return " ".join(str(exc).split())
