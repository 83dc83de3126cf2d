"""The store: SQLAlchemy Core over SQLite (WAL) by default, PostgreSQL (psycopg 3) by URL.

:class:`Store` owns the engine and hands out connections inside transactions:
:meth:`Store.write` takes SQLite's write lock up front (``BEGIN IMMEDIATE``) so
concurrent writers queue instead of failing on a lock upgrade; :meth:`Store.read`
is a plain deferred transaction. On PostgreSQL both are READ COMMITTED transactions
from a pool (``MAYFLY_DATABASE_POOL_SIZE``) with a statement timeout
(``MAYFLY_STATEMENT_TIMEOUT``); work several processes may race for is claimed with
row locks or advisory locks by the query modules (see :func:`Store.claim`).

Migrations: a SQLite home is brought to the newest schema when it is opened, as
always. A PostgreSQL database is shared by many processes, so it is migrated only by
``mayfly db upgrade``; opening one whose schema is behind or ahead raises
:class:`~mayfly.core.errors.SchemaBehind` / :class:`~mayfly.core.errors.SchemaAhead`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect, make_url, text
from sqlalchemy.exc import DisconnectionError

from mayfly.core.config import database_pool_size, statement_timeout, store_busy_timeout
from mayfly.core.dbfaults import storage_faults, writer_turn
from mayfly.core.errors import MissingDependency, SchemaAhead, SchemaBehind

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration. Checked against the migration scripts by a test, so it cannot drift;
#: comparing with it avoids importing Alembic (a quarter of a second) on every command.
HEAD = "0012"


#: Seconds a PostgreSQL connection attempt may take before the store is unavailable.
CONNECT_TIMEOUT = 5
#: The advisory lock ``mayfly db upgrade`` holds on PostgreSQL, so two upgrades run one after the other.
MIGRATION_LOCK = 0x6D61_7966_6C79  # "mayfly"
#: The claim a dispatch pass holds (:meth:`Store.try_claim`): one process at a time counts slots and dispatches.
DISPATCH_CLAIM = MIGRATION_LOCK + 1


def events_claim(target: str) -> int:
    """The claim one process at a time holds to apply ``target``'s events taken from a queue in the store."""
    return DISPATCH_CLAIM + 1 + zlib.crc32(target.encode())


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 (SQLAlchemy's default driver would be psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def display_url(url: str) -> str:
    """The URL with any password hidden, for messages and ``mayfly db status``."""
    return make_url(url).render_as_string(hide_password=True)


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
        url = normalize_url(url)
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.is_postgres = url.startswith("postgresql")
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
        elif self.is_postgres:
            from mayfly.core.store import schema

            schema.use_postgresql()
            try:
                self.engine = _postgres_engine(url)
            except ImportError:
                raise MissingDependency(
                    "MAYFLY_DATABASE_URL names PostgreSQL, whose driver is not installed: "
                    "pip install 'mayfly-tasks[postgres]'"
                ) from None
        else:
            self.engine = create_engine(url, pool_pre_ping=True)
        if migrate and self.is_postgres:
            self.check_schema()
        elif migrate:
            self.migrate()

    # ------------------------------------------------------------ migrations

    def migrate(self) -> bool:
        """Bring the schema to the latest revision; False when it already was (safe when several processes race).

        A schema newer than this Mayfly's raises :class:`SchemaAhead` and changes nothing.
        """
        with storage_faults():
            if self._check_ahead(self.schema_version()) == HEAD:
                return False
        from alembic import command

        with storage_faults(), self._migration_lock(), self.engine.connect() as conn:
            cfg = _alembic_config()
            cfg.attributes["connection"] = conn
            if self.is_postgres:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": MIGRATION_LOCK})
                conn.commit()
            try:
                ran = self._check_ahead(_version(conn)) != HEAD  # another upgrade may have finished meanwhile
                if ran:
                    command.upgrade(cfg, "head")
                conn.commit()
            finally:
                if self.is_postgres:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": MIGRATION_LOCK})
                    conn.commit()
        return ran

    def check_schema(self) -> None:
        """Raise :class:`SchemaBehind` or :class:`SchemaAhead` unless the schema is this Mayfly's (``HEAD``)."""
        with storage_faults():
            version = self.schema_version()
        if self._check_ahead(version) != HEAD:
            at = f"at revision {version}" if version else "empty"
            raise SchemaBehind(
                f"the store at {display_url(self.url)} is {at}, this Mayfly needs revision {HEAD}: "
                "run mayfly db upgrade",
                revision=version,
                head=HEAD,
            )

    def _check_ahead(self, version: str | None) -> str | None:
        if version is not None and (not version.isdigit() or int(version) > int(HEAD)):
            raise SchemaAhead(
                f"the store at {display_url(self.url)} is at revision {version}, newer than this Mayfly's {HEAD}: "
                "upgrade Mayfly",
                revision=version,
                head=HEAD,
            )
        return version

    def schema_version(self) -> str | None:
        """The Alembic revision the database is at, or None for an empty database."""
        with self.engine.connect() as conn:
            return _version(conn)

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

    # ------------------------------------------------------------ claims among processes

    def try_claim(self, conn: Connection, key: int) -> bool:
        """Take the transaction-scoped claim ``key`` for the rest of ``conn``'s write transaction; False if taken.

        On PostgreSQL an advisory transaction lock (``pg_try_advisory_xact_lock``): it never
        waits, and it is released at commit, at rollback and when the holder's connection
        dies (a ``kill -9``), so no process can stall the others. On SQLite the write
        transaction already excludes every other writer: always True.
        """
        if not self.is_postgres:
            return True
        return bool(conn.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": key}).scalar())

    def close(self) -> None:
        """Close the pool's connections."""
        self.engine.dispose()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def _version(conn: Connection) -> str | None:
    """The Alembic revision on ``conn``, or None when the table does not exist yet."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    if conn.in_transaction():
        conn.rollback()  # nothing was written; a PostgreSQL connection must not sit idle in a transaction
    return None if value is None else str(value)


#: A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_IDLE_AFTER = 1.0


def _postgres_engine(url: str) -> Engine:
    """A pooled psycopg 3 engine: idle connections pinged, a connect timeout and a statement timeout."""
    timeout_ms = int(statement_timeout() * 1000)
    size = database_pool_size()
    engine = create_engine(
        url,
        pool_size=size,
        max_overflow=size,
        pool_timeout=store_busy_timeout() or 1,
        connect_args={
            "connect_timeout": CONNECT_TIMEOUT,
            # A process paused (SIGSTOP, a frozen VM) inside a transaction loses it, and its claims, after as long.
            "options": f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
            f" -c idle_in_transaction_session_timeout={timeout_ms}",
            "application_name": "mayfly",
        },
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Ping a pooled connection at checkout only when it sat idle for :data:`PING_IDLE_AFTER` seconds.

    ``pool_pre_ping`` pinged at every checkout: a round trip (and an autocommit toggle) per
    transaction, a tenth of a busy loop's time. A connection returned a moment ago was
    alive a moment ago; if the server died since, the statement fails, SQLAlchemy sees the
    disconnect and drops the whole pool, and the caller's loop retries (:mod:`.outage`)
    on fresh connections. Connections that waited (an API between requests, a database
    restarted while the process slept) are still pinged, and replaced when dead.
    """

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, record: Any) -> None:
        record.info["mayfly_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("mayfly_idle_since")
        if since is None or time.monotonic() - since < PING_IDLE_AFTER:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc


def now() -> float:
    """Current time as stored (epoch seconds)."""
    return time.time()
