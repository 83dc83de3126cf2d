"""The store: SQLAlchemy Core over SQLite (WAL) by default, PostgreSQL by URL.

:class:`Store` owns the engine, applies Alembic migrations on open, and hands out
connections inside transactions: :meth:`Store.write` takes SQLite's write lock
up front (``BEGIN IMMEDIATE``) so concurrent writers queue instead of failing on
a lock upgrade; :meth:`Store.read` is a plain deferred transaction.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError

from mayfly.core.config import store_busy_timeout
from mayfly.core.dbfaults import storage_faults, writer_turn

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration. Checked against the migration scripts by a test, so it cannot drift;
#: comparing with it avoids importing Alembic (a quarter of a second) on every command.
HEAD = "0007"


def _alembic_config() -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred-only).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: durable across process crashes; a power loss may drop the last commits.
        cur.execute("PRAGMA synchronous=NORMAL")
        # How long a writer waits for SQLite's lock before the store is unavailable (MAYFLY_STORE_BUSY_TIMEOUT).
        cur.execute(f"PRAGMA busy_timeout={int(store_busy_timeout() * 1000)}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Straight to the driver: SQLAlchemy's own statement path cost ~80 us per transaction here.
        write = conn.get_execution_options().get("mayfly_write")
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")  # type: ignore[union-attr]


class Store:
    """One database: migrations, and transactions for the query modules beside this one."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._write_mutex = threading.Lock()
        self._turn = threading.local()
        self._lock_fd: int | None = None
        if self.is_sqlite:
            # A pool as large as the API's thread pool: past ``pool_size`` a connection is closed on
            # return and the next request opens (and configures) a new one.
            database = make_url(url).database
            on_file = database not in (None, "", ":memory:") and not str(database).startswith("file:")
            self.engine = create_engine(url, pool_size=40, max_overflow=20) if on_file else create_engine(url)
            _configure_sqlite(self.engine)
            if on_file:
                # A read-only folder, say: writers wait in SQLite's busy loop as before.
                with contextlib.suppress(OSError):
                    self._lock_fd = os.open(f"{database}.wlock", os.O_RDWR | os.O_CREAT, 0o644)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        if migrate:
            self.migrate()

    # ------------------------------------------------------------ migrations

    def migrate(self) -> None:
        """Bring the schema to the latest revision (safe when several processes open a new home at once)."""
        with storage_faults():
            if self.schema_version() == HEAD:
                return
        from alembic import command

        with storage_faults(), self._migration_lock(), self.engine.connect() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
            conn.commit()

    def schema_version(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        with self.engine.connect() as conn:
            try:
                return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except OperationalError:
                return None  # no alembic_version table yet
            except Exception as exc:  # PostgreSQL raises ProgrammingError for a missing table
                if "alembic_version" in str(exc):
                    return None
                raise

    @contextmanager
    def _migration_lock(self) -> Iterator[None]:
        if not self.is_sqlite or self.engine.url.database in (None, "", ":memory:"):
            yield
            return
        lock_path = Path(str(self.engine.url.database)).with_suffix(".migrate.lock")
        with lock_path.open("w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    # ------------------------------------------------------------ transactions

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed on success and rolled back on error."""
        with self._writer_turn(), self._connect(write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _writer_turn(self) -> Iterator[None]:
        """On a SQLite file: wait for the write lock on a mutex and a ``flock``, not in SQLite's busy loop.

        SQLite lets a writer that finds the lock taken sleep 1, 2, 5, 10... up to 100 ms
        before it looks again, so under load (the API's threads, a control plane) most of
        a write's latency was sleeping past a lock that was long free. A mutex (threads of
        this process) and a ``flock`` on ``<db>.wlock`` (other processes) wake the next
        writer as soon as the lock is released. SQLite's lock still guards correctness.
        """
        if self._lock_fd is None or getattr(self._turn, "held", False):
            yield  # not a SQLite file, or this thread already has the turn (SQLite decides, as before)
            return
        with writer_turn(self._write_mutex):
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
            self._turn.held = True
            try:
                yield
            finally:
                self._turn.held = False
                fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot)."""
        with self._connect(write=False) as conn, conn.begin():
            yield conn

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        # Locked for longer than the busy timeout, read-only file, disk full: the user's environment,
        # not a bug, raised as StoreUnavailable whether SQLAlchemy wrapped it or not (the begin hook
        # talks to sqlite3 directly). Anything else (a bad query) keeps its traceback.
        with storage_faults(), self.engine.connect().execution_options(mayfly_write=write) as conn:
            yield conn

    def close(self) -> None:
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def now() -> float:
    """Current time as stored (epoch seconds)."""
    return time.time()
