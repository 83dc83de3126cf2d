"""The store: SQLAlchemy Core over SQLite (WAL) by default, PostgreSQL by URL.

:class:`Store` owns the engine, applies Alembic migrations on open, and hands out
connections inside transactions: :meth:`Store.write` takes SQLite's write lock
up front (``BEGIN IMMEDIATE``) so concurrent writers queue instead of failing on
a lock upgrade; :meth:`Store.read` is a plain deferred transaction.
"""

from __future__ import annotations

import fcntl
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError

from mayfly.core.errors import StoreUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration. Checked against the migration scripts by a test, so it cannot drift;
#: comparing with it avoids importing Alembic (a quarter of a second) on every command.
HEAD = "0006"
#: How long a writer waits for SQLite's lock before giving up (ms).
BUSY_TIMEOUT_MS = 15000


_UNAVAILABLE = ("locked", "readonly", "read-only", "disk", "unable to open", "full", "connection")


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
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("mayfly_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


class Store:
    """One database: migrations, and transactions for the query modules beside this one."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine = create_engine(url)
            _configure_sqlite(self.engine)
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        if migrate:
            self.migrate()

    # ------------------------------------------------------------ migrations

    def migrate(self) -> None:
        """Bring the schema to the latest revision (safe when several processes open a new home at once)."""
        if self.schema_version() == HEAD:
            return
        from alembic import command

        with self._migration_lock(), self.engine.connect() as conn:
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
        with self._connect(write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction (a consistent snapshot)."""
        with self._connect(write=False) as conn, conn.begin():
            yield conn

    @contextmanager
    def _connect(self, *, write: bool) -> Iterator[Connection]:
        try:
            with self.engine.connect().execution_options(mayfly_write=write) as conn:
                yield conn
        except OperationalError as exc:
            # Locked for longer than the busy timeout, read-only file, disk full: the user's
            # environment, not a bug. Anything else (a bad query) keeps its traceback.
            if any(s in str(exc.orig).lower() for s in _UNAVAILABLE):
                raise StoreUnavailable(f"store unavailable: {exc.orig}") from exc
            raise

    def close(self) -> None:
        self.engine.dispose()


def now() -> float:
    """Current time as stored (epoch seconds)."""
    return time.time()
